"""The lazy ``(N, T, H, W, C)`` float32 view every loader returns (:class:`SequenceArray`), with
the value-range and channel conversions and the argument checks the loaders share.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from predrnn.errors import DataError

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _natural_key(name: str):
    """Sort key ordering ``frame_2`` before ``frame_10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _existing_path(path) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"Data file or folder not found: {str(path)!r}.")
    return path


def _check_value_range(value_range) -> tuple[float, float] | None:
    if value_range is None:
        return None
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise DataError(f"value_range must be a pair (lo, hi). Received: value_range={value_range!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise DataError(f"value_range must be finite with hi > lo. Received: value_range={value_range!r}")
    return lo, hi


def _default_range(dtype: np.dtype, value_range, source: str) -> tuple[float, float]:
    """The value range mapped to [0, 1] for data of ``dtype``."""
    declared = _check_value_range(value_range)
    if dtype.kind == "b" or dtype.kind not in "uif":
        raise DataError(
            f"{source}: unsupported dtype {dtype}. Expected uint8 (0..255), float in [0, 1], or "
            "another numeric type with value_range=(lo, hi)."
        )
    if declared is not None:
        return declared
    if dtype == np.uint8:
        return (0.0, 255.0)
    if dtype.kind == "f":
        return (0.0, 1.0)
    raise DataError(
        f"{source}: integer dtype {dtype} has no default value range. Pass value_range=(lo, hi), "
        "e.g. value_range=(0, 4095) for 12-bit data."
    )


CHANNEL_CHOICES = ("auto", "grey", "rgb")
_CHANNEL_NAMES = {"auto": None, "grey": 1, "gray": 1, "rgb": 3}


def _check_channels(channels) -> int | None:
    """``None``/``"auto"`` (keep), ``"grey"``/1 or ``"rgb"``/3 -> ``None``, 1 or 3."""
    if channels is None:
        return None
    if isinstance(channels, str) and channels.lower() in _CHANNEL_NAMES:
        return _CHANNEL_NAMES[channels.lower()]
    if channels not in (1, 3) or isinstance(channels, bool):
        raise DataError(
            f"channels must be 'auto' (as stored), 'grey' (1 channel) or 'rgb' (3 channels). Received: channels={channels!r}"
        )
    return int(channels)


LAYOUT_EXAMPLES = ("NTHW", "TNHW", "NTHWC", "NTCHW", "TNHWC", "THW", "THWC")


def parse_layout(layout) -> str | None:
    """``None``/``"auto"`` -> ``None``; else the axis order of a stored array, checked: distinct
    letters among N (sequence), T (time), H, W and C (channel), with T, H and W required; without
    N the array is one sequence, without C the frames are grey."""
    if layout is None or (isinstance(layout, str) and layout.strip().lower() == "auto"):
        return None
    text = str(layout).strip().upper()
    letters = set(text)
    if not isinstance(layout, str) or len(letters) != len(text) or not letters <= set("NTHWC") or not {"T", "H", "W"} <= letters:
        raise DataError(
            "layout names the axes of a stored array in order with the letters N (sequence), T (time), H, W and "
            f"C (channel), e.g. {', '.join(LAYOUT_EXAMPLES)}; or 'auto'. Received: layout={layout!r}"
        )
    return text


def _check_resize(resize) -> tuple[int, int] | None:
    """``None``, ``()``, ``S``, ``(S,)``, ``(H, W)`` or ``"HxW"`` -> ``None`` or ``(H, W)``."""
    if resize is None or (isinstance(resize, (tuple, list)) and len(resize) == 0):
        return None
    if isinstance(resize, str):
        parts = resize.lower().replace(",", "x").split("x")
    elif isinstance(resize, (int, np.integer)) and not isinstance(resize, bool):
        parts = [resize]
    else:
        parts = list(resize) if isinstance(resize, (tuple, list)) else [None, None, None]
    try:
        if len(parts) not in (1, 2) or any(isinstance(v, bool) for v in parts):
            raise ValueError
        sizes = [int(str(v).strip()) for v in parts]
    except (TypeError, ValueError):
        raise DataError(f"resize must be S, (H, W) or 'HxW' in pixels. Received: resize={resize!r}") from None
    height, width = sizes if len(sizes) == 2 else sizes * 2
    if height < 1 or width < 1:
        raise DataError(f"resize must be positive (height, width). Received: resize={resize!r}")
    return height, width


def _resize_float_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(T, H, W, C)`` float32 -> ``(T, *size, C)`` with PIL's bilinear filter, channel by channel."""
    from PIL import Image

    if frames.shape[1:3] == tuple(size):
        return frames
    out = np.empty((frames.shape[0], size[0], size[1], frames.shape[-1]), np.float32)
    for t in range(frames.shape[0]):
        for c in range(frames.shape[-1]):
            image = Image.fromarray(np.ascontiguousarray(frames[t, :, :, c]), mode="F")
            out[t, :, :, c] = np.asarray(image.resize((size[1], size[0]), Image.Resampling.BILINEAR))
    return np.clip(out, 0.0, 1.0, out=out)


def _convert_channels(frames: np.ndarray, channels: int | None, source: str) -> np.ndarray:
    """``(..., C)`` float32 -> ``(..., channels)``; see :mod:`predrnn.data.formats`."""
    have = frames.shape[-1]
    if channels is None or channels == have:
        return frames
    if have == 4:  # RGBA: drop alpha
        frames, have = frames[..., :3], 3
        if channels == 3:
            return frames
    if channels == 1 and have == 3:
        gray = np.tensordot(frames, _LUMA, axes=([-1], [0]))[..., None].astype(np.float32)
        return np.clip(gray, 0.0, 1.0, out=gray)  # the weights sum to 1 up to rounding
    if channels == 3 and have == 1:
        return np.repeat(frames, 3, axis=-1)
    raise DataError(
        f"{source}: cannot convert {have} channels to channels={channels}; conversions exist "
        "between 1 (gray), 3 (RGB) and 4 (RGBA)."
    )


@dataclass(frozen=True)
class ReadSummary:
    """What a loader read: one line for a terminal (:meth:`line`), a dict for run.json and
    metrics.json (:meth:`to_dict`).

    ``frames`` is the frames per sequence (``frames_min``-``frames_max`` when they differ);
    ``height``, ``width`` and ``channels`` are those of the frames as delivered, after
    ``resize`` and ``channels``; ``stored_*`` as stored in the file. ``layout`` is the storage
    layout (an axis order such as ``"NTHW"``, or ``"image-folder"``, ``"video"``,
    ``"official-npz"``) and ``layout_reason`` how it was known (``"given"``, or what the file
    itself tells).
    """

    source: str
    path: str | None
    format: str
    layout: str
    layout_reason: str
    sequences: int
    frames_min: int
    frames_max: int
    height: int
    width: int
    channels: int
    stored_height: int
    stored_width: int
    stored_channels: int
    stored_dtype: str

    @property
    def frames(self) -> str:
        return str(self.frames_min) if self.frames_min == self.frames_max else f"{self.frames_min}-{self.frames_max}"

    def line(self) -> str:
        """E.g. ``clips.npy: 20 sequences of 20 frames, 64x64, 1 channel (grey), layout NTHW (given)``."""
        kind = {1: "grey", 3: "RGB"}.get(self.channels, f"{self.channels} channels")
        text = (
            f"{self.source}: {self.sequences} sequence{'s' if self.sequences != 1 else ''} of {self.frames} frames, "
            f"{self.height}x{self.width}, {self.channels} channel{'s' if self.channels != 1 else ''} ({kind}), "
            f"layout {self.layout} ({self.layout_reason})"
        )
        changes = []
        if (self.stored_height, self.stored_width) != (self.height, self.width):
            changes.append(f"resized from {self.stored_height}x{self.stored_width}")
        if self.stored_channels != self.channels:
            changes.append(f"converted from {self.stored_channels} channels")
        return text + "".join(f"; {c}" for c in changes)

    def to_dict(self) -> dict:
        record = asdict(self)
        record["frames"] = self.frames_min if self.frames_min == self.frames_max else [self.frames_min, self.frames_max]
        return record


# A reader knows one storage format. It exposes ``lengths`` (N,), ``frame_shape`` (H, W, C)
# (native channels), ``dtype``, ``names``, ``path`` and ``read(i, start, stop)`` returning
# ``(stop - start, H, W, C)`` frames of sequence i in the stored dtype.
class SequenceArray:
    """A lazy ``(N, T, H, W, C)`` float32 view of sequences stored in a file or folder.

    Indexing reads only what is asked for and returns NumPy float32 arrays in ``[0, 1]``:

    - ``seq[i]`` -> ``(T_i, H, W, C)``;
    - ``seq[2:5]``, ``seq[[0, 7, 3]]`` or ``seq[bool_mask]`` -> ``(k, T, H, W, C)``;
    - ``seq[i, 10:20]`` / ``seq[indices, 10:20]`` -> a time window of those sequences;
    - further indices (``seq[:, :, 0:32, 0:32]``) apply to the frames after they are read.

    Sequences may have different lengths (frame folders, videos): then ``shape[1]`` is ``None``,
    ``lengths`` holds each length, and reading several sequences at once needs a time slice
    they all cover.

    Attributes:
        source: human-readable description of the file and its layout (used in errors).
        path: the file or folder, or ``None`` for an in-memory array.
        layout: the storage layout (``"TNHW"``, ``"NTHW"``, ``"NTHWC"``, ``"official-npz"``,
            ``"image-folder"``, ``"video"``).
        original_dtype: the stored dtype (e.g. uint8).
        original_range: the stored ``(lo, hi)`` mapped to ``[0, 1]``.
        names: one name per sequence (folder or file names; indices for arrays).
        lengths: ``(N,)`` frames per sequence.
        raw: the underlying storage: an ``np.memmap`` for ``.npy`` and stored ``.npz`` files,
            an ``np.ndarray`` for in-memory arrays, ``None`` for images and videos or for
            compressed ``.npz`` members not read yet.
    """

    dtype = np.dtype(np.float32)
    ndim = 5

    def __init__(
        self,
        reader,
        *,
        source: str,
        layout: str,
        value_range,
        channels=None,
        indices=None,
        resize=None,
        layout_reason: str = "the format",
        format: str = "",
    ):
        self._reader = reader
        self.source = source
        self.layout = layout
        self.layout_reason = layout_reason
        self.format = format or layout
        self._resize = _check_resize(resize)
        self.original_dtype = np.dtype(reader.dtype)
        self.original_range = (float(value_range[0]), float(value_range[1]))
        self._channels = _check_channels(channels)
        base = len(reader.lengths)
        if indices is None:
            indices = np.arange(base, dtype=np.int64)
        self._indices = np.asarray(indices, dtype=np.int64)
        # Values need checking when the storage can hold something outside the range.
        self._check_values = self.original_dtype.kind == "f" or self.original_range != (
            float(np.iinfo(self.original_dtype).min),
            float(np.iinfo(self.original_dtype).max),
        )
        _convert_channels(np.zeros((1,) + tuple(reader.frame_shape), np.float32), self._channels, source)

    # ---- metadata
    @property
    def path(self) -> str | None:
        return self._reader.path

    @property
    def lengths(self) -> np.ndarray:
        return self._reader.lengths[self._indices]

    @property
    def names(self) -> list[str]:
        return [self._reader.names[i] for i in self._indices]

    @property
    def indices(self) -> np.ndarray:
        """Indices of this view's sequences in the underlying file."""
        return self._indices.copy()

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        height, width, channels = self._reader.frame_shape
        if self._resize is not None:
            height, width = self._resize
        return (height, width, self._channels or channels)

    @property
    def summary(self) -> ReadSummary:
        """What was read (see :class:`ReadSummary`)."""
        height, width, channels = self.frame_shape
        stored = getattr(self._reader, "stored_shape", self._reader.frame_shape)
        lengths = self.lengths
        path = self.path
        return ReadSummary(
            source=Path(path).name if path else "in-memory array",
            path=str(Path(path).resolve()) if path else None,
            format=self.format,
            layout=self.layout,
            layout_reason=self.layout_reason,
            sequences=len(self),
            frames_min=int(lengths.min()) if len(lengths) else 0,
            frames_max=int(lengths.max()) if len(lengths) else 0,
            height=int(height),
            width=int(width),
            channels=int(channels),
            stored_height=int(stored[0]),
            stored_width=int(stored[1]),
            stored_channels=int(stored[2]),
            stored_dtype=str(self.original_dtype),
        )

    @property
    def shape(self) -> tuple:
        lengths = np.unique(self.lengths)
        frames = int(lengths[0]) if len(lengths) == 1 else None
        return (len(self), frames) + self.frame_shape

    @property
    def raw(self):
        store = getattr(self._reader, "store", getattr(self._reader, "inputs", None))
        return getattr(store, "array", store)

    def __len__(self) -> int:
        return len(self._indices)

    def __repr__(self) -> str:
        return f"SequenceArray(shape={self.shape}, source={self.source!r})"

    # ---- reading
    def _base_index(self, index: int) -> int:
        n = len(self)
        index = int(index)
        if not -n <= index < n:
            raise IndexError(f"Sequence index {index} is out of range for {n} sequences.")
        return int(self._indices[index % n])

    def read(self, index: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames ``start:stop`` of sequence ``index``, ``(stop - start, H, W, C)`` float32."""
        base = self._base_index(index)
        length = int(self._reader.lengths[base])
        stop = length if stop is None else int(stop)
        start = int(start)
        if not 0 <= start < stop <= length:
            raise IndexError(f"Frames {start}:{stop} are out of range for sequence {index} of {length} frames ({self.source}).")
        raw = self._reader.read(base, start, stop)
        return self._convert(raw, base)

    def _convert(self, raw: np.ndarray, base: int) -> np.ndarray:
        """Stored values -> float32 in [0, 1] with the requested channels; ``base`` is the
        sequence's index in the file (for error messages)."""
        lo, hi = self.original_range
        name = self._reader.names[base]
        label = f"sequence {base}" + ("" if name == str(base) else f" ({name})")
        if self._check_values:
            finite = np.isfinite(raw) if raw.dtype.kind == "f" else True
            if not np.all(finite):
                raise DataError(
                    f"{self.source}: {label} contains NaN or inf values. Clean the data (e.g. np.nan_to_num) before training."
                )
            low, high = raw.min(), raw.max()
            if low < lo or high > hi:
                raise DataError(
                    f"{self.source}: {label} has values outside the declared range "
                    f"[{lo:g}, {hi:g}]. Received: min {low:g}, max {high:g}. Pass "
                    "value_range=(lo, hi) with the data's real range (it is rescaled to [0, 1])."
                )
        frames = raw.astype(np.float32)
        if (lo, hi) != (0.0, 1.0):
            frames -= np.float32(lo)
            frames /= np.float32(hi - lo)
            np.clip(frames, 0.0, 1.0, out=frames)
        if self._resize is not None:
            frames = _resize_float_frames(frames, self._resize)
        return _convert_channels(frames, self._channels, self.source)

    def _time_slice(self, key) -> tuple[int, int | None, int | None]:
        if isinstance(key, (int, np.integer)):
            return int(key), int(key) + 1, None
        if isinstance(key, slice):
            if key.step is not None and key.step < 1:
                raise IndexError(f"Time slices need a positive step. Received: {key!r}")
            return key.start, key.stop, key.step
        raise TypeError(f"The time index must be an int or a slice. Received: {key!r}")

    def _resolve_time(self, length: int, start, stop) -> tuple[int, int]:
        start, stop, _ = slice(start, stop).indices(length)
        return start, max(stop, start)

    def __getitem__(self, key):
        time_key = slice(None)
        if isinstance(key, tuple):
            if len(key) > 2:  # read (sequences, time) lazily, then index the frames in memory
                frames = self[key[0], key[1]]
                kept = sum(not isinstance(k, (int, np.integer)) for k in key[:2])
                return frames[(slice(None),) * kept + tuple(key[2:])]
            if len(key) == 1:
                key = key[0]
            else:
                key, time_key = key
        start, stop, step = self._time_slice(time_key)
        squeeze_time = isinstance(time_key, (int, np.integer))
        if isinstance(key, (int, np.integer)):
            return self._read_one(int(key), start, stop, step, squeeze_time)
        if isinstance(key, slice):
            positions = np.arange(len(self))[key]
        else:
            positions = np.asarray(key)
            if positions.dtype == bool:
                if positions.shape != (len(self),):
                    raise IndexError(f"A boolean index must have shape ({len(self)},). Received: {positions.shape}")
                positions = np.flatnonzero(positions)
            elif positions.dtype.kind not in "iu" or positions.ndim != 1:
                raise IndexError(f"Index sequences with an int, a slice or a 1-D integer array. Received: {key!r}")
        frames = [self._read_one(int(p), start, stop, step, squeeze_time) for p in positions]
        if not frames:
            lengths = np.unique(self.lengths)
            t = len(range(*slice(start, stop, step).indices(int(lengths.min())))) if len(self) else 0
            shape = (0,) + (() if squeeze_time else (t,)) + self.frame_shape
            return np.zeros(shape, dtype=np.float32)
        if len({f.shape for f in frames}) > 1:
            raise DataError(
                f"{self.source}: the selected sequences have different lengths "
                f"{sorted({f.shape[0] for f in frames})}; index them one at a time or pass a time "
                "slice they all cover, e.g. seq[indices, 0:20]."
            )
        return np.stack(frames)

    def _read_one(self, position: int, start, stop, step, squeeze_time: bool) -> np.ndarray:
        base = self._base_index(position)
        length = int(self._reader.lengths[base])
        if squeeze_time:
            index = start if start >= 0 else start + length
            if not 0 <= index < length:
                raise IndexError(f"Frame {start} is out of range for {length} frames.")
            return self.read(position, index, index + 1)[0]
        first, last = self._resolve_time(length, start, stop)
        if first == last:
            return np.zeros((0,) + self.frame_shape, dtype=np.float32)
        frames = self.read(position, first, last)
        return frames[::step] if step not in (None, 1) else frames

    def __array__(self, dtype=None, copy=None):
        array = self[:]
        return array if dtype is None else array.astype(dtype)

    # ---- views
    def subset(self, indices) -> SequenceArray:
        """A view of some sequences (positions in this view); nothing is copied."""
        positions = np.asarray(indices)
        if positions.dtype == bool:
            positions = np.flatnonzero(positions)
        positions = positions.astype(np.int64).reshape(-1)
        if positions.size and (positions.min() < -len(self) or positions.max() >= len(self)):
            raise IndexError(f"subset indices out of range for {len(self)} sequences.")
        view = object.__new__(SequenceArray)
        view.__dict__.update(self.__dict__)
        view._indices = self._indices[positions % max(len(self), 1)]
        return view

    def check_values(self) -> None:
        """Read every sequence once and raise DataError at the first NaN, inf or out-of-range
        value. Loading checks only what is read; call this to scan a whole file up front."""
        for index in range(len(self)):
            self.read(index)
