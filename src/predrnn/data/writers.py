"""Writing sequences to the standard file layouts, atomically and without overwriting.

Every writer takes ``(N, T, H, W, C)`` (or ``(N, T, H, W)``) sequences, uint8 or float in
``[0, 1]``, refuses to replace an existing file unless ``overwrite=True``, and writes to a
temporary file in the same folder that is renamed into place (``os.replace``) only once it is
complete: a crash never leaves a half-written file under the final name.

:func:`sequence_writer` writes a file of ``N`` sequences a chunk at a time (the command
``predrnn data moving-mnist`` streams generated chunks into it); the ``save_*`` functions convert
and write an array through it too, so they hold one converted chunk at a time, never a converted
copy of the whole array.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from predrnn.errors import DataError

__all__ = [
    "LAYOUTS",
    "SequenceWriter",
    "atomic_write",
    "save_mnist_test_seq",
    "save_official_npz",
    "save_sequences",
    "sequence_writer",
]

LAYOUTS = ("mnist-test-seq", "official-npz", "sequences")
"""The file layouts of :func:`sequence_writer`."""

# Bytes of float32 per chunk when the save_* functions convert and write an in-memory array.
_CHUNK_BYTES = 32 << 20


@contextlib.contextmanager
def atomic_write(path, *, overwrite: bool = False):
    """Yield a binary file object whose content replaces ``path`` when the block succeeds.

    Raises:
        DataError: ``path`` exists and ``overwrite`` is False (nothing is touched).
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise DataError(f"Cannot write to {str(path)!r}: it is a folder. Pass a file name.")
    if path.exists() and not overwrite:
        raise DataError(
            f"{str(path)!r} already exists; pass overwrite=True (CLI: --overwrite) to replace it, or choose another file name."
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in reversed(path.parents) if p.exists() and not p.is_dir()), path.parent)
        raise DataError(f"Cannot write {str(path)!r}: {str(blocker)!r} is a file, not a folder. Choose another path.") from None
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; give the usual file mode
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _as_sequences(sequences, name: str = "sequences") -> np.ndarray:
    """Validate (N, T, H, W[, C]) numeric sequences; returns a 5-D array (no copy when possible)."""
    array = np.asarray(sequences)
    if array.ndim == 4:
        array = array[..., None]
    if array.ndim != 5 or array.size == 0:
        raise DataError(f"{name} must be a non-empty (N, T, H, W) or (N, T, H, W, C) array. Received: shape {array.shape}")
    if array.dtype != np.uint8 and array.dtype.kind != "f":
        raise DataError(f"{name} must be uint8 or float in [0, 1]. Received: dtype {array.dtype}")
    return array


def _check_unit_float(array: np.ndarray, name: str) -> None:
    """Raise unless the float ``array`` is finite and within [0, 1] (scanned in chunks)."""
    step = max(1, _CHUNK_BYTES // max(1, array[:1].nbytes))
    low, high = np.inf, -np.inf
    for begin in range(0, len(array), step):
        part = array[begin : begin + step]
        if not np.all(np.isfinite(part)):
            raise DataError(f"{name} contains NaN or inf values.")
        low, high = min(low, float(part.min())), max(high, float(part.max()))
    if low < 0 or high > 1:
        raise DataError(f"{name} must be within [0, 1]. Received: min {low:g}, max {high:g}")


def _to_unit_float(array: np.ndarray, name: str, *, checked: bool = False, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 -> /255; float -> checked (unless ``checked``) to be finite and in [0, 1]; float32
    out (into ``out`` when given, an array of ``array``'s shape)."""
    if array.dtype == np.uint8:
        return np.divide(array, np.float32(255), dtype=np.float32, out=out)
    if not checked:
        _check_unit_float(array, name)
    if out is None:
        return array.astype(np.float32, copy=False)
    np.copyto(out, array, casting="same_kind")
    return out


def _to_uint8(array: np.ndarray, name: str, *, checked: bool = False) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    return np.round(_to_unit_float(array, name, checked=checked) * 255).astype(np.uint8)


def _official_clips(num: int, frames: int, input_length: int) -> np.ndarray:
    """The official ``clips`` array: int32 (2, N, 2) of (first frame, length) per clip."""
    starts = np.arange(num, dtype=np.int32) * frames
    return np.stack(
        [
            np.stack([starts, np.full(num, input_length, np.int32)], axis=-1),
            np.stack([starts + input_length, np.full(num, frames - input_length, np.int32)], axis=-1),
        ]
    ).astype(np.int32)


def _check_input_length(input_length, frames: int) -> int:
    if input_length is None:
        input_length = frames // 2
    if isinstance(input_length, bool) or not 1 <= int(input_length) < frames:
        raise DataError(f"input_length must be in [1, T - 1] = [1, {frames - 1}]. Received: input_length={input_length}")
    return int(input_length)


def _write_npy_header(stream, shape, dtype) -> None:
    """The ``.npy`` header ``np.save`` writes for a C-ordered array of ``shape`` and ``dtype``."""
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": tuple(int(n) for n in shape),
    }
    np.lib.format.write_array_header_1_0(stream, header)


@functools.cache
def _sync_file_range():
    """Linux's ``sync_file_range`` from the C library, or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):  # pragma: no cover - a C library without it
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_SYNC_FILE_RANGE_WRITE = 2  # <fcntl.h>: start writing dirty pages, do not wait


def _start_writeback(file) -> None:
    """Start writing ``file``'s dirty pages to disk without waiting for them (Linux; elsewhere
    nothing): the disk works while the next chunk is made, and the final ``fsync`` of
    :func:`atomic_write` waits for the last chunks only."""
    function = _sync_file_range()
    if function is not None:
        file.flush()
        function(file.fileno(), 0, 0, _SYNC_FILE_RANGE_WRITE)  # a failure only loses the head start


def _write_data(stream, array: np.ndarray) -> None:
    stream.write(memoryview(np.ascontiguousarray(array)).cast("B"))


class SequenceWriter:
    """Stores consecutive chunks of sequences in the file that :func:`sequence_writer` opened.

    Attributes:
        shape: ``(N, T, H, W, C)`` of the whole set.
        layout: one of :data:`LAYOUTS`.
        written: sequences stored so far.
    """

    def __init__(self, stream, shape, layout: str, dtype: np.dtype, file):
        self.shape = shape
        self.layout = layout
        self.written = 0
        self._stream = stream
        self._dtype = dtype
        # mnist-test-seq: the file is (T, N, H, W), so a chunk is stored as T runs, one per frame.
        self._data_start = stream.tell() if layout == "mnist-test-seq" else None
        self._buffer = None
        self._file = file  # the file on disk (``stream`` or the .npz file that holds it)

    def _float_buffer(self, shape) -> np.ndarray:
        """A float32 array of ``shape`` for converted chunks, reused while chunks are no larger
        (fresh memory costs page faults; the file's bytes are copied out of it)."""
        size = int(np.prod(shape))
        if self._buffer is None or self._buffer.size < size:
            self._buffer = np.empty(size, np.float32)
        return self._buffer[:size].reshape(shape)

    def write(self, chunk) -> None:
        """Store the next ``n`` sequences: ``(n, T, H, W, C)`` or ``(n, T, H, W)``, uint8 or
        float in [0, 1] (converted to the file's dtype as the ``save_*`` functions do)."""
        self._write(chunk, checked=False)

    def _write(self, chunk, *, checked: bool) -> None:
        array = _as_sequences(chunk, "chunk")
        num = array.shape[0]
        if array.shape[1:] != self.shape[1:] or self.written + num > self.shape[0]:
            raise DataError(
                f"The chunk does not fit: the file holds {self.shape[0]} sequences of shape "
                f"{self.shape[1:]}, {self.written} are written. Received: chunk shape {array.shape}"
            )
        if self.layout == "mnist-test-seq":
            frames = _to_uint8(array[..., 0], "chunk", checked=checked)  # (n, T, H, W)
            total, steps = self.shape[:2]
            frame_bytes = frames[0, 0].nbytes
            for t in range(steps):  # frame t of every sequence is one run in the file
                self._stream.seek(self._data_start + (t * total + self.written) * frame_bytes)
                _write_data(self._stream, frames[:, t])
        elif self.layout == "official-npz":
            raw = _to_unit_float(array, "chunk", checked=checked, out=self._float_buffer(array.shape))
            _write_data(self._stream, np.transpose(raw, (0, 1, 4, 2, 3)))  # channels first
        elif self._dtype == np.uint8:
            _write_data(self._stream, _to_uint8(array, "chunk", checked=checked))
        else:
            _write_data(
                self._stream,
                _to_unit_float(array, "chunk", checked=checked, out=self._float_buffer(array.shape)),
            )
        self.written += num
        _start_writeback(self._file)


@contextlib.contextmanager
def sequence_writer(
    path,
    shape,
    *,
    layout: str = "sequences",
    dtype=np.float32,
    input_length: int | None = None,
    overwrite: bool = False,
):
    """Write a file of ``N`` sequences a chunk at a time: yields a :class:`SequenceWriter`.

    Call ``writer.write(chunk)`` with consecutive chunks of sequences until all ``N`` are written;
    only the chunk being converted is held in memory, and on Linux each written chunk starts
    going to disk at once (``sync_file_range``). The file appears under ``path`` when the block
    ends with every sequence written (atomically, as every writer here); an error, or a block
    that ends early, leaves no file.

    Args:
        path: the file to write.
        shape: ``(N, T, H, W, C)`` (or ``(N, T, H, W)``) of the whole set.
        layout: ``"mnist-test-seq"`` (as :func:`save_mnist_test_seq`: uint8 ``(T, N, H, W)``
            ``.npy``, gray only), ``"official-npz"`` (as :func:`save_official_npz`) or
            ``"sequences"`` (``(N, T, H, W, C)`` of ``dtype`` in a ``.npy`` file, or an ``.npz``
            file with one member ``sequences``, as :func:`save_sequences`).
        dtype: ``"sequences"`` only: ``float32`` (in [0, 1]) or ``uint8``.
        input_length: ``"official-npz"`` only, as in :func:`save_official_npz`.
        overwrite: replace an existing file.

    Raises:
        DataError: a bad shape, layout or option (nothing is touched), or chunks that do not
            add up to ``shape``.
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) == 4:
        shape += (1,)
    if len(shape) != 5 or min(shape) < 1:
        raise DataError(f"shape must be (N, T, H, W[, C]) of positive sizes. Received: {shape}")
    if layout not in LAYOUTS:
        raise DataError(f"layout must be one of {LAYOUTS}. Received: layout={layout!r}")
    if input_length is not None and layout != "official-npz":
        raise DataError(f"input_length applies to layout 'official-npz' only. Received: {layout!r}")
    num, frames, height, width, channels = shape
    suffix = Path(path).suffix.lower()
    if layout == "mnist-test-seq":
        if channels != 1:
            raise DataError(f"The mnist_test_seq layout holds gray frames only (C = 1). Received: shape {shape}")
        dtype, members = np.dtype(np.uint8), None
    elif layout == "official-npz":
        input_length = _check_input_length(input_length, frames)
        dtype = np.dtype(np.float32)
        members = {
            "clips": _official_clips(num, frames, input_length),
            "dims": np.array([[channels, height, width]], dtype=np.int32),
            "input_raw_data": (num * frames, channels, height, width),
        }
    else:
        if suffix not in (".npy", ".npz"):
            raise DataError(f"The 'sequences' layout writes .npy or .npz files. Received: path={str(path)!r}")
        dtype = np.dtype(dtype)
        if dtype not in (np.uint8, np.float32):
            raise DataError(f"dtype must be uint8 or float32. Received: dtype {dtype}")
        members = {"sequences": shape} if suffix == ".npz" else None

    with atomic_write(path, overwrite=overwrite) as stream:
        if members is None:
            _write_npy_header(stream, shape if layout == "sequences" else (frames, num, height, width), dtype)
            writer = SequenceWriter(stream, shape, layout, dtype, stream)
            yield writer
            _check_complete(writer)
        else:
            # As np.savez: stored members NAME.npy, zip64 headers, written in this order.
            with zipfile.ZipFile(stream, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
                *small, (name, data_shape) = members.items()
                for key, value in small:
                    with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, value, allow_pickle=False)
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    _write_npy_header(member, data_shape, dtype)
                    writer = SequenceWriter(member, shape, layout, dtype, stream)
                    yield writer
                    _check_complete(writer)


def _check_complete(writer: SequenceWriter) -> None:
    if writer.written != writer.shape[0]:
        raise DataError(f"{writer.written} of {writer.shape[0]} sequences were written; the file was not saved.")


def _write_in_chunks(writer: SequenceWriter, array: np.ndarray) -> None:
    """Write a validated array through ``writer``, about ``_CHUNK_BYTES`` of float32 at a time."""
    step = max(1, _CHUNK_BYTES // (4 * array[0].size))
    for begin in range(0, len(array), step):
        writer._write(array[begin : begin + step], checked=True)


def save_mnist_test_seq(path, sequences, *, overwrite: bool = False) -> Path:
    """Write the layout of the standard ``mnist_test_seq.npy``: uint8 ``(T, N, H, W)``, 0..255.

    Args:
        path: the ``.npy`` file to write.
        sequences: ``(N, T, H, W)`` or ``(N, T, H, W, 1)``, uint8 or float in [0, 1] (rounded to
            the nearest of 256 levels).
        overwrite: replace an existing file.

    Returns:
        The path written.
    """
    array = _as_sequences(sequences)
    if array.dtype.kind == "f":
        _check_unit_float(array, "sequences")
    with sequence_writer(path, array.shape, layout="mnist-test-seq", overwrite=overwrite) as writer:
        _write_in_chunks(writer, array)
    return Path(path)


def save_official_npz(path, sequences, *, input_length: int | None = None, overwrite: bool = False) -> Path:
    """Write the official PredRNN ``.npz`` layout (thuml/predrnn-pytorch data providers).

    Keys (written uncompressed, so :func:`~predrnn.data.load_official_npz` can memory-map them):

    - ``clips`` int32 ``(2, N, 2)``: ``clips[0, n] = (n*T, input_length)`` and
      ``clips[1, n] = (n*T + input_length, T - input_length)``;
    - ``dims`` int32 ``[[C, H, W]]``;
    - ``input_raw_data`` float32 ``(N*T, C, H, W)`` in [0, 1] (channels first).

    Args:
        path: the ``.npz`` file to write.
        sequences: ``(N, T, H, W[, C])`` uint8 or float in [0, 1].
        input_length: context frames per clip; ``None`` means ``T // 2`` (10 of 20).
        overwrite: replace an existing file.
    """
    array = _as_sequences(sequences)
    _check_input_length(input_length, array.shape[1])
    if array.dtype.kind == "f":
        _check_unit_float(array, "sequences")
    with sequence_writer(path, array.shape, layout="official-npz", input_length=input_length, overwrite=overwrite) as writer:
        _write_in_chunks(writer, array)
    return Path(path)


def save_sequences(path, sequences, *, overwrite: bool = False) -> Path:
    """Write ``(N, T, H, W, C)`` sequences as they are (dtype kept) to ``.npy`` or ``.npz``.

    ``.npz`` files hold one uncompressed member ``sequences`` (memory-mappable when read back).
    A 4-D ``(N, T, H, W)`` array gets ``C = 1``.
    """
    array = _as_sequences(sequences)
    if array.dtype.kind == "f":
        _check_unit_float(array, "sequences")
    suffix = Path(path).suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise DataError(f"save_sequences writes .npy or .npz files. Received: path={str(path)!r}")
    with atomic_write(path, overwrite=overwrite) as stream:
        if suffix == ".npy":
            np.save(stream, np.ascontiguousarray(array), allow_pickle=False)
        else:
            np.savez(stream, sequences=array)
    return Path(path)
