import keras
import numpy as np
import pytest

import numpy_reference as ref
from predrnn import ConvLSTMCell, SpatioTemporalLSTMCell
from predrnn.acceleration import loop_context
from predrnn.testing import run_serialization_test, saved_for_backward


def _random_inputs(rng, b=2, h=6, w=5, cin=3, n=4):
    x = rng.random((b, h, w, cin)).astype("float32")
    states = [rng.standard_normal((b, h, w, n)).astype("float32") * 0.5 for _ in range(3)]
    return x, states


def _cell_weights(cell, rng):
    weights = {v.name: v for v in cell.weights}
    values = {}
    for name, variable in weights.items():
        shape = tuple(variable.shape)
        if name.endswith("_gamma"):
            values[name] = 1 + 0.1 * rng.standard_normal(shape)
        elif name.endswith("_beta"):
            values[name] = 0.1 * rng.standard_normal(shape)
        else:
            values[name] = 0.3 * rng.standard_normal(shape)
        variable.assign(values[name].astype("float32"))
    return values


@pytest.mark.parametrize("use_layer_norm", [False, True])
def test_st_lstm_cell_matches_numpy_reference(rng, use_layer_norm):
    x, (h, c, m) = _random_inputs(rng)
    cell = SpatioTemporalLSTMCell(4, kernel_size=3, use_layer_norm=use_layer_norm, return_increments=True)
    cell.build(x.shape)
    weights = _cell_weights(cell, rng)
    got = [keras.ops.convert_to_numpy(v) for v in cell(x, (h, c, m))]
    want = ref.st_lstm_step(x.astype(np.float64), h, c, m, weights)
    for name, g, w in zip(["hidden", "cell", "memory", "delta_c", "delta_m"], got, want):
        np.testing.assert_allclose(g, w, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("use_layer_norm", [False, True])
def test_conv_lstm_cell_matches_numpy_reference(rng, use_layer_norm):
    x, (h, c, _) = _random_inputs(rng)
    cell = ConvLSTMCell(4, kernel_size=5, use_layer_norm=use_layer_norm)
    cell.build(x.shape)
    weights = _cell_weights(cell, rng)
    got = [keras.ops.convert_to_numpy(v) for v in cell(x, (h, c))]
    want = ref.conv_lstm_step(x.astype(np.float64), h, c, weights)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-5)


def test_forget_bias_is_used(rng):
    x, (h, c, m) = _random_inputs(rng)
    outs = []
    for bias in (1.0, 0.0):
        keras.utils.set_random_seed(0)
        cell = SpatioTemporalLSTMCell(4, kernel_size=3, forget_bias=bias)
        outs.append(keras.ops.convert_to_numpy(cell(x, (h, c, m))[1]))
    assert np.abs(outs[0] - outs[1]).max() > 1e-3


@pytest.mark.parametrize(
    "use_layer_norm, expected",
    [(False, 5), (True, 5 + 8)],
)
def test_st_lstm_weight_counts(use_layer_norm, expected):
    cell = SpatioTemporalLSTMCell(4, kernel_size=3, use_layer_norm=use_layer_norm)
    cell.build((None, 8, 8, 2))
    assert len(cell.trainable_weights) == expected
    shapes = {v.name: tuple(v.shape) for v in cell.weights}
    assert shapes["kernel_x"] == (3, 3, 2, 28)
    assert shapes["kernel_h"] == (3, 3, 4, 16)
    assert shapes["kernel_m"] == (3, 3, 4, 12)
    assert shapes["kernel_o"] == (3, 3, 8, 4)
    assert shapes["kernel_last"] == (1, 1, 8, 4)
    if use_layer_norm:
        assert shapes["norm_x_gamma"] == (8, 8, 28)


def test_conv_lstm_weight_counts():
    cell = ConvLSTMCell(4, kernel_size=3, use_layer_norm=True)
    cell.build((None, 8, 8, 2))
    assert len(cell.trainable_weights) == 2 + 4


def test_states_keep_spatial_shape(rng):
    x, states = _random_inputs(rng, h=7, w=9)
    for out in SpatioTemporalLSTMCell(4, kernel_size=5)(x, states):
        assert tuple(out.shape) == (2, 7, 9, 4)


@pytest.mark.parametrize("cls", [SpatioTemporalLSTMCell, ConvLSTMCell])
def test_cell_serialization(cls):
    cell = cls(6, kernel_size=3, use_layer_norm=True, forget_bias=0.5, name="c")
    clone = run_serialization_test(cell)
    assert clone.filters == 6 and clone.kernel_size == 3 and clone.use_layer_norm and clone.forget_bias == 0.5


def test_cell_kernel_initializer_serializes():
    cell = SpatioTemporalLSTMCell(4, kernel_initializer="glorot_uniform")
    assert cell.get_config()["kernel_initializer"] == "glorot_uniform"
    run_serialization_test(cell)


def test_reference_initializer_limit():
    cell = SpatioTemporalLSTMCell(8, kernel_size=5)
    cell.build((None, 4, 4, 16))
    kernel = keras.ops.convert_to_numpy(cell.kernel_x)
    limit = 1 / np.sqrt(5 * 5 * 16)  # PyTorch's Conv2d default
    assert np.abs(kernel).max() <= limit + 1e-7
    assert np.abs(kernel).max() > 0.9 * limit


def test_channels_first_rejected():
    with pytest.raises(ValueError, match="channels-last"):
        SpatioTemporalLSTMCell(4, data_format="channels_first")


@pytest.mark.parametrize("bad", [dict(filters=0), dict(filters=4, kernel_size=4), dict(filters=2.5)])
def test_bad_constructor_arguments(bad):
    with pytest.raises(ValueError, match="Received"):
        SpatioTemporalLSTMCell(**bad)


def test_layer_norm_needs_known_spatial_size():
    cell = SpatioTemporalLSTMCell(4, use_layer_norm=True)
    with pytest.raises(ValueError, match="height and width must be known"):
        cell.build((None, None, None, 3))


@pytest.mark.performance
@pytest.mark.skipif(keras.backend.backend() != "torch", reason="PyTorch's autograd keeps tensors by storage")
@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_torch_st_lstm_backward_keeps_the_new_states_once(rng, data_format):
    """conv_o and conv_last keep the concatenation ``[cell', memory']`` for their backward;
    the new states are views of it, so the next step's gradient keeps no second copy of
    them (76 MB at 4x64/batch 8). Values stay those of the NumPy reference."""
    import torch

    x, (h, c, m) = _random_inputs(rng)
    cell = SpatioTemporalLSTMCell(4, kernel_size=3)
    cell.build(x.shape)
    weights = _cell_weights(cell, rng)
    layout = (lambda a: torch.tensor(a).permute(0, 3, 1, 2)) if data_format == "channels_first" else torch.tensor
    with loop_context(layout=data_format):  # the layout of a model's time loop
        h1, c1, m1 = cell.step(layout(x), tuple(layout(s).requires_grad_() for s in (h, c, m)))[1]
        h2, c2, m2 = cell.step(layout(x), (h1, c1, m1))[1]
    axis = 1 if data_format == "channels_first" else 3

    def holds(t, state):  # the state itself, or a concatenation with it as one half
        if t.shape == state.shape:
            return torch.equal(t, state)
        if t.dim() == 4 and t.shape[axis] == 2 * state.shape[axis]:
            return any(torch.equal(half, state) for half in torch.split(t, state.shape[axis], axis))
        return False

    saved = [t for _, t in saved_for_backward((h2.sum() + c2.sum() + m2.sum()).grad_fn)]
    copies = {t.untyped_storage().data_ptr() for t in saved for state in (c1, m1) if holds(t, state)}
    assert len(copies) == 1, f"{len(copies)} storages hold step 1's cell and memory states"
    with torch.no_grad(), loop_context(layout=data_format):  # nothing kept, no views (strided views made rollouts slower)
        _, c3, m3 = cell.step(layout(x), (h1, c1, m1))[1]
    assert c3.untyped_storage().data_ptr() != m3.untyped_storage().data_ptr()
    back = (lambda t: t.permute(0, 2, 3, 1)) if data_format == "channels_first" else (lambda t: t)
    want = ref.st_lstm_step(x.astype(np.float64), h, c, m, weights)
    for got, expected in zip((h1, c1, m1), want):
        np.testing.assert_allclose(back(got).detach().numpy(), expected, rtol=1e-5, atol=1e-5)
