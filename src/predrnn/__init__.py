"""predrnn: PredRNN, PredRNN-V2 and ConvLSTM for spatiotemporal predictive learning (Keras 3).

The public names load lazily, so that ``predrnn --backend jax`` can choose the Keras
backend before keras is imported. The first use of any of them imports (and
registers for ``.keras`` loading) every model, layer, schedule and metric class; to
load a ``.keras`` file use :func:`predrnn.load_model` or import ``predrnn.models``
first.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "ConvLSTM": "predrnn.models",
    "PredRNN": "predrnn.models",
    "VideoPredictor": "predrnn.models",
    "ConvLSTMCell": "predrnn.layers",
    "SpatioTemporalLSTMCell": "predrnn.layers",
    "from_patches": "predrnn.patching",
    "to_patches": "predrnn.patching",
    "load_model": "predrnn.models",
    "pretrained": "predrnn.pretrained_models",
}
_REGISTERING = ("predrnn.models", "predrnn.layers", "predrnn.schedules", "predrnn.metrics", "predrnn.optimizers")

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        for module in _REGISTERING:
            importlib.import_module(module)
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'predrnn' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
