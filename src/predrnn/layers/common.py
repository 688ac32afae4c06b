"""Small building blocks shared by the recurrent cells (keras.ops only)."""

import contextlib
import functools
import json
import os
import threading
import weakref

import keras
from keras import ops

from predrnn.errors import ConfigError
from predrnn.layers.winograd import (
    WINOGRAD_KERNEL_SIZES,
    checked_placements,
    recomputing_winograd_conv2d,
    winograd_applies,
    winograd_kernel,
)

LAYER_NORM_EPSILON = 1e-5  # the official PredRNN's nn.LayerNorm default


def reference_kernel_initializer(seed=None):
    """PyTorch's default ``Conv2d`` initialisation, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    The official PredRNN code trains from this initialisation, so it is our default:
    ``VarianceScaling(scale=1/3, mode="fan_in", distribution="uniform")`` gives exactly
    that limit (``sqrt(3 * scale / fan_in)``).
    """
    return keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform", seed=seed
    )


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


CHANNELS_LAST = "channels_last"
CHANNELS_FIRST = "channels_first"


def internal_data_format():
    """The layout the recurrent loop runs in on this backend (inputs and outputs stay channels-last).

    PyTorch's convolutions are channels-first: Keras' channels-last ``conv`` on the torch
    backend transposes every input and output (and converts memory formats), which a
    PredRNN step pays dozens of times. On torch the loop therefore runs channels-first
    throughout (one transpose of the patches in, one of the predictions out); TensorFlow
    (whose CPU convolutions are channels-last only) and JAX (XLA picks its own layouts) stay
    channels-last. ``PREDRNN_INTERNAL_LAYOUT=channels_first|channels_last`` overrides the
    choice, for benchmarking.
    """
    override = os.environ.get("PREDRNN_INTERNAL_LAYOUT")
    if override in (CHANNELS_FIRST, CHANNELS_LAST):
        return override
    return CHANNELS_FIRST if keras.backend.backend() == "torch" else CHANNELS_LAST


def fused_gates():
    """Whether the cells fuse their gate convolutions (see ``SpatioTemporalLSTMCell.fused_kernels``).

    Off by default: the separate convolutions of the reference (``conv_x``, ``conv_h``,
    ``conv_m``, summed) measured 8% faster per training step than the fused pair with
    TensorFlow on CPU (the channel concatenation and its gradient cost more than the
    saved additions), equal with JAX and PyTorch (``predrnn benchmark --preset mnist-short
    --impl tensorflow tensorflow+fused ...``, benchmarks/README.md).
    ``PREDRNN_FUSED_GATES=1`` turns fusion on, to measure it on other hardware.
    """
    return os.environ.get("PREDRNN_FUSED_GATES", "0") == "1"


# Cells at least this wide, with 5x5 to 7x7 kernels, compile their steps by default on
# TensorFlow without a GPU: measured faster there (see :func:`xla_cells`). On JAX every cell
# with a 3x3 to 7x7 kernel qualifies.
XLA_CELLS_MIN_FILTERS = 64
XLA_CELLS_KERNEL_SIZES = (5, 7)
JAX_XLA_CELLS_KERNEL_SIZES = WINOGRAD_KERNEL_SIZES  # the scanned loop needs every kernel to be Winograd's


def xla_cells(filters=None, kernel_size=None, dtype="float32"):
    """Whether a cell's steps are compiled on their own, its k x k convolutions as Winograd's.

    ``PREDRNN_XLA_CELLS``: ``auto`` (the default), ``1`` for every cell, ``0`` for none.
    Float32 steps only (under mixed precision the cells run as before); PyTorch ignores it.

    - **TensorFlow** (``auto``: cells of at least 64 filters with a 5x5 to 7x7 kernel, no
      visible GPU): each such cell's step becomes a compiled forward and backward
      ``tf.function(jit_compile=True)`` (:func:`xla_step`) inside the otherwise uncompiled
      training step, its 3x3-7x7 convolutions :func:`predrnn.layers.winograd.recomputing_winograd_conv2d`.
      On this project's 2-core AVX2 CPU the 4x64/batch-8 Moving MNIST training step took
      0.59x the reference's (0.58x the uncompiled cells'), the paper's 4x128/batch-16 step
      0.39x, for more memory (4x64: 1195 MB above the imports in session 15's run, 1129 MB
      without them in session 12's) and a compile of ~40 s instead of 25 s. The small
      quickstart model (32 filters, 3x3) trained slower with it, hence the rule.
    - **JAX** (``auto``: every cell has a 3x3 to 7x7 kernel, JAX runs on the CPU): the models'
      time loop after the first step becomes one ``keras.ops.scan`` (``lax.scan``: one step
      traced and compiled, instead of the whole unrolled sequence), its cells' k x k
      convolutions :func:`predrnn.layers.winograd.transformed_winograd_conv2d` with the kernels
      transformed once per sequence (``VideoPredictor._unroll``). A model-wide choice: one cell
      that does not qualify keeps the unrolled loop. 4x64/batch 8, 20 frames: 9.0-10.1 s per
      step instead of 24.9-25.5 s (1.28x TensorFlow's default), compiled in ~20 s instead of
      ~100 s, 1854 instead of 2322 MB (1143 MB above the imports since session 11's
      activations, :mod:`predrnn.layers.activations`, and session 12's
      :mod:`predrnn.memory`); quickstart-sized (2x32, 3x3): 1.06 s instead of 1.82 s. XLA:CPU runs direct
      convolutions inside a loop several times slower than unrolled (12.95 s against
      1.82 s for the quickstart size), so the scan comes with Winograd only.

    GPUs are left out as unmeasured (there XLA compiles whole steps with cuDNN's
    convolutions). Results equal the default's up to float rounding (benchmarks/README.md,
    "XLA cell steps").

    ``filters`` and ``kernel_size`` are the cell's; without them ``auto`` is False. ``dtype``
    is the step's compute dtype. Raises :class:`predrnn.errors.ConfigError` for another value
    of the variable.
    """
    backend = keras.backend.backend()
    if backend not in ("tensorflow", "jax"):
        return False
    setting = os.environ.get("PREDRNN_XLA_CELLS", "auto").strip().lower() or "auto"
    if setting not in ("0", "1", "auto"):
        raise ConfigError(
            f"PREDRNN_XLA_CELLS must be 0, 1 or auto (the default). Received: PREDRNN_XLA_CELLS={setting!r}"
        )
    if keras.backend.standardize_dtype(dtype) != "float32":
        return False
    if setting != "auto":
        return setting == "1"
    if kernel_size is None or filters is None:
        return False
    if backend == "jax":
        low, high = JAX_XLA_CELLS_KERNEL_SIZES
        return low <= kernel_size <= high and not _sees_a_gpu(backend)
    if filters < XLA_CELLS_MIN_FILTERS:
        return False
    return XLA_CELLS_KERNEL_SIZES[0] <= kernel_size <= XLA_CELLS_KERNEL_SIZES[1] and not _sees_a_gpu(backend)


def model_xla_cells(filters, kernel_size, dtype="float32"):
    """:func:`xla_cells` for a model of layers ``filters`` wide: on TensorFlow whether any
    layer compiles its steps; on JAX whether every layer qualifies (the scanned time loop is
    the model's)."""
    chosen = [xla_cells(width, kernel_size, dtype) for width in filters]
    return all(chosen) if keras.backend.backend() == "jax" else any(chosen)


@functools.lru_cache(maxsize=None)
def _sees_a_gpu(backend):
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


# PyTorch's models run a cell's 5x5 convolutions as Winograd's by default where they have at
# least this many output channels (see :func:`torch_winograd`).
TORCH_WINOGRAD_MIN_OUT_CHANNELS = 128
TORCH_WINOGRAD_FORWARD_MIN_CHANNELS = 64  # inputs and outputs, without gradients
TORCH_WINOGRAD_KERNEL_SIZES = (5,)


def torch_winograd(kernel_shape=None, dtype="float32", gradients=True):
    """Whether the PyTorch models' time loop runs a cell convolution with a ``(k, k, in, out)``
    kernel as a Winograd convolution (``gradients``: whether autograd records it).

    ``PREDRNN_TORCH_WINOGRAD``: ``auto`` (the default), ``1`` for every 3x3-7x7 float32
    kernel, ``0`` for none; the other backends ignore it. ``auto``: 5x5 kernels with at
    least 128 output channels, float32, no CUDA device; without gradients (rollouts,
    evaluation) also 5x5 kernels with at least 64 input and 64 output channels, such as the
    4x64 ST-LSTM's conv_o (128 -> 64). The models transform those kernels
    once per sequence (:func:`predrnn.layers.winograd.winograd_kernel`) and run the
    convolutions eagerly as :func:`predrnn.layers.winograd.transformed_winograd_conv2d`,
    whose gradient keeps what the direct convolution's keeps; a cell's gate sum of such
    convolutions (e.g. ``conv_x(x) + conv_h(h)``, without layer norm or fused gates) is one
    :func:`predrnn.layers.winograd.summed_transformed_winograd_conv2d` call with a single
    output transform (0.86-0.94x the step of separate calls at 4x64, benchmarks/gate_sums.py).

    One forward + backward, batch 8, 16x16, on a 2-core AVX2 CPU, against the direct
    convolution (``K=.. CIN=.. COUT=.. python benchmarks/conv_kernels.py
    torch|torchtransformed``, single runs, ms): 5x5 16 -> 448 23.5 / 19.8, 64 -> 448
    68.7 / 46.1, 64 -> 256 42.6 / 25.2, 64 -> 192 35.8 / 15.6, 128 -> 128 39.3 / 29.2,
    256 -> 128 89.4 / 57.2, 128 -> 512 143.0 / 69.7, 128 -> 896 279.6 / 86.7; but 128 -> 64
    17.6 / 24.7 and 32 -> 128 9.0 / 13.2 (nearer 1 in other runs): the products, which
    Winograd makes cheaper, grow with the output channels, the transforms with the input.
    7x7 (F(2x2, 7x7): 16 products per output pixel, against 4 for 5x5) lost everywhere:
    64 -> 448 124.0 / 160.8; 3x3 won at 64 -> 448 (30.6 / 17.6) but lost at 32 -> 128
    (7.1 / 9.7), so ``auto`` keeps to 5x5. The forward pass alone (``torch.no_grad``; single
    runs, ms): 128 -> 64 7.1 / 4.6, 64 -> 64 3.4 / 2.5, 256 -> 128 27.6 / 13.0, but 32 -> 64
    1.8 / 1.6, 16 -> 64 1.0 / 1.2 and 64 -> 32 1.8 / 2.0. With the separable transforms
    (session 17) 128 -> 64 also won with gradients (17.5 / 12.4 ms), and conv_o as Winograd's
    made the 4x64 training step 0.90x, but its peak memory 50-70 MB higher (benchmarks/README.md,
    "Session 17"): training keeps it direct, for the memory target; ``1`` runs it as
    Winograd's. CUDA's cuDNN picks its own algorithms (unmeasured here). Results equal the
    direct convolution's up to float rounding.

    Without ``kernel_shape``: whether the setting allows Winograd at all. Raises
    :class:`predrnn.errors.ConfigError` for another value of the variable.
    """
    if keras.backend.backend() != "torch":
        return False
    setting = os.environ.get("PREDRNN_TORCH_WINOGRAD", "auto").strip().lower() or "auto"
    if setting not in ("0", "1", "auto"):
        raise ConfigError(
            f"PREDRNN_TORCH_WINOGRAD must be 0, 1 or auto (the default). Received: PREDRNN_TORCH_WINOGRAD={setting!r}"
        )
    if kernel_shape is None:
        return setting != "0"
    if winograd_applies(kernel_shape, dtype) is None or setting == "0":
        return False
    if setting == "1":
        return True
    if kernel_shape[0] not in TORCH_WINOGRAD_KERNEL_SIZES or _sees_a_gpu("torch"):
        return False
    if not gradients and min(kernel_shape[2], kernel_shape[3]) >= TORCH_WINOGRAD_FORWARD_MIN_CHANNELS:
        return True
    return kernel_shape[3] >= TORCH_WINOGRAD_MIN_OUT_CHANNELS


def torch_records_gradients():
    """Whether this is the PyTorch backend with autograd recording (outside ``torch.no_grad``)."""
    if keras.backend.backend() != "torch":
        return False
    import torch

    return torch.is_grad_enabled()


def channel_axis(data_format):
    return 1 if data_format == CHANNELS_FIRST else -1


def conv2d(x, kernel, data_format=CHANNELS_LAST):
    """Stride-1, "same"-padded, bias-free 2-D convolution; ``kernel`` is ``(k, k, in, out)``.

    Channels-last 1x1 kernels run as a matmul over the channel axis (the same result, cheaper).
    Inside XLA cell steps the k x k kernels run as Winograd convolutions instead
    (:func:`xla_conv2d`), and so do those of the JAX and PyTorch models' time loops where
    :func:`xla_cells` or :func:`torch_winograd` say so (``VideoPredictor._unroll``).
    """
    size = kernel.shape[0]
    if data_format == CHANNELS_LAST and size == 1 and kernel.shape[1] == 1:
        return ops.matmul(x, kernel[0, 0])
    return ops.conv(x, kernel, strides=1, padding="same", data_format=data_format)


def xla_conv2d(x, kernel, data_format=CHANNELS_LAST, u=None):
    """:func:`conv2d` as the XLA cell steps compute it (:func:`xla_step`; TensorFlow).

    3x3-7x7 float32 kernels run as Winograd convolutions (4x4 output tiles up to 5x5, 2x2
    above), which XLA fuses; the rest as :func:`conv2d`. Only inside XLA-compiled steps:
    uncompiled, Winograd is slower than the direct convolution. ``u``: the Winograd kernel
    of ``kernel`` transformed beforehand (see :func:`_transformed_kernels`), or None.
    """
    tile = winograd_applies(kernel.shape, x.dtype)
    if tile is not None:
        return recomputing_winograd_conv2d(x, kernel, tile=tile, data_format=data_format, u=u)
    return conv2d(x, kernel, data_format)


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


def add_terms(*terms):
    """Sum of the terms that are not ``None`` (``None`` stands for an exact zero)."""
    present = [t for t in terms if t is not None]
    total = present[0]
    for term in present[1:]:
        total = total + term
    return total


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


class ConvRecurrentCell(keras.layers.Layer):
    """Shared constructor, weights and config of the convolutional recurrent cells.

    Not used directly: see :class:`SpatioTemporalLSTMCell` and :class:`ConvLSTMCell`.
    """

    def __init__(
        self,
        filters,
        kernel_size=5,
        use_layer_norm=False,
        forget_bias=1.0,
        kernel_initializer="reference",
        data_format=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_channels_last(data_format)
        self.filters = check_positive_int("filters", filters)
        self.kernel_size = check_kernel_size(kernel_size)
        self.use_layer_norm = bool(use_layer_norm)
        self.forget_bias = float(forget_bias)
        self.kernel_initializer = serialize_kernel_initializer(kernel_initializer)
        self.data_format = "channels_last"
        self._initializer = get_kernel_initializer(kernel_initializer)

    def run_step(self, inputs, states, data_format=CHANNELS_LAST, fused_kernels=None):
        """:meth:`step` as the models' time loop calls it: XLA-compiled where :func:`xla_cells` says so.

        On TensorFlow, for cells of at least 64 filters with 5x5-7x7 kernels and no GPU
        (``PREDRNN_XLA_CELLS=auto``, the default; ``1`` for every cell, ``0`` for none), it is
        :func:`xla_step`: a forward and a backward ``tf.function(jit_compile=True)`` per
        layout, the backward keeping only the step's inputs and its convolutions' outputs.
        Float32 steps only: under mixed precision the step runs as :meth:`step` (the backward
        half is traced outside the layer's autocast scope, and the Winograd convolutions are
        float32-only anyway). Otherwise, and on the other backends, it is :meth:`step` itself
        (on JAX the models compile the cells inside their scanned time loop instead).
        """
        if keras.backend.backend() != "tensorflow" or not xla_cells(self.filters, self.kernel_size, inputs.dtype):
            return self.step(inputs, states, data_format, fused_kernels)
        return xla_step(self, inputs, states, data_format, fused_kernels)

    def _check_input_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape (batch, height, width, channels). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        height, width, channels = input_shape[1:]
        if channels is None:
            raise ValueError(
                f"{type(self).__name__} needs a known channel dimension. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        if self.use_layer_norm and (height is None or width is None):
            raise ValueError(
                "use_layer_norm=True normalises over (height, width, channels) with an affine of "
                "that shape, so height and width must be known when the layer is built. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        return height, width, channels

    def _add_kernel(self, name, in_channels, out_channels, size=None):
        size = self.kernel_size if size is None else size
        return self.add_weight(
            name=name, shape=(size, size, in_channels, out_channels), initializer=self._initializer
        )

    def _add_layer_norm(self, name, height, width, channels):
        gamma = self.add_weight(name=f"{name}_gamma", shape=(height, width, channels), initializer="ones")
        beta = self.add_weight(name=f"{name}_beta", shape=(height, width, channels), initializer="zeros")
        return gamma, beta

    def _conv(self, x, kernel, norm=None, data_format=CHANNELS_LAST):
        """conv(x) [+ layer norm]; ``x=None`` stands for an all-zero input (a zero state).

        A bias-free conv of zeros is exactly zero, so it is skipped (``None`` is returned);
        with layer norm the result is exactly the affine offset ``beta``.
        """
        if x is None:
            if norm is None:
                return None
            beta = norm[1]
            if data_format == CHANNELS_FIRST:
                beta = ops.transpose(beta, (2, 0, 1))
            return ops.expand_dims(beta, 0)  # (1, ...): broadcasts over the batch
        y = self._convolve(x, kernel, data_format)
        if norm is not None:
            y = spatial_layer_norm(y, *norm, data_format=data_format)
        return y

    def _fused_conv(self, x, state, kernel, data_format=CHANNELS_LAST):
        """``conv([x, state])`` with a kernel stacked over input channels; ``state=None`` is zero.

        A zero state contributes nothing, so only the x rows of the kernel are used.
        """
        axis = channel_axis(data_format)
        if state is None:
            return self._convolve(x, kernel[:, :, : x.shape[axis], :], data_format)
        return self._convolve(ops.concatenate([x, state], axis=axis), kernel, data_format)

    def _convolve(self, x, kernel, data_format):
        """:func:`conv2d`, or what an XLA cell step substitutes for it (see :func:`xla_step`)."""
        hook = getattr(_CONV_HOOK, "function", None)
        return conv2d(x, kernel, data_format) if hook is None else hook(x, kernel, data_format)

    def _summed_convolutions(self, terms, out_channels, data_format):
        """The gate pre-activations ``sum_i conv(x_i, kernel_i)`` as one call, where the time
        loop's convolutions can sum before their output transform (PyTorch's Winograd
        convolutions, ``VideoPredictor._loop_convolution``); otherwise ``None``, and the cell
        adds its separate convolutions itself. ``terms`` are ``(x, kernel, placements)``
        (see :func:`predrnn.layers.winograd.summed_transformed_winograd_conv2d`); terms with
        ``x=None`` (zero states) are left out. Not with layer norm, which normalises each
        convolution on its own, nor with fused gates (:func:`fused_gates`), which keep their
        concatenated convolutions.
        """
        summed = getattr(getattr(_CONV_HOOK, "function", None), "summed", None)
        if summed is None or self.use_layer_norm or fused_gates():
            return None
        return summed([term for term in terms if term[0] is not None], out_channels, data_format)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "use_layer_norm": self.use_layer_norm,
                "forget_bias": self.forget_bias,
                "kernel_initializer": self.kernel_initializer,
            }
        )
        return config


_CONV_HOOK = threading.local()  # what the cells' convolutions run as while a step is traced


@contextlib.contextmanager
def conv_hook(function):
    """Within it, the cells' convolutions run as ``function(x, kernel, data_format)`` (used while
    a compiled step is traced: XLA cell steps, JAX's scanned loop; and in PyTorch's loop). A
    ``function`` with a ``summed(terms, out_channels, data_format)`` method also takes the
    cells' gate sums (:meth:`ConvRecurrentCell._summed_convolutions`)."""
    with _thread_setting(_CONV_HOOK, "function", function):
        yield


@contextlib.contextmanager
def _thread_setting(local, name, value):
    """``local.name = value`` within it (a ``threading.local``), the previous value after."""
    previous = getattr(local, name, None)
    setattr(local, name, value)
    try:
        yield
    finally:
        setattr(local, name, previous)


def xla_step(cell, inputs, states, data_format=CHANNELS_LAST, fused_kernels=None):
    """``cell.step`` as two XLA-compiled functions, forward and backward (TensorFlow; see :func:`xla_cells`).

    The forward step returns the step's outputs and the outputs of its convolutions, a
    cell's gate sum (``conv_x(x) + conv_h(h) [+ conv_m(m)]`` placed channel-wise, without
    layer norm or fused gates; :meth:`ConvRecurrentCell._summed_convolutions`) as one output:
    the sum is all the backward step needs of its terms. The backward step recomputes the
    rest of the step from those (gates, layer norms: elementwise work, and the 1x1
    convolutions, whose outputs it does not keep) and pulls the output gradients back
    through the other convolutions, which it does not recompute. Only the step's
    inputs, the weights and those outputs are kept between the two: TensorFlow's automatic
    gradient of one compiled step kept every gate activation and returned its inputs and the
    kernels again, copied by XLA, per time step (25 MB per 4x64 layer-step at batch 8; each
    convolution's output: 8 MB; the gate sums: 4.5 MB; benchmarks/README.md).
    ``None`` states (exact zeros, the first time step's) go in as zero tensors, so that the
    first step runs the later steps' functions instead of a pair of its own. That costs the
    first step's convolutions of zeros (~2% of a 4x64 training step, within the noise) and
    saves compiling and keeping two more functions per cell configuration: 4x64 Moving
    MNIST, 1195 against 1300 MB above the imports and a first step of 46 against 53 s
    (benchmarks/README.md, "Session 15"). The results are the same: a convolution of zeros
    is zero (``beta`` after a layer norm, as :meth:`ConvRecurrentCell._conv` gives).
    Cells of one configuration and weight shapes share the two functions (the weights are
    arguments): a model's layers 2 to n compile once.
    """
    import tensorflow as tf

    compiled = cell.__dict__.setdefault("_xla_steps", {})
    if data_format not in compiled:
        compiled[data_format] = _shared_xla_step(cell, data_format)
    forward, backward = compiled[data_format].functions
    states = _zeros_for_none(cell, inputs, states, data_format)
    sources, weights, transformed = _step_weights(cell)
    arguments = _differentiable(inputs, states, fused_kernels, weights)
    flat = [tf.convert_to_tensor(value) for value in tf.nest.flatten(arguments)]
    count = len(weights)  # the weights are the last arguments

    def unflatten(flat):
        x, given, fused, values = tf.nest.pack_sequence_as(arguments, list(flat))
        return x, tuple(given), None if fused_kernels is None else fused, values

    @tf.custom_gradient
    def step(*flat):
        outputs, conv_outputs = forward(*unflatten(flat), transformed)
        passed = [tf.identity(weight) for weight in flat[len(flat) - count :]]

        def grad(*output_gradients):  # None for an output the loss does not use
            later = output_gradients[len(outputs) :]  # the cell's later steps' weight gradients, summed
            output_gradients = [tf.zeros_like(y) if g is None else g for y, g in zip(outputs, output_gradients)]
            gradients = backward(*unflatten(flat), conv_outputs, output_gradients)
            own = gradients[len(gradients) - count :]
            summed = [a if b is None else b if a is None else a + b for a, b in zip(own, later)]
            return [*gradients[: len(gradients) - count], *summed]

        return (*outputs, *passed), grad

    results = step(*flat)
    _pass_weights(cell, sources, results[len(results) - count :], transformed)
    return results[: len(results) - count]


# Per thread (a tf.distribute replica runs in its own) and per graph: the weights each cell's
# last XLA step passed on (see :func:`_step_weights`).
_PASSED_WEIGHTS = threading.local()


def _passed_weights_table():
    import tensorflow as tf

    tables = getattr(_PASSED_WEIGHTS, "tables", None)
    if tables is None:
        tables = _PASSED_WEIGHTS.tables = weakref.WeakKeyDictionary()
    return tables.setdefault(tf.compat.v1.get_default_graph(), {})


@contextlib.contextmanager
def weights_read_per_step():
    """Within it, XLA cell steps read their variables themselves and pass nothing on
    (:func:`_step_weights`). For rematerialised steps (``keras.remat``; TensorFlow's
    ``tf.recompute_grad`` differentiates only a step's inputs and the variables it reads)."""
    with _thread_setting(_PASSED_WEIGHTS, "off", True):
        yield


def _passes_weights():
    import tensorflow as tf

    return not tf.executing_eagerly() and not getattr(_PASSED_WEIGHTS, "off", None)


def _step_weights(cell):
    """``(sources, weights, transformed)``: the cell's weights as an XLA step takes them (TensorFlow).

    In a traced graph the steps of a cell pass its weights on, one step to the next
    (:func:`xla_step`: an identity, no copy), so that each step's backward adds its weight
    gradients to those of the later steps and passes one sum on. Each step reading the
    variables itself left TensorFlow's gradient to sum every step's weight gradients at
    once, holding them all until the first time step's backward: 19 x 24 MB at 4x64/batch
    8 (benchmarks/README.md, "Memory (session 11)"). ``sources`` (the variables, or what a
    ``keras.StatelessScope`` maps them to) tell whether the passed weights are still the
    ones to use; eagerly (and under :func:`weights_read_per_step`) every step reads the
    variables. ``transformed`` are the Winograd kernels of the weights that are read
    (:func:`_transformed_kernels`), passed on with them: once per sequence in a traced graph.
    """
    import tensorflow as tf

    sources = tuple(weight.value for weight in cell.weights)
    if _passes_weights():
        passed = _passed_weights_table().get(id(cell))
        if passed is not None and all(a is b for a, b in zip(passed[0], sources)):
            return sources, list(passed[1]), passed[2]
    weights = [tf.convert_to_tensor(source) for source in sources]
    return sources, weights, _transformed_kernels(cell, weights)


def _pass_weights(cell, sources, weights, transformed):
    if _passes_weights():
        _passed_weights_table()[id(cell)] = (sources, tuple(weights), transformed)


def _winograd_weights(cell):
    """The positions in ``cell.weights`` of the kernels the XLA steps run as Winograd's, with their tiles."""
    return [
        (index, tile)
        for index, weight in enumerate(cell.weights)
        if (tile := winograd_applies(tuple(weight.shape), weight.dtype)) is not None
    ]


def _transformed_kernels(cell, weights):
    """The Winograd kernels (:func:`predrnn.layers.winograd.winograd_kernel`) of the cell's
    3x3-7x7 kernels among ``weights``, in :func:`_winograd_weights`' order, without a gradient.

    The forward XLA steps convolve with them instead of transforming their kernels at every
    time step; the backward steps still transform theirs, so that nothing of the size of
    the transformed kernels (61 MB at 4x64, ~270 MB on the paper model) stays alive into the
    backward pass, where the memory peaks. On a 2-core AMX Xeon at 4x64
    (``predrnn benchmark --preset mnist --impl reference tensorflow --steps 5``, one run
    each): a 10-15% faster rollout per sequence (0.086-0.088 against 0.095-0.099 s), a
    training step 0.79-0.82x the reference's against 0.81-0.83x, and the same working
    memory within the run-to-run spread. Passed into the backward steps as well they made
    the step 0.75-0.79x the reference's, but the working set 1.05x the reference's in both
    runs (benchmarks/README.md, "Session 18"). The results are the same up to float
    rounding (the training loss agreed to the last digit).
    """
    import tensorflow as tf

    return tuple(tf.stop_gradient(winograd_kernel(weights[index], tile)) for index, tile in _winograd_weights(cell))


def _zeros_for_none(cell, inputs, states, data_format):
    """``states`` with each ``None`` (an exact-zero state) as a zero tensor of the cell's state shape."""
    if all(state is not None for state in states):
        return tuple(states)
    height, width = inputs.shape[2:] if data_format == CHANNELS_FIRST else inputs.shape[1:3]
    shape = (cell.filters, height, width) if data_format == CHANNELS_FIRST else (height, width, cell.filters)
    zeros = ops.zeros((ops.shape(inputs)[0], *shape), dtype=inputs.dtype)
    return tuple(zeros if state is None else state for state in states)


def _differentiable(x, states, fused_kernels, weights):
    """What a step is differentiated by, in the order of :func:`xla_step`'s flat arguments
    and of the backward step's gradients; the fused kernels are left out when there are none."""
    return x, list(states), () if fused_kernels is None else fused_kernels, weights


class _CompiledStep:
    """The forward and backward functions of :func:`xla_step` for cells of one configuration
    (an object, not a tuple, so that the weak-valued cache below can refer to it)."""

    def __init__(self, functions):
        self.functions = functions


# Cells of one configuration (a model's layers 2 to n, or the models of several seeded runs
# in one process) share their compiled functions: the weights are arguments, so only the
# configuration and the shapes shape the computation. A model's 4 layers then compile 4
# functions (the first layer's configuration and the others', forward and backward) instead
# of 8. An entry lives while a cell that uses it does.
_SHARED_XLA_STEPS = weakref.WeakValueDictionary()


def _shared_xla_step(cell, data_format):
    config = {k: v for k, v in cell.get_config().items() if k not in ("name", "trainable")}
    weights = tuple((tuple(w.shape), str(w.dtype)) for w in cell.weights)
    key = (type(cell), json.dumps(config, sort_keys=True, default=str), weights, data_format, fused_gates())
    shared = _SHARED_XLA_STEPS.get(key)
    if shared is None:
        # The first cell of the configuration is the template its steps are traced with;
        # StatelessScope maps its weights to the calling cell's values.
        shared = _SHARED_XLA_STEPS[key] = _CompiledStep(_compile_xla_step(cell, data_format))
    return shared


def _compile_xla_step(cell, data_format):
    """The forward and backward ``tf.function(jit_compile=True)`` of :func:`xla_step`."""
    import tensorflow as tf

    def table(transformed):  # {id(variable): its Winograd kernel}, as the cell's step passes the variables
        return {id(cell.weights[index]): u for (index, _), u in zip(_winograd_weights(cell), transformed)}

    def run(x, states, fused, values, conv):
        with keras.StatelessScope(state_mapping=list(zip(cell.weights, values))), conv_hook(conv):
            return tuple(cell.step(x, states, data_format, fused))

    def forward(x, states, fused, values, transformed):
        record = _RecordedConvolutions(table(transformed))
        return run(x, states, fused, values, record), tuple(record.outputs)

    def backward(x, states, fused, values, conv_outputs, output_gradients):
        sources = _differentiable(x, states, fused, values)
        with tf.GradientTape() as tape:
            tape.watch(sources)
            outputs = run(x, states, fused, values, _ReplayedConvolutions(conv_outputs))
        gradients = tape.gradient(outputs, sources, output_gradients=list(output_gradients))
        return tf.nest.flatten(gradients)  # None for a weight the step does not use

    return tf.function(forward, jit_compile=True), tf.function(backward, jit_compile=True)


class _RecordedConvolutions:
    """The forward XLA step's convolutions (a :func:`conv_hook` function): :func:`xla_conv2d`,
    each output recorded for the backward step; a cell's gate sum is recorded as the sum
    (:func:`placed_sum`), which is all the backward step needs of its terms. 1x1
    convolutions (the ST-LSTM's conv_last) are not recorded: the backward step recomputes
    them (:func:`_recomputed`)."""

    def __init__(self, transformed=None):
        self.outputs = []
        self.transformed = transformed or {}  # {id(kernel variable): its Winograd kernel}

    def __call__(self, x, kernel, data_format):
        if _recomputed(kernel):
            return xla_conv2d(x, kernel, data_format)
        return self.summed([_whole_term(x, kernel)], kernel.shape[-1], data_format)

    def summed(self, terms, out_channels, data_format):
        convolved = [
            (xla_conv2d(x, kernel, data_format, u=self.transformed.get(id(kernel))), places) for x, kernel, places in terms
        ]
        self.outputs.append(placed_sum(convolved, out_channels, data_format))
        return self.outputs[-1]


class _ReplayedConvolutions:
    """The backward XLA step's convolutions: the recorded outputs, in the forward's order,
    with the convolutions' gradients (:func:`_replayed_sum`)."""

    def __init__(self, recorded):
        self.recorded = iter(recorded)

    def __call__(self, x, kernel, data_format):
        if _recomputed(kernel):
            return xla_conv2d(x, kernel, data_format)
        return self.summed([_whole_term(x, kernel)], kernel.shape[-1], data_format)

    def summed(self, terms, out_channels, data_format):
        return _replayed_sum(terms, next(self.recorded), out_channels, data_format)


def _recomputed(kernel):
    """Whether the backward XLA step recomputes this convolution instead of keeping its output:
    1x1 kernels, whose multiply-adds are 1/25 of a 5x5's (the 4x64 ST-LSTM's conv_last: 0.2%
    of a training step), while their outputs are as large as any other's (0.5 MB per cell
    and time step at 4x64/batch 8, 38 MB a sequence; benchmarks/README.md, "Session 16")."""
    return tuple(kernel.shape[:2]) == (1, 1)


def _whole_term(x, kernel):
    """``conv(x, kernel)`` as the one term of a gate sum: every output channel in place."""
    return x, kernel, ((0, 0, kernel.shape[-1]),)


def placed_sum(outputs, out_channels, data_format=CHANNELS_LAST):
    """``sum_i y_i`` over ``outputs`` ``(y_i, placements_i)``, each ``y_i`` placed into the
    ``out_channels`` channels by its ``(source, target, width)`` triples (channels ``source ..
    source + width`` of ``y_i`` to ``target .. target + width``; see
    :func:`predrnn.layers.winograd.summed_transformed_winograd_conv2d`)."""
    axis = channel_axis(data_format) % 4
    total = None
    for y, places in outputs:
        for source, target, width in checked_placements(places, y.shape[axis], out_channels):
            piece = y
            if width != y.shape[axis]:
                piece = y[:, source : source + width] if axis == 1 else y[..., source : source + width]
            if width != out_channels:
                padding = [[0, 0]] * 4
                padding[axis] = [target, out_channels - target - width]
                piece = ops.pad(piece, padding)
            total = piece if total is None else total + piece
    return total


def _replayed_sum(terms, y, out_channels, data_format):
    """``y``, recorded as the :func:`placed_sum` of the :func:`xla_conv2d` of ``terms``
    (``(x, kernel, placements)``), with the gradients of those convolutions (TensorFlow).

    The gradient is that of the recomputed sum; its forward computation is unused, so XLA
    removes it.
    """
    import tensorflow as tf

    places = [p for _, _, p in terms]
    flat = [ops.convert_to_tensor(value) for x, kernel, _ in terms for value in (x, kernel)]

    @tf.custom_gradient
    def replayed(*arguments):
        inputs, y = list(arguments[:-1]), arguments[-1]

        def grad(dy):
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                convolved = [
                    (xla_conv2d(x, kernel, data_format), p) for x, kernel, p in zip(inputs[0::2], inputs[1::2], places)
                ]
                recomputed = placed_sum(convolved, out_channels, data_format)
            return (*tape.gradient(recomputed, inputs, output_gradients=dy), None)

        return tf.identity(y), grad

    return replayed(*flat, y)
