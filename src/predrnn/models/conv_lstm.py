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
        kwargs.pop("cell", None)
        kwargs.pop("cell_arguments", None)
        super().__init__(
            cell=ConvLSTMCell,
            filters=filters,
            kernel_size=kernel_size,
            patch_size=patch_size,
            use_layer_norm=use_layer_norm,
            forget_bias=forget_bias,
            kernel_initializer=kernel_initializer,
            remat=remat,
            **kwargs,
        )

    def get_config(self):
        config = super().get_config()
        del config["cell"], config["cell_arguments"]
        return config
