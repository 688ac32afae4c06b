"""Fixtures for the data-layer tests: synthetic sprites and a "nothing on disk changed" check."""

import hashlib
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def square_sprites():
    """Three 6x6 sprites: a full square (value 255), a half-bright square, a hollow square."""
    full = np.full((6, 6), 255, np.uint8)
    half = np.full((6, 6), 128, np.uint8)
    hollow = full.copy()
    hollow[1:-1, 1:-1] = 0
    return np.stack([full, half, hollow])


def _snapshot(root: Path) -> dict:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def unchanged():
    """Usage: ``with unchanged(tmp_path): ...`` asserts no file under it was added or modified."""

    class _Unchanged:
        def __init__(self, root):
            self.root = Path(root)

        def __enter__(self):
            self.before = _snapshot(self.root)
            return self

        def __exit__(self, *exc):
            assert _snapshot(self.root) == self.before, "files on disk were modified"
            return False

    return _Unchanged


@pytest.fixture(autouse=True)
def _reset_state():
    """Overrides the suite-wide fixture for the data tests: they build no Keras models, so only
    the NumPy seed is reset. (``keras.backend.clear_session()`` runs a full ``gc.collect()``,
    about 0.4 s per test; the few tests that call ``fit`` use ``keras_session``.)"""
    np.random.seed(1234)
    yield


@pytest.fixture
def keras_session():
    """A clean Keras session and global seed for tests that build and fit a model."""
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(1234)
    yield
    keras.backend.clear_session()
