"""Per-frame video-prediction metrics: MSE, MAE, PSNR and SSIM.

Conventions (the PredRNN papers' and OpenSTL's):

* Inputs are frames of shape ``(batch, time, height, width, channels)``, floats on
  the ``[0, 1]`` scale. ``y_pred`` is **clipped to [0, 1]** before scoring (a model
  may overshoot; the papers score clipped predictions). ``y_true`` is used as given.
* Every function returns one value **per frame**, shape ``(time,)``: the metric of
  each image, averaged over the batch. Means over frames are taken afterwards
  (:func:`summarize`).
* ``frame_mse`` is the **sum** of squared errors over the ``H*W*C`` pixels of a
  frame, the papers' "MSE per frame" (PredRNN-V2 reports 48.4 on 64x64 Moving
  MNIST). ``frame_mse_per_pixel`` is the mean instead of the sum, the number
  earlier Keras work reports: ``frame_mse / (H*W*C)``.
* PSNR and SSIM use a data range of 1.

The ``frame_*`` functions use only ``keras.ops``, so they run on every backend and
inside compiled functions. :func:`compute_frame_metrics`, :func:`summarize` and
:class:`FrameMetricsAccumulator` are host-side helpers for evaluation jobs; the
``Frame*`` classes are ``keras.metrics.Metric`` wrappers for ``model.compile``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

__all__ = [
    "METRIC_NAMES",
    "frame_mse",
    "frame_mae",
    "frame_mse_per_pixel",
    "frame_psnr",
    "frame_ssim",
    "compute_frame_metrics",
    "summarize",
    "FrameMetricsAccumulator",
    "FrameMSE",
    "FrameMAE",
    "FramePSNR",
    "FrameSSIM",
]

# Window of the SSIM: Gaussian, 11x11, sigma 1.5 (Wang et al. 2004).
SSIM_FILTER_SIZE = 11
SSIM_FILTER_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


# ----------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------


def _static_shape(x) -> tuple:
    return tuple(None if d is None else int(d) for d in x.shape)


def _prepare(y_true, y_pred):
    """Check shapes and dtypes; return float tensors, ``y_pred`` clipped to [0, 1]."""
    y_true = ops.convert_to_tensor(y_true)
    y_pred = ops.convert_to_tensor(y_pred)
    true_shape, pred_shape = _static_shape(y_true), _static_shape(y_pred)
    if len(true_shape) != 5 or len(pred_shape) != 5:
        raise ValueError(
            "Frame metrics expect y_true and y_pred of rank 5, (batch, time, height, width, "
            f"channels). Received: y_true.shape={true_shape}, y_pred.shape={pred_shape}"
        )
    for a, b in zip(true_shape, pred_shape):
        if a is not None and b is not None and a != b:
            raise ValueError(
                f"y_true and y_pred must have the same shape. Received: y_true.shape={true_shape}, y_pred.shape={pred_shape}"
            )
    dtypes = {keras.backend.standardize_dtype(x.dtype) for x in (y_true, y_pred)}
    for dtype in dtypes:
        if "float" not in dtype:
            raise ValueError(
                "Frame metrics expect floating-point frames on the [0, 1] scale "
                "(convert uint8 frames with x / 255). "
                f"Received dtypes: y_true={y_true.dtype}, y_pred={y_pred.dtype}"
            )
    compute_dtype = "float64" if "float64" in dtypes else "float32"
    y_true = ops.cast(y_true, compute_dtype)
    y_pred = ops.clip(ops.cast(y_pred, compute_dtype), 0.0, 1.0)
    return y_true, y_pred


# ----------------------------------------------------------------------------------
# Per-sample values, shape (batch, time). The public functions average over batch.
# ----------------------------------------------------------------------------------


def _sample_mse(y_true, y_pred):
    y_true, y_pred = _prepare(y_true, y_pred)
    return ops.sum(ops.square(y_pred - y_true), axis=(2, 3, 4))


def _sample_mae(y_true, y_pred):
    y_true, y_pred = _prepare(y_true, y_pred)
    return ops.sum(ops.abs(y_pred - y_true), axis=(2, 3, 4))


def _sample_mse_per_pixel(y_true, y_pred):
    y_true, y_pred = _prepare(y_true, y_pred)
    return ops.mean(ops.square(y_pred - y_true), axis=(2, 3, 4))


def _sample_psnr(y_true, y_pred):
    # PSNR = 10 log10(1 / mse) with mse the per-pixel mean of one image; +inf for mse = 0.
    return -10.0 * ops.log10(_sample_mse_per_pixel(y_true, y_pred))


def _sample_ssim(y_true, y_pred):
    y_true, y_pred = _prepare(y_true, y_pred)
    _, time, height, width, channels = _static_shape(y_true)
    if None in (time, height, width, channels):
        raise ValueError(
            f"frame_ssim needs static time, height, width and channels. Received: y_true.shape={_static_shape(y_true)}"
        )
    if height < SSIM_FILTER_SIZE or width < SSIM_FILTER_SIZE:
        raise ValueError(
            f"frame_ssim uses a {SSIM_FILTER_SIZE}x{SSIM_FILTER_SIZE} window, so frames must be "
            f"at least {SSIM_FILTER_SIZE} pixels high and wide. Received: y_true.shape="
            f"{_static_shape(y_true)}"
        )
    # One (height, width) image per frame and channel: (B * T * C, H, W).
    images_true = ops.reshape(ops.transpose(y_true, (0, 1, 4, 2, 3)), (-1, height, width))
    images_pred = ops.reshape(ops.transpose(y_pred, (0, 1, 4, 2, 3)), (-1, height, width))
    # The five windowed moments, filtered in one call.
    moments = _gaussian_window_means(
        ops.concatenate(
            [images_true, images_pred, images_true * images_true, images_pred * images_pred, images_true * images_pred],
            axis=0,
        )
    )
    mu_true, mu_pred, true_sq, pred_sq, true_pred = ops.split(moments, 5, axis=0)
    var_true = true_sq - mu_true * mu_true
    var_pred = pred_sq - mu_pred * mu_pred
    covariance = true_pred - mu_true * mu_pred
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # (K * data range)^2, data range 1
    ssim_map = ((2.0 * mu_true * mu_pred + c1) * (2.0 * covariance + c2)) / (
        (mu_true * mu_true + mu_pred * mu_pred + c1) * (var_true + var_pred + c2)
    )
    values = ops.mean(ssim_map, axis=(1, 2))  # over the valid window positions
    return ops.mean(ops.reshape(values, (-1, time, channels)), axis=-1)  # over channels


def _gaussian_window(size: int, dtype) -> np.ndarray:
    """``(size, size - SSIM_FILTER_SIZE + 1)``: column ``j`` holds the normalised 1-D Gaussian
    window (sigma :data:`SSIM_FILTER_SIGMA`) on rows ``j .. j + SSIM_FILTER_SIZE - 1``, so
    ``x @ window`` is the "valid" windowed mean along ``x``'s last axis."""
    taps = np.arange(SSIM_FILTER_SIZE) - (SSIM_FILTER_SIZE - 1) / 2.0
    gauss = np.exp(-(taps**2) / (2.0 * SSIM_FILTER_SIGMA**2))
    gauss /= gauss.sum()
    window = np.zeros((size, size - SSIM_FILTER_SIZE + 1))
    for j in range(window.shape[1]):
        window[j : j + SSIM_FILTER_SIZE, j] = gauss
    return window.astype(dtype)


def _gaussian_window_means(images):
    """The SSIM window's weighted means of ``images`` ``(N, H, W)`` at every "valid" position,
    **transposed**: ``(N, W - 10, H - 10)`` (SSIM only averages its map, so no transpose back).

    The 11x11 Gaussian window is the outer product of two 1-D windows, so the filter is two
    matrix products with banded matrices (:func:`_gaussian_window`), one per axis. Matrix
    products are every backend's fastest kernel: on a 2-core CPU this SSIM took about 0.1x
    the time of ``keras.ops.image.ssim``'s 11x11 single-channel convolutions on JAX and
    TensorFlow and 0.34x on PyTorch for 64x64 frames (docs/performance.md, "Input pipeline and evaluation");
    it computes the same values. The dense bands multiply ``(H + W) / 22`` times more than
    a separable filter needs, so the gain shrinks with the frame size: at 512x512, 0.19x
    on JAX but 1.16x on PyTorch.
    """
    dtype = keras.backend.standardize_dtype(images.dtype)
    _, height, width = _static_shape(images)
    rows = ops.convert_to_tensor(_gaussian_window(height, dtype))
    columns = ops.convert_to_tensor(_gaussian_window(width, dtype))
    along_width = ops.matmul(images, columns)  # (N, H, W - 10)
    return ops.matmul(ops.swapaxes(along_width, 1, 2), rows)  # (N, W - 10, H - 10)


# ----------------------------------------------------------------------------------
# Public per-frame functions, shape (time,)
# ----------------------------------------------------------------------------------


def frame_mse(y_true, y_pred):
    """Per-frame sum of squared errors, averaged over the batch; shape ``(time,)``.

    For each image: ``sum over H*W*C of (clip(y_pred, 0, 1) - y_true)**2``, on the
    [0, 1] scale. This is the PredRNN papers' "MSE per frame" (a *sum*, not a mean:
    a 64x64x1 frame off by 0.1 everywhere scores 4096 * 0.01 = 40.96).
    """
    return ops.mean(_sample_mse(y_true, y_pred), axis=0)


def frame_mae(y_true, y_pred):
    """Per-frame sum of absolute errors over ``H*W*C``, averaged over the batch;
    shape ``(time,)``. Predictions are clipped to [0, 1] first."""
    return ops.mean(_sample_mae(y_true, y_pred), axis=0)


def frame_mse_per_pixel(y_true, y_pred):
    """Per-frame *mean* squared error over ``H*W*C`` (= ``frame_mse / (H*W*C)``),
    averaged over the batch; shape ``(time,)``. For comparison with earlier Keras
    work that reports the per-pixel mean."""
    return ops.mean(_sample_mse_per_pixel(y_true, y_pred), axis=0)


def frame_psnr(y_true, y_pred):
    """Per-frame PSNR in dB with data range 1, averaged over the batch; shape ``(time,)``.

    Computed per image, ``10 * log10(1 / mse)`` with ``mse`` the per-pixel mean
    squared error of that image, then averaged over the batch (unlike
    ``keras.ops.psnr`` on a batch, which averages the MSE over the whole tensor
    first). An image identical to its target has PSNR ``+inf``; the batch mean is
    then ``+inf`` as well. Predictions are clipped to [0, 1] first.
    """
    return ops.mean(_sample_psnr(y_true, y_pred), axis=0)


def frame_ssim(y_true, y_pred):
    """Per-frame SSIM with data range 1, averaged over the batch; shape ``(time,)``.

    The SSIM of ``keras.ops.image.ssim`` (an 11x11 Gaussian window, sigma 1.5, K1 = 0.01,
    K2 = 0.03, population, not sample, covariances, the SSIM map averaged over the
    "valid" positions, where the whole window fits in the frame, and over channels),
    computed with the separable window as two matrix products (several times faster on
    CPUs; the tests check the two agree to 1e-6). This equals
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)`` to float32 precision (the tests check
    1e-4). Frames must be at least 11x11. Predictions are clipped to [0, 1] first.

    Upstream PredRNN scored SSIM with skimage on frames rounded to uint8 (and, in
    some versions, with skimage's 7x7 uniform window), so the last digits of
    published SSIM values will not be reproduced exactly.
    """
    return ops.mean(_sample_ssim(y_true, y_pred), axis=0)


# Metric names used in reports and in ``predrnn evaluate``'s JSON, in report order.
_FUNCTIONS = {
    "mse_per_frame": frame_mse,
    "mae_per_frame": frame_mae,
    "mse_per_pixel": frame_mse_per_pixel,
    "ssim": frame_ssim,
    "psnr": frame_psnr,
}
METRIC_NAMES = tuple(_FUNCTIONS)


# ----------------------------------------------------------------------------------
# Host-side helpers
# ----------------------------------------------------------------------------------


def compute_frame_metrics(y_true, y_pred) -> dict[str, np.ndarray]:
    """Every per-frame metric of one batch, as NumPy float64 arrays of shape ``(time,)``.

    Keys (in this order): ``mse_per_frame``, ``mae_per_frame``, ``mse_per_pixel``,
    ``ssim``, ``psnr``. Each value is the batch mean of that metric per frame, see the
    ``frame_*`` functions. The computation runs on the Keras backend (float32 unless
    both inputs are float64); only the results are float64.
    """
    y_true = ops.convert_to_tensor(y_true)
    y_pred = ops.convert_to_tensor(y_pred)
    return {name: np.asarray(ops.convert_to_numpy(fn(y_true, y_pred)), dtype=np.float64) for name, fn in _FUNCTIONS.items()}


def summarize(per_frame: dict) -> dict:
    """Means over frames plus the per-frame lists, ready for JSON.

    Args:
        per_frame: ``{metric_name: values of shape (time,)}``, e.g. the output of
            :func:`compute_frame_metrics`; names among :data:`METRIC_NAMES` (other
            names are kept too, after those).

    Returns:
        ``{"mse_per_frame": mean, "mae_per_frame": mean, "mse_per_pixel": mean,
        "ssim": mean, "psnr": mean, "num_frames": T, "per_frame": {name: [T floats]}}``
        with Python floats. A PSNR of ``+inf`` (a perfect frame) stays ``inf``;
        ``json.dump`` writes it as ``Infinity``.
    """
    names = [n for n in METRIC_NAMES if n in per_frame] + [n for n in per_frame if n not in METRIC_NAMES]
    if not names:
        raise ValueError(f"summarize needs at least one metric. Received: per_frame={per_frame!r}")
    arrays = {name: np.asarray(per_frame[name], dtype=np.float64) for name in names}
    lengths = {name: a.shape for name, a in arrays.items()}
    if any(len(shape) != 1 for shape in lengths.values()) or len(set(lengths.values())) != 1:
        raise ValueError(
            f"summarize expects one vector of per-frame values per metric, all of the same length. Received shapes: {lengths}"
        )
    summary: dict = {name: float(np.mean(a)) for name, a in arrays.items()}
    summary["num_frames"] = int(next(iter(arrays.values())).shape[0])
    summary["per_frame"] = {name: [float(v) for v in a] for name, a in arrays.items()}
    return summary


class FrameMetricsAccumulator:
    """Host-side streaming mean of every per-frame metric over many batches (float64).

    Each batch contributes its per-frame means weighted by its batch size, so the
    result is the mean over all sequences, whatever the batch sizes::

        accumulator = FrameMetricsAccumulator()
        for y_true, y_pred in batches:
            accumulator.update(y_true, y_pred)
        report = accumulator.result()  # summarize() format plus "num_sequences"
    """

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self._sums: dict[str, np.ndarray] | None = None
        self._num_sequences = 0

    @property
    def num_sequences(self) -> int:
        return self._num_sequences

    def update(self, y_true, y_pred) -> dict[str, np.ndarray]:
        """Add one batch ``(B, T, H, W, C)``; returns that batch's per-frame metrics."""
        batch_metrics = compute_frame_metrics(y_true, y_pred)
        batch_size = int(np.shape(y_true)[0])
        num_frames = next(iter(batch_metrics.values())).shape[0]
        if self._sums is None:
            self._sums = {n: np.zeros(num_frames, dtype=np.float64) for n in batch_metrics}
        expected = next(iter(self._sums.values())).shape[0]
        if num_frames != expected:
            raise ValueError(
                f"Every batch must have the same number of frames; earlier batches had {expected}. "
                f"Received: y_true.shape={tuple(np.shape(y_true))}"
            )
        for name, values in batch_metrics.items():
            self._sums[name] += batch_size * values
        self._num_sequences += batch_size
        return batch_metrics

    def per_frame(self) -> dict[str, np.ndarray]:
        """Per-frame means over every sequence seen so far, float64 arrays ``(T,)``."""
        if self._sums is None or self._num_sequences == 0:
            raise ValueError("FrameMetricsAccumulator has no data yet: call update() first.")
        return {name: s / self._num_sequences for name, s in self._sums.items()}

    def result(self) -> dict:
        """:func:`summarize` of :meth:`per_frame`, plus ``"num_sequences"``."""
        summary = summarize(self.per_frame())
        summary["num_sequences"] = self._num_sequences
        return summary


# ----------------------------------------------------------------------------------
# keras.metrics.Metric wrappers
# ----------------------------------------------------------------------------------


class _FrameMetric(keras.metrics.Metric):
    """Mean of a per-frame metric over sequences, accumulated across batches.

    Args:
        output_length: if set, score only the last ``output_length`` frames (PredRNN
            emits ``T - 1`` frames; the last ``output_length`` are the future) and
            keep per-frame totals, readable with :meth:`per_frame`. If ``None``, score
            every frame and keep only the mean over frames.
        name, dtype: as for any ``keras.metrics.Metric``.

    ``update_state(y_true, y_pred, sample_weight=None)`` takes frames
    ``(B, T, H, W, C)`` and optional weights, one per sequence, shape ``(B,)``.
    Each sequence counts once (times its weight), so batches of different sizes
    combine into the mean over all sequences. ``result()`` is the mean over frames
    of that per-sequence mean, a scalar.
    """

    _sample_fn = None  # (y_true, y_pred) -> (batch, time); set by subclasses

    def __init__(self, output_length: int | None = None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        if output_length is not None:
            is_int = isinstance(output_length, (int, np.integer)) and not isinstance(output_length, bool)
            if not is_int or output_length < 1:
                raise ValueError(f"output_length must be a positive int or None. Received: output_length={output_length!r}")
            output_length = int(output_length)
        self.output_length = output_length
        self.total = self.add_variable(shape=(output_length or 1,), initializer="zeros", dtype=self.dtype, name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype=self.dtype, name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = self._sample_fn(y_true, y_pred)  # (batch, time)
        if self.output_length is None:
            values = ops.mean(values, axis=1, keepdims=True)
        else:
            num_frames = _static_shape(values)[1]
            if num_frames is not None and num_frames < self.output_length:
                raise ValueError(
                    f"{self.name} scores the last output_length={self.output_length} frames, but "
                    f"the inputs have only {num_frames}. Received: y_pred.shape={tuple(y_pred.shape)}"
                )
            values = values[:, -self.output_length :]
        values = ops.cast(values, self.dtype)
        if sample_weight is None:
            weights = ops.ones_like(values[:, 0])
        else:
            weights = ops.cast(ops.convert_to_tensor(sample_weight), self.dtype)
            weight_shape = _static_shape(weights)
            if len(weight_shape) > 2 or (len(weight_shape) == 2 and weight_shape[1] not in (1, None)):
                raise ValueError(
                    f"{self.name} takes one sample weight per sequence, shape (batch,). "
                    f"Received: sample_weight.shape={weight_shape}"
                )
            weights = ops.reshape(weights, (-1,)) * ops.ones_like(values[:, 0])
        self.total.assign_add(ops.sum(values * weights[:, None], axis=0))
        self.count.assign_add(ops.sum(weights))

    def per_frame(self):
        """Per-frame means over the sequences seen, a tensor of shape ``(output_length,)``."""
        if self.output_length is None:
            raise ValueError(
                f"{self.name} keeps per-frame values only when built with output_length. Received: output_length=None"
            )
        return ops.divide_no_nan(self.total, self.count)

    def result(self):
        return ops.mean(ops.divide_no_nan(self.total, self.count))

    def reset_state(self):
        self.total.assign(ops.zeros(self.total.shape, dtype=self.dtype))
        self.count.assign(ops.zeros((), dtype=self.dtype))

    def get_config(self):
        return {**super().get_config(), "output_length": self.output_length}


@keras.saving.register_keras_serializable(package="predrnn")
class FrameMSE(_FrameMetric):
    """Mean over frames of :func:`frame_mse` (sum of squared errors per frame)."""

    _sample_fn = staticmethod(_sample_mse)

    def __init__(self, output_length=None, name="frame_mse", dtype=None):
        super().__init__(output_length=output_length, name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package="predrnn")
class FrameMAE(_FrameMetric):
    """Mean over frames of :func:`frame_mae` (sum of absolute errors per frame)."""

    _sample_fn = staticmethod(_sample_mae)

    def __init__(self, output_length=None, name="frame_mae", dtype=None):
        super().__init__(output_length=output_length, name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package="predrnn")
class FramePSNR(_FrameMetric):
    """Mean over frames of :func:`frame_psnr` (dB, data range 1; ``inf`` for a perfect frame)."""

    _sample_fn = staticmethod(_sample_psnr)

    def __init__(self, output_length=None, name="frame_psnr", dtype=None):
        super().__init__(output_length=output_length, name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package="predrnn")
class FrameSSIM(_FrameMetric):
    """Mean over frames of :func:`frame_ssim` (11x11 Gaussian window, data range 1)."""

    _sample_fn = staticmethod(_sample_ssim)

    def __init__(self, output_length=None, name="frame_ssim", dtype=None):
        super().__init__(output_length=output_length, name=name, dtype=dtype)
