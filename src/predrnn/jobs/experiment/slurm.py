"""Slurm job arrays for experiments: option checking, the sbatch script, submission.

Host-side only (no keras). :func:`write_sbatch` writes a job-array script whose task
``i`` runs ``python -m predrnn experiment-task DIR i``; :func:`submit` calls
``sbatch`` (``--array=LIST`` on the command line overrides the script's range, which
is how unfinished tasks are resubmitted); :func:`queued_tasks` asks ``squeue`` which
array tasks of earlier submissions are still pending or running;
:func:`submit_experiment` submits the unfinished runs of a prepared experiment.
"""

from __future__ import annotations

import datetime
import difflib
import getpass
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from predrnn.errors import ConfigError, PredRNNError
from predrnn.jobs.experiment.state import _read_json, _write_json, run_dir, run_status
from predrnn.jobs.experiment.summary import _plural, summarize_experiment

# Long options of sbatch that may be set through --slurm-option / [slurm].
SBATCH_OPTIONS = frozenset(
    """
    account acctg-freq batch bb bbf begin chdir cluster-constraint clusters comment constraint
    container contiguous core-spec cores-per-socket cpu-freq cpus-per-gpu cpus-per-task deadline
    delay-boot dependency distribution exclude exclusive export export-file get-user-env gid
    gpu-bind gpu-freq gpus gpus-per-node gpus-per-socket gpus-per-task gres gres-flags hint hold
    ignore-pbs job-name kill-on-invalid-dep licenses mail-type mail-user mcs-label mem mem-bind
    mem-per-cpu mem-per-gpu mincpus network nice no-kill no-requeue nodefile nodelist nodes ntasks
    ntasks-per-core ntasks-per-gpu ntasks-per-node ntasks-per-socket open-mode overcommit
    oversubscribe partition power prefer priority profile propagate qos reboot requeue
    reservation signal sockets-per-node spread-job switches thread-spec threads-per-core time
    time-min tmp tres-per-task uid use-min-nodes wckey
    """.split()
)
# Short names people type, mapped to sbatch's long options.
ALIASES = {"cpus": "cpus-per-task", "gpu": "gpus", "job": "job-name", "name": "job-name", "memory": "mem"}
# Options the experiment sets itself.
RESERVED = {
    "array": "the array is the experiment's tasks; --parallel K limits how many run at once (%K)",
    "output": "the per-task logs are DIR/slurm/logs/%A_%a.out",
    "error": "stderr goes to the per-task log DIR/slurm/logs/%A_%a.out",
    "wrap": "the job script is generated",
    "wait": "sbatch returns after submitting",
}
# Keys of [slurm] that are not sbatch options.
SETTINGS = {
    "setup": "shell lines run before each task (module load ..., source venv/bin/activate)",
    "python": "the Python interpreter of the tasks (default: the one submitting)",
    "extra": "raw #SBATCH lines, for options this list does not know",
    "summary_job": "submit a small job that rebuilds the summary after the array (default true)",
}
# Options copied to the summary job (where it may run, not what the training needs).
SUMMARY_JOB_OPTIONS = ("account", "partition", "qos", "reservation", "clusters", "wckey")


def normalize_key(key: str) -> str:
    key = str(key).strip().lstrip("-").replace("_", "-").lower()
    if key.replace("-", "_") in SETTINGS:
        return key.replace("-", "_")
    return ALIASES.get(key, key)


def check_options(options: dict, source: str = "slurm options") -> dict:
    """Normalized ``{sbatch-long-option: value}`` plus the settings keys; ConfigError
    for unknown or reserved keys and bad values (naming the nearest valid key)."""
    checked = {}
    for raw_key, value in dict(options).items():
        key = normalize_key(raw_key)
        if key in RESERVED:
            raise ConfigError(f"{source}: {raw_key!r} cannot be set: {RESERVED[key]}.")
        if key in SETTINGS:
            if key == "setup" or key == "extra":
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ConfigError(f"{source}: {key} must be a string or a list of strings. Received: {value!r}")
                if key == "extra":
                    value = [v if v.lstrip().startswith("#SBATCH") else f"#SBATCH {v.strip()}" for v in value]
            elif key == "python":
                if not isinstance(value, str) or not value:
                    raise ConfigError(f"{source}: python must be the path of an interpreter. Received: {value!r}")
            elif key == "summary_job":
                if isinstance(value, str) and value.lower() in ("true", "false"):
                    value = value.lower() == "true"
                if not isinstance(value, bool):
                    raise ConfigError(f"{source}: summary_job must be true or false. Received: {value!r}")
            checked[key] = value
            continue
        if key not in SBATCH_OPTIONS:
            valid = sorted(SBATCH_OPTIONS | set(ALIASES) | set(SETTINGS))
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{source}: unknown sbatch option {raw_key!r}.{hint} Use sbatch's long option names "
                "(partition, time, gpus, cpus-per-task, mem, account, qos, constraint, ...), or "
                'extra = ["#SBATCH --..."] for anything else.'
            )
        if isinstance(value, bool):
            if value:
                checked[key] = True
            continue
        if not isinstance(value, (str, int, float)) or (isinstance(value, str) and ("\n" in value or not value.strip())):
            raise ConfigError(f"{source}: {key} must be a single value (string or number). Received: {value!r}")
        checked[key] = value
    return checked


def parse_option_texts(texts) -> dict:
    """``["partition=gpu", "time=04:00:00"]`` (``--slurm-option``) -> dict."""
    options = {}
    for text in texts or ():
        if "=" not in text:
            raise ConfigError(f"--slurm-option takes KEY=VALUE, e.g. partition=gpu or time=04:00:00. Received: {text!r}")
        key, value = text.split("=", 1)
        key = normalize_key(key)
        if key in ("setup", "extra"):
            options.setdefault(key, []).append(value)
        else:
            options[key] = value
    return options


def format_array(indices) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2,5,7-8"`` (sbatch's --array syntax)."""
    indices = sorted(set(int(i) for i in indices))
    if not indices:
        raise ValueError("no array indices")
    parts, start, previous = [], indices[0], indices[0]
    for index in indices[1:] + [None]:
        if index is not None and index == previous + 1:
            previous = index
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if index is not None:
            start = previous = index
    return ",".join(parts)


def _directive(key, value) -> str:
    if value is True:
        return f"#SBATCH --{key}"
    return f"#SBATCH --{key}={value}"


def _header(job_name, options, log_pattern, array=None):
    lines = ["#!/bin/bash", f"#SBATCH --job-name={job_name}"]
    if array is not None:
        lines.append(f"#SBATCH --array={array}")
    lines.append(f"#SBATCH --output={log_pattern}")
    for key, value in options.items():
        if key in SETTINGS or key == "job-name":
            continue
        lines.append(_directive(key, value))
    lines += list(options.get("extra", ()))
    return lines


def write_sbatch(
    workdir,
    num_tasks: int,
    options: dict | None = None,
    *,
    backend: str,
    python: str | None = None,
    throttle: int | None = None,
    job_name: str = "predrnn-experiment",
) -> Path:
    """Write ``DIR/slurm/job.sbatch``: a job array over tasks ``0 .. num_tasks-1``.

    Task ``i`` runs ``python -m predrnn experiment-task DIR i --backend BACKEND``,
    which trains (resuming when a checkpoint exists) and evaluates that run. Logs go
    to ``DIR/slurm/logs/%A_%a.out``. ``throttle`` (``--parallel``) caps the tasks
    running at once (``%K``). Returns the script's path.
    """
    workdir = Path(workdir).resolve()
    options = check_options(options or {})
    if num_tasks < 1:
        raise ConfigError("The experiment has no tasks to submit.")
    slurm_dir = workdir / "slurm"
    (slurm_dir / "logs").mkdir(parents=True, exist_ok=True)
    array = f"0-{num_tasks - 1}" + (f"%{throttle}" if throttle else "")
    python = options.get("python") or python or _default_python()
    job_name = str(options.get("job-name", job_name))
    lines = _header(job_name, options, slurm_dir / "logs" / "%A_%a.out", array=array)
    lines += [
        "",
        "# One run of the experiment per array task: train (resumed from checkpoints/last.keras",
        "# when it exists) and evaluate DIR/<variant>/seed_<i>. The task table is DIR/slurm/tasks.json.",
        "# Resubmit only unfinished tasks with: predrnn experiment SPEC --workdir DIR --slurm --resume",
        "set -euo pipefail",
        *options.get("setup", ()),
        'echo "predrnn experiment task ${SLURM_ARRAY_TASK_ID} on $(hostname), job ${SLURM_ARRAY_JOB_ID:-?}"',
        f"exec {shlex.quote(python)} -m predrnn experiment-task {shlex.quote(str(workdir))} "
        f'"${{SLURM_ARRAY_TASK_ID}}" --backend {shlex.quote(backend)}',
        "",
    ]
    path = slurm_dir / "job.sbatch"
    _write_text(path, "\n".join(lines))
    return path


def write_summary_sbatch(workdir, options: dict | None = None, *, python: str | None = None, job_name="predrnn-summary") -> Path:
    """``DIR/slurm/summary.sbatch``: rebuild the experiment's tables (run after the array)."""
    workdir = Path(workdir).resolve()
    options = check_options(options or {})
    kept = {k: v for k, v in options.items() if k in SUMMARY_JOB_OPTIONS}
    kept.update({"ntasks": 1, "cpus-per-task": 1, "time": "00:15:00"})
    python = options.get("python") or python or _default_python()
    lines = _header(job_name, kept, workdir / "slurm" / "logs" / "summary_%j.out")
    lines += [
        "",
        "set -euo pipefail",
        *options.get("setup", ()),
        f"exec {shlex.quote(python)} -m predrnn experiment-summary {shlex.quote(str(workdir))}",
        "",
    ]
    path = workdir / "slurm" / "summary.sbatch"
    _write_text(path, "\n".join(lines))
    return path


def _default_python() -> str:
    import sys

    return sys.executable or "python3"


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def require_sbatch() -> str:
    path = shutil.which("sbatch")
    if path is None:
        raise PredRNNError(
            "sbatch was not found on PATH: this machine is not a Slurm login node (or Slurm's "
            "commands are not loaded, e.g. `module load slurm`). Pass --dry-run to only write "
            "DIR/slurm/job.sbatch, then submit it where Slurm runs."
        )
    return path


def submit(script, *, array: str | None = None, dependency: str | None = None) -> str:
    """Run ``sbatch [--array=...] [--dependency=...] script``; returns the job id."""
    command = [require_sbatch()]
    if array:
        command.append(f"--array={array}")
    if dependency:
        command.append(f"--dependency={dependency}")
    command.append(str(script))
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PredRNNError(f"Could not run {shlex.join(command)}: {error}") from None
    if result.returncode != 0:
        raise PredRNNError(
            f"sbatch refused the job (exit {result.returncode}): {(result.stderr or result.stdout).strip()}\n"
            f"Command: {shlex.join(command)}"
        )
    match = re.search(r"Submitted batch job (\d+)", result.stdout) or re.search(r"^(\d+)", result.stdout.strip())
    if not match:
        raise PredRNNError(f"Could not read the job id from sbatch's answer: {result.stdout.strip()!r}")
    return match.group(1)


def queued_tasks(job_ids) -> set[int] | None:
    """Array indices of ``job_ids`` that squeue lists (pending or running); None when
    squeue is unavailable or fails (the caller cannot tell what is still queued)."""
    job_ids = {str(j) for j in job_ids if j}
    if not job_ids:
        return set()
    squeue = shutil.which("squeue")
    if squeue is None:
        return None
    try:
        user = getpass.getuser()
        result = subprocess.run(
            [squeue, "--noheader", "--array", "--user", user, "--format=%F|%K|%T"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired, KeyError):
        return None
    if result.returncode != 0:
        return None
    queued = set()
    for line in result.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 2 or parts[0] not in job_ids:
            continue
        queued |= _expand_indices(parts[1])
    return queued


def _expand_indices(text: str) -> set[int]:
    """squeue's %K: ``"3"``, or for a pending array ``"0-5%2"`` / ``"[1,3-4]"``."""
    text = text.strip().strip("[]").split("%")[0]
    indices = set()
    for part in text.split(","):
        part = part.strip()
        if not part or part.upper() == "N/A":
            continue
        try:
            if "-" in part:
                start, stop = part.split("-", 1)
                indices.update(range(int(start), int(stop) + 1))
            else:
                indices.add(int(part))
        except ValueError:
            continue
    return indices


def submit_experiment(plan, *, parallel, resume, dry_run, out) -> dict:
    workdir, spec = plan["workdir"], plan["spec"]
    options = dict(spec.slurm)
    tasks = plan["tasks"]
    slurm_dir = workdir / "slurm"
    submissions_path = slurm_dir / "submissions.json"
    submissions = _read_json(submissions_path) if submissions_path.is_file() else []
    unfinished = [t for t in plan["current"] if run_status(workdir, t["variant"], t["seed"]) != "finished"]
    queued = queued_tasks([s.get("job_id") for s in submissions]) if (resume and submissions and not dry_run) else set()
    if queued is None:
        print("Warning: squeue did not answer; tasks that are still queued may be submitted twice.", file=out)
        queued = set()
    todo = [t for t in unfinished if t["index"] not in queued]
    script = write_sbatch(
        workdir,
        len(tasks),
        options,
        backend=plan["backend"],
        throttle=parallel if parallel > 1 else None,
        job_name=f"predrnn-{spec.name}",
    )
    _write_json(
        slurm_dir / "tasks.json",
        {
            "workdir": str(workdir),
            "backend": plan["backend"],
            "evaluate": plan["evaluate"],
            "command": f"{sys.executable} -m predrnn experiment-task {workdir} INDEX --backend {plan['backend']}",
            "tasks": [{**t, "run_dir": str(run_dir(workdir, t["variant"], t["seed"]))} for t in tasks],
        },
    )
    summary_script = write_summary_sbatch(workdir, options) if options.get("summary_job", True) else None
    result = {
        "workdir": str(workdir),
        "runs": plan["runs"],
        "variants": list(plan["configs"]),
        "backend": plan["backend"],
        "tasks": len(plan["current"]),
        "skipped": len(plan["current"]) - len(unfinished),
        "records": [],
        "script": str(script),
        "queued": sorted(queued & {t["index"] for t in unfinished}),
    }
    if queued & {t["index"] for t in unfinished}:
        print(f"Still queued or running (not resubmitted): tasks {format_array(result['queued'])}.", file=out)
    if not todo:
        print(
            f"Nothing to submit: {result['skipped']} of {len(plan['current'])} runs finished"
            + (", the others are queued." if result["queued"] else "."),
            file=out,
        )
        summary = summarize_experiment(workdir) if not result["queued"] else None
        return {**result, "status": "nothing_to_submit", "summary": summary, "indices": [], "exit_code": 0}
    indices = [t["index"] for t in todo]
    full = indices == list(range(len(tasks)))
    array = None if full else format_array(indices) + (f"%{parallel}" if parallel > 1 else "")
    command = ["sbatch"] + ([f"--array={array}"] if array else []) + [str(script)]
    result.update({"indices": indices, "array": array or f"0-{len(tasks) - 1}", "command": shlex.join(command)})
    if dry_run:
        print(
            f"Wrote {script} ({len(tasks)} tasks; task table {slurm_dir / 'tasks.json'}). Submit with:\n  {shlex.join(command)}",
            file=out,
        )
        if summary_script:
            print(f"and, after it, the summary job:\n  sbatch --dependency=afterany:JOBID {summary_script}", file=out)
        print(
            f"(or let predrnn submit both: predrnn experiment {workdir / 'spec.toml'} --workdir {workdir} --slurm --resume)",
            file=out,
        )
        return {**result, "status": "dry_run", "exit_code": 0}
    job_id = submit(script, array=array)
    summary_job = None
    if summary_script:
        summary_job = submit(summary_script, dependency=f"afterany:{job_id}")
    submissions.append(
        {
            "job_id": job_id,
            "array": result["array"],
            "indices": indices,
            "summary_job_id": summary_job,
            "submitted": datetime.datetime.now().isoformat(timespec="seconds"),
        }
    )
    _write_json(submissions_path, submissions)
    print(
        f"Submitted job array {job_id} ({_plural(len(indices), 'task')}: {result['array']}); logs in {slurm_dir / 'logs'}."
        + (f" Summary job {summary_job} runs after it." if summary_job else ""),
        file=out,
    )
    print(
        f"Check with `squeue -j {job_id}`; rebuild the tables any time with `predrnn experiment-summary {workdir}`; "
        f"resubmit unfinished runs with `predrnn experiment {workdir / 'spec.toml'} --workdir {workdir} --slurm --resume`.",
        file=out,
    )
    return {**result, "status": "submitted", "job_id": job_id, "summary_job_id": summary_job, "exit_code": 0}
