"""Sequence models: PredRNN (V1 and V2) and the ConvLSTM baseline."""

import keras

from predrnn.models.conv_lstm import ConvLSTM
from predrnn.models.predrnn import PredRNN
from predrnn.models.video_predictor import VideoPredictor

__all__ = ["ConvLSTM", "PredRNN", "VideoPredictor", "load_model"]


def load_model(path, compile=True):
    """``keras.saving.load_model`` with every predrnn class registered."""
    import predrnn.layers  # noqa: F401
    import predrnn.metrics  # noqa: F401
    import predrnn.optimizers  # noqa: F401
    import predrnn.schedules  # noqa: F401

    return keras.saving.load_model(path, compile=compile)
