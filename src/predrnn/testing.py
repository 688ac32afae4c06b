"""A small test harness for predrnn layers and models (public Keras API only).

Usable by projects that extend predrnn: each helper raises ``AssertionError`` with a
message naming what differs.
"""

import json
import os
import tempfile

import keras
import numpy as np


def run_serialization_test(obj):
    """``get_config -> from_config -> get_config`` is stable and a Keras serialisation round-trips."""
    config = obj.get_config()
    clone = type(obj).from_config(config)
    if json.dumps(clone.get_config(), sort_keys=True, default=str) != json.dumps(config, sort_keys=True, default=str):
        raise AssertionError(
            f"{type(obj).__name__}: get_config changed through from_config.\nbefore: {config}\nafter:  {clone.get_config()}"
        )
    serialized = keras.saving.serialize_keras_object(obj)
    revived = keras.saving.deserialize_keras_object(serialized)
    if type(revived) is not type(obj):
        raise AssertionError(f"deserialize_keras_object gave {type(revived).__name__}, not {type(obj).__name__}")
    return clone


def run_model_saving_test(model, inputs, atol=1e-6):
    """Save ``model`` as ``.keras``, load it, and compare class and outputs on ``inputs``."""
    expected = keras.ops.convert_to_numpy(model(inputs))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    if type(loaded) is not type(model):
        raise AssertionError(f"loaded a {type(loaded).__name__}, saved a {type(model).__name__}")
    actual = keras.ops.convert_to_numpy(loaded(inputs))
    np.testing.assert_allclose(actual, expected, atol=atol, err_msg="outputs differ after .keras save/load")
    return loaded


def saved_for_backward(root):
    """``[(node, tensor)]``: every tensor saved for the backward pass in the PyTorch autograd
    graph behind ``root`` (a ``grad_fn``), with the node that saved it; custom
    ``autograd.Function`` nodes included. For checking what a training forward keeps alive."""
    import torch

    seen, saved, stack = set(), [], [root]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        tensors = []
        for name in dir(node):
            if name.startswith("_saved_"):
                value = getattr(node, name, None)
                tensors += [t for t in (value if isinstance(value, (tuple, list)) else [value]) if isinstance(t, torch.Tensor)]
        tensors += list(getattr(node, "saved_tensors", ()) or ())  # custom autograd.Functions
        saved += [(node, tensor) for tensor in tensors]
        stack += [next_node for next_node, _ in getattr(node, "next_functions", ())]
    return saved
