"""What a benchmark times: the model configuration and the implementation specs."""

from __future__ import annotations

import dataclasses

BACKENDS = ("tensorflow", "jax", "torch")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
# The "+FLAG"s of an implementation spec (see Implementation); parse_implementation reads each.
FLAGS = (
    "xla",
    "noxla",
    "remat",
    "channels_first",
    "channels_last",
    "fused",
    "unfused",
    "bfc",
    "nobfc",
    "xlacells",
    "noxlacells",
    "winograd",
    "nowinograd",
)


# --------------------------------------------------------------------------- configuration
@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """The model and batch being timed.

    ``model``: ``"predrnn"``, ``"convlstm"``, or the registered name of any other cell
    (:func:`predrnn.layers.register_cell`), timed as a :class:`~predrnn.models.VideoPredictor`.
    """

    filters: tuple = (64, 64, 64, 64)
    batch_size: int = 8
    image_size: int = 64
    channels: int = 1
    patch_size: int = 4
    kernel_size: int = 5
    input_length: int = 10
    output_length: int = 10
    use_layer_norm: bool = False
    decoupling_weight: float = 0.0
    model: str = "predrnn"

    def __post_init__(self):
        object.__setattr__(self, "filters", tuple(int(f) for f in self.filters))
        if self.model not in ("predrnn", "convlstm"):
            from predrnn.layers import CELLS

            if self.model not in CELLS:
                raise ValueError(
                    f"model must be 'predrnn', 'convlstm' or a registered cell ({', '.join(sorted(CELLS))}). "
                    f"Received: model={self.model!r}"
                )
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not divisible by patch_size {self.patch_size}.")
        if self.input_length < 1 or self.output_length < 1:
            raise ValueError("input_length and output_length must be >= 1.")
        if self.model != "predrnn" and self.decoupling_weight:
            raise ValueError("decoupling_weight applies to PredRNN only (model='predrnn').")

    @property
    def total_length(self) -> int:
        return self.input_length + self.output_length

    def describe(self) -> str:
        widths = (
            "x".join(str(f) for f in self.filters) if len(set(self.filters)) > 1 else f"{len(self.filters)}x{self.filters[0]}"
        )
        names = {"predrnn": "PredRNN", "convlstm": "ConvLSTM"}
        name = "PredRNN-V2" if self.decoupling_weight > 0 else names.get(self.model, f"VideoPredictor({self.model})")
        extras = ", layer norm" if self.use_layer_norm else ""
        return (
            f"{name} {widths}, batch {self.batch_size}, {self.image_size}x{self.image_size}x{self.channels}, "
            f"patch {self.patch_size}, kernel {self.kernel_size}, {self.input_length}->{self.output_length} frames{extras}"
        )

    def model_kwargs(self) -> dict:
        kwargs = dict(
            filters=self.filters,
            kernel_size=self.kernel_size,
            patch_size=self.patch_size,
            use_layer_norm=self.use_layer_norm,
        )
        if self.model == "predrnn":
            kwargs["decoupling_weight"] = self.decoupling_weight
        elif self.model != "convlstm":
            kwargs["cell"] = self.model
        return kwargs

    def build_model(self, **changes):
        """The (unbuilt) model of this configuration; ``changes`` override constructor arguments."""
        from predrnn.models import ConvLSTM, PredRNN, VideoPredictor

        cls = {"predrnn": PredRNN, "convlstm": ConvLSTM}.get(self.model, VideoPredictor)
        return cls(**{**self.model_kwargs(), **changes})


PRESETS = {
    # The Moving MNIST model of the issue: 4 x 64 channels, batch 8 (~1.4 TFLOP per step).
    "mnist": BenchmarkConfig(),
    # The paper's Moving MNIST model: 4 x 128 channels, batch 16 (~11 TFLOP per step).
    "paper": BenchmarkConfig(filters=(128, 128, 128, 128), batch_size=16),
    # The mnist model on 3 -> 3 frames: the same per-step shapes, 5 steps instead of 19 (~0.37 TFLOP).
    "mnist-short": BenchmarkConfig(input_length=3, output_length=3),
    # Seconds per step on any machine: for tests and smoke runs.
    "tiny": BenchmarkConfig(
        filters=(8, 8), batch_size=2, image_size=16, patch_size=4, kernel_size=3, input_length=3, output_length=3
    ),
}


@dataclasses.dataclass(frozen=True)
class Implementation:
    """What runs: a Keras backend (``kind="keras"``) or the PyTorch reference (``"reference"``).

    Spec strings: ``BACKEND[+xla|+noxla][+remat][+channels_first|+channels_last][:PRECISION]``
    or ``reference``, e.g. ``tensorflow``, ``tensorflow+xla``, ``tensorflow:mixed_bfloat16``,
    ``jax``, ``torch``, ``torch+channels_last``, ``torch+fused`` (the gate convolutions fused into
    two, ``PREDRNN_FUSED_GATES=1``; ``+unfused`` forces the default separate ones). ``xla=None`` keeps Keras'
    ``jit_compile="auto"`` (TensorFlow: XLA on GPU, not on CPU; JAX: always; PyTorch: eager).
    ``layout`` forces the model's internal layout (``PREDRNN_INTERNAL_LAYOUT``, isolated
    workers only); ``None`` keeps the backend's default. ``+bfc``/``+nobfc`` switch
    TensorFlow's BFC CPU allocator on or off (``TF_CPU_ALLOCATOR_USE_BFC``, isolated workers
    only); ``None`` keeps the environment's setting. ``+xlacells``/``+noxlacells`` switch
    XLA-compiled cell steps with Winograd convolutions on or off (``PREDRNN_XLA_CELLS``,
    TensorFlow, isolated workers only); ``None`` keeps the environment's setting, by default
    ``auto``: on for cells of at least 64 filters with 5x5-7x7 kernels, so ``tensorflow`` on
    the ``mnist`` and ``paper`` presets has them and ``tensorflow+noxlacells`` does not.
    ``+winograd``/``+nowinograd`` do the same for PyTorch's Winograd convolutions
    (``PREDRNN_TORCH_WINOGRAD``; ``auto`` by default: 5x5 kernels with at least 128
    output channels, so ``torch`` on those presets has them and ``torch+nowinograd`` does not).
    """

    spec: str
    kind: str
    backend: str
    precision: str = "float32"
    xla: bool | None = None
    remat: bool = False
    layout: str | None = None
    fused: bool | None = None
    bfc: bool | None = None
    xla_cells: bool | None = None
    torch_winograd: bool | None = None

    def environment(self) -> dict:
        """The environment variables the flags set in the implementation's worker process."""
        switches = {
            "PREDRNN_INTERNAL_LAYOUT": self.layout,
            "PREDRNN_FUSED_GATES": self.fused,
            "TF_CPU_ALLOCATOR_USE_BFC": self.bfc,
            "PREDRNN_XLA_CELLS": self.xla_cells,
            "PREDRNN_TORCH_WINOGRAD": self.torch_winograd,
        }
        return {
            name: value if isinstance(value, str) else ("1" if value else "0")
            for name, value in switches.items()
            if value is not None
        }


def parse_implementation(spec: str) -> Implementation:
    text = spec.strip()
    if text in ("reference", "reference_torch", "torch_reference"):
        return Implementation(spec="reference", kind="reference", backend="torch")
    body, _, precision = text.partition(":")
    precision = precision or "float32"
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r} in {spec!r}. Choose from {', '.join(PRECISIONS)}.")
    backend, *flags = body.split("+")
    if backend not in BACKENDS:
        raise ValueError(
            f"Unknown implementation {spec!r}: the backend must be one of {', '.join(BACKENDS)} "
            "(or 'reference' for the PyTorch re-implementation of the official code)."
        )
    xla, remat, layout, fused, bfc, xla_cells, torch_winograd = None, False, None, None, None, None, None
    for flag in flags:
        if flag == "xla":
            xla = True
        elif flag == "noxla":
            xla = False
        elif flag == "remat":
            remat = True
        elif flag in ("channels_first", "channels_last"):
            layout = flag
        elif flag in ("fused", "unfused"):
            fused = flag == "fused"
        elif flag in ("bfc", "nobfc"):
            bfc = flag == "bfc"
        elif flag in ("xlacells", "noxlacells"):
            xla_cells = flag == "xlacells"
        elif flag in ("winograd", "nowinograd"):
            torch_winograd = flag == "winograd"
        else:
            raise ValueError(f"Unknown flag {flag!r} in {spec!r}. Flags: {', '.join('+' + f for f in FLAGS)}.")
    return Implementation(
        spec=text,
        kind="keras",
        backend=backend,
        precision=precision,
        xla=xla,
        remat=remat,
        layout=layout,
        fused=fused,
        bfc=bfc,
        xla_cells=xla_cells,
        torch_winograd=torch_winograd,
    )
