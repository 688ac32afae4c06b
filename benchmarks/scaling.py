"""Data-parallel scaling: training throughput on 1 vs N devices, per backend.

For each backend (JAX: ``keras.distribution.DataParallel``; TensorFlow:
``tf.distribute.MirroredStrategy``) this times the training job's own model, data pipeline
and ``fit`` (``predrnn.jobs.train`` building blocks under ``predrnn.jobs.distribution``) on:

- 1 device, global batch B (the baseline);
- N devices, global batch B (strong scaling: the same optimisation, split N ways);
- N devices, global batch N x B (weak scaling: the same batch per device).

Throughput is sequences per second (``global batch / median step time``); per-device
efficiency is ``throughput(N) / (N x throughput(1))`` (1.0 = perfect linear scaling).

Each configuration runs in its own worker process (the device count is fixed when the backend
starts). The workers compile first, then the driver times them in interleaved rounds (one block
of steps of each configuration per round, one worker at a time), so that a change of machine
load hits all of them alike; the table reports medians over all timed steps, the load average,
and the CPU seconds each configuration used per step.

On a CPU the "devices" are XLA / TensorFlow virtual CPU devices. ``--threads-per-device``
(default 1) gives each one that many compute threads (XLA: ``intra_op_parallelism_threads``
without multi-threaded Eigen; TensorFlow: ``intra_op`` threads, ``inter_op`` = devices), so
that N devices can use N cores and 1 device only one, as on separate accelerators. With 0,
every device uses every core and the table measures the engine's overhead instead.

Usage::

    python benchmarks/scaling.py                                  # JAX and TensorFlow, 1 vs 2
    python benchmarks/scaling.py --backends jax --devices 4 --rounds 8 \\
        --preset quickstart --set data.input_length=10 data.output_length=10 \\
        --output benchmarks/results/scaling.json --markdown benchmarks/results/scaling.md

On a multi-GPU machine pass ``--threads-per-device 0``: the devices are then the GPUs (JAX:
``jax.devices()``; TensorFlow: the visible GPUs), and ``--devices`` must not exceed them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BACKENDS = ("jax", "tensorflow")
DEFAULT_SET = ["data.input_length=3", "data.output_length=3", "train.batch_size=8"]
READY = "@@scaling-ready@@ "
RESULT = "@@scaling-result@@ "


# --------------------------------------------------------------------------- worker
def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker(args) -> None:
    """One configuration: build, compile, then time ``run K`` requests read from stdin."""
    backend = os.environ["KERAS_BACKEND"]
    if backend == "tensorflow":
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.devices)
        if args.threads_per_device:
            tf.config.threading.set_intra_op_parallelism_threads(args.threads_per_device)
            tf.config.threading.set_inter_op_parallelism_threads(args.devices)
    import keras
    import numpy as np

    from predrnn.jobs.config import load_config
    from predrnn.jobs.distribution import distribution_scope
    from predrnn.jobs.train import _compile, build_datasets, build_model

    overrides = list(args.set) + [
        f"train.batch_size={args.batch}",
        f"train.steps_per_epoch={args.steps}",
        "train.progress=false",
    ]
    config = load_config(args.preset, overrides)
    keras.utils.set_random_seed(config.train.seed)
    mode = "data_parallel" if args.devices > 1 else "none"

    class StepTimes(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())
            cpu_stamps.append(_cpu_seconds())

    with distribution_scope(mode, global_batch_size=config.train.batch_size) as info:
        if info.num_replicas != args.devices:
            raise SystemExit(f"asked for {args.devices} devices, the engine has {info.num_replicas} replicas")
        model = build_model(config.model)
        _compile(model, config.train)
        dataset, _ = build_datasets(config)
        data = info.shard_dataset(dataset)
        epoch = 0

        def run_block():
            nonlocal epoch
            stamps.clear()
            cpu_stamps.clear()
            model.fit(
                data,
                epochs=epoch + 1,
                initial_epoch=epoch,
                callbacks=[dataset.epoch_callback(), StepTimes()],
                shuffle=False,
                verbose=0,
            )
            epoch += 1
            # Between the ends of the first and the last step: no fit set-up or tear-down.
            return np.diff(stamps).tolist(), (cpu_stamps[-1] - cpu_stamps[0]) / (len(stamps) - 1)

        stamps: list[float] = []
        cpu_stamps: list[float] = []
        started = time.perf_counter()
        run_block()  # compile and warm up
        print(READY + json.dumps({"compile_seconds": time.perf_counter() - started, "engine": info.engine}), flush=True)
        for line in sys.stdin:
            if line.strip() != "run":
                break
            steps, cpu = run_block()
            print(RESULT + json.dumps({"steps": steps, "cpu_per_step": cpu}), flush=True)


# --------------------------------------------------------------------------- driver
def _worker_env(backend: str, devices: int, threads: int) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    for name in ("TF_CONFIG", "KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES"):
        env.pop(name, None)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
    if backend == "jax":
        flags.append(f"--xla_force_host_platform_device_count={devices}")
        if threads:
            flags += ["--xla_cpu_multi_thread_eigen=false", f"intra_op_parallelism_threads={threads}"]
    env["XLA_FLAGS"] = " ".join(flags)
    return env


class Worker:
    def __init__(self, args, backend, devices, batch):
        self.backend, self.devices, self.batch = backend, devices, batch
        command = [
            sys.executable,
            __file__,
            "--worker",
            "--devices",
            str(devices),
            "--batch",
            str(batch),
            "--steps",
            str(args.steps),
            "--preset",
            args.preset,
            "--threads-per-device",
            str(args.threads_per_device),
            "--set",
            *args.set,
        ]
        self.process = subprocess.Popen(
            command,
            env=_worker_env(backend, devices, args.threads_per_device),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.steps: list[float] = []
        self.cpu: list[float] = []
        self.ready = self._read(READY)

    def _read(self, prefix):
        for line in self.process.stdout:
            if line.startswith(prefix):
                return json.loads(line[len(prefix) :])
        error = self.process.stderr.read()[-3000:]
        raise RuntimeError(f"{self.backend} worker ({self.devices} devices) failed:\n{error}")

    def run(self):
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        result = self._read(RESULT)
        self.steps += result["steps"]
        self.cpu.append(result["cpu_per_step"])

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def summary(self):
        step = statistics.median(self.steps)
        return {
            "backend": self.backend,
            "devices": self.devices,
            "global_batch": self.batch,
            "engine": self.ready["engine"],
            "compile_seconds": round(self.ready["compile_seconds"], 1),
            "timed_steps": len(self.steps),
            "step_seconds": step,
            "step_seconds_iqr": _iqr(self.steps),
            "sequences_per_second": self.batch / step,
            "cpu_seconds_per_step": statistics.median(self.cpu),
        }


def _iqr(values):
    quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return [quartiles[0], quartiles[2]]


def run(args) -> dict:
    from predrnn.jobs.config import load_config

    base_batch = load_config(args.preset, list(args.set)).train.batch_size
    load_before = os.getloadavg()
    rows = []
    for backend in args.backends:
        configs = [(1, base_batch), (args.devices, base_batch), (args.devices, base_batch * args.devices)]
        workers = []
        try:
            for devices, batch in configs:
                print(f"{backend}: starting {devices} device(s), global batch {batch} ...", file=sys.stderr, flush=True)
                workers.append(Worker(args, backend, devices, batch))
            for round_ in range(args.rounds):
                for w in workers:
                    w.run()
                print(f"{backend}: round {round_ + 1}/{args.rounds}", file=sys.stderr, flush=True)
        finally:
            for w in workers:
                w.close()
        summaries = [w.summary() for w in workers]
        base = summaries[0]["sequences_per_second"]
        for summary, kind in zip(summaries, ("baseline", "strong", "weak")):
            summary["scaling"] = kind
            summary["speedup"] = summary["sequences_per_second"] / base
            summary["efficiency_per_device"] = summary["speedup"] / summary["devices"]
        rows += summaries
    import keras

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}",
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "keras": keras.__version__,
        "preset": args.preset,
        "overrides": list(args.set),
        "threads_per_device": args.threads_per_device,
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "rows": rows,
    }


def to_markdown(result: dict) -> str:
    lines = [
        f"Preset `{result['preset']}` with `{' '.join(result['overrides'])}`; {result['machine']}; "
        f"{result['threads_per_device'] or 'all'} thread(s) per device; median of "
        f"{result['rounds']} x {result['steps_per_round'] - 1} timed steps (interleaved rounds); load average "
        f"{result['load_average_before'][0]} before, {result['load_average_after'][0]} after.",
        "",
        "| backend | devices | global batch | scaling | step (s) | sequences/s | speedup | per-device efficiency "
        "| CPU s/step | sequences/CPU-s | CPU efficiency | compile (s) |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = {}
    for r in result["rows"]:
        per_cpu = r["global_batch"] / r["cpu_seconds_per_step"]
        base.setdefault(r["backend"], per_cpu)
        lines.append(
            f"| {r['backend']} | {r['devices']} | {r['global_batch']} | {r['scaling']} | {r['step_seconds']:.3f} | "
            f"{r['sequences_per_second']:.1f} | {r['speedup']:.2f} | {r['efficiency_per_device']:.2f} | "
            f"{r['cpu_seconds_per_step']:.3f} | {per_cpu:.1f} | {per_cpu / base[r['backend']]:.2f} | "
            f"{r['compile_seconds']:.0f} |"
        )
    lines += [
        "",
        "speedup = sequences/s over the 1-device row; per-device efficiency = speedup / devices "
        "(wall clock: depends on the cores free during the run). CPU efficiency = sequences per "
        "CPU-second over the 1-device row: the compute the engine adds (1.00 = none), whatever the load.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--devices", type=int, default=2, help="devices of the data-parallel runs (default 2)")
    parser.add_argument("--preset", default="quickstart", help="a preset or TOML file (default quickstart)")
    parser.add_argument(
        "--set",
        nargs="*",
        default=DEFAULT_SET,
        metavar="SECTION.KEY=VALUE",
        help=f"config overrides (default: {' '.join(DEFAULT_SET)}); train.batch_size is B",
    )
    parser.add_argument("--steps", type=int, default=5, help="steps per timed block (default 5)")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds of blocks (default 4)")
    parser.add_argument(
        "--threads-per-device",
        type=int,
        default=1,
        help="compute threads per virtual CPU device; 0 = the framework's default (all cores)",
    )
    parser.add_argument("--output", type=Path, help="write the JSON result here")
    parser.add_argument("--markdown", type=Path, help="write the Markdown table here")
    parser.add_argument("--from-json", type=Path, help="only print (and --markdown) the table of an earlier --output")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if args.from_json:
        result = json.loads(args.from_json.read_text())
        table = to_markdown(result)
        print(table)
        if args.markdown:
            args.markdown.write_text(table)
        return 0
    if args.steps < 2 or args.rounds < 1 or args.devices < 2:
        parser.error("--steps must be >= 2, --rounds >= 1 and --devices >= 2")
    result = run(args)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2))
    table = to_markdown(result)
    print(table)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
