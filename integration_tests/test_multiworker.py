"""Two worker processes on 127.0.0.1 run the training job together (TensorFlow: TF_CONFIG or
the KERAS_DISTRIBUTION_* variables and MultiWorkerMirroredStrategy; JAX: the coordinator
variables, jax.distributed and keras.distribution.DataParallel over gloo) and agree with the
single-process run; when one worker dies the other exits within a bounded time instead of
hanging.

Each test runs only in the pass of the backend it exercises. A worker is this file run as a
script; it calls ``predrnn.jobs.train.train`` on the smoke preset with
``train.distribution = "auto"``::

    TF_CONFIG='{"cluster": {"worker": ["127.0.0.1:PORT0", "127.0.0.1:PORT1"]}, "task": {"type": "worker", "index": 0}}' \\
        KERAS_BACKEND=tensorflow python integration_tests/test_multiworker.py train WORKDIR STEPS auto
"""

from __future__ import annotations

import csv
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
    "train.batch_size=4",
    "train.steps_per_epoch=1",
    "train.progress=false",
    "sampling.schedule=constant",
    "sampling.future_probability=0.5",
]
START_TIMEOUT = 300  # seconds for the workers to join, compile and finish their steps
EXIT_TIMEOUT = 120  # seconds for the survivor to exit after its peer died


def run_training(workdir, steps, distribution):
    """The process's part: the training job, as ``predrnn train`` runs it."""
    from predrnn.jobs.config import load_config
    from predrnn.jobs.train import train

    config = load_config("smoke", OVERRIDES + [f"train.steps={steps}", f"train.distribution={distribution}"])
    summary = train(config, workdir)
    print(f"finished: step {summary.get('step')}", flush=True)


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


def _environment(index, ports, scratch, tf_config=True):
    """The environment of worker ``index`` (``None``: the single-process reference). TensorFlow
    workers get a TF_CONFIG, or with ``tf_config=False`` the KERAS_DISTRIBUTION_* variables."""
    addresses = [f"127.0.0.1:{port}" for port in ports]
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1", TMPDIR=str(scratch))
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


def launch(tmp_path, steps, with_reference=False, tf_config=True):
    """Start two workers training into ``tmp_path/run`` (and the single-process run into
    ``tmp_path/reference``); returns the processes and their log files."""
    ports = _free_ports(2)
    scratch = tmp_path / "tmp"  # the workers' temporary directories
    scratch.mkdir()
    commands = [
        (["train", str(tmp_path / "run"), str(steps), "auto"], _environment(i, ports, scratch, tf_config)) for i in range(2)
    ]
    if with_reference:
        commands.append((["train", str(tmp_path / "reference"), str(steps), "none"], _environment(None, ports, scratch)))
    processes, logs = [], []
    for index, (arguments, env) in enumerate(commands):
        logs.append(tmp_path / f"process_{index}.log")
        with open(logs[-1], "w") as log:  # the child keeps its own handle
            processes.append(
                subprocess.Popen([sys.executable, __file__, *arguments], env=env, stdout=log, stderr=subprocess.STDOUT)
            )
    return processes, logs


def _tail(path, chars=3000):
    text = Path(path).read_text(errors="replace")
    return "\n".join(line for line in text[-chars:].splitlines() if "cuda" not in line)


def _stop(processes):
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def _history(run):
    with open(run / "history.csv") as handle:
        return list(csv.DictReader(handle))


multi_worker_backends = pytest.mark.skipif(
    BACKEND not in ("tensorflow", "jax"), reason="runs in the TensorFlow and JAX passes of the suite"
)


@multi_worker_backends
def test_two_workers_agree_with_one_process(tmp_path):
    steps = 2
    processes, logs = launch(tmp_path, steps, with_reference=True)
    try:
        for process, log in zip(processes, logs):
            try:
                process.wait(timeout=START_TIMEOUT)
            except subprocess.TimeoutExpired:
                pytest.fail(f"a process did not finish in {START_TIMEOUT} s:\n{_tail(log)}")
            assert process.returncode == 0, _tail(log)
    finally:
        _stop(processes)
    for log in logs:
        assert f"finished: step {steps}" in Path(log).read_text(), _tail(log)
    run, reference = tmp_path / "run", tmp_path / "reference"
    engine = "MultiWorkerMirroredStrategy" if BACKEND == "tensorflow" else "DataParallel"
    for index in range(2):
        text = Path(logs[index]).read_text()
        assert f"{engine}, 2 replicas in 2 workers (this is worker {index})" in text, _tail(logs[index])

    from predrnn.models import load_model

    # The chief's checkpoint (it loads without a distribution) matches the single-process run.
    got = load_model(run / "checkpoints" / "last.keras").get_weights()
    expected = load_model(reference / "checkpoints" / "last.keras").get_weights()
    for x, y in zip(got, expected):
        np.testing.assert_allclose(x, y, atol=1e-5)
    assert json.loads((run / "checkpoints" / "state.json").read_text())["step"] == steps
    # The logged global loss and the validation rollouts too, epoch by epoch.
    for row, single in zip(_history(run), _history(reference), strict=True):
        for key in ("loss", "val_mse_per_frame", "ss_future"):
            assert float(row[key]) == pytest.approx(float(single[key]), rel=1e-4), (key, row, single)
    # Only the chief wrote the run folder; the other worker's scratch folder is gone.
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in reference.iterdir())
    assert not [p for p in (tmp_path / "tmp").iterdir() if p.name.startswith("predrnn-worker")]


@multi_worker_backends
def test_a_dead_worker_stops_the_other(tmp_path):
    # (TensorFlow: this time from the KERAS_DISTRIBUTION_* variables instead of TF_CONFIG.)
    processes, logs = launch(tmp_path, steps=10_000, tf_config=False)
    state = tmp_path / "run" / "checkpoints" / "state.json"  # written after both trained a step
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not state.exists():
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
    if len(sys.argv) == 5 and sys.argv[1] == "train":
        run_training(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        sys.exit(f"usage: {sys.argv[0]} train WORKDIR STEPS DISTRIBUTION")
