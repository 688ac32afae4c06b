"""The spatiotemporal LSTM (ST-LSTM) cell of PredRNN (Wang et al., NeurIPS 2017)."""

from predrnn.acceleration import sigmoid, tanh
from predrnn.layers.conv_recurrent_cell import Convolution, ConvRecurrentCell, StateSpec, register_cell


@register_cell("spatiotemporal_lstm")
class SpatioTemporalLSTMCell(ConvRecurrentCell):
    """One layer of the ST-LSTM for one time step.

    With ``*`` elementwise and every conv stride 1, "same" padding and no bias::

        [i_x f_x g_x i'_x f'_x g'_x o_x] = conv_x(x)       (7 * filters channels)
        [i_h f_h g_h o_h]                = conv_h(hidden)  (4 * filters)
        [i_m f_m g_m]                    = conv_m(memory)  (3 * filters)
        i  = sigmoid(i_x + i_h)   f  = sigmoid(f_x + f_h + forget_bias)   g  = tanh(g_x + g_h)
        delta_c = i * g           cell'   = f * cell + delta_c
        i' = sigmoid(i'_x + i_m)  f' = sigmoid(f'_x + f_m + forget_bias)  g' = tanh(g'_x + g_m)
        delta_m = i' * g'         memory' = f' * memory + delta_m
        o  = sigmoid(o_x + o_h + conv_o([cell', memory']))      conv_o: kernel_size, 2f -> f
        hidden' = o * tanh(conv_last([cell', memory']))         conv_last: 1x1, 2f -> f

    ``cell`` is the temporal memory C of the paper, ``memory`` the spatiotemporal
    memory M that zigzags through the stack. With ``use_layer_norm`` the outputs of
    conv_x, conv_h, conv_m and conv_o are layer-normalised per sample over
    (H, W, C) with an (H, W, C) affine, epsilon 1e-5, as in the official code.

    Args:
        filters: width of hidden, cell and memory.
        kernel_size: odd spatial kernel size of every conv except conv_last.
        use_layer_norm: layer normalisation after conv_x, conv_h, conv_m and conv_o.
        forget_bias: added to both forget-gate pre-activations (1.0 in the paper).
        return_increments: also return ``delta_c`` and ``delta_m`` (for the PredRNN-V2
            decoupling loss).
        kernel_initializer: ``"reference"`` (PyTorch's default conv init, used by the
            official code) or any Keras initializer.

    Call arguments:
        inputs: ``(batch, height, width, in_channels)``.
        states: ``(hidden, cell, memory)``, each ``(batch, height, width, filters)``.

    Returns:
        ``(hidden, cell, memory)``, or ``(hidden, cell, memory, delta_c, delta_m)`` with
        ``return_increments=True``.

    Reference:
        Wang et al., "PredRNN: Recurrent Neural Networks for Predictive Learning using
        Spatiotemporal LSTMs", NeurIPS 2017; "PredRNN: A Recurrent Neural Network for
        Spatiotemporal Predictive Learning", TPAMI 2022.
    """

    state_spec = (StateSpec("hidden"), StateSpec("cell"), StateSpec("memory", flows_up=True))

    def __init__(
        self,
        filters,
        kernel_size=5,
        use_layer_norm=False,
        forget_bias=1.0,
        return_increments=False,
        kernel_initializer="reference",
        data_format=None,
        **kwargs,
    ):
        super().__init__(
            filters=filters,
            kernel_size=kernel_size,
            use_layer_norm=use_layer_norm,
            forget_bias=forget_bias,
            kernel_initializer=kernel_initializer,
            data_format=data_format,
            **kwargs,
        )
        self.return_increments = bool(return_increments)

    @property
    def auxiliary_outputs(self):
        return ("delta_c", "delta_m") if self.return_increments else ()

    def convolutions(self, input_channels):
        k, n = self.kernel_size, self.filters
        return (
            Convolution("x", (k, k, input_channels, 7 * n), gates=("i", "f", "g", "i'", "f'", "g'", "o")),
            Convolution("h", (k, k, n, 4 * n), gates=("i", "f", "g", "o")),
            Convolution("m", (k, k, n, 3 * n), gates=("i'", "f'", "g'")),
            Convolution("o", (k, k, 2 * n, n)),
            Convolution("last", (1, 1, 2 * n, n), layer_norm=False),
        )

    def step(self, inputs, states):
        hidden, cell, memory = states
        pre = self.gates(x=inputs, h=hidden, m=memory)

        i = sigmoid(pre["i"])
        f = sigmoid(pre["f"] + self.forget_bias)
        g = tanh(pre["g"])
        delta_c = i * g
        cell = delta_c if cell is None else f * cell + delta_c

        i_prime = sigmoid(pre["i'"])
        f_prime = sigmoid(pre["f'"] + self.forget_bias)
        g_prime = tanh(pre["g'"])
        delta_m = i_prime * g_prime
        memory = delta_m if memory is None else f_prime * memory + delta_m

        both, (cell, memory) = self.concatenate(cell, memory)
        o = sigmoid(pre["o"] + self.conv("o", both))
        hidden = o * tanh(self.conv("last", both))
        if self.return_increments:
            return hidden, (hidden, cell, memory), (delta_c, delta_m)
        return hidden, (hidden, cell, memory)

    def get_config(self):
        config = super().get_config()
        config["return_increments"] = self.return_increments
        return config
