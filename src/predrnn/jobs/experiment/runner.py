"""Running an experiment: every run locally (train then evaluate, as subprocesses or in
this process), or as a Slurm job array; one task of the array (:func:`run_task`).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from predrnn.errors import ConfigError, PredRNNError
from predrnn.jobs.experiment.slurm import require_sbatch, submit_experiment
from predrnn.jobs.experiment.spec import EVALUATE_KEYS, ExperimentSpec, load_spec, with_overrides
from predrnn.jobs.experiment.state import (
    _default_backend,
    _pending_log,
    _read_json,
    _write_json,
    load_experiment,
    prepare_experiment,
    run_dir,
    run_status,
)
from predrnn.jobs.experiment.summary import summarize_experiment


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
    flags = {
        "num": "--num",
        "seed": "--seed",
        "digits": "--digits",
        "batch_size": "--batch-size",
        "context": "--context",
        "horizon": "--horizon",
        "data": "--data",
    }
    arguments = []
    for key, flag in flags.items():
        if options.get(key) is not None:
            arguments += [flag, str(options[key])]
    return arguments


def extra_evaluations(evaluate_options: dict) -> dict:
    """``{name: (options, metrics file name)}`` of the spec's ``[evaluate.extra.NAME]`` tables:
    the main options with the table's overrides."""
    main = {k: v for k, v in evaluate_options.items() if k != "extra"}
    return {
        name: ({**main, **overrides}, f"metrics_{name}.json") for name, overrides in evaluate_options.get("extra", {}).items()
    }


def run_commands(workdir, variant: str, seed: int, *, backend: str, evaluate_options: dict, python: str | None = None) -> dict:
    """The ``train`` and ``evaluate`` command lines of one run, as they would run now, and
    ``extra``: ``{name: command}`` of its extra evaluations (they run before the main one,
    whose metrics.json marks the run finished)."""
    python = python or sys.executable
    folder = run_dir(workdir, variant, seed)
    train = [
        python,
        "-m",
        "predrnn",
        "train",
        str(Path(workdir) / variant / "config.toml"),
        "--workdir",
        str(folder),
        "--set",
        f"train.seed={seed}",
        "--set",
        "train.progress=false",
        "--backend",
        backend,
    ]
    if (folder / "checkpoints" / "last.keras").is_file():
        train.append("--resume")
    elif folder.exists() and any(folder.iterdir()):
        train.append("--overwrite")  # a first attempt that stopped before its first checkpoint: kept, renamed

    def evaluate(options, name, pictures=()):
        return [
            python,
            "-m",
            "predrnn",
            "evaluate",
            str(folder),
            "--output",
            str(folder / name),
            "--overwrite",
            *pictures,
            *_evaluate_arguments(options),
            "--backend",
            backend,
        ]

    extra = {
        name: evaluate(options, file, ("--pictures", "0"))
        for name, (options, file) in extra_evaluations(evaluate_options).items()
    }
    return {"train": train, "evaluate": evaluate(evaluate_options, "metrics.json"), "extra": extra}


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
                command,
                stdout=subprocess.PIPE if echo else log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
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


def _adopt_pending_log(pending: Path, folder: Path) -> Path:
    """Move a first attempt's log (``VARIANT/seed_N.log``) into the run folder as
    ``log.txt``, appending it to one already there; returns ``folder / "log.txt"``."""
    target = folder / "log.txt"
    if not pending.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    if target.exists():
        with open(target, "a") as out, open(pending) as src:
            out.write(src.read())
        pending.unlink()
    else:
        os.replace(pending, target)
    return target


def execute_run(
    workdir,
    variant: str,
    seed: int,
    *,
    backend: str,
    evaluate_options: dict,
    in_process: bool = False,
    echo: bool = False,
    processes: _Processes | None = None,
    python: str | None = None,
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
    if resume:  # a first attempt stopped with the experiment keeps its log beside the folder
        _adopt_pending_log(pending, folder)
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
    if log_path == pending:
        log_path = _adopt_pending_log(pending, folder)
    stage = "train"
    evaluations = [
        (name, options, file, commands["extra"][name]) for name, (options, file) in extra_evaluations(evaluate_options).items()
    ]
    evaluations.append(("main", evaluate_options, "metrics.json", commands["evaluate"]))
    for name, options, file, command in evaluations:
        if returncode != 0:
            break
        stage = "evaluate" if name == "main" else f"evaluate {name}"
        if in_process:

            def evaluate_run(options=options, file=file):
                from predrnn.jobs.evaluate import evaluate

                kwargs = {EVALUATE_KEYS[k][0]: v for k, v in options.items() if k != "extra" and v is not None}
                pictures = 4 if file == "metrics.json" else 0
                return evaluate(folder, output=folder / file, overwrite=True, progress=False, pictures=pictures, **kwargs)

            returncode = _run_in_process(stage, evaluate_run, log_path)
        else:
            returncode = _run_process(command, log_path, processes, echo)
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
    record.update(
        {
            "status": status,
            "stage": stage,
            "returncode": returncode,
            "skipped": False,
            "seconds": round(time.time() - started, 1),
            "ended": datetime.datetime.now().isoformat(timespec="seconds"),
        }
    )
    _write_json(folder / "status.json", record)
    return record


def _log_tail(path, lines=8) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


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
        spec = with_overrides(spec, overrides, slurm_options)
    if in_process:
        backend_now = _default_backend()
        if backend and backend != backend_now:
            raise ConfigError(f"in_process runs on this process's backend ({backend_now}), not {backend}.")
        backend = backend_now
    if slurm and not dry_run:
        require_sbatch()
    plan = prepare_experiment(spec, runs, workdir, resume=resume, backend=backend, write=not (dry_run and not slurm))
    if slurm:
        return submit_experiment(plan, parallel=parallel, resume=resume, dry_run=dry_run, out=out)
    # Seed by seed (every variant's seed 0, then every variant's seed 1, ...), so that an
    # experiment stopped part way compares all its variants over the same seeds.
    todo = sorted(
        (t for t in plan["current"] if run_status(workdir, t["variant"], t["seed"]) != "finished"), key=lambda t: t["seed"]
    )
    skipped = len(plan["current"]) - len(todo)
    result = {
        "workdir": str(workdir),
        "runs": plan["runs"],
        "variants": list(plan["configs"]),
        "backend": plan["backend"],
        "tasks": len(plan["current"]),
        "skipped": skipped,
        "records": [],
    }
    if dry_run:
        print(
            f"Dry run: {len(plan['current'])} runs ({len(plan['configs'])} variants x {plan['runs']} seeds) in {workdir}; "
            f"{skipped} finished, {len(todo)} to run:",
            file=out,
        )
        for task in todo:
            commands = run_commands(
                workdir, task["variant"], task["seed"], backend=plan["backend"], evaluate_options=plan["evaluate"], python=python
            )
            lines = [commands["train"], *commands["extra"].values(), commands["evaluate"]]
            print(f"  {task['variant']} seed {task['seed']}:" + "".join(f"\n    {shlex.join(c)}" for c in lines), file=out)
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
            workdir,
            task["variant"],
            task["seed"],
            backend=plan["backend"],
            evaluate_options=plan["evaluate"],
            in_process=in_process,
            processes=processes,
            python=python,
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
            workdir,
            task["variant"],
            task["seed"],
            backend=backend,
            evaluate_options=record.get("evaluate", {}),
            echo=echo,
            processes=processes,
            python=python,
        )
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print(
        f"task {index}: {result['status']}" + ("" if result["status"] == "finished" else f" (log: {result['log']})"), flush=True
    )
    result["exit_code"] = 0 if result["status"] == "finished" else (130 if result["status"] == "interrupted" else 1)
    return result
