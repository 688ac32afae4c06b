"""Throughput and peak memory of ``predrnn data moving-mnist``, the command itself.

    python benchmarks/moving_mnist_generator.py                      # --num 10000, 5 runs
    python benchmarks/moving_mnist_generator.py --cpu 0              # the command on core 0
    python benchmarks/moving_mnist_generator.py --format official-npz --num 2000
    python benchmarks/moving_mnist_generator.py --batch-size 16      # the training stream
    python benchmarks/moving_mnist_generator.py --json               # machine-readable result

Each timed run is a new process, ``python -m predrnn data moving-mnist --num N --seed R --out
FILE`` (a new file in a temporary folder, deleted afterwards), from start-up to exit: imports,
generation, writing and ``fsync``. For each run it records the wall time, the process's CPU
time (user + system, from ``os.wait4``) and its peak resident memory (``VmHWM``, which the
process reports at exit; Linux). One run of ``--num 1`` measures the start-up: its time and its
peak memory (the interpreter, NumPy, the MNIST digits). Reported: medians over the runs of
sequences per second (by wall clock, and per CPU-second: on a busy machine the latter is the
throughput of a core the command has to itself), the peak memory, and the peak's growth over
the ``--num 1`` run as a multiple of the output file's size. Target for the default set (20
frames of 64x64, 2 digits, the mnist_test_seq layout, 819 MB at N = 10,000): >= 5,000
sequences per second on one core, and a growth under 2x the output.

``--batch-size B`` times the training stream instead, in this process: ``moving_mnist_batch``
calls of B sequences, ``--num`` sequences in all, median of the runs after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num", type=int, default=10_000, help="sequences per run (default 10000)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; medians are reported")
    parser.add_argument(
        "--format",
        choices=("mnist-test-seq", "official-npz", "npy"),
        default="mnist-test-seq",
        help="the command's --format (default mnist-test-seq)",
    )
    parser.add_argument("--digits", type=int, default=2)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--split", choices=("test", "train"), default="test")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="time the training stream instead: moving_mnist_batch() calls of this size in this process, --num sequences in all",
    )
    parser.add_argument("--cpu", type=int, default=None, help="pin the runs to this CPU core (Linux)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return parser.parse_args(argv)


# ``python -m predrnn ARGS``, printing the process's own peak resident memory (VmHWM) at exit.
# (``os.wait4``'s ``ru_maxrss`` of a child starts from the parent's peak, kept through exec.)
_COMMAND = """
import atexit, runpy, sys
def report():
    peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    sys.stderr.write(peak)
atexit.register(report)
sys.argv = ["predrnn", *sys.argv[1:]]
runpy.run_module("predrnn", run_name="__main__")
"""


def run_command(num: int, seed: int, out: Path, args, cpu: int | None = None) -> dict:
    """One ``predrnn data moving-mnist`` process: wall and CPU seconds, peak RSS, file size."""
    argv = [
        "data",
        "moving-mnist",
        "--num",
        str(num),
        "--seed",
        str(seed),
        "--digits",
        str(args.digits),
        "--frames",
        str(args.frames),
        "--image-size",
        str(args.image_size),
        "--split",
        args.split,
        "--format",
        args.format,
        "--out",
        str(out),
    ]
    out.unlink(missing_ok=True)  # a new file, as usual (deleting an old one is not timed)
    pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", _COMMAND, *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=pin,
    )
    error = process.stderr.read().decode()  # until the process closes it, at exit
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    process.stderr.close()
    if process.returncode != 0:
        raise SystemExit(f"predrnn {' '.join(argv)} failed ({process.returncode}):\n{error}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_bytes": int(error.splitlines()[-1].split()[1]) * 1024,  # "VmHWM:  58504 kB"
        "output_bytes": out.stat().st_size,
    }


def _command_benchmark(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="moving-mnist-bench-") as folder:
        suffix = ".npz" if args.format == "official-npz" else ".npy"
        out = Path(folder) / f"set{suffix}"
        run_command(1, 0, out, args, args.cpu)  # warm the page cache (Python, NumPy, digits)
        startup = run_command(1, 0, out, args, args.cpu)
        runs = [run_command(args.num, 1 + r, out, args, args.cpu) for r in range(args.repeats)]
    output = runs[0]["output_bytes"]
    peak = statistics.median(r["peak_rss_bytes"] for r in runs)
    return {
        "benchmark": "moving_mnist_command",
        "format": args.format,
        "sequences_per_run": args.num,
        "sequences_per_second_median": statistics.median(args.num / r["wall_s"] for r in runs),
        "sequences_per_second_min": min(args.num / r["wall_s"] for r in runs),
        "sequences_per_second_max": max(args.num / r["wall_s"] for r in runs),
        "sequences_per_cpu_second_median": statistics.median(args.num / r["cpu_s"] for r in runs),
        "wall_s_median": statistics.median(r["wall_s"] for r in runs),
        "cpu_s_median": statistics.median(r["cpu_s"] for r in runs),
        "output_bytes": output,
        "peak_rss_bytes_median": peak,
        "peak_rss_over_output": peak / output,
        "startup_wall_s": startup["wall_s"],
        "startup_peak_rss_bytes": startup["peak_rss_bytes"],
        "peak_growth_over_output": (peak - startup["peak_rss_bytes"]) / output,
        "runs": runs,
    }


def _stream_benchmark(args) -> dict:
    from predrnn.data import load_mnist_digits, moving_mnist_batch

    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    options = dict(num_digits=args.digits, num_frames=args.frames, image_size=args.image_size, split=args.split)
    steps = max(args.num // args.batch_size, 1)
    load_mnist_digits(args.split)  # read and cache the digits outside the timing

    def run_once(seed):
        start, cpu_start = time.perf_counter(), time.process_time()
        for step in range(steps):
            moving_mnist_batch(args.batch_size, seed, step, **options)
        return time.perf_counter() - start, time.process_time() - cpu_start

    run_once(0)  # warm-up
    timings = [run_once(1 + r) for r in range(args.repeats)]
    sequences = steps * args.batch_size
    rates = [sequences / wall for wall, _ in timings]
    return {
        "benchmark": "moving_mnist_stream",
        "batch_size": args.batch_size,
        "sequences_per_run": sequences,
        "sequences_per_second_median": statistics.median(rates),
        "sequences_per_second_min": min(rates),
        "sequences_per_second_max": max(rates),
        "sequences_per_cpu_second_median": statistics.median(sequences / max(cpu, 1e-9) for _, cpu in timings),
    }


def main(argv=None) -> dict:
    args = _parse_args(argv)
    result = _command_benchmark(args) if args.batch_size is None else _stream_benchmark(args)
    result.update(
        frames=args.frames,
        image_size=args.image_size,
        digits=args.digits,
        split=args.split,
        repeats=args.repeats,
        cpu=args.cpu,
        numpy=np.__version__,
        python=platform.python_version(),
        machine=platform.machine(),
        load_average=os.getloadavg(),
    )
    if args.json:
        print(json.dumps(result))
        return result
    shape = f"{args.frames}x{args.image_size}x{args.image_size}, {args.digits} digits"
    rates = (
        f"{result['sequences_per_second_median']:,.0f} sequences/s median "
        f"(min {result['sequences_per_second_min']:,.0f}, max {result['sequences_per_second_max']:,.0f}; "
        f"{result['sequences_per_cpu_second_median']:,.0f} per CPU-second)"
    )
    if args.batch_size is not None:
        print(
            f"moving_mnist_batch(batch_size={args.batch_size}): {rates}, {args.repeats} runs of "
            f"{result['sequences_per_run']} x {shape}"
        )
        return result
    mb = 1e6
    print(
        f"predrnn data moving-mnist --num {args.num} --format {args.format} ({shape}): {rates}; "
        f"median {result['wall_s_median']:.2f} s wall, {result['cpu_s_median']:.2f} s CPU; "
        f"{args.repeats} runs, cpu {args.cpu}, load average {result['load_average'][0]:.2f}\n"
        f"output {result['output_bytes'] / mb:,.0f} MB; peak RSS {result['peak_rss_bytes_median'] / mb:,.0f} MB "
        f"= {result['peak_rss_over_output']:.2f}x the output; --num 1: "
        f"{result['startup_peak_rss_bytes'] / mb:,.0f} MB, {result['startup_wall_s']:.2f} s; "
        f"growth over it {result['peak_growth_over_output']:.2f}x the output"
    )
    return result


if __name__ == "__main__":
    main()
