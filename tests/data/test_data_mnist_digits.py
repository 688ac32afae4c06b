"""The bundled MNIST digits and the IDX reader."""

import gzip

import numpy as np
import pytest

from predrnn.data import load_mnist_digits, load_mnist_labels, read_idx
from predrnn.data.mnist_digits import MNIST_DIR
from predrnn.errors import DataError


def test_bundled_digits_have_the_mnist_shapes():
    train, test = load_mnist_digits("train"), load_mnist_digits("test")
    assert train.shape == (60_000, 28, 28) and train.dtype == np.uint8
    assert test.shape == (10_000, 28, 28) and test.dtype == np.uint8
    assert train.max() == 255 and train.min() == 0
    assert not train.flags.writeable  # cached and shared
    labels = load_mnist_labels("test")
    assert labels.shape == (10_000,) and set(np.unique(labels)) == set(range(10))


def test_bundled_files_come_with_attribution():
    notice = (MNIST_DIR / "NOTICE.md").read_text()
    assert "LeCun" in notice and "Cortes" in notice and "Burges" in notice
    assert "CC BY-SA 3.0" in notice


def test_unknown_split_is_rejected():
    with pytest.raises(DataError, match="split must be 'train' or 'test'. Received: split='valid'"):
        load_mnist_digits("valid")


def _write_gz(path, payload: bytes):
    with gzip.open(path, "wb") as f:
        f.write(payload)


def test_read_idx_round_trip(tmp_path):
    data = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 0x08, 3]) + np.array([2, 3, 4], ">i4").tobytes()
    _write_gz(tmp_path / "x.gz", header + data.tobytes())
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz", expected_ndim=3), data)


def test_read_idx_rejects_a_bad_magic_number(tmp_path):
    _write_gz(tmp_path / "bad.gz", b"\x12\x34\x08\x03" + bytes(100))
    with pytest.raises(DataError, match="bad magic number.*12340803"):
        read_idx(tmp_path / "bad.gz")


def test_read_idx_rejects_truncated_data(tmp_path):
    header = bytes([0, 0, 0x08, 3]) + np.array([10, 28, 28], ">i4").tobytes()
    _write_gz(tmp_path / "short.gz", header + bytes(100))
    with pytest.raises(DataError, match="truncated or corrupt.*shape \\(10, 28, 28\\)"):
        read_idx(tmp_path / "short.gz")


def test_read_idx_rejects_a_file_that_is_not_gzip(tmp_path):
    (tmp_path / "noise.gz").write_bytes(b"this is not gzip at all")
    with pytest.raises(DataError, match="not valid gzip"):
        read_idx(tmp_path / "noise.gz")


def test_read_idx_checks_the_number_of_dimensions(tmp_path):
    header = bytes([0, 0, 0x08, 1]) + np.array([3], ">i4").tobytes()
    _write_gz(tmp_path / "labels.gz", header + bytes(3))
    with pytest.raises(DataError, match="1-dimensional.*expected 3"):
        read_idx(tmp_path / "labels.gz", expected_ndim=3)
