"""Sequences from a file as a run configures them (``[data] dataset = "file"``): one call that
reads, splits and describes them, and the check that a model takes the frames it is given.

- :func:`read_sequences` reads a file or folder with the ``layout``, ``channels`` and
  ``resize`` settings of a config or of the command-line options ``--layout``, ``--channels``
  and ``--resize``;
- :func:`open_file_dataset` reads ``data.path`` and splits it (``data.split``) into training
  and validation sequences; its result prints in one line and records as a dict (run.json);
- :func:`check_model_frames` refuses frames of another size or channel count than a model's,
  with one message naming the option that converts them; :func:`read_for_model` reads a file
  for a model (the options given, else the run's settings) and checks it.

No Keras: the CLI may call these before ``KERAS_BACKEND`` is set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from predrnn.data.formats import SequenceArray, as_sequence_array, load_sequences, split_kth_by_person
from predrnn.data.formats.sequence import ReadSummary, _check_resize
from predrnn.errors import ConfigError, DataError

__all__ = [
    "SPLITS",
    "FileDataset",
    "FrameMismatchError",
    "check_model_frames",
    "open_file_dataset",
    "random_split",
    "read_for_model",
    "read_sequences",
]

SPLITS = ("random", "kth_person")


class FrameMismatchError(DataError):
    """Frames of another size or channel count than the model takes."""


def read_sequences(path, *, layout="auto", channels="auto", resize=None, key=None, value_range=None) -> SequenceArray:
    """:func:`predrnn.data.load_sequences` with a config's or the CLI's values: ``layout`` and
    ``channels`` may be ``"auto"``; ``resize`` may be ``()``, ``S``, ``(S,)``, ``(H, W)`` or ``"HxW"``."""
    return load_sequences(
        path,
        layout=layout,
        key=key,
        value_range=value_range,
        channels=None if channels == "auto" else channels,
        resize=_check_resize(resize),
    )


def random_split(sequences: SequenceArray, validation_fraction: float, seed: int = 0):
    """Seeded ``(train, validation)`` views; at least one sequence on each side."""
    fraction = float(validation_fraction)
    if not 0.0 < fraction < 1.0:
        raise DataError(f"validation_fraction must be in (0, 1). Received: validation_fraction={validation_fraction}")
    num = len(sequences)
    if num < 2:
        raise DataError(f"{sequences.source}: need >= 2 sequences to split. Received: {num}")
    num_validation = min(max(int(round(fraction * num)), 1), num - 1)
    order = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5B117]).permutation(num)
    return sequences.subset(np.sort(order[num_validation:])), sequences.subset(np.sort(order[:num_validation]))


@dataclass(frozen=True)
class FileDataset:
    """The sequences of a file dataset: ``train``, ``validation`` (``None`` without a split),
    what was read (``summary``) and how it was split (``split``)."""

    train: SequenceArray
    validation: SequenceArray | None
    summary: ReadSummary
    split: str

    def line(self) -> str:
        """What was read and the split, for the terminal."""
        held_out = 0 if self.validation is None else len(self.validation)
        return f"{self.summary.line()}; split {self.split}: {len(self.train)} train, {held_out} validation"

    def to_dict(self) -> dict:
        """For run.json: ``{"read": ReadSummary.to_dict(), "split": ..., "train_sequences", "validation_sequences"}``."""
        return {
            "read": self.summary.to_dict(),
            "split": self.split,
            "train_sequences": len(self.train),
            "validation_sequences": 0 if self.validation is None else len(self.validation),
        }


def open_file_dataset(data_config, seed: int = 0) -> FileDataset:
    """Read ``data_config.path`` (``layout``, ``channels``, ``resize``) and split it.

    ``split = "random"`` holds out ``validation_fraction`` of the sequences (seeded by
    ``seed``; none when it is 0); ``"kth_person"`` trains on KTH persons 1-16 and validates on
    persons 17-25 (the sequences' names must contain ``personNN``).
    """
    d = data_config
    if d.split not in SPLITS:
        raise DataError(f"data.split must be one of {', '.join(SPLITS)}. Received: {d.split!r}")
    sequences = read_sequences(d.path, layout=d.layout, channels=d.channels, resize=d.resize)
    if d.split == "kth_person":
        train, validation = split_kth_by_person(sequences)
        if not len(train) or not len(validation):
            raise DataError(
                f"{sequences.summary.source}: the KTH split needs persons 1-16 for training and 17-25 for validation; "
                f"found {len(train)} and {len(validation)} sequences. Use data.split = 'random' for other data."
            )
    elif d.validation_fraction > 0:
        train, validation = random_split(sequences, d.validation_fraction, seed)
    else:
        train, validation = sequences, None
    return FileDataset(train, validation, sequences.summary, d.split)


def _size_option(height: int, width: int) -> str:
    return f"--resize {height}" if height == width else f"--resize {height}x{width}"


def check_model_frames(sequences, frame_shape, *, model: str = "The model") -> None:
    """Raise :class:`FrameMismatchError` unless ``sequences`` (a :class:`SequenceArray`, an array
    ``(N, T, H, W, C)`` or a :class:`ReadSummary`) hold frames of ``frame_shape`` ``(H, W, C)``;
    ``None`` entries of ``frame_shape`` (or ``frame_shape=None``: a model not built yet) accept
    any value."""
    if frame_shape is None:
        return
    if isinstance(sequences, ReadSummary):
        summary = sequences
    else:
        summary = as_sequence_array(sequences).summary
    height, width, channels = (None if v is None else int(v) for v in tuple(frame_shape)[-3:])
    fixes = []
    if (height is not None and summary.height != height) or (width is not None and summary.width != width):
        h, w = height or summary.height, width or summary.width
        fixes.append(f"{_size_option(h, w)} (config: data.resize = [{h}, {w}])")
    if channels is not None and summary.channels != channels:
        name = {1: "grey", 3: "rgb"}.get(channels)
        if name is None:
            fixes.append(f"frames with {channels} channels")
        else:
            fixes.append(f"--channels {name} (config: data.channels = {name!r})")
    if not fixes:
        return
    wanted = f"{height or 'any'}x{width or 'any'} frames with {channels or 'any number of'} channel{'s' if channels != 1 else ''}"
    held = f"{summary.height}x{summary.width} frames with {summary.channels} channel{'s' if summary.channels != 1 else ''}"
    raise FrameMismatchError(f"{model} takes {wanted}; {summary.source} holds {held}. Pass {' and '.join(fixes)}.")


def check_data_settings(data_config, patch_size: int, source: str = "config") -> None:
    """The ``[data]`` keys about files (``layout``, ``channels``, ``resize``, ``split``, ``window_stride``), checked
    before anything is read: :class:`~predrnn.errors.ConfigError` naming the key."""
    from predrnn.data.formats.sequence import CHANNEL_CHOICES, parse_layout

    d = data_config
    try:
        parse_layout(d.layout)
    except DataError as error:
        raise ConfigError(f"{source}: data.{error}") from None
    if d.channels not in CHANNEL_CHOICES:
        raise ConfigError(f"{source}: data.channels must be one of {', '.join(CHANNEL_CHOICES)}. Received: {d.channels!r}")
    if d.split not in SPLITS:
        raise ConfigError(f"{source}: data.split must be one of {', '.join(SPLITS)}. Received: {d.split!r}")
    try:
        size = _check_resize(d.resize)
    except DataError:
        raise ConfigError(
            f"{source}: data.resize must be [] (keep), [S] or [H, W] in pixels. Received: {list(d.resize)}"
        ) from None
    if size is not None and (size[0] % patch_size or size[1] % patch_size):
        raise ConfigError(
            f"{source}: data.resize = {list(size)} is not divisible by model.patch_size = {patch_size}. "
            f"Choose a size that is a multiple of {patch_size}."
        )
    stride = d.window_stride
    if stride is not None and stride < 1:
        raise ConfigError(
            f"{source}: data.window_stride must be a positive number of frames (or left unset: windows that do not "
            f"overlap). Received: {stride}"
        )
    if d.dataset != "file" and (
        parse_layout(d.layout) or d.channels != "auto" or size is not None or d.split != "random" or stride is not None
    ):
        raise ConfigError(
            f"{source}: data.layout, data.channels, data.resize, data.split and data.window_stride apply to dataset = 'file'; "
            f"Moving MNIST is grey at data.image_size and makes clips of exactly input_length + output_length frames. "
            f"Received: dataset = {d.dataset!r}"
        )


def read_for_model(path, frame_shape, config=None, *, layout=None, channels=None, resize=None) -> SequenceArray:
    """Sequences for a model to score or continue (``predrnn evaluate --data``, ``predict``):
    ``layout``, ``channels`` and ``resize`` as given, else as the run's ``[data]`` read its
    training file (``config``: the run's :class:`~predrnn.jobs.config.ExperimentConfig`, if it
    trained on a file), else ``"auto"``; then :func:`check_model_frames` against the model's
    ``frame_shape``. Errors are :class:`~predrnn.errors.DataError` with the option to pass.
    """
    trained = config.data if config is not None and config.data.dataset == "file" else None
    sequences = read_sequences(
        path,
        layout=layout if layout is not None else (trained.layout if trained else "auto"),
        channels=channels if channels is not None else (trained.channels if trained else "auto"),
        resize=resize if resize is not None else (trained.resize if trained else None),
    )
    check_model_frames(sequences, frame_shape)
    return sequences
