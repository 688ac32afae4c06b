"""Reading sequences from files, lazily, as ``(N, T, H, W, C)`` float32 in ``[0, 1]``.

Every loader returns a :class:`SequenceArray`: an array-like with ``.shape``, ``len()``,
``.dtype`` (float32) and NumPy-style indexing that reads and converts only the sequences asked
for. Nothing is loaded at open time beyond headers (and, for float data, the first sequence, to
check its value range early).

Supported sources (:func:`load_sequences` picks one by extension and layout):

=================================  ==========================================================
``mnist_test_seq.npy``-style       ``(T, N, H, W)`` uint8, the standard Moving MNIST test set
official PredRNN ``.npz``          keys ``clips`` ``(2, N, 2)``, ``dims`` ``[[C, H, W]]``,
                                   ``input_raw_data`` ``(N*T, C, H, W)`` (thuml/predrnn-pytorch)
generic ``.npy`` / ``.npz``        ``(N, T, H, W)`` or ``(N, T, H, W, C)``
frame folders                      ``root/<sequence>/*.png|jpg|jpeg|bmp`` (KTH style), or one
                                   folder of frames as a single sequence
videos and GIFs                    one file = one sequence, or a folder of them, via imageio
=================================  ==========================================================

Values: uint8 is divided by 255; floats must lie in ``[0, 1]``; any other range (or another
integer type) must be declared with ``value_range=(lo, hi)`` and is rescaled
``(x - lo) / (hi - lo)``. Every read checks float (and declared-range) data for NaN, inf and
values outside the range, and raises :class:`~predrnn.errors.DataError` naming the file and the
sequence index.

Memory: ``.npy`` files are opened with ``np.load(mmap_mode="r")``; ``.npz`` members stored
uncompressed (``np.savez``) are memory-mapped at their offset inside the zip file. A 10 GB file
needs only the pages actually indexed. A *compressed* ``.npz`` member (``np.savez_compressed``)
cannot be mapped: it is decompressed into memory in full on the first read.

Channels: grayscale frames have ``C = 1``. ``channels=1`` converts RGB to gray with the ITU-R
601-2 luma weights (0.299, 0.587, 0.114, as PIL's ``"L"`` mode); ``channels=3`` repeats a gray
channel three times; an alpha channel (RGBA) is dropped. ``resize=(H, W)`` (image and video
sources only) resizes every frame with PIL's bilinear filter before the conversion.
"""

from __future__ import annotations

import os
import re
import struct
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from predrnn.errors import DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "SequenceArray",
    "as_sequence_array",
    "load_sequences",
    "load_npy",
    "load_npz",
    "load_mnist_test_seq",
    "load_official_npz",
    "load_image_folder",
    "load_video",
    "kth_person_id",
    "split_kth_by_person",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".gif", ".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
_FFMPEG_EXTENSIONS = tuple(e for e in VIDEO_EXTENSIONS if e != ".gif")
_LAYOUTS = ("NTHWC", "NTHW", "TNHW")
_OFFICIAL_KEYS = ("clips", "dims", "input_raw_data")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


# --------------------------------------------------------------------------- helpers


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
        raise DataError(
            f"value_range must be a pair (lo, hi). Received: value_range={value_range!r}"
        ) from None
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise DataError(
            f"value_range must be finite with hi > lo. Received: value_range={value_range!r}"
        )
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


def _check_resize(resize) -> tuple[int, int] | None:
    if resize is None:
        return None
    try:
        height, width = (int(v) for v in resize)
    except (TypeError, ValueError):
        raise DataError(f"resize must be (height, width). Received: resize={resize!r}") from None
    if height < 1 or width < 1:
        raise DataError(f"resize must be positive (height, width). Received: resize={resize!r}")
    return height, width


def _check_channels(channels) -> int | None:
    if channels is None:
        return None
    if channels not in (1, 3) or isinstance(channels, bool):
        raise DataError(
            f"channels must be None (keep), 1 (gray) or 3 (RGB). Received: channels={channels!r}"
        )
    return int(channels)


def _convert_channels(frames: np.ndarray, channels: int | None, source: str) -> np.ndarray:
    """``(..., C)`` float32 -> ``(..., channels)``; see the module docstring."""
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


# --------------------------------------------------------------------------- array stores


class _FileArray:
    """A read-only ``np.memmap`` that pickles as its file coordinates, never as its data.

    (A pickled ``np.memmap`` is a full in-memory copy; worker processes reopen the file instead.)
    """

    def __init__(self, path, dtype, shape, order, offset):
        self.path = str(path)
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(d) for d in shape)
        self.order = order
        self.offset = int(offset)
        self.array = self._open()

    @classmethod
    def from_memmap(cls, array: np.memmap) -> "_FileArray":
        order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
        return cls(array.filename, array.dtype, array.shape, order, array.offset)

    def _open(self) -> np.memmap:
        return np.memmap(
            self.path, dtype=self.dtype, mode="r", shape=self.shape, order=self.order,
            offset=self.offset,
        )

    def __getitem__(self, key):
        return self.array[key]

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "array"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.array = self._open()


class _CompressedMember:
    """A compressed ``.npz`` member: header read now, data decompressed on first access."""

    def __init__(self, path: Path, member: str, shape, dtype):
        self.path = path
        self.member = member
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.array = None
        self._lock = threading.Lock()

    def _load(self) -> np.ndarray:
        with self._lock:
            if self.array is None:
                try:
                    with zipfile.ZipFile(self.path) as archive, archive.open(self.member) as f:
                        self.array = np.lib.format.read_array(f, allow_pickle=False)
                except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
                    raise DataError(
                        f"{str(self.path)!r}: member {self.member!r} is truncated or corrupt "
                        f"({error})."
                    ) from None
            return self.array

    def __getitem__(self, key):
        return self._load()[key]

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("array", "_lock")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.array = None
        self._lock = threading.Lock()


def _read_npy_header(stream, where: str):
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, EOFError, OSError, SyntaxError) as error:
        raise DataError(f"{where} is not a valid .npy array ({error}).") from None
    return shape, fortran, dtype


def _check_dtype_storable(dtype: np.dtype, where: str) -> None:
    if dtype.hasobject or dtype.kind not in "buif":
        raise DataError(
            f"{where} holds dtype {dtype}; expected a numeric array (uint8 or float). "
            "Object/pickled arrays are not loaded."
        )


def _open_npy(path) -> _FileArray:
    """Memory-map one ``.npy`` file (``np.load(mmap_mode="r")``); errors become DataError."""
    path = _existing_path(path)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DataError(
            f"Cannot read {str(path)!r}: it is truncated or not a .npy file ({error}). "
            "Re-create or re-download it."
        ) from None
    _check_dtype_storable(array.dtype, repr(str(path)))
    if array.size == 0:
        raise DataError(f"{str(path)!r} is empty. Received: shape {array.shape}")
    if not isinstance(array, np.memmap):  # pragma: no cover - np.load always maps .npy files
        raise DataError(f"{str(path)!r} could not be memory-mapped.")
    return _FileArray.from_memmap(array)


def _local_header_data_offset(path: Path, info: zipfile.ZipInfo) -> int:
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise DataError(f"{str(path)!r} is corrupt: bad zip header for member {info.filename!r}.")
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_length + extra_length


def _open_npz(path) -> dict:
    """Open every member of a ``.npz`` file without reading the data.

    Returns ``{key: store}``: stored (uncompressed) members are memory-mapped at their offset in
    the zip file; compressed members are read on first access (see the module docstring).
    """
    path = _existing_path(path)
    stores = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                key = info.filename[: -len(".npy")]
                where = f"{str(path)!r} member {key!r}"
                with archive.open(info) as member:
                    shape, fortran, dtype = _read_npy_header(member, where)
                    header_length = member.tell() if info.compress_type == zipfile.ZIP_STORED else 0
                _check_dtype_storable(dtype, where)
                if info.compress_type == zipfile.ZIP_STORED:
                    offset = _local_header_data_offset(path, info) + header_length
                    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                    too_short = header_length + expected > info.file_size
                    if too_short or offset + expected > os.path.getsize(path):
                        raise DataError(f"{where} is truncated: it needs {expected} bytes of data.")
                    if expected == 0:
                        stores[key] = np.zeros(shape, dtype)
                    else:
                        stores[key] = _FileArray(path, dtype, shape, "F" if fortran else "C", offset)
                else:
                    stores[key] = _CompressedMember(path, info.filename, shape, dtype)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise DataError(
            f"Cannot read {str(path)!r}: it is truncated or not a .npz (zip) file ({error}). "
            "Re-create or re-download it."
        ) from None
    if not stores:
        raise DataError(f"{str(path)!r} holds no arrays.")
    return stores


# --------------------------------------------------------------------------- readers
# A reader knows one storage format. It exposes ``lengths`` (N,), ``frame_shape`` (H, W, C)
# (native channels), ``dtype``, ``names``, ``path`` and ``read(i, start, stop)`` returning
# ``(stop - start, H, W, C)`` frames of sequence i in the stored dtype.


class _ArrayReader:
    """A (N, T, H, W[, C]) or (T, N, H, W) array, on disk or in memory."""

    def __init__(self, store, layout: str, path: str | None):
        self.store = store
        self.layout = layout
        self.path = path
        shape = tuple(store.shape)
        if layout == "TNHW":
            frames, num = shape[0], shape[1]
        else:
            num, frames = shape[0], shape[1]
        channels = shape[4] if layout == "NTHWC" else 1
        self.lengths = np.full(num, frames, dtype=np.int64)
        self.frame_shape = (shape[2], shape[3], channels)
        self.dtype = np.dtype(store.dtype)
        self.names = [str(i) for i in range(num)]

    def read(self, i: int, start: int, stop: int) -> np.ndarray:
        if self.layout == "TNHW":
            return np.asarray(self.store[start:stop, i])[..., None]
        frames = np.asarray(self.store[i, start:stop])
        return frames if self.layout == "NTHWC" else frames[..., None]


class _ClipReader:
    """The official PredRNN layout: frames (F, C, H, W) addressed by (start, length) clips."""

    def __init__(self, inputs, input_clips, outputs, output_clips, path: str):
        self.inputs, self.outputs = inputs, outputs
        self.input_clips = np.asarray(input_clips, dtype=np.int64)
        self.output_clips = np.asarray(output_clips, dtype=np.int64)
        self.path = path
        self.lengths = self.input_clips[:, 1] + self.output_clips[:, 1]
        channels, height, width = inputs.shape[1:]
        self.frame_shape = (height, width, channels)
        self.dtype = np.dtype(inputs.dtype)
        self.names = [str(i) for i in range(len(self.lengths))]

    def read(self, i: int, start: int, stop: int) -> np.ndarray:
        in_start, in_length = self.input_clips[i]
        out_start, out_length = self.output_clips[i]
        parts = []
        # Part 1: input clip frames [start, stop) ∩ [0, in_length).
        a, b = min(start, in_length), min(stop, in_length)
        if b > a:
            parts.append(np.asarray(self.inputs[in_start + a : in_start + b]))
        # Part 2: output clip frames, shifted by in_length.
        a, b = max(start - in_length, 0), max(stop - in_length, 0)
        if b > a:
            parts.append(np.asarray(self.outputs[out_start + a : out_start + b]))
        frames = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return np.transpose(frames, (0, 2, 3, 1))


def _open_image(path: Path):
    """Decode one image; the file is closed on return."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise DataError(f"Cannot read the image {str(path)!r}: truncated or corrupt ({error}).") from None
    return image


def _image_header(path: Path):
    """``(size, mode)`` of an image from its header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size, image.mode
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise DataError(f"Cannot read the image {str(path)!r}: truncated or corrupt ({error}).") from None


def _image_mode(image, path: Path) -> str:
    if image.mode in ("1", "L", "LA"):
        return "L"
    if image.mode.startswith("I") or image.mode == "F":
        raise DataError(
            f"{str(path)!r} is a {image.mode} (16-bit or float) image; only 8-bit gray or color "
            "frames are supported. Convert the frames to 8-bit PNG."
        )
    return "RGB"


def _image_to_array(image, mode: str, resize) -> np.ndarray:
    from PIL import Image

    if image.mode != mode:
        image = image.convert(mode)
    if resize is not None and image.size != (resize[1], resize[0]):
        image = image.resize((resize[1], resize[0]), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


class _ImageFolderReader:
    """Sequences of frame images, one list of files per sequence (decoded on read)."""

    def __init__(self, sequences: list[tuple[str, list[Path]]], resize, path: str):
        self.path = path
        self.names = [name for name, _ in sequences]
        self.files = [files for _, files in sequences]
        self.lengths = np.array([len(files) for files in self.files], dtype=np.int64)
        self.resize = resize
        self.dtype = np.dtype(np.uint8)
        first = _open_image(self.files[0][0])
        self.mode = _image_mode(first, self.files[0][0])
        self.size = first.size  # (W, H) of every frame when not resizing
        # Check the header of the first frame of every sequence now; the others when read.
        for files in self.files:
            size, _ = _image_header(files[0])
            self._check_size(size, files[0])
        height, width = resize if resize is not None else (self.size[1], self.size[0])
        self.frame_shape = (height, width, 1 if self.mode == "L" else 3)

    def _check_size(self, size, path: Path) -> None:
        if self.resize is None and tuple(size) != self.size:
            first = self.files[0][0]
            raise DataError(
                f"Inconsistent frame sizes: {str(path)!r} is {size[0]}x{size[1]} "
                f"(WxH) but {str(first)!r} is {self.size[0]}x{self.size[1]}. Pass "
                "resize=(H, W) to resize every frame, or fix the files."
            )

    def read(self, i: int, start: int, stop: int) -> np.ndarray:
        frames = []
        for path in self.files[i][start:stop]:
            image = _open_image(path)
            self._check_size(image.size, path)
            _image_mode(image, path)
            frames.append(_image_to_array(image, self.mode, self.resize))
        return np.stack(frames)


def _ffmpeg_available() -> bool:
    import importlib.util

    return any(importlib.util.find_spec(m) is not None for m in ("imageio_ffmpeg", "av"))


def _read_video(path: Path, resize, channels_hint: int | None = None) -> np.ndarray:
    """All frames of a video file as (T, H, W, C) uint8."""
    import imageio.v3 as iio
    from PIL import Image

    if path.suffix.lower() in _FFMPEG_EXTENSIONS and not _ffmpeg_available():
        raise DataError(
            f"Reading {str(path)!r} needs a video backend for imageio. Install it with "
            "`pip install imageio-ffmpeg` (or `pip install predrnn[video]`), or convert the video "
            "to a GIF or a folder of PNG frames."
        )
    try:
        frames = np.asarray(iio.imread(path, index=None))
    except (OSError, ValueError, RuntimeError, SyntaxError) as error:
        raise DataError(f"Cannot read the video {str(path)!r}: truncated or corrupt ({error}).") from None
    if frames.ndim == 3:  # (T, H, W) gray
        frames = frames[..., None]
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise DataError(f"{str(path)!r} holds no video frames. Received: shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise DataError(f"{str(path)!r}: only 8-bit videos are supported. Received: {frames.dtype}")
    if frames.shape[-1] == 4:
        frames = frames[..., :3]
    if resize is not None and frames.shape[1:3] != tuple(resize):
        mode = "L" if frames.shape[-1] == 1 else "RGB"
        frames = np.stack(
            [
                _image_to_array(Image.fromarray(f[..., 0] if mode == "L" else f), mode, resize)
                for f in frames
            ]
        )
    return frames


class _VideoReader:
    """One video (or GIF) file per sequence; a file is decoded when one of its frames is read."""

    def __init__(self, files: list[Path], resize, path: str):
        import imageio.v3 as iio

        self.path = path
        self.files = files
        self.names = [f.stem for f in files]
        self.resize = resize
        self.dtype = np.dtype(np.uint8)
        lengths, shapes = [], []
        for file in files:
            if file.suffix.lower() in _FFMPEG_EXTENSIONS and not _ffmpeg_available():
                _read_video(file, resize)  # raises the "pip install imageio-ffmpeg" error
            try:
                props = iio.improps(file, index=None)
            except (OSError, ValueError, RuntimeError, SyntaxError) as error:
                raise DataError(
                    f"Cannot read the video {str(file)!r}: truncated or corrupt ({error})."
                ) from None
            shape = tuple(props.shape)
            if len(shape) == 3:  # a single frame, or (T, H, W) gray
                shape = shape + (1,) if props.n_images > 1 else (1,) + shape
            lengths.append(shape[0])
            channels = 1 if shape[-1] == 1 else 3
            size = tuple(resize) if resize is not None else shape[1:3]
            shapes.append(size + (channels,))
        if len(set(shapes)) > 1:
            raise DataError(
                f"Inconsistent frame sizes across the videos in {path!r}: "
                f"{dict(zip([f.name for f in files], shapes))}. Pass resize=(H, W)."
            )
        self.lengths = np.array(lengths, dtype=np.int64)
        self.frame_shape = shapes[0]

    def read(self, i: int, start: int, stop: int) -> np.ndarray:
        frames = _read_video(self.files[i], self.resize)
        if frames.shape[-1] != self.frame_shape[-1]:
            frames = frames[..., :1] if self.frame_shape[-1] == 1 else np.repeat(frames, 3, -1)
        return frames[start:stop]


# --------------------------------------------------------------------------- SequenceArray


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

    def __init__(self, reader, *, source: str, layout: str, value_range, channels=None, indices=None):
        self._reader = reader
        self.source = source
        self.layout = layout
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
        return (height, width, self._channels or channels)

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
            raise IndexError(
                f"Frames {start}:{stop} are out of range for sequence {index} of {length} frames "
                f"({self.source})."
            )
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
                    f"{self.source}: {label} contains "
                    "NaN or inf values. Clean the data (e.g. np.nan_to_num) before training."
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
                    raise IndexError(
                        f"A boolean index must have shape ({len(self)},). Received: {positions.shape}"
                    )
                positions = np.flatnonzero(positions)
            elif positions.dtype.kind not in "iu" or positions.ndim != 1:
                raise IndexError(
                    f"Index sequences with an int, a slice or a 1-D integer array. Received: {key!r}"
                )
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
    def subset(self, indices) -> "SequenceArray":
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


# --------------------------------------------------------------------------- loaders


def as_sequence_array(
    array, *, source: str = "in-memory array", value_range=None, channels=None
) -> SequenceArray:
    """Wrap an in-memory ``(N, T, H, W)`` or ``(N, T, H, W, C)`` array (uint8 or float)."""
    if isinstance(array, SequenceArray):
        if channels is not None and channels != array.frame_shape[-1]:
            raise DataError(f"{array.source}: reload it with channels={channels}.")
        return array
    array = np.asarray(array)
    if array.ndim not in (4, 5) or array.size == 0:
        raise DataError(
            f"{source}: expected a non-empty (N, T, H, W) or (N, T, H, W, C) array. "
            f"Received: shape {array.shape}"
        )
    value_range = _default_range(array.dtype, value_range, source)
    layout = "NTHWC" if array.ndim == 5 else "NTHW"
    return SequenceArray(
        _ArrayReader(array, layout, None), source=source, layout=layout,
        value_range=value_range, channels=channels,
    )


def _guess_layout(path: Path, shape: tuple) -> tuple[str, str]:
    """Layout of a stored array and the reason it was chosen (see :func:`load_npy`)."""
    if len(shape) == 5:
        return "NTHWC", "5-D array"
    if len(shape) != 4:
        raise DataError(
            f"{str(path)!r} holds a {len(shape)}-D array; expected 4-D (N, T, H, W) / "
            f"(T, N, H, W) or 5-D (N, T, H, W, C). Received: shape {shape}"
        )
    if path.name.startswith("mnist_test_seq"):
        return "TNHW", "file name mnist_test_seq*"
    if shape[0] <= shape[1]:
        return "TNHW", f"4-D with shape[0]={shape[0]} <= shape[1]={shape[1]}"
    return "NTHW", f"4-D with shape[0]={shape[0]} > shape[1]={shape[1]}"


def _array_source(path: Path, store, layout, key, value_range, channels, reason) -> SequenceArray:
    shape = tuple(store.shape)
    dtype = np.dtype(store.dtype)
    where = f"{str(path)!r}" + (f" member {key!r}" if key else "")
    if 0 in shape:
        raise DataError(f"{where} is empty. Received: shape {shape}")
    if layout is None:
        layout, reason = _guess_layout(path, shape)
    elif layout not in _LAYOUTS:
        raise DataError(f"layout must be one of {', '.join(_LAYOUTS)}. Received: layout={layout!r}")
    expected_ndim = 5 if layout == "NTHWC" else 4
    if len(shape) != expected_ndim:
        raise DataError(
            f"{where} has rank {len(shape)} but layout {layout} needs rank {expected_ndim}. "
            f"Received: shape {shape}"
        )
    value_range = _default_range(dtype, value_range, where)
    source = f"{where} ({dtype} {shape}, layout {layout}: {reason})"
    sequences = SequenceArray(
        _ArrayReader(store, layout, str(path)), source=source, layout=layout,
        value_range=value_range, channels=channels,
    )
    if sequences._check_values:
        sequences.read(0)  # fail early on a float file in [0, 255] or with NaN
    return sequences


def load_npy(path, *, layout: str | None = None, value_range=None, channels=None) -> SequenceArray:
    """A ``.npy`` array of sequences, memory-mapped.

    Layout (``layout=`` overrides the guess): a 5-D array is ``(N, T, H, W, C)``. A 4-D array is
    ``(T, N, H, W)`` (the ``mnist_test_seq.npy`` layout) when the file name starts with
    ``mnist_test_seq`` or when ``shape[0] <= shape[1]`` (no more frames than sequences, as in
    ``(20, 10000, 64, 64)``); otherwise ``(N, T, H, W)``. The guess is wrong for sets with fewer
    sequences than frames (or as many) stored ``(N, T, H, W)``, and for ``mnist_test_seq``-layout
    files with fewer sequences than frames under another name: pass ``layout=`` for those. The
    choice is recorded in ``.layout`` and ``.source``.
    """
    path = _existing_path(path)
    store = _open_npy(path)
    return _array_source(path, store, layout, None, value_range, channels, "given")


def load_mnist_test_seq(path, *, value_range=None, channels=None) -> SequenceArray:
    """The standard Moving MNIST test set layout: ``(T, N, 64, 64)`` uint8 in a ``.npy``."""
    return load_npy(path, layout="TNHW", value_range=value_range, channels=channels)


def load_npz(
    path, *, key: str | None = None, layout: str | None = None, value_range=None, channels=None
) -> SequenceArray:
    """A generic ``.npz``: the member ``key``, else ``"sequences"``, else its only member.

    The member layout follows :func:`load_npy`. An official PredRNN file (with ``clips``,
    ``dims`` and ``input_raw_data``) is read by :func:`load_official_npz` instead.
    """
    path = _existing_path(path)
    stores = _open_npz(path)
    if key is None and all(k in stores for k in _OFFICIAL_KEYS):
        return load_official_npz(path, value_range=value_range, channels=channels)
    if key is None:
        if "sequences" in stores:
            key = "sequences"
        elif len(stores) == 1:
            (key,) = stores
        else:
            raise DataError(
                f"{str(path)!r} holds several arrays {sorted(stores)}; pass key=NAME to choose one."
            )
    if key not in stores:
        raise DataError(f"{str(path)!r} has no array {key!r}. Received keys: {sorted(stores)}")
    return _array_source(path, stores[key], layout, key, value_range, channels, "given")


def load_official_npz(path, *, value_range=None, channels=None) -> SequenceArray:
    """The official PredRNN ``.npz`` (thuml/predrnn-pytorch ``core/data_provider/mnist.py``).

    Keys: ``clips`` int ``(2, N, 2)`` with ``clips[0, n] = (start, input_length)`` and
    ``clips[1, n] = (start + input_length, output_length)`` indexing frames of
    ``input_raw_data`` float32 ``(frames, C, H, W)``; ``dims`` ``[[C, H, W]]``. Sequence n is its
    input clip followed by its output clip. When ``dims`` has two rows the output clips index
    ``output_raw_data`` (same frame size required).
    """
    path = _existing_path(path)
    stores = _open_npz(path)
    missing = [k for k in _OFFICIAL_KEYS if k not in stores]
    if missing:
        raise DataError(
            f"{str(path)!r} is not an official PredRNN .npz: missing {missing}. "
            f"Received keys: {sorted(stores)}"
        )
    clips = np.asarray(stores["clips"][...])
    dims = np.asarray(stores["dims"][...])
    inputs = stores["input_raw_data"]
    where = repr(str(path))
    if clips.ndim != 3 or clips.shape[0] != 2 or clips.shape[2] != 2 or clips.dtype.kind not in "iu":
        raise DataError(f"{where}: clips must be integer (2, N, 2). Received: {clips.dtype} {clips.shape}")
    if dims.ndim != 2 or dims.shape[1] != 3 or dims.shape[0] not in (1, 2):
        raise DataError(f"{where}: dims must be [[C, H, W]]. Received: shape {dims.shape}")
    if len(inputs.shape) != 4 or tuple(inputs.shape[1:]) != tuple(int(d) for d in dims[0]):
        raise DataError(
            f"{where}: input_raw_data must be (frames, C, H, W) with (C, H, W) = dims[0] = "
            f"{tuple(int(d) for d in dims[0])}. Received: shape {tuple(inputs.shape)}"
        )
    outputs = inputs
    if dims.shape[0] == 2:
        if "output_raw_data" not in stores:
            raise DataError(f"{where}: dims has two rows but there is no output_raw_data.")
        outputs = stores["output_raw_data"]
        if tuple(dims[1]) != tuple(dims[0]) or tuple(outputs.shape[1:]) != tuple(inputs.shape[1:]):
            raise DataError(
                f"{where}: output frames of another size than input frames are not supported. "
                f"Received: dims {dims.tolist()}"
            )
    for name, part, frames in (("input", clips[0], inputs), ("output", clips[1], outputs)):
        outside = np.any(part[:, 0] < 0) or np.any(part.sum(axis=1) > frames.shape[0])
        if outside or np.any(part[:, 1] < 1):
            raise DataError(
                f"{where}: some {name} clips fall outside the {frames.shape[0]} stored frames or "
                "are empty. The file is corrupt."
            )
    if np.dtype(inputs.dtype) != np.dtype(outputs.dtype):
        raise DataError(f"{where}: input_raw_data and output_raw_data have different dtypes.")
    value_range = _default_range(np.dtype(inputs.dtype), value_range, where)
    lengths = clips[0, :, 1] + clips[1, :, 1]
    source = (
        f"{where} (official PredRNN npz, {clips.shape[1]} clips of {int(lengths.min())}"
        f"{'' if lengths.min() == lengths.max() else '-' + str(int(lengths.max()))} frames, "
        f"{inputs.dtype} (C, H, W) = {tuple(int(d) for d in dims[0])})"
    )
    sequences = SequenceArray(
        _ClipReader(inputs, clips[0], outputs, clips[1], str(path)), source=source,
        layout="official-npz", value_range=value_range, channels=channels,
    )
    if sequences._check_values:
        sequences.read(0)
    return sequences


def _list_frames(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: _natural_key(p.name))


def load_image_folder(path, *, channels=None, resize=None) -> SequenceArray:
    """Sequences of frame images: ``root/<sequence>/<frame>.png|jpg|...`` (KTH style).

    Each sub-folder of ``root`` is one sequence, named after the folder; its frames are its image
    files in natural sort order (``frame_2`` before ``frame_10``). A folder of images with no
    sub-folders is one sequence. Hidden entries (``.name``) are ignored. Frames are decoded when
    read; the first frame of every sequence is checked now (size, mode) and the others when read.
    Sequences may have different lengths.

    Args:
        channels: ``None`` keeps gray frames gray (C=1) and color frames RGB (C=3); 1 or 3
            converts (see the module docstring).
        resize: ``(H, W)``: resize every frame with PIL's bilinear filter; required when the
            frames differ in size.
    """
    root = _existing_path(path)
    if not root.is_dir():
        raise DataError(f"{str(root)!r} is not a folder of frame images.")
    resize = _check_resize(resize)
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    folders = sorted((p for p in entries if p.is_dir()), key=lambda p: _natural_key(p.name))
    loose = _list_frames(root)
    if folders and loose:
        raise DataError(
            f"{str(root)!r} holds both frame images and sequence folders; put every sequence's "
            "frames in its own sub-folder."
        )
    if folders:
        sequences = []
        for folder in folders:
            frames = _list_frames(folder)
            if not frames:
                raise DataError(
                    f"The sequence folder {str(folder)!r} holds no frame images "
                    f"({', '.join(IMAGE_EXTENSIONS)})."
                )
            sequences.append((folder.name, frames))
    elif loose:
        sequences = [(root.name, loose)]
    else:
        raise DataError(
            f"The folder {str(root)!r} is empty: expected sub-folders of frame images "
            f"({', '.join(IMAGE_EXTENSIONS)}) or video files."
        )
    reader = _ImageFolderReader(sequences, resize, str(root))
    lengths = reader.lengths
    source = (
        f"{str(root)!r} (frame folder, {len(sequences)} sequences of {lengths.min()}-{lengths.max()} "
        f"frames, {reader.frame_shape[0]}x{reader.frame_shape[1]} {reader.mode})"
    )
    return SequenceArray(
        reader, source=source, layout="image-folder", value_range=(0, 255), channels=channels
    )


def load_video(path, *, channels=None, resize=None) -> SequenceArray:
    """Video files or GIFs via imageio: one file is one sequence; a folder of them is a set.

    GIFs are read with Pillow. Other formats (``.mp4``, ``.avi``, ...) need the ffmpeg plugin
    (``pip install imageio-ffmpeg``); without it a DataError says so. A file is decoded in full
    when any of its frames is read. ``channels`` and ``resize`` as in :func:`load_image_folder`.
    """
    path = _existing_path(path)
    resize = _check_resize(resize)
    if path.is_dir():
        files = sorted(
            (p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS),
            key=lambda p: _natural_key(p.name),
        )
        if not files:
            raise DataError(f"The folder {str(path)!r} holds no video files ({', '.join(VIDEO_EXTENSIONS)}).")
    else:
        if path.suffix.lower() not in VIDEO_EXTENSIONS:
            raise DataError(f"{str(path)!r} is not a video file ({', '.join(VIDEO_EXTENSIONS)}).")
        files = [path]
    reader = _VideoReader(files, resize, str(path))
    source = f"{str(path)!r} (video, {len(files)} file(s), {reader.frame_shape[0]}x{reader.frame_shape[1]})"
    return SequenceArray(reader, source=source, layout="video", value_range=(0, 255), channels=channels)


def load_sequences(
    path,
    *,
    layout: str | None = None,
    key: str | None = None,
    value_range=None,
    channels=None,
    resize=None,
) -> SequenceArray:
    """Open sequences from any supported file or folder (see the module docstring).

    Dispatch: ``.npy`` -> :func:`load_npy` (layout guessed as documented there);
    ``.npz`` -> :func:`load_official_npz` when it holds ``clips``/``dims``/``input_raw_data``,
    else :func:`load_npz`; ``.gif``/``.mp4``/``.avi``/... -> :func:`load_video`; a folder ->
    :func:`load_video` if it holds only video files, else :func:`load_image_folder`.

    Args:
        path: file or folder.
        layout: array layout for ``.npy``/``.npz`` (``"NTHWC"``, ``"NTHW"`` or ``"TNHW"``).
        key: member of a generic ``.npz``.
        value_range: ``(lo, hi)`` of the stored values, mapped to ``[0, 1]`` (arrays only).
        channels: ``None``, 1 or 3.
        resize: ``(H, W)`` for image and video sources.

    Returns:
        A lazy :class:`SequenceArray`.
    """
    path = _existing_path(path)
    suffix = path.suffix.lower()
    is_array = path.is_file() and suffix in (".npy", ".npz")
    if is_array and resize is not None:
        raise DataError(
            f"resize is only for image and video sources; {str(path)!r} is an array file. "
            f"Received: resize={resize!r}"
        )
    if not is_array and (layout is not None or key is not None or value_range is not None):
        raise DataError(
            f"layout, key and value_range apply to .npy/.npz files only; {str(path)!r} is not one."
        )
    if path.is_dir():
        entries = [p for p in path.iterdir() if not p.name.startswith(".")]
        videos = [p for p in entries if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS]
        if videos and len(videos) == len(entries):
            return load_video(path, channels=channels, resize=resize)
        return load_image_folder(path, channels=channels, resize=resize)
    if suffix == ".npy":
        return load_npy(path, layout=layout, value_range=value_range, channels=channels)
    if suffix == ".npz":
        return load_npz(path, key=key, layout=layout, value_range=value_range, channels=channels)
    if suffix in VIDEO_EXTENSIONS:
        return load_video(path, channels=channels, resize=resize)
    raise DataError(
        f"Unsupported data file {str(path)!r}. Supported: .npy, .npz, "
        f"{', '.join(VIDEO_EXTENSIONS)}, or a folder of frame images or videos."
    )


# --------------------------------------------------------------------------- KTH


def kth_person_id(name: str) -> int:
    """The person number in a KTH name such as ``person01_walking_d1`` (-> 1)."""
    match = re.search(r"person(\d+)", str(name))
    if match is None:
        raise DataError(
            f"Cannot find the KTH person in {name!r}; expected names like person01_walking_d1."
        )
    return int(match.group(1))


def split_kth_by_person(
    sequences: SequenceArray,
    train_persons: Sequence[int] = tuple(range(1, 17)),
    test_persons: Sequence[int] = tuple(range(17, 26)),
) -> tuple[SequenceArray, SequenceArray]:
    """The standard KTH split by person: persons 1-16 train, 17-25 test (views, no copy).

    Sequence names (folder or file names) must contain ``personNN``.
    """
    persons = np.array([kth_person_id(n) for n in sequences.names])
    train = np.flatnonzero(np.isin(persons, list(train_persons)))
    test = np.flatnonzero(np.isin(persons, list(test_persons)))
    return sequences.subset(train), sequences.subset(test)
