"""Pretrained models: packaging a run, loading by name, and every shipped model's card."""

import json

import numpy as np
import pytest

import predrnn
from predrnn import pretrained_models
from predrnn.data.moving_mnist import generate_moving_mnist
from predrnn.errors import CheckpointError
from predrnn.jobs.config import load_config
from predrnn.jobs.evaluate import evaluate, load_predictor
from predrnn.jobs.train import train
from predrnn.metrics import FrameMetricsAccumulator


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("pretrained") / "run"
    train(load_config("smoke", ["train.steps=2", "train.progress=false"]), run)
    evaluate(run, num=4, progress=False)
    return run


def test_a_packaged_run_loads_by_name_and_predicts_like_its_checkpoint(evaluated_run, tmp_path, monkeypatch):
    card = pretrained_models.package_run(
        evaluated_run,
        "tiny",
        description="a smoke-test model",
        training={"command": "predrnn train smoke"},
        out=tmp_path,
        check_num=4,
    )
    assert (tmp_path / "tiny.npz").stat().st_size == card["weights"]["bytes"]
    assert json.loads((tmp_path / "tiny.json").read_text()) == card
    assert card["training"]["steps"] == 2 and card["training"]["command"] == "predrnn train smoke"
    assert set(card["test"]["baselines"]) == {"copy_last", "zeros", "context_mean"}
    assert "CC BY-SA 3.0" in card["data_licence"]

    monkeypatch.setattr(pretrained_models, "WEIGHTS_DIR", tmp_path)
    assert pretrained_models.available() == ["tiny"]
    model = predrnn.pretrained("tiny")
    original, _, _ = load_predictor(evaluated_run)
    context = generate_moving_mnist(3, 5, num_digits=1, num_frames=3, image_size=16, digit_size=8, split="test")
    # The shipped weights are the checkpoint's, rounded to float16.
    for ours, theirs in zip(model.weights, original.weights):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs).astype(np.float16).astype(np.float32))
    np.testing.assert_allclose(model.rollout(context, 3), original.rollout(context, 3), atol=2e-2)
    # A name is accepted wherever a run folder is.
    by_name, config, path = load_predictor("tiny")
    assert config.data.num_digits == 1 and path == tmp_path / "tiny.npz"
    assert by_name.frame_shape == (16, 16, 1)
    # Scored by name, it writes under evaluations/NAME/ in the current folder (the package's is not the user's).
    monkeypatch.chdir(tmp_path)
    report = evaluate("tiny", num=2, pictures=0, progress=False)
    saved = json.loads((tmp_path / "evaluations" / "tiny" / "metrics.json").read_text())
    assert saved["mse_per_frame"] == pytest.approx(report["mse_per_frame"])


def test_packaging_refuses_what_cannot_ship(evaluated_run, tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match="letters, digits and '_'"):
        pretrained_models.package_run(evaluated_run, "bad name", description="", training={}, out=tmp_path)
    with pytest.raises(CheckpointError, match="no metrics.json"):
        pretrained_models.package_run(tmp_path, "x", description="", training={}, out=tmp_path)
    monkeypatch.setattr(pretrained_models, "MAX_FILE_BYTES", 100)
    with pytest.raises(CheckpointError, match="over the"):
        pretrained_models.package_run(evaluated_run, "big", description="", training={"command": "c"}, out=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_name_lists_the_shipped_models():
    with pytest.raises(CheckpointError, match="No pretrained model named 'nope'"):
        predrnn.pretrained("nope")
    with pytest.raises(CheckpointError, match="pretrained model's name"):
        load_predictor("nope")


@pytest.mark.parametrize("name", pretrained_models.available())
def test_every_shipped_model_scores_as_its_card_says(name):
    """Re-score each shipped model on its card's fixed check set, on this backend."""
    card = pretrained_models.card(name)
    check, d = card["check"], card["config"]["data"]
    model = predrnn.pretrained(name)
    frames = generate_moving_mnist(
        check["num_sequences"],
        check["seed"],
        num_digits=check["num_digits"],
        num_frames=d["input_length"] + d["output_length"],
        image_size=d["image_size"],
        split="test",
    )
    scores = FrameMetricsAccumulator()
    scores.update(frames[:, d["input_length"] :], model.rollout(frames[:, : d["input_length"]], d["output_length"]))
    result = scores.result()
    assert result["mse_per_frame"] == pytest.approx(check["mse_per_frame"], rel=0.01)
    assert result["ssim"] == pytest.approx(check["ssim"], abs=0.005)
    assert (pretrained_models.WEIGHTS_DIR / f"{name}.npz").stat().st_size <= pretrained_models.MAX_FILE_BYTES
