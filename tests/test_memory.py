import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from predrnn import PredRNN
from predrnn.acceleration import memory

BACKEND = keras.backend.backend()
GLIBC = memory._malloc_trim() is not None


def _resident_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


@pytest.fixture
def releases(monkeypatch):
    """Counts the calls of :func:`predrnn.acceleration.memory.release_freed_memory`."""
    calls = []
    original = memory.release_freed_memory
    monkeypatch.setattr(memory, "release_freed_memory", lambda: calls.append(1) or original())
    return calls


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_release_returns_a_fragmented_heap_to_the_system():
    """Freed blocks between live ones stay resident until they are released."""
    blocks = [bytes(4000) for _ in range(40_000)]  # ~160 MB of heap blocks (over pymalloc's 512 bytes)
    kept = blocks[::16]
    del blocks
    before = _resident_mb()
    assert memory.release_freed_memory() is True
    assert before - _resident_mb() > 60, "malloc_trim returned less than 60 of ~150 freed MB"
    assert len(kept) == 2500


def test_release_does_nothing_without_glibc(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    memory._malloc_trim.cache_clear()
    try:
        assert memory.release_freed_memory() is False
    finally:
        monkeypatch.undo()
        memory._malloc_trim.cache_clear()


def test_released_after_first_call_releases_once_and_wraps_once(releases):
    calls = []

    def step(x, scale=1):
        calls.append(x)
        return x * scale

    wrapped = memory.released_after_first_call(step)
    assert memory.released_after_first_call(wrapped) is wrapped
    assert memory.released_after_first_call(None) is None
    assert [wrapped(2), wrapped(3, scale=2), wrapped(4)] == [2, 6, 4]
    assert calls == [2, 3, 4]
    assert len(releases) == 1


@pytest.mark.skipif(BACKEND != "jax" or not GLIBC, reason="a jax.monitoring listener")
def test_jax_compilations_release_the_heap(releases):
    import jax

    memory.release_after_jax_compiles()
    memory.release_after_jax_compiles()  # registers once
    jax.jit(lambda x: x * 3.0 + 1.0)(np.ones(3, "float32"))  # a new function: compiled
    assert len(releases) == 1
    jax.jit(lambda x: x * 3.0 - 2.0)(np.ones(5, "float32"))
    assert len(releases) == 2


@pytest.mark.skipif(BACKEND == "torch", reason="PyTorch compiles nothing")
def test_a_models_first_train_and_predict_calls_release_the_heap(rng, releases):
    """TensorFlow: once after the first call of each function; JAX: after each compilation
    (a new shape compiles again). Training and predictions are unchanged."""
    frames = rng.random((2, 4, 8, 8, 1)).astype("float32")
    inputs = {"frames": frames, "teacher_forcing_mask": np.zeros((2, 2), "float32")}
    model = PredRNN(filters=(4,), kernel_size=3, patch_size=2)
    model.compile()
    model.train_on_batch(inputs, frames[:, 1:])
    after_first = len(releases)
    assert after_first >= 1
    model.train_on_batch(inputs, frames[:, 1:])
    assert len(releases) == after_first  # compiled once, released once
    rolled = model.rollout(frames[:, :2], 2)
    assert len(releases) > after_first
    assert rolled.shape == (2, 2, 8, 8, 1)
    if BACKEND == "tensorflow":
        assert model.train_function._releases_after_first_call
        assert model.make_train_function() is model.train_function  # not wrapped again


_COUNT_ARENAS = r"""
import ctypes, sys, tempfile, threading
from predrnn.acceleration import memory
print("limited", memory.limit_malloc_arenas(int(sys.argv[1])) if sys.argv[1] != "-" else None)
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
barrier, blocks = threading.Barrier(9), []

def allocate():  # each new thread's first malloc takes an arena of its own, while the limit allows
    blocks.append(ctypes.create_string_buffer(20_000))
    barrier.wait()  # all alive at once: an exited thread's arena would be reused
    barrier.wait()

threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
barrier.wait()
with tempfile.NamedTemporaryFile(suffix=".xml") as report:
    stream = libc.fopen(report.name.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(stream))
    libc.fclose(ctypes.c_void_p(stream))
    print("arenas", open(report.name).read().count("<heap nr="))
barrier.wait()
for thread in threads:
    thread.join()
"""


def _arenas_in_a_fresh_process(limit, environment):
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | environment
    out = subprocess.run([sys.executable, "-c", _COUNT_ARENAS, limit], env=env, capture_output=True, text=True, check=True).stdout
    limited, arenas = (line.split()[1] for line in out.splitlines())
    return limited, int(arenas)


@pytest.mark.skipif(not GLIBC, reason="malloc arenas are glibc's")
def test_limit_malloc_arenas_caps_the_arenas_of_new_threads():
    """Eight threads allocating at once get arenas of their own, unless the limit is set;
    a limit the environment sets wins over the call's."""
    unlimited = min(9, 8 * os.cpu_count())  # the main arena and one per thread, up to glibc's 8 per core
    assert _arenas_in_a_fresh_process("-", {}) == ("None", unlimited)
    assert _arenas_in_a_fresh_process("2", {}) == ("True", 2)
    assert _arenas_in_a_fresh_process("3", {"MALLOC_ARENA_MAX": "5"}) == ("False", 5)


@pytest.mark.skipif(not GLIBC, reason="malloc arenas are glibc's")
def test_limit_malloc_arenas_passes_the_limit_to_child_processes_and_respects_the_environment(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.setattr(memory, "_mallopt", lambda: lambda parameter, value: 1)
    assert memory.limit_malloc_arenas() is True
    assert os.environ["MALLOC_ARENA_MAX"] == str(memory.MALLOC_ARENAS) == "2"
    monkeypatch.setenv("MALLOC_ARENA_MAX", "7")
    assert memory.limit_malloc_arenas(3) is False
    assert os.environ["MALLOC_ARENA_MAX"] == "7"


def test_limit_malloc_arenas_does_nothing_without_glibc(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.setattr(memory, "_mallopt", lambda: None)
    assert memory.limit_malloc_arenas() is False
    assert "MALLOC_ARENA_MAX" not in os.environ


@pytest.mark.parametrize("arenas", [0, -1, 1.5, True, "2"])
def test_limit_malloc_arenas_refuses_a_bad_count(arenas):
    with pytest.raises(ValueError, match="positive number of arenas"):
        memory.limit_malloc_arenas(arenas)


def test_the_predrnn_command_limits_malloc_arenas_before_a_backend_starts(monkeypatch):
    from predrnn import cli

    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"})
    calls = []
    monkeypatch.setattr(memory, "_mallopt", lambda: lambda parameter, value: calls.append((parameter, value)) or 1)
    cli._apply_backend(["train", "quickstart"])
    assert calls == [(-8, 2)] and os.environ["MALLOC_ARENA_MAX"] == "2"
    os.environ["MALLOC_ARENA_MAX"] = "4"  # the user's setting wins
    cli._apply_backend(["train", "quickstart"])
    assert calls == [(-8, 2)] and os.environ["MALLOC_ARENA_MAX"] == "4"
