"""The MNIST digits bundled with the package, read from their IDX files.

The four IDX files (LeCun, Cortes and Burges; CC BY-SA 3.0, see ``mnist/NOTICE.md``) ship inside
``predrnn/data/mnist/``. They are read with ``gzip`` and NumPy only; nothing is ever downloaded.
"""

from __future__ import annotations

import functools
import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from predrnn.errors import DataError

__all__ = ["MNIST_DIR", "load_mnist_digits", "load_mnist_labels", "read_idx"]

MNIST_DIR = Path(__file__).resolve().parent / "mnist"
"""Folder holding the bundled MNIST IDX files."""

_FILES = {
    ("train", "images"): "train-images-idx3-ubyte.gz",
    ("train", "labels"): "train-labels-idx1-ubyte.gz",
    ("test", "images"): "t10k-images-idx3-ubyte.gz",
    ("test", "labels"): "t10k-labels-idx1-ubyte.gz",
}

# IDX type codes (third byte of the magic number) -> big-endian NumPy dtypes.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike, expected_ndim: int | None = None) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed, by the ``.gz`` suffix).

    The IDX magic number is 4 bytes: two zero bytes, a type code (0x08 = uint8) and the number
    of dimensions; then one big-endian int32 per dimension, then the data in C order.

    Args:
        path: the ``.idx`` or ``.gz`` file.
        expected_ndim: if given, the number of dimensions the file must have
            (3 for images, 1 for labels).

    Returns:
        The array in native byte order (uint8 for MNIST).

    Raises:
        DataError: the file is missing, not gzip, truncated, or its header is not IDX.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"IDX file not found: {str(path)!r}.")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as stream:
                raw = stream.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"Cannot read the IDX file {str(path)!r}: it is truncated or not valid gzip ({error}).") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(
            f"{str(path)!r} is not an IDX file: bad magic number. "
            f"Received: first bytes {raw[:4].hex() or '(empty)'}; expected 0000 then a type "
            "code (08 for uint8) and the number of dimensions."
        )
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    if expected_ndim is not None and ndim != expected_ndim:
        raise DataError(
            f"{str(path)!r} holds a {ndim}-dimensional IDX array; expected {expected_ndim} "
            f"dimensions. Received: magic number {raw[:4].hex()}."
        )
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"{str(path)!r} is truncated: its IDX header is incomplete.")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    expected_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header_size != expected_bytes:
        raise DataError(
            f"{str(path)!r} is truncated or corrupt: its header announces shape {shape} "
            f"({expected_bytes} bytes of data). Received: {len(raw) - header_size} bytes."
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _check_split(split: str) -> str:
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test'. Received: split={split!r}")
    return split


@functools.lru_cache(maxsize=2)
def _cached_digits(split: str) -> np.ndarray:
    digits = read_idx(MNIST_DIR / _FILES[(split, "images")], expected_ndim=3)
    if digits.dtype != np.uint8 or digits.shape[1:] != (28, 28):
        raise DataError(
            f"The bundled MNIST {split} images are not (N, 28, 28) uint8. "
            f"Received: shape {digits.shape}, dtype {digits.dtype}. Reinstall predrnn."
        )
    digits.setflags(write=False)
    return digits


def load_mnist_digits(split: str = "train") -> np.ndarray:
    """The bundled MNIST digit images.

    Args:
        split: ``"train"`` (60,000 digits, for training streams) or ``"test"`` (10,000 digits,
            for test sets).

    Returns:
        A read-only ``(N, 28, 28)`` uint8 array, values 0..255 (white digit on black). It is
        read once and cached; copy it before modifying it.
    """
    return _cached_digits(_check_split(split))


def load_mnist_labels(split: str = "train") -> np.ndarray:
    """The labels (0..9) of :func:`load_mnist_digits`, a ``(N,)`` uint8 array."""
    return read_idx(MNIST_DIR / _FILES[(_check_split(split), "labels")], expected_ndim=1)
