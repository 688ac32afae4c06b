"""Host-side Keras callbacks of the training job: schedule logging, rollout validation,
atomic checkpoints. None of them touches the model's training state."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import keras
import numpy as np

from predrnn.metrics import FrameMetricsAccumulator


def atomic_write_json(path, data) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=2, allow_nan=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def atomic_save_model(model, path) -> None:
    """``model.save`` to a temporary ``.keras`` file, then an atomic rename."""
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


class SamplingProbabilityLogger(keras.callbacks.Callback):
    """Adds the scheduled-sampling probabilities of the current step to the logs.

    ``ss_context`` and ``ss_future`` (the probability of feeding the true frame in
    the context and in the future part) appear in the progress bar, the CSV log and
    TensorBoard. They are read from the dataset's schedule for the dataset's own
    global step, i.e. exactly what the masks were drawn from.
    """

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset

    def _probabilities(self, step):
        d = self.dataset
        p = d.schedule.probabilities(step, d.input_length, d.output_length)
        context, future = p[: d.input_length - 1], p[d.input_length - 1 :]
        return (float(context.mean()) if context.size else 1.0), (float(future.mean()) if future.size else 0.0)

    def on_train_batch_end(self, batch, logs=None):
        if logs is not None and self.dataset.schedule is not None:
            logs["ss_context"], logs["ss_future"] = self._probabilities(self.dataset.global_step(batch))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.dataset.schedule is not None:
            last_step = (epoch + 1) * self.dataset.num_batches - 1  # the epoch's last batch
            logs["ss_context"], logs["ss_future"] = self._probabilities(last_step)
            logs["step"] = float(last_step + 1)


class RolloutValidation(keras.callbacks.Callback):
    """After each epoch: autoregressive rollout on a fixed held-out set, metrics into logs.

    Adds ``val_mse_per_frame``, ``val_mae_per_frame``, ``val_ssim``, ``val_psnr`` and
    ``val_mse_per_pixel`` (docs/design.md, "Metric conventions"; means over future frames), and
    writes a PNG of context | truth | prediction for the first sequence to
    ``samples_dir/step_<step>.png``.
    """

    def __init__(self, frames, input_length, output_length, batch_size=16, samples_dir=None, steps_per_epoch=1, num_samples=3):
        super().__init__()
        self.frames = frames
        self.input_length = input_length
        self.output_length = output_length
        self.batch_size = batch_size
        self.samples_dir = None if samples_dir is None else Path(samples_dir)
        self.steps_per_epoch = steps_per_epoch
        self.num_samples = num_samples
        # (context, truth, prediction) of the first num_samples sequences after the last epoch
        # (TrainingTensorBoard draws them).
        self.samples = []

    def on_epoch_end(self, epoch, logs=None):
        accumulator = FrameMetricsAccumulator()
        self.samples = []
        for start in range(0, len(self.frames), self.batch_size):
            batch = np.asarray(self.frames[start : start + self.batch_size], dtype=np.float32)
            context = batch[:, : self.input_length]
            truth = batch[:, self.input_length : self.input_length + self.output_length]
            prediction = self.model.rollout(context, self.output_length)
            accumulator.update(truth, prediction)
            for i in range(min(len(batch), max(self.num_samples, 1) - len(self.samples))):
                self.samples.append((context[i], truth[i], np.clip(prediction[i], 0, 1)))
        first_prediction = self.samples[0] if self.samples else None
        result = accumulator.result()
        if logs is not None:
            for name in ("mse_per_frame", "mae_per_frame", "ssim", "psnr", "mse_per_pixel"):
                value = result[name]
                logs[f"val_{name}"] = float(value) if math.isfinite(value) else float("nan")
        if self.samples_dir is not None and first_prediction is not None:
            from predrnn.visualize import comparison_strip, save_png

            self.samples_dir.mkdir(parents=True, exist_ok=True)
            step = (epoch + 1) * self.steps_per_epoch
            save_png(self.samples_dir / f"step_{step:07d}.png", comparison_strip(*first_prediction, scale=2))


class RunCheckpoint(keras.callbacks.Callback):
    """After each epoch: ``last.keras`` (weights + optimizer) and ``state.json``, both
    written atomically; ``best.keras`` when ``monitor`` improves (lower is better).

    ``state.json`` also keeps the step of ``best.keras`` (``best_step``) and the seconds
    spent training so far, over every resumed part of the run (``train_seconds``).
    """

    def __init__(self, directory, monitor="val_mse_per_frame", best_value=None, best_step=None, train_seconds=0.0):
        super().__init__()
        self.directory = Path(directory)
        self.monitor = monitor
        self.best_value = best_value
        self.best_step = best_step
        self.train_seconds = float(train_seconds)
        self._started = None

    def on_train_begin(self, logs=None):
        self._started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.directory.mkdir(parents=True, exist_ok=True)
        value = logs.get(self.monitor)
        improved = value is not None and math.isfinite(value) and (self.best_value is None or value < self.best_value)
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if improved:
            self.best_value, self.best_step = float(value), step
            atomic_save_model(self.model, self.directory / "best.keras")
        atomic_save_model(self.model, self.directory / "last.keras")
        now = time.monotonic()
        self.train_seconds += now - (self._started if self._started is not None else now)
        self._started = now
        state = {
            "epoch": epoch + 1,
            "step": step,
            "monitor": self.monitor,
            "best_value": self.best_value,
            "best_step": self.best_step,
            "train_seconds": round(self.train_seconds, 1),
            "logs": {k: float(v) for k, v in logs.items() if isinstance(v, (int, float, np.floating))},
        }
        atomic_write_json(self.directory / "state.json", state)


class TrainingTensorBoard(keras.callbacks.TensorBoard):
    """``keras.callbacks.TensorBoard`` (TensorFlow backend) with per-step scalars against the
    global step, and the validation predictions as images.

    - ``train/``: Keras' per-step scalars every ``update_freq`` steps (``batch_loss``: the
      epoch's running mean, as in the progress bar; ``batch_ss_context``, ``batch_ss_future``
      from :class:`SamplingProbabilityLogger`), plus ``batch_learning_rate`` and
      ``batch_step_loss``, the loss of that step alone (recovered from the running means,
      ``k m_k - (k - 1) m_(k-1)`` for the epoch's k-th step: Keras weighs every step by its
      batch size, which is fixed in training). Their x-axis is the
      global step (optimizer updates applied), also in a resumed run (``initial_step``). The
      per-epoch ``epoch_*`` scalars stay Keras' own (x-axis: the epoch). Writing the step's
      scalars took about 1 ms a step on a 2-core CPU; ``update_freq=N`` writes every N-th step.
    - ``validation/``: after each epoch, the image ``predictions``: context / truth / prediction
      rows of the first held-out sequences of ``validation`` (a :class:`RolloutValidation`
      earlier in the callback list), at the global step.
    """

    def __init__(self, log_dir, *, initial_step=0, validation=None, update_freq=1, **kwargs):
        kwargs.setdefault("write_graph", False)
        super().__init__(str(log_dir), update_freq=update_freq, **kwargs)
        self.initial_step = int(initial_step)
        self.validation = validation
        self._running_loss = 0.0  # the epoch's running mean loss after the previous step

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._global_train_batch = self.initial_step  # Keras counts from 0 in every fit()

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._running_loss = 0.0

    def on_train_batch_end(self, batch, logs=None):
        if isinstance(logs, dict) and "loss" in logs:
            mean = float(logs["loss"])
            step_loss = (batch + 1) * mean - batch * self._running_loss
            self._running_loss = mean
            if isinstance(self.update_freq, int) and self._global_train_batch % self.update_freq == 0:
                logs = self._collect_learning_rate({**logs, "step_loss": step_loss})
        super().on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        samples = getattr(self.validation, "samples", None)
        if not samples:
            return
        from predrnn.visualize import comparison_strip

        images = np.stack([comparison_strip(*sample, scale=2) for sample in samples])
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        with self._val_writer.as_default(), self.summary.record_if(True):
            self.summary.image(
                "predictions",
                images,
                step=step,
                max_outputs=len(images),
                description="context / truth / prediction of the first held-out sequences",
            )
