"""PredRNN (NeurIPS 2017) and PredRNN-V2 (TPAMI 2022) as one Keras model."""

import keras
from keras import ops

from predrnn.acceleration.convolution import conv2d, current_layout
from predrnn.acceleration.options import CHANNELS_FIRST
from predrnn.layers.spatiotemporal_lstm_cell import SpatioTemporalLSTMCell
from predrnn.models.video_predictor import FRAMES, TEACHER_FORCING_MASK, VideoPredictor


def decoupling_term(delta_c, delta_m, adapter_kernel, data_format=None):
    """Mean |cosine similarity| between the adapted increments, per (sample, channel).

    Each channel of ``adapter(delta_c)`` and ``adapter(delta_m)`` is flattened over
    H*W and L2-normalised; the cosine over H*W is averaged (in absolute value) over
    samples and channels. PredRNN-V2's decoupling loss is the mean of this over
    layers and time steps. Computed in float32 (also under mixed precision).
    ``data_format``: the tensors' layout (default: the current loop's).
    """
    data_format = data_format or current_layout()
    a = ops.cast(conv2d(delta_c, adapter_kernel, data_format), "float32")
    b = ops.cast(conv2d(delta_m, adapter_kernel, data_format), "float32")
    shape = ops.shape(a)
    if data_format == CHANNELS_FIRST:  # (B, C, H, W) -> (B, C, H*W)
        a = ops.reshape(a, (shape[0], shape[1], -1))
        b = ops.reshape(b, (shape[0], shape[1], -1))
        spatial_axis = 2
    else:  # (B, H, W, C) -> (B, H*W, C)
        a = ops.reshape(a, (shape[0], -1, shape[-1]))
        b = ops.reshape(b, (shape[0], -1, shape[-1]))
        spatial_axis = 1
    eps = 1e-12  # torch.nn.functional.normalize's default
    a = a / ops.maximum(ops.sqrt(ops.sum(ops.square(a), axis=spatial_axis, keepdims=True)), eps)
    b = b / ops.maximum(ops.sqrt(ops.sum(ops.square(b), axis=spatial_axis, keepdims=True)), eps)
    return ops.mean(ops.abs(ops.sum(a * b, axis=spatial_axis)))


@keras.saving.register_keras_serializable(package="predrnn")
class PredRNN(VideoPredictor):
    """PredRNN: stacked spatiotemporal LSTMs with a zigzag memory flow.

    The spatiotemporal memory ``M`` runs up the stack at each time step (layer 0 -> 1
    -> ... -> L-1) and from the top layer at ``t`` to layer 0 at ``t+1``; hidden and
    cell states are per layer. Frames are cut into ``patch_size`` x ``patch_size``
    patches folded into channels, a 1x1 head maps the top hidden state back to patch
    space. ``decoupling_weight > 0`` makes it PredRNN-V2: a shared 1x1 adapter and the
    decoupling loss ``decoupling_weight * mean |cos(adapter(dC), adapter(dM))|``,
    added with ``add_loss`` on every call (train it with a reverse sampling schedule).

    Args:
        filters: widths of the layers, bottom to top, e.g. ``(64, 64, 64, 64)``. Unequal
            widths are allowed: 1x1 adapters carry the memory between layers of
            different width (equal widths are exactly the reference computation).
        kernel_size: odd conv kernel size (5 in the paper).
        patch_size: the frame height and width must be divisible by it (4 for 64x64
            Moving MNIST).
        use_layer_norm: layer norm inside the cells (the official ``--layer_norm 1``);
            fixes the frame size at build time.
        decoupling_weight: the V2 beta (0.1 on Moving MNIST, 0.01 on KTH); 0 = PredRNN V1.
        forget_bias: added to the forget gates (1.0).
        kernel_initializer: ``"reference"`` (PyTorch's conv default, as the official
            code) or any Keras initializer.
        remat: recompute each time step in the backward pass instead of keeping its
            activations (``keras.remat``): less memory on long sequences, ~1/3 more compute.

    Inputs:
        ``{"frames": (B, T, H, W, C) in [0, 1], "teacher_forcing_mask": (B, T-2)}``;
        mask 1 feeds the true frame at that input step, 0 the previous prediction.

    Returns:
        ``(B, T-1, H, W, C)``: predictions of frames 1 .. T-1. Use ``rollout(context,
        horizon)`` for pure prediction from a context.
    """

    cell_prefix = "st_lstm"

    def __init__(
        self,
        filters=(64, 64, 64, 64),
        kernel_size=5,
        patch_size=4,
        use_layer_norm=False,
        decoupling_weight=0.0,
        forget_bias=1.0,
        kernel_initializer="reference",
        remat=False,
        **kwargs,
    ):
        decoupling_weight = float(decoupling_weight)
        if decoupling_weight < 0:
            raise ValueError(
                "decoupling_weight must be >= 0 (0 = PredRNN V1, e.g. 0.1 = PredRNN-V2 on Moving MNIST). "
                f"Received: decoupling_weight={decoupling_weight}"
            )
        kwargs.pop("cell", None)
        kwargs.pop("cell_arguments", None)
        super().__init__(
            cell=SpatioTemporalLSTMCell,
            filters=filters,
            kernel_size=kernel_size,
            patch_size=patch_size,
            use_layer_norm=use_layer_norm,
            forget_bias=forget_bias,
            kernel_initializer=kernel_initializer,
            remat=remat,
            cell_arguments={"return_increments": decoupling_weight > 0},
            **kwargs,
        )
        self.decoupling_weight = decoupling_weight

    @property
    def memory_adapters(self):
        """``{str(layer): kernel}``: the 1x1 adapters of the memory entering a layer of another width."""
        return {key.split("_")[-1]: kernel for key, kernel in self.state_adapters.items()}

    def _build_stack(self, in_channels, height, width):
        super()._build_stack(in_channels, height, width)
        self.decoupling_adapters = {}
        if self.decoupling_weight > 0:
            for width_ in sorted(set(self.filters)):
                self.decoupling_adapters[str(width_)] = self.add_weight(
                    name=f"decoupling_adapter_{width_}", shape=(1, 1, width_, width_), initializer=self._initializer
                )

    def step_flops(self, batch, height, width, in_channels):
        total = super().step_flops(batch, height, width, in_channels)
        if self.decoupling_weight > 0:  # the 1x1 adapter on delta_c and delta_m of every layer
            total += sum(2 * 2 * batch * height * width * n * n for n in self.filters)
        return total

    def _auxiliary_term(self, index, increments):
        delta_c, delta_m = increments
        return decoupling_term(delta_c, delta_m, self.decoupling_adapters[str(self.filters[index])])

    def call(self, inputs, training=None):
        frames = ops.cast(inputs[FRAMES], self.compute_dtype)
        with_decoupling = self.decoupling_weight > 0
        predictions, decoupling = self._forward(frames, inputs[TEACHER_FORCING_MASK], with_decoupling, training=training)
        if with_decoupling:
            self.add_loss(self.decoupling_weight * ops.cast(decoupling, "float32"))
        return self._output(predictions)

    def decoupling_loss(self, inputs):
        """The unweighted V2 decoupling loss of one batch (for inspection and tests)."""
        if self.decoupling_weight <= 0:
            raise ValueError("decoupling_loss needs a PredRNN-V2 model (decoupling_weight > 0).")
        self._check_inputs(inputs)
        if not self.built:
            self.build({k: tuple(v.shape) for k, v in inputs.items()})
        frames = ops.cast(ops.convert_to_tensor(inputs[FRAMES]), self.compute_dtype)
        mask = ops.convert_to_tensor(inputs[TEACHER_FORCING_MASK])
        return self._forward(frames, mask, with_auxiliary=True)[1]

    @classmethod
    def from_official_checkpoint(cls, path, **kwargs):
        """Load a ``model.ckpt-N`` of the official PyTorch PredRNN (thuml/predrnn-pytorch).

        ``kwargs`` are the constructor arguments matching how the checkpoint was trained
        (``filters``, ``kernel_size``, ``patch_size``, ``use_layer_norm``,
        ``decoupling_weight`` for a V2 checkpoint), plus optional ``image_size=(H, W)``
        and ``channels``. Needs ``torch`` to read the file (``pip install predrnn[torch]``).
        """
        from predrnn.official_checkpoint import load_official_checkpoint

        return load_official_checkpoint(path, model_class=cls, **kwargs)

    def get_config(self):
        config = super().get_config()
        del config["cell"], config["cell_arguments"]
        config["decoupling_weight"] = self.decoupling_weight
        return config
