"""Per-frame metrics: known values, a NumPy reference, skimage SSIM, Metric wrappers."""

import json

import keras
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from predrnn import metrics
from predrnn.metrics import (
    FrameMAE,
    FrameMetricsAccumulator,
    FrameMSE,
    FramePSNR,
    FrameSSIM,
    compute_frame_metrics,
    frame_mae,
    frame_mse,
    frame_mse_per_pixel,
    frame_psnr,
    frame_ssim,
    summarize,
)

FUNCTIONS = [frame_mse, frame_mae, frame_mse_per_pixel, frame_psnr, frame_ssim]
METRIC_CLASSES = [FrameMSE, FrameMAE, FramePSNR, FrameSSIM]
# Metric class -> the compute_frame_metrics key it averages.
CLASS_KEYS = {FrameMSE: "mse_per_frame", FrameMAE: "mae_per_frame", FramePSNR: "psnr", FrameSSIM: "ssim"}


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def smooth_frames(rng, shape):
    """Random-ish frames in [0, 1] with some spatial structure (a blurred noise field)."""
    noise = rng.random(shape)
    blurred = (noise + np.roll(noise, 1, axis=-2) + np.roll(noise, 1, axis=-3)) / 3.0
    return blurred.astype(np.float32)


def numpy_reference(y_true, y_pred):
    """Independent NumPy float64 implementation of the per-frame conventions (no SSIM)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.clip(np.asarray(y_pred, dtype=np.float64), 0.0, 1.0)
    squared = (y_pred - y_true) ** 2
    per_pixel = squared.mean(axis=(2, 3, 4))  # (B, T)
    return {
        "mse_per_frame": squared.sum(axis=(2, 3, 4)).mean(axis=0),
        "mae_per_frame": np.abs(y_pred - y_true).sum(axis=(2, 3, 4)).mean(axis=0),
        "mse_per_pixel": per_pixel.mean(axis=0),
        "psnr": (10.0 * np.log10(1.0 / per_pixel)).mean(axis=0),
    }


def skimage_ssim(y_true, y_pred):
    """Per-frame batch-mean SSIM with skimage's Gaussian-window settings."""
    batch, time = y_true.shape[:2]
    values = [
        [
            structural_similarity(
                y_true[b, t],
                np.clip(y_pred[b, t], 0, 1),
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=1.0,
                channel_axis=-1,
            )
            for t in range(time)
        ]
        for b in range(batch)
    ]
    return np.mean(values, axis=0)


# ----------------------------------------------------------------------------------
# Functions
# ----------------------------------------------------------------------------------


def test_identical_frames_give_perfect_scores(rng):
    frames = smooth_frames(rng, (2, 3, 16, 16, 1))
    np.testing.assert_array_equal(to_numpy(frame_mse(frames, frames)), 0.0)
    np.testing.assert_array_equal(to_numpy(frame_mae(frames, frames)), 0.0)
    np.testing.assert_array_equal(to_numpy(frame_mse_per_pixel(frames, frames)), 0.0)
    np.testing.assert_allclose(to_numpy(frame_ssim(frames, frames)), 1.0, atol=1e-6)
    psnr = to_numpy(frame_psnr(frames, frames))
    assert np.all(np.isposinf(psnr))


def test_constant_offset_gives_known_values(rng):
    # 64x64x1 frames off by 0.1 everywhere: 4096 * 0.01 = 40.96, 4096 * 0.1 = 409.6, 20 dB.
    y_true = (0.2 + 0.6 * rng.random((2, 3, 64, 64, 1))).astype(np.float32)
    y_pred = y_true + np.float32(0.1)
    np.testing.assert_allclose(to_numpy(frame_mse(y_true, y_pred)), 40.96, rtol=1e-4)
    np.testing.assert_allclose(to_numpy(frame_mae(y_true, y_pred)), 409.6, rtol=1e-4)
    np.testing.assert_allclose(to_numpy(frame_mse_per_pixel(y_true, y_pred)), 0.01, rtol=1e-4)
    np.testing.assert_allclose(to_numpy(frame_psnr(y_true, y_pred)), 20.0, atol=1e-3)


def test_predictions_are_clipped_to_unit_range():
    y_true = np.zeros((1, 2, 16, 16, 1), np.float32)
    y_true[:, 1] = 1.0
    y_pred = np.zeros_like(y_true)
    y_pred[:, 0] = -0.5  # clipped to 0: exact
    y_pred[:, 1] = 1.7  # clipped to 1: exact
    np.testing.assert_array_equal(to_numpy(frame_mse(y_true, y_pred)), 0.0)
    np.testing.assert_array_equal(to_numpy(frame_mae(y_true, y_pred)), 0.0)
    assert np.all(np.isposinf(to_numpy(frame_psnr(y_true, y_pred))))
    np.testing.assert_allclose(to_numpy(frame_ssim(y_true, y_pred)), 1.0, atol=1e-6)


def test_psnr_is_averaged_per_image_not_over_the_batch():
    # Image 0 off by 0.1 (20 dB), image 1 off by 0.01 (40 dB): the mean is 30 dB, while
    # the PSNR of the pooled MSE would be about 22.97 dB.
    y_true = np.full((2, 1, 16, 16, 1), 0.5, np.float32)
    y_pred = y_true + np.array([0.1, 0.01], np.float32).reshape(2, 1, 1, 1, 1)
    np.testing.assert_allclose(to_numpy(frame_psnr(y_true, y_pred)), [30.0], atol=1e-3)


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.__name__)
def test_per_frame_output_shape(fn, rng):
    y_true = smooth_frames(rng, (3, 5, 16, 12, 1))
    y_pred = smooth_frames(rng, (3, 5, 16, 12, 1))
    assert tuple(fn(y_true, y_pred).shape) == (5,)


def test_numpy_reference_agrees(rng):
    y_true = smooth_frames(rng, (3, 4, 16, 12, 3))
    y_pred = (y_true + 0.3 * rng.standard_normal(y_true.shape)).astype(np.float32)  # overshoots [0, 1]
    computed = compute_frame_metrics(y_true, y_pred)
    for name, expected in numpy_reference(y_true, y_pred).items():
        np.testing.assert_allclose(computed[name], expected, rtol=1e-5, err_msg=name)


@pytest.mark.parametrize("shape", [(2, 3, 16, 20, 1), (1, 2, 32, 32, 3)])
def test_ssim_agrees_with_skimage(shape, rng):
    y_true = smooth_frames(rng, shape)
    y_pred = np.clip(y_true + 0.15 * rng.standard_normal(shape), -0.2, 1.2).astype(np.float32)
    np.testing.assert_allclose(to_numpy(frame_ssim(y_true, y_pred)), skimage_ssim(y_true, y_pred), atol=1e-4)


@pytest.mark.parametrize("shape", [(2, 3, 16, 20, 1), (2, 2, 24, 13, 3)])
def test_ssim_equals_keras_image_ssim(shape, rng):
    """The separable-window SSIM computes keras.ops.image.ssim's values (per image, not only
    the means), in non-square frames with several channels."""
    y_true = smooth_frames(rng, shape)
    y_pred = np.clip(y_true + 0.15 * rng.standard_normal(shape), 0.0, 1.0).astype(np.float32)
    b, t, h, w, c = shape
    expected = keras.ops.image.ssim(
        y_true.reshape(b * t, h, w, c), y_pred.reshape(b * t, h, w, c), max_val=1.0, data_format="channels_last"
    )
    computed = metrics._sample_ssim(y_true, y_pred)
    np.testing.assert_allclose(to_numpy(computed), to_numpy(expected).reshape(b, t), atol=1e-6)


def test_compute_frame_metrics_returns_float64_vectors(rng):
    frames = smooth_frames(rng, (2, 3, 16, 16, 1))
    computed = compute_frame_metrics(frames, frames * 0.9)
    assert list(computed) == list(metrics.METRIC_NAMES)
    assert list(computed) == ["mse_per_frame", "mae_per_frame", "mse_per_pixel", "ssim", "psnr"]
    for values in computed.values():
        assert isinstance(values, np.ndarray)
        assert values.dtype == np.float64 and values.shape == (3,)


@pytest.mark.parametrize(
    "true_shape, pred_shape",
    [
        ((2, 3, 16, 16, 1), (2, 3, 16, 16, 3)),
        ((2, 3, 16, 16), (2, 3, 16, 16)),
        ((2, 3, 16, 16, 1), (2, 4, 16, 16, 1)),
    ],
)
def test_wrong_shapes_raise_with_both_shapes(true_shape, pred_shape):
    with pytest.raises(ValueError, match="y_true.shape=.*y_pred.shape="):
        frame_mse(np.zeros(true_shape, np.float32), np.zeros(pred_shape, np.float32))


def test_integer_frames_raise():
    frames = np.zeros((1, 2, 16, 16, 1), np.uint8)
    with pytest.raises(ValueError, match="x / 255"):
        frame_mse(frames, frames)


def test_ssim_rejects_frames_smaller_than_its_window():
    frames = np.zeros((1, 2, 8, 16, 1), np.float32)
    with pytest.raises(ValueError, match="11x11"):
        frame_ssim(frames, frames)


# ----------------------------------------------------------------------------------
# Host-side summary and accumulator
# ----------------------------------------------------------------------------------


def test_summarize_gives_means_and_lists():
    summary = summarize({"psnr": [20.0, np.inf], "mse_per_frame": np.array([1.0, 3.0])})
    assert list(summary) == ["mse_per_frame", "psnr", "num_frames", "per_frame"]
    assert summary["mse_per_frame"] == 2.0
    assert summary["psnr"] == np.inf
    assert summary["num_frames"] == 2
    assert summary["per_frame"] == {"mse_per_frame": [1.0, 3.0], "psnr": [20.0, np.inf]}
    assert all(type(v) is float for v in summary["per_frame"]["mse_per_frame"])
    json.loads(json.dumps(summary))  # serialisable (inf as Infinity)


def test_summarize_rejects_unequal_lengths():
    with pytest.raises(ValueError, match="Received shapes"):
        summarize({"ssim": [0.5, 0.6], "psnr": [20.0]})


def test_accumulator_weights_unequal_batches_by_size(rng):
    y_true = smooth_frames(rng, (4, 3, 16, 16, 1))
    y_pred = smooth_frames(rng, (4, 3, 16, 16, 1))
    accumulator = FrameMetricsAccumulator()
    accumulator.update(y_true[:3], y_pred[:3])
    accumulator.update(y_true[3:], y_pred[3:])
    report = accumulator.result()
    expected = summarize(compute_frame_metrics(y_true, y_pred))
    assert report["num_sequences"] == 4
    assert report["num_frames"] == 3
    for name in metrics.METRIC_NAMES:
        # float32 sums over differently sized batches: equal to float32 precision.
        np.testing.assert_allclose(report[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(report["per_frame"][name], expected["per_frame"][name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_accumulator_errors():
    accumulator = FrameMetricsAccumulator()
    with pytest.raises(ValueError, match="update"):
        accumulator.result()
    accumulator.update(np.zeros((1, 3, 16, 16, 1), np.float32), np.zeros((1, 3, 16, 16, 1), np.float32))
    with pytest.raises(ValueError, match="3"):
        accumulator.update(np.zeros((1, 2, 16, 16, 1), np.float32), np.zeros((1, 2, 16, 16, 1), np.float32))
    accumulator.reset()
    assert accumulator.num_sequences == 0


# ----------------------------------------------------------------------------------
# keras.metrics.Metric wrappers
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", METRIC_CLASSES, ids=lambda c: c.__name__)
def test_metric_accumulates_unequal_batches(cls, rng):
    y_true = smooth_frames(rng, (4, 3, 16, 16, 1))
    y_pred = smooth_frames(rng, (4, 3, 16, 16, 1))
    expected = compute_frame_metrics(y_true, y_pred)[CLASS_KEYS[cls]]

    metric = cls()
    metric.update_state(y_true[:3], y_pred[:3])
    metric.update_state(y_true[3:], y_pred[3:])
    np.testing.assert_allclose(to_numpy(metric.result()), expected.mean(), rtol=1e-5)

    per_frame_metric = cls(output_length=2)
    per_frame_metric.update_state(y_true[:1], y_pred[:1])
    per_frame_metric.update_state(y_true[1:], y_pred[1:])
    np.testing.assert_allclose(to_numpy(per_frame_metric.per_frame()), expected[-2:], rtol=1e-5)
    np.testing.assert_allclose(to_numpy(per_frame_metric.result()), expected[-2:].mean(), rtol=1e-5)

    metric.reset_state()
    assert to_numpy(metric.result()) == 0.0


def test_metric_sample_weight_weights_sequences(rng):
    y_true = smooth_frames(rng, (3, 2, 16, 16, 1))
    y_pred = smooth_frames(rng, (3, 2, 16, 16, 1))
    weights = np.array([1.0, 0.0, 2.0], np.float32)
    metric = FrameMSE()
    metric.update_state(y_true, y_pred, sample_weight=weights)
    per_sequence = ((np.clip(y_pred, 0, 1) - y_true) ** 2).sum(axis=(2, 3, 4)).mean(axis=1)
    expected = (per_sequence * weights).sum() / weights.sum()
    np.testing.assert_allclose(to_numpy(metric.result()), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="one sample weight per sequence"):
        metric.update_state(y_true, y_pred, sample_weight=np.ones((3, 2), np.float32))


@pytest.mark.parametrize("cls", METRIC_CLASSES, ids=lambda c: c.__name__)
def test_metric_config_roundtrip(cls):
    metric = cls(output_length=3, name="custom")
    config = metric.get_config()
    assert config["output_length"] == 3 and config["name"] == "custom"
    restored = cls.from_config(config)
    assert restored.get_config() == config
    serialized = keras.saving.serialize_keras_object(metric)
    deserialized = keras.saving.deserialize_keras_object(serialized)
    assert type(deserialized) is cls and deserialized.get_config() == config


def test_metric_argument_errors(rng):
    with pytest.raises(ValueError, match="output_length=0"):
        FrameMSE(output_length=0)
    with pytest.raises(ValueError, match="output_length=None"):
        FrameMSE().per_frame()
    frames = smooth_frames(rng, (1, 2, 16, 16, 1))
    with pytest.raises(ValueError, match="output_length=3"):
        FrameMSE(output_length=3).update_state(frames, frames)


def tiny_video_model():
    inputs = keras.Input((4, 16, 16, 1))
    outputs = keras.layers.Conv3D(1, 3, padding="same", activation="sigmoid")(inputs)
    return keras.Model(inputs, outputs)


def test_metrics_in_compile_and_evaluate(rng, tmp_path):
    frames = smooth_frames(rng, (5, 4, 16, 16, 1))
    model = tiny_video_model()
    model.compile(
        optimizer="adam",
        loss="mse",
        metrics=[FrameMSE(), FrameMAE(output_length=2), FramePSNR(), FrameSSIM()],
    )
    # Batches of 2, 2 and 1: the result must still be the mean over the 5 sequences.
    results = model.evaluate(frames, frames, batch_size=2, verbose=0, return_dict=True)
    expected = compute_frame_metrics(frames, model.predict(frames, batch_size=5, verbose=0))
    np.testing.assert_allclose(results["frame_mse"], expected["mse_per_frame"].mean(), rtol=1e-4)
    np.testing.assert_allclose(results["frame_mae"], expected["mae_per_frame"][-2:].mean(), rtol=1e-4)
    np.testing.assert_allclose(results["frame_psnr"], expected["psnr"].mean(), rtol=1e-4)
    np.testing.assert_allclose(results["frame_ssim"], expected["ssim"].mean(), rtol=1e-4, atol=1e-5)

    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    restored_results = restored.evaluate(frames, frames, batch_size=5, verbose=0, return_dict=True)
    assert set(restored_results) == set(results)
    np.testing.assert_allclose(restored_results["frame_mse"], results["frame_mse"], rtol=1e-4)
