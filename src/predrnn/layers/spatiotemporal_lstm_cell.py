"""The spatiotemporal LSTM (ST-LSTM) cell of PredRNN (Wang et al., NeurIPS 2017)."""

import keras
from keras import ops

from predrnn.layers.activations import sigmoid, tanh
from predrnn.layers.common import (
    CHANNELS_LAST,
    ConvRecurrentCell,
    add_terms,
    channel_axis,
    fused_gates,
    torch_records_gradients,
)


@keras.saving.register_keras_serializable(package="predrnn")
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
    """

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

    def build(self, input_shape):
        height, width, channels = self._check_input_shape(input_shape)
        n = self.filters
        self.kernel_x = self._add_kernel("kernel_x", channels, 7 * n)
        self.kernel_h = self._add_kernel("kernel_h", n, 4 * n)
        self.kernel_m = self._add_kernel("kernel_m", n, 3 * n)
        self.kernel_o = self._add_kernel("kernel_o", 2 * n, n)
        self.kernel_last = self._add_kernel("kernel_last", 2 * n, n, size=1)
        self.norms = {}
        if self.use_layer_norm:
            for name, width_mult in (("x", 7), ("h", 4), ("m", 3), ("o", 1)):
                self.norms[name] = self._add_layer_norm(f"norm_{name}", height, width, width_mult * n)

    def call(self, inputs, states):
        return self.step(inputs, states)

    def fused_kernels(self):
        """The kernels of the fused gate convolutions (opt-in: ``PREDRNN_FUSED_GATES=1``, no layer norm).

        ``conv_x(x) + conv_h(h)`` for the gates ``(i, f, g, o)`` is one convolution of the
        channel-concatenation ``[x, h]`` with the kernel ``[kernel_x[..., i f g o];
        kernel_h]`` stacked over input channels, and ``conv_x(x) + conv_m(m)`` for
        ``(i', f', g')`` one of ``[x, m]``: the same multiply-adds in two convolutions
        instead of three, and none of the seven gate additions. Returns
        ``(kernel_xh (k, k, in + n, 4n), kernel_xm (k, k, in + n, 3n))``.
        """
        n = self.filters
        kernel_x = ops.convert_to_tensor(self.kernel_x)
        x_ifgo = ops.concatenate([kernel_x[..., : 3 * n], kernel_x[..., 6 * n :]], axis=-1)
        kernel_xh = ops.concatenate([x_ifgo, ops.convert_to_tensor(self.kernel_h)], axis=2)
        kernel_xm = ops.concatenate([kernel_x[..., 3 * n : 6 * n], ops.convert_to_tensor(self.kernel_m)], axis=2)
        return kernel_xh, kernel_xm

    def step(self, inputs, states, data_format=CHANNELS_LAST, fused_kernels=None):
        """The cell's computation without Keras' ``__call__`` wrapper, in either layout.

        Used by the models' time loop. A state given as ``None`` is an exact zero (the
        initial state): the convolutions of zero states are skipped, as they are exactly
        zero (or ``beta`` with layer norm). With ``PREDRNN_FUSED_GATES=1`` and no layer norm the
        gate convolutions are fused (see :meth:`fused_kernels`; pass them to compute them once
        per sequence); by default they are the reference's separate convolutions (measured
        faster on CPU), which PyTorch's Winograd loop sums before their output transform
        (:meth:`_summed_convolutions`).
        """
        hidden, cell, memory = states
        axis = channel_axis(data_format)
        n = self.filters
        terms = [
            (inputs, self.kernel_x, ((0, 0, 7 * n),)),
            (hidden, self.kernel_h, ((0, 0, 3 * n), (3 * n, 6 * n, n))),  # i f g, o
            (memory, self.kernel_m, ((0, 3 * n, 3 * n),)),  # i' f' g'
        ]
        gates = self._summed_convolutions(terms, 7 * n, data_format)  # None: the cell adds them below
        if gates is not None:
            i_pre, f_pre, g_pre, i_prime_pre, f_prime_pre, g_prime_pre, o_pre = ops.split(gates, 7, axis=axis)
        elif self.use_layer_norm or not fused_gates():  # separate convolutions
            x_gates = self._conv(inputs, self.kernel_x, self.norms.get("x"), data_format)
            h_gates = self._conv(hidden, self.kernel_h, self.norms.get("h"), data_format)
            m_gates = self._conv(memory, self.kernel_m, self.norms.get("m"), data_format)
            i_x, f_x, g_x, i_x_m, f_x_m, g_x_m, o_x = ops.split(x_gates, 7, axis=axis)
            i_h = f_h = g_h = o_h = i_m = f_m = g_m = None
            if h_gates is not None:
                i_h, f_h, g_h, o_h = ops.split(h_gates, 4, axis=axis)
            if m_gates is not None:
                i_m, f_m, g_m = ops.split(m_gates, 3, axis=axis)
            i_pre, f_pre, g_pre = add_terms(i_x, i_h), add_terms(f_x, f_h), add_terms(g_x, g_h)
            i_prime_pre, f_prime_pre, g_prime_pre = add_terms(i_x_m, i_m), add_terms(f_x_m, f_m), add_terms(g_x_m, g_m)
            o_pre = add_terms(o_x, o_h)
        else:
            kernel_xh, kernel_xm = fused_kernels if fused_kernels is not None else self.fused_kernels()
            xh_gates = self._fused_conv(inputs, hidden, kernel_xh, data_format)
            xm_gates = self._fused_conv(inputs, memory, kernel_xm, data_format)
            i_pre, f_pre, g_pre, o_pre = ops.split(xh_gates, 4, axis=axis)
            i_prime_pre, f_prime_pre, g_prime_pre = ops.split(xm_gates, 3, axis=axis)

        i = sigmoid(i_pre)
        f = sigmoid(f_pre + self.forget_bias)
        g = tanh(g_pre)
        delta_c = i * g
        cell = delta_c if cell is None else f * cell + delta_c

        i_prime = sigmoid(i_prime_pre)
        f_prime = sigmoid(f_prime_pre + self.forget_bias)
        g_prime = tanh(g_prime_pre)
        delta_m = i_prime * g_prime
        memory = delta_m if memory is None else f_prime * memory + delta_m

        both = ops.concatenate([cell, memory], axis=axis)
        if torch_records_gradients():
            # The new states leave as views of ``both``, which the backward of conv_o and
            # conv_last keeps anyway: PyTorch's autograd then keeps one copy of them for the
            # next step's gradient, not two (76 MB at 4x64/batch 8, benchmarks/README.md).
            # Not without gradients: the strided views made rollouts ~2% slower.
            cell, memory = ops.split(both, 2, axis=axis)
        o = sigmoid(add_terms(o_pre, self._conv(both, self.kernel_o, self.norms.get("o"), data_format)))
        hidden = o * tanh(self._conv(both, self.kernel_last, data_format=data_format))
        if self.return_increments:
            return hidden, cell, memory, delta_c, delta_m
        return hidden, cell, memory

    def compute_output_spec(self, inputs, states):
        hidden = keras.KerasTensor(states[0].shape, dtype=self.compute_dtype)
        count = 5 if self.return_increments else 3
        return tuple(keras.KerasTensor(hidden.shape, dtype=hidden.dtype) for _ in range(count))

    def get_config(self):
        config = super().get_config()
        config["return_increments"] = self.return_increments
        return config
