"""What the benchmark measures about the machine: dense matmul peaks, memory, load, devices."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time

import numpy as np

from predrnn.hardware import bfloat16_support, cpu_features, cpu_flags


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


def peak_rss_bytes() -> int:
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(usage if sys.platform == "darwin" else usage * 1024)


def machine_info() -> dict:
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


def load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def device_name(backend: str) -> str:
    """ "cpu" or the accelerator the backend runs on (backend-specific, for the report only)."""
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

            return torch.cuda.getdevice_name(0) if torch.cuda.is_available() else "cpu"
    except Exception:  # noqa: BLE001 - informational only
        pass
    return "cpu"


def matmul_size(device: str, dtype: str) -> int:
    """The side of the square matmul that measures a backend's dense peak: 2048 (1024 in the
    CPU-emulated low precisions) on the CPU; 8192 on an accelerator, where a 2048 product takes
    tens of microseconds, about what launching and reading it back does."""
    if device != "cpu":
        return 8192
    return 2048 if dtype == "float32" else 1024


def memory_report(backend: str, baseline_rss: int) -> dict:
    """Peak host RSS of this process, plus the device peak where a GPU is used."""
    peak = peak_rss_bytes()
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
