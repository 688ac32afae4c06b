"""The multi-worker cluster this process belongs to, as its environment describes it (``TF_CONFIG``,
the ``KERAS_DISTRIBUTION_*`` variables, Slurm), and the timeouts read from the environment.
"""

from __future__ import annotations

import dataclasses
import json
import os

from predrnn.errors import ConfigError


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds. Received: {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be > 0 seconds. Received: {raw!r}")
    return value


@dataclasses.dataclass(frozen=True)
class MultiWorkerEnvironment:
    """A multi-worker cluster described by the environment of this process.

    ``addresses`` lists every worker's ``host:port`` in process order when the source names
    them (TF_CONFIG, or KERAS_DISTRIBUTION_JOB_ADDRESSES with all of them); Slurm leaves it to
    the backend's resolver (``None``). ``coordinator`` is worker 0's address (JAX's coordinator).
    """

    source: str  # "TF_CONFIG", "KERAS_DISTRIBUTION", "SLURM"
    num_workers: int
    worker_index: int
    addresses: tuple[str, ...] | None = None
    coordinator: str | None = None


def _int_env(env, name: str) -> int:
    raw = env.get(name, "")
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer. Received: {raw!r}") from None


def _from_tf_config(raw: str) -> MultiWorkerEnvironment | None:
    try:
        tf_config = json.loads(raw)
        cluster = tf_config.get("cluster", {})
        task = tf_config.get("task", {})
    except (ValueError, AttributeError):
        raise ConfigError(
            "TF_CONFIG is not valid JSON of the form "
            '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}. '
            f"Received: {raw[:200]!r}"
        ) from None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ConfigError(f"TF_CONFIG needs a 'cluster' and a 'task' object. Received: {raw[:200]!r}")
    unsupported = sorted(set(cluster) - {"chief", "worker"})
    if unsupported:
        raise ConfigError(
            f"TF_CONFIG has jobs {unsupported}: data-parallel training uses only 'worker' (and "
            "optionally one 'chief') tasks, all of which train. Remove the other jobs."
        )
    addresses = [str(a) for a in cluster.get("chief", [])] + [str(a) for a in cluster.get("worker", [])]
    if len(addresses) <= 1:
        return None
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in ("chief", "worker") or not isinstance(index, int):
        raise ConfigError(f"TF_CONFIG's task must be {{'type': 'worker' or 'chief', 'index': i}}. Received: {task!r}")
    position = index if task_type == "chief" else len(cluster.get("chief", [])) + index
    if not 0 <= position < len(addresses):
        raise ConfigError(f"TF_CONFIG's task {task!r} is not in its cluster {cluster!r}.")
    return MultiWorkerEnvironment("TF_CONFIG", len(addresses), position, tuple(addresses), addresses[0])


def multi_worker_environment(environ=None) -> MultiWorkerEnvironment | None:
    """The multi-worker cluster this process belongs to, from its environment, or ``None``.

    See the module docstring for the variables read. A cluster of one worker is ``None``.
    Raises :class:`ConfigError` for malformed values.
    """
    env = os.environ if environ is None else environ
    if env.get("TF_CONFIG"):
        return _from_tf_config(env["TF_CONFIG"])
    if env.get("KERAS_DISTRIBUTION_NUM_PROCESSES") or env.get("KERAS_DISTRIBUTION_JOB_ADDRESSES"):
        names = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES", "KERAS_DISTRIBUTION_PROCESS_ID")
        missing = [n for n in names if not env.get(n)]
        if missing:
            raise ConfigError(f"Multi-worker training needs all of {', '.join(names)}; {', '.join(missing)} is not set.")
        num, index = _int_env(env, names[1]), _int_env(env, names[2])
        addresses = tuple(a.strip() for a in env[names[0]].split(",") if a.strip())
        if num < 1 or not 0 <= index < num:
            raise ConfigError(
                f"KERAS_DISTRIBUTION_PROCESS_ID must be in [0, KERAS_DISTRIBUTION_NUM_PROCESSES). Received: {index} of {num}."
            )
        if len(addresses) > 1 and len(addresses) != num:
            raise ConfigError(
                f"KERAS_DISTRIBUTION_JOB_ADDRESSES lists {len(addresses)} addresses but "
                f"KERAS_DISTRIBUTION_NUM_PROCESSES is {num}. List one address (the coordinator) "
                "or all of them."
            )
        if num == 1:
            return None
        return MultiWorkerEnvironment(
            "KERAS_DISTRIBUTION", num, index, addresses if len(addresses) == num else None, addresses[0]
        )
    if env.get("SLURM_STEP_NUM_TASKS") and env.get("SLURM_PROCID"):
        num, index = _int_env(env, "SLURM_STEP_NUM_TASKS"), _int_env(env, "SLURM_PROCID")
        if num > 1:
            return MultiWorkerEnvironment("SLURM", num, index)
    return None
