"""TensorFlow: the local devices of ``tf.distribute.MirroredStrategy`` and the
``MultiWorkerMirroredStrategy`` of a cluster.
"""

from __future__ import annotations

from predrnn.errors import ConfigError, PredRNNError
from predrnn.jobs.distribution.environment import MultiWorkerEnvironment, _env_seconds


def _local_tf_devices():
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


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
                task_type="worker",
                task_id=cluster.worker_index,
                rpc_layer="grpc",
            )
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=_env_seconds("PREDRNN_COLLECTIVE_TIMEOUT", 600))
    try:
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver, communication_options=options)
    except RuntimeError as error:
        raise PredRNNError(
            f"Could not start TensorFlow's MultiWorkerMirroredStrategy ({cluster.source}): {error}. "
            "It must be created before TensorFlow runs any operation; call predrnn.jobs."
            "distribution.initialize_multi_worker() first thing in the program."
        ) from None
