"""The gates' sigmoid and tanh: Keras' values on every backend; on JAX a backward pass that
keeps only their output."""

import keras
import numpy as np
import pytest

from predrnn.acceleration.activations import sigmoid, tanh
from predrnn.layers import ConvLSTMCell, SpatioTemporalLSTMCell

BACKEND = keras.backend.backend()


def test_values_are_the_sigmoid_and_tanh(rng):
    x = (rng.standard_normal((3, 5)) * 4).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(sigmoid(x)), 1 / (1 + np.exp(-x)), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tanh(x)), np.tanh(x), rtol=1e-6, atol=1e-7)


def test_symbolic_inputs_give_symbolic_outputs():
    x = keras.KerasTensor((None, 4, 4, 2))
    assert sigmoid(x).shape == (None, 4, 4, 2)
    assert tanh(x).shape == (None, 4, 4, 2)


@pytest.mark.skipif(BACKEND != "jax", reason="jax.custom_vjp")
@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_jax_gradient_is_the_derivative_and_keeps_only_the_output(rng, name):
    import jax
    import jax.numpy as jnp

    function = {"sigmoid": sigmoid, "tanh": tanh}[name]
    x = jnp.asarray((rng.standard_normal((4, 6)) * 3).astype("float32"))
    weights = jnp.asarray(rng.standard_normal((4, 6)).astype("float32"))
    y = np.asarray(function(x))
    want = weights * (y * (1 - y) if name == "sigmoid" else 1 - y * y)
    got = jax.jit(jax.grad(lambda x: jnp.sum(function(x) * weights)))(x)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-7)
    _, pullback = jax.vjp(function, x)
    kept = jax.tree_util.tree_leaves(pullback)
    assert len(kept) == 1
    np.testing.assert_array_equal(np.asarray(kept[0]), y)


@pytest.mark.performance
@pytest.mark.skipif(BACKEND != "jax", reason="what JAX's automatic differentiation keeps")
@pytest.mark.parametrize("cls, states, activations", [(SpatioTemporalLSTMCell, 3, 8), (ConvLSTMCell, 2, 5)])
def test_jax_cell_steps_keep_one_tensor_per_activation(rng, cls, states, activations):
    """A cell step's backward keeps at most its activations' outputs and its inputs; JAX's own
    sigmoid and tanh kept their derivatives too (18 tensors of the state's shape for an
    ST-LSTM step, 11 for ConvLSTM's)."""
    import jax
    import jax.numpy as jnp

    cell = cls(filters=4, kernel_size=3)
    x = jnp.asarray(rng.standard_normal((2, 6, 6, 3)).astype("float32"))
    given = tuple(jnp.asarray(rng.standard_normal((2, 6, 6, 4)).astype("float32")) for _ in range(states))
    cell(x, given)
    _, pullback = jax.vjp(lambda x, given: cell.step(x, given), x, given)
    state_sized = [leaf for leaf in jax.tree_util.tree_leaves(pullback) if leaf.shape == (2, 6, 6, 4)]
    assert len(state_sized) <= activations + states, len(state_sized)
