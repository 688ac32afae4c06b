"""The experiment folder: its files, each run's folder and status, and preparing the
folder for a spec (checked against the runs already in it when resuming).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import sys
import threading
from pathlib import Path

from predrnn.errors import ConfigError
from predrnn.jobs.experiment.spec import DEFAULT_RUNS, config_toml

STATUSES = ("finished", "failed", "interrupted", "incomplete", "not_started")


def _atomic_write(path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_json(path, data) -> None:
    _atomic_write(path, json.dumps(data, indent=2) + "\n")


def _read_json(path):
    with open(path) as handle:
        return json.load(handle)


def run_dir(workdir, variant: str, seed: int) -> Path:
    return Path(workdir) / variant / f"seed_{seed}"


def _pending_log(workdir, variant, seed) -> Path:
    return Path(workdir) / variant / f"seed_{seed}.log"


def load_experiment(workdir) -> dict:
    """The experiment record ``DIR/experiment.json``."""
    path = Path(workdir) / "experiment.json"
    if not path.is_file():
        raise ConfigError(
            f"{workdir} is not an experiment folder (no experiment.json). Run `predrnn experiment SPEC --workdir {workdir}` first."
        )
    try:
        return _read_json(path)
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"Could not read {path}: {error}") from None


def run_status(workdir, variant: str, seed: int) -> str:
    """finished (metrics.json exists), failed / interrupted (the last attempt's
    status.json), incomplete (started, no result: running or stopped), not_started."""
    folder = run_dir(workdir, variant, seed)
    if (folder / "metrics.json").is_file():
        return "finished"
    status_file = folder / "status.json"
    if status_file.is_file():
        try:
            status = _read_json(status_file).get("status")
        except (OSError, json.JSONDecodeError, AttributeError):
            status = None
        if status in ("failed", "interrupted"):
            return status
        return "incomplete"
    if folder.exists() or _pending_log(workdir, variant, seed).exists():
        return "incomplete"
    return "not_started"


def _default_backend() -> str:
    if "keras" in sys.modules:
        import keras

        return keras.backend.backend()
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def _comparable(config) -> dict:
    data = config.to_dict()
    data["train"].pop("seed", None)
    data["train"].pop("progress", None)
    return data


def _differences(old: dict, new: dict, prefix="") -> list[str]:
    found = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += _differences(a, b, f"{prefix}{key}.")
        elif a != b and not (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and list(a) == list(b)):
            found.append(f"{prefix}{key}: folder {a!r}, now {b!r}")
    return found


def _task_table(record_tasks, variants, runs) -> tuple[list[dict], list[dict]]:
    """(all tasks, the current spec's tasks): recorded tasks keep their indices, new
    (variant, seed) pairs are appended."""
    tasks = [dict(t) for t in record_tasks]
    known = {(t["variant"], t["seed"]): t for t in tasks}
    current = []
    for variant in variants:
        for seed in range(runs):
            task = known.get((variant, seed))
            if task is None:
                task = {"index": len(tasks), "variant": variant, "seed": seed}
                tasks.append(task)
                known[(variant, seed)] = task
            current.append(task)
    return tasks, current


def _is_empty_dir(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def prepare_experiment(spec, runs, workdir, *, resume=False, backend=None, write=True) -> dict:
    """Check the spec against ``workdir`` and (``write``) write spec.toml,
    experiment.json and the variant configs. Returns the plan."""
    workdir = Path(workdir).resolve()
    configs = spec.configs()
    runs = runs if runs is not None else (spec.runs or DEFAULT_RUNS)
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ConfigError(f"--runs must be a positive integer. Received: {runs!r}")
    backend = backend or _default_backend()
    record_tasks = []
    if workdir.exists() and not workdir.is_dir():
        raise ConfigError(f"--workdir {workdir} is a file.")
    if not _is_empty_dir(workdir):
        if not resume:
            raise ConfigError(
                f"The workdir {workdir} already exists and is not empty. Pass --resume to continue the experiment "
                "in it (finished runs are skipped), or choose another --workdir. Nothing was deleted."
            )
        record = load_experiment(workdir)
        if record.get("spec") and Path(spec.source).resolve() == workdir / "spec.toml":
            # Resumed from the folder's own copy: the record keeps naming the original spec.
            spec = dataclasses.replace(spec, name=record.get("name", spec.name), source=record["spec"])
        if record.get("backend") and record["backend"] != backend:
            raise ConfigError(
                f"The experiment in {workdir} runs on the {record['backend']} backend; pass --backend {record['backend']} to resume it."
            )
        old_evaluate = record.get("evaluate", {})
        if old_evaluate != spec.evaluate:
            raise ConfigError(
                f"The [evaluate] options differ from the experiment's ({old_evaluate} in {workdir}, now {spec.evaluate}): "
                "finished runs were scored on another test set. Resume with the folder's spec: "
                f"predrnn experiment {workdir / 'spec.toml'} --workdir {workdir} --resume"
            )
        from predrnn.jobs.config import load_config

        for name, config in configs.items():
            path = workdir / name / "config.toml"
            if path.is_file():
                differences = _differences(_comparable(load_config(str(path))), _comparable(config))
                if differences:
                    raise ConfigError(
                        f"Variant {name!r} differs from its runs in {workdir}:\n  "
                        + "\n  ".join(differences)
                        + f"\nResume with the folder's spec (predrnn experiment {workdir / 'spec.toml'} --workdir "
                        f"{workdir} --resume, with the same --set), or start a new --workdir."
                    )
        record_tasks = record.get("tasks", [])
    tasks, current = _task_table(record_tasks, list(configs), runs)
    plan = {
        "workdir": workdir,
        "spec": spec,
        "configs": configs,
        "runs": runs,
        "backend": backend,
        "tasks": tasks,
        "current": current,
        "evaluate": dict(spec.evaluate),
    }
    if write:
        workdir.mkdir(parents=True, exist_ok=True)
        _atomic_write(workdir / "spec.toml", spec.to_toml(runs))
        for name, config in configs.items():
            _atomic_write(
                workdir / name / "config.toml",
                f"# Variant {name!r} of {spec.source}; train.seed is set per run.\n" + config_toml(config),
            )
        variants = list(dict.fromkeys([t["variant"] for t in tasks]))
        previous = load_experiment(workdir) if (workdir / "experiment.json").is_file() else {}
        _write_json(
            workdir / "experiment.json",
            {
                "name": spec.name,
                "spec": spec.source,
                "runs": max(runs, previous.get("runs", 0)),
                "backend": backend,
                "evaluate": spec.evaluate,
                "variants": variants,
                "tasks": tasks,
                "created": previous.get("created", datetime.datetime.now().isoformat(timespec="seconds")),
                "updated": datetime.datetime.now().isoformat(timespec="seconds"),
            },
        )
    return plan
