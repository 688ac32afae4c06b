"""The convolutional LSTM cell (Shi et al., 2015), the baseline of PredRNN."""

from predrnn.acceleration import sigmoid, tanh
from predrnn.layers.conv_recurrent_cell import Convolution, ConvRecurrentCell, StateSpec, register_cell


@register_cell("conv_lstm")
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

    Reference:
        Shi et al., "Convolutional LSTM Network: A Machine Learning Approach for
        Precipitation Nowcasting", NeurIPS 2015.
    """

    state_spec = (StateSpec("hidden"), StateSpec("cell"))

    def convolutions(self, input_channels):
        k, n = self.kernel_size, self.filters
        return (
            Convolution("x", (k, k, input_channels, 4 * n), gates=("i", "f", "g", "o")),
            Convolution("h", (k, k, n, 4 * n), gates=("i", "f", "g", "o")),
        )

    def step(self, inputs, states):
        hidden, cell = states
        pre = self.gates(x=inputs, h=hidden)
        delta = sigmoid(pre["i"]) * tanh(pre["g"])
        cell = delta if cell is None else sigmoid(pre["f"] + self.forget_bias) * cell + delta
        hidden = sigmoid(pre["o"]) * tanh(cell)
        return hidden, (hidden, cell)
