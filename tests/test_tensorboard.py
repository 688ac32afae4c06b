"""The training job's TensorBoard logs (TensorFlow backend): per-step scalars against the
global step, also after --resume, and the validation predictions as images."""

import keras
import numpy as np
import pytest

from predrnn.jobs.config import load_config
from predrnn.jobs.train import train

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorBoard logs: TensorFlow backend")


def _events(folder):
    """``{tag: [(step, value), ...]}`` of the event files in ``folder`` (scalars as floats,
    images as their encoded strings)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util.tensor_util import make_ndarray

    events = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                tensor = make_ndarray(value.tensor)
                entry = float(tensor) if tensor.ndim == 0 else tensor
                events.setdefault(value.tag, []).append((event.step, entry))
    return events


def test_per_step_scalars_and_validation_images(tmp_path):
    # A reference schedule set in full (1 - 0.25 k, 0 from step 3): the logged probabilities are known.
    overrides = ["train.progress=false", "sampling.stop_step=3", "sampling.decay_rate=0.25", "train.learning_rate=0.002"]
    train(load_config("smoke", ["train.steps=2", *overrides]), tmp_path / "run")
    train(load_config("smoke", ["train.steps=4", *overrides]), tmp_path / "run", resume=True)

    scalars = _events(tmp_path / "run" / "logs" / "train")
    for tag in ("batch_loss", "batch_step_loss", "batch_ss_context", "batch_ss_future", "batch_learning_rate"):
        assert [step for step, _ in scalars[tag]] == [1, 2, 3, 4], tag  # the global step, on from 3 after the resume
    # logged after step k's update, for the batch of step k - 1 (what its mask was drawn from)
    np.testing.assert_allclose([v for _, v in scalars["batch_ss_future"]], [1.0, 0.75, 0.5, 0.0])
    np.testing.assert_allclose([v for _, v in scalars["batch_ss_context"]], 1.0)
    np.testing.assert_allclose([v for _, v in scalars["batch_learning_rate"]], 0.002)
    assert [step for step, _ in scalars["epoch_loss"]] == [0, 1]  # Keras' per-epoch scalars, by epoch
    # batch_loss is Keras' running mean over the epoch; batch_step_loss each step's own loss
    running = np.array([v for _, v in scalars["batch_loss"]])
    step_loss = np.array([v for _, v in scalars["batch_step_loss"]])
    assert [step for step, _ in scalars["batch_step_loss"]] == [1, 2, 3, 4] and np.all(step_loss > 0)
    np.testing.assert_allclose(step_loss[[0, 2]], running[[0, 2]], rtol=1e-6)  # an epoch's first step
    np.testing.assert_allclose(step_loss[[1, 3]], 2 * running[[1, 3]] - running[[0, 2]], rtol=1e-6)
    assert abs(step_loss[1] - step_loss[0]) > 1e-6  # two different steps

    images = _events(tmp_path / "run" / "logs" / "validation")["predictions"]
    assert [step for step, _ in images] == [2, 4]
    # a summary image: width, height, then the encoded PNG of each of the first 3 held-out sequences
    import tensorflow as tf

    width, height, *pngs = images[-1][1]
    assert len(pngs) == 3
    picture = tf.io.decode_png(pngs[0]).numpy()
    assert picture.shape == (int(height), int(width), 3)
    # three rows of 3 frames of 16 x 16 pixels at scale 2, 1-pixel separators (comparison_strip)
    assert int(height) == 3 * 32 + 2 * 1
    # the first is the epoch's sample strip (samples/step_0000004.png)
    import imageio.v3 as iio

    np.testing.assert_array_equal(picture, iio.imread(tmp_path / "run" / "samples" / "step_0000004.png")[..., :3])
