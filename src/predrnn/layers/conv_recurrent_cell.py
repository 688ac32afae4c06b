"""The cell contract: what a convolutional recurrent cell declares and computes.

A cell is one layer for one time step. It declares

- its **states** (:attr:`ConvRecurrentCell.state_spec`): names in the order ``step`` takes
  and returns them, each ``filters`` channels wide, and whether the state stays in its layer
  (hidden, cell) or *flows up* the stack (PredRNN's spatiotemporal memory: layer ``l`` ->
  ``l + 1`` at time ``t``, the top layer -> layer 0 at ``t + 1``);
- its **convolutions** (:meth:`ConvRecurrentCell.convolutions`): name, kernel shape, and
  for the gate convolutions the gates their output channels feed. The weights
  (``kernel_<name>``, layer norms ``norm_<name>_gamma/beta``), the FLOP count, the
  benchmark's figures, the fused-gate kernels and the acceleration rules are derived from
  this list;

and computes :meth:`ConvRecurrentCell.step` with ``keras.ops`` and three helpers of its base
class, :meth:`~ConvRecurrentCell.gates`, :meth:`~ConvRecurrentCell.conv` and
:meth:`~ConvRecurrentCell.concatenate`, which are the seam to :mod:`predrnn.acceleration`:
the same ``step`` runs as the reference, inside XLA-compiled steps, in JAX's scanned loop
and in PyTorch's channels-first Winograd loop. See docs/adding-a-cell.md.

Cells register under a name (:func:`register_cell`), by which the models build them
(``VideoPredictor(cell="conv_lstm", ...)``).
"""

from __future__ import annotations

import dataclasses

import keras
from keras import ops

from predrnn.acceleration import convolution as seam
from predrnn.acceleration.options import CHANNELS_FIRST
from predrnn.layers.common import (
    check_channels_last,
    check_kernel_size,
    check_positive_int,
    get_kernel_initializer,
    serialize_kernel_initializer,
    spatial_layer_norm,
)


@dataclasses.dataclass(frozen=True)
class StateSpec:
    """One recurrent state of a cell: ``filters`` channels, per layer or flowing up the stack."""

    name: str
    flows_up: bool = False


@dataclasses.dataclass(frozen=True)
class Convolution:
    """One stride-1, "same", bias-free convolution of a cell.

    Attributes:
        name: the weight is ``kernel_<name>``; with layer norm ``norm_<name>_gamma/beta``.
        kernel_shape: ``(k, k, in_channels, out_channels)``.
        gates: the gates its output channels feed, in order (each ``out_channels /
            len(gates)`` wide); empty for a convolution that is not a gate convolution.
        layer_norm: whether ``use_layer_norm`` normalises its output.
    """

    name: str
    kernel_shape: tuple
    gates: tuple = ()
    layer_norm: bool = True

    def flops(self, batch, height, width) -> int:
        """``2 * B * H * W * k * k * C_in * C_out``: two FLOPs per multiply-add."""
        k1, k2, cin, cout = self.kernel_shape
        return 2 * batch * height * width * k1 * k2 * cin * cout


CELLS = {}


def register_cell(name):
    """Class decorator: register a cell class under ``name`` (and as Keras-serializable)."""

    def register(cls):
        if name in CELLS and CELLS[name] is not cls:
            raise ValueError(f"A cell named {name!r} is already registered ({CELLS[name].__name__}).")
        CELLS[name] = cls
        cls.cell_name = name
        return keras.saving.register_keras_serializable(package="predrnn")(cls)

    return register


def get_cell_class(name):
    """The cell class registered under ``name`` (a class is returned as it is)."""
    if isinstance(name, type) and issubclass(name, ConvRecurrentCell):
        return name
    if name not in CELLS:
        raise ValueError(f"Unknown cell {name!r}. Registered cells: {', '.join(sorted(CELLS))}. Received: cell={name!r}")
    return CELLS[name]


class ConvRecurrentCell(keras.layers.Layer):
    """Base class of the convolutional recurrent cells: the contract and the shared weights.

    Subclasses define :attr:`state_spec`, :meth:`convolutions` and :meth:`step`, and
    register with :func:`register_cell`. The base class builds the weights from
    :meth:`convolutions` and provides the helpers a ``step`` computes with.

    Args:
        filters: the width of every state.
        kernel_size: odd spatial size of the k x k convolutions.
        use_layer_norm: layer-normalise the outputs of the convolutions that declare
            ``layer_norm`` (per sample over (H, W, C), an (H, W, C) affine, epsilon 1e-5).
        forget_bias: added to forget-gate pre-activations (for cells that have them).
        kernel_initializer: ``"reference"`` (PyTorch's default conv init, used by the
            official code) or any Keras initializer.

    Call arguments (``cell(inputs, states)``, channels-last):
        inputs: ``(batch, height, width, in_channels)``.
        states: the states of :attr:`state_spec`, each ``(batch, height, width, filters)``.

    Returns (``call``): the new states followed by the :attr:`auxiliary_outputs`, as one tuple.
    """

    state_spec = ()
    cell_name = None

    def __init__(
        self,
        filters,
        kernel_size=5,
        use_layer_norm=False,
        forget_bias=1.0,
        kernel_initializer="reference",
        data_format=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_channels_last(data_format)
        self.filters = check_positive_int("filters", filters)
        self.kernel_size = check_kernel_size(kernel_size)
        self.use_layer_norm = bool(use_layer_norm)
        self.forget_bias = float(forget_bias)
        self.kernel_initializer = serialize_kernel_initializer(kernel_initializer)
        self.data_format = "channels_last"
        self._initializer = get_kernel_initializer(kernel_initializer)
        self.norms = {}

    # ------------------------------------------------------------------ the contract
    @property
    def auxiliary_outputs(self):
        """Names of extra outputs ``step`` returns after the new states (e.g. PredRNN-V2's increments)."""
        return ()

    def convolutions(self, input_channels):
        """The cell's convolutions, as :class:`Convolution` s, for inputs of ``input_channels``."""
        raise NotImplementedError(f"{type(self).__name__} must implement convolutions(input_channels).")

    def step(self, inputs, states):
        """One time step: ``(output, new_states)``, or ``(output, new_states, auxiliary)``.

        ``states`` and ``new_states`` are tuples in :attr:`state_spec` order; a state may be
        ``None``, an exact zero (the first time step's), which :meth:`gates` and :meth:`conv`
        skip. ``output`` is what the next layer (or the model's head) reads. Compute with
        ``keras.ops``, :meth:`gates`, :meth:`conv` and :meth:`concatenate` only: the tensors
        may be channels-first inside a model's loop (:meth:`split` and :meth:`concatenate`
        know the axis).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement step(inputs, states).")

    # ------------------------------------------------------------------ derived from it
    def gate_convolutions(self):
        """The convolutions that feed gates (built cells)."""
        return tuple(conv for conv in self.convolutions(self._input_channels) if conv.gates)

    def flops(self, batch, height, width, input_channels) -> int:
        """FLOPs of one step's convolutions (every convolution, zero states included)."""
        return sum(conv.flops(batch, height, width) for conv in self.convolutions(input_channels))

    def widest_convolution(self, input_channels):
        return max(self.convolutions(input_channels), key=lambda conv: conv.kernel_shape[3])

    # ------------------------------------------------------------------ building
    def build(self, input_shape):
        height, width, channels = self._check_input_shape(input_shape)
        self._input_channels = channels
        convolutions = self.convolutions(channels)
        for conv in convolutions:
            setattr(
                self,
                f"kernel_{conv.name}",
                self.add_weight(name=f"kernel_{conv.name}", shape=conv.kernel_shape, initializer=self._initializer),
            )
        self.norms = {}
        if self.use_layer_norm:
            for conv in convolutions:
                if conv.layer_norm:
                    self.norms[conv.name] = self._add_layer_norm(f"norm_{conv.name}", height, width, conv.kernel_shape[3])

    def _check_input_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"{type(self).__name__} expects inputs of shape (batch, height, width, channels). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        height, width, channels = input_shape[1:]
        if channels is None:
            raise ValueError(f"{type(self).__name__} needs a known channel dimension. Received: input_shape={tuple(input_shape)}")
        if self.use_layer_norm and (height is None or width is None):
            raise ValueError(
                "use_layer_norm=True normalises over (height, width, channels) with an affine of "
                "that shape, so height and width must be known when the layer is built. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        return height, width, channels

    def _add_layer_norm(self, name, height, width, channels):
        gamma = self.add_weight(name=f"{name}_gamma", shape=(height, width, channels), initializer="ones")
        beta = self.add_weight(name=f"{name}_beta", shape=(height, width, channels), initializer="zeros")
        return gamma, beta

    # ------------------------------------------------------------------ what step computes with
    def kernel(self, name):
        return getattr(self, f"kernel_{name}")

    def conv(self, name, x):
        """Convolution ``name`` of ``x`` (+ its layer norm); ``x=None`` (an exact-zero state) gives
        ``None`` (a bias-free conv of zeros is zero), or the norm's ``beta`` with layer norm."""
        norm = self.norms.get(name)
        layout = seam.current_layout()
        if x is None:
            if norm is None:
                return None
            beta = norm[1]
            if layout == CHANNELS_FIRST:
                beta = ops.transpose(beta, (2, 0, 1))
            return ops.expand_dims(beta, 0)  # (1, ...): broadcasts over the batch
        y = seam.convolve(x, self.kernel(name))
        if norm is not None:
            y = spatial_layer_norm(y, *norm, data_format=layout)
        return y

    def gates(self, **sources):
        """``{gate: pre-activation}``: each gate the sum of its gate convolutions' slices;
        ``sources`` name each gate convolution's input (``None`` for a zero state)."""
        return seam.gate_preactivations(self, sources)

    def concatenate(self, *tensors):
        """``(concatenation, tensors)`` over channels (the tensors possibly as views of it)."""
        return seam.concatenate_states(tensors)

    def split(self, x, count):
        return ops.split(x, count, axis=seam.channel_axis())

    # ------------------------------------------------------------------ Keras
    def call(self, inputs, states):
        result = self.step(inputs, tuple(states))
        auxiliary = result[2] if len(result) > 2 else ()
        return (*result[1], *auxiliary)

    def compute_output_spec(self, inputs, states):
        count = len(self.state_spec) + len(self.auxiliary_outputs)
        return tuple(keras.KerasTensor(states[0].shape, dtype=self.compute_dtype) for _ in range(count))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "use_layer_norm": self.use_layer_norm,
                "forget_bias": self.forget_bias,
                "kernel_initializer": self.kernel_initializer,
            }
        )
        return config
