"""Layouts and channels are never guessed: what a file tells is kept, the rest is given or refused
with the choices; what was read is summarised; a model is never fed frames it was not built for."""

import argparse
import os

import numpy as np
import pytest
from PIL import Image

from predrnn.data import (
    FrameMismatchError,
    LayoutError,
    check_model_frames,
    load_sequences,
    open_file_dataset,
    read_for_model,
    read_sequences,
    save_mnist_test_seq,
)
from predrnn.data.commands import add_data_parser, run_data_command
from predrnn.errors import ConfigError, DataError
from predrnn.jobs.config import DataConfig, load_config


def _clips(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _parse(argv):
    parser = argparse.ArgumentParser(prog="predrnn")
    add_data_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def _gif(path, frames, mode):
    images = [Image.fromarray(f, mode) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], loop=0)
    return path


# ---- 4-D arrays: refused unless the layout is given


@pytest.mark.parametrize("num", [20, 8])
def test_a_4d_array_is_refused_until_its_layout_is_given(tmp_path, unchanged, num):
    # 20 clips of 20 frames, and 8 clips of 20 frames: the file cannot say which axis is time.
    clips = _clips((num, 20, 8, 8))  # (N, T, H, W)
    np.save(tmp_path / "clips.npy", clips)
    with unchanged(tmp_path), pytest.raises(LayoutError) as error:
        load_sequences(tmp_path / "clips.npy")
    message = str(error.value)
    assert f"'clips.npy' holds a 4-D array of shape ({num}, 20, 8, 8)" in message
    assert "--layout NTHW" in message and "TNHW" in message and "data.layout" in message
    assert "8 frames" not in message
    given = load_sequences(tmp_path / "clips.npy", layout="NTHW")
    assert given.shape == (num, 20, 8, 8, 1)
    np.testing.assert_array_equal(np.round(given[3][..., 0] * 255), clips[3])
    swapped = load_sequences(tmp_path / "clips.npy", layout="TNHW")  # what the file would be as (T, N, H, W)
    assert swapped.shape == (20, num, 8, 8, 1)
    np.testing.assert_array_equal(np.round(swapped[3][..., 0] * 255), clips[:, 3])


def test_the_mnist_test_seq_file_keeps_its_known_layout(tmp_path):
    clips = _clips((3, 5, 8, 8))
    path = save_mnist_test_seq(tmp_path / "mnist_test_seq.npy", clips)  # stored (T, N, H, W) = (5, 3, 8, 8)
    loaded = load_sequences(path)
    assert loaded.layout == "TNHW" and loaded.layout_reason == "mnist_test_seq file" and loaded.shape == (3, 5, 8, 8, 1)


@pytest.mark.parametrize(
    "layout, stored_from_nthwc",
    [
        ("NTHWC", lambda a: a),
        ("NTCHW", lambda a: a.transpose(0, 1, 4, 2, 3)),
        ("TNHWC", lambda a: a.transpose(1, 0, 2, 3, 4)),
        ("TNCHW", lambda a: a.transpose(1, 0, 4, 2, 3)),
        ("NCTHW", lambda a: a.transpose(0, 4, 1, 2, 3)),
        ("THWC", lambda a: a[0]),
        ("THW", lambda a: a[0, ..., 0]),
        ("NTHW", lambda a: a[..., 0]),
    ],
)
def test_every_axis_order_reads_the_same_frames(tmp_path, layout, stored_from_nthwc):
    channels = 1 if "C" not in layout else 3
    clips = _clips((2, 4, 6, 5, channels))
    np.save(tmp_path / "a.npy", stored_from_nthwc(clips))
    loaded = load_sequences(tmp_path / "a.npy", layout=layout.lower())
    expected = clips[:1] if "N" not in layout else clips
    assert loaded.layout == layout and loaded.shape == expected.shape
    np.testing.assert_array_equal(np.round(loaded[:] * 255), expected)


def test_5d_arrays_are_channels_last_unless_the_last_axis_cannot_be_channels(tmp_path):
    np.save(tmp_path / "last.npy", _clips((2, 3, 8, 8, 3)))
    assert load_sequences(tmp_path / "last.npy").layout_reason == "5-D, channels last"
    np.save(tmp_path / "first.npy", _clips((2, 3, 3, 8, 8)))
    with pytest.raises(LayoutError, match=r"does not say where the channel axis is. Pass --layout NTHWC, NTCHW"):
        load_sequences(tmp_path / "first.npy")
    assert load_sequences(tmp_path / "first.npy", layout="NTCHW").shape == (2, 3, 8, 8, 3)


def test_layout_is_only_for_arrays(tmp_path):
    _gif(tmp_path / "g.gif", _clips((3, 8, 8)), "L")
    with pytest.raises(DataError, match="apply to .npy/.npz files only"):
        load_sequences(tmp_path / "g.gif", layout="NTHW")
    assert load_sequences(tmp_path / "g.gif", layout="auto").shape == (1, 3, 8, 8, 1)


# ---- channels and sizes


def test_a_grey_gif_loads_as_one_channel_and_a_colour_gif_as_three(tmp_path):
    grey = _gif(tmp_path / "grey.gif", _clips((4, 8, 8)), "L")
    colour = _gif(tmp_path / "colour.gif", _clips((4, 8, 8, 3)), "RGB")
    assert load_sequences(grey).shape == (1, 4, 8, 8, 1)
    assert load_sequences(colour).shape == (1, 4, 8, 8, 3)
    assert read_sequences(grey, channels="rgb").shape == (1, 4, 8, 8, 3)
    assert read_sequences(colour, channels="grey").shape == (1, 4, 8, 8, 1)
    np.testing.assert_array_equal(read_sequences(grey, channels="rgb")[0][..., 0], load_sequences(grey)[0][..., 0])


def test_resize_applies_to_arrays_too(tmp_path):
    np.save(tmp_path / "a.npy", np.full((2, 3, 8, 8, 1), 0.25, np.float32))
    loaded = read_sequences(tmp_path / "a.npy", resize="4x6")
    assert loaded.shape == (2, 3, 4, 6, 1)
    np.testing.assert_allclose(loaded[0], 0.25, atol=1e-6)
    assert read_sequences(tmp_path / "a.npy", resize=16).shape == (2, 3, 16, 16, 1)
    assert read_sequences(tmp_path / "a.npy", resize=()).shape == (2, 3, 8, 8, 1)


# ---- corrupt files in our own words


def test_a_random_bytes_npy_is_reported_in_our_words(tmp_path, unchanged):
    (tmp_path / "noise.npy").write_bytes(np.random.default_rng(0).bytes(4000))
    with unchanged(tmp_path), pytest.raises(DataError) as error:
        load_sequences(tmp_path / "noise.npy")
    message = str(error.value)
    assert "noise.npy' is not a NumPy .npy file" in message
    assert "pickle" not in message.lower()


def test_a_truncated_gif_is_refused_when_opened(tmp_path, unchanged):
    path = _gif(tmp_path / "cut.gif", _clips((6, 16, 16)), "L")
    path.write_bytes(path.read_bytes()[: os.path.getsize(path) * 2 // 3])
    with unchanged(tmp_path):
        for call in (lambda: load_sequences(path), lambda: load_sequences(tmp_path)):  # a file, or a folder of GIFs
            with pytest.raises(DataError) as error:
                call()
            message = str(error.value)
            assert "cut.gif': it is truncated or corrupt" in message and "Re-create" in message
            assert "bytes not processed" not in message  # not Pillow's words


# ---- what was read


def test_the_summary_says_what_was_read(tmp_path):
    np.save(tmp_path / "clips.npy", _clips((20, 20, 8, 8, 3)))
    sequences = read_sequences(tmp_path / "clips.npy", channels="grey", resize=4)
    summary = sequences.summary
    assert summary.line() == (
        "clips.npy: 20 sequences of 20 frames, 4x4, 1 channel (grey), layout NTHWC (5-D, channels last); "
        "resized from 8x8; converted from 3 channels"
    )
    record = summary.to_dict()
    assert record["sequences"] == 20 and record["frames"] == 20 and record["layout"] == "NTHWC"
    assert (record["height"], record["width"], record["channels"]) == (4, 4, 1)
    assert (record["stored_height"], record["stored_channels"], record["stored_dtype"]) == (8, 3, "uint8")
    assert record["path"] == str((tmp_path / "clips.npy").resolve())


def test_frame_folders_of_different_lengths_summarise_the_range(tmp_path):
    for name, count in (("a", 3), ("b", 5)):
        (tmp_path / "f" / name).mkdir(parents=True)
        for t in range(count):
            Image.fromarray(_clips((8, 8), t)).save(tmp_path / "f" / name / f"{t}.png")
    summary = load_sequences(tmp_path / "f").summary
    assert summary.frames == "3-5" and summary.to_dict()["frames"] == [3, 5] and summary.channels == 1


# ---- a model is fed frames of its own size and channels


def test_frames_of_another_size_or_channel_count_are_refused_naming_the_fix(tmp_path):
    np.save(tmp_path / "small.npy", _clips((2, 3, 32, 32, 3)))
    sequences = load_sequences(tmp_path / "small.npy")
    check_model_frames(sequences, (32, 32, 3))
    check_model_frames(sequences, (None, None, 3))
    with pytest.raises(FrameMismatchError) as error:
        check_model_frames(sequences, (64, 64, 1))
    assert str(error.value) == (
        "The model takes 64x64 frames with 1 channel; small.npy holds 32x32 frames with 3 channels. "
        "Pass --resize 64 (config: data.resize = [64, 64]) and --channels grey (config: data.channels = 'grey')."
    )
    with pytest.raises(FrameMismatchError, match=r"Pass --channels rgb"):
        check_model_frames(read_sequences(tmp_path / "small.npy", channels="grey"), (32, 32, 3))
    with pytest.raises(FrameMismatchError, match=r"Pass --resize 64x48 \(config: data.resize = \[64, 48\]\)\.$"):
        check_model_frames(np.zeros((1, 2, 32, 32, 3), np.float32), (64, 48, 3))


# ---- the config keys


def test_file_datasets_read_with_the_config_keys_and_record_the_split(tmp_path):
    np.save(tmp_path / "clips.npy", _clips((20, 20, 8, 8)))
    config = load_config(
        "smoke", ['data.dataset="file"', f'data.path="{tmp_path / "clips.npy"}"', 'data.layout="NTHW"', "data.resize=[16, 16]"]
    )
    files = open_file_dataset(config.data, seed=0)
    assert len(files.train) == 18 and len(files.validation) == 2 and files.train.frame_shape == (16, 16, 1)
    assert files.line().endswith("; resized from 8x8; split random: 18 train, 2 validation")
    assert files.to_dict()["read"]["layout"] == "NTHW" and files.to_dict()["validation_sequences"] == 2
    unsplit = open_file_dataset(
        DataConfig(dataset="file", path=str(tmp_path / "clips.npy"), layout="TNHW", validation_fraction=0.0)
    )
    assert unsplit.validation is None and len(unsplit.train) == 20


def test_the_kth_split_by_person_over_nested_frame_folders(tmp_path):
    for person in (1, 2, 17):
        for action in ("boxing", "walking"):
            folder = tmp_path / "kth" / action / f"person{person:02d}_{action}_d1"
            folder.mkdir(parents=True)
            for t in range(4):
                Image.fromarray(_clips((8, 8), t)).save(folder / f"image_{t:04d}.png")
    files = open_file_dataset(DataConfig(dataset="file", path=str(tmp_path / "kth"), split="kth_person"))
    assert sorted(files.validation.names) == ["boxing/person17_boxing_d1", "walking/person17_walking_d1"]
    assert len(files.train) == 4 and files.line().endswith("split kth_person: 4 train, 2 validation")


@pytest.mark.parametrize(
    "override, message",
    [
        ('data.layout="NTXW"', "data.layout names the axes .* Received: layout='NTXW'"),
        ('data.channels="gray scale"', "data.channels must be one of auto, grey, rgb"),
        ("data.resize=[10, 10]", r"data.resize = \[10, 10\] is not divisible by model.patch_size"),
        ("data.resize=[4, 4, 4]", r"data.resize must be \[\] \(keep\), \[S\] or \[H, W\]"),
        ('data.split="people"', "data.split must be one of random, kth_person"),
    ],
)
def test_bad_data_keys_are_config_errors(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("smoke", ['data.dataset="file"', 'data.path="x.npy"', "model.patch_size=4", override])


def test_file_keys_on_moving_mnist_are_refused():
    with pytest.raises(ConfigError, match="apply to dataset = 'file'"):
        load_config("smoke", ['data.channels="rgb"'])


# ---- the data commands


def test_data_info_prints_one_line_and_takes_the_reading_options(tmp_path, capsys):
    np.save(tmp_path / "clips.npy", _clips((20, 20, 8, 8)))
    with pytest.raises(LayoutError, match="--layout NTHW"):
        run_data_command(_parse(["data", "info", str(tmp_path / "clips.npy")]))
    assert run_data_command(_parse(["data", "info", str(tmp_path / "clips.npy"), "--layout", "NTHW", "--resize", "4"])) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == ["clips.npy: 20 sequences of 20 frames, 4x4, 1 channel (grey), layout NTHW (given); resized from 8x8"]


def test_data_convert_turns_gifs_into_one_channels_last_array(tmp_path, capsys, unchanged):
    (tmp_path / "gifs").mkdir()
    clips = [_clips((6, 8, 8), seed) for seed in range(3)]
    for n, frames in enumerate(clips):
        _gif(tmp_path / "gifs" / f"clip{n}.gif", frames, "L")
    out = tmp_path / "clips.npy"
    assert run_data_command(_parse(["data", "convert", str(tmp_path / "gifs"), "--out", str(out)])) == 0
    stored = np.load(out)
    assert stored.dtype == np.uint8 and stored.shape == (3, 6, 8, 8, 1)
    np.testing.assert_array_equal(stored[..., 0], np.stack(clips))
    assert load_sequences(out).layout == "NTHWC"  # read back with no option
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [
        "gifs: 3 sequences of 6 frames, 8x8, 1 channel (grey), layout video (a file per sequence)",
        f"Wrote {out}: uint8 (N, T, H, W, C) = (3, 6, 8, 8, 1).",
    ]
    with unchanged(tmp_path), pytest.raises(DataError, match="already exists; pass --overwrite"):
        run_data_command(_parse(["data", "convert", str(tmp_path / "gifs"), "--out", str(out)]))


def test_data_convert_of_uneven_sequences_needs_frames(tmp_path, unchanged):
    for name, count in (("a", 3), ("b", 5)):
        (tmp_path / "f" / name).mkdir(parents=True)
        for t in range(count):
            Image.fromarray(_clips((8, 8, 3), t)).save(tmp_path / "f" / name / f"{t}.png")
    out = tmp_path / "f.npy"
    with unchanged(tmp_path), pytest.raises(DataError, match="have 3 to 5 frames.*Pass --frames N \\(at most 3\\)"):
        run_data_command(_parse(["data", "convert", str(tmp_path / "f"), "--out", str(out)]))
    args = ["data", "convert", str(tmp_path / "f"), "--out", str(out), "--frames", "3", "--channels", "grey", "--resize", "4"]
    run_data_command(_parse(args))
    assert np.load(out).shape == (2, 3, 4, 4, 1)


def test_read_for_model_takes_the_options_then_the_runs_settings(tmp_path):
    np.save(tmp_path / "clips.npy", _clips((20, 20, 8, 8)))
    trained = load_config(
        "smoke", ['data.dataset="file"', f'data.path="{tmp_path / "clips.npy"}"', 'data.layout="NTHW"', "data.resize=[16]"]
    )
    sequences = read_for_model(tmp_path / "clips.npy", (16, 16, 1), trained)  # read as the run read its training file
    assert sequences.layout == "NTHW" and sequences.frame_shape == (16, 16, 1)
    assert read_for_model(tmp_path / "clips.npy", (8, 8, 1), trained, layout="TNHW", resize=()).layout == "TNHW"
    with pytest.raises(LayoutError, match="--layout NTHW"):
        read_for_model(tmp_path / "clips.npy", (8, 8, 1), load_config("smoke"))  # a Moving MNIST run: auto
    with pytest.raises(FrameMismatchError, match="The model takes 16x16 frames with 3 channels; clips.npy holds 16x16"):
        read_for_model(tmp_path / "clips.npy", (16, 16, 3), trained)
    read_for_model(tmp_path / "clips.npy", None, trained)  # a model not built yet takes any frames
