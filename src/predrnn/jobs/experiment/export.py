"""Export an experiment's results without its weights: the folder to commit or share.

The export is itself an experiment folder, small enough for a repository: the record
(experiment.json, spec.toml, each variant's config.toml), the tables and plots of
:func:`~predrnn.jobs.experiment.summary.summarize_experiment`, and for every finished run
its config, training history, evaluation JSON/CSV, status and log. Checkpoints,
TensorBoard logs, sample pictures and per-run plots stay behind. ``predrnn
experiment-summary OUT`` rebuilds the tables from an export.
"""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path

from predrnn.errors import ConfigError
from predrnn.jobs.experiment.state import _write_json, load_experiment, run_dir, run_status
from predrnn.jobs.experiment.summary import summarize_experiment

MARKER = "export.json"
TOP_FILES = (
    "experiment.json",
    "spec.toml",
    "results.csv",
    "summary.csv",
    "summary.md",
    "summary.png",
    "summary_per_frame.png",
    "learning_curves.csv",
    "learning_curves.png",
)
RUN_FILES = ("config.json", "run.json", "status.json", "history.csv", "log.txt")
RUN_PATTERNS = ("metrics*.json", "metrics*.csv")


def export_experiment(workdir, out, *, plot: bool = True) -> dict:
    """Rebuild the tables of ``workdir`` and copy its results (not its weights) to ``out``.

    ``out`` must be new, empty, or an earlier export (it has ``export.json``), which is
    replaced as a whole, so that it holds exactly this export. Returns a dict with ``out``,
    ``runs`` (the exported finished runs, ``variant/seed_N``), ``files`` (how many were
    written) and ``summary`` (what :func:`summarize_experiment` returned).
    """
    workdir, out = Path(workdir).resolve(), Path(out).resolve()
    record = load_experiment(workdir)
    _check_destination(workdir, out)
    summary = summarize_experiment(workdir, plot=plot)

    staging = out.with_name(f".{out.name}.export-tmp")
    if staging.exists():
        shutil.rmtree(staging)
    copied = []

    def copy(source: Path):
        target = staging / source.relative_to(workdir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        copied.append(target)

    for name in TOP_FILES:
        if (workdir / name).is_file():
            copy(workdir / name)
    for variant in record.get("variants", []):
        if (workdir / variant / "config.toml").is_file():
            copy(workdir / variant / "config.toml")
    runs = []
    for task in record.get("tasks", []):
        variant, seed = task["variant"], int(task["seed"])
        if run_status(workdir, variant, seed) != "finished":
            continue
        folder = run_dir(workdir, variant, seed)
        for name in RUN_FILES:
            if (folder / name).is_file():
                copy(folder / name)
        for pattern in RUN_PATTERNS:
            for path in sorted(folder.glob(pattern)):
                copy(path)
        runs.append(f"{variant}/seed_{seed}")
    _write_json(
        staging / MARKER,
        {"source": str(workdir), "exported": datetime.datetime.now().isoformat(timespec="seconds"), "runs": runs},
    )

    if out.exists():
        previous = out.with_name(f".{out.name}.export-old")
        if previous.exists():
            shutil.rmtree(previous)
        out.rename(previous)
        staging.rename(out)
        shutil.rmtree(previous)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(out)
    return {"out": str(out), "runs": runs, "files": len(copied) + 1, "summary": summary}


def _check_destination(workdir: Path, out: Path) -> None:
    if out == workdir or workdir in out.parents:
        raise ConfigError(f"Export to a folder outside the experiment folder {workdir}, not {out}.")
    if out in workdir.parents:
        raise ConfigError(f"Export to a folder that does not contain the experiment folder {workdir}, not {out}.")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"Cannot export to {out}: it is a file. Choose a new folder.")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise ConfigError(
            f"{out} is not empty and is not an earlier export (no {MARKER}); its files would be replaced. "
            "Choose a new or empty folder."
        )
