"""Every bad input raises one clear DataError naming the file, and nothing on disk changes."""

import numpy as np
import pytest
from PIL import Image

from predrnn.data import (
    VideoPredictionDataset,
    load_image_folder,
    load_official_npz,
    load_sequences,
    save_mnist_test_seq,
    save_official_npz,
    save_sequences,
)
from predrnn.errors import DataError


def _good_npy(tmp_path, name="good.npy", shape=(3, 4, 4, 4, 1)):
    return save_sequences(tmp_path / name, np.zeros(shape, np.uint8))


def test_missing_file(tmp_path, unchanged):
    with unchanged(tmp_path), pytest.raises(DataError, match="not found: .*nothing.npy"):
        load_sequences(tmp_path / "nothing.npy")


def test_truncated_npy(tmp_path, unchanged):
    path = _good_npy(tmp_path)
    path.write_bytes(path.read_bytes()[:-10])
    with (
        unchanged(tmp_path),
        pytest.raises(DataError, match="good.npy' is truncated: its header announces .* \\(192 bytes\\) but the file holds 182"),
    ):
        load_sequences(path)


def test_corrupt_npz(tmp_path, unchanged):
    (tmp_path / "noise.npz").write_bytes(np.random.default_rng(0).bytes(500))
    with unchanged(tmp_path), pytest.raises(DataError, match="noise.npz.*not a .npz"):
        load_sequences(tmp_path / "noise.npz")


def test_truncated_npz(tmp_path, unchanged):
    path = save_official_npz(tmp_path / "cut.npz", np.zeros((2, 4, 4, 4, 1), np.float32))
    path.write_bytes(path.read_bytes()[:300])
    with unchanged(tmp_path), pytest.raises(DataError, match="cut.npz.*truncated"):
        load_sequences(path)


def test_npy_with_a_text_header_that_is_not_numpy(tmp_path, unchanged):
    (tmp_path / "fake.npy").write_text("hello, I am not an array")
    with unchanged(tmp_path), pytest.raises(DataError, match="fake.npy"):
        load_sequences(tmp_path / "fake.npy")


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((3, 4, 4, 4), np.complex64), "dtype complex64"),
        (np.zeros((3, 4, 4, 4), np.int32), "int32 has no default value range. Pass value_range"),
        (np.zeros((3, 4, 4, 4), bool), "unsupported dtype bool"),
        (np.zeros((4, 4, 4), np.uint8), "holds a 3-D array of shape \\(4, 4, 4\\); .* Pass --layout THW"),
        (np.zeros((2, 3, 4, 4, 1, 1), np.uint8), "holds a 6-D array"),
        (np.zeros((0, 4, 4, 4), np.uint8), "is empty"),
    ],
)
def test_wrong_dtype_or_rank(tmp_path, unchanged, array, message):
    np.save(tmp_path / "bad.npy", array)
    with unchanged(tmp_path), pytest.raises(DataError, match=message):
        load_sequences(tmp_path / "bad.npy")


def test_layout_rank_mismatch_and_unknown_layout(tmp_path, unchanged):
    path = _good_npy(tmp_path)
    with unchanged(tmp_path):
        with pytest.raises(DataError, match=r"has 5 axes \(3, 4, 4, 4, 1\) but layout TNHW names 4. Pass --layout NTHWC"):
            load_sequences(path, layout="TNHW")
        with pytest.raises(DataError, match="layout names the axes .* Received: layout='CHW'"):
            load_sequences(path, layout="CHW")


def test_sequences_shorter_than_context_plus_horizon(tmp_path, unchanged):
    path = _good_npy(tmp_path, "short.npy", shape=(3, 6, 4, 4, 1))
    with (
        unchanged(tmp_path),
        pytest.raises(
            DataError, match=r"short.npy.*sequence 0 .*has 6 frames, fewer than input_length \+ output_length = 5 \+ 5 = 10"
        ),
    ):
        VideoPredictionDataset(load_sequences(path), 1, input_length=5, output_length=5)


def test_nan_and_inf_are_reported_with_the_sequence(tmp_path, unchanged):
    data = np.zeros((3, 4, 4, 4, 1), np.float32)
    data[2, 1, 0, 0, 0] = np.inf
    save_sequences(tmp_path / "inf.npy", np.zeros_like(data))
    np.save(tmp_path / "inf.npy", data)  # bypass the writer's own check
    loaded = load_sequences(tmp_path / "inf.npy")  # sequence 0 is fine, so opening works
    with unchanged(tmp_path):
        with pytest.raises(DataError, match="inf.npy.*sequence 2 contains NaN or inf"):
            loaded[2]
        with pytest.raises(DataError, match="sequence 2 contains NaN or inf"):
            VideoPredictionDataset(loaded, 3, 2, 2, shuffle=False)[0]
    data[0, 0, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", data)
    with unchanged(tmp_path), pytest.raises(DataError, match="nan.npy.*sequence 0 contains NaN"):
        load_sequences(tmp_path / "nan.npy")  # the first sequence is checked when opening


def test_values_outside_the_declared_range(tmp_path, unchanged):
    np.save(tmp_path / "bytes_as_float.npy", np.full((2, 3, 4, 4, 1), 200.0, np.float32))
    with unchanged(tmp_path):
        with pytest.raises(DataError, match=r"bytes_as_float.npy.*outside the declared range \[0, 1\].*max 200.*value_range"):
            load_sequences(tmp_path / "bytes_as_float.npy")
        with pytest.raises(DataError, match=r"outside the declared range \[0, 100\]"):
            load_sequences(tmp_path / "bytes_as_float.npy", value_range=(0, 100))
        with pytest.raises(DataError, match="value_range must be finite with hi > lo"):
            load_sequences(tmp_path / "bytes_as_float.npy", value_range=(1, 0))


def test_official_npz_with_missing_keys_or_bad_clips(tmp_path, unchanged):
    np.savez(tmp_path / "partial.npz", clips=np.zeros((2, 1, 2), np.int32), dims=np.array([[1, 4, 4]]))
    raw = np.zeros((4, 1, 4, 4), np.float32)
    np.savez(tmp_path / "clips.npz", clips=np.array([[[0, 2]], [[2, 5]]]), dims=np.array([[1, 4, 4]]), input_raw_data=raw)
    np.savez(tmp_path / "dims.npz", clips=np.array([[[0, 2]], [[2, 2]]]), dims=np.array([[3, 4, 4]]), input_raw_data=raw)
    with unchanged(tmp_path):
        with pytest.raises(DataError, match=r"partial.npz.*missing \['input_raw_data'\]"):
            load_official_npz(tmp_path / "partial.npz")
        with pytest.raises(DataError, match="clips.npz': some output clips fall outside the 4 stored frames"):
            load_sequences(tmp_path / "clips.npz")
        with pytest.raises(DataError, match=r"dims.npz': input_raw_data must be .* = \(3, 4, 4\)"):
            load_sequences(tmp_path / "dims.npz")


def _frame(folder, name, size=(6, 6), value=0):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size[::-1], value, np.uint8)).save(folder / name)


def test_inconsistent_frame_sizes_in_a_folder(tmp_path, unchanged):
    _frame(tmp_path / "seqs" / "a", "0.png")
    _frame(tmp_path / "seqs" / "a", "1.png")
    _frame(tmp_path / "seqs" / "b", "0.png", size=(8, 6))
    _frame(tmp_path / "late" / "a", "0.png")
    _frame(tmp_path / "late" / "a", "1.png", size=(5, 5))
    with unchanged(tmp_path):
        with pytest.raises(DataError, match=r"Inconsistent frame sizes: .*b/0.png' is 8x6 .* is 6x6.*resize=\(H, W\)"):
            load_sequences(tmp_path / "seqs")
        late = load_sequences(tmp_path / "late")  # only first frames are checked when opening
        with pytest.raises(DataError, match=r"a/1.png' is 5x5"):
            late[0]
    assert load_sequences(tmp_path / "seqs", resize=(6, 6))[1].shape == (1, 6, 6, 1)


def test_empty_folders(tmp_path, unchanged):
    (tmp_path / "empty").mkdir()
    (tmp_path / "hollow" / "seq0").mkdir(parents=True)
    with unchanged(tmp_path):
        with pytest.raises(DataError, match="The folder .*empty' is empty"):
            load_sequences(tmp_path / "empty")
        with pytest.raises(DataError, match="sequence folder .*seq0' holds no frame images"):
            load_image_folder(tmp_path / "hollow")


def test_corrupt_image_and_mixed_folder(tmp_path, unchanged):
    _frame(tmp_path / "bad" / "s", "0.png")
    (tmp_path / "bad" / "s" / "1.png").write_bytes(b"\x89PNG not really")
    _frame(tmp_path / "mixed", "0.png")
    _frame(tmp_path / "mixed" / "sub", "0.png")
    with unchanged(tmp_path):
        bad = load_sequences(tmp_path / "bad")
        with pytest.raises(DataError, match="Cannot read the image .*1.png"):
            bad[0]
        with pytest.raises(DataError, match="both frame images and sequence folders"):
            load_sequences(tmp_path / "mixed")


def test_corrupt_gif(tmp_path, unchanged):
    (tmp_path / "broken.gif").write_bytes(b"GIF89a" + bytes(20))
    with unchanged(tmp_path), pytest.raises(DataError, match="broken.gif"):
        load_sequences(tmp_path / "broken.gif")


def test_unsupported_files_and_options(tmp_path, unchanged):
    (tmp_path / "notes.txt").write_text("x")
    path = _good_npy(tmp_path)
    with unchanged(tmp_path):
        with pytest.raises(DataError, match="Unsupported data file .*notes.txt"):
            load_sequences(tmp_path / "notes.txt")
        with pytest.raises(DataError, match="resize must be S, \\(H, W\\) or 'HxW'"):
            load_sequences(path, resize=(2, 2, 2))
        with pytest.raises(DataError, match="channels must be 'auto' \\(as stored\\), 'grey' \\(1 channel\\) or 'rgb'"):
            load_sequences(path, channels=2)


def test_writers_refuse_to_overwrite_and_leave_no_temporary_files(tmp_path, unchanged):
    data = np.zeros((2, 4, 4, 4, 1), np.float32)
    for name, writer in [("a.npy", save_mnist_test_seq), ("b.npz", save_official_npz), ("c.npy", save_sequences)]:
        writer(tmp_path / name, data)
        with unchanged(tmp_path), pytest.raises(DataError, match=f"{name}' already exists; pass overwrite=True"):
            writer(tmp_path / name, data + 0.5)
        writer(tmp_path / name, data + 0.5, overwrite=True)
        layout = "TNHW" if name == "a.npy" else None  # save_mnist_test_seq's (T, N, H, W), under another name
        assert load_sequences(tmp_path / name, layout=layout)[0].max() == pytest.approx(0.5, abs=1 / 255)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "b.npz", "c.npy"]


def test_writers_reject_bad_sequences_without_touching_disk(tmp_path, unchanged):
    with unchanged(tmp_path):
        with pytest.raises(DataError, match=r"within \[0, 1\]. Received: min 2, max 2"):
            save_mnist_test_seq(tmp_path / "x.npy", np.full((1, 2, 4, 4), 2.0))
        with pytest.raises(DataError, match="NaN or inf"):
            save_official_npz(tmp_path / "x.npz", np.full((1, 2, 4, 4), np.nan))
        with pytest.raises(DataError, match="gray frames only"):
            save_mnist_test_seq(tmp_path / "x.npy", np.zeros((1, 2, 4, 4, 3), np.uint8))
        with pytest.raises(DataError, match="input_length must be in \\[1, T - 1\\] = \\[1, 1\\]"):
            save_official_npz(tmp_path / "x.npz", np.zeros((1, 2, 4, 4), np.uint8), input_length=2)
        with pytest.raises(DataError, match="writes .npy or .npz files"):
            save_sequences(tmp_path / "x.h5", np.zeros((1, 2, 4, 4), np.uint8))
        with pytest.raises(DataError, match="Received: shape \\(4, 4\\)"):
            save_sequences(tmp_path / "x.npy", np.zeros((4, 4), np.uint8))
    assert not any(tmp_path.iterdir())


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_sequences(tmp_path / "keep.npy", np.zeros((1, 2, 4, 4), np.uint8))
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", explode)
    with pytest.raises(OSError, match="disk full"):
        save_sequences(path, np.ones((1, 2, 4, 4), np.uint8), overwrite=True)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.npy"]


def test_check_values_scans_a_whole_file(tmp_path):
    data = np.zeros((4, 3, 4, 4, 1), np.float32)
    data[3, 2, 3, 3, 0] = -0.25
    np.save(tmp_path / "late.npy", data)
    loaded = load_sequences(tmp_path / "late.npy")  # opening checks sequence 0 only
    with pytest.raises(DataError, match=r"late.npy.*sequence 3 has values outside .* min -0.25"):
        loaded.check_values()
