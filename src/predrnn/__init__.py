"""predrnn: PredRNN, PredRNN-V2 and ConvLSTM for spatiotemporal predictive learning (Keras 3)."""

from predrnn.layers import ConvLSTMCell, SpatioTemporalLSTMCell
from predrnn.models import ConvLSTM, PredRNN, VideoPredictor
from predrnn.patching import from_patches, to_patches

__version__ = "0.1.0"

__all__ = [
    "ConvLSTM",
    "ConvLSTMCell",
    "PredRNN",
    "SpatioTemporalLSTMCell",
    "VideoPredictor",
    "from_patches",
    "to_patches",
]
