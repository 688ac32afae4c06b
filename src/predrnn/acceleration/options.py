"""The acceleration options: one typed, frozen object that switches every fast path.

Every fast path computes what the reference computation computes, up to float rounding;
the options choose speed and memory, never results. They come from, in order:

1. :func:`use_options` (a context manager) or :func:`set_options` (process-wide), in Python;
2. the environment variables below, documented overrides for command-line runs and for
   benchmark workers;
3. the defaults (``"auto"``: decided per cell and backend by the rules of
   :func:`xla_cells` and :func:`torch_winograd`).

=============================  =======================  ==========================================
field                          environment variable     values
=============================  =======================  ==========================================
``xla_cells``                  ``PREDRNN_XLA_CELLS``    ``"auto"`` (default), ``True`` (``1``), ``False`` (``0``)
``fused_gates``                ``PREDRNN_FUSED_GATES``  ``False`` (default, ``0``), ``True`` (``1``)
``torch_winograd``             ``PREDRNN_TORCH_WINOGRAD`` ``"auto"`` (default), ``True``, ``False``
``internal_layout``            ``PREDRNN_INTERNAL_LAYOUT`` ``None`` (the backend's), ``"channels_first"``, ``"channels_last"``
=============================  =======================  ==========================================

A model reads the options once per call (:func:`get_options`) and runs its whole time loop
with them; ``predrnn train`` records them in ``run.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import threading

import keras

from predrnn.acceleration.winograd import WINOGRAD_KERNEL_SIZES, winograd_applies
from predrnn.errors import ConfigError

CHANNELS_LAST = "channels_last"
CHANNELS_FIRST = "channels_first"

ENVIRONMENT_VARIABLES = {
    "xla_cells": "PREDRNN_XLA_CELLS",
    "fused_gates": "PREDRNN_FUSED_GATES",
    "torch_winograd": "PREDRNN_TORCH_WINOGRAD",
    "internal_layout": "PREDRNN_INTERNAL_LAYOUT",
}


def _tristate(name, value):
    """``"auto"``, True or False out of a field's value or its environment variable's text."""
    if isinstance(value, bool) or value == "auto":
        return value
    text = str(value).strip().lower() or "auto"
    if text in ("0", "1", "auto"):
        return text if text == "auto" else text == "1"
    variable = ENVIRONMENT_VARIABLES[name]
    raise ConfigError(f"{variable} must be 0, 1 or auto (the default). Received: {variable}={value!r}")


@dataclasses.dataclass(frozen=True)
class AccelerationOptions:
    """Which fast paths the models take (see the module docstring for the defaults).

    Attributes:
        xla_cells: ``"auto"``, True or False. TensorFlow: compile each cell step as an XLA
            forward and backward function with Winograd convolutions; JAX: run the time loop
            as one ``keras.ops.scan`` with Winograd convolutions. Float32 only; PyTorch
            ignores it.
        fused_gates: fuse each cell's gate convolutions into one convolution per group of
            gates (concatenated inputs, stacked kernels); not with layer norm.
        torch_winograd: ``"auto"``, True or False: PyTorch's loop runs the cells' k x k
            convolutions as Winograd convolutions with kernels transformed once per sequence.
        internal_layout: ``None`` (channels-first on PyTorch, channels-last elsewhere),
            ``"channels_first"`` or ``"channels_last"``: the layout of the time loop (inputs
            and outputs stay channels-last).
    """

    xla_cells: bool | str = "auto"
    fused_gates: bool = False
    torch_winograd: bool | str = "auto"
    internal_layout: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "xla_cells", _tristate("xla_cells", self.xla_cells))
        object.__setattr__(self, "torch_winograd", _tristate("torch_winograd", self.torch_winograd))
        object.__setattr__(self, "fused_gates", bool(self.fused_gates))
        if self.internal_layout not in (None, CHANNELS_FIRST, CHANNELS_LAST):
            raise ConfigError(
                "internal_layout must be None, 'channels_first' or 'channels_last'. "
                f"Received: internal_layout={self.internal_layout!r}"
            )

    @classmethod
    def from_environment(cls, environ=None) -> AccelerationOptions:
        """The defaults, overridden by the ``PREDRNN_*`` variables that ``environ`` sets."""
        environ = os.environ if environ is None else environ
        values = {}
        for field, variable in ENVIRONMENT_VARIABLES.items():
            text = environ.get(variable)
            if text is None:
                continue
            if field == "fused_gates":
                values[field] = text.strip() == "1"
            elif field == "internal_layout":
                values[field] = text if text in (CHANNELS_FIRST, CHANNELS_LAST) else None
            else:
                values[field] = _tristate(field, text)
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_SET = threading.local()
_PROCESS_OPTIONS = [None]


def set_options(options: AccelerationOptions | None) -> None:
    """Use ``options`` in this process from now on (``None``: back to the environment)."""
    if options is not None and not isinstance(options, AccelerationOptions):
        raise TypeError(f"set_options takes an AccelerationOptions or None. Received: {options!r}")
    _PROCESS_OPTIONS[0] = options


@contextlib.contextmanager
def use_options(options: AccelerationOptions | None = None, **changes):
    """Within it (this thread), the models use ``options`` (default: the current ones) with
    ``changes``, e.g. ``with use_options(xla_cells=False): model.fit(...)``."""
    chosen = dataclasses.replace(options or get_options(), **changes)
    previous = getattr(_SET, "options", None)
    _SET.options = chosen
    try:
        yield chosen
    finally:
        _SET.options = previous


def get_options() -> AccelerationOptions:
    """The options in effect: :func:`use_options`', else :func:`set_options`', else the environment's.

    Raises :class:`predrnn.errors.ConfigError` for an environment variable with an unknown value.
    """
    chosen = getattr(_SET, "options", None) or _PROCESS_OPTIONS[0]
    if chosen is not None:
        return chosen
    return _from_environment_cached(tuple(os.environ.get(v) for v in ENVIRONMENT_VARIABLES.values()))


@functools.lru_cache(maxsize=16)
def _from_environment_cached(values):
    return AccelerationOptions.from_environment(dict(zip(ENVIRONMENT_VARIABLES.values(), values)))


# ----------------------------------------------------------------------------- devices
@functools.cache
def sees_a_gpu(backend):
    """Whether ``backend`` runs on an accelerator (the CPU rules below leave those alone)."""
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


# ----------------------------------------------------------------------------- the rules
def internal_data_format(options=None):
    """The layout the recurrent loop runs in on this backend (inputs and outputs stay channels-last).

    PyTorch's convolutions are channels-first: Keras' channels-last ``conv`` on the torch
    backend transposes every input and output, which a recurrent step pays dozens of times,
    so on torch the loop runs channels-first throughout (one transpose in, one out).
    TensorFlow (whose CPU convolutions are channels-last only) and JAX (XLA picks its own
    layouts) stay channels-last. ``options.internal_layout`` overrides the choice.
    """
    options = options or get_options()
    if options.internal_layout is not None:
        return options.internal_layout
    return CHANNELS_FIRST if keras.backend.backend() == "torch" else CHANNELS_LAST


def fused_gates(options=None):
    """Whether the cells fuse their gate convolutions (off by default: the reference's
    separate convolutions measured as fast or faster on CPUs; docs/performance.md)."""
    return (options or get_options()).fused_gates


# Cells at least this wide, with 5x5 to 7x7 kernels, compile their steps by default on
# TensorFlow without a GPU. On JAX every cell with a 3x3 to 7x7 kernel qualifies (the
# scanned loop needs every kernel to be Winograd's).
XLA_CELLS_MIN_FILTERS = 64
XLA_CELLS_KERNEL_SIZES = (5, 7)
JAX_XLA_CELLS_KERNEL_SIZES = WINOGRAD_KERNEL_SIZES


def xla_cells(filters=None, kernel_size=None, dtype="float32", options=None):
    """Whether a cell's steps are compiled on their own, its k x k convolutions as Winograd's.

    ``options.xla_cells``: ``"auto"`` (the default), True for every cell, False for none.
    Float32 steps only (under mixed precision the cells run as the reference); PyTorch
    ignores it.

    - **TensorFlow** (``auto``: cells of at least 64 filters with a 5x5 to 7x7 kernel, no
      visible GPU): each such cell's step becomes a compiled forward and backward
      ``tf.function(jit_compile=True)`` (:func:`predrnn.acceleration.tensorflow_steps.xla_step`)
      inside the otherwise uncompiled training step, its 3x3-7x7 convolutions Winograd's.
      Faster on CPUs for the Moving MNIST and paper models, for a longer first compile and
      somewhat more memory; small cells (the quickstart's 32 filters, 3x3) train slower with
      it, hence the rule.
    - **JAX** (``auto``: every cell has a 3x3 to 7x7 kernel, JAX runs on the CPU): the models'
      time loop after the first step becomes one ``keras.ops.scan`` (one step traced and
      compiled instead of the whole unrolled sequence), its cells' k x k convolutions
      Winograd's with the kernels transformed once per sequence
      (:func:`predrnn.acceleration.loops.scanned_unroll`). A model-wide choice: one cell
      that does not qualify keeps the unrolled loop. XLA:CPU runs direct convolutions inside
      a loop several times slower than unrolled, so the scan comes with Winograd only.

    GPUs are left to XLA's own whole-step compilation with cuDNN's convolutions. Results
    equal the reference's up to float rounding (docs/performance.md).

    ``filters`` and ``kernel_size`` are the cell's; without them ``auto`` is False. ``dtype``
    is the step's compute dtype.
    """
    backend = keras.backend.backend()
    if backend not in ("tensorflow", "jax"):
        return False
    setting = (options or get_options()).xla_cells
    if keras.backend.standardize_dtype(dtype) != "float32":
        return False
    if setting != "auto":
        return setting
    if kernel_size is None or filters is None:
        return False
    if backend == "jax":
        low, high = JAX_XLA_CELLS_KERNEL_SIZES
        return low <= kernel_size <= high and not sees_a_gpu(backend)
    if filters < XLA_CELLS_MIN_FILTERS:
        return False
    return XLA_CELLS_KERNEL_SIZES[0] <= kernel_size <= XLA_CELLS_KERNEL_SIZES[1] and not sees_a_gpu(backend)


def model_xla_cells(filters, kernel_size, dtype="float32", options=None):
    """:func:`xla_cells` for a model of layers ``filters`` wide: on TensorFlow whether any
    layer compiles its steps; on JAX whether every layer qualifies (the scanned time loop is
    the model's)."""
    chosen = [xla_cells(width, kernel_size, dtype, options) for width in filters]
    return all(chosen) if keras.backend.backend() == "jax" else any(chosen)


# PyTorch's models run a cell's 5x5 convolutions as Winograd's by default where they have at
# least this many output channels (see :func:`torch_winograd`).
TORCH_WINOGRAD_MIN_OUT_CHANNELS = 128
TORCH_WINOGRAD_FORWARD_MIN_CHANNELS = 64  # inputs and outputs, without gradients
TORCH_WINOGRAD_KERNEL_SIZES = (5,)


def torch_winograd(kernel_shape=None, dtype="float32", gradients=True, options=None):
    """Whether the PyTorch models' time loop runs a cell convolution with a ``(k, k, in, out)``
    kernel as a Winograd convolution (``gradients``: whether autograd records it).

    ``options.torch_winograd``: ``"auto"`` (the default), True for every 3x3-7x7 float32
    kernel, False for none; the other backends ignore it. ``auto``: 5x5 kernels with at
    least 128 output channels, float32, no CUDA device; without gradients (rollouts,
    evaluation) also 5x5 kernels with at least 64 input and 64 output channels, such as the
    4x64 ST-LSTM's conv_o (128 -> 64). The loop transforms those kernels once per sequence
    (:func:`predrnn.acceleration.winograd.winograd_kernel`) and runs the convolutions as
    :func:`predrnn.acceleration.winograd.transformed_winograd_conv2d`, whose gradient keeps
    what the direct convolution's keeps; a cell's gate sum of such convolutions is one
    :func:`predrnn.acceleration.winograd.summed_transformed_winograd_conv2d` call with a
    single output transform.

    Why these thresholds: Winograd makes the products cheaper, whose cost grows with the
    output channels, and adds transforms, whose cost grows with the input channels; on CPUs
    5x5 kernels with many output channels win, 7x7 kernels (F(2x2, 7x7)) lose, 3x3 kernels
    win only when wide. In training, conv_o (128 -> 64 at 4x64) stays direct: as Winograd's
    it is slightly faster but keeps more memory. CUDA's cuDNN picks its own algorithms.
    Measurements: ``benchmarks/conv_kernels.py`` and docs/performance.md.

    Without ``kernel_shape``: whether the setting allows Winograd at all.
    """
    if keras.backend.backend() != "torch":
        return False
    setting = (options or get_options()).torch_winograd
    if kernel_shape is None:
        return setting is not False
    if winograd_applies(kernel_shape, dtype) is None or setting is False:
        return False
    if setting is True:
        return True
    if kernel_shape[0] not in TORCH_WINOGRAD_KERNEL_SIZES or sees_a_gpu("torch"):
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


def resolved(model_filters, kernel_size, largest_kernels, compute_dtype="float32", options=None) -> dict:
    """What the options resolve to for a model, for ``run.json``: the options themselves and
    ``xla_cells`` / ``torch_winograd`` as booleans (whether any cell takes the fast path).

    ``largest_kernels``: per layer, the kernel shape of its widest convolution (from the
    cell's :meth:`~predrnn.layers.ConvRecurrentCell.convolutions`), which decides PyTorch's rule.
    """
    options = options or get_options()
    return {
        "options": options.to_dict(),
        "xla_cells": model_xla_cells(model_filters, kernel_size, compute_dtype, options),
        "fused_gates": fused_gates(options),
        "torch_winograd": any(torch_winograd(shape, compute_dtype, options=options) for shape in largest_kernels),
    }
