"""Building blocks of the recurrent cells and models: initializers, argument checks, layer norm (keras.ops only)."""

import keras
from keras import ops

from predrnn.acceleration.options import CHANNELS_FIRST, CHANNELS_LAST

LAYER_NORM_EPSILON = 1e-5  # the official PredRNN's nn.LayerNorm default


def reference_kernel_initializer(seed=None):
    """PyTorch's default ``Conv2d`` initialisation, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    The official PredRNN code trains from this initialisation, so it is our default:
    ``VarianceScaling(scale=1/3, mode="fan_in", distribution="uniform")`` gives exactly
    that limit (``sqrt(3 * scale / fan_in)``).
    """
    return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform", seed=seed)


def get_kernel_initializer(identifier):
    if identifier in (None, "reference", "torch_default"):
        return reference_kernel_initializer()
    return keras.initializers.get(identifier)


def serialize_kernel_initializer(identifier):
    if identifier in (None, "reference", "torch_default"):
        return "reference"
    if isinstance(identifier, str):
        return identifier
    return keras.initializers.serialize(identifier)


def _is_low_precision(x):
    return keras.backend.standardize_dtype(x.dtype) in ("float16", "bfloat16")


def spatial_layer_norm(x, gamma, beta, epsilon=LAYER_NORM_EPSILON, data_format=CHANNELS_LAST):
    """Normalise each sample jointly over (H, W, C); elementwise affine of shape (H, W, C).

    The statistics are computed in float32 when ``x`` is float16/bfloat16 (mixed precision).
    """
    if data_format == CHANNELS_FIRST:
        gamma = ops.transpose(gamma, (2, 0, 1))
        beta = ops.transpose(beta, (2, 0, 1))
    dtype = x.dtype
    if _is_low_precision(x):
        x = ops.cast(x, "float32")
        gamma, beta = ops.cast(gamma, "float32"), ops.cast(beta, "float32")
    mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
    variance = ops.mean(ops.square(x - mean), axis=(1, 2, 3), keepdims=True)
    y = (x - mean) * ops.rsqrt(variance + epsilon) * gamma + beta
    return ops.cast(y, dtype) if y.dtype != dtype else y


def check_channels_last(data_format):
    if data_format not in (None, "channels_last"):
        raise ValueError(
            "predrnn layers take channels-last inputs (batch, height, width, channels) only. "
            f"Transpose your data instead. Received: data_format={data_format!r}"
        )


def check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
    return value


def check_kernel_size(kernel_size):
    check_positive_int("kernel_size", kernel_size)
    if kernel_size % 2 == 0:
        raise ValueError(
            "kernel_size must be odd so that 'same' padding is symmetric (as in the official "
            f"PredRNN). Received: kernel_size={kernel_size}"
        )
    return kernel_size
