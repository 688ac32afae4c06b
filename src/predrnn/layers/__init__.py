"""Recurrent cells: one layer, one time step, and the contract new cells follow."""

from predrnn.layers.conv_lstm_cell import ConvLSTMCell
from predrnn.layers.conv_recurrent_cell import (
    CELLS,
    Convolution,
    ConvRecurrentCell,
    StateSpec,
    get_cell_class,
    register_cell,
)
from predrnn.layers.spatiotemporal_lstm_cell import SpatioTemporalLSTMCell

__all__ = [
    "CELLS",
    "ConvLSTMCell",
    "ConvRecurrentCell",
    "Convolution",
    "SpatioTemporalLSTMCell",
    "StateSpec",
    "get_cell_class",
    "register_cell",
]
