"""Writing sequences to the standard file layouts, atomically and without overwriting.

Every writer takes ``(N, T, H, W, C)`` (or ``(N, T, H, W)``) sequences, uint8 or float in
``[0, 1]``, refuses to replace an existing file unless ``overwrite=True``, and writes to a
temporary file in the same folder that is renamed into place (``os.replace``) only once it is
complete: a crash never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np

from predrnn.errors import DataError

__all__ = ["save_mnist_test_seq", "save_official_npz", "save_sequences", "atomic_write"]


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
            f"{str(path)!r} already exists; pass overwrite=True (CLI: --overwrite) to replace it, "
            "or choose another file name."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
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
        raise DataError(
            f"{name} must be a non-empty (N, T, H, W) or (N, T, H, W, C) array. "
            f"Received: shape {array.shape}"
        )
    if array.dtype != np.uint8 and array.dtype.kind != "f":
        raise DataError(f"{name} must be uint8 or float in [0, 1]. Received: dtype {array.dtype}")
    return array


def _to_unit_float(array: np.ndarray, name: str) -> np.ndarray:
    """uint8 -> /255; float -> checked to be finite and in [0, 1]; float32 out."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255)
    if not np.all(np.isfinite(array)):
        raise DataError(f"{name} contains NaN or inf values.")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 1:
        raise DataError(f"{name} must be within [0, 1]. Received: min {low:g}, max {high:g}")
    return array.astype(np.float32, copy=False)


def _to_uint8(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    return np.round(_to_unit_float(array, name) * 255).astype(np.uint8)


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
    if array.shape[-1] != 1:
        raise DataError(
            "The mnist_test_seq layout holds gray frames only (C = 1). "
            f"Received: shape {array.shape}"
        )
    frames = np.ascontiguousarray(np.transpose(_to_uint8(array[..., 0], "sequences"), (1, 0, 2, 3)))
    with atomic_write(path, overwrite=overwrite) as stream:
        np.save(stream, frames, allow_pickle=False)
    return Path(path)


def save_official_npz(
    path, sequences, *, input_length: int | None = None, overwrite: bool = False
) -> Path:
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
    num, frames = array.shape[:2]
    if input_length is None:
        input_length = frames // 2
    if isinstance(input_length, bool) or not 1 <= int(input_length) < frames:
        raise DataError(
            f"input_length must be in [1, T - 1] = [1, {frames - 1}]. "
            f"Received: input_length={input_length}"
        )
    input_length = int(input_length)
    starts = np.arange(num, dtype=np.int32) * frames
    clips = np.stack(
        [
            np.stack([starts, np.full(num, input_length, np.int32)], axis=-1),
            np.stack([starts + input_length, np.full(num, frames - input_length, np.int32)], axis=-1),
        ]
    ).astype(np.int32)
    height, width, channels = array.shape[2:]
    raw = _to_unit_float(array, "sequences").reshape(num * frames, height, width, channels)
    raw = np.ascontiguousarray(np.transpose(raw, (0, 3, 1, 2)))
    dims = np.array([[channels, height, width]], dtype=np.int32)
    with atomic_write(path, overwrite=overwrite) as stream:
        np.savez(stream, clips=clips, dims=dims, input_raw_data=raw)
    return Path(path)


def save_sequences(path, sequences, *, overwrite: bool = False) -> Path:
    """Write ``(N, T, H, W, C)`` sequences as they are (dtype kept) to ``.npy`` or ``.npz``.

    ``.npz`` files hold one uncompressed member ``sequences`` (memory-mappable when read back).
    A 4-D ``(N, T, H, W)`` array gets ``C = 1``.
    """
    array = _as_sequences(sequences)
    if array.dtype.kind == "f":
        _to_unit_float(array, "sequences")  # validate only
    suffix = Path(path).suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise DataError(f"save_sequences writes .npy or .npz files. Received: path={str(path)!r}")
    with atomic_write(path, overwrite=overwrite) as stream:
        if suffix == ".npy":
            np.save(stream, np.ascontiguousarray(array), allow_pickle=False)
        else:
            np.savez(stream, sequences=array)
    return Path(path)
