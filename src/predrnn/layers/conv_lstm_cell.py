"""The convolutional LSTM cell (Shi et al., 2015), the baseline of PredRNN."""

import keras
from keras import ops

from predrnn.layers.activations import sigmoid, tanh
from predrnn.layers.common import CHANNELS_LAST, ConvRecurrentCell, add_terms, channel_axis, fused_gates


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
        return self.step(inputs, states)

    def fused_kernels(self):
        """``kernel_x`` over ``kernel_h`` (stacked over input channels): ``conv_x(x) + conv_h(h)``
        as one convolution of ``[x, h]`` (opt-in: ``PREDRNN_FUSED_GATES=1``, no layer norm)."""
        return ops.concatenate([ops.convert_to_tensor(self.kernel_x), ops.convert_to_tensor(self.kernel_h)], axis=2)

    def step(self, inputs, states, data_format=CHANNELS_LAST, fused_kernels=None):
        """The cell's computation without Keras' ``__call__`` wrapper, in either layout.

        A state given as ``None`` is an exact zero (the initial state; its conv is skipped).
        With ``PREDRNN_FUSED_GATES=1`` and no layer norm the two gate convolutions are one
        (see :meth:`fused_kernels`).
        """
        hidden, cell = states
        n = self.filters
        terms = [(inputs, self.kernel_x, ((0, 0, 4 * n),)), (hidden, self.kernel_h, ((0, 0, 4 * n),))]
        gates = self._summed_convolutions(terms, 4 * n, data_format)  # None: the cell adds them below
        if gates is None and (self.use_layer_norm or not fused_gates()):  # separate convolutions
            gates = add_terms(
                self._conv(inputs, self.kernel_x, self.norms.get("x"), data_format),
                self._conv(hidden, self.kernel_h, self.norms.get("h"), data_format),
            )
        elif gates is None:
            kernel = fused_kernels if fused_kernels is not None else self.fused_kernels()
            gates = self._fused_conv(inputs, hidden, kernel, data_format)
        i, f, g, o = ops.split(gates, 4, axis=channel_axis(data_format))
        delta = sigmoid(i) * tanh(g)
        cell = delta if cell is None else sigmoid(f + self.forget_bias) * cell + delta
        hidden = sigmoid(o) * tanh(cell)
        return hidden, cell

    def compute_output_spec(self, inputs, states):
        return tuple(keras.KerasTensor(states[0].shape, dtype=self.compute_dtype) for _ in range(2))
