"""The same benchmark on two revisions of the code, alternately, on this machine.

Usage::

    python benchmarks/compare_revisions.py OLD NEW [--repeats 2] [--out DIR] -- BENCHMARK_ARGS...

``OLD`` and ``NEW`` are git revisions of this repository (``WORKTREE``: the files as they are
now). Each revision's ``src/`` is exported to a temporary folder, and ``python -m
predrnn.benchmark BENCHMARK_ARGS`` runs with that folder first on ``PYTHONPATH``, alternately
OLD, NEW, OLD, NEW, ... (``--repeats`` times each), so that a change of machine load hits both
alike. ``reference`` (the plain-PyTorch step, the same code in both) is always measured too:
each run's ``step_vs_reference`` is a ratio taken within that run, and NEW/OLD compares those
ratios (their medians over the repeats). The table goes to stdout and, with ``--out``, every
run's JSON and ``comparison.md`` into DIR. Example::

    python benchmarks/compare_revisions.py 2c31932 WORKTREE --repeats 2 -- \\
        --preset mnist --impl tensorflow torch jax --steps 3 --rollout-repeats 2
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


def export_source(revision: str, into: Path) -> Path:
    """The ``src/`` folder of ``revision`` (``WORKTREE``: this checkout's) under ``into``
    (with its ``benchmarks/``, where older revisions kept the PyTorch reference)."""
    if revision == "WORKTREE":
        return REPOSITORY / "src"
    archive = subprocess.run(
        ["git", "-C", str(REPOSITORY), "archive", revision, "src", "benchmarks"], capture_output=True, check=True
    ).stdout
    folder = into / revision.replace("/", "_")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder / "src"


def describe(revision: str) -> str:
    """``revision`` as a commit (``WORKTREE``: the checked-out commit, and whether files differ)."""
    git = ["git", "-C", str(REPOSITORY)]
    commit = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD" if revision == "WORKTREE" else revision], capture_output=True, text=True
    )
    name = commit.stdout.strip() or revision
    if revision == "WORKTREE":
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no", "src"], capture_output=True, text=True)
        name = f"the working tree at {name}" + (" with uncommitted changes" if dirty.stdout.strip() else "")
    return name


def run_benchmark(source: Path, arguments: list[str], output: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(source), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    subprocess.run([sys.executable, "-m", "predrnn.benchmark", *arguments, "--output", str(output)], env=env, check=True)
    with open(output) as handle:
        return json.load(handle)


def with_reference(arguments: list[str]) -> list[str]:
    """``arguments`` with ``reference`` first among the ``--impl`` values."""
    if "--impl" not in arguments:
        raise SystemExit("compare_revisions.py: pass the benchmark's --impl (e.g. --impl tensorflow torch jax).")
    at = arguments.index("--impl") + 1
    rest = [a for a in arguments[at:] if a != "reference"]
    return arguments[:at] + ["reference"] + rest


def compare(old: list[dict], new: list[dict]) -> list[dict]:
    """Per implementation: the median over the repeats of each run's step_vs_reference (and
    of the seconds per step and per rolled-out sequence), OLD and NEW, and NEW/OLD."""

    def medians(runs, key):
        by_impl = {}
        for run in runs:
            for impl in run["implementations"]:
                if impl.get(key) is not None:
                    by_impl.setdefault(impl["implementation"], []).append(impl[key])
        return {name: statistics.median(values) for name, values in by_impl.items()}

    rows = []
    table = {key: (medians(old, key), medians(new, key)) for key in ("step_vs_reference", "step_s", "rollout_s_per_sequence")}
    for name in table["step_vs_reference"][1]:
        row = {"implementation": name}
        for key, (before, after) in table.items():
            row[f"{key}_old"], row[f"{key}_new"] = before.get(name), after.get(name)
        a, b = row["step_vs_reference_old"], row["step_vs_reference_new"]
        row["new_over_old"] = b / a if a and b else None
        rows.append(row)
    return rows


def markdown(rows: list[dict], old: str, new: str, repeats: int, arguments: list[str]) -> str:
    def number(value, digits=3):
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        f"`predrnn.benchmark {' '.join(arguments)}`, {repeats} runs each of {old} (OLD) and {new} (NEW), alternately.",
        "",
        "| implementation | step s OLD | step s NEW | step / reference OLD | step / reference NEW | NEW / OLD "
        "| rollout s/seq OLD | rollout s/seq NEW |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['implementation']} | {number(r['step_s_old'])} | {number(r['step_s_new'])} "
            f"| {number(r['step_vs_reference_old'])} | {number(r['step_vs_reference_new'])} | {number(r['new_over_old'])} "
            f"| {number(r['rollout_s_per_sequence_old'], 4)} | {number(r['rollout_s_per_sequence_new'], 4)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    benchmark_arguments = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", help="git revision (or WORKTREE)")
    parser.add_argument("new", help="git revision (or WORKTREE)")
    parser.add_argument("--repeats", type=int, default=2, help="benchmark runs of each revision (default 2)")
    parser.add_argument("--out", type=Path, help="folder for every run's JSON and comparison.md")
    options = parser.parse_args(own)
    arguments = with_reference(benchmark_arguments)
    with tempfile.TemporaryDirectory(prefix="predrnn-revisions-") as scratch:
        scratch = Path(scratch)
        out = options.out or scratch
        out.mkdir(parents=True, exist_ok=True)
        sources = {"old": export_source(options.old, scratch), "new": export_source(options.new, scratch)}
        results = {"old": [], "new": []}
        for repeat in range(options.repeats):
            for side in ("old", "new"):
                print(f"[{side} {repeat + 1}/{options.repeats}] {sources[side]}", file=sys.stderr, flush=True)
                results[side].append(run_benchmark(sources[side], arguments, out / f"{side}-{repeat + 1}.json"))
        names = [describe(options.old), describe(options.new)]
        text = markdown(compare(results["old"], results["new"]), *names, options.repeats, arguments)
        print(text)
        if options.out:
            (out / "comparison.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
