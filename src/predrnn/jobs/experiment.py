"""Experiments: N seeded runs of several config variants, evaluated on one test set,
aggregated into a table (mean and standard deviation per variant).

An experiment spec is a TOML file (or a shipped spec name, see :func:`spec_names`)::

    base = "quickstart"                  # a preset or a .toml config (relative to the spec);
                                         # a variant may have its own base
    set = ["train.steps=300"]            # overrides for every variant (optional)
    runs = 3                             # default run count (--runs overrides it)
    [evaluate]                           # the evaluation of every run: num, seed, digits,
    num = 200                            # batch_size, context, horizon, data
    [variants.convlstm]
    set = ["model.architecture=\\"convlstm\\""]
    [variants.predrnn_ss]
    sampling = { schedule = "linear", rate = 0.004 }   # a table replaces that whole section
    [slurm]                              # sbatch options (partition, time, gpus, ...)
    time = "02:00:00"

A variant's config is: its base (the variant's own, else the spec's), then the
spec's ``set`` (and ``--set``), then the variant's section tables (each replaces that
whole section), then the variant's ``set``. Run ``i`` (0..N-1) of each variant uses
``train.seed = i``; every run is evaluated on the same test set.

Experiment folder (``workdir``)::

    spec.toml                  the resolved spec (a valid spec: pass it back with --resume)
    experiment.json            runs, backend, evaluation options and the task table
    <variant>/config.toml      the variant's resolved config (train.seed is set per run)
    <variant>/seed_<i>/        a training run folder (see predrnn.jobs.train), then
                               metrics.json (+ .csv, .png) from evaluate, log.txt
                               (train and evaluate output) and status.json
    results.csv                one row per run: variant, seed, status, metrics, log
    summary.csv, summary.md    per variant: mean and std of each metric, finished runs,
                               the baselines (copy last frame, all black, mean of
                               the context: predrnn.baselines)
    summary.png                bar chart with error bars, one panel per metric
    slurm/                     with --slurm: job.sbatch, tasks.json, logs/, submissions.json

Until a run's folder exists (its first training attempt), its log is
``<variant>/seed_<i>.log``; it is moved into the folder as ``log.txt`` afterwards.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import difflib
import io
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from predrnn.baselines import BASELINE_LABELS, BASELINES
from predrnn.errors import ConfigError, PredRNNError

SPECS_DIR = Path(__file__).resolve().parent.parent / "experiments"
METRICS = ("mse_per_frame", "mae_per_frame", "ssim", "psnr", "mse_per_pixel")
LOWER_IS_BETTER = frozenset({"mse_per_frame", "mae_per_frame", "mse_per_pixel"})
METRIC_FORMATS = {"mse_per_frame": ".2f", "mae_per_frame": ".2f", "ssim": ".4f", "psnr": ".2f", "mse_per_pixel": ".5f"}
SPEC_KEYS = ("description", "base", "set", "runs", "evaluate", "variants", "slurm")
VARIANT_KEYS = ("description", "base", "set", "model", "data", "sampling", "train")
SECTION_NAMES = ("model", "data", "sampling", "train")
# evaluate()'s keyword arguments, by their spec names.
EVALUATE_KEYS = {
    "num": ("num", int),
    "seed": ("seed", int),
    "digits": ("num_digits", int),
    "batch_size": ("batch_size", int),
    "context": ("context", int),
    "horizon": ("horizon", int),
    "data": ("data", str),
}
EVALUATE_DEFAULTS = {"num": 1000, "seed": 0, "batch_size": 16}
DEFAULT_RUNS = 3
STATUSES = ("finished", "failed", "interrupted", "incomplete", "not_started")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# ----------------------------------------------------------------------------------
# Specs
# ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    name: str
    set: tuple[str, ...] = ()
    sections: dict = field(default_factory=dict)  # section name -> table replacing the base's
    description: str = ""
    base: str | None = None  # this variant's own base (a preset name or an absolute path)
    base_path: Path | None = None


@dataclass(frozen=True)
class ExperimentSpec:
    """A parsed and checked experiment spec (see the module docstring)."""

    name: str
    source: str
    base: str | None  # a preset name or an absolute .toml path (None: every variant has its own)
    base_path: Path | None
    set: tuple[str, ...] = ()
    runs: int | None = None
    evaluate: dict = field(default_factory=dict)
    variants: tuple[Variant, ...] = ()
    slurm: dict = field(default_factory=dict)
    description: str = ""

    def variant_names(self) -> list[str]:
        return [v.name for v in self.variants]

    def configs(self) -> dict:
        """``{variant: ExperimentConfig}``; raises ConfigError naming the variant."""
        return {v.name: variant_config(self, v) for v in self.variants}

    def to_toml(self, runs: int | None = None) -> str:
        data = {}
        if self.description:
            data["description"] = self.description
        if self.base is not None:
            data["base"] = self.base
        data["set"] = list(self.set)
        runs = runs if runs is not None else self.runs
        if runs is not None:
            data["runs"] = runs
        data["evaluate"] = dict(self.evaluate)
        data["variants"] = {}
        for variant in self.variants:
            table = {}
            if variant.description:
                table["description"] = variant.description
            if variant.base is not None:
                table["base"] = variant.base
            table["set"] = list(variant.set)
            table.update({k: dict(v) for k, v in variant.sections.items()})
            data["variants"][variant.name] = table
        if self.slurm:
            data["slurm"] = dict(self.slurm)
        header = f"# Experiment spec {self.name!r} (resolved from {self.source}).\n"
        return header + toml_dumps(data)


def spec_names() -> list[str]:
    """The shipped experiment specs."""
    return sorted(p.stem for p in SPECS_DIR.glob("*.toml"))


def _nearest(name, valid) -> str:
    close = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def resolve_spec_path(name_or_path) -> Path:
    text = os.fspath(name_or_path)
    path = Path(text)
    if path.suffix == ".toml" or os.sep in text or path.exists():
        if path.is_dir() and (path / "spec.toml").is_file():
            return path / "spec.toml"
        if not path.is_file():
            raise ConfigError(
                f"Experiment spec not found: {text!r}. Pass a .toml file or a shipped spec: {', '.join(spec_names())}."
            )
        return path
    shipped = SPECS_DIR / f"{text}.toml"
    if not shipped.is_file():
        raise ConfigError(
            f"Unknown experiment spec {text!r}.{_nearest(text, spec_names())} "
            f"Shipped specs: {', '.join(spec_names())}; or pass a path to a .toml file."
        )
    return shipped


def load_spec(name_or_path, overrides=(), slurm_options=None) -> ExperimentSpec:
    """Read and check a spec (a file or a shipped name). ``overrides`` (``--set``) are
    added to the spec's ``set``; ``slurm_options`` update its ``[slurm]`` table. Every
    variant's config is built and validated here, before anything runs."""
    path = resolve_spec_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error}).") from None
    except OSError as error:
        raise ConfigError(f"Could not read {path}: {error}") from None
    name = path.parent.name if path.name == "spec.toml" else path.stem
    spec = spec_from_dict(raw, source=str(path), root=path.parent, name=name)
    if overrides or slurm_options:
        slurm = dict(spec.slurm)
        if slurm_options:
            from predrnn.jobs.slurm import check_options

            slurm.update(check_options(slurm_options, "--slurm-option"))
        spec = dataclasses.replace(spec, set=spec.set + tuple(overrides or ()), slurm=slurm)
    spec.configs()
    return spec


def _string_list(value, where) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of \"section.key=value\" strings. Received: {value!r}")
    return tuple(value)


def _resolve_base(base, root: Path) -> tuple[str, Path]:
    from predrnn.jobs.config import PRESETS_DIR, resolve_config_path

    if not isinstance(base, str) or not base:
        raise ConfigError(f"base must be a preset name or a .toml path. Received: {base!r}")
    candidate = Path(base)
    if (candidate.suffix == ".toml" or os.sep in base) and not candidate.is_absolute():
        beside = root / candidate
        if beside.is_file():
            return str(beside.resolve()), beside.resolve()
    path = resolve_config_path(base)
    if path.resolve().parent == PRESETS_DIR.resolve() and path.stem == base:
        return base, path
    return str(path.resolve()), path.resolve()


def spec_from_dict(raw: dict, source: str = "spec", root=".", name: str = "experiment") -> ExperimentSpec:
    """Build an :class:`ExperimentSpec` from TOML tables (variant configs not built yet)."""
    for key in raw:
        if key not in SPEC_KEYS:
            raise ConfigError(f"{source}: unknown key {key!r}.{_nearest(key, SPEC_KEYS)} Valid keys: {', '.join(SPEC_KEYS)}.")
    base = base_path = None
    if "base" in raw:
        try:
            base, base_path = _resolve_base(raw["base"], Path(root))
        except ConfigError as error:
            raise ConfigError(f"{source}: base: {error}") from None
    common = _string_list(raw.get("set", []), f"{source}: set")
    runs = raw.get("runs")
    if runs is not None and (isinstance(runs, bool) or not isinstance(runs, int) or runs < 1):
        raise ConfigError(f"{source}: runs must be a positive integer. Received: {runs!r}")
    evaluate = _check_evaluate(raw.get("evaluate", {}), source)
    variants_raw = raw.get("variants")
    if not isinstance(variants_raw, dict) or not variants_raw:
        raise ConfigError(
            f"{source}: needs at least one variant, e.g.\n  [variants.baseline]\n  set = []\n"
            "  [variants.convlstm]\n  set = [\"model.architecture='convlstm'\"]"
        )
    variants = []
    for variant_name, table in variants_raw.items():
        where = f"{source}: [variants.{variant_name}]"
        if not _NAME.match(variant_name) or variant_name in ("slurm",):
            raise ConfigError(f"{where}: a variant name is a folder name: letters, digits, '_', '-', '.'.")
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table (set = [...], and optional [model]/[data]/[sampling]/[train] tables).")
        for key in table:
            if key not in VARIANT_KEYS:
                raise ConfigError(
                    f"{where}: unknown key {key!r}.{_nearest(key, VARIANT_KEYS)} Valid keys: {', '.join(VARIANT_KEYS)}."
                )
        sections = {}
        for section in SECTION_NAMES:
            if section in table:
                if not isinstance(table[section], dict):
                    raise ConfigError(f"{where}: {section} must be a table (it replaces the base's [{section}]).")
                sections[section] = dict(table[section])
        description = table.get("description", "")
        if not isinstance(description, str):
            raise ConfigError(f"{where}: description must be a string.")
        own_base = own_base_path = None
        if "base" in table:
            try:
                own_base, own_base_path = _resolve_base(table["base"], Path(root))
            except ConfigError as error:
                raise ConfigError(f"{where}: base: {error}") from None
        elif base is None:
            raise ConfigError(
                f"{source}: missing base: the preset or .toml config every variant starts from, e.g. base = \"quickstart\" "
                f"(or a base in each variant; [variants.{variant_name}] has none)."
            )
        variants.append(Variant(
            variant_name, _string_list(table.get("set", []), f"{where} set"), sections, description, own_base, own_base_path,
        ))
    slurm = raw.get("slurm", {})
    if not isinstance(slurm, dict):
        raise ConfigError(f"{source}: [slurm] must be a table of sbatch options.")
    from predrnn.jobs.slurm import check_options

    slurm = check_options(slurm, f"{source}: [slurm]")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{source}: description must be a string.")
    return ExperimentSpec(
        name=name, source=source, base=base, base_path=base_path, set=common, runs=runs,
        evaluate=evaluate, variants=tuple(variants), slurm=slurm, description=description,
    )


def _check_evaluate(table, source) -> dict:
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [evaluate] must be a table ({', '.join(EVALUATE_KEYS)}).")
    checked = dict(EVALUATE_DEFAULTS)
    for key, value in table.items():
        if key not in EVALUATE_KEYS:
            raise ConfigError(
                f"{source}: unknown key evaluate.{key}.{_nearest(key, EVALUATE_KEYS)} "
                f"Valid keys in [evaluate]: {', '.join(EVALUATE_KEYS)}."
            )
        kind = EVALUATE_KEYS[key][1]
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, int) or (value < 1 and key != "seed") or value < 0:
                raise ConfigError(f"{source}: evaluate.{key} must be a {'non-negative' if key == 'seed' else 'positive'} integer. Received: {value!r}")
        elif not isinstance(value, str) or not value:
            raise ConfigError(f"{source}: evaluate.{key} must be a path. Received: {value!r}")
        checked[key] = value
    return checked


def _check_override(text, where):
    from predrnn.jobs.config import parse_override

    section, name, value = parse_override(text)
    if (section, name) == ("train", "seed"):
        raise ConfigError(
            f"{where}: {text!r}: train.seed is set by the experiment (run i uses seed i, i = 0..N-1); remove this override."
        )
    return section, name, value


def variant_config(spec: ExperimentSpec, variant: Variant):
    """The variant's validated :class:`ExperimentConfig` (with the base's train.seed)."""
    from predrnn.jobs.config import from_dict

    where = f"{spec.source}: variant {variant.name!r}"
    base_path = variant.base_path or spec.base_path
    try:
        raw = tomllib.loads(base_path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{where}: could not read the base {base_path}: {error}") from None

    def apply(overrides):
        for text in overrides:
            section, name, value = _check_override(text, where)
            raw.setdefault(section, {})
            if not isinstance(raw[section], dict):
                raise ConfigError(f"{where}: {text!r}: [{section}] is not a table.")
            raw[section][name] = value

    apply(spec.set)
    for section, table in variant.sections.items():
        if "seed" in table and section == "train":
            raise ConfigError(f"{where}: train.seed is set by the experiment (run i uses seed i); remove it.")
        raw[section] = dict(table)
    apply(variant.set)
    try:
        return from_dict(raw, source=where)
    except ConfigError as error:
        message = str(error)
        raise ConfigError(message if message.startswith(where) else f"{where}: {message}") from None


# ----------------------------------------------------------------------------------
# TOML writing (configs and specs hold scalars, lists and tables only)
# ----------------------------------------------------------------------------------


def _toml_key(key) -> str:
    return key if re.match(r"^[A-Za-z0-9_-]+$", str(key)) else json.dumps(str(key))


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def toml_dumps(data: dict, prefix: str = "") -> str:
    lines, tables = [], []
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    text = "\n".join(lines) + ("\n" if lines else "")
    for key, value in tables:
        name = f"{prefix}.{_toml_key(key)}" if prefix else _toml_key(key)
        body = toml_dumps(value, name)
        has_scalars = any(not isinstance(v, dict) and v is not None for v in value.values())
        if has_scalars or not value:
            text += f"\n[{name}]\n"
        text += body
    return text


def config_toml(config) -> str:
    return toml_dumps({section: dict(values) for section, values in config.to_dict().items()})


# ----------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------


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
        raise ConfigError(f"{workdir} is not an experiment folder (no experiment.json). Run `predrnn experiment SPEC --workdir {workdir}` first.")
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


# ----------------------------------------------------------------------------------
# One run
# ----------------------------------------------------------------------------------


class _Processes:
    """Live child processes; on stop() they get SIGTERM (training saves and exits)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.live = set()
        self.stopping = False

    def stop(self):
        with self.lock:
            self.stopping = True
            for process in list(self.live):
                with contextlib.suppress(OSError):
                    process.send_signal(signal.SIGTERM)


def _evaluate_arguments(options: dict) -> list[str]:
    flags = {"num": "--num", "seed": "--seed", "digits": "--digits", "batch_size": "--batch-size",
             "context": "--context", "horizon": "--horizon", "data": "--data"}
    arguments = []
    for key, flag in flags.items():
        if options.get(key) is not None:
            arguments += [flag, str(options[key])]
    return arguments


def run_commands(workdir, variant: str, seed: int, *, backend: str, evaluate_options: dict, python: str | None = None) -> dict:
    """The ``train`` and ``evaluate`` command lines of one run, as they would run now."""
    python = python or sys.executable
    folder = run_dir(workdir, variant, seed)
    train = [python, "-m", "predrnn", "train", str(Path(workdir) / variant / "config.toml"), "--workdir", str(folder),
             "--set", f"train.seed={seed}", "--set", "train.progress=false", "--backend", backend]
    if (folder / "checkpoints" / "last.keras").is_file():
        train.append("--resume")
    elif folder.exists() and any(folder.iterdir()):
        train.append("--overwrite")  # a first attempt that stopped before its first checkpoint: kept, renamed
    evaluate = [python, "-m", "predrnn", "evaluate", str(folder), "--output", str(folder / "metrics.json"),
                "--overwrite", *_evaluate_arguments(evaluate_options), "--backend", backend]
    return {"train": train, "evaluate": evaluate}


def _run_process(command, log_path, processes: _Processes, echo: bool) -> int:
    with open(log_path, "a") as log:
        log.write(f"\n$ {shlex.join(command)}\n")
        log.flush()
        if echo:
            print(f"$ {shlex.join(command)}", flush=True)
        with processes.lock:
            if processes.stopping:
                log.write("(not started: the experiment is stopping)\n")
                return 130
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE if echo else log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            processes.live.add(process)
        try:
            if echo:
                for chunk in iter(lambda: process.stdout.read1(65536), b""):
                    text = chunk.decode(errors="replace")
                    log.write(text)
                    log.flush()
                    sys.stdout.write(text)
                    sys.stdout.flush()
            return process.wait()
        except KeyboardInterrupt:
            # Ctrl-C (or SIGINT to this process alone): let the run save and stop, then report it
            processes.stop()
            try:
                return process.wait(timeout=300)
            except (KeyboardInterrupt, subprocess.TimeoutExpired):
                process.kill()
                process.wait()
                return -signal.SIGKILL
        finally:
            with processes.lock:
                processes.live.discard(process)


def _run_in_process(stage, function, log_path) -> int:
    """Call ``function()`` with stdout/stderr going to the log; 0, 1 (error) or 130."""
    with open(log_path, "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        print(f"\n$ ({stage} in-process)", flush=True)
        try:
            result = function()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            return 130
        except PredRNNError as error:
            print(f"predrnn {stage}: error: {error}", flush=True)
            return 2
        except Exception:  # noqa: BLE001 - a failed run is recorded, the others go on
            traceback.print_exc(file=log)
            return 1
        if isinstance(result, dict) and result.get("interrupted"):
            return 130
        return 0


def _interrupted(returncode) -> bool:
    return returncode in (130, -signal.SIGINT, -signal.SIGTERM, 128 + signal.SIGTERM)


def execute_run(
    workdir, variant: str, seed: int, *, backend: str, evaluate_options: dict,
    in_process: bool = False, echo: bool = False, processes: _Processes | None = None, python: str | None = None,
) -> dict:
    """Train (resuming from ``checkpoints/last.keras`` when it exists) and evaluate one
    run; returns its record and writes ``status.json``. Never raises for a failed run."""
    workdir = Path(workdir)
    processes = processes or _Processes()
    folder = run_dir(workdir, variant, seed)
    started = time.time()
    record = {"variant": variant, "seed": seed, "run_dir": str(folder), "log": str(folder / "log.txt")}
    if (folder / "metrics.json").is_file():
        return {**record, "status": "finished", "skipped": True, "seconds": 0.0}
    commands = run_commands(workdir, variant, seed, backend=backend, evaluate_options=evaluate_options, python=python)
    resume = "--resume" in commands["train"]
    overwrite = "--overwrite" in commands["train"]
    pending = _pending_log(workdir, variant, seed)
    log_path = folder / "log.txt" if resume else pending
    log_path.parent.mkdir(parents=True, exist_ok=True)

    if in_process:
        def train_run():
            from predrnn.jobs.config import load_config
            from predrnn.jobs.train import train

            config = load_config(str(workdir / variant / "config.toml"), [f"train.seed={seed}", "train.progress=false"])
            return train(config, folder, resume=resume, overwrite=overwrite)

        returncode = _run_in_process("train", train_run, log_path)
    else:
        returncode = _run_process(commands["train"], log_path, processes, echo)
    if log_path == pending:  # move the first attempt's log into the run folder
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "log.txt"
        if target.exists():
            with open(target, "a") as out, open(pending) as src:
                out.write(src.read())
            pending.unlink()
        else:
            os.replace(pending, target)
        log_path = target
    stage = "train"
    if returncode == 0:
        stage = "evaluate"
        if in_process:
            def evaluate_run():
                from predrnn.jobs.evaluate import evaluate

                kwargs = {EVALUATE_KEYS[k][0]: v for k, v in evaluate_options.items() if v is not None}
                return evaluate(folder, output=folder / "metrics.json", overwrite=True, progress=False, **kwargs)

            returncode = _run_in_process("evaluate", evaluate_run, log_path)
        else:
            returncode = _run_process(commands["evaluate"], log_path, processes, echo)
    if in_process:
        with contextlib.suppress(Exception):
            import keras

            keras.backend.clear_session(free_memory=False)  # gc.collect() takes ~1 s with TF and JAX loaded
    if returncode == 0 and (folder / "metrics.json").is_file():
        status = "finished"
    elif _interrupted(returncode) or processes.stopping:
        status = "interrupted"
    else:
        status = "failed"
    record.update({
        "status": status, "stage": stage, "returncode": returncode, "skipped": False,
        "seconds": round(time.time() - started, 1),
        "ended": datetime.datetime.now().isoformat(timespec="seconds"),
    })
    _write_json(folder / "status.json", record)
    return record


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _log_tail(path, lines=8) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


# ----------------------------------------------------------------------------------
# The experiment
# ----------------------------------------------------------------------------------


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
                        f"Variant {name!r} differs from its runs in {workdir}:\n  " + "\n  ".join(differences)
                        + f"\nResume with the folder's spec (predrnn experiment {workdir / 'spec.toml'} --workdir "
                        f"{workdir} --resume, with the same --set), or start a new --workdir."
                    )
        record_tasks = record.get("tasks", [])
    tasks, current = _task_table(record_tasks, list(configs), runs)
    plan = {
        "workdir": workdir, "spec": spec, "configs": configs, "runs": runs, "backend": backend,
        "tasks": tasks, "current": current, "evaluate": dict(spec.evaluate),
    }
    if write:
        workdir.mkdir(parents=True, exist_ok=True)
        _atomic_write(workdir / "spec.toml", spec.to_toml(runs))
        for name, config in configs.items():
            _atomic_write(workdir / name / "config.toml", f"# Variant {name!r} of {spec.source}; train.seed is set per run.\n" + config_toml(config))
        variants = list(dict.fromkeys([t["variant"] for t in tasks]))
        previous = load_experiment(workdir) if (workdir / "experiment.json").is_file() else {}
        _write_json(workdir / "experiment.json", {
            "name": spec.name, "spec": spec.source, "runs": max(runs, previous.get("runs", 0)),
            "backend": backend, "evaluate": spec.evaluate, "variants": variants, "tasks": tasks,
            "created": previous.get("created", datetime.datetime.now().isoformat(timespec="seconds")),
            "updated": datetime.datetime.now().isoformat(timespec="seconds"),
        })
    return plan


def run_experiment(
    spec,
    runs: int | None = None,
    workdir=None,
    *,
    overrides=(),
    backend: str | None = None,
    parallel: int = 1,
    resume: bool = False,
    dry_run: bool = False,
    slurm: bool = False,
    slurm_options: dict | None = None,
    summarize_only: bool = False,
    in_process: bool = False,
    python: str | None = None,
    out=None,
) -> dict:
    """Run (or, with ``slurm``, submit) ``runs`` seeded runs of every variant of
    ``spec`` into ``workdir``, then build the tables (:func:`summarize_experiment`).

    ``spec``: a spec file, a shipped spec name or an :class:`ExperimentSpec`.
    ``overrides``: extra ``section.key=value`` for every variant (``--set``).
    ``parallel``: local runs at once (subprocesses); with ``slurm``, the array's
    ``%K`` limit. ``resume``: continue in an existing ``workdir`` (finished runs are
    skipped, interrupted ones resumed); without it a non-empty ``workdir`` is refused.
    ``dry_run``: only show the plan (with ``slurm``: write the script, do not submit).
    ``in_process``: call train()/evaluate() in this process (tests; no ``parallel``).
    ``python``: the interpreter of the run subprocesses (default: this one).

    Returns a dict with ``exit_code`` (0: all finished or submitted; 1: some run
    failed or is unfinished; 130: interrupted), ``status``, ``records``, ``summary``.
    """
    out = out or sys.stdout
    if workdir is None:
        raise ConfigError("run_experiment needs a workdir.")
    workdir = Path(workdir).resolve()
    if summarize_only:
        summary = summarize_experiment(workdir)
        return {"workdir": str(workdir), "status": "summarized", "summary": summary, "exit_code": 0, "records": []}
    if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
        raise ConfigError(f"--parallel must be a positive integer. Received: {parallel!r}")
    if in_process and (parallel > 1 or slurm):
        raise ConfigError("in_process runs one run at a time, locally (no parallel, no slurm).")
    if not isinstance(spec, ExperimentSpec):
        spec = load_spec(spec, overrides, slurm_options)
    elif overrides or slurm_options:
        from predrnn.jobs.slurm import check_options

        spec = dataclasses.replace(
            spec, set=spec.set + tuple(overrides), slurm={**spec.slurm, **check_options(slurm_options or {}, "--slurm-option")}
        )
    if in_process:
        backend_now = _default_backend()
        if backend and backend != backend_now:
            raise ConfigError(f"in_process runs on this process's backend ({backend_now}), not {backend}.")
        backend = backend_now
    if slurm and not dry_run:
        from predrnn.jobs.slurm import require_sbatch

        require_sbatch()
    plan = prepare_experiment(spec, runs, workdir, resume=resume, backend=backend, write=not (dry_run and not slurm))
    if slurm:
        return _submit_slurm(plan, parallel=parallel, resume=resume, dry_run=dry_run, out=out)
    todo = [t for t in plan["current"] if run_status(workdir, t["variant"], t["seed"]) != "finished"]
    skipped = len(plan["current"]) - len(todo)
    result = {"workdir": str(workdir), "runs": plan["runs"], "variants": list(plan["configs"]), "backend": plan["backend"],
              "tasks": len(plan["current"]), "skipped": skipped, "records": []}
    if dry_run:
        print(f"Dry run: {len(plan['current'])} runs ({len(plan['configs'])} variants x {plan['runs']} seeds) in {workdir}; "
              f"{skipped} finished, {len(todo)} to run:", file=out)
        for task in todo:
            commands = run_commands(workdir, task["variant"], task["seed"], backend=plan["backend"], evaluate_options=plan["evaluate"], python=python)
            print(f"  {task['variant']} seed {task['seed']}:\n    {shlex.join(commands['train'])}\n    {shlex.join(commands['evaluate'])}", file=out)
        return {**result, "status": "dry_run", "exit_code": 0}
    if skipped:
        print(f"{skipped} of {len(plan['current'])} runs already finished (skipped).", file=out)
    records, interrupted = _run_local(plan, todo, parallel=parallel, in_process=in_process, python=python, out=out)
    summary = summarize_experiment(workdir)
    failed = [r for r in records if r["status"] != "finished"]
    exit_code = 130 if interrupted else (1 if failed else 0)
    status = "interrupted" if interrupted else ("failed" if failed else "finished")
    return {**result, "records": records, "failed": failed, "summary": summary, "status": status, "exit_code": exit_code}


def _run_local(plan, todo, *, parallel, in_process, python, out):
    workdir, total = plan["workdir"], len(todo)
    processes = _Processes()
    records, done = [], [0]
    lock = threading.Lock()

    def one(task):
        if processes.stopping:
            return None
        record = execute_run(
            workdir, task["variant"], task["seed"], backend=plan["backend"], evaluate_options=plan["evaluate"],
            in_process=in_process, processes=processes, python=python,
        )
        with lock:
            records.append(record)
            done[0] += 1
            line = f"[{done[0]}/{total}] {task['variant']} seed {task['seed']}: {record['status']} ({record.get('seconds', 0):.0f} s)"
            if record["status"] == "finished":
                try:
                    metrics = _read_json(Path(record["run_dir"]) / "metrics.json")
                    line += f", mse_per_frame {metrics['mse_per_frame']:.3f}, ssim {metrics['ssim']:.4f}"
                except (OSError, KeyError, ValueError):
                    pass
            else:
                line += f" during {record.get('stage')}; log: {record['log']}"
                tail = _log_tail(record["log"], 5)
                if tail:
                    line += "\n    " + tail.replace("\n", "\n    ")
            print(line, file=out, flush=True)
        return record

    interrupted = False
    previous_handler = None
    in_main = threading.current_thread() is threading.main_thread()
    if in_main and not in_process:
        def on_sigterm(signum, frame):
            processes.stop()

        previous_handler = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        if parallel == 1:
            for task in todo:
                record = one(task)
                if record is None or record["status"] == "interrupted" or processes.stopping:
                    interrupted = True
                    break
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=parallel) as pool:
                futures = [pool.submit(one, task) for task in todo]
                try:
                    for future in futures:
                        while not future.done():
                            time.sleep(0.2)
                except KeyboardInterrupt:
                    processes.stop()
                    for future in futures:
                        future.cancel()
                    raise
            interrupted = processes.stopping or any(r["status"] == "interrupted" for r in records)
    except KeyboardInterrupt:
        processes.stop()
        interrupted = True
        print("Interrupted: the running runs save their last checkpoint; continue with --resume.", file=out)
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
    return records, interrupted


# ----------------------------------------------------------------------------------
# Slurm
# ----------------------------------------------------------------------------------


def _submit_slurm(plan, *, parallel, resume, dry_run, out) -> dict:
    from predrnn.jobs import slurm as slurm_jobs

    workdir, spec = plan["workdir"], plan["spec"]
    options = dict(spec.slurm)
    tasks = plan["tasks"]
    slurm_dir = workdir / "slurm"
    submissions_path = slurm_dir / "submissions.json"
    submissions = _read_json(submissions_path) if submissions_path.is_file() else []
    unfinished = [t for t in plan["current"] if run_status(workdir, t["variant"], t["seed"]) != "finished"]
    queued = slurm_jobs.queued_tasks([s.get("job_id") for s in submissions]) if (resume and submissions and not dry_run) else set()
    if queued is None:
        print("Warning: squeue did not answer; tasks that are still queued may be submitted twice.", file=out)
        queued = set()
    todo = [t for t in unfinished if t["index"] not in queued]
    script = slurm_jobs.write_sbatch(
        workdir, len(tasks), options, backend=plan["backend"], throttle=parallel if parallel > 1 else None,
        job_name=f"predrnn-{spec.name}",
    )
    _write_json(slurm_dir / "tasks.json", {
        "workdir": str(workdir), "backend": plan["backend"], "evaluate": plan["evaluate"],
        "command": f"{sys.executable} -m predrnn experiment-task {workdir} INDEX --backend {plan['backend']}",
        "tasks": [{**t, "run_dir": str(run_dir(workdir, t["variant"], t["seed"]))} for t in tasks],
    })
    summary_script = slurm_jobs.write_summary_sbatch(workdir, options) if options.get("summary_job", True) else None
    result = {"workdir": str(workdir), "runs": plan["runs"], "variants": list(plan["configs"]), "backend": plan["backend"],
              "tasks": len(plan["current"]), "skipped": len(plan["current"]) - len(unfinished), "records": [],
              "script": str(script), "queued": sorted(queued & {t["index"] for t in unfinished})}
    if queued & {t["index"] for t in unfinished}:
        print(f"Still queued or running (not resubmitted): tasks {slurm_jobs.format_array(result['queued'])}.", file=out)
    if not todo:
        print(f"Nothing to submit: {result['skipped']} of {len(plan['current'])} runs finished"
              + (", the others are queued." if result["queued"] else "."), file=out)
        summary = summarize_experiment(workdir) if not result["queued"] else None
        return {**result, "status": "nothing_to_submit", "summary": summary, "indices": [], "exit_code": 0}
    indices = [t["index"] for t in todo]
    full = indices == list(range(len(tasks)))
    array = None if full else slurm_jobs.format_array(indices) + (f"%{parallel}" if parallel > 1 else "")
    command = ["sbatch"] + ([f"--array={array}"] if array else []) + [str(script)]
    result.update({"indices": indices, "array": array or f"0-{len(tasks) - 1}", "command": shlex.join(command)})
    if dry_run:
        print(f"Wrote {script} ({len(tasks)} tasks; task table {slurm_dir / 'tasks.json'}). Submit with:\n  {shlex.join(command)}", file=out)
        if summary_script:
            print(f"and, after it, the summary job:\n  sbatch --dependency=afterany:JOBID {summary_script}", file=out)
        print(f"(or let predrnn submit both: predrnn experiment {workdir / 'spec.toml'} --workdir {workdir} --slurm --resume)", file=out)
        return {**result, "status": "dry_run", "exit_code": 0}
    job_id = slurm_jobs.submit(script, array=array)
    summary_job = None
    if summary_script:
        summary_job = slurm_jobs.submit(summary_script, dependency=f"afterany:{job_id}")
    submissions.append({"job_id": job_id, "array": result["array"], "indices": indices, "summary_job_id": summary_job,
                        "submitted": datetime.datetime.now().isoformat(timespec="seconds")})
    _write_json(submissions_path, submissions)
    print(f"Submitted job array {job_id} ({_plural(len(indices), 'task')}: {result['array']}); logs in {slurm_dir / 'logs'}."
          + (f" Summary job {summary_job} runs after it." if summary_job else ""), file=out)
    print(f"Check with `squeue -j {job_id}`; rebuild the tables any time with `predrnn experiment-summary {workdir}`; "
          f"resubmit unfinished runs with `predrnn experiment {workdir / 'spec.toml'} --workdir {workdir} --slurm --resume`.", file=out)
    return {**result, "status": "submitted", "job_id": job_id, "summary_job_id": summary_job, "exit_code": 0}


def run_task(workdir, index: int, *, backend: str | None = None, echo: bool = True, python: str | None = None) -> dict:
    """Run task ``index`` of the experiment in ``workdir`` (what a Slurm array task
    does): train with resume, then evaluate; a finished run is skipped."""
    workdir = Path(workdir).resolve()
    record = load_experiment(workdir)
    tasks = {int(t["index"]): t for t in record.get("tasks", [])}
    if index not in tasks:
        raise ConfigError(f"Task {index} is not in {workdir / 'experiment.json'} (tasks 0..{len(tasks) - 1}).")
    task = tasks[index]
    backend = backend or record.get("backend") or _default_backend()
    print(f"task {index}: {task['variant']} seed {task['seed']} -> {run_dir(workdir, task['variant'], task['seed'])}", flush=True)
    processes = _Processes()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: processes.stop())
    try:
        result = execute_run(
            workdir, task["variant"], task["seed"], backend=backend, evaluate_options=record.get("evaluate", {}),
            echo=echo, processes=processes, python=python,
        )
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print(f"task {index}: {result['status']}" + ("" if result["status"] == "finished" else f" (log: {result['log']})"), flush=True)
    result["exit_code"] = 0 if result["status"] == "finished" else (130 if result["status"] == "interrupted" else 1)
    return result


# ----------------------------------------------------------------------------------
# Summary
# ----------------------------------------------------------------------------------


def _mean_std(values):
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return math.nan, math.nan
    with np.errstate(invalid="ignore", over="ignore"):  # inf values (a perfect PSNR) give std nan
        mean = float(np.mean(values))
        std = float(np.std(values, ddof=1 if values.size > 1 else 0))
    return mean, std


def _relative(path, workdir) -> str:
    try:
        return str(Path(path).relative_to(workdir))
    except ValueError:
        return str(path)


def _csv_number(value) -> str:
    if value is None:
        return ""
    value = float(value)
    return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))


def summarize_experiment(workdir, *, plot: bool = True) -> dict:
    """Rebuild results.csv, summary.csv, summary.md and summary.png from the runs of
    ``workdir`` that have a metrics.json. Returns the per-variant aggregates."""
    workdir = Path(workdir).resolve()
    record = load_experiment(workdir)
    rows = []
    for task in record.get("tasks", []):
        variant, seed = task["variant"], int(task["seed"])
        folder = run_dir(workdir, variant, seed)
        status = run_status(workdir, variant, seed)
        row = {"variant": variant, "seed": seed, "status": status, "metrics": None, "baselines": None,
               "num_sequences": None, "run_dir": folder, "log": folder / "log.txt" if folder.exists() else _pending_log(workdir, variant, seed)}
        if status == "finished":
            try:
                metrics = _read_json(folder / "metrics.json")
                row["metrics"] = {m: float(metrics[m]) for m in METRICS}
                row["baselines"] = {b: {m: float(metrics["baselines"][b][m]) for m in METRICS} for b in BASELINES}
                row["num_sequences"] = metrics.get("num_sequences")
                row["test_set"] = metrics.get("test_set")
            except (OSError, KeyError, TypeError, ValueError) as error:
                row["status"] = "failed"
                row["error"] = f"unreadable metrics.json: {error}"
        rows.append(row)

    variants = list(dict.fromkeys(record.get("variants", []) + [r["variant"] for r in rows]))
    aggregates = {}
    for variant in variants:
        mine = [r for r in rows if r["variant"] == variant]
        finished = [r for r in mine if r["status"] == "finished"]
        aggregates[variant] = {
            "finished": len(finished),
            "total": len(mine),
            "seeds": [r["seed"] for r in finished],
            "metrics": {},
            "baselines": {b: {} for b in BASELINES},
        }
        for metric in METRICS:
            values = [r["metrics"][metric] for r in finished]
            mean, std = _mean_std(values)
            aggregates[variant]["metrics"][metric] = {"mean": mean, "std": std, "values": values}
            for b in BASELINES:
                aggregates[variant]["baselines"][b][metric] = _mean_std([r["baselines"][b][metric] for r in finished])[0]

    files = {}
    files["results"] = _write_results_csv(workdir, rows)
    files["summary_csv"] = _write_summary_csv(workdir, aggregates)
    test_set = next((r.get("test_set") for r in rows if r.get("test_set")), None)
    files["summary_md"] = _write_summary_md(workdir, record, aggregates, rows, test_set)
    if plot:
        files["summary_png"] = _plot_summary(workdir / "summary.png", aggregates)
    counts = {status: sum(r["status"] == status for r in rows) for status in STATUSES}
    return {
        "workdir": str(workdir),
        "variants": aggregates,
        "results": [
            {**{k: v for k, v in r.items() if k not in ("run_dir", "log")}, "run_dir": str(r["run_dir"]), "log": str(r["log"])}
            for r in rows
        ],
        "counts": counts,
        "files": {k: str(v) for k, v in files.items() if v},
    }


def _write_results_csv(workdir, rows) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["variant", "seed", "status", *METRICS, *(f"{b}_{m}" for b in BASELINES for m in METRICS),
                     "num_sequences", "run_dir", "log"])
    for r in rows:
        metrics = r["metrics"] or {}
        baselines = r["baselines"] or {}
        writer.writerow([
            r["variant"], r["seed"], r["status"],
            *(_csv_number(metrics.get(m)) for m in METRICS),
            *(_csv_number(baselines.get(b, {}).get(m)) for b in BASELINES for m in METRICS),
            "" if r["num_sequences"] is None else r["num_sequences"],
            _relative(r["run_dir"], workdir), _relative(r["log"], workdir) if r["status"] != "not_started" else "",
        ])
    path = Path(workdir) / "results.csv"
    _atomic_write(path, buffer.getvalue())
    return path


def _write_summary_csv(workdir, aggregates) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["variant", "runs_finished", "runs_total",
                     *(f"{m}_{s}" for m in METRICS for s in ("mean", "std")),
                     *(f"{b}_{m}" for b in BASELINES for m in METRICS)])
    for variant, a in aggregates.items():
        writer.writerow([
            variant, a["finished"], a["total"],
            *(_csv_number(a["metrics"][m][s]) if a["finished"] else "" for m in METRICS for s in ("mean", "std")),
            *(_csv_number(a["baselines"][b][m]) if a["finished"] else "" for b in BASELINES for m in METRICS),
        ])
    path = Path(workdir) / "summary.csv"
    _atomic_write(path, buffer.getvalue())
    return path


def _format(metric, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return format(value, METRIC_FORMATS[metric])


def format_summary_table(aggregates) -> str:
    """The Markdown table of means ± standard deviations (best mean in bold)."""
    arrows = {m: "↓" if m in LOWER_IS_BETTER else "↑" for m in METRICS}
    lines = ["| variant | runs | " + " | ".join(f"{m} {arrows[m]}" for m in METRICS) + " |",
             "|---|---:|" + "---:|" * len(METRICS)]
    best = {}
    for metric in METRICS:
        means = [(a["metrics"][metric]["mean"], v) for v, a in aggregates.items() if a["finished"]]
        means = [(m, v) for m, v in means if not math.isnan(m)]
        if len(means) > 1:
            best[metric] = (min if metric in LOWER_IS_BETTER else max)(means)[1]
    for variant, a in aggregates.items():
        cells = []
        for metric in METRICS:
            if not a["finished"]:
                cells.append("-")
                continue
            stats = a["metrics"][metric]
            text = f"{_format(metric, stats['mean'])} ± {_format(metric, stats['std'])}"
            cells.append(f"**{text}**" if best.get(metric) == variant else text)
        lines.append(f"| {variant} | {a['finished']}/{a['total']} | " + " | ".join(cells) + " |")
    finished = {v: a for v, a in aggregates.items() if a["finished"]}
    for b in BASELINES:
        baselines = {v: tuple(a["baselines"][b][m] for m in METRICS) for v, a in finished.items()}
        distinct = set(baselines.values())
        if len(distinct) == 1:
            values = next(iter(distinct))
            lines.append(f"| {BASELINE_LABELS[b]} (baseline) | | " + " | ".join(_format(m, x) for m, x in zip(METRICS, values)) + " |")
        else:
            for variant, values in baselines.items():
                lines.append(
                    f"| {BASELINE_LABELS[b]} ({variant}'s test set) | | " + " | ".join(_format(m, x) for m, x in zip(METRICS, values)) + " |"
                )
    return "\n".join(lines)


def _write_summary_md(workdir, record, aggregates, rows, test_set) -> Path:
    counts = {status: sum(r["status"] == status for r in rows) for status in STATUSES}
    lines = [
        f"# Experiment {record.get('name', workdir.name)}",
        "",
        f"{_plural(len(rows), 'run')} ({_plural(len(aggregates), 'variant')}, seeds 0..{record.get('runs', 0) - 1}) on the "
        f"{record.get('backend', '?')} backend; spec: `{record.get('spec', '?')}`.",
        "Status: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + ".",
        "",
        format_summary_table(aggregates),
        "",
        "Mean ± standard deviation over the finished runs (sample std, ddof=1; 0 for a single run). "
        "↓ lower is better, ↑ higher is better; the best mean is in bold.",
        "mse_per_frame and mae_per_frame: sum over the pixels of a frame ([0, 1] scale), mean over the predicted frames.",
    ]
    if test_set:
        described = ", ".join(f"{k} {v}" for k, v in test_set.items())
        lines.append(f"Test set (the same for every run): {described}.")
    problems = [r for r in rows if r["status"] in ("failed", "interrupted")]
    if problems:
        lines += ["", "Runs without results:", ""]
        lines += [f"- {r['variant']} seed {r['seed']}: {r['status']} (log: `{_relative(r['log'], workdir)}`)" for r in problems]
    lines.append("")
    path = Path(workdir) / "summary.md"
    _atomic_write(path, "\n".join(lines))
    return path


def _plot_summary(path, aggregates):
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(aggregates)
    figure = Figure(figsize=(3.2 * len(METRICS), 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(METRICS))
    colors = [f"C{i % 10}" for i in range(len(names))]
    positions = np.arange(len(names))
    for ax, metric in zip(axes, METRICS):
        means = np.array([aggregates[n]["metrics"][metric]["mean"] if aggregates[n]["finished"] else np.nan for n in names])
        stds = np.array([aggregates[n]["metrics"][metric]["std"] if aggregates[n]["finished"] else np.nan for n in names])
        finite = np.where(np.isfinite(means), means, 0.0)
        ax.bar(positions, finite, yerr=np.where(np.isfinite(stds), stds, 0.0), color=colors, capsize=4, alpha=0.85)
        for b, style in zip(BASELINES, ("--", ":", "-.")):
            baseline = [aggregates[n]["baselines"][b][metric] for n in names if aggregates[n]["finished"]]
            baseline = [x for x in baseline if np.isfinite(x)]
            if baseline:
                ax.axhline(float(np.mean(baseline)), color="0.3", linestyle=style, linewidth=1, label=BASELINE_LABELS[b])
        arrow = "↓" if metric in LOWER_IS_BETTER else "↑"
        ax.set_title(f"{metric} {arrow}", fontsize=10)
        ax.set_xticks(positions, names, rotation=30, ha="right", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
    if any(ax.get_legend_handles_labels()[0] for ax in axes):
        axes[0].legend(fontsize=7, loc="lower left")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    figure.savefig(tmp, dpi=100)
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------


def add_experiment_parser(commands) -> None:
    """Register ``experiment``, ``experiment-task`` and ``experiment-summary``."""
    from predrnn.cli import add_backend_argument, positive_int

    backend_help = "Keras backend of the runs (default: $KERAS_BACKEND, else tensorflow)."
    p = commands.add_parser(
        "experiment", help="N seeded runs of several config variants, locally or as a Slurm job array, and a summary table",
        description="Run N seeded runs of every variant of an experiment spec and aggregate their evaluation "
        f"(mean ± std per variant). Shipped specs: {', '.join(spec_names()) or 'none'}.",
    )
    p.add_argument("spec", nargs="?", metavar="SPEC", help="a spec .toml file or a shipped spec name (default with --resume: DIR/spec.toml)")
    p.add_argument("--runs", type=positive_int, help=f"seeded runs per variant (seeds 0..N-1; default: the spec's runs, else {DEFAULT_RUNS})")
    p.add_argument("--workdir", required=True, metavar="DIR", help="experiment folder")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config key of every variant (repeatable)")
    p.add_argument("--parallel", type=positive_int, default=1, metavar="K", help="runs at once (local subprocesses; with --slurm the array's %%K limit)")
    p.add_argument("--resume", action="store_true", help="continue in DIR: skip finished runs, resume interrupted ones, start missing ones")
    p.add_argument("--dry-run", action="store_true", help="show the plan; with --slurm write the job script without submitting")
    p.add_argument("--slurm", action="store_true", help="submit a Slurm job array (one task per run) instead of running here")
    p.add_argument("--slurm-option", action="append", metavar="KEY=VALUE", help="an sbatch option, e.g. partition=gpu, time=04:00:00, gpus=1, cpus-per-task=8 (repeatable)")
    p.add_argument("--summarize-only", action="store_true", help="only rebuild the tables from the finished runs in DIR")
    add_backend_argument(p, help=backend_help)
    p.set_defaults(handler=_experiment_command)

    p = commands.add_parser("experiment-task", help="run one task (train + evaluate) of an experiment (what a Slurm array task runs)")
    p.add_argument("workdir", metavar="DIR", help="experiment folder")
    p.add_argument("index", nargs="?", type=int, metavar="INDEX", help="task index (default: $SLURM_ARRAY_TASK_ID); see DIR/slurm/tasks.json")
    add_backend_argument(p, help=backend_help)
    p.set_defaults(handler=_task_command)

    p = commands.add_parser("experiment-summary", help="rebuild an experiment's results.csv and summary tables from its finished runs")
    p.add_argument("workdir", metavar="DIR", help="experiment folder")
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
        from predrnn.jobs.slurm import parse_option_texts

        slurm_options = parse_option_texts(args.slurm_option)
    result = run_experiment(
        spec, args.runs, args.workdir, overrides=tuple(args.set or ()), backend=args.backend, parallel=args.parallel,
        resume=args.resume, dry_run=args.dry_run, slurm=args.slurm, slurm_options=slurm_options,
        summarize_only=args.summarize_only,
    )
    summary = result.get("summary")
    if summary:
        print()
        print(format_summary_table(summary["variants"]))
        print(f"\nTables: {Path(result['workdir']) / 'summary.md'}, summary.csv, results.csv, summary.png")
    failed = result.get("failed") or []
    if failed:
        print(f"{len(failed)} run(s) did not finish; see the logs above. Continue with: predrnn experiment "
              f"{Path(result['workdir']) / 'spec.toml'} --workdir {result['workdir']} --resume", file=sys.stderr)
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
    summary = summarize_experiment(args.workdir)
    print(format_summary_table(summary["variants"]))
    counts = summary["counts"]
    print("\n" + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + f". Tables in {summary['workdir']}.")
    return 0
