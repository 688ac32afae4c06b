"""The benchmark: interleaved rounds of every implementation, summarised per implementation."""

from __future__ import annotations

import datetime
import statistics
import time

from predrnn.benchmark.config import PRESETS, BenchmarkConfig, parse_implementation
from predrnn.benchmark.flops import forward_flops, rollout_flops, training_flops
from predrnn.benchmark.machine import load_average, machine_info, measure_matmul_peak
from predrnn.benchmark.workers import InProcessWorker, SubprocessWorker, config_to_json

RESULT_KEYS = (
    "implementation",
    "backend",
    "precision",
    "xla",
    "remat",
    "layout",
    "device",
    "step_s",
    "step_times_s",
    "step_cpu_s",
    "steps_timed",
    "compile_s",
    "first_step_s",
    "sequences_per_s",
    "frames_per_s",
    "flops_per_step",
    "gflops_per_s",
    "fraction_of_sgemm_peak",
    "backend_matmul_gflops",
    "fraction_of_backend_matmul",
    "step_vs_reference",
    "step_vs_first",
    "rollout_s_per_sequence",
    "rollout_compile_s",
    "rollout_vs_train_per_sequence",
    "peak_memory_mb",
    "baseline_memory_mb",
    "working_memory_mb",
    "data_wait_s",
    "data_wait_fraction",
    "final_loss",
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
    load = {"start": load_average()}
    machine = machine_info()
    say(f"{config.describe()}; load average {load['start']}")
    sgemm_rounds = [measure_matmul_peak(matmul_size, repeats=3)]
    say(f"numpy sgemm {sgemm_rounds[0]['best']:.1f} GFLOP/s")

    workers, setups = [], {}
    try:
        for impl in impls:
            say(f"starting {impl.spec} ...")
            start = time.perf_counter()
            if isolate:
                worker = SubprocessWorker(impl, config, seed, reference_path)
            elif impl.environment():
                raise ValueError(
                    f"{impl.spec}: its flags set {', '.join(impl.environment())} in the worker's environment, "
                    "so they need isolate=True."
                )
            else:
                worker = InProcessWorker(impl, config, seed, reference_path)
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
                + f"; sgemm {sgemm_rounds[-1]['best']:.1f} GFLOP/s; load {load_average()}"
            )
        rollouts = {impl.spec: [] for impl in impls}
        for _ in range(rollout_repeats + 1):
            for worker in workers:
                rollouts[worker.impl.spec].append(worker.call("rollout"))
        summaries = {worker.impl.spec: worker.call("summary") for worker in workers}
    finally:
        for worker in workers:
            worker.close()
    load["end"] = load_average()

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
            cpu_ratio = statistics.median(a["cpu_s"] / b for a, b in zip(timings[impl.spec], ref_cpu))
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
        "config": {**config_to_json(config), "description": config.describe()},
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
            "predrnn.benchmark.reference_torch: a PyTorch re-implementation of the official code's structure "
            "(not the official file)"
            if reference_spec
            else None
        ),
        "first_keras": first_keras,
        "implementations": entries,
    }
    return result
