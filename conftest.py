"""Shared test set-up. The same tests run once per backend: KERAS_BACKEND=tensorflow|jax|torch."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "performance: checks how a fast path computes (what it keeps, compiles or transforms), not what; "
        "deselect with -m 'not performance'",
    )


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {BACKEND}"


@pytest.fixture(autouse=True)
def _reset_state():
    """Every test starts from the same global seed and a clean Keras session."""
    keras.utils.set_random_seed(1234)
    np.random.seed(1234)
    yield
    keras.backend.clear_session()


@pytest.fixture
def rng():
    return np.random.default_rng(0)
