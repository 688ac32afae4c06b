"""Time of the library's SSIM against ``keras.ops.image.ssim``, and of one evaluation batch's metrics.

    KERAS_BACKEND=jax python benchmarks/ssim_speed.py [BATCH FRAMES SIZE CHANNELS] [--repeats N]

Frames ``(BATCH, FRAMES, SIZE, SIZE, CHANNELS)`` (default 16 10 64 1: one ``predrnn
evaluate`` batch of Moving MNIST). Prints, per line, the median milliseconds of N calls
(default 9; the two SSIMs alternate, so they share the machine's load), and the largest
difference between the two SSIMs. ``metrics.update`` is ``FrameMetricsAccumulator.update``:
every metric of the batch, as ``predrnn evaluate`` scores each batch, twice (model and
copy-last baseline).
"""

import argparse
import statistics
import time

import keras
import numpy as np

from predrnn import metrics


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shape", nargs="*", type=int, default=[16, 10, 64, 1], help="BATCH FRAMES SIZE CHANNELS")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    if len(args.shape) != 4:
        parser.error("give BATCH FRAMES SIZE CHANNELS, e.g. 16 10 64 1")
    batch, frames, size, channels = args.shape
    rng = np.random.default_rng(0)
    y_true = rng.random((batch, frames, size, size, channels), dtype=np.float32)
    y_pred = np.clip(y_true + 0.1 * rng.standard_normal(y_true.shape), 0.0, 1.0).astype(np.float32)
    images = (y_true.reshape(-1, size, size, channels), y_pred.reshape(-1, size, size, channels))

    def library():
        return keras.ops.convert_to_numpy(metrics._sample_ssim(y_true, y_pred)).reshape(-1)

    def keras_ssim():
        return keras.ops.convert_to_numpy(keras.ops.image.ssim(*images, max_val=1.0, data_format="channels_last"))

    def update():
        metrics.FrameMetricsAccumulator().update(y_true, y_pred)

    difference = float(np.abs(library() - keras_ssim()).max())  # also the warm-up
    update()
    times = {"library ssim": [], "keras.ops.image.ssim": [], "metrics.update": []}
    for _ in range(args.repeats):
        for name, function in zip(times, (library, keras_ssim, update)):
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    print(f"{keras.backend.backend()}, frames {tuple(y_true.shape)}, median of {args.repeats}:")
    for name, values in times.items():
        print(f"  {name:22s} {1000 * statistics.median(values):8.1f} ms")
    print(f"  largest difference between the two SSIMs: {difference:.1e}")


if __name__ == "__main__":
    main()
