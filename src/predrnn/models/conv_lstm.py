"""The ConvLSTM baseline with PredRNN's interface."""

import keras

from predrnn.layers.conv_lstm_cell import ConvLSTMCell
from predrnn.models.video_predictor import VideoPredictor


@keras.saving.register_keras_serializable(package="predrnn")
class ConvLSTM(VideoPredictor):
    """Stacked ConvLSTM cells with PredRNN's patching, head, loop, masks and ``rollout``.

    Per-layer hidden and cell states, no spatiotemporal memory, so that a comparison
    with :class:`PredRNN` isolates the ST-LSTM. Same arguments (without
    ``decoupling_weight``), inputs and outputs as :class:`PredRNN`.
    """

    def __init__(
        self,
        filters=(64, 64, 64, 64),
        kernel_size=5,
        patch_size=4,
        use_layer_norm=False,
        forget_bias=1.0,
        kernel_initializer="reference",
        remat=False,
        **kwargs,
    ):
        super().__init__(
            filters=filters,
            kernel_size=kernel_size,
            patch_size=patch_size,
            use_layer_norm=use_layer_norm,
            forget_bias=forget_bias,
            kernel_initializer=kernel_initializer,
            remat=remat,
            **kwargs,
        )
        self.cells = [
            ConvLSTMCell(
                width,
                kernel_size=self.kernel_size,
                use_layer_norm=self.use_layer_norm,
                forget_bias=self.forget_bias,
                kernel_initializer=kernel_initializer,
                name=f"conv_lstm_{index}",
            )
            for index, width in enumerate(self.filters)
        ]

    def _build_stack(self, in_channels, height, width):
        for index, cell in enumerate(self.cells):
            cell.build((None, height, width, in_channels if index == 0 else self.filters[index - 1]))

    def _initial_state(self):
        count = len(self.filters)  # exact zeros, as None: the first step skips their convs
        return [None] * count, [None] * count

    def _step(self, x, state, with_decoupling, data_format, constants=None):
        hidden, cell = state
        new_hidden, new_cell = [], []
        inputs = x
        for index, layer in enumerate(self.cells):
            fused = None if constants is None else constants[index]
            inputs, c = layer.run_step(inputs, (hidden[index], cell[index]), data_format, fused)
            new_hidden.append(inputs)
            new_cell.append(c)
        return inputs, (new_hidden, new_cell), None
