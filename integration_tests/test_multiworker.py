"""Two worker processes on 127.0.0.1 train together (TensorFlow: TF_CONFIG and
MultiWorkerMirroredStrategy; JAX: the KERAS_DISTRIBUTION_* variables, jax.distributed and
keras.distribution.DataParallel over gloo) and agree with the single-process run; when one
worker dies the other exits within a bounded time instead of hanging.

Each test runs only in the pass of the backend it exercises. A worker is this file run as a
script::

    TF_CONFIG='{"cluster": {"worker": ["127.0.0.1:PORT0", "127.0.0.1:PORT1"]}, "task": {"type": "worker", "index": 0}}' \\
        KERAS_BACKEND=tensorflow python integration_tests/test_multiworker.py worker WORKDIR OUT EPOCHS

It trains the smoke preset as the training job does under ``distribution = "auto"``: only
worker 0 (the chief) writes the run folder; every worker runs the validation rollouts (with
JAX they are computations over all processes).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

BACKEND = keras.backend.backend()
# Global batch 4 over 2 workers; one step per epoch; masks that mix true frames and predictions.
OVERRIDES = [
    "train.batch_size=4", "train.steps_per_epoch=1", "train.progress=false",
    "sampling.schedule=constant", "sampling.future_probability=0.5",
]
START_TIMEOUT = 300  # seconds for the workers to join, compile and finish two steps
EXIT_TIMEOUT = 120  # seconds for the survivor to exit after its peer died


# --------------------------------------------------------------------------- the worker
def worker(workdir, out, epochs):
    from predrnn.jobs.distribution import distribution_scope, initialize_multi_worker

    initialize_multi_worker()  # first thing: before the backend runs anything
    from predrnn.jobs.callbacks import RolloutValidation, RunCheckpoint, SamplingProbabilityLogger
    from predrnn.jobs.config import load_config
    from predrnn.jobs.train import _compile, build_datasets, build_model

    config = load_config("smoke", OVERRIDES + [f"train.steps={epochs}"])
    t, d = config.train, config.data
    out, workdir = Path(out), Path(workdir)
    keras.utils.set_random_seed(t.seed)
    with distribution_scope("auto", global_batch_size=t.batch_size) as info:
        rank = info.worker_index
        print(f"worker {rank}: {info.describe()}", flush=True)
        model = build_model(config.model)
        _compile(model, t)
        dataset, validation = build_datasets(config)

        class Snapshot(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                (out / f"trained_{rank}").touch()  # this worker is past its first step

            def on_epoch_end(self, epoch, logs=None):
                weights = [np.array(keras.ops.convert_to_numpy(w)) for w in self.model.get_weights()]
                np.savez(out / f"weights_{rank}_{epoch}.npz", *weights)
                (out / f"logs_{rank}_{epoch}.json").write_text(json.dumps({k: float(v) for k, v in logs.items()}))
                print(f"worker {rank}: epoch {epoch} done", flush=True)

        # As the training job: every worker runs every callback; the chief writes into the
        # run folder, the others into a temporary directory (see DistributionInfo.run_directory).
        with info.run_directory(workdir) as directory:
            callbacks = [
                dataset.epoch_callback(),
                SamplingProbabilityLogger(dataset),
                info.validation_callback(
                    RolloutValidation(
                        validation, d.input_length, d.output_length, batch_size=t.batch_size,
                        samples_dir=directory / "samples", steps_per_epoch=t.steps_per_epoch,
                    )
                ),
                RunCheckpoint(directory / "checkpoints"),
                keras.callbacks.CSVLogger(str(directory / "history.csv")),
            ]
            if BACKEND == "tensorflow":
                callbacks.append(keras.callbacks.TensorBoard(str(directory / "logs"), write_graph=False))
            callbacks.append(Snapshot())
            model.fit(
                info.shard_dataset(dataset), epochs=epochs, callbacks=callbacks, shuffle=False, verbose=0
            )
    print(f"worker {rank}: finished", flush=True)


# --------------------------------------------------------------------------- the launcher
def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _cluster_env(index, ports, tf_config=True):
    """The environment of worker ``index`` (``None``: the single-process reference). TensorFlow
    workers get a TF_CONFIG, or with ``tf_config=False`` the KERAS_DISTRIBUTION_* variables."""
    addresses = [f"127.0.0.1:{port}" for port in ports]
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    for name in ("TF_CONFIG", "KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES", "SLURM_STEP_NUM_TASKS"):
        env.pop(name, None)
    # XLA's CPU optimizations take 4x longer to compile than these few steps run.
    env["XLA_FLAGS"] = "--xla_backend_optimization_level=0"
    if index is None:
        return env
    if BACKEND == "tensorflow" and tf_config:
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})
    else:  # TensorFlow needs every address, JAX only the coordinator's
        env.update(
            KERAS_DISTRIBUTION_JOB_ADDRESSES=",".join(addresses) if BACKEND == "tensorflow" else addresses[0],
            KERAS_DISTRIBUTION_NUM_PROCESSES=str(len(ports)),
            KERAS_DISTRIBUTION_PROCESS_ID=str(index),
        )
    # A dead peer is noticed within seconds (JAX heartbeats); collectives never wait forever.
    env.update(PREDRNN_HEARTBEAT_TIMEOUT="10", PREDRNN_COLLECTIVE_TIMEOUT="240", PREDRNN_INIT_TIMEOUT="120")
    return env


def launch(tmp_path, epochs, with_reference=False, tf_config=True):
    """Start two workers (and the single-process reference run); returns the processes, their
    log files, the run folder and the folder of the weight snapshots."""
    workdir, out = tmp_path / "run", tmp_path / "out"
    workdir.mkdir()
    out.mkdir()
    ports = _free_ports(2)
    commands = [
        (["worker", str(workdir), str(out), str(epochs)], _cluster_env(index, ports, tf_config)) for index in range(2)
    ]
    if with_reference:
        commands.append((["reference", str(out), str(epochs)], _cluster_env(None, ports)))
    processes, logs = [], []
    for index, (arguments, env) in enumerate(commands):
        logs.append(tmp_path / f"process_{index}.log")
        with open(logs[-1], "w") as log:  # the child keeps its own handle
            processes.append(
                subprocess.Popen([sys.executable, __file__, *arguments], env=env, stdout=log, stderr=subprocess.STDOUT)
            )
    return processes, logs, workdir, out


def _tail(path, chars=3000):
    text = Path(path).read_text(errors="replace")
    return "\n".join(line for line in text[-chars:].splitlines() if "cuda" not in line)


def _stop(processes):
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


multi_worker_backends = pytest.mark.skipif(
    BACKEND not in ("tensorflow", "jax"), reason="runs in the TensorFlow and JAX passes of the suite"
)


def reference(out, epochs):
    """The single-process run of the same config: weights and loss after each epoch, saved
    to ``out/reference.npz`` (run as a script, with the workers' XLA flags)."""
    from predrnn.jobs.config import load_config
    from predrnn.jobs.train import _compile, build_datasets, build_model

    config = load_config("smoke", OVERRIDES + [f"train.steps={epochs}"])
    keras.utils.set_random_seed(config.train.seed)
    model = build_model(config.model)
    _compile(model, config.train)
    dataset, _ = build_datasets(config)
    arrays = {}
    for epoch in range(epochs):
        history = model.fit(
            dataset, epochs=epoch + 1, initial_epoch=epoch, callbacks=[dataset.epoch_callback()], shuffle=False, verbose=0
        )
        for i, weight in enumerate(model.get_weights()):
            arrays[f"epoch{epoch}_{i}"] = weight
        arrays[f"loss{epoch}"] = np.array(history.history["loss"][-1])
    np.savez(Path(out) / "reference.npz", **arrays)


def _load_reference(out, epochs):
    saved = np.load(Path(out) / "reference.npz")
    count = sum(1 for key in saved.files if key.startswith("epoch0_"))
    weights = [[saved[f"epoch{e}_{i}"] for i in range(count)] for e in range(epochs)]
    return weights, [float(saved[f"loss{e}"]) for e in range(epochs)]


@multi_worker_backends
def test_two_workers_agree_with_one_process(tmp_path):
    epochs = 2
    processes, logs, workdir, out = launch(tmp_path, epochs, with_reference=True)
    try:
        for process, log in zip(processes, logs):
            try:
                process.wait(timeout=START_TIMEOUT)
            except subprocess.TimeoutExpired:
                pytest.fail(f"a worker did not finish in {START_TIMEOUT} s:\n{_tail(log)}")
            assert process.returncode == 0, _tail(log)
    finally:
        _stop(processes)
    reference, losses = _load_reference(out, epochs)
    for index in range(2):
        assert f"worker {index}: finished" in Path(logs[index]).read_text()
        for epoch in range(epochs):
            snapshot = np.load(out / f"weights_{index}_{epoch}.npz")
            got = [snapshot[f"arr_{i}"] for i in range(len(snapshot.files))]
            for x, y in zip(got, reference[epoch]):
                np.testing.assert_allclose(x, y, atol=1e-5, err_msg=f"worker {index}, epoch {epoch}")
    logs_0 = json.loads((out / "logs_0_1.json").read_text())
    logs_1 = json.loads((out / "logs_1_1.json").read_text())
    assert logs_0["loss"] == pytest.approx(losses[-1], rel=1e-4)  # the global loss, on both workers
    assert logs_1["loss"] == pytest.approx(losses[-1], rel=1e-4)
    assert logs_0["val_mse_per_frame"] == pytest.approx(logs_1["val_mse_per_frame"], rel=1e-5)
    # Only the chief wrote the run folder, and its checkpoint loads without a distribution.
    expected = ["checkpoints", "history.csv", "samples"] + (["logs"] if BACKEND == "tensorflow" else [])
    assert sorted(p.name for p in workdir.iterdir()) == sorted(expected)
    assert len((workdir / "history.csv").read_text().splitlines()) == epochs + 1
    from predrnn.models import load_model

    restored = load_model(workdir / "checkpoints" / "last.keras")
    for x, y in zip(restored.get_weights(), reference[-1]):
        np.testing.assert_allclose(x, y, atol=1e-5)
    assert json.loads((workdir / "checkpoints" / "state.json").read_text())["step"] == epochs


@multi_worker_backends
def test_a_dead_worker_stops_the_other(tmp_path):
    # (TensorFlow: this time from the KERAS_DISTRIBUTION_* variables instead of TF_CONFIG.)
    processes, logs, _, out = launch(tmp_path, epochs=10_000, tf_config=False)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not all((out / f"trained_{i}").exists() for i in range(2)):  # both are training
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                pytest.fail("the workers did not start training:\n" + "\n---\n".join(_tail(log) for log in logs))
            time.sleep(0.5)
        processes[1].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        try:
            processes[0].wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker 0 still runs {EXIT_TIMEOUT} s after worker 1 died:\n{_tail(logs[0])}")
        elapsed = time.monotonic() - killed
    finally:
        _stop(processes)
    assert processes[0].returncode != 0, _tail(logs[0])
    print(f"worker 0 exited with {processes[0].returncode} {elapsed:.0f} s after worker 1 was killed")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) == 4 and sys.argv[1] == "reference":
        reference(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(f"usage: {sys.argv[0]} worker WORKDIR OUT EPOCHS | reference OUT EPOCHS")
