"""The analytic FLOPs of a training step and a rollout, derived from the model's cells.

Convention: 2 FLOPs per multiply-add of every convolution of the reference computation
(including the 1x1 ones, the output head and the adapters), every convolution at every time
step (the library skips the convolutions of the all-zero initial states, so its GFLOP/s are
"reference-equivalent"); a training step is 3x the forward pass (the backward pass computes
the gradients with respect to the inputs and to the weights, 2x). Elementwise gates, layer
norm, the loss and the optimizer are left out (well under 1% for the Moving MNIST models).
Each cell lists its convolutions (:meth:`predrnn.layers.ConvRecurrentCell.convolutions`), so
a new cell is counted without a change here.
"""

from __future__ import annotations

from predrnn.benchmark.config import BenchmarkConfig


def conv_flops(batch: int, height: int, width: int, kernel_size: int, in_channels: int, out_channels: int) -> int:
    """FLOPs of one stride-1 "same" conv: ``2 * B * H * W * k * k * C_in * C_out``."""
    return 2 * batch * height * width * kernel_size * kernel_size * in_channels * out_channels


def step_forward_flops(config: BenchmarkConfig, batch_size: int | None = None) -> int:
    """FLOPs of one time step of the forward pass through the whole stack and the head."""
    b = config.batch_size if batch_size is None else batch_size
    p = config.patch_size
    side = config.image_size // p
    return config.build_model().step_flops(b, side, side, p * p * config.channels)


def forward_flops(config: BenchmarkConfig, num_steps: int | None = None, batch_size: int | None = None) -> int:
    """FLOPs of a forward pass over ``num_steps`` time steps (default ``T - 1``)."""
    steps = config.total_length - 1 if num_steps is None else num_steps
    return steps * step_forward_flops(config, batch_size)


def training_flops(config: BenchmarkConfig) -> int:
    """FLOPs of one training step: forward over ``T - 1`` steps, backward = 2x forward."""
    return 3 * forward_flops(config)


def rollout_flops(config: BenchmarkConfig) -> int:
    """FLOPs of one ``input_length -> output_length`` rollout of a batch (forward only)."""
    return forward_flops(config)
