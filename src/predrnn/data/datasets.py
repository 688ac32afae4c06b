"""Batches for Keras: ``({"frames", "teacher_forcing_mask"}, target)`` from any source.

:class:`VideoPredictionDataset` is a ``keras.utils.PyDataset``, so it works with ``fit``,
``evaluate`` and ``predict`` on every backend. It turns the schedule's probabilities into a
teacher-forcing mask per batch (see :mod:`predrnn.schedules`), on the host, reproducibly.
On TensorFlow, :meth:`VideoPredictionDataset.to_tf_dataset` gives the same batches as a
``tf.data.Dataset`` of global steps, the faster input for ``fit`` there (the training job
uses it).

Global step: batch ``index`` of epoch ``epoch`` is global step ``epoch * len(dataset) + index``.
``epoch`` starts at ``initial_epoch`` and ``on_epoch_end()`` increments it. Everything a batch
contains (which windows, in which order, and its mask) is a pure function of
``(seed, global step)``. Train with ``fit(shuffle=False)``: the dataset shuffles itself, by
seed; Keras' own batch shuffling is not seeded.

Keras 3 (checked with 3.15 on TensorFlow, JAX and PyTorch) calls ``on_epoch_end()`` once more
than the number of epochs: ``fit``, ``evaluate`` and ``predict`` reset their epoch iterator
before the first epoch, and ``EpochIterator.reset()`` calls it. Counting that call would run the
first epoch as ``initial_epoch + 1``, one epoch ahead of the optimizer's iteration count. The
dataset therefore ignores an ``on_epoch_end()`` called from ``EpochIterator.reset`` (recognised by
the caller's function and file name; no Keras internals are imported). The test suite checks
on every backend that ``fit`` reads epoch ``e`` with ``epoch == e``; if a later Keras changes
this, that test fails and :meth:`VideoPredictionDataset.epoch_callback` pins the epoch instead.
"""

from __future__ import annotations

import math
import os
import sys
import threading

import keras
import numpy as np

from predrnn.data.formats import SequenceArray, as_sequence_array
from predrnn.data.moving_mnist import MovingMNISTStream
from predrnn.errors import DataError
from predrnn.schedules import inference_teacher_forcing_mask, sample_teacher_forcing_mask

__all__ = ["VideoPredictionDataset", "DatasetEpochCallback", "split_train_validation", "check_frames"]


def _called_from_keras_reset(depth: int = 8) -> bool:
    """True when a caller up the stack is Keras' ``EpochIterator.reset`` (which calls
    ``on_epoch_end()`` before the first epoch of ``fit``/``evaluate``/``predict``)."""
    frame = sys._getframe(1)
    for _ in range(depth):
        frame = frame.f_back
        if frame is None:
            return False
        code = frame.f_code
        if code.co_name == "reset" and os.path.basename(code.co_filename) == "epoch_iterator.py":
            return True
    return False


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"{name} must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


def check_frames(frames: np.ndarray, source: str, sequence_labels=None) -> None:
    """Raise DataError if a batch holds NaN, inf or values outside ``[0, 1]``.

    Args:
        frames: ``(B, T, H, W, C)`` float array.
        source: where the batch came from (file name and layout), quoted in the error.
        sequence_labels: how to name sample ``i`` of the batch in the error: a sequence of
            labels, or a callable ``i -> label`` (called only on error). Default ``"sample i"``.
    """
    low, high = frames.min(), frames.max()  # NaN propagates, so one test covers all cases
    if low >= 0.0 and high <= 1.0:
        return
    flat = frames.reshape(frames.shape[0], -1)
    finite = np.isfinite(flat).all(axis=1)
    with np.errstate(invalid="ignore"):
        bad = ~finite | (np.nanmin(flat, axis=1) < 0) | (np.nanmax(flat, axis=1) > 1)
    first = int(np.flatnonzero(bad)[0])
    if sequence_labels is None:
        label = f"sample {first}"
    elif callable(sequence_labels):
        label = sequence_labels(first)
    else:
        label = sequence_labels[first]
    if not finite[first]:
        problem = "contains NaN or inf values; clean the data (e.g. np.nan_to_num) first"
    else:
        problem = (
            f"has values outside [0, 1]: min {flat[first].min():g}, max {flat[first].max():g}; "
            "pass value_range=(lo, hi) when loading to rescale it"
        )
    raise DataError(f"{source}: {label} {problem}.")


def split_train_validation(source, validation_fraction: float, seed: int = 0):
    """Split sequences into seeded train and validation views (no data is copied).

    Args:
        source: a :class:`SequenceArray` or an ``(N, T, H, W[, C])`` array.
        validation_fraction: share of sequences for validation, in ``(0, 1)``; at least one
            sequence goes to each side.
        seed: the split is ``np.random.default_rng([seed, ...]).permutation(N)``.

    Returns:
        ``(train, validation)`` :class:`SequenceArray` views, each in file order.
    """
    from predrnn.data.files import random_split

    return random_split(as_sequence_array(source), validation_fraction, seed)


class VideoPredictionDataset(keras.utils.PyDataset):
    """Batches ``({"frames": (B, T, H, W, C), "teacher_forcing_mask": (B, T-2)}, frames[:, 1:])``.

    ``T = input_length + output_length``; everything is float32 NumPy, the mask is 1 where the
    model is fed the true frame.

    Args:
        source: a finite :class:`SequenceArray` or ``(N, T', H, W, C)`` array (uint8 or float
            in [0, 1]), or an infinite :class:`MovingMNISTStream`.
        batch_size: sequences per batch B.
        input_length: context frames.
        output_length: frames to predict.
        schedule: a :class:`predrnn.schedules.SamplingSchedule`. Each batch's mask is
            ``sample_teacher_forcing_mask(schedule.probabilities(step, ...), B, seed, step)``.
            ``None`` gives the inference mask (context true, predictions after it).
        seed: seeds the per-epoch shuffle and the masks (the stream has its own seed).
        shuffle: shuffle the windows of a finite source each epoch; the permutation of epoch e
            is a pure function of ``(seed, e)``.
        steps_per_epoch: batches per epoch. Required for a stream. For a finite source the
            windows then cycle across epoch boundaries (sample ``step*B + i`` of the endless
            concatenation of per-pass permutations).
        initial_epoch: the epoch of the first batch, as passed to ``fit(initial_epoch=...)``.
        window_stride: sequences longer than T are cut into windows of T frames starting every
            ``window_stride`` frames (default T: non-overlapping).
        drop_remainder: drop the last partial batch of each epoch (training). Pass ``False`` to
            evaluate on every window; the last batch is then smaller.
        validate: check every batch for NaN, inf and values outside [0, 1] (DataError naming
            the source and the sequence).
        workers, use_multiprocessing, max_queue_size: ``keras.utils.PyDataset`` arguments: with
            ``workers > 1`` batches are read by threads (or processes) ahead of the model.

    For evaluation pass ``shuffle=False`` and ``schedule=None``: every epoch then yields the same
    batches. A stream yields new sequences every step; evaluate on a fixed array
    (:func:`~predrnn.data.generate_moving_mnist`) instead.
    """

    def __init__(
        self,
        source,
        batch_size: int,
        input_length: int,
        output_length: int,
        *,
        schedule=None,
        seed: int = 0,
        shuffle: bool = True,
        steps_per_epoch: int | None = None,
        initial_epoch: int = 0,
        window_stride: int | None = None,
        drop_remainder: bool = True,
        validate: bool = True,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
    ):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)
        self.batch_size = _positive_int("batch_size", batch_size)
        self.input_length = _positive_int("input_length", input_length)
        self.output_length = _positive_int("output_length", output_length)
        self.schedule = schedule
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        if steps_per_epoch is not None:
            steps_per_epoch = _positive_int("steps_per_epoch", steps_per_epoch)
        self.steps_per_epoch = steps_per_epoch
        self.initial_epoch = _positive_int("initial_epoch", initial_epoch, 0)
        if window_stride is not None:
            window_stride = _positive_int("window_stride", window_stride)
        self.window_stride = window_stride
        self.drop_remainder = bool(drop_remainder)
        self.validate = bool(validate)
        self.epoch = self.initial_epoch
        self.loader_error = None  # see to_tf_dataset
        if schedule is not None and not hasattr(schedule, "probabilities"):
            raise DataError(
                f"schedule must be a predrnn.schedules.SamplingSchedule (or None for the inference mask). Received: {schedule!r}"
            )
        if self.num_frames < 2:
            raise DataError("input_length + output_length must be >= 2.")

        self._permutations: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        if isinstance(source, MovingMNISTStream):
            self._init_stream(source)
        else:
            self._init_finite(source)

    # ---- set-up
    @property
    def num_frames(self) -> int:
        """Frames per sample, ``T = input_length + output_length``."""
        return self.input_length + self.output_length

    def _init_stream(self, stream: MovingMNISTStream) -> None:
        self.source = stream
        self.sequences = None
        self.num_windows = None
        if self.steps_per_epoch is None:
            raise DataError("A MovingMNISTStream is infinite: pass steps_per_epoch (batches per epoch).")
        if stream.num_frames < self.num_frames:
            raise DataError(
                f"{stream.source} makes {stream.num_frames} frames per sequence but "
                f"input_length + output_length = {self.input_length} + {self.output_length} = "
                f"{self.num_frames}. Build the stream with num_frames={self.num_frames}."
            )
        self._num_batches = self.steps_per_epoch

    def _init_finite(self, source) -> None:
        if not isinstance(source, SequenceArray) and not isinstance(source, np.ndarray):
            raise DataError(
                "source must be a SequenceArray, a NumPy array (N, T, H, W, C) or a "
                f"MovingMNISTStream. Received: {type(source).__name__}"
            )
        self.source = source
        self.sequences = as_sequence_array(source)
        lengths = self.sequences.lengths
        short = np.flatnonzero(lengths < self.num_frames)
        if short.size:
            first = int(short[0])
            raise DataError(
                f"{self.sequences.source}: sequence {first} ({self.sequences.names[first]}) has "
                f"{int(lengths[first])} frames, fewer than input_length + output_length = "
                f"{self.input_length} + {self.output_length} = {self.num_frames} "
                f"({short.size} of {len(lengths)} sequences are too short). Use shorter "
                "input_length/output_length or longer sequences."
            )
        stride = self.window_stride or self.num_frames
        counts = (lengths - self.num_frames) // stride + 1
        self._window_sequence = np.repeat(np.arange(len(lengths), dtype=np.int64), counts)
        first_window = np.cumsum(counts) - counts
        self._window_start = (np.arange(int(counts.sum())) - np.repeat(first_window, counts)) * stride
        self.num_windows = int(counts.sum())
        if self.steps_per_epoch is not None:
            self._num_batches = self.steps_per_epoch
        elif self.drop_remainder:
            self._num_batches = self.num_windows // self.batch_size
        else:
            self._num_batches = math.ceil(self.num_windows / self.batch_size)
        if self._num_batches == 0:
            raise DataError(
                f"{self.sequences.source}: {self.num_windows} windows of {self.num_frames} frames, "
                f"fewer than batch_size={self.batch_size}. Use a smaller batch_size, "
                "drop_remainder=False, or more data."
            )

    # ---- PyDataset interface
    def __len__(self) -> int:
        return self._num_batches

    @property
    def num_batches(self) -> int:
        return self._num_batches

    def on_epoch_end(self) -> None:
        """Advance the epoch. Keras calls this after every epoch; its extra call before the
        first epoch (from ``EpochIterator.reset``) is ignored, see the module docstring."""
        if _called_from_keras_reset():
            return
        self.epoch += 1

    def epoch_callback(self) -> DatasetEpochCallback:
        """A Keras callback that sets ``self.epoch`` to Keras' epoch index at each epoch start.

        Not needed with Keras 3.15 (see the module docstring); it makes the step independent of
        how often Keras calls ``on_epoch_end()``.
        """
        return DatasetEpochCallback(self)

    def global_step(self, index: int) -> int:
        """The global step of batch ``index`` in the current epoch."""
        return self.epoch * self._num_batches + int(index)

    def __getitem__(self, index):
        index = int(index)
        if not 0 <= index < self._num_batches:
            raise IndexError(f"Batch index {index} is out of range for {self._num_batches} batches.")
        return self.batch_at(self.global_step(index))

    def batch_at(self, step: int):
        """The batch of global step ``step``, whatever the current epoch:
        ``({"frames", "teacher_forcing_mask"}, frames[:, 1:])``."""
        step = _positive_int("step", step, 0)
        frames = self.frames_at(step)
        mask = self.teacher_forcing_mask(step, frames.shape[0])
        target = np.ascontiguousarray(frames[:, 1:])
        return {"frames": frames, "teacher_forcing_mask": mask}, target

    def to_tf_dataset(self, first_step: int, num_steps: int):
        """The batches of global steps ``first_step, ..., first_step + num_steps - 1`` as a
        ``tf.data.Dataset`` (TensorFlow backend), for ``fit(..., steps_per_epoch=len(self))``.

        ``fit`` on TensorFlow feeds a PyDataset through ``tf.data.Dataset.from_generator``.
        Measured on a 2-core CPU (benchmarks/fit_input_path.py, quickstart model) that roughly
        doubles a small model's step: ~10x the page faults in the convolutions' gradients,
        whatever the generator yields. This pipeline maps the step numbers through
        ``tf.numpy_function`` instead (same batches, same order) and steps at the speed of
        in-memory arrays. The step numbers make the batches independent of ``self.epoch``.

        An exception raised while making a batch (e.g. :class:`DataError` for NaN frames)
        reaches ``fit`` as a ``tf.errors.UnknownError``; the original is kept in
        ``self.loader_error`` so that the caller can raise it instead.
        """
        import tensorflow as tf

        first_step = _positive_int("first_step", first_step, 0)
        num_steps = _positive_int("num_steps", num_steps)
        inputs, target = self.batch_at(first_step)  # shapes, and bad data fails here, early
        full_batches = self.steps_per_epoch is not None or self.drop_remainder
        frames_shape, target_shape = inputs["frames"].shape, target.shape
        mask_shape = inputs["teacher_forcing_mask"].shape
        if not full_batches:
            frames_shape, target_shape, mask_shape = ((None,) + s[1:] for s in (frames_shape, target_shape, mask_shape))
        self.loader_error = None

        def load(step):
            try:
                inputs, target = self.batch_at(int(step))
            except Exception as error:
                self.loader_error = error
                raise
            return inputs["frames"], inputs["teacher_forcing_mask"], target

        def to_batch(step):
            frames, mask, target = tf.numpy_function(load, [step], (tf.float32,) * 3, stateful=False)
            frames.set_shape(frames_shape)
            mask.set_shape(mask_shape)
            target.set_shape(target_shape)
            return {"frames": frames, "teacher_forcing_mask": mask}, target

        steps = tf.data.Dataset.range(first_step, first_step + num_steps)
        if self.workers > 1:  # in order, like the PyDataset's workers
            return steps.map(to_batch, num_parallel_calls=self.workers, deterministic=True).prefetch(2)
        return steps.map(to_batch).prefetch(2)

    # ---- content of a batch
    def teacher_forcing_mask(self, step: int, batch_size: int | None = None) -> np.ndarray:
        """The ``(B, T-2)`` float32 mask of global step ``step``."""
        batch_size = self.batch_size if batch_size is None else batch_size
        if self.schedule is None:
            return inference_teacher_forcing_mask(batch_size, self.input_length, self.output_length)
        probabilities = self.schedule.probabilities(step, self.input_length, self.output_length)
        return sample_teacher_forcing_mask(probabilities, batch_size, self.seed, step)

    def _permutation(self, data_epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.num_windows)
        with self._lock:
            permutation = self._permutations.get(data_epoch)
            if permutation is None:
                rng = np.random.default_rng([self.seed & 0xFFFFFFFF, int(data_epoch), 0xDA7A])
                permutation = rng.permutation(self.num_windows)
                if len(self._permutations) >= 4:
                    self._permutations.pop(next(iter(self._permutations)))
                self._permutations[data_epoch] = permutation
            return permutation

    def window_ids(self, step: int) -> np.ndarray:
        """Indices (into the window table) of the samples of global step ``step``."""
        if self.steps_per_epoch is None:
            epoch, index = divmod(step, self._num_batches)
            begin = index * self.batch_size
            return self._permutation(epoch)[begin : begin + self.batch_size]
        positions = step * self.batch_size + np.arange(self.batch_size)
        passes, offsets = np.divmod(positions, self.num_windows)
        ids = np.empty(self.batch_size, dtype=np.int64)
        for data_epoch in np.unique(passes):
            chosen = passes == data_epoch
            ids[chosen] = self._permutation(int(data_epoch))[offsets[chosen]]
        return ids

    def frames_at(self, step: int) -> np.ndarray:
        """The ``(B, T, H, W, C)`` float32 frames of global step ``step``."""
        if self.sequences is None:  # stream
            frames = self.source.batch(self.batch_size, step)[:, : self.num_frames]
            if self.validate:
                check_frames(frames, self.source.source, lambda i: f"step {step}, sample {i}")
            return np.ascontiguousarray(frames, dtype=np.float32)
        ids = self.window_ids(step)
        sequence_ids = self._window_sequence[ids]
        starts = self._window_start[ids]
        frames = np.stack(
            [self.sequences.read(int(s), int(t), int(t) + self.num_frames) for s, t in zip(sequence_ids, starts)]
        ).astype(np.float32, copy=False)
        if self.validate:

            def describe(i):  # called only on error
                return self._describe(int(sequence_ids[i]))

            check_frames(frames, self.sequences.source, describe)
        return frames

    def _describe(self, position: int) -> str:
        """``sequence <index in the file> (<name>)`` for error messages."""
        index = int(self.sequences.indices[position])
        name = self.sequences.names[position]
        return f"sequence {index}" + ("" if name == str(index) else f" ({name})")

    def __getstate__(self):
        # Worker processes get a copy without the lock and the permutation cache.
        state = self.__dict__.copy()
        state.pop("_lock", None)
        state["_permutations"] = {}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()


class DatasetEpochCallback(keras.callbacks.Callback):
    """Sets ``dataset.epoch = epoch`` in ``on_epoch_begin``: the dataset's global step then
    follows Keras' epoch index exactly (``fit(initial_epoch=k)`` starts at step ``k * len``).

    It only writes a host-side attribute of the dataset; it never touches the model.
    """

    def __init__(self, dataset: VideoPredictionDataset):
        super().__init__()
        self.dataset = dataset

    def on_epoch_begin(self, epoch, logs=None):
        self.dataset.epoch = int(epoch)
