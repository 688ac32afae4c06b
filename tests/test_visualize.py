"""Pictures: GIFs, comparison strips and plots are written, readable and of the right size."""

import os

import imageio.v3 as iio
import numpy as np
import pytest

from predrnn import visualize
from predrnn.metrics import summarize
from predrnn.schedules import ReferenceSchedule, ReverseSchedule


def distinct_frames(rng, time, height=8, width=8, channels=1):
    """Random frames; every frame differs, so the GIF writer keeps them all."""
    return rng.random((time, height, width, channels))


def leftovers(folder):
    return [name for name in os.listdir(folder) if name.startswith(".tmp-")]


def test_to_uint8_clips_and_rounds():
    np.testing.assert_array_equal(visualize.to_uint8(np.array([-0.5, 0.0, 0.5, 1.0, 2.0])), [0, 0, 128, 255, 255])


@pytest.mark.parametrize("channels", [1, 3])
def test_save_gif_frames_and_size(channels, rng, tmp_path):
    frames = distinct_frames(rng, 5, 8, 6, channels)
    path = tmp_path / "new" / "folder" / "clip.gif"
    visualize.save_gif(path, frames, fps=5, scale=3)
    read = iio.imread(path, index=None)
    assert read.shape[:3] == (5, 24, 18)
    assert iio.immeta(path)["duration"] == 200
    if channels == 1:  # grey levels survive the GIF palette exactly
        expected = np.repeat(np.repeat(visualize.to_uint8(frames), 3, axis=1), 3, axis=2)[..., 0]
        np.testing.assert_array_equal(read[..., 0], expected)
    assert leftovers(path.parent) == []


def test_save_gif_overwrites_atomically(rng, tmp_path):
    path = tmp_path / "clip.gif"
    visualize.save_gif(path, distinct_frames(rng, 2))
    visualize.save_gif(path, distinct_frames(rng, 4))
    assert iio.imread(path, index=None).shape[0] == 4
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "frames, match",
    [
        (np.zeros((3, 8, 8)), "frames.shape"),
        (np.zeros((3, 8, 8, 2)), "frames.shape"),
        (np.zeros((3, 8, 8, 1), np.uint8), "x / 255"),
        (np.full((3, 8, 8, 1), np.nan), "NaN"),
    ],
)
def test_save_gif_rejects_bad_frames(frames, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        visualize.save_gif(tmp_path / "x.gif", frames)
    assert not (tmp_path / "x.gif").exists()
    assert leftovers(tmp_path) == []


def test_comparison_strip_layout(rng):
    context = distinct_frames(rng, 3)
    truth = distinct_frames(rng, 2)
    prediction = distinct_frames(rng, 2)
    strip = visualize.comparison_strip(context, truth, prediction, separator=1, labels=False)
    assert strip.dtype == np.uint8
    assert strip.shape == (3 * 8 + 2, 3 * 8 + 2, 3)
    np.testing.assert_array_equal(strip[:8, :8, 0], visualize.to_uint8(context[0, ..., 0]))
    np.testing.assert_array_equal(strip[9:17, 9:17, 1], visualize.to_uint8(truth[1, ..., 0]))
    np.testing.assert_array_equal(strip[18:, :8, 2], visualize.to_uint8(prediction[0, ..., 0]))
    assert np.all(strip[8, :] == visualize.SEPARATOR_VALUE)  # row separator
    assert np.all(strip[9:, 17:] == visualize.SEPARATOR_VALUE)  # short rows padded grey

    no_truth = visualize.comparison_strip(context, None, prediction, separator=2, scale=2, labels=False)
    assert no_truth.shape == (2 * 16 + 2, 3 * 16 + 2 * 2, 3)

    # Labelled (the default): the same frames right of a column that names each row.
    labelled = visualize.comparison_strip(context, truth, prediction, separator=1)
    offset = labelled.shape[1] - strip.shape[1]
    np.testing.assert_array_equal(labelled[:, offset:], strip)
    assert offset > 30  # wide enough for "prediction"
    for top in (0, 9, 18):  # white text in each row's label
        assert labelled[top : top + 8, : offset - 1].max() > 200
    assert labelled[8, : offset - 1].min() == visualize.SEPARATOR_VALUE


def test_labelled_rows_name_any_number_of_rows(rng):
    rows = {
        "context": distinct_frames(rng, 3),
        "truth": distinct_frames(rng, 2),
        "PredRNN-V2": distinct_frames(rng, 2),
        "ConvLSTM": distinct_frames(rng, 2),
    }
    image = visualize.labelled_rows(rows, separator=1)
    assert image.shape[0] == 4 * 8 + 3
    plain = visualize.labelled_rows(rows, separator=1, labels=False)
    np.testing.assert_array_equal(image[:, image.shape[1] - plain.shape[1] :], plain)
    with pytest.raises(ValueError, match="same frame size"):
        visualize.labelled_rows({"a": distinct_frames(rng, 2), "b": distinct_frames(rng, 2, 8, 6)})


def test_comparison_strip_rejects_mismatches(rng):
    with pytest.raises(ValueError, match="truth.shape=.*prediction.shape="):
        visualize.comparison_strip(None, distinct_frames(rng, 3), distinct_frames(rng, 2))
    with pytest.raises(ValueError, match="same frame size"):
        visualize.comparison_strip(distinct_frames(rng, 2, 8, 6), None, distinct_frames(rng, 2))


def test_save_png_roundtrip(rng, tmp_path):
    strip = visualize.comparison_strip(distinct_frames(rng, 2, channels=3), None, distinct_frames(rng, 2, channels=3))
    path = tmp_path / "sub" / "strip.png"
    visualize.save_png(path, strip)
    np.testing.assert_array_equal(iio.imread(path), strip)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # readable like any file the user writes
    with pytest.raises(ValueError, match="uint8"):
        visualize.save_png(path, strip.astype(np.float32))


@pytest.mark.parametrize("with_truth", [True, False])
def test_save_comparison_gif(with_truth, rng, tmp_path):
    context = distinct_frames(rng, 3)
    truth = distinct_frames(rng, 2) if with_truth else None
    prediction = distinct_frames(rng, 2)
    path = tmp_path / "comparison.gif"
    visualize.save_comparison_gif(path, context, truth, prediction, fps=2, scale=2)
    read = iio.imread(path, index=None)
    rows = 2 if with_truth else 1
    height = rows * 16 + (rows - 1) + visualize.BAR_HEIGHT * 2
    assert read.shape[:2] == (5, height)
    left = read.shape[2] - 16  # the label column and its gap
    assert left > 30
    # Context frames: both rows show the observed frame; then truth above, prediction below.
    if with_truth:
        np.testing.assert_array_equal(read[0, :16, left:, 0], read[0, 17:33, left:, 0])
        assert not np.array_equal(read[4, :16, left:, 0], read[4, 17:33, left:, 0])


def test_save_rows_gif_has_a_row_per_model_and_a_column_per_sequence(rng, tmp_path):
    context = np.stack([distinct_frames(rng, 2) for _ in range(3)])
    truth = np.stack([distinct_frames(rng, 2) for _ in range(3)])
    predictions = {"model a": truth * 0.5, "model b": np.zeros_like(truth)}
    path = tmp_path / "grid.gif"
    visualize.save_rows_gif(path, context, truth, predictions, separator=1)
    read = iio.imread(path, index=None)
    assert read.shape[:2] == (4, 3 * 8 + 2 + visualize.BAR_HEIGHT)
    left = read.shape[2] - (3 * 8 + 2)
    grid = read[:, : 3 * 8 + 2, left:, 0].astype(int)
    # rows: truth y 0:8, model a y 9:17, model b y 18:26; columns: sequences x 0:8, 9:17, 18:26
    for x in (slice(0, 8), slice(9, 17), slice(18, 26)):  # a context frame: every row shows it
        assert np.array_equal(grid[1, :8, x], grid[1, 9:17, x]) and np.array_equal(grid[1, :8, x], grid[1, 18:26, x])
        assert grid[3, 18:26, x].max() == 0 and grid[3, :8, x].max() > 0  # model b predicts black
    with pytest.raises(ValueError, match="same number of future frames"):
        visualize.save_rows_gif(path, context, truth, {"short": truth[:, :1]})


def test_plot_per_frame_writes_png(tmp_path):
    model = summarize(
        {
            "mse_per_frame": [10.0, 20.0, 30.0],
            "mae_per_frame": [1.0, 2.0, 3.0],
            "ssim": [0.9, 0.8, 0.7],
            "psnr": [np.inf, 22.0, 20.0],
            "mse_per_pixel": [0.1, 0.2, 0.3],
        }
    )
    baseline = {"mse_per_frame": [15.0, 25.0, 35.0], "ssim": [0.8, 0.7, 0.6]}
    path = tmp_path / "plots" / "per_frame.png"
    visualize.plot_per_frame(path, model, baselines={"copy last": baseline, "zeros": model}, title="test")
    image = iio.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert leftovers(path.parent) == []
    with pytest.raises(ValueError, match="Received keys"):
        visualize.plot_per_frame(path, {"loss": [1.0]})


def test_plot_schedule_writes_png(tmp_path):
    path = tmp_path / "schedule.png"
    visualize.plot_schedule(path, ReverseSchedule(), 60_000, input_length=10, output_length=10)
    assert iio.imread(path).ndim == 3
    visualize.plot_schedule(path, ReferenceSchedule(), [0, 10, 100], input_length=1, output_length=3)
    assert iio.imread(path).ndim == 3
    with pytest.raises(ValueError, match="nothing to plot"):
        visualize.plot_schedule(path, ReferenceSchedule(), 10, input_length=1, output_length=1)
