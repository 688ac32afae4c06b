"""What Keras 3 needs to finish ``fit`` under TensorFlow's ``MultiWorkerMirroredStrategy``
(keras-team/keras#20585), installed only while a multi-worker scope is active.
"""

from __future__ import annotations

import contextlib


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
