"""Data-parallel and multi-worker training on the backends' own engines.

This is the one module of the library that imports TensorFlow or JAX directly (lazily, inside
functions): Keras 3 has no backend-independent data-parallel engine, so

- JAX uses ``keras.distribution.DataParallel`` over every device of every process, and
  ``jax.distributed.initialize`` to join the processes (CPU collectives: gloo);
- TensorFlow uses ``tf.distribute.MirroredStrategy`` (the local GPUs, or the logical CPU
  devices when there is no GPU) and ``tf.distribute.MultiWorkerMirroredStrategy`` (``TF_CONFIG``);
- PyTorch has no Keras data-parallel engine: ``data_parallel`` is a :class:`ConfigError` there.

Usage (what the training job does)::

    initialize_multi_worker()      # optional, first thing in the program (see below)
    keras.utils.set_random_seed(seed)
    with distribution_scope(config.train.distribution, global_batch_size=config.train.batch_size) as info:
        model = build_model(...); compile(model)          # variables are created here
        with info.run_directory(workdir) as out:          # workdir on the chief, a temporary folder elsewhere
            callbacks = [info.validation_callback(RolloutValidation(...)), RunCheckpoint(out / "checkpoints"), ...]
            model.fit(info.shard_dataset(dataset), callbacks=callbacks, ...)

Files outside ``fit`` (``config.json``, ``run.json``) are written when ``info.is_chief`` (before
the scope: ``multi_worker_environment()``; worker 0 is the chief). Every worker runs every
callback, because saving a model is a collective operation under TensorFlow's multi-worker
strategy and validation rollouts are one under JAX with several processes.

``mode`` is ``"none"``, ``"data_parallel"`` or ``"auto"``: data-parallel when this process sees
more than one device (TensorFlow: GPUs, else logical CPUs; JAX: ``jax.devices()``) or a
multi-worker environment is set, else none. ``train.batch_size`` is the *global* batch: it is
split evenly over all replicas of all workers (an error when it does not divide). The data
stream and the teacher-forcing masks are pure functions of ``(seed, global step)`` and are
computed for the whole global batch on every worker, so a data-parallel run sees exactly the
batches of the single-device run; each replica gets its rows of it.

Multi-worker environments, looked up in this order (the first one present wins):

``TF_CONFIG``
    TensorFlow's own cluster description (``{"cluster": {"worker": [...]}, "task": {...}}``;
    a ``chief`` job is allowed). With JAX, worker 0 (or the chief) is the coordinator.
``KERAS_DISTRIBUTION_JOB_ADDRESSES``, ``KERAS_DISTRIBUTION_NUM_PROCESSES``, ``KERAS_DISTRIBUTION_PROCESS_ID``
    The variables of ``keras.distribution.initialize``. JAX needs only the coordinator's
    ``host:port``; TensorFlow needs every worker's address, comma-separated in process order.
Slurm (``srun`` with more than one task: ``SLURM_STEP_NUM_TASKS > 1``)
    JAX's own Slurm detection (coordinator: the first node of the step, a port derived from the
    job id) or TensorFlow's ``SlurmClusterResolver`` (ports from 8888, ``scontrol`` must be on
    the PATH).

Timeouts (so that a dead worker never leaves the others hanging), in seconds, from the
environment: ``PREDRNN_INIT_TIMEOUT`` (default 300: how long to wait for all workers to join),
``PREDRNN_HEARTBEAT_TIMEOUT`` (JAX, default 100: a worker silent this long is dead and every
other worker exits with an error), ``PREDRNN_COLLECTIVE_TIMEOUT`` (TensorFlow, default 600: a
collective that does not finish in this time fails; TensorFlow also probes its peers every 30 s
and aborts the collectives when one is down).

Initialization must happen before the backend starts: JAX's ``jax.distributed.initialize``
before the first JAX computation, TensorFlow's multi-worker strategy before the first
TensorFlow operation runs. :func:`distribution_scope` does it when entered; if the program ran
backend operations earlier, call :func:`initialize_multi_worker` first thing (it is idempotent).

Checkpoints hold plain arrays: a ``.keras`` file written under a distribution loads without one
and the other way round (the variables take the layout of the scope they are loaded in).

Keras 3.15 does not finish ``fit`` under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585,
#20329: the symbolic build and the per-step loss reduction call ``strategy.reduce`` in ways
only the single-worker strategies accept). While a multi-worker TensorFlow scope is active, two
Keras functions are wrapped to call ``strategy.reduce`` the supported way; see
:func:`_keras_multi_worker_fixes`. Nothing else of Keras or TensorFlow is changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from typing import Any

from predrnn.errors import ConfigError, PredRNNError

__all__ = [
    "MODES",
    "DistributionInfo",
    "MultiWorkerEnvironment",
    "ProcessShard",
    "distribution_scope",
    "initialize_multi_worker",
    "multi_worker_environment",
    "resolve_mode",
]

MODES = ("none", "auto", "data_parallel")

_TORCH_MESSAGE = (
    "train.distribution = 'data_parallel' is not available on the PyTorch backend: Keras 3 has "
    "no data-parallel engine for torch. Train on several devices with the JAX backend "
    "(keras.distribution.DataParallel) or the TensorFlow backend (tf.distribute), e.g. "
    "`predrnn train ... --backend jax`, or set train.distribution = 'none'."
)


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


# --------------------------------------------------------------------------- environment
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
        raise ConfigError(
            f"TF_CONFIG's task must be {{'type': 'worker' or 'chief', 'index': i}}. Received: {task!r}"
        )
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
            raise ConfigError(
                f"Multi-worker training needs all of {', '.join(names)}; {', '.join(missing)} "
                "is not set."
            )
        num, index = _int_env(env, names[1]), _int_env(env, names[2])
        addresses = tuple(a.strip() for a in env[names[0]].split(",") if a.strip())
        if num < 1 or not 0 <= index < num:
            raise ConfigError(
                f"KERAS_DISTRIBUTION_PROCESS_ID must be in [0, KERAS_DISTRIBUTION_NUM_PROCESSES). "
                f"Received: {index} of {num}."
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


# --------------------------------------------------------------------------- initialization
_STATE: dict[str, Any] = {}  # "initialized": the environment joined; "tf_strategy": MWMS (one per process)
_CLASSES: dict[str, type] = {}  # subclasses of Keras classes, made on first use


def initialize_multi_worker(environ=None) -> MultiWorkerEnvironment | None:
    """Join the multi-worker cluster of the environment (idempotent); ``None`` when there is none.

    JAX: ``jax.distributed.initialize`` (coordinator, number of processes, process id, with the
    ``PREDRNN_*_TIMEOUT`` timeouts; CPU collectives over gloo). TensorFlow: creates the
    ``MultiWorkerMirroredStrategy`` (from ``TF_CONFIG``, the Keras variables, or Slurm). Call it
    before the backend runs anything. PyTorch: :class:`ConfigError` (no engine).
    """
    import keras

    cluster = multi_worker_environment(environ)
    if cluster is None:
        return None
    if "initialized" in _STATE:
        return _STATE["initialized"]
    backend = keras.backend.backend()
    if backend == "jax":
        _initialize_jax(cluster)
    elif backend == "tensorflow":
        _STATE["tf_strategy"] = _multi_worker_strategy(cluster)
    else:
        raise ConfigError(
            f"This process is one of {cluster.num_workers} workers ({cluster.source}), but the "
            f"{backend} backend has no multi-worker engine in Keras. " + _TORCH_MESSAGE.split(": ", 1)[1]
        )
    _STATE["initialized"] = cluster
    return cluster


def _initialize_jax(cluster: MultiWorkerEnvironment) -> None:
    import jax

    try:
        # CPU collectives between processes (the default in recent JAX; older JAX had none).
        if not jax.config.jax_cpu_collectives_implementation:
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except AttributeError:  # pragma: no cover - a JAX without the option
        pass
    kwargs = dict(
        initialization_timeout=int(_env_seconds("PREDRNN_INIT_TIMEOUT", 300)),
        heartbeat_timeout_seconds=int(_env_seconds("PREDRNN_HEARTBEAT_TIMEOUT", 100)),
    )
    if cluster.source != "SLURM":  # Slurm: JAX finds the coordinator and the ranks itself
        kwargs.update(
            coordinator_address=cluster.coordinator,
            num_processes=cluster.num_workers,
            process_id=cluster.worker_index,
        )
    try:
        jax.distributed.initialize(**kwargs)
    except RuntimeError as error:
        raise PredRNNError(
            f"Could not join the {cluster.num_workers}-process JAX cluster ({cluster.source}, "
            f"coordinator {cluster.coordinator or 'from Slurm'}): {error}. jax.distributed.initialize "
            "must run before any JAX computation; call predrnn.jobs.distribution."
            "initialize_multi_worker() first thing in the program."
        ) from None


def _multi_worker_strategy(cluster: MultiWorkerEnvironment):
    import tensorflow as tf

    if cluster.source == "SLURM":
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver()
    else:
        if cluster.addresses is None:
            raise ConfigError(
                f"TensorFlow needs the address of every worker: set KERAS_DISTRIBUTION_JOB_ADDRESSES "
                f"to all {cluster.num_workers} host:port pairs, comma-separated in process order "
                "(or set TF_CONFIG). Only one address was given."
            )
        if cluster.source == "TF_CONFIG":
            resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        else:
            resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
                tf.train.ClusterSpec({"worker": list(cluster.addresses)}),
                task_type="worker", task_id=cluster.worker_index, rpc_layer="grpc",
            )
    options = tf.distribute.experimental.CommunicationOptions(
        timeout_seconds=_env_seconds("PREDRNN_COLLECTIVE_TIMEOUT", 600)
    )
    try:
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver, communication_options=options)
    except RuntimeError as error:
        raise PredRNNError(
            f"Could not start TensorFlow's MultiWorkerMirroredStrategy ({cluster.source}): {error}. "
            "It must be created before TensorFlow runs any operation; call predrnn.jobs."
            "distribution.initialize_multi_worker() first thing in the program."
        ) from None


# --------------------------------------------------------------------------- the scope
@dataclasses.dataclass(frozen=True)
class DistributionInfo:
    """What :func:`distribution_scope` set up.

    Attributes:
        mode: the resolved mode, ``"none"`` or ``"data_parallel"``.
        backend: the Keras backend.
        engine: the engine's name (``"keras.distribution.DataParallel"``,
            ``"tf.distribute.MirroredStrategy"``, ``"tf.distribute.MultiWorkerMirroredStrategy"``)
            or ``"none"``.
        num_replicas: model replicas over all workers (devices taking part).
        num_workers: processes taking part.
        worker_index: this process's rank, 0 .. num_workers - 1.
        global_batch_size: the batch of one optimizer step, over all replicas.
        strategy: the ``tf.distribute.Strategy`` (TensorFlow) or ``None``.
        distribution: the ``keras.distribution.DataParallel`` (JAX) or ``None``.
        replicated_distribution: JAX: the same mesh with every input replicated (see
            :meth:`validation_callback`).
    """

    mode: str
    backend: str
    engine: str
    num_replicas: int
    num_workers: int
    worker_index: int
    global_batch_size: int
    strategy: Any = None
    distribution: Any = None
    replicated_distribution: Any = None

    @property
    def is_chief(self) -> bool:
        """True in the one process that writes checkpoints, logs and samples (worker 0)."""
        return self.worker_index == 0

    @property
    def is_distributed(self) -> bool:
        return self.mode == "data_parallel"

    @property
    def per_replica_batch_size(self) -> int:
        return self.global_batch_size // self.num_replicas

    @property
    def per_worker_batch_size(self) -> int:
        return self.global_batch_size // self.num_workers

    def shard_dataset(self, dataset):
        """The dataset to give ``fit``: the global batches, or this process's rows of them.

        JAX with several processes feeds each process's rows (``keras.distribution`` assembles
        the global batch from them): a :class:`ProcessShard`. Everywhere else the engine splits
        the global batch itself, so ``dataset`` is returned unchanged. Keep passing the original
        dataset to callbacks that set its epoch (``dataset.epoch_callback()``); the shard reads it.
        """
        if self.backend == "jax" and self.num_workers > 1:
            return _process_shard_class()(dataset, self.num_workers, self.worker_index)
        return dataset

    def validation_callback(self, callback):
        """``callback``, made safe for ``predict``/``rollout`` on host arrays during ``fit``.

        Validation callbacks (``RolloutValidation``) call ``model.rollout`` on the same NumPy
        frames on every worker. Under ``keras.distribution.DataParallel`` (JAX) ``predict``
        splits those rows over the devices: a chunk whose rows do not divide over the devices
        fails, and with several processes each process's rows count as *its* part of a
        larger global batch, whose predictions no process can read back. The returned
        callback runs the wrapped one with every input replicated on all devices instead
        (each device computes the whole, small, validation batch; the predictions are then
        complete on every process). TensorFlow's strategies split and gather ``predict``
        themselves: ``callback`` is returned unchanged there, and without a distribution.
        """
        if self.replicated_distribution is None:
            return callback
        return _callback_in_scope_class()(callback, self.replicated_distribution)

    @contextlib.contextmanager
    def run_directory(self, workdir):
        """``workdir`` on the chief; on every other worker a temporary directory, removed on exit.

        Give the file-writing callbacks (checkpoints, CSV log, TensorBoard, samples) this
        directory on *every* worker, not only on the chief: under TensorFlow's multi-worker
        strategy ``model.save`` creates a variable, which is a collective operation that all
        workers must run together (TensorFlow's documented pattern: the other workers save
        to a temporary place). The run folder itself is then written by the chief alone.
        """
        from pathlib import Path

        if self.is_chief:
            yield Path(workdir)
            return
        import tempfile

        with tempfile.TemporaryDirectory(prefix=f"predrnn-worker{self.worker_index}-") as scratch:
            yield Path(scratch)

    def describe(self) -> str:
        if not self.is_distributed:
            return "no distribution (one device)"
        workers = f" in {self.num_workers} workers (this is worker {self.worker_index})" if self.num_workers > 1 else ""
        return (
            f"data_parallel: {self.engine}, {self.num_replicas} replicas{workers}; global batch "
            f"{self.global_batch_size} = {self.num_replicas} x {self.per_replica_batch_size}"
        )


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        import difflib

        close = difflib.get_close_matches(str(mode), MODES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"train.distribution must be one of {', '.join(MODES)}.{hint} Received: {mode!r}")


def _check_batch(global_batch_size: int, num_replicas: int, where: str) -> None:
    if isinstance(global_batch_size, bool) or not isinstance(global_batch_size, int) or global_batch_size < 1:
        raise ConfigError(f"train.batch_size must be a positive integer. Received: {global_batch_size!r}")
    if global_batch_size % num_replicas:
        lower = global_batch_size - global_batch_size % num_replicas
        raise ConfigError(
            f"train.batch_size = {global_batch_size} is the global batch and must split evenly over "
            f"the {num_replicas} replicas of {where}. Use a multiple of {num_replicas} "
            f"(e.g. {max(lower, num_replicas)} or {lower + num_replicas}), or train.distribution = 'none'."
        )


def _local_tf_devices():
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def resolve_mode(mode: str, backend: str | None = None) -> str:
    """``"none"`` or ``"data_parallel"``: what ``mode`` means on this machine and backend.

    ``"auto"`` is data-parallel with more than one local device or a multi-worker environment,
    otherwise (and always on PyTorch, which has no engine) ``"none"``. Querying the devices
    starts the backend; for TensorFlow multi-worker call :func:`initialize_multi_worker` first.
    """
    import keras

    _check_mode(mode)
    backend = backend or keras.backend.backend()
    if mode != "auto":
        return mode
    cluster = multi_worker_environment()
    if backend not in ("jax", "tensorflow"):
        if cluster is not None:
            raise ConfigError(
                f"This process is one of {cluster.num_workers} workers ({cluster.source}), but the "
                f"{backend} backend has no multi-worker engine in Keras. " + _TORCH_MESSAGE.split(": ", 1)[1]
            )
        return "none"
    if cluster is not None:
        return "data_parallel"
    if backend == "jax":
        import jax

        return "data_parallel" if jax.local_device_count() > 1 else "none"
    return "data_parallel" if len(_local_tf_devices()) > 1 else "none"


@contextlib.contextmanager
def distribution_scope(mode: str = "auto", *, global_batch_size: int):
    """Create, compile and fit the model inside this scope; yields a :class:`DistributionInfo`.

    Args:
        mode: ``"none"``, ``"auto"`` or ``"data_parallel"`` (``train.distribution``).
        global_batch_size: ``train.batch_size``: the batch of one optimizer step over all replicas.

    Raises:
        ConfigError: an unknown mode, ``data_parallel`` on PyTorch, or a global batch that does
            not divide over the replicas.
        PredRNNError: the multi-worker cluster could not be joined.
    """
    import keras

    backend = keras.backend.backend()
    _check_mode(mode)
    if mode == "data_parallel" and backend not in ("jax", "tensorflow"):
        raise ConfigError(_TORCH_MESSAGE)
    if mode != "none":
        initialize_multi_worker()
    resolved = resolve_mode(mode, backend)
    if resolved == "none":
        _check_batch(global_batch_size, 1, "one device")
        if mode == "none" and multi_worker_environment() is not None:
            print(
                "train.distribution = 'none': ignoring the multi-worker environment; every process "
                "trains on its own.",
                file=sys.stderr,
            )
        yield DistributionInfo("none", backend, "none", 1, 1, 0, global_batch_size)
        return
    if backend == "jax":
        with _jax_scope(global_batch_size) as info:
            yield info
    else:
        with _tf_scope(global_batch_size) as info:
            yield info


@contextlib.contextmanager
def _jax_scope(global_batch_size: int):
    import jax
    import keras

    devices = keras.distribution.list_devices()
    num_workers, worker_index = jax.process_count(), jax.process_index()
    where = f"{len(devices)} devices" + (f" in {num_workers} processes" if num_workers > 1 else "")
    _check_batch(global_batch_size, len(devices), where)
    # The data is sharded here (ProcessShard): each process feeds its rows of the global batch.
    distribution = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    replicated = _replicated_class()(device_mesh=distribution.device_mesh, auto_shard_dataset=False)
    info = DistributionInfo(
        "data_parallel", "jax", "keras.distribution.DataParallel", len(devices), num_workers, worker_index,
        global_batch_size, distribution=distribution, replicated_distribution=replicated,
    )
    with distribution.scope():
        yield info


@contextlib.contextmanager
def _tf_scope(global_batch_size: int):
    strategy = _STATE.get("tf_strategy")
    if strategy is not None:
        cluster = _STATE["initialized"]
        engine, num_workers, worker_index = "tf.distribute.MultiWorkerMirroredStrategy", cluster.num_workers, cluster.worker_index
        fixes = _keras_multi_worker_fixes(strategy)
    else:
        import tensorflow as tf

        devices = _local_tf_devices()
        strategy = tf.distribute.MirroredStrategy(devices)
        engine, num_workers, worker_index = "tf.distribute.MirroredStrategy", 1, 0
        fixes = contextlib.nullcontext()
    replicas = strategy.num_replicas_in_sync
    where = f"{replicas} devices" + (f" in {num_workers} workers" if num_workers > 1 else "")
    _check_batch(global_batch_size, replicas, where)
    info = DistributionInfo(
        "data_parallel", "tensorflow", engine, replicas, num_workers, worker_index, global_batch_size, strategy=strategy
    )
    with fixes, strategy.scope():
        yield info


@contextlib.contextmanager
def _keras_multi_worker_fixes(strategy):
    """Let Keras 3 ``fit`` run under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585).

    Two calls of Keras' TensorFlow trainer reach ``strategy.reduce`` in ways that only the
    single-worker strategies accept; with several workers they raise:

    - ``_maybe_symbolic_build`` reduces the first (dict-structured) batch with
      ``strategy.reduce("MEAN", batch, axis=None)`` to learn the input shapes. Here the shapes
      are read from this worker's first replica instead (only shapes are used).
    - ``reduce_per_replica`` (the per-step loss and metrics for the logs) reduces scalars with
      ``strategy.reduce("MEAN", value, axis=0)``. Here scalars are reduced with ``axis=None``:
      the mean over all replicas of all workers, as on one worker.

    Gradients, variables and the data path are untouched. The wrappers are installed while the
    scope is active and removed after it; when a Keras version no longer has these functions
    the wrappers are skipped (and the multi-worker tests show whether they are still needed).
    """
    import tensorflow as tf
    from keras import tree

    try:
        from keras.src.backend.tensorflow import trainer as tf_trainer
    except ImportError:  # pragma: no cover - a Keras without this module
        yield
        return
    original_reduce = getattr(tf_trainer, "reduce_per_replica", None)
    trainer_class = getattr(tf_trainer, "TensorFlowTrainer", None)
    original_build = getattr(trainer_class, "_maybe_symbolic_build", None)
    if original_reduce is None or original_build is None:  # pragma: no cover
        yield
        return

    def first_local(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def reduce_per_replica(values, strategy_, reduction):
        if reduction not in ("auto", "mean") or strategy_ is not strategy:
            return original_reduce(values, strategy_, reduction)

        def reduce_one(value):
            local = first_local(value)
            if getattr(getattr(local, "shape", None), "rank", None) == 0:
                return strategy.reduce("MEAN", value, axis=None)
            return original_reduce(value, strategy_, reduction)

        return tree.map_structure(reduce_one, values)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None and self._distribute_strategy is strategy:
            for _, _, batches in iterator:
                data_batch = tree.map_structure(first_local, next(batches))
                break
            iterator = None
        return original_build(self, iterator=iterator, data_batch=data_batch)

    tf_trainer.reduce_per_replica = reduce_per_replica
    trainer_class._maybe_symbolic_build = maybe_symbolic_build
    try:
        yield
    finally:
        tf_trainer.reduce_per_replica = original_reduce
        trainer_class._maybe_symbolic_build = original_build


# --------------------------------------------------------------------------- callbacks
def _replicated_class():
    """``keras.distribution.DataParallel`` whose inputs are replicated, not split (JAX)."""
    if "ReplicatedInputs" in _CLASSES:
        return _CLASSES["ReplicatedInputs"]
    import keras

    class ReplicatedInputs(keras.distribution.DataParallel):
        """The variables as in data-parallel training; every input whole on every device."""

        def get_data_layout(self, data_shape):
            return keras.distribution.TensorLayout([None] * len(data_shape), self.device_mesh)

    _CLASSES["ReplicatedInputs"] = ReplicatedInputs
    return ReplicatedInputs


def _callback_in_scope_class():
    if "CallbackInScope" in _CLASSES:
        return _CLASSES["CallbackInScope"]
    import keras

    class CallbackInScope(keras.callbacks.Callback):
        """Runs every hook of ``callback`` inside ``distribution.scope()``."""

        def __init__(self, callback, distribution):
            super().__init__()
            self.callback = callback
            self.distribution = distribution

        def set_model(self, model):
            super().set_model(model)
            self.callback.set_model(model)

        def set_params(self, params):
            super().set_params(params)
            self.callback.set_params(params)

        def _run(self, hook, *args, **kwargs):
            with self.distribution.scope():
                getattr(self.callback, hook)(*args, **kwargs)

    def forward(hook):
        def method(self, *args, **kwargs):
            self._run(hook, *args, **kwargs)

        method.__name__ = hook
        return method

    for hook in (
        "on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
        "on_train_batch_begin", "on_train_batch_end", "on_test_begin", "on_test_end",
        "on_test_batch_begin", "on_test_batch_end", "on_predict_begin", "on_predict_end",
        "on_predict_batch_begin", "on_predict_batch_end",
    ):
        setattr(CallbackInScope, hook, forward(hook))
    _CLASSES["CallbackInScope"] = CallbackInScope
    return CallbackInScope


# --------------------------------------------------------------------------- data
def __getattr__(name):
    # ProcessShard subclasses keras.utils.PyDataset; it is made on first use so that importing
    # this module does not import Keras (the backend may not be chosen yet).
    if name == "ProcessShard":
        return _process_shard_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _process_shard_class():
    if "ProcessShard" in _CLASSES:
        return _CLASSES["ProcessShard"]
    import keras
    from keras import tree

    class ProcessShard(keras.utils.PyDataset):
        """This process's rows of every global batch of ``dataset`` (JAX multi-process feeding).

        Batch ``i`` is ``dataset[i]`` cut to rows ``[k * B / n, (k + 1) * B / n)`` of every
        array, for process ``k`` of ``n``. The dataset computes the whole global batch (data and
        masks are functions of the seed and the global step), so the processes together feed
        exactly the single-process batch. ``epoch`` reads and writes the wrapped dataset's epoch.
        """

        def __init__(self, dataset, num_processes: int, process_index: int):
            super().__init__(
                workers=getattr(dataset, "workers", 1),
                use_multiprocessing=getattr(dataset, "use_multiprocessing", False),
                max_queue_size=getattr(dataset, "max_queue_size", 10),
            )
            if not 0 <= process_index < num_processes:
                raise ValueError(f"process_index must be in [0, {num_processes}). Received: {process_index}")
            self.dataset = dataset
            self.num_processes = int(num_processes)
            self.process_index = int(process_index)

        @property
        def epoch(self):
            return self.dataset.epoch

        @epoch.setter
        def epoch(self, value):
            self.dataset.epoch = value

        def __len__(self):
            return len(self.dataset)

        @property
        def num_batches(self):
            return len(self.dataset)

        def on_epoch_end(self):
            self.dataset.on_epoch_end()

        def _rows(self, array):
            batch = array.shape[0]
            if batch % self.num_processes:
                raise PredRNNError(
                    f"A batch of {batch} rows does not split over {self.num_processes} processes; "
                    "the global batch size must be a multiple of the number of processes."
                )
            size = batch // self.num_processes
            return array[self.process_index * size : (self.process_index + 1) * size]

        def __getitem__(self, index):
            return tree.map_structure(self._rows, self.dataset[index])

    ProcessShard.__module__ = __name__
    ProcessShard.__qualname__ = "ProcessShard"
    _CLASSES["ProcessShard"] = ProcessShard
    return ProcessShard
