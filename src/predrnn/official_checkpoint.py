"""Import checkpoints of the official PyTorch PredRNN (thuml/predrnn-pytorch).

The official code saves ``torch.save({"net_param": state_dict}, "model.ckpt-<iteration>")``
with channels-first conv weights ``(out, in, kh, kw)`` and layer-norm affines of
shape ``(C, H, W)``::

    cell_list.{l}.conv_x.0.weight   (7n, in, k, k)   + conv_x.1.weight/.bias (7n, w, w) with layer norm
    cell_list.{l}.conv_h.0.weight   (4n, n, k, k)    cell_list.{l}.conv_m.0.weight (3n, n, k, k)
    cell_list.{l}.conv_o.0.weight   (n, 2n, k, k)    cell_list.{l}.conv_last.weight (n, 2n, 1, 1)
    conv_last.weight                (p*p*C, n_top, 1, 1)
    adapter.weight                  (n, n, 1, 1)     PredRNN-V2 only

Reading the file needs ``torch`` (an optional extra); converting a state dict of
NumPy arrays (:func:`assign_official_state`) does not. The converter writes through the
model's public weights only: each cell's convolutions (``cell.convolutions``, the cell
contract) map to the official ``conv_<name>`` keys, and the model class comes from Keras'
registry, so this module imports no model.
"""

from __future__ import annotations

import math
import os
import re

import keras
import numpy as np

from predrnn.errors import CheckpointError

_CONV_NAMES = {"conv_x": ("x", 7), "conv_h": ("h", 4), "conv_m": ("m", 3), "conv_o": ("o", 1)}


def read_official_state(path) -> dict[str, np.ndarray]:
    """Read a ``model.ckpt-N`` (saved on CPU or GPU) into a dict of float32 NumPy arrays."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"Official checkpoint not found: {path!r}. Pass the path of a model.ckpt-N file.")
    try:
        import torch
    except ImportError:
        raise CheckpointError(
            "Reading an official PyTorch checkpoint needs torch. Install it with "
            "`pip install 'predrnn[torch]'` (any backend can then use the weights)."
        ) from None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same message
        raise CheckpointError(
            f"Could not read {path!r} as a PyTorch checkpoint ({type(error).__name__}: {error}). "
            "Is it a model.ckpt-N written by the official PredRNN code?"
        ) from None
    state = payload.get("net_param", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not state:
        raise CheckpointError(
            f"{path!r} holds no state dict (expected {{'net_param': state_dict}} as saved by the "
            f"official code). Received an object of type {type(payload).__name__}."
        )
    return {key: value.detach().cpu().float().numpy() for key, value in state.items()}


def infer_arguments(state: dict[str, np.ndarray], channels: int = 1) -> dict:
    """Constructor arguments implied by an official state dict (``channels`` is not stored)."""
    layers = sorted({int(m.group(1)) for key in state if (m := re.match(r"cell_list\.(\d+)\.", key))})
    if not layers or layers != list(range(len(layers))):
        raise CheckpointError(
            "This does not look like an official PredRNN state dict: no consecutive "
            f"'cell_list.<l>.' keys. Received keys: {sorted(state)[:8]}..."
        )
    filters = tuple(state[f"cell_list.{l}.conv_h.0.weight"].shape[1] for l in layers)
    kernel_size = state["cell_list.0.conv_x.0.weight"].shape[-1]
    head = state.get("conv_last.weight")
    if head is None:
        raise CheckpointError("The state dict has no 'conv_last.weight' (the output head).")
    patch_area = head.shape[0] / channels
    patch_size = int(round(math.sqrt(patch_area)))
    if patch_size * patch_size * channels != head.shape[0]:
        raise CheckpointError(
            f"The output head has {head.shape[0]} channels, which is not patch_size**2 * channels "
            f"for channels={channels}. Pass the right `channels` (the frames' channel count)."
        )
    return {
        "filters": filters,
        "kernel_size": int(kernel_size),
        "patch_size": patch_size,
        "use_layer_norm": "cell_list.0.conv_x.1.weight" in state,
        "decoupling": "adapter.weight" in state,
    }


def expected_official_shapes(filters, kernel_size, patch_size, channels, use_layer_norm, decoupling, spatial=None):
    """The official keys and shapes for these arguments; ``spatial`` = (h, w) in patch space."""
    shapes = {}
    k = kernel_size
    for l, n in enumerate(filters):
        in_channels = patch_size * patch_size * channels if l == 0 else filters[l - 1]
        conv_inputs = {"conv_x": in_channels, "conv_h": n, "conv_m": n, "conv_o": 2 * n}
        for name, (_, mult) in _CONV_NAMES.items():
            shapes[f"cell_list.{l}.{name}.0.weight"] = (mult * n, conv_inputs[name], k, k)
            if use_layer_norm:
                norm_shape = (mult * n,) + (tuple(spatial) if spatial else (None, None))
                shapes[f"cell_list.{l}.{name}.1.weight"] = norm_shape
                shapes[f"cell_list.{l}.{name}.1.bias"] = norm_shape
        shapes[f"cell_list.{l}.conv_last.weight"] = (n, 2 * n, 1, 1)
    shapes["conv_last.weight"] = (patch_size * patch_size * channels, filters[-1], 1, 1)
    if decoupling:
        shapes["adapter.weight"] = (filters[0], filters[0], 1, 1)
    return shapes


def _shape_matches(expected, actual):
    return len(expected) == len(actual) and all(e is None or e == a for e, a in zip(expected, actual))


def check_official_state(state, filters, kernel_size, patch_size, channels, use_layer_norm, decoupling, spatial=None):
    """Raise one :class:`CheckpointError` listing every missing, unexpected or misshapen key."""
    expected = expected_official_shapes(filters, kernel_size, patch_size, channels, use_layer_norm, decoupling, spatial)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{key}: checkpoint {tuple(state[key].shape)}, model {expected[key]}"
        for key in sorted(set(expected) & set(state))
        if not _shape_matches(expected[key], state[key].shape)
    ]
    if not (missing or unexpected or wrong):
        return
    try:
        found = infer_arguments(state, channels)
    except CheckpointError:
        found = None
    hints = []
    if found:
        asked = {
            "filters": tuple(filters),
            "kernel_size": kernel_size,
            "patch_size": patch_size,
            "use_layer_norm": use_layer_norm,
            "decoupling": decoupling,
        }
        for name, value in found.items():
            if asked[name] != value:
                if name == "decoupling":
                    hints.append(
                        "decoupling_weight > 0 (e.g. 0.1): it is a PredRNN-V2 checkpoint"
                        if value
                        else "decoupling_weight=0: it is a PredRNN V1 checkpoint (no adapter)"
                    )
                else:
                    hints.append(f"{name}={value!r} (you passed {asked[name]!r})")
    lines = ["The official checkpoint does not match the model arguments."]
    if missing:
        lines.append(f"Missing keys: {missing}")
    if unexpected:
        lines.append(f"Unexpected keys: {unexpected}")
    if wrong:
        lines.append("Wrong shapes: " + "; ".join(wrong))
    if hints:
        lines.append("The checkpoint looks like it was trained with: " + ", ".join(hints) + ".")
    raise CheckpointError("\n".join(lines))


def _conv_to_keras(weight):
    return np.transpose(weight, (2, 3, 1, 0))


def assign_official_state(model, state: dict[str, np.ndarray]) -> None:
    """Copy an official state dict (NumPy, channels-first) into a built PredRNN."""
    decoupling = getattr(model, "decoupling_weight", 0.0) > 0
    channels = model.frame_shape[2]
    spatial = None
    if model.use_layer_norm and model.frame_shape[0] is not None:
        spatial = (model.frame_shape[0] // model.patch_size, model.frame_shape[1] // model.patch_size)
    if len(set(model.filters)) != 1:
        raise CheckpointError(
            "The official code only supports equal layer widths; this model has "
            f"filters={model.filters}. Pass the widths the checkpoint was trained with."
        )
    check_official_state(
        state, model.filters, model.kernel_size, model.patch_size, channels, model.use_layer_norm, decoupling, spatial
    )
    for l, cell in enumerate(model.cells):
        prefix = f"cell_list.{l}"
        in_channels = cell.kernel("x").shape[2]
        for conv in cell.convolutions(in_channels):
            # The official code wraps the k x k convolutions in nn.Sequential(conv[, LayerNorm]).
            key = f"{prefix}.conv_{conv.name}.0" if conv.layer_norm else f"{prefix}.conv_{conv.name}"
            cell.kernel(conv.name).assign(_conv_to_keras(state[f"{key}.weight"]))
            if conv.name in cell.norms:
                gamma, beta = cell.norms[conv.name]
                gamma.assign(np.transpose(state[f"{prefix}.conv_{conv.name}.1.weight"], (1, 2, 0)))
                beta.assign(np.transpose(state[f"{prefix}.conv_{conv.name}.1.bias"], (1, 2, 0)))
    model.head_kernel.assign(_conv_to_keras(state["conv_last.weight"]))
    if decoupling:
        model.decoupling_adapters[str(model.filters[0])].assign(_conv_to_keras(state["adapter.weight"]))


def load_official_checkpoint(path, model_class=None, *, image_size=None, channels=None, state=None, **kwargs):
    """Build a PredRNN from an official checkpoint file (or an already-read ``state``).

    Arguments not given are inferred from the checkpoint (``filters``,
    ``kernel_size``, ``use_layer_norm``, V1 or V2, and ``patch_size`` given
    ``channels``, default 1); arguments given are checked against it.
    ``image_size=(H, W)`` is needed only to fix the frame size without layer norm.
    """
    if model_class is None:
        model_class = keras.saving.get_registered_object("predrnn>PredRNN")
        if model_class is None:  # nothing of predrnn.models imported yet: the package root registers it
            import predrnn

            model_class = predrnn.PredRNN
    if state is None:
        state = read_official_state(path)
    if channels is None:
        channels = 1
        if "patch_size" in kwargs:
            p = int(kwargs["patch_size"])
            head = state.get("conv_last.weight")
            if head is not None and head.shape[0] % (p * p) == 0:
                channels = head.shape[0] // (p * p)
    found = infer_arguments(state, channels)
    arguments = {
        "filters": found["filters"],
        "kernel_size": found["kernel_size"],
        "patch_size": found["patch_size"],
        "use_layer_norm": found["use_layer_norm"],
        "decoupling_weight": 0.1 if found["decoupling"] else 0.0,
    }
    arguments.update(kwargs)
    if isinstance(arguments["filters"], int):
        arguments["filters"] = (arguments["filters"],)
    filters = tuple(arguments["filters"])
    if len(set(filters)) == 1:  # unequal widths are caught with a clearer message below
        check_official_state(
            state,
            filters,
            arguments["kernel_size"],
            arguments["patch_size"],
            channels,
            arguments["use_layer_norm"],
            arguments["decoupling_weight"] > 0,
        )
    model = model_class(**arguments)
    height = width = None
    if image_size is not None:
        height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    elif arguments["use_layer_norm"] and "cell_list.0.conv_x.1.weight" in state:
        _, h, w = state["cell_list.0.conv_x.1.weight"].shape
        height, width = h * model.patch_size, w * model.patch_size
    model.build((None, None, height, width, channels))
    assign_official_state(model, state)
    return model
