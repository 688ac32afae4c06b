"""The quickstart model's step inside Keras `fit`, by input path (TensorFlow backend).

Modes: arrays (NumPy arrays), ds (a keras.utils.PyDataset yielding the same arrays),
tfdata (tf.data.Dataset.from_generator, static shapes, prefetch), tfdata_noprefetch
(no prefetch, one private thread), tensors (tf.data.Dataset.from_tensors(...).repeat()), job_pydataset (the training job's
VideoPredictionDataset over the Moving MNIST stream, given to fit as a PyDataset: what
`predrnn train` did before 2026-11-29), job_steps (the same dataset through
VideoPredictionDataset.to_tf_dataset: what `predrnn train` does now on TensorFlow).
Prints the median step of 12 (the first two left out).

    for m in arrays ds tfdata tfdata_noprefetch tensors job_pydataset job_steps; do python benchmarks/fit_input_path.py $m; done

docs/performance.md ("Input pipeline and evaluation") explains what the input path costs.
"""

import statistics
import sys
import time

import keras
import numpy as np

from predrnn import PredRNN

mode = sys.argv[1]
rng = np.random.default_rng(0)
frames = rng.random((8, 20, 64, 64, 1), dtype=np.float32)
x = {"frames": frames, "teacher_forcing_mask": np.ones((8, 18), np.float32)}
y = frames[:, 1:]


class DS(keras.utils.PyDataset):
    def __len__(self):
        return 12

    def __getitem__(self, i):
        return x, y


class T(keras.callbacks.Callback):
    def on_train_batch_begin(self, b, logs=None):
        self.t = time.perf_counter()

    def on_train_batch_end(self, b, logs=None):
        times.append(time.perf_counter() - self.t)


times = []
model = PredRNN(filters=(32, 32), kernel_size=3, patch_size=4)
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mean_squared_error", jit_compile=False)
if mode.startswith("job_"):
    from predrnn.data import MovingMNISTStream, VideoPredictionDataset
    from predrnn.schedules import ReferenceSchedule

    stream = MovingMNISTStream(0, num_digits=1, num_frames=20, image_size=64)
    job = VideoPredictionDataset(stream, 8, 10, 10, schedule=ReferenceSchedule(), steps_per_epoch=12)
    data = job if mode == "job_pydataset" else job.to_tf_dataset(0, 12)
    model.fit(data, epochs=1, verbose=0, callbacks=[T()], shuffle=False)
elif mode == "tfdata":
    import tensorflow as tf

    sig = (
        {"frames": tf.TensorSpec((8, 20, 64, 64, 1), tf.float32), "teacher_forcing_mask": tf.TensorSpec((8, 18), tf.float32)},
        tf.TensorSpec((8, 19, 64, 64, 1), tf.float32),
    )
    data = tf.data.Dataset.from_generator(lambda: (DS()[i] for i in range(12)), output_signature=sig).prefetch(2)
    model.fit(data, epochs=1, verbose=0, callbacks=[T()])
elif mode == "tfdata_noprefetch":
    import tensorflow as tf

    sig = (
        {"frames": tf.TensorSpec((8, 20, 64, 64, 1), tf.float32), "teacher_forcing_mask": tf.TensorSpec((8, 18), tf.float32)},
        tf.TensorSpec((8, 19, 64, 64, 1), tf.float32),
    )
    data = tf.data.Dataset.from_generator(lambda: (DS()[i] for i in range(12)), output_signature=sig)
    opts = tf.data.Options()
    opts.threading.private_threadpool_size = 1
    opts.autotune.enabled = False
    model.fit(data.with_options(opts), epochs=1, verbose=0, callbacks=[T()])
elif mode == "tensors":
    import tensorflow as tf

    data = tf.data.Dataset.from_tensors((x, y)).repeat(12)
    model.fit(data, epochs=1, verbose=0, callbacks=[T()])
elif mode == "ds":
    model.fit(DS(), epochs=1, verbose=0, callbacks=[T()])
else:
    model.fit(
        {k: np.concatenate([v] * 12) for k, v in x.items()},
        np.concatenate([y] * 12),
        batch_size=8,
        epochs=1,
        verbose=0,
        callbacks=[T()],
        shuffle=False,
    )
print(mode, f"median step {statistics.median(times[2:]):.3f} s")
