import sys

import keras
import numpy as np
import pytest

from predrnn import PredRNN, memory

BACKEND = keras.backend.backend()
GLIBC = memory._malloc_trim() is not None


def _resident_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


@pytest.fixture
def releases(monkeypatch):
    """Counts the calls of :func:`predrnn.memory.release_freed_memory`."""
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
