"""The distribution modes, :func:`distribution_scope` and the :class:`DistributionInfo` it yields,
and joining a multi-worker cluster (:func:`initialize_multi_worker`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from typing import Any

from predrnn.errors import ConfigError
from predrnn.jobs.distribution.environment import MultiWorkerEnvironment, multi_worker_environment
from predrnn.jobs.distribution.jax_backend import (
    _callback_in_scope_class,
    _initialize_jax,
    _process_shard_class,
    _replicated_class,
)
from predrnn.jobs.distribution.keras_fixes import _keras_multi_worker_fixes
from predrnn.jobs.distribution.tensorflow_backend import _local_tf_devices, _multi_worker_strategy

MODES = ("none", "auto", "data_parallel")

_TORCH_MESSAGE = (
    "train.distribution = 'data_parallel' is not available on the PyTorch backend: Keras 3 has "
    "no data-parallel engine for torch. Train on several devices with the JAX backend "
    "(keras.distribution.DataParallel) or the TensorFlow backend (tf.distribute), e.g. "
    "`predrnn train ... --backend jax`, or set train.distribution = 'none'."
)


_STATE: dict[str, Any] = {}  # "initialized": the environment joined; "tf_strategy": MWMS (one per process)


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
                "train.distribution = 'none': ignoring the multi-worker environment; every process trains on its own.",
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
        "data_parallel",
        "jax",
        "keras.distribution.DataParallel",
        len(devices),
        num_workers,
        worker_index,
        global_batch_size,
        distribution=distribution,
        replicated_distribution=replicated,
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
