"""Training and inference throughput of PredRNN, side by side with a PyTorch reference.

One command measures, for a model configuration and a list of *implementations* (a Keras
backend, a precision, XLA or not, or the PyTorch reference re-implementation in
``benchmarks/reference_torch.py``):

- seconds per training step (median of ``steps`` timed steps after warm-up and compile), the
  compile time (first step minus the median step), sequences and frames per second;
- the analytic FLOPs of one training step (:func:`training_flops`), the achieved GFLOP/s and its
  fraction of the machine's dense-matmul peak, measured in the same run (NumPy sgemm, once per
  round, so under the same load as the steps) and per backend (its own matmul, in its precision);
- the time of a compiled ``input_length -> output_length`` inference rollout per sequence;
- the peak memory (resident set of the implementation's own process; device peak on a GPU);
- the time the step waits for the input pipeline (the library's Moving MNIST stream and
  :class:`~predrnn.data.VideoPredictionDataset`, fetched synchronously: an upper bound).

Every implementation runs in its own worker process (``KERAS_BACKEND`` is fixed per process,
and peak memory is per process). Timed steps are *interleaved*: round ``r`` runs one step of
every implementation, then one NumPy sgemm, so a change of machine load hits all of them alike;
ratios to the reference are medians of per-round ratios. Use::

    predrnn benchmark --preset mnist --impl reference tensorflow torch jax \\
        --output benchmarks/results/mnist.json --readme benchmarks/results/mnist.md
    python -m predrnn.benchmark ...   # the same without the CLI

FLOP convention: 2 FLOPs per multiply-add of every convolution (including the 1x1 ones, the
output head and the adapters) of the reference computation, every conv at every time step (the
library skips the convs of the all-zero initial states, 1.7% of the mnist model's count, so its
GFLOP/s are "reference-equivalent"); a training step is 3x the forward pass (the backward pass computes the gradients with respect to the inputs and
to the weights, 2x). Elementwise gates, layer norm, the loss and the optimizer are left out
(well under 1% of the total for the Moving MNIST models).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from predrnn.hardware import bfloat16_support, cpu_features, cpu_flags
from predrnn.acceleration.memory import use_the_command_allocators

__all__ = [
    "BenchmarkConfig",
    "PRESETS",
    "RESULT_KEYS",
    "Implementation",
    "add_benchmark_parser",
    "conv_flops",
    "forward_flops",
    "format_markdown",
    "measure_matmul_peak",
    "parse_implementation",
    "rollout_flops",
    "run_benchmark",
    "run_benchmark_command",
    "step_forward_flops",
    "training_flops",
]

BACKENDS = ("tensorflow", "jax", "torch")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
# The "+FLAG"s of an implementation spec (see Implementation); parse_implementation reads each.
FLAGS = (
    "xla", "noxla", "remat", "channels_first", "channels_last", "fused", "unfused", "bfc", "nobfc",
    "xlacells", "noxlacells", "winograd", "nowinograd",
)
_PROTOCOL_PREFIX = "@@predrnn-benchmark@@ "


# --------------------------------------------------------------------------- configuration
@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """The model and batch being timed. ``model`` is ``"predrnn"`` or ``"convlstm"``."""

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
            raise ValueError(f"model must be 'predrnn' or 'convlstm'. Received: model={self.model!r}")
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size {self.image_size} is not divisible by patch_size {self.patch_size}."
            )
        if self.input_length < 1 or self.output_length < 1:
            raise ValueError("input_length and output_length must be >= 1.")
        if self.model == "convlstm" and self.decoupling_weight:
            raise ValueError("decoupling_weight applies to PredRNN only (model='predrnn').")

    @property
    def total_length(self) -> int:
        return self.input_length + self.output_length

    def describe(self) -> str:
        widths = "x".join(str(f) for f in self.filters) if len(set(self.filters)) > 1 else f"{len(self.filters)}x{self.filters[0]}"
        name = "PredRNN-V2" if self.decoupling_weight > 0 else ("ConvLSTM" if self.model == "convlstm" else "PredRNN")
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
        return kwargs


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


# --------------------------------------------------------------------------- FLOPs
def conv_flops(batch: int, height: int, width: int, kernel_size: int, in_channels: int, out_channels: int) -> int:
    """FLOPs of one stride-1 "same" conv: ``2 * B * H * W * k * k * C_in * C_out``."""
    return 2 * batch * height * width * kernel_size * kernel_size * in_channels * out_channels


def step_forward_flops(config: BenchmarkConfig, batch_size: int | None = None) -> int:
    """FLOPs of one time step of the forward pass through the whole stack and the head."""
    b = config.batch_size if batch_size is None else batch_size
    p, k = config.patch_size, config.kernel_size
    h = w = config.image_size // p
    in_channels = p * p * config.channels
    total = 0
    for index, n in enumerate(config.filters):
        cin = in_channels if index == 0 else config.filters[index - 1]
        if config.model == "convlstm":
            total += conv_flops(b, h, w, k, cin, 4 * n) + conv_flops(b, h, w, k, n, 4 * n)
            continue
        source = config.filters[index - 1]  # the memory comes from the layer below (top for 0)
        if source != n:
            total += conv_flops(b, h, w, 1, source, n)  # memory adapter
        total += conv_flops(b, h, w, k, cin, 7 * n)  # conv_x
        total += conv_flops(b, h, w, k, n, 4 * n)  # conv_h
        total += conv_flops(b, h, w, k, n, 3 * n)  # conv_m
        total += conv_flops(b, h, w, k, 2 * n, n)  # conv_o
        total += conv_flops(b, h, w, 1, 2 * n, n)  # conv_last
        if config.decoupling_weight > 0:
            total += 2 * conv_flops(b, h, w, 1, n, n)  # adapter on delta_c and delta_m
    total += conv_flops(b, h, w, 1, config.filters[-1], in_channels)  # output head
    return total


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


# --------------------------------------------------------------------------- implementations
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
            for name, value in switches.items() if value is not None
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
        spec=text, kind="keras", backend=backend, precision=precision, xla=xla, remat=remat, layout=layout,
        fused=fused, bfc=bfc, xla_cells=xla_cells, torch_winograd=torch_winograd,
    )


# --------------------------------------------------------------------------- measurements
def measure_matmul_peak(size: int = 2048, repeats: int = 5, dtype: str = "float32", library: str = "numpy") -> dict:
    """Dense matmul GFLOP/s of ``library``: ``"numpy"``, ``"keras"`` (the current backend) or
    ``"torch"`` (plain PyTorch, on CUDA when available: the reference's own matmul).

    Returns ``{"best": ..., "median": ..., "size": ..., "dtype": ..., "library": ...}``.
    """
    flops = 2 * size**3
    rng = np.random.default_rng(0)
    a_np = rng.random((size, size), dtype=np.float32)
    if library == "numpy":
        if dtype != "float32":
            raise ValueError("NumPy has no fast low-precision matmul; measure 'keras' for bfloat16.")

        def run():
            a_np @ a_np

    elif library == "keras":
        from keras import ops

        a = ops.cast(ops.convert_to_tensor(a_np), dtype)

        def run():  # the sum of one row forces completion on asynchronous backends
            ops.convert_to_numpy(ops.sum(ops.cast(ops.matmul(a, a)[:1], "float32")))

    elif library == "torch":
        import torch

        a = torch.from_numpy(a_np).to("cuda" if torch.cuda.is_available() else "cpu")

        def run():  # reading one element forces completion on CUDA
            (a @ a)[0, 0].item()

    else:
        raise ValueError(f"library must be 'numpy', 'keras' or 'torch'. Received: {library!r}")
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return {
        "best": flops / min(times) / 1e9,
        "median": flops / statistics.median(times) / 1e9,
        "size": size,
        "dtype": dtype,
        "library": library,
    }


def _peak_rss_bytes() -> int:
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(usage if sys.platform == "darwin" else usage * 1024)


def _machine_info() -> dict:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "numpy": np.__version__,
    }
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal"):
                    info["memory_gb"] = round(int(line.split()[1]) / 1024**2, 1)
                    break
    except OSError:
        pass
    try:
        affinity = os.sched_getaffinity(0)
        info["usable_cores"] = len(affinity)
    except AttributeError:
        pass
    flags = cpu_flags()  # None where /proc/cpuinfo has no x86 flags
    info["cpu_features"] = cpu_features(flags)
    info["bfloat16"] = bfloat16_support(flags)  # on the CPU: native, emulated or unknown
    return info


def _features_text(machine: dict) -> str:
    """`` (AVX2, AVX-512; bfloat16 emulated on the CPU)`` for the Markdown table's machine line; empty
    for results written before the features were recorded."""
    if "bfloat16" not in machine:
        return ""
    features = machine.get("cpu_features")
    if features is None:
        listed = "flags unknown"
    elif not features:
        listed = "no AVX2/AVX-512"
    else:
        listed = ", ".join(features)
    return f" ({listed}; bfloat16 {machine['bfloat16']} on the CPU)"


def _load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# --------------------------------------------------------------------------- data
def _import_input_pipeline():
    """Import what :class:`_Batches` uses before a runner measures its memory baseline: the
    data layer imports Keras, which the reference itself does not use."""
    from predrnn.data import MovingMNISTStream, VideoPredictionDataset  # noqa: F401


class _Batches:
    """Training batches from the library's input pipeline, with the time spent waiting for them.

    Moving MNIST (one channel): :class:`~predrnn.data.VideoPredictionDataset` over a
    :class:`~predrnn.data.MovingMNISTStream` with the PredRNN-V2 reverse schedule, fetched
    synchronously in the training loop (no prefetch: the wait is an upper bound). Other
    channel counts: random frames.
    """

    def __init__(self, config: BenchmarkConfig, seed: int = 0):
        self.config = config
        self.index = 0
        self.dataset = None
        self.source = "random frames"
        if config.channels == 1:
            from predrnn.data import MovingMNISTStream, VideoPredictionDataset
            from predrnn.schedules import ReverseSchedule

            digit_size = min(28, max(1, round(28 * config.image_size / 64)))  # 28 on 64x64 canvases
            stream = MovingMNISTStream(
                seed, num_frames=config.total_length, image_size=config.image_size, digit_size=digit_size
            )
            self.dataset = VideoPredictionDataset(
                stream, config.batch_size, config.input_length, config.output_length,
                schedule=ReverseSchedule(), seed=seed, steps_per_epoch=1_000_000,
            )
            self.source = "Moving MNIST stream + VideoPredictionDataset (synchronous)"
        self.rng = np.random.default_rng(seed)

    def next(self):
        """``(frames (B, T, H, W, C), mask (B, T-2), seconds spent)``."""
        start = time.perf_counter()
        if self.dataset is not None:
            inputs, _ = self.dataset[self.index % len(self.dataset)]
            frames, mask = inputs["frames"], inputs["teacher_forcing_mask"]
        else:
            c = self.config
            frames = self.rng.random((c.batch_size, c.total_length, c.image_size, c.image_size, c.channels), dtype=np.float32)
            mask = (self.rng.random((c.batch_size, c.total_length - 2)) < 0.5).astype(np.float32)
        self.index += 1
        return frames, mask, time.perf_counter() - start

    def context(self):
        """A fixed batch of ``input_length`` context frames for the rollouts."""
        frames, _, _ = self.next()
        return np.ascontiguousarray(frames[:, : self.config.input_length])


# --------------------------------------------------------------------------- runners (in a worker)
class _KerasRunner:
    """A Keras model of the current backend, trained with ``train_on_batch``."""

    def __init__(self, config: BenchmarkConfig, impl: Implementation, seed: int = 0):
        import keras

        keras.ops.convert_to_tensor(np.zeros(1, "float32"))  # the backend is imported and running
        if impl.backend != keras.backend.backend():
            raise RuntimeError(
                f"{impl.spec} needs KERAS_BACKEND={impl.backend} but this process runs "
                f"{keras.backend.backend()}; run it isolated (the default)."
            )
        self.config, self.impl = config, impl
        keras.utils.set_random_seed(seed)
        _import_input_pipeline()
        # The baseline comes after the seed: keras.utils.set_random_seed imports TensorFlow
        # where it is installed, on every backend (~470 MB resident on this CPU), and so does
        # Keras' serialization when a job saves a checkpoint; that is Keras' footprint, not
        # the step's.
        self.baseline_rss = _peak_rss_bytes()
        self.previous_policy = keras.mixed_precision.global_policy().name
        keras.mixed_precision.set_global_policy(impl.precision)
        from predrnn import ConvLSTM, PredRNN

        cls = PredRNN if config.model == "predrnn" else ConvLSTM
        kwargs = config.model_kwargs()
        if impl.remat:
            kwargs["remat"] = True
        self.model = cls(**kwargs)
        jit = "auto" if impl.xla is None else impl.xla
        self.model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mean_squared_error", jit_compile=jit)
        self.batches = _Batches(config, seed)
        self.context = self.batches.context()

    def resolved_xla(self) -> bool:
        return bool(self.model.jit_compile)

    def step(self) -> dict:
        frames, mask, wait = self.batches.next()
        cpu, start = time.process_time(), time.perf_counter()
        loss = self.model.train_on_batch({"frames": frames, "teacher_forcing_mask": mask}, frames[:, 1:])
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        return {"step_s": seconds, "cpu_s": cpu, "data_wait_s": wait, "loss": float(np.asarray(loss).reshape(-1)[0])}

    def rollout(self) -> dict:
        start = time.perf_counter()
        out = self.model.rollout(self.context, self.config.output_length)
        seconds = time.perf_counter() - start
        return {"rollout_s": seconds, "finite": bool(np.isfinite(np.asarray(out, np.float32)).all())}

    def matmul(self) -> dict:
        import keras

        dtype = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}[self.impl.precision]
        size = _matmul_size(_device_name(keras.backend.backend()), dtype)
        return measure_matmul_peak(size=size, repeats=3, dtype=dtype, library="keras")

    def summary(self) -> dict:
        import keras

        versions = {"keras": keras.__version__}
        backend = keras.backend.backend()
        module = __import__(backend)
        versions[backend] = getattr(module, "__version__", "?")
        out = {
            "versions": versions,
            "xla": self.resolved_xla(),
            "device": _device_name(backend),
            "parameters": int(sum(np.prod(v.shape) for v in self.model.trainable_weights)),
            "data_source": self.batches.source,
            "layout": internal_layout(),
        }
        out.update(_memory_report(backend, self.baseline_rss))
        keras.mixed_precision.set_global_policy(self.previous_policy)
        return out


def internal_layout() -> str:
    from predrnn.acceleration.options import internal_data_format

    return internal_data_format()


def _device_name(backend: str) -> str:
    """"cpu" or the accelerator the backend runs on (backend-specific, for the report only)."""
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            return gpus[0].name if gpus else "cpu"
        if backend == "jax":
            import jax

            return str(jax.devices()[0].platform)
        if backend == "torch":
            import torch

            return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except Exception:  # noqa: BLE001 - informational only
        pass
    return "cpu"


def _matmul_size(device: str, dtype: str) -> int:
    """The side of the square matmul that measures a backend's dense peak: 2048 (1024 in the
    CPU-emulated low precisions) on the CPU; 8192 on an accelerator, where a 2048 product takes
    tens of microseconds, about what launching and reading it back does."""
    if device != "cpu":
        return 8192
    return 2048 if dtype == "float32" else 1024


def _memory_report(backend: str, baseline_rss: int) -> dict:
    """Peak host RSS of this process, plus the device peak where a GPU is used."""
    peak = _peak_rss_bytes()
    out = {
        "peak_memory_mb": peak / 2**20,
        "baseline_memory_mb": baseline_rss / 2**20,
        "working_memory_mb": (peak - baseline_rss) / 2**20,
        "memory_kind": "host peak RSS of the implementation's process (baseline: after importing the "
        "framework, what Keras imports with it and the input pipeline)",
    }
    device_peak = None
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            if tf.config.list_physical_devices("GPU"):
                device_peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
        elif backend == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform != "cpu":
                device_peak = (device.memory_stats() or {}).get("peak_bytes_in_use")
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                device_peak = torch.cuda.max_memory_allocated()
    except Exception:  # noqa: BLE001 - informational only
        device_peak = None
    if device_peak is not None:
        out["device_peak_memory_mb"] = device_peak / 2**20
    return out


def default_reference_path() -> Path:
    """``benchmarks/reference_torch.py`` of the source checkout this package runs from."""
    return Path(__file__).resolve().parents[2] / "benchmarks" / "reference_torch.py"


def _load_reference_module(path=None):
    import importlib.util

    path = Path(path) if path else default_reference_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"The PyTorch reference re-implementation was not found at {path}. It lives in the "
            "repository (benchmarks/reference_torch.py); pass --reference-path or drop 'reference'."
        )
    spec = importlib.util.spec_from_file_location("predrnn_reference_torch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _ReferenceRunner:
    """The PyTorch re-implementation of the official training step (float32, channels-first)."""

    def __init__(self, config: BenchmarkConfig, impl: Implementation, seed: int = 0, reference_path=None):
        if config.model != "predrnn":
            raise ValueError("The PyTorch reference implements PredRNN only (model='predrnn').")
        if len(set(config.filters)) != 1:
            raise ValueError("The official code (and its reference) needs equal layer widths.")
        module = _load_reference_module(reference_path)
        import torch

        _import_input_pipeline()
        self.baseline_rss = _peak_rss_bytes()  # after importing the framework, as for Keras

        self.torch = torch
        self.config = config
        self.trainer = module.ReferenceTrainer(
            config.filters, config.batch_size, image_size=config.image_size, channels=config.channels,
            patch_size=config.patch_size, kernel_size=config.kernel_size, total_length=config.total_length,
            input_length=config.input_length, layer_norm=config.use_layer_norm,
            decoupling_beta=config.decoupling_weight, seed=seed,
            device="cuda" if torch.cuda.is_available() else "cpu",
        )
        self.batches = _Batches(config, seed)
        context = self.batches.context()
        c = config
        future = np.zeros((c.batch_size, c.output_length) + context.shape[2:], np.float32)
        self.rollout_frames = np.concatenate([context, future], axis=1)
        self.rollout_mask = np.zeros((c.batch_size, c.total_length - 2), np.float32)
        self.rollout_mask[:, : c.input_length - 1] = 1.0

    def resolved_xla(self) -> bool:
        return False

    def step(self) -> dict:
        frames, mask, wait = self.batches.next()
        cpu, start = time.process_time(), time.perf_counter()
        loss = self.trainer.train(frames, mask)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        return {"step_s": seconds, "cpu_s": cpu, "data_wait_s": wait, "loss": float(loss)}

    def rollout(self) -> dict:
        start = time.perf_counter()
        out = self.trainer.test(self.rollout_frames, self.rollout_mask)
        seconds = time.perf_counter() - start
        return {"rollout_s": seconds, "finite": bool(np.isfinite(out).all())}

    def matmul(self) -> dict:
        return measure_matmul_peak(size=_matmul_size(_device_name("torch"), "float32"), repeats=3, library="torch")

    def summary(self) -> dict:
        out = {
            "versions": {"torch": self.torch.__version__},
            "xla": False,
            "device": _device_name("torch"),
            "parameters": int(sum(p.numel() for p in self.trainer.network.parameters())),
            "data_source": self.batches.source,
            "layout": "channels_first",
        }
        out.update(_memory_report("torch", self.baseline_rss))
        return out


def _make_runner(config: BenchmarkConfig, impl: Implementation, seed: int, reference_path=None):
    if impl.kind == "reference":
        return _ReferenceRunner(config, impl, seed, reference_path)
    return _KerasRunner(config, impl, seed)


# --------------------------------------------------------------------------- workers
class _InProcessWorker:
    """Runs an implementation in this process (its backend must be this process's backend)."""

    def __init__(self, impl: Implementation, config: BenchmarkConfig, seed: int, reference_path=None):
        self.impl = impl
        self.runner = _make_runner(config, impl, seed, reference_path)

    def call(self, command: str) -> dict:
        return getattr(self.runner, command)()

    def close(self):
        self.runner = None


class _SubprocessWorker:
    """Runs an implementation in ``python -m predrnn.benchmark --worker`` (JSON lines on pipes)."""

    def __init__(self, impl: Implementation, config: BenchmarkConfig, seed: int, reference_path=None, env=None):
        self.impl = impl
        child_env = dict(os.environ)
        child_env.update(env or {})
        child_env["KERAS_BACKEND"] = impl.backend
        child_env.update(impl.environment())
        child_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        self.log = tempfile.NamedTemporaryFile("w+", prefix=f"predrnn-bench-{impl.backend}-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "predrnn.benchmark", "--worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=child_env, text=True, bufsize=1,
        )
        self._send({
            "cmd": "init", "impl": impl.spec, "config": _config_to_json(config), "seed": seed,
            "reference_path": None if reference_path is None else str(reference_path),
        })

    def _send(self, message: dict) -> dict:
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"The {self.impl.spec} worker exited unexpectedly.\n{self._log_tail()}")
            if line.startswith(_PROTOCOL_PREFIX):
                reply = json.loads(line[len(_PROTOCOL_PREFIX):])
                if "error" in reply:
                    raise RuntimeError(f"The {self.impl.spec} worker failed:\n{reply['error']}")
                return reply

    def _log_tail(self, chars: int = 4000) -> str:
        try:
            self.log.flush()
            with open(self.log.name) as handle:
                return handle.read()[-chars:]
        except OSError:
            return ""

    def call(self, command: str) -> dict:
        return self._send({"cmd": command})

    def close(self):
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except (OSError, ValueError):
                pass
        self.log.close()
        try:
            os.unlink(self.log.name)
        except OSError:
            pass


def _config_to_json(config: BenchmarkConfig) -> dict:
    out = dataclasses.asdict(config)
    out["filters"] = list(config.filters)
    return out


def _worker_main() -> int:
    """The worker loop: one JSON command per stdin line, one prefixed JSON reply per command."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the libraries print goes to the log, not into the protocol
    runner = None
    for line in sys.stdin:
        message = json.loads(line)
        try:
            if message["cmd"] == "init":
                config = BenchmarkConfig(**message["config"])
                impl = parse_implementation(message["impl"])
                runner = _make_runner(config, impl, message["seed"], message.get("reference_path"))
                reply = {"ok": True}
            else:
                reply = getattr(runner, message["cmd"])()
        except Exception:  # noqa: BLE001 - reported to the parent with the traceback
            reply = {"error": traceback.format_exc()}
        protocol.write(_PROTOCOL_PREFIX + json.dumps(reply) + "\n")
    return 0


# --------------------------------------------------------------------------- the benchmark
RESULT_KEYS = (
    "implementation", "backend", "precision", "xla", "remat", "layout", "device",
    "step_s", "step_times_s", "step_cpu_s", "steps_timed", "compile_s", "first_step_s",
    "sequences_per_s", "frames_per_s", "flops_per_step", "gflops_per_s",
    "fraction_of_sgemm_peak", "backend_matmul_gflops", "fraction_of_backend_matmul",
    "step_vs_reference", "step_vs_first", "rollout_s_per_sequence", "rollout_compile_s", "rollout_vs_train_per_sequence",
    "peak_memory_mb", "baseline_memory_mb", "working_memory_mb", "data_wait_s", "data_wait_fraction", "final_loss",
)
"""Keys of each entry of ``result["implementations"]`` (``None`` where not applicable).

``step_vs_reference`` and ``step_vs_first`` are medians over the rounds of the per-round ratio of
this implementation's step time to the reference's / to the first Keras implementation listed
(``result["first_keras"]``; e.g. ``torch`` and ``jax`` against ``tensorflow``)."""


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def run_benchmark(
    config: BenchmarkConfig | str = "mnist",
    implementations=("tensorflow",),
    *,
    steps: int = 5,
    warmup: int = 1,
    rollout_repeats: int = 3,
    isolate: bool = True,
    seed: int = 0,
    matmul_size: int = 2048,
    reference_path=None,
    progress=None,
) -> dict:
    """Time ``implementations`` on ``config`` side by side; return the JSON-able result.

    Args:
        config: a :class:`BenchmarkConfig` or the name of a preset (:data:`PRESETS`).
        implementations: spec strings (see :func:`parse_implementation`), e.g.
            ``["reference", "tensorflow", "tensorflow:mixed_bfloat16", "torch", "jax"]``.
        steps: timed training steps per implementation (the median is reported), run in
            interleaved rounds after ``warmup`` untimed steps (the first of which compiles).
        rollout_repeats: timed rollouts (after one that compiles).
        isolate: run each implementation in its own worker process (needed for more than one
            backend and for per-implementation peak memory). ``False`` runs them here.
        matmul_size: the NumPy sgemm size measured once per round.
        progress: ``callable(str)`` for progress lines (default: silent).

    Returns:
        ``{"config", "machine", "flops", "sgemm", "load_average", "implementations": [...],
        "notes"}``; each implementation entry has the keys :data:`RESULT_KEYS`.
    """
    if isinstance(config, str):
        if config not in PRESETS:
            raise ValueError(f"Unknown preset {config!r}. Presets: {', '.join(PRESETS)}.")
        config = PRESETS[config]
    say = progress or (lambda message: None)
    if steps < 1 or warmup < 1 or rollout_repeats < 1:
        raise ValueError("steps, warmup and rollout_repeats must be >= 1 (the first warm-up step compiles).")
    impls = [parse_implementation(spec) if isinstance(spec, str) else spec for spec in implementations]
    if not impls:
        raise ValueError("Name at least one implementation.")
    started = datetime.datetime.now(datetime.timezone.utc)
    load = {"start": _load_average()}
    machine = _machine_info()
    say(f"{config.describe()}; load average {load['start']}")
    sgemm_rounds = [measure_matmul_peak(matmul_size, repeats=3)]
    say(f"numpy sgemm {sgemm_rounds[0]['best']:.1f} GFLOP/s")

    workers, setups = [], {}
    try:
        for impl in impls:
            say(f"starting {impl.spec} ...")
            start = time.perf_counter()
            if isolate:
                worker = _SubprocessWorker(impl, config, seed, reference_path)
            elif impl.environment():
                raise ValueError(
                    f"{impl.spec}: its flags set {', '.join(impl.environment())} in the worker's environment, "
                    "so they need isolate=True."
                )
            else:
                worker = _InProcessWorker(impl, config, seed, reference_path)
            build_s = time.perf_counter() - start
            first = worker.call("step")
            warm = [worker.call("step") for _ in range(warmup - 1)]
            matmul = worker.call("matmul")
            setups[impl.spec] = {"build_s": build_s, "first": first, "warmup": warm, "matmul": matmul}
            workers.append(worker)
            say(f"  {impl.spec}: first step {first['step_s']:.2f} s, backend matmul {matmul['best']:.1f} GFLOP/s")

        timings = {impl.spec: [] for impl in impls}
        for round_index in range(steps):
            for worker in workers:
                timings[worker.impl.spec].append(worker.call("step"))
            sgemm_rounds.append(measure_matmul_peak(matmul_size, repeats=1))
            say(
                f"round {round_index + 1}/{steps}: "
                + ", ".join(
                    f"{w.impl.spec} {timings[w.impl.spec][-1]['step_s']:.2f} s ({timings[w.impl.spec][-1]['cpu_s']:.1f} cpu-s)"
                    for w in workers
                )
                + f"; sgemm {sgemm_rounds[-1]['best']:.1f} GFLOP/s; load {_load_average()}"
            )
        rollouts = {impl.spec: [] for impl in impls}
        for repeat in range(rollout_repeats + 1):
            for worker in workers:
                rollouts[worker.impl.spec].append(worker.call("rollout"))
        summaries = {worker.impl.spec: worker.call("summary") for worker in workers}
    finally:
        for worker in workers:
            worker.close()
    load["end"] = _load_average()

    sgemm_best = max(r["best"] for r in sgemm_rounds)
    sgemm_median = statistics.median(r["best"] for r in sgemm_rounds[1:]) if len(sgemm_rounds) > 1 else sgemm_best
    train_flops = training_flops(config)
    reference_spec = next((i.spec for i in impls if i.kind == "reference"), None)
    first_keras = next((i.spec for i in impls if i.kind != "reference"), impls[0].spec)
    entries = []
    for impl in impls:
        steps_s = [t["step_s"] for t in timings[impl.spec]]
        median_step = statistics.median(steps_s)
        first_step = setups[impl.spec]["first"]["step_s"]
        gflops = train_flops / median_step / 1e9
        matmul = setups[impl.spec]["matmul"]
        anchor = [t["step_s"] for t in timings[first_keras]]
        vs_first = statistics.median(a / b for a, b in zip(steps_s, anchor))
        ratio = cpu_ratio = None
        if reference_spec is not None:
            ref_steps = [t["step_s"] for t in timings[reference_spec]]
            ratio = statistics.median(a / b for a, b in zip(steps_s, ref_steps))
            ref_cpu = [t["cpu_s"] for t in timings[reference_spec]]
            cpu_ratio = statistics.median(
                a["cpu_s"] / b for a, b in zip(timings[impl.spec], ref_cpu)
            )
        roll = [r["rollout_s"] for r in rollouts[impl.spec]]
        roll_median = statistics.median(roll[1:])
        per_sequence_rollout = roll_median / config.batch_size
        waits = [t["data_wait_s"] for t in timings[impl.spec]]
        summary = summaries[impl.spec]
        entry = {
            "implementation": impl.spec,
            "backend": impl.backend,
            "precision": impl.precision,
            "xla": summary["xla"],
            "remat": impl.remat,
            "layout": impl.layout or summary.get("layout"),
            "device": summary["device"],
            "step_s": median_step,
            "step_times_s": steps_s,
            "step_cpu_s": statistics.median(t["cpu_s"] for t in timings[impl.spec]),
            "steps_timed": len(steps_s),
            "compile_s": max(first_step - median_step, 0.0),
            "first_step_s": first_step,
            "sequences_per_s": config.batch_size / median_step,
            "frames_per_s": config.batch_size * (config.total_length - 1) / median_step,
            "flops_per_step": train_flops,
            "gflops_per_s": gflops,
            "fraction_of_sgemm_peak": gflops / sgemm_median,
            "backend_matmul_gflops": matmul["best"],
            "fraction_of_backend_matmul": gflops / matmul["best"],
            "step_vs_reference": ratio,
            "step_vs_first": vs_first,
            "cpu_vs_reference": cpu_ratio,
            "rollout_s_per_sequence": per_sequence_rollout,
            "rollout_compile_s": max(roll[0] - roll_median, 0.0),
            "rollout_vs_train_per_sequence": per_sequence_rollout / (median_step / config.batch_size),
            "rollout_finite": all(r["finite"] for r in rollouts[impl.spec]),
            "peak_memory_mb": summary["peak_memory_mb"],
            "baseline_memory_mb": summary["baseline_memory_mb"],
            "working_memory_mb": summary["working_memory_mb"],
            "device_peak_memory_mb": summary.get("device_peak_memory_mb"),
            "data_wait_s": statistics.median(waits),
            "data_wait_fraction": statistics.median(waits) / median_step,
            "final_loss": timings[impl.spec][-1]["loss"],
            "parameters": summary["parameters"],
            "versions": summary["versions"],
            "data_source": summary.get("data_source"),
        }
        entries.append(entry)
    result = {
        "config": {**_config_to_json(config), "description": config.describe()},
        "machine": machine,
        "started_utc": started.isoformat(timespec="seconds"),
        "duration_s": (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds(),
        "flops": {
            "training_step": train_flops,
            "forward": forward_flops(config),
            "rollout": rollout_flops(config),
            "convention": "2 FLOPs per conv multiply-add (1x1 included); training = 3x forward; elementwise ops excluded",
        },
        "sgemm": {
            "library": "numpy",
            "size": matmul_size,
            "best_gflops": sgemm_best,
            "median_gflops_during_rounds": sgemm_median,
            "per_round_gflops": [r["best"] for r in sgemm_rounds],
        },
        "load_average": load,
        "steps": steps,
        "warmup": warmup,
        "rollout_repeats": rollout_repeats,
        "isolated": isolate,
        "reference": (
            "benchmarks/reference_torch.py: a PyTorch re-implementation of the official code's structure "
            "(not the official file)" if reference_spec else None
        ),
        "first_keras": first_keras,
        "implementations": entries,
    }
    return result


# --------------------------------------------------------------------------- reporting
def _fmt(value, digits=2, percent=False):
    if value is None:
        return "-"
    if percent:
        return f"{100 * value:.{digits}f}%"
    return f"{value:.{digits}f}"


def format_markdown(result: dict) -> str:
    """The README table (machine, backend, precision, config, figures) of a result."""
    m = result["machine"]
    load = result["load_average"]
    lines = [
        f"**{result['config']['description']}** — {result['flops']['training_step'] / 1e12:.2f} TFLOP per "
        f"training step (analytic), {result['flops']['rollout'] / 1e12:.3f} TFLOP per rollout of the batch.",
        "",
        f"Machine: {m.get('cpu')}{_features_text(m)}, {m.get('usable_cores', m.get('cores'))} cores, "
        f"{m.get('memory_gb', '?')} GB; "
        f"NumPy sgemm {result['sgemm']['best_gflops']:.0f} GFLOP/s best, "
        f"{result['sgemm']['median_gflops_during_rounds']:.0f} median during the rounds; "
        f"load average {load.get('start')} -> {load.get('end')}; {result['started_utc']}; "
        f"{result['steps']} interleaved timed steps (median), {result['warmup']} warm-up.",
        "",
        f"| implementation | precision | XLA | step s | vs reference | vs {result.get('first_keras', result['implementations'][0]['implementation'])} "
        "| compile s | seq/s | frames/s "
        "| GFLOP/s | % sgemm | rollout s/seq | rollout/train per seq | peak MB (over import) | data wait |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in result["implementations"]:
        lines.append(
            f"| {e['implementation']} | {e['precision']} | {'yes' if e['xla'] else 'no'} | {_fmt(e['step_s'])} "
            f"| {_fmt(e['step_vs_reference'])} | {_fmt(e['step_vs_first'])} | {_fmt(e['compile_s'], 1)} "
            f"| {_fmt(e['sequences_per_s'], 3)} "
            f"| {_fmt(e['frames_per_s'], 1)} | {_fmt(e['gflops_per_s'], 1)} | {_fmt(e['fraction_of_sgemm_peak'], 0, True)} "
            f"| {_fmt(e['rollout_s_per_sequence'], 3)} | {_fmt(e['rollout_vs_train_per_sequence'])} "
            f"| {_fmt(e['peak_memory_mb'], 0)} ({_fmt(e['working_memory_mb'], 0)}) "
            f"| {_fmt(e['data_wait_fraction'], 2, True)} |"
        )
    versions = {}
    for e in result["implementations"]:
        versions.update(e.get("versions") or {})
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) + "."]
    if result.get("reference"):
        lines.append(f"Reference: {result['reference']}.")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- command line
def add_benchmark_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``benchmark`` sub-command to an ``argparse`` sub-parsers object."""
    parser = subparsers.add_parser(
        "benchmark",
        help="time training steps and rollouts per backend and precision, side by side with a PyTorch reference",
        description=__doc__.split("\n")[0],
    )
    _add_arguments(parser)
    parser.set_defaults(handler=run_benchmark_command)
    return parser


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), default="mnist",
                        help="model and batch (mnist: 4x64/batch 8; paper: 4x128/batch 16; default mnist)")
    parser.add_argument("--impl", nargs="+", default=["reference", "tensorflow"], metavar="SPEC",
                        help=f"implementations: reference, or BACKEND[+FLAG...][:PRECISION] with BACKEND in "
                             f"{'/'.join(BACKENDS)}, FLAG in {', '.join(FLAGS)} (benchmarks/README.md), "
                             f"PRECISION {'/'.join(PRECISIONS)} (default: reference tensorflow)")
    parser.add_argument("--filters", type=int, nargs="+", help="override the preset's layer widths")
    parser.add_argument("--batch-size", type=int, help="override the preset's batch size")
    parser.add_argument("--frames", type=int, nargs=2, metavar=("INPUT", "OUTPUT"), help="override input/output lengths")
    parser.add_argument("--layer-norm", action="store_true", help="use layer norm in the cells")
    parser.add_argument("--decoupling-weight", type=float, help="PredRNN-V2 beta (e.g. 0.1)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per implementation (median; default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps, the first compiles (default 1)")
    parser.add_argument("--rollout-repeats", type=int, default=3, help="timed rollouts (default 3)")
    parser.add_argument("--output", "-o", help="write the JSON result here (refuses to overwrite)")
    parser.add_argument("--readme", help="write the Markdown table here (refuses to overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="allow replacing --output/--readme")
    parser.add_argument("--reference-path", help="path of reference_torch.py (default: the checkout's benchmarks/)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def _config_from_args(args) -> BenchmarkConfig:
    config = PRESETS[args.preset]
    changes = {}
    if args.filters:
        changes["filters"] = tuple(args.filters)
    if args.batch_size:
        changes["batch_size"] = args.batch_size
    if args.frames:
        changes["input_length"], changes["output_length"] = args.frames
    if args.layer_norm:
        changes["use_layer_norm"] = True
    if args.decoupling_weight is not None:
        changes["decoupling_weight"] = args.decoupling_weight
    return dataclasses.replace(config, **changes) if changes else config


def _check_writable(path, overwrite):
    if path and Path(path).exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it or choose another path.")


def run_benchmark_command(args) -> int:
    """Run the ``benchmark`` sub-command; returns the exit status."""
    try:
        config = _config_from_args(args)
        for path in (args.output, args.readme):
            _check_writable(path, args.overwrite)
        impls = [parse_implementation(spec) for spec in args.impl]
    except (ValueError, FileExistsError) as error:
        print(f"predrnn benchmark: error: {error}", file=sys.stderr)
        return 2
    progress = None if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    # The workers inherit them: the allocators the `predrnn` command sets, so that `python -m
    # predrnn.benchmark` measures what `predrnn benchmark` and `predrnn train` run (without
    # TensorFlow's BFC allocator its XLA cell steps measured ~1.4x slower, 2.8 against 2.3 GB).
    use_the_command_allocators()
    try:
        result = run_benchmark(
            config, impls, steps=args.steps, warmup=args.warmup, rollout_repeats=args.rollout_repeats,
            seed=args.seed, reference_path=args.reference_path, progress=progress,
        )
    except (RuntimeError, ValueError, FileNotFoundError) as error:
        print(f"predrnn benchmark: error: {error}", file=sys.stderr)
        return 1
    table = format_markdown(result)
    print(table)
    for path, text in ((args.output, json.dumps(result, indent=2) + "\n"), (args.readme, table)):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
            print(f"wrote {path}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return _worker_main()
    parser = argparse.ArgumentParser(prog="python -m predrnn.benchmark", description=__doc__.split("\n")[0])
    _add_arguments(parser)
    return run_benchmark_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
