"""The gates' sigmoid and tanh, whose backward pass keeps only their output.

``sigmoid'(x) = s (1 - s)`` and ``tanh'(x) = 1 - t^2`` need only the activation's output,
and TensorFlow's and PyTorch's gradients keep only that. JAX's automatic differentiation
keeps the output *and* the derivative (``s (1 - s)``, ``1 - t^2``) computed in the forward
pass: two tensors per gate, a large share of what a PredRNN step keeps for its backward
pass. These functions (a ``jax.custom_vjp`` keeping the output) keep one, for a smaller
training working set at the same speed (docs/performance.md). Forward values are
``keras.ops.sigmoid`` / ``keras.ops.tanh``'s on every backend.
"""

import functools

import keras
from keras import ops


def sigmoid(x):
    """``keras.ops.sigmoid(x)``; on JAX its gradient keeps only the output."""
    if keras.backend.backend() != "jax" or isinstance(x, keras.KerasTensor):
        return ops.sigmoid(x)
    return _jax_activations()[0](x)


def tanh(x):
    """``keras.ops.tanh(x)``; on JAX its gradient keeps only the output."""
    if keras.backend.backend() != "jax" or isinstance(x, keras.KerasTensor):
        return ops.tanh(x)
    return _jax_activations()[1](x)


@functools.cache
def _jax_activations():
    import jax
    import jax.numpy as jnp

    @jax.custom_vjp
    def jax_sigmoid(x):
        return jax.nn.sigmoid(x)

    def sigmoid_forward(x):
        s = jax.nn.sigmoid(x)
        return s, s

    def sigmoid_backward(s, g):
        return (g * s * (1 - s),)

    jax_sigmoid.defvjp(sigmoid_forward, sigmoid_backward)

    @jax.custom_vjp
    def jax_tanh(x):
        return jnp.tanh(x)

    def tanh_forward(x):
        t = jnp.tanh(x)
        return t, t

    def tanh_backward(t, g):
        return (g * (1 - t * t),)

    jax_tanh.defvjp(tanh_forward, tanh_backward)
    return jax_sigmoid, jax_tanh
