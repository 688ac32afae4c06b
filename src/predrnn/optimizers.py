"""The optimizer the official PredRNN code trains with, in Keras.

:class:`PyTorchAdam` is Keras' Adam with PyTorch's arithmetic (``torch.optim.Adam``): the
epsilon is added to the bias-corrected ``sqrt(v)``,

    p -= lr / (1 - beta_1^t) * m / (sqrt(v) / sqrt(1 - beta_2^t) + eps),

where ``keras.optimizers.Adam`` adds it to ``sqrt(v)`` before the correction (an epsilon
``1 / sqrt(1 - beta_2^t)`` times larger: 32x at step 1, 3.2x at step 100). For models whose
early gradients are tiny, the two take different first steps (docs/design.md, "Training").
``train.adam_epsilon_placement`` chooses between them (:func:`predrnn.jobs.config.build_optimizer`).
"""

from __future__ import annotations

import math

import keras
from keras import ops

__all__ = ["PyTorchAdam"]


def _bias_correction(beta, step):
    """``1 - beta^step`` as PyTorch has it (in double precision, then rounded): as
    ``-expm1(step * log(beta))`` with ``log(beta)`` of the Python float. ``1 - beta^step``
    in float32 rounds beta = 0.999 itself and is off by 1e-5 relative."""
    if isinstance(beta, (int, float)):
        return -ops.expm1(step * math.log(beta)) if beta > 0 else ops.ones_like(step)
    return 1 - ops.power(ops.cast(beta, step.dtype), step)


@keras.saving.register_keras_serializable(package="predrnn")
class PyTorchAdam(keras.optimizers.Adam):
    """Adam with ``torch.optim.Adam``'s update (see the module docstring). Its configuration
    and slots are Keras Adam's; ``amsgrad`` is not supported."""

    def __init__(self, *args, amsgrad=False, **kwargs):
        if amsgrad:
            raise ValueError("PyTorchAdam does not implement amsgrad.")
        super().__init__(*args, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        correction_1 = _bias_correction(self.beta_1, step)
        correction_2 = _bias_correction(self.beta_2, step)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        denominator = ops.add(ops.divide(ops.sqrt(v), ops.sqrt(correction_2)), self.epsilon)
        self.assign_sub(variable, ops.divide(ops.multiply(m, ops.divide(lr, correction_1)), denominator))
