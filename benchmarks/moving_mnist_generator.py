"""Throughput of the Moving MNIST generator (sequences per second, one process).

    python benchmarks/moving_mnist_generator.py                 # 1000 sequences x 7 runs
    python benchmarks/moving_mnist_generator.py --batch-size 16 # the training stream's batches
    python benchmarks/moving_mnist_generator.py --json          # machine-readable result

Prints the median of several timed runs (after one warm-up run that also reads the bundled
digits), by wall clock and by the process's CPU time. The generator is NumPy on one thread, so
on a busy machine the CPU-time figure is the throughput of one core it has to itself; ``--cpu K``
pins the process to core K (Linux). Target: >= 5,000 sequences (20 x 64 x 64) per second.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

from predrnn.data import generate_moving_mnist, load_mnist_digits, moving_mnist_batch


def _parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num", type=int, default=1000, help="sequences per timed run (default 1000)")
    parser.add_argument(
        "--batch-size", type=int, default=None,
        help="time the training stream instead: moving_mnist_batch() calls of this size, "
        "--num sequences in all",
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed runs; the median is reported")
    parser.add_argument("--digits", type=int, default=2)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--split", choices=("test", "train"), default="test")
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU core (Linux only)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return parser.parse_args(argv)


def _run_once(args, seed: int) -> tuple[float, float]:
    options = dict(
        num_digits=args.digits, num_frames=args.frames, image_size=args.image_size, split=args.split
    )
    start, cpu_start = time.perf_counter(), time.process_time()
    if args.batch_size is None:
        generate_moving_mnist(args.num, seed, **options)
    else:
        for step in range(max(args.num // args.batch_size, 1)):
            moving_mnist_batch(args.batch_size, seed, step, **options)
    return time.perf_counter() - start, time.process_time() - cpu_start


def main(argv=None) -> dict:
    args = _parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    load_mnist_digits(args.split)  # read and cache the digits outside the timing
    _run_once(args, seed=0)  # warm-up
    if args.batch_size is None:
        sequences, mode = args.num, "generate_moving_mnist"
    else:
        sequences = max(args.num // args.batch_size, 1) * args.batch_size
        mode = f"moving_mnist_batch(batch_size={args.batch_size})"
    timings = [_run_once(args, seed=1 + r) for r in range(args.repeats)]
    rates = [sequences / wall for wall, _ in timings]
    cpu_rates = [sequences / max(cpu, 1e-9) for _, cpu in timings]
    result = {
        "benchmark": "moving_mnist_generator",
        "mode": mode,
        "sequences_per_run": sequences,
        "frames": args.frames,
        "image_size": args.image_size,
        "digits": args.digits,
        "repeats": args.repeats,
        "sequences_per_second_median": statistics.median(rates),
        "sequences_per_second_min": min(rates),
        "sequences_per_second_max": max(rates),
        "sequences_per_cpu_second_median": statistics.median(cpu_rates),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": args.cpu,
    }
    if args.json:
        print(json.dumps(result))
    else:
        low, high = result["sequences_per_second_min"], result["sequences_per_second_max"]
        print(
            f"{mode}: {result['sequences_per_second_median']:,.0f} sequences/s median "
            f"(min {low:,.0f}, max {high:,.0f}; "
            f"{result['sequences_per_cpu_second_median']:,.0f} per CPU-second; "
            f"{args.repeats} runs of {sequences} x {args.frames}x{args.image_size}x{args.image_size}, "
            f"{args.digits} digits)"
        )
    return result


if __name__ == "__main__":
    main()
