"""The ``experiment``, ``experiment-task`` and ``experiment-summary`` subcommands of the
``predrnn`` command.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from predrnn.cli_args import add_backend_argument, positive_int
from predrnn.errors import ConfigError
from predrnn.jobs.experiment.export import export_experiment
from predrnn.jobs.experiment.runner import run_experiment, run_task
from predrnn.jobs.experiment.spec import DEFAULT_RUNS, spec_names
from predrnn.jobs.experiment.summary import format_summary_table, summarize_experiment


def add_experiment_parser(commands) -> None:
    """Register ``experiment``, ``experiment-task`` and ``experiment-summary``."""
    backend_help = "Keras backend of the runs (default: $KERAS_BACKEND, else tensorflow)."
    p = commands.add_parser(
        "experiment",
        help="N seeded runs of several config variants, locally or as a Slurm job array, and a summary table",
        description="Run N seeded runs of every variant of an experiment spec and aggregate their evaluation "
        "(mean ± std per variant). Local runs go seed by seed (every variant's seed 0 first), so a "
        f"stopped experiment compares its variants over the same seeds. Shipped specs: {', '.join(spec_names()) or 'none'}.",
    )
    p.add_argument(
        "spec", nargs="?", metavar="SPEC", help="a spec .toml file or a shipped spec name (default with --resume: DIR/spec.toml)"
    )
    p.add_argument(
        "--runs", type=positive_int, help=f"seeded runs per variant (seeds 0..N-1; default: the spec's runs, else {DEFAULT_RUNS})"
    )
    p.add_argument("--workdir", required=True, metavar="DIR", help="experiment folder")
    p.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        help="override a config key of every variant, or an [evaluate] key (evaluate.num=50; repeatable)",
    )
    p.add_argument(
        "--parallel",
        type=positive_int,
        default=1,
        metavar="K",
        help="runs at once (local subprocesses; with --slurm the array's %%K limit)",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue in DIR: skip finished runs, resume interrupted ones, start missing ones"
    )
    p.add_argument("--dry-run", action="store_true", help="show the plan; with --slurm write the job script without submitting")
    p.add_argument("--slurm", action="store_true", help="submit a Slurm job array (one task per run) instead of running here")
    p.add_argument(
        "--slurm-option",
        action="append",
        metavar="KEY=VALUE",
        help="an sbatch option, e.g. partition=gpu, time=04:00:00, gpus=1, cpus-per-task=8 (repeatable)",
    )
    p.add_argument("--summarize-only", action="store_true", help="only rebuild the tables from the finished runs in DIR")
    add_backend_argument(p, help=backend_help)
    p.set_defaults(handler=_experiment_command)

    p = commands.add_parser(
        "experiment-task", help="run one task (train + evaluate) of an experiment (what a Slurm array task runs)"
    )
    p.add_argument("workdir", metavar="DIR", help="experiment folder")
    p.add_argument(
        "index", nargs="?", type=int, metavar="INDEX", help="task index (default: $SLURM_ARRAY_TASK_ID); see DIR/slurm/tasks.json"
    )
    add_backend_argument(p, help=backend_help)
    p.set_defaults(handler=_task_command)

    p = commands.add_parser(
        "experiment-summary",
        help="rebuild an experiment's results.csv and summary tables from its finished runs",
        description="Rebuild an experiment's results.csv, summary tables and plots from its finished runs; "
        "with --export, also copy its results without the weights to a folder to commit or share.",
    )
    p.add_argument("workdir", metavar="DIR", help="experiment folder")
    p.add_argument(
        "--export",
        metavar="OUT",
        help="also copy the tables, the record and every finished run's config, history, metrics and log (no "
        "checkpoints, TensorBoard logs or pictures) to OUT: a new or empty folder, or an earlier export, which is replaced",
    )
    p.set_defaults(handler=_summary_command)


def _experiment_command(args) -> int:
    spec = args.spec
    if spec is None:
        if args.summarize_only:
            spec = None
        elif args.resume and (Path(args.workdir) / "spec.toml").is_file():
            spec = str(Path(args.workdir) / "spec.toml")
        else:
            raise ConfigError("Pass an experiment SPEC (a .toml file or a shipped spec: " + ", ".join(spec_names()) + ").")
    slurm_options = None
    if args.slurm_option:
        from predrnn.jobs.experiment.slurm import parse_option_texts

        slurm_options = parse_option_texts(args.slurm_option)
    result = run_experiment(
        spec,
        args.runs,
        args.workdir,
        overrides=tuple(args.set or ()),
        backend=args.backend,
        parallel=args.parallel,
        resume=args.resume,
        dry_run=args.dry_run,
        slurm=args.slurm,
        slurm_options=slurm_options,
        summarize_only=args.summarize_only,
    )
    summary = result.get("summary")
    if summary:
        print()
        print(format_summary_table(summary["variants"]))
        print(f"\nTables: {Path(result['workdir']) / 'summary.md'}, summary.csv, results.csv, summary.png")
    failed = result.get("failed") or []
    if failed:
        print(
            f"{len(failed)} run(s) did not finish; see the logs above. Continue with: predrnn experiment "
            f"{Path(result['workdir']) / 'spec.toml'} --workdir {result['workdir']} --resume",
            file=sys.stderr,
        )
    return result["exit_code"]


def _task_command(args) -> int:
    index = args.index
    if index is None:
        text = os.environ.get("SLURM_ARRAY_TASK_ID")
        if text is None:
            raise ConfigError("Pass the task INDEX (or run inside a Slurm array task, which sets $SLURM_ARRAY_TASK_ID).")
        index = int(text)
    return run_task(args.workdir, index, backend=args.backend)["exit_code"]


def _summary_command(args) -> int:
    exported = None
    if args.export:
        exported = export_experiment(args.workdir, args.export)
        summary = exported["summary"]
    else:
        summary = summarize_experiment(args.workdir)
    print(format_summary_table(summary["variants"]))
    counts = summary["counts"]
    print("\n" + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + f". Tables in {summary['workdir']}.")
    if exported:
        print(f"Exported {len(exported['runs'])} finished run(s), {exported['files']} files, to {exported['out']}.")
    return 0
