"""Everything backend-specific and speed-only, behind one seam.

The cells (:mod:`predrnn.layers`) and the models' frame loop (:mod:`predrnn.models`) hold the
reference computation, in ``keras.ops``. They reach the fast paths through a few calls:

- the cells' base class calls :func:`convolve`, :func:`gate_preactivations` and
  :func:`concatenate_states` (:mod:`~predrnn.acceleration.convolution`), and uses
  :func:`sigmoid` and :func:`tanh` (:mod:`~predrnn.acceleration.activations`);
- the model's loop runs each cell through :func:`run_step`
  (:mod:`~predrnn.acceleration.tensorflow_steps`: TensorFlow's XLA cell steps) inside
  :func:`~predrnn.acceleration.loops.sequence` (per-sequence hooks: Winograd on PyTorch,
  cast-once kernels, fused gates), or as :func:`~predrnn.acceleration.loops.scanned_unroll`
  (JAX's scanned loop); its compiled functions release the heap after compiling
  (:mod:`~predrnn.acceleration.memory`).

One typed, frozen :class:`AccelerationOptions` switches them all (:func:`get_options`,
:func:`use_options`, :func:`set_options`; the ``PREDRNN_*`` environment variables are its
documented overrides). Every fast path computes what the reference computes up to float
rounding; tests/test_winograd.py and tests/test_benchmark.py check each against it.
"""

import importlib

# The names load lazily: predrnn.acceleration.memory must be importable before a backend
# starts (the ``predrnn`` command sets the allocators first), and the rest imports keras.
_EXPORTS = {
    "AccelerationOptions": "options",
    "get_options": "options",
    "internal_data_format": "options",
    "set_options": "options",
    "use_options": "options",
    "channel_axis": "convolution",
    "concatenate_states": "convolution",
    "conv2d": "convolution",
    "convolve": "convolution",
    "current_layout": "convolution",
    "gate_preactivations": "convolution",
    "loop_context": "convolution",
    "run_step": "tensorflow_steps",
    "sigmoid": "activations",
    "tanh": "activations",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"predrnn.acceleration.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'predrnn.acceleration' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
