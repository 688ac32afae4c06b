"""sequence_writer: files written a chunk at a time, equal to the whole-array writers' files."""

import io
import zipfile

import numpy as np
import pytest

from predrnn.data import load_official_npz, load_sequences, save_mnist_test_seq, save_official_npz
from predrnn.data.writers import sequence_writer
from predrnn.errors import DataError


def _sequences(shape=(11, 4, 6, 5, 1), seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)


def _write(path, sequences, step, **options):
    with sequence_writer(path, sequences.shape, **options) as writer:
        for begin in range(0, len(sequences), step):
            writer.write(sequences[begin : begin + step])
        assert writer.written == len(sequences)
    return path


def _npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@pytest.mark.parametrize("step", [1, 3, 4, 11])  # 11 sequences: uneven last chunks, one chunk
def test_mnist_test_seq_layout_in_chunks_is_np_save_of_the_transposed_array(tmp_path, step):
    sequences = _sequences()
    path = _write(tmp_path / "s.npy", sequences, step, layout="mnist-test-seq")
    expected = np.ascontiguousarray(np.transpose(sequences[..., 0], (1, 0, 2, 3)))  # (T, N, H, W)
    assert path.read_bytes() == _npy_bytes(expected)
    # Frame-major chunks (transposed views) give the same file.
    frame_major = np.ascontiguousarray(np.transpose(sequences, (1, 0, 2, 3, 4))).transpose(1, 0, 2, 3, 4)
    assert _write(tmp_path / "f.npy", frame_major, step, layout="mnist-test-seq").read_bytes() == path.read_bytes()


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_sequences_layout_in_chunks_is_np_save(tmp_path, dtype):
    sequences = _sequences((7, 3, 4, 4, 2))
    expected = sequences if dtype == np.uint8 else sequences / np.float32(255)
    path = _write(tmp_path / "s.npy", sequences, 3, layout="sequences", dtype=dtype)
    assert path.read_bytes() == _npy_bytes(expected)
    path = _write(tmp_path / "s.npz", sequences, 2, layout="sequences", dtype=dtype)
    with np.load(path) as stored:
        assert stored.files == ["sequences"]
        np.testing.assert_array_equal(stored["sequences"], expected)
    assert load_sequences(path).shape == (7, 3, 4, 4, 2)


@pytest.mark.parametrize("channels", [1, 3])
def test_official_npz_in_chunks_equals_the_layout_of_np_savez(tmp_path, channels):
    sequences = _sequences((5, 6, 4, 3, channels))
    path = _write(tmp_path / "o.npz", sequences, 2, layout="official-npz", input_length=2)
    with zipfile.ZipFile(path) as archive:
        assert [(i.filename, i.compress_type) for i in archive.infolist()] == [
            ("clips.npy", zipfile.ZIP_STORED),
            ("dims.npy", zipfile.ZIP_STORED),
            ("input_raw_data.npy", zipfile.ZIP_STORED),
        ]
    with np.load(path) as stored:
        raw = stored["input_raw_data"]
        assert raw.dtype == np.float32 and raw.shape == (30, channels, 4, 3)
        np.testing.assert_array_equal(raw, np.transpose(sequences / np.float32(255), (0, 1, 4, 2, 3)).reshape(30, channels, 4, 3))
        np.testing.assert_array_equal(stored["dims"], [[channels, 4, 3]])
        np.testing.assert_array_equal(stored["clips"][1, 4], [26, 4])
    np.testing.assert_array_equal(load_official_npz(path)[:], sequences / np.float32(255))  # memory-mapped read


def test_the_array_writers_convert_in_chunks_to_the_same_files(tmp_path, monkeypatch):
    import predrnn.data.writers as writers

    sequences = _sequences((9, 3, 4, 4, 1)) / 255.0  # float64 in [0, 1]
    whole_mnist = save_mnist_test_seq(tmp_path / "whole.npy", sequences).read_bytes()
    whole_official = np.load(save_official_npz(tmp_path / "whole.npz", sequences))["input_raw_data"]
    monkeypatch.setattr(writers, "_CHUNK_BYTES", 2 * 3 * 16 * 4)  # 2 sequences of float32 per chunk
    assert save_mnist_test_seq(tmp_path / "chunked.npy", sequences).read_bytes() == whole_mnist
    assert whole_mnist == _npy_bytes(np.round(np.transpose(sequences[..., 0], (1, 0, 2, 3)) * 255).astype(np.uint8))
    chunked = np.load(save_official_npz(tmp_path / "chunked.npz", sequences))["input_raw_data"]
    np.testing.assert_array_equal(chunked, whole_official)
    np.testing.assert_array_equal(chunked.reshape(9, 3, 4, 4), sequences[..., 0].astype(np.float32))


def test_incomplete_or_overfull_writes_leave_no_file(tmp_path, unchanged):
    sequences = _sequences((4, 2, 3, 3, 1))
    with unchanged(tmp_path):
        for layout, name in [("mnist-test-seq", "a.npy"), ("official-npz", "b.npz"), ("sequences", "c.npz")]:
            with pytest.raises(DataError, match="3 of 4 sequences were written; the file was not saved"):
                with sequence_writer(tmp_path / name, sequences.shape, layout=layout) as writer:
                    writer.write(sequences[:3])
            with pytest.raises(DataError, match="The chunk does not fit: the file holds 4 sequences"):
                with sequence_writer(tmp_path / name, sequences.shape, layout=layout) as writer:
                    writer.write(sequences[:3])
                    writer.write(sequences[:3])
            with pytest.raises(DataError, match=r"Received: chunk shape \(4, 2, 3, 2, 1\)"):
                with sequence_writer(tmp_path / name, sequences.shape, layout=layout) as writer:
                    writer.write(sequences[..., :2, :])
            with pytest.raises(DataError, match=r"within \[0, 1\]"):
                with sequence_writer(tmp_path / name, sequences.shape, layout=layout) as writer:
                    writer.write(sequences.astype(np.float32))


def test_bad_writer_options_touch_nothing(tmp_path, unchanged):
    with unchanged(tmp_path):
        for kwargs, message in [
            ({"shape": (0, 2, 3, 3)}, "shape must be \\(N, T, H, W\\[, C\\]\\) of positive sizes"),
            ({"layout": "hdf5"}, "layout must be one of"),
            ({"layout": "mnist-test-seq", "shape": (2, 2, 3, 3, 3)}, "gray frames only"),
            ({"layout": "official-npz", "input_length": 2}, "input_length must be in \\[1, T - 1\\] = \\[1, 1\\]"),
            ({"input_length": 1}, "input_length applies to layout 'official-npz' only"),
            ({"dtype": np.float64}, "dtype must be uint8 or float32"),
            ({"path": tmp_path / "x" / "s.h5"}, "writes .npy or .npz files"),
        ]:
            options = {"path": tmp_path / "x" / "s.npz", "shape": (2, 2, 3, 3)} | kwargs
            with pytest.raises(DataError, match=message):
                with sequence_writer(**options):
                    pass
    assert not any(tmp_path.iterdir())
