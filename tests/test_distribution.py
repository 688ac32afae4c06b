"""Data-parallel training (predrnn.jobs.distribution) against the single-device run.

The training job (``predrnn.jobs.train.train``) on two devices must match it on one device
with the same global batch and seed, and a checkpoint of either must continue under the other.

The virtual-device comparisons run in a subprocess, because the devices must be configured
before the backend starts: ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` for JAX, two
logical CPU devices for TensorFlow. Each runs only in the pass of the backend it exercises
(CI runs this file once per backend). Run one by hand with::

    KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2 \\
        python tests/test_distribution.py compare /tmp/report.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from predrnn.errors import ConfigError
from predrnn.jobs.distribution import (
    DistributionInfo,
    distribution_scope,
    multi_worker_environment,
    resolve_mode,
)

BACKEND = keras.backend.backend()
TIMEOUT = 300  # seconds for one subprocess; nothing may hang
# The smoke preset with a global batch of 4 (2 per replica on 2 devices), one step per epoch,
# and teacher-forcing masks that mix true frames and predictions.
OVERRIDES = [
    "train.batch_size=4",
    "train.steps=2",
    "train.steps_per_epoch=1",
    "train.progress=false",
    "sampling.schedule=constant",
    "sampling.future_probability=0.5",  # masks of 0s and 1s
]


# --------------------------------------------------------------------------- the helper
def fit_epochs(config, mode, epochs, *, initial_epoch=0, load=None):
    """Build (or load), compile and fit ``config`` with the training job's building blocks
    under ``distribution_scope(mode)``: epochs ``initial_epoch .. epochs-1``.

    Returns ``(info, weights after the last epoch)``.
    """
    from predrnn.jobs.train import _compile, build_datasets, build_model
    from predrnn.models import load_model

    t = config.train
    keras.utils.set_random_seed(t.seed)
    with distribution_scope(mode, global_batch_size=t.batch_size) as info:
        if load is not None:
            model = load_model(load)
        else:
            model = build_model(config.model)
            _compile(model, t)
        dataset, _ = build_datasets(config, initial_epoch)
        model.fit(
            info.shard_dataset(dataset),
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=[dataset.epoch_callback()],
            shuffle=False,
            verbose=0,
        )
        weights = [np.array(keras.ops.convert_to_numpy(w)) for w in model.get_weights()]
    return info, weights


def max_difference(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def _configure_two_devices():
    """Two devices in this process, before the backend starts (the subprocess entry point)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def _history(run):
    import csv

    with open(run / "history.csv") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def compare(report_path):
    """The training job on one device and on two, and their checkpoints continued under the
    other setting; a JSON report."""
    from predrnn.jobs.config import load_config
    from predrnn.jobs.train import train
    from predrnn.models import load_model

    _configure_two_devices()
    work = Path(report_path).parent
    # 3 validation sequences: the rollouts' rows do not split over 2 devices.
    overrides = OVERRIDES + ["data.validation_sequences=3"]
    report = {}
    # The global batch must split over the replicas.
    try:
        with distribution_scope("data_parallel", global_batch_size=3):
            pass
    except ConfigError as error:
        report["odd_batch_error"] = str(error)
    report["auto"] = resolve_mode("auto")
    train(load_config("smoke", overrides + ["train.distribution=none"]), work / "single")
    train(load_config("smoke", overrides + ["train.distribution=data_parallel"]), work / "parallel")
    single = load_model(work / "single" / "checkpoints" / "last.keras").get_weights()
    parallel = load_model(work / "parallel" / "checkpoints" / "last.keras").get_weights()
    # One more epoch from each checkpoint, under the other setting.
    config = load_config("smoke", overrides)
    continued_info, from_parallel = fit_epochs(
        config, "none", 3, initial_epoch=2, load=work / "parallel" / "checkpoints" / "last.keras"
    )
    resumed_info, from_single = fit_epochs(
        config, "data_parallel", 3, initial_epoch=2, load=work / "single" / "checkpoints" / "last.keras"
    )
    report.update(
        engine=resumed_info.engine,
        replicas=resumed_info.num_replicas,
        per_replica_batch=resumed_info.per_replica_batch_size,
        continued_engine=continued_info.engine,
        parallel_vs_single=max_difference(parallel, single),
        history=[_history(work / "single"), _history(work / "parallel")],
        moved=max_difference(from_single, single),
        continued_parallel_vs_single=max_difference(from_single, from_parallel),
        run_folders=[sorted(p.name for p in (work / name).iterdir()) for name in ("single", "parallel")],
    )
    Path(report_path).write_text(json.dumps(report, indent=2))


def _run_compare(tmp_path, env):
    report = tmp_path / "report.json"
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="3", **env)
    result = subprocess.run(
        [sys.executable, __file__, "compare", str(report)],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(report.read_text())


def _check_report(report, engine):
    assert report["engine"] == engine and report["continued_engine"] == "none"
    assert report["replicas"] == 2 and report["per_replica_batch"] == 2
    assert report["auto"] == "data_parallel"
    assert "must split evenly over the 2 replicas" in report["odd_batch_error"]
    # The training job: same weights, logged loss, sampling and validation metrics.
    assert report["parallel_vs_single"] < 1e-5, report
    single, parallel = report["history"]
    assert len(single) == len(parallel) == 2
    for a, b in zip(single, parallel):
        for key in ("loss", "ss_future", "val_mse_per_frame", "val_ssim"):
            assert b[key] == pytest.approx(a[key], rel=1e-4), (key, a, b)
    assert report["run_folders"][0] == report["run_folders"][1]
    # Each checkpoint continues under the other setting to the same weights.
    assert report["moved"] > 1e-4  # the extra epoch changed the weights: the check means something
    assert report["continued_parallel_vs_single"] < 1e-5, report


@pytest.mark.skipif(BACKEND != "jax", reason="runs in the JAX pass of the suite")
def test_jax_data_parallel_on_two_devices_matches_one_device(tmp_path):
    # (XLA's CPU optimizations take 4x longer to compile than these few steps run.)
    flags = "--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=0"
    report = _run_compare(tmp_path, {"XLA_FLAGS": flags})
    _check_report(report, "keras.distribution.DataParallel")


@pytest.mark.skipif(BACKEND != "tensorflow", reason="runs in the TensorFlow pass of the suite")
def test_tensorflow_mirrored_on_two_devices_matches_one_device(tmp_path):
    report = _run_compare(tmp_path, {})
    _check_report(report, "tf.distribute.MirroredStrategy")


# --------------------------------------------------------------------------- in-process
def test_none_is_one_device_and_the_chief():
    with distribution_scope("none", global_batch_size=3) as info:
        assert isinstance(info, DistributionInfo)
        assert (info.mode, info.num_replicas, info.num_workers, info.is_chief) == ("none", 1, 1, True)
        dataset = object()
        assert info.shard_dataset(dataset) is dataset


def test_unknown_mode_names_the_choices():
    with pytest.raises(ConfigError, match="none, auto, data_parallel.*Did you mean 'data_parallel'"):
        with distribution_scope("data_paralel", global_batch_size=4):
            pass


@pytest.mark.skipif(BACKEND == "torch", reason="the PyTorch pass checks its own error instead")
def test_auto_on_one_device_is_none(monkeypatch):
    for name in ("TF_CONFIG", "KERAS_DISTRIBUTION_NUM_PROCESSES", "KERAS_DISTRIBUTION_JOB_ADDRESSES", "SLURM_STEP_NUM_TASKS"):
        monkeypatch.delenv(name, raising=False)
    assert resolve_mode("auto") == "none"
    with distribution_scope("auto", global_batch_size=3) as info:
        assert info.mode == "none" and info.is_chief


@pytest.mark.skipif(BACKEND != "torch", reason="runs in the PyTorch pass of the suite")
def test_torch_has_no_data_parallel_engine(monkeypatch):
    with pytest.raises(ConfigError, match="not available on the PyTorch backend.*--backend jax"):
        with distribution_scope("data_parallel", global_batch_size=4):
            pass
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert resolve_mode("auto") == "none"
    monkeypatch.setenv("KERAS_DISTRIBUTION_JOB_ADDRESSES", "127.0.0.1:1234")
    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "2")
    monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "1")
    with pytest.raises(ConfigError, match="one of 2 workers.*no multi-worker engine"):
        with distribution_scope("auto", global_batch_size=4):
            pass


def test_multi_worker_environments():
    tf_config = {"cluster": {"worker": ["h0:1", "h1:2", "h2:3"]}, "task": {"type": "worker", "index": 2}}
    cluster = multi_worker_environment({"TF_CONFIG": json.dumps(tf_config)})
    assert (cluster.source, cluster.num_workers, cluster.worker_index) == ("TF_CONFIG", 3, 2)
    assert cluster.addresses == ("h0:1", "h1:2", "h2:3") and cluster.coordinator == "h0:1"
    with_chief = {"cluster": {"chief": ["c:0"], "worker": ["w:1"]}, "task": {"type": "worker", "index": 0}}
    assert multi_worker_environment({"TF_CONFIG": json.dumps(with_chief)}).worker_index == 1
    one = {"cluster": {"worker": ["h0:1"]}, "task": {"type": "worker", "index": 0}}
    assert multi_worker_environment({"TF_CONFIG": json.dumps(one)}) is None

    keras_env = {
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:1234",
        "KERAS_DISTRIBUTION_NUM_PROCESSES": "4",
        "KERAS_DISTRIBUTION_PROCESS_ID": "3",
    }
    cluster = multi_worker_environment(keras_env)
    assert (cluster.source, cluster.num_workers, cluster.worker_index) == ("KERAS_DISTRIBUTION", 4, 3)
    assert cluster.coordinator == "10.0.0.1:1234" and cluster.addresses is None

    slurm = {"SLURM_STEP_NUM_TASKS": "8", "SLURM_PROCID": "5", "SLURM_JOB_ID": "77"}
    cluster = multi_worker_environment(slurm)
    assert (cluster.source, cluster.num_workers, cluster.worker_index) == ("SLURM", 8, 5)
    assert multi_worker_environment({"SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0"}) is None
    assert multi_worker_environment({}) is None


@pytest.mark.parametrize(
    "environ, match",
    [
        ({"TF_CONFIG": "{not json"}, "TF_CONFIG is not valid JSON"),
        (
            {
                "TF_CONFIG": json.dumps(
                    {"cluster": {"worker": ["a:1", "b:2"], "ps": ["p:3"]}, "task": {"type": "worker", "index": 0}}
                )
            },
            "jobs \\['ps'\\]",
        ),
        (
            {"TF_CONFIG": json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 5}})},
            "is not in its cluster",
        ),
        ({"KERAS_DISTRIBUTION_NUM_PROCESSES": "2"}, "KERAS_DISTRIBUTION_JOB_ADDRESSES, KERAS_DISTRIBUTION_PROCESS_ID is not set"),
        (
            {
                "KERAS_DISTRIBUTION_JOB_ADDRESSES": "a:1",
                "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
                "KERAS_DISTRIBUTION_PROCESS_ID": "2",
            },
            "must be in \\[0",
        ),
        (
            {
                "KERAS_DISTRIBUTION_JOB_ADDRESSES": "a:1,b:2,c:3",
                "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
                "KERAS_DISTRIBUTION_PROCESS_ID": "0",
            },
            "lists 3 addresses",
        ),
        (
            {
                "KERAS_DISTRIBUTION_JOB_ADDRESSES": "a:1",
                "KERAS_DISTRIBUTION_NUM_PROCESSES": "two",
                "KERAS_DISTRIBUTION_PROCESS_ID": "0",
            },
            "must be an integer",
        ),
    ],
)
def test_malformed_multi_worker_environments_are_config_errors(environ, match):
    with pytest.raises(ConfigError, match=match):
        multi_worker_environment(environ)


def test_process_shards_add_up_to_the_global_batch():
    from predrnn.data.datasets import VideoPredictionDataset
    from predrnn.jobs.distribution import ProcessShard
    from predrnn.schedules import get_schedule

    frames = np.random.default_rng(0).random((12, 6, 4, 4, 1)).astype("float32")
    dataset = VideoPredictionDataset(
        frames,
        4,
        3,
        3,
        schedule=get_schedule("linear", start=1.0, end=0.0, rate=0.25),
        seed=5,
        steps_per_epoch=3,
        initial_epoch=1,
    )
    shards = [ProcessShard(dataset, 2, k) for k in range(2)]
    assert len(shards[0]) == 3 and shards[1].epoch == 1
    shards[0].epoch = 2  # writes through to the dataset
    assert dataset.epoch == 2
    (x, y), parts = dataset[1], [shard[1] for shard in shards]
    for key in ("frames", "teacher_forcing_mask"):
        np.testing.assert_array_equal(np.concatenate([p[0][key] for p in parts]), x[key])
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), y)
    assert parts[0][1].shape[0] == 2
    with pytest.raises(ValueError, match="process_index"):
        ProcessShard(dataset, 2, 2)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "compare":
        compare(sys.argv[2])
    else:
        sys.exit(f"usage: {sys.argv[0]} compare REPORT.json")
