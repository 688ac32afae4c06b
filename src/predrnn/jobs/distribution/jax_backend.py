"""JAX: joining the processes with ``jax.distributed``, and the Keras classes a JAX data-parallel
run needs (inputs replicated for validation, callbacks run in a distribution scope, each
process's rows of a global batch), made on first use so that importing them imports no Keras.
"""

from __future__ import annotations

from predrnn.errors import PredRNNError
from predrnn.jobs.distribution.environment import MultiWorkerEnvironment, _env_seconds

_CLASSES: dict[str, type] = {}  # subclasses of Keras classes, made on first use


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
        "on_train_begin",
        "on_train_end",
        "on_epoch_begin",
        "on_epoch_end",
        "on_train_batch_begin",
        "on_train_batch_end",
        "on_test_begin",
        "on_test_end",
        "on_test_batch_begin",
        "on_test_batch_end",
        "on_predict_begin",
        "on_predict_end",
        "on_predict_batch_begin",
        "on_predict_batch_end",
    ):
        setattr(CallbackInScope, hook, forward(hook))
    _CLASSES["CallbackInScope"] = CallbackInScope
    return CallbackInScope


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

    ProcessShard.__module__ = __package__  # predrnn.jobs.distribution.ProcessShard
    ProcessShard.__qualname__ = "ProcessShard"
    _CLASSES["ProcessShard"] = ProcessShard
    return ProcessShard
