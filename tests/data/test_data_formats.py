"""Write-then-read round trips for every format, lazy loading, indexing and views."""

import pickle
import tracemalloc
import zipfile

import numpy as np
import pytest
from PIL import Image

from predrnn.data import (
    SequenceArray,
    as_sequence_array,
    kth_person_id,
    load_image_folder,
    load_npy,
    load_official_npz,
    load_sequences,
    load_video,
    save_mnist_test_seq,
    save_official_npz,
    save_sequences,
    split_kth_by_person,
)
from predrnn.data.formats import LayoutError
from predrnn.errors import DataError


def _uint8_sequences(shape=(3, 5, 8, 8), seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _float_sequences(shape=(3, 5, 8, 8, 1), seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


# ---------------------------------------------------------------- arrays


def test_mnist_test_seq_round_trip(tmp_path):
    sequences = _float_sequences((4, 6, 8, 8, 1))
    path = save_mnist_test_seq(tmp_path / "mnist_test_seq.npy", sequences)
    stored = np.load(path)
    assert stored.dtype == np.uint8 and stored.shape == (6, 4, 8, 8)  # (T, N, H, W)
    loaded = load_sequences(path)
    assert loaded.layout == "TNHW" and "mnist_test_seq" in loaded.source
    assert loaded.shape == (4, 6, 8, 8, 1) and loaded.dtype == np.float32
    np.testing.assert_allclose(loaded[:], np.round(sequences * 255) / 255, atol=1e-6)
    assert isinstance(loaded.raw, np.memmap)


def test_a_4d_array_under_another_name_needs_its_layout(tmp_path):
    sequences = _uint8_sequences((6, 3, 4, 4))  # 6 sequences of 3 frames
    save_mnist_test_seq(tmp_path / "renamed.npy", sequences)  # stored (3, 6, 4, 4)
    with pytest.raises(LayoutError, match=r"renamed.npy' holds a 4-D array of shape \(3, 6, 4, 4\).*--layout NTHW .* TNHW"):
        load_sequences(tmp_path / "renamed.npy")
    given = load_sequences(tmp_path / "renamed.npy", layout="TNHW")
    assert given.layout == "TNHW" and given.layout_reason == "given"
    np.testing.assert_allclose(given[:, :, :, :, 0] * 255, sequences, atol=1e-4)
    forced = load_sequences(tmp_path / "renamed.npy", layout="NTHW")
    assert forced.shape == (3, 6, 4, 4, 1)


def test_official_npz_round_trip_and_layout(tmp_path):
    sequences = _float_sequences((3, 6, 8, 8, 1))
    path = save_official_npz(tmp_path / "moving-mnist-test.npz", sequences, input_length=4)
    with np.load(path) as official:
        assert set(official.files) == {"clips", "dims", "input_raw_data"}
        assert official["clips"].dtype == np.int32 and official["clips"].shape == (2, 3, 2)
        np.testing.assert_array_equal(official["clips"][0], [[0, 4], [6, 4], [12, 4]])
        np.testing.assert_array_equal(official["clips"][1], [[4, 2], [10, 2], [16, 2]])
        np.testing.assert_array_equal(official["dims"], [[1, 8, 8]])
        assert official["dims"].dtype == np.int32
        raw = official["input_raw_data"]
        assert raw.dtype == np.float32 and raw.shape == (18, 1, 8, 8)
    loaded = load_sequences(path)
    assert loaded.layout == "official-npz" and loaded.shape == (3, 6, 8, 8, 1)
    np.testing.assert_array_equal(loaded[:], sequences)
    assert isinstance(loaded.raw, np.memmap)  # stored member, mapped at its zip offset


def test_official_npz_with_scattered_clips_and_output_raw_data(tmp_path):
    rng = np.random.default_rng(0)
    inputs = rng.random((10, 3, 4, 4), dtype=np.float32)
    outputs = rng.random((10, 3, 4, 4), dtype=np.float32)
    clips = np.array([[[5, 2], [0, 3]], [[1, 2], [6, 2]]], np.int32)  # 2 clips, out of order
    path = tmp_path / "two.npz"
    np.savez(path, clips=clips, dims=np.array([[3, 4, 4], [3, 4, 4]], np.int32), input_raw_data=inputs, output_raw_data=outputs)
    loaded = load_official_npz(path)
    assert list(loaded.lengths) == [4, 5] and loaded.shape[1] is None
    expected0 = np.concatenate([inputs[5:7], outputs[1:3]]).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(loaded[0], expected0)
    expected1 = np.concatenate([inputs[0:3], outputs[6:8]]).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(loaded[1], expected1)
    np.testing.assert_array_equal(loaded[1, 2:4], expected1[2:4])  # window across the two clips
    np.testing.assert_array_equal(loaded[[0, 1], 0:4], np.stack([expected0, expected1[:4]]))


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
@pytest.mark.parametrize("kind", ["uint8", "float32", "float64"])
def test_generic_array_round_trip(tmp_path, suffix, kind):
    if kind == "uint8":
        sequences = _uint8_sequences((3, 5, 8, 8, 3))
        expected = sequences / 255
    else:
        sequences = _float_sequences((3, 5, 8, 8, 3)).astype(kind)
        expected = sequences
    path = save_sequences(tmp_path / f"seq{suffix}", sequences)
    loaded = load_sequences(path)
    assert loaded.shape == (3, 5, 8, 8, 3) and loaded.original_dtype == np.dtype(kind)
    assert loaded.layout == "NTHWC"
    np.testing.assert_allclose(loaded[:], expected, atol=1e-6)
    assert loaded[:].dtype == np.float32
    assert isinstance(loaded.raw, np.memmap)


def test_4d_generic_array_gets_one_channel(tmp_path):
    sequences = _uint8_sequences((5, 3, 4, 4))
    np.save(tmp_path / "a.npy", sequences)
    loaded = load_sequences(tmp_path / "a.npy", layout="NTHW")
    assert loaded.layout == "NTHW" and loaded.shape == (5, 3, 4, 4, 1)


def test_compressed_npz_is_read_on_first_access(tmp_path):
    sequences = _uint8_sequences((2, 3, 4, 4, 1))
    np.savez_compressed(tmp_path / "c.npz", sequences=sequences)
    loaded = load_sequences(tmp_path / "c.npz")
    assert loaded.raw is None and loaded.shape == (2, 3, 4, 4, 1)
    np.testing.assert_allclose(loaded[1], sequences[1] / 255, atol=1e-7)
    assert isinstance(loaded.raw, np.ndarray)


def test_npz_member_is_chosen_by_key(tmp_path):
    np.savez(tmp_path / "k.npz", a=_uint8_sequences((2, 3, 4, 4)), b=_uint8_sequences((3, 3, 4, 4)))
    with pytest.raises(DataError, match=r"several arrays \['a', 'b'\]; pass key=NAME"):
        load_sequences(tmp_path / "k.npz")
    assert len(load_sequences(tmp_path / "k.npz", key="b", layout="NTHW")) == 3


def test_declared_value_range_is_rescaled(tmp_path):
    raw = np.linspace(0, 255, 2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4, 1)
    np.save(tmp_path / "f.npy", raw)
    loaded = load_sequences(tmp_path / "f.npy", value_range=(0, 255))
    np.testing.assert_allclose(loaded[:], raw / 255, atol=1e-6)
    assert loaded.original_range == (0.0, 255.0)
    twelve_bit = np.full((2, 3, 4, 4, 1), 4095, np.uint16)
    np.save(tmp_path / "u16.npy", twelve_bit)
    np.testing.assert_array_equal(load_sequences(tmp_path / "u16.npy", value_range=(0, 4095))[0], 1.0)


def test_channel_conversion_of_arrays():
    rgb = np.zeros((1, 2, 2, 2, 3), np.float32)
    rgb[..., 0] = 1.0  # pure red
    gray = as_sequence_array(rgb, channels=1)
    assert gray.shape == (1, 2, 2, 2, 1)
    np.testing.assert_allclose(gray[0], 0.299, atol=1e-6)
    back = as_sequence_array(rgb[..., :1], channels=3)
    assert back.shape[-1] == 3 and np.all(back[0] == 1.0)


# ---------------------------------------------------------------- lazy loading


def test_a_large_npy_is_memory_mapped_and_read_only_where_indexed(tmp_path):
    # A 2 GB (20, 25_000, 64, 64) uint8 file written sparsely: loading it and reading two
    # sequences must not touch the rest (tracemalloc sees only a few small arrays).
    path = tmp_path / "mnist_test_seq_big.npy"
    shape = (20, 25_000, 64, 64)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": shape})
        header = f.tell()
        f.seek(header + int(np.prod(shape)) - 1)
        f.write(b"\x07")  # the last pixel of the last sequence
    tracemalloc.start()
    try:
        loaded = load_sequences(path)
        first, last = loaded[0], loaded[-1]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert loaded.shape == (25_000, 20, 64, 64, 1) and isinstance(loaded.raw, np.memmap)
    assert first.shape == (20, 64, 64, 1) and first.max() == 0
    assert last[-1, -1, -1, 0] == pytest.approx(7 / 255)
    assert peak < 20 * 2**20, f"loading used {peak / 2**20:.1f} MiB"


def test_a_stored_npz_member_is_memory_mapped_at_its_offset(tmp_path):
    sequences = _uint8_sequences((40, 10, 32, 32, 1))
    path = save_sequences(tmp_path / "m.npz", sequences)
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("sequences.npy").compress_type == zipfile.ZIP_STORED
    tracemalloc.start()
    try:
        loaded = load_sequences(path)
        one = loaded[17]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(loaded.raw, np.memmap)
    np.testing.assert_allclose(one, sequences[17] / 255, atol=1e-7)
    assert peak < sequences.nbytes / 4  # far less than the member's 400 kB


def test_a_pickled_sequence_array_reopens_the_file(tmp_path):
    path = save_sequences(tmp_path / "p.npy", _uint8_sequences((3, 4, 8, 8, 1)))
    loaded = load_sequences(path)
    copy = pickle.loads(pickle.dumps(loaded))
    assert isinstance(copy.raw, np.memmap) and copy.raw.filename == loaded.raw.filename
    assert len(pickle.dumps(loaded)) < 2000  # file coordinates, not data
    np.testing.assert_array_equal(copy[:], loaded[:])


# ---------------------------------------------------------------- indexing and views


def test_indexing_forms():
    data = _float_sequences((5, 6, 4, 4, 1))
    seq = as_sequence_array(data)
    np.testing.assert_array_equal(seq[2], data[2])
    np.testing.assert_array_equal(seq[-1], data[-1])
    np.testing.assert_array_equal(seq[1:4], data[1:4])
    np.testing.assert_array_equal(seq[np.array([4, 0, 2])], data[[4, 0, 2]])
    np.testing.assert_array_equal(seq[np.array([True, False, True, False, False])], data[[0, 2]])
    np.testing.assert_array_equal(seq[[1, 3], 2:5], data[[1, 3], 2:5])
    np.testing.assert_array_equal(seq[1, 3], data[1, 3])
    np.testing.assert_array_equal(seq[0, ::2], data[0, ::2])
    np.testing.assert_array_equal(np.asarray(seq), data)
    assert seq[5:].shape == (0, 6, 4, 4, 1)
    with pytest.raises(IndexError):
        seq[5]
    np.testing.assert_array_equal(seq[1:3, 2, 0:2, 1], data[1:3, 2, 0:2, 1])
    np.testing.assert_array_equal(seq[4, 1:3, ..., 0], data[4, 1:3, ..., 0])


def test_subset_views_share_the_storage(tmp_path):
    path = save_sequences(tmp_path / "v.npy", _uint8_sequences((6, 3, 4, 4, 1)))
    loaded = load_sequences(path)
    view = loaded.subset([5, 1])
    assert len(view) == 2 and view.raw is loaded.raw
    np.testing.assert_array_equal(view[0], loaded[5])
    np.testing.assert_array_equal(view.indices, [5, 1])
    np.testing.assert_array_equal(view.subset([1])[0], loaded[1])


# ---------------------------------------------------------------- images and videos


def _write_frames(folder, frames, mode="L", pattern="frame_{:d}.png"):
    folder.mkdir(parents=True)
    for t, frame in enumerate(frames):
        Image.fromarray(frame, mode=None).convert(mode).save(folder / pattern.format(t))


def test_image_folder_round_trip_in_natural_order(tmp_path):
    sequences = _uint8_sequences((2, 12, 6, 6))  # 12 frames: frame_10 must follow frame_9
    for n, name in enumerate(["person02_walking_d1", "person18_running_d2"]):
        _write_frames(tmp_path / "kth" / name, sequences[n])
    loaded = load_sequences(tmp_path / "kth")
    assert loaded.layout == "image-folder" and loaded.shape == (2, 12, 6, 6, 1)
    assert loaded.names == ["person02_walking_d1", "person18_running_d2"]
    np.testing.assert_allclose(loaded[:], sequences[..., None] / 255, atol=1e-7)
    train, test = split_kth_by_person(loaded)
    assert train.names == ["person02_walking_d1"] and test.names == ["person18_running_d2"]
    assert kth_person_id("person25_boxing_d4_uncomp") == 25


def test_image_folder_color_frames_channels_and_resize(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (3, 8, 6, 3), dtype=np.uint8)
    folder = tmp_path / "clip"
    folder.mkdir()
    for t, frame in enumerate(rgb):
        Image.fromarray(frame).save(folder / f"{t:03d}.png")
    loaded = load_image_folder(folder)  # loose frames: one sequence named after the folder
    assert loaded.shape == (1, 3, 8, 6, 3) and loaded.names == ["clip"]
    np.testing.assert_allclose(loaded[0], rgb / 255, atol=1e-7)
    gray = load_image_folder(folder, channels=1)
    luma = (rgb.astype(np.float32) / 255) @ np.array([0.299, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(gray[0][..., 0], luma, atol=1e-6)
    small = load_image_folder(folder, resize=(4, 3))
    assert small.shape == (1, 3, 4, 3, 3)


def test_ragged_image_sequences(tmp_path):
    _write_frames(tmp_path / "r" / "a", _uint8_sequences((1, 4, 5, 5))[0])
    _write_frames(tmp_path / "r" / "b", _uint8_sequences((1, 7, 5, 5))[0])
    loaded = load_sequences(tmp_path / "r")
    assert loaded.shape == (2, None, 5, 5, 1) and list(loaded.lengths) == [4, 7]
    assert loaded[[0, 1], 0:3].shape == (2, 3, 5, 5, 1)
    with pytest.raises(DataError, match="different lengths"):
        loaded[:]


def test_gif_round_trip(tmp_path):
    import imageio.v3 as iio

    sequences = _uint8_sequences((2, 5, 8, 8))
    folder = tmp_path / "gifs"
    folder.mkdir()
    for n, frames in enumerate(sequences):
        iio.imwrite(folder / f"seq{n}.gif", frames, loop=0)
    one = load_sequences(folder / "seq1.gif", channels=1)
    assert one.layout == "video" and one.shape == (1, 5, 8, 8, 1)
    np.testing.assert_allclose(one[0], sequences[1][..., None] / 255, atol=1e-6)
    both = load_sequences(folder, channels=1)
    assert both.names == ["seq0", "seq1"]
    np.testing.assert_allclose(both[:], sequences[..., None] / 255, atol=1e-6)
    assert load_video(folder / "seq0.gif").shape == (1, 5, 8, 8, 1)  # a grey GIF is grey
    rgb = load_video(folder / "seq0.gif", channels="rgb")
    assert rgb.shape == (1, 5, 8, 8, 3)
    assert load_video(folder / "seq0.gif", resize=(4, 4), channels=1).shape == (1, 5, 4, 4, 1)


def test_mp4_without_ffmpeg_says_how_to_install_it(tmp_path):
    import importlib.util

    if importlib.util.find_spec("imageio_ffmpeg") or importlib.util.find_spec("av"):
        pytest.skip("a video backend is installed")
    (tmp_path / "clip.mp4").write_bytes(b"\x00" * 64)
    with pytest.raises(DataError, match="pip install imageio-ffmpeg"):
        load_sequences(tmp_path / "clip.mp4")


def test_sequence_array_is_exported():
    assert SequenceArray.dtype == np.float32
    assert isinstance(load_npy, type(load_sequences))
