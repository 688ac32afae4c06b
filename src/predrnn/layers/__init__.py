"""Recurrent cells: one layer, one time step."""

from predrnn.layers.conv_lstm_cell import ConvLSTMCell
from predrnn.layers.spatiotemporal_lstm_cell import SpatioTemporalLSTMCell

__all__ = ["ConvLSTMCell", "SpatioTemporalLSTMCell"]
