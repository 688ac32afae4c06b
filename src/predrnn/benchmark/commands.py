"""``predrnn benchmark``: the command line of :func:`predrnn.benchmark.run_benchmark`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from predrnn.acceleration.memory import use_the_command_allocators
from predrnn.benchmark.config import BACKENDS, FLAGS, PRECISIONS, PRESETS, BenchmarkConfig, parse_implementation
from predrnn.benchmark.report import format_markdown
from predrnn.benchmark.run import run_benchmark

DESCRIPTION = "Time training steps and rollouts per backend and precision, side by side with a PyTorch reference."


def add_benchmark_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``benchmark`` sub-command to an ``argparse`` sub-parsers object."""
    parser = subparsers.add_parser(
        "benchmark",
        help="time training steps and rollouts per backend and precision, side by side with a PyTorch reference",
        description=DESCRIPTION,
    )
    _add_arguments(parser)
    parser.set_defaults(handler=run_benchmark_command)
    return parser


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="mnist",
        help="model and batch (mnist: 4x64/batch 8; paper: 4x128/batch 16; default mnist)",
    )
    parser.add_argument(
        "--impl",
        nargs="+",
        default=["reference", "tensorflow"],
        metavar="SPEC",
        help=f"implementations: reference, or BACKEND[+FLAG...][:PRECISION] with BACKEND in "
        f"{'/'.join(BACKENDS)}, FLAG in {', '.join(FLAGS)} (docs/performance.md), "
        f"PRECISION {'/'.join(PRECISIONS)} (default: reference tensorflow)",
    )
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
    parser.add_argument(
        "--reference-path", help="a Python file with another ReferenceTrainer (default: predrnn.benchmark.reference_torch)"
    )
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
            config,
            impls,
            steps=args.steps,
            warmup=args.warmup,
            rollout_repeats=args.rollout_repeats,
            seed=args.seed,
            reference_path=args.reference_path,
            progress=progress,
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
    """``python -m predrnn.benchmark``: the command without the ``predrnn`` entry point."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m predrnn.benchmark", description=DESCRIPTION)
    _add_arguments(parser)
    return run_benchmark_command(parser.parse_args(argv))
