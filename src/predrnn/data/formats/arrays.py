"""Sequences stored as NumPy arrays: ``.npy`` and ``.npz`` files (memory-mapped where the
format allows), the official PredRNN ``.npz``, and in-memory arrays.
"""

from __future__ import annotations

import os
import struct
import threading
import zipfile
from pathlib import Path

import numpy as np

from predrnn.data.formats.sequence import SequenceArray, _default_range, _existing_path, parse_layout
from predrnn.errors import DataError

_OFFICIAL_KEYS = ("clips", "dims", "input_raw_data")


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
    def from_memmap(cls, array: np.memmap) -> _FileArray:
        order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
        return cls(array.filename, array.dtype, array.shape, order, array.offset)

    def _open(self) -> np.memmap:
        return np.memmap(
            self.path,
            dtype=self.dtype,
            mode="r",
            shape=self.shape,
            order=self.order,
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
                    raise DataError(f"{str(self.path)!r}: member {self.member!r} is truncated or corrupt ({error}).") from None
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
    except (ValueError, EOFError, OSError, SyntaxError):
        raise DataError(f"{where} has a damaged .npy header; re-create or re-download it.") from None
    return shape, fortran, dtype


def _check_dtype_storable(dtype: np.dtype, where: str) -> None:
    if dtype.hasobject or dtype.kind not in "buif":
        raise DataError(
            f"{where} holds dtype {dtype}; expected a numeric array (uint8 or float). Object/pickled arrays are not loaded."
        )


def _open_npy(path) -> _FileArray:
    """Memory-map one ``.npy`` file from its header; every problem is a DataError in our words."""
    path = _existing_path(path)
    where = repr(str(path))
    with open(path, "rb") as stream:
        if stream.read(6) != b"\x93NUMPY":
            raise DataError(
                f"{where} is not a NumPy .npy file: it does not start with the .npy signature. "
                "Write arrays with numpy.save, or turn frames and videos into one with `predrnn data convert`."
            )
        stream.seek(0)
        shape, fortran, dtype = _read_npy_header(stream, where)
        offset = stream.tell()
    _check_dtype_storable(dtype, where)
    if 0 in shape:
        raise DataError(f"{where} is empty. Received: shape {shape}")
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    available = os.path.getsize(path) - offset
    if available < expected:
        raise DataError(
            f"{where} is truncated: its header announces a {dtype} array of shape {shape} ({expected} bytes) "
            f"but the file holds {available} bytes of data. Re-create or re-download it."
        )
    return _FileArray(path, dtype, shape, "F" if fortran else "C", offset)


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
    the zip file; compressed members are read on first access (see :mod:`predrnn.data.formats`).
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
            f"Cannot read {str(path)!r}: it is truncated or not a .npz (zip) file ({error}). Re-create or re-download it."
        ) from None
    if not stores:
        raise DataError(f"{str(path)!r} holds no arrays.")
    return stores


class _ArrayReader:
    """An array whose axes ``layout`` names (e.g. ``"NTHW"``, ``"TNHWC"``, ``"NTCHW"``), on disk
    or in memory. Without N it is one sequence; without C its frames are grey."""

    def __init__(self, store, layout: str, path: str | None):
        self.store = store
        self.layout = layout
        self.path = path
        shape = dict(zip(layout, tuple(store.shape)))
        num = shape.get("N", 1)
        self.lengths = np.full(num, shape["T"], dtype=np.int64)
        self.frame_shape = (shape["H"], shape["W"], shape.get("C", 1))
        self.dtype = np.dtype(store.dtype)
        self.names = [str(i) for i in range(num)]
        kept = [axis for axis in layout if axis != "N"]  # the axes left after indexing N
        self._order = tuple(kept.index(axis) for axis in "THWC" if axis in kept)

    def read(self, i: int, start: int, stop: int) -> np.ndarray:
        index = tuple(i if axis == "N" else slice(start, stop) if axis == "T" else slice(None) for axis in self.layout)
        frames = np.transpose(np.asarray(self.store[index]), self._order)
        return frames if "C" in self.layout else frames[..., None]


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


def as_sequence_array(array, *, source: str = "in-memory array", value_range=None, channels=None) -> SequenceArray:
    """Wrap an in-memory ``(N, T, H, W)`` or ``(N, T, H, W, C)`` array (uint8 or float)."""
    if isinstance(array, SequenceArray):
        if channels is not None and channels != array.frame_shape[-1]:
            raise DataError(f"{array.source}: reload it with channels={channels}.")
        return array
    array = np.asarray(array)
    if array.ndim not in (4, 5) or array.size == 0:
        raise DataError(f"{source}: expected a non-empty (N, T, H, W) or (N, T, H, W, C) array. Received: shape {array.shape}")
    value_range = _default_range(array.dtype, value_range, source)
    layout = "NTHWC" if array.ndim == 5 else "NTHW"
    return SequenceArray(
        _ArrayReader(array, layout, None),
        source=source,
        layout=layout,
        value_range=value_range,
        channels=channels,
        layout_reason="in-memory (N, T, H, W[, C])",
        format="array",
    )


class LayoutError(DataError):
    """A stored array whose axis order the file does not tell, or that does not fit the given layout."""


def _layout_hint(shape: tuple) -> str:
    choices = {
        3: "THW (one grey sequence)",
        4: "NTHW (sequences first), TNHW (frames first) or THWC (one sequence)",
        5: "NTHWC, NTCHW, TNHWC or TNCHW",
    }.get(len(shape), "NTHW, TNHW or NTHWC")
    return f"Pass --layout {choices} (in a config: data.layout)."


def _guess_layout(path: Path, shape: tuple) -> tuple[str, str]:
    """Layout of a stored array when the file tells it, and how it tells it (see :func:`load_npy`)."""
    if len(shape) not in (3, 4, 5):
        raise LayoutError(
            f"{str(path)!r} holds a {len(shape)}-D array; expected sequences of frames, e.g. 4-D (N, T, H, W) or 5-D "
            f"(N, T, H, W, C). Received: shape {shape}"
        )
    if len(shape) == 4 and path.name.startswith("mnist_test_seq"):
        return "TNHW", "mnist_test_seq file"
    if len(shape) == 5 and shape[4] <= 4:
        return "NTHWC", "5-D, channels last"
    name = str(path.name)
    what = {3: "one sequence or several", 4: "which axis is the sequence and which the time", 5: "where the channel axis is"}[
        len(shape)
    ]
    raise LayoutError(
        f"{name!r} holds a {len(shape)}-D array of shape {shape}; a .npy/.npz does not say {what}. {_layout_hint(shape)}"
    )


def _array_source(path: Path, store, layout, key, value_range, channels, resize=None) -> SequenceArray:
    shape = tuple(store.shape)
    dtype = np.dtype(store.dtype)
    where = f"{str(path)!r}" + (f" member {key!r}" if key else "")
    if 0 in shape:
        raise DataError(f"{where} is empty. Received: shape {shape}")
    value_range = _default_range(dtype, value_range, where)
    layout = parse_layout(layout)
    if layout is None:
        layout, reason = _guess_layout(path, shape)
    else:
        reason = "given"
        if len(shape) != len(layout):
            raise LayoutError(
                f"{where} has {len(shape)} axes {shape} but layout {layout} names {len(layout)}. {_layout_hint(shape)}"
            )
    source = f"{where} ({dtype} {shape}, layout {layout}: {reason})"
    sequences = SequenceArray(
        _ArrayReader(store, layout, str(path)),
        source=source,
        layout=layout,
        value_range=value_range,
        channels=channels,
        resize=resize,
        layout_reason=reason,
        format=path.suffix.lower().lstrip("."),
    )
    if sequences._check_values:
        sequences.read(0)  # fail early on a float file in [0, 255] or with NaN
    return sequences


def load_npy(path, *, layout: str | None = None, value_range=None, channels=None, resize=None) -> SequenceArray:
    """A ``.npy`` array of sequences, memory-mapped.

    ``layout`` names the array's axes in order (N sequence, T time, H, W, C channel), e.g.
    ``"NTHW"``, ``"TNHW"``, ``"NTHWC"``, ``"NTCHW"``; ``None``/``"auto"`` takes it from what the
    file tells and refuses the rest (:class:`LayoutError`, naming the choices): a 4-D array in a
    file named ``mnist_test_seq*`` is the Moving MNIST test set's ``(T, N, H, W)``; a 5-D array
    whose last axis can hold channels (at most 4) is ``(N, T, H, W, C)``, the layout this package
    writes. Any other array needs ``layout``. The layout and how it was
    known are recorded in ``.layout``, ``.layout_reason``, ``.summary`` and ``.source``.
    """
    path = _existing_path(path)
    store = _open_npy(path)
    return _array_source(path, store, layout, None, value_range, channels, resize)


def load_mnist_test_seq(path, *, value_range=None, channels=None) -> SequenceArray:
    """The standard Moving MNIST test set layout: ``(T, N, 64, 64)`` uint8 in a ``.npy``."""
    return load_npy(path, layout="TNHW", value_range=value_range, channels=channels)


def load_npz(
    path, *, key: str | None = None, layout: str | None = None, value_range=None, channels=None, resize=None
) -> SequenceArray:
    """A generic ``.npz``: the member ``key``, else ``"sequences"``, else its only member.

    The member layout follows :func:`load_npy`. An official PredRNN file (with ``clips``,
    ``dims`` and ``input_raw_data``) is read by :func:`load_official_npz` instead.
    """
    path = _existing_path(path)
    stores = _open_npz(path)
    if key is None and all(k in stores for k in _OFFICIAL_KEYS):
        if parse_layout(layout) is not None:
            raise LayoutError(f"{str(path)!r} is an official PredRNN .npz, whose layout the file tells; leave layout 'auto'.")
        return load_official_npz(path, value_range=value_range, channels=channels, resize=resize)
    if key is None:
        if "sequences" in stores:
            key = "sequences"
        elif len(stores) == 1:
            (key,) = stores
        else:
            raise DataError(f"{str(path)!r} holds several arrays {sorted(stores)}; pass key=NAME to choose one.")
    if key not in stores:
        raise DataError(f"{str(path)!r} has no array {key!r}. Received keys: {sorted(stores)}")
    return _array_source(path, stores[key], layout, key, value_range, channels, resize)


def load_official_npz(path, *, value_range=None, channels=None, resize=None) -> SequenceArray:
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
        raise DataError(f"{str(path)!r} is not an official PredRNN .npz: missing {missing}. Received keys: {sorted(stores)}")
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
                f"{where}: output frames of another size than input frames are not supported. Received: dims {dims.tolist()}"
            )
    for name, part, frames in (("input", clips[0], inputs), ("output", clips[1], outputs)):
        outside = np.any(part[:, 0] < 0) or np.any(part.sum(axis=1) > frames.shape[0])
        if outside or np.any(part[:, 1] < 1):
            raise DataError(
                f"{where}: some {name} clips fall outside the {frames.shape[0]} stored frames or are empty. The file is corrupt."
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
        _ClipReader(inputs, clips[0], outputs, clips[1], str(path)),
        source=source,
        layout="official-npz",
        value_range=value_range,
        channels=channels,
        resize=resize,
        layout_reason="clips and dims",
        format="official-npz",
    )
    if sequences._check_values:
        sequences.read(0)
    return sequences
