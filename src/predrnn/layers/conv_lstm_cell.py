"""The convolutional LSTM cell (Shi et al., 2015), the baseline of PredRNN."""

import keras
from keras import ops

from predrnn.layers.common import ConvRecurrentCell


@keras.saving.register_keras_serializable(package="predrnn")
class ConvLSTMCell(ConvRecurrentCell):
    """One ConvLSTM layer for one time step, with the conventions of the ST-LSTM::

        [i_x f_x g_x o_x] = conv_x(x)        [i_h f_h g_h o_h] = conv_h(hidden)
        i = sigmoid(i_x + i_h)   f = sigmoid(f_x + f_h + forget_bias)
        g = tanh(g_x + g_h)      o = sigmoid(o_x + o_h)
        cell' = f * cell + i * g              hidden' = o * tanh(cell')

    Bias-free "same" convs, no peepholes (as Keras' ConvLSTM2D and OpenSTL), so that a
    comparison with PredRNN isolates the spatiotemporal memory. ``use_layer_norm``
    normalises the outputs of conv_x and conv_h as in :class:`SpatioTemporalLSTMCell`.

    Call arguments:
        inputs: ``(batch, height, width, in_channels)``.
        states: ``(hidden, cell)``, each ``(batch, height, width, filters)``.

    Returns:
        ``(hidden, cell)``.
    """

    def build(self, input_shape):
        height, width, channels = self._check_input_shape(input_shape)
        n = self.filters
        self.kernel_x = self._add_kernel("kernel_x", channels, 4 * n)
        self.kernel_h = self._add_kernel("kernel_h", n, 4 * n)
        self.norms = {}
        if self.use_layer_norm:
            self.norms["x"] = self._add_layer_norm("norm_x", height, width, 4 * n)
            self.norms["h"] = self._add_layer_norm("norm_h", height, width, 4 * n)

    def call(self, inputs, states):
        hidden, cell = states
        gates = self._conv(inputs, self.kernel_x, self.norms.get("x")) + self._conv(
            hidden, self.kernel_h, self.norms.get("h")
        )
        i, f, g, o = ops.split(gates, 4, axis=-1)
        cell = ops.sigmoid(f + self.forget_bias) * cell + ops.sigmoid(i) * ops.tanh(g)
        hidden = ops.sigmoid(o) * ops.tanh(cell)
        return hidden, cell

    def compute_output_spec(self, inputs, states):
        return tuple(keras.KerasTensor(states[0].shape, dtype=self.compute_dtype) for _ in range(2))
