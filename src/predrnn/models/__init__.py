"""Sequence models: PredRNN (V1 and V2) and the ConvLSTM baseline."""

from predrnn.models.conv_lstm import ConvLSTM
from predrnn.models.predrnn import PredRNN
from predrnn.models.video_predictor import VideoPredictor

__all__ = ["ConvLSTM", "PredRNN", "VideoPredictor"]
