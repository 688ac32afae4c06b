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
:mod:`~predrnn.jobs.distribution.keras_fixes`. Nothing else of Keras or TensorFlow is changed.

Modules: ``environment`` (the cluster of this process), ``scope`` (the modes,
:func:`distribution_scope`, :func:`initialize_multi_worker`), ``jax_backend`` and
``tensorflow_backend`` (what each engine needs), ``keras_fixes`` (the multi-worker wrappers).
"""

from predrnn.jobs.distribution.environment import MultiWorkerEnvironment, multi_worker_environment
from predrnn.jobs.distribution.jax_backend import _process_shard_class
from predrnn.jobs.distribution.scope import (
    MODES,
    DistributionInfo,
    distribution_scope,
    initialize_multi_worker,
    resolve_mode,
)

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


def __getattr__(name):
    # ProcessShard subclasses keras.utils.PyDataset; it is made on first use so that importing
    # this module does not import Keras (the backend may not be chosen yet).
    if name == "ProcessShard":
        return _process_shard_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
