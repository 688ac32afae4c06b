"""The training job: schedule in compiled fit, exact resume, workdir safety, evaluate/predict."""

import json

import imageio.v3 as iio
import keras
import numpy as np
import pytest
from keras import ops

from predrnn.data.datasets import VideoPredictionDataset
from predrnn.data.moving_mnist import generate_moving_mnist
from predrnn.errors import CheckpointError, ConfigError, DataError
from predrnn.jobs.config import load_config
from predrnn.jobs.evaluate import evaluate, predict
from predrnn.jobs.train import train
from predrnn.schedules import LinearSchedule, sample_teacher_forcing_mask


class MaskProbe(keras.Model):
    """Outputs the mean of the teacher-forcing mask it was fed, as a constant frame."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(), initializer="zeros")

    def call(self, inputs):
        mask_mean = ops.mean(inputs["teacher_forcing_mask"])
        return ops.zeros_like(inputs["frames"][:, 1:]) + mask_mean + 0.0 * self.w


def test_probability_follows_the_step_inside_compiled_fit(rng):
    """The earlier TensorFlow port froze the probability at trace time; here it is data."""
    schedule = LinearSchedule(start=1.0, end=0.0, rate=0.2)
    frames = rng.random((64, 9, 4, 4, 1)).astype("float32")
    dataset = VideoPredictionDataset(frames, 64, 1, 8, schedule=schedule, seed=3, shuffle=False, steps_per_epoch=1)
    model = MaskProbe()
    model.compile(optimizer="sgd", loss=lambda y_true, y_pred: ops.mean(y_pred), jit_compile=True)
    callbacks = [dataset.epoch_callback()]
    losses = model.fit(dataset, epochs=6, shuffle=False, verbose=0, callbacks=callbacks).history["loss"]
    expected = [sample_teacher_forcing_mask(schedule.probabilities(k, 1, 8), 64, 3, k).mean() for k in range(6)]
    np.testing.assert_allclose(losses, expected, atol=1e-5)
    assert losses[0] == 1.0 and losses[-1] == 0.0 and 0.2 < losses[2] < 0.9


def _weights(path):
    from predrnn.models import load_model

    return load_model(path).get_weights()


def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path):
    # The schedule set in full: left unset, its step keys scale with train.steps, and the
    # 2-step run would record (and resume with) another schedule than the 4-step one.
    schedule = ["sampling.stop_step=3", "sampling.decay_rate=0.25"]
    full = load_config("smoke", ["train.steps=4", "train.progress=false", *schedule])
    half = load_config("smoke", ["train.steps=2", "train.progress=false", *schedule])
    train(full, tmp_path / "a")
    train(half, tmp_path / "b")
    state = json.loads((tmp_path / "b" / "checkpoints" / "state.json").read_text())
    assert state["step"] == 2 and state["epoch"] == 1
    summary = train(full, tmp_path / "b", resume=True)
    assert summary["step"] == 4
    for x, y in zip(_weights(tmp_path / "a/checkpoints/last.keras"), _weights(tmp_path / "b/checkpoints/last.keras")):
        np.testing.assert_allclose(x, y, atol=1e-6)
    history = (tmp_path / "b" / "history.csv").read_text().splitlines()
    assert len(history) == 3 and history[0].startswith("epoch,loss")
    assert "ss_future" in history[0] and "val_mse_per_frame" in history[0]
    for name in ("config.json", "checkpoints/best.keras", "samples"):
        assert (tmp_path / "b" / name).exists(), name

    # evaluate: JSON with the documented keys, CSV, plot; the baselines scored on the same frames
    report = evaluate(tmp_path / "b", num=4, progress=False)
    saved = json.loads((tmp_path / "b" / "metrics.json").read_text())
    for key in (
        "mse_per_frame",
        "mae_per_frame",
        "ssim",
        "psnr",
        "mse_per_pixel",
        "per_frame",
        "baselines",
        "num_sequences",
        "test_set",
    ):
        assert key in saved, key
    assert saved["num_sequences"] == 4 and len(saved["per_frame"]["mse_per_frame"]) == 3
    assert saved["test_set"]["kind"] == "moving_mnist" and saved["test_set"]["num_digits"] == 1
    np.testing.assert_allclose(report["mse_per_frame"], np.mean(saved["per_frame"]["mse_per_frame"]))
    assert set(saved["baselines"]) == {"copy_last", "zeros", "context_mean"}
    truth = generate_moving_mnist(4, 0, num_digits=1, num_frames=6, image_size=16, digit_size=8, split="test")[:, 3:]
    # all black: the error of each frame is the sum of its squared pixels
    np.testing.assert_allclose(saved["baselines"]["zeros"]["mse_per_frame"], np.mean(np.sum(truth**2, axis=(2, 3, 4))), rtol=1e-6)
    assert (tmp_path / "b" / "metrics.csv").exists() and (tmp_path / "b" / "metrics.png").exists()
    drawn = sorted(p.name for p in (tmp_path / "b" / "metrics_pictures").iterdir())
    assert drawn == [f"sequence_{i:03d}.{ext}" for i in range(4) for ext in ("gif", "png")]
    with pytest.raises(ConfigError, match="exists. Pass --overwrite"):
        evaluate(tmp_path / "b", num=4, progress=False)

    # predict: frames, GIF and PNG per sequence
    frames = np.random.default_rng(0).random((2, 5, 16, 16, 1)).astype("float32")
    np.save(tmp_path / "input.npy", frames)
    result = predict(tmp_path / "b", tmp_path / "input.npy", horizon=4, out=tmp_path / "pred")
    predictions = np.load(tmp_path / "pred" / "predictions.npy")
    assert predictions.shape == (2, 4, 16, 16, 1) and result["context"] == 3
    assert (tmp_path / "pred" / "sequence_001.gif").exists() and (tmp_path / "pred" / "sequence_001.png").exists()
    predict(tmp_path / "b", tmp_path / "input.npy", horizon=4, out=tmp_path / "pred1", pictures=1)
    assert sorted(p.name for p in (tmp_path / "pred1").iterdir()) == ["predictions.npy", "sequence_000.gif", "sequence_000.png"]
    with pytest.raises(ConfigError, match="--context"):
        predict(tmp_path / "b", tmp_path / "input.npy", horizon=4, out=tmp_path / "pred2", context=9)
    assert not (tmp_path / "pred2").exists()  # a failed predict leaves no folder behind


def test_workdir_is_never_overwritten_silently(tmp_path):
    config = load_config("smoke", ["train.steps=2", "train.progress=false"])
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="already exists and is not empty"):
        train(config, workdir)
    with pytest.raises(ConfigError, match="Nothing to resume"):
        train(config, workdir, resume=True)
    assert (workdir / "notes.txt").read_text() == "mine"
    train(config, workdir, overwrite=True)
    backups = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(backups) == 1 and (backups[0] / "notes.txt").read_text() == "mine"
    changed = load_config("smoke", ["train.steps=2", "train.progress=false", "train.learning_rate=0.5"])
    with pytest.raises(ConfigError, match="train.learning_rate: run 0.001, now 0.5"):
        train(changed, workdir, resume=True)


def test_a_non_chief_worker_reports_its_own_step(monkeypatch, tmp_path):
    # Worker 1 of a cluster trains into a scratch folder; its summary must not come from the
    # chief's state.json in the shared run folder, which the chief may not have written yet
    # (here: never). One process stands in for the worker: its cluster says index 1.
    import contextlib
    import types

    from predrnn.jobs import distribution

    @contextlib.contextmanager
    def one_device_as_worker_1(mode, *, global_batch_size):
        yield distribution.DistributionInfo("none", keras.backend.backend(), "none", 1, 1, 1, global_batch_size)

    monkeypatch.setattr(distribution, "multi_worker_environment", lambda: types.SimpleNamespace(worker_index=1))
    monkeypatch.setattr(distribution, "distribution_scope", one_device_as_worker_1)
    config = load_config("smoke", ["train.steps=4", "train.progress=false", "train.distribution=auto"])
    summary = train(config, tmp_path / "run")
    assert summary["step"] == 4 and summary["epoch"] == 2
    assert not (tmp_path / "run").exists()  # only the chief writes the run folder


def test_missing_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="Checkpoint not found"):
        evaluate(tmp_path / "nope.keras", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="No checkpoint in"):
        evaluate(tmp_path / "empty", progress=False)
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="Could not load"):
        evaluate(bad, output=tmp_path / "m.json", progress=False)


def test_bfloat16_on_a_cpu_without_native_support_prints_a_note(monkeypatch, capsys):
    from predrnn.jobs import train as train_module

    monkeypatch.setattr(train_module, "cpu_lacks_bfloat16", lambda: True)
    train_module._warn_slow_precision("float32")
    assert capsys.readouterr().err == ""
    train_module._warn_slow_precision("mixed_bfloat16")
    assert "emulated" in capsys.readouterr().err
    monkeypatch.setattr(train_module, "cpu_lacks_bfloat16", lambda: False)
    train_module._warn_slow_precision("mixed_bfloat16")
    err = capsys.readouterr().err
    if keras.backend.backend() == "jax":  # XLA:CPU's bfloat16 convolutions are slow even with AMX
        assert "XLA:CPU" in err and "emulated" not in err
    else:
        assert err == ""
    monkeypatch.setattr(keras.distribution, "list_devices", lambda: ["gpu:0"])
    train_module._warn_slow_precision("mixed_bfloat16")
    assert capsys.readouterr().err == ""


def test_bad_training_data_stops_the_run_with_the_data_error(tmp_path):
    # Step 0's batch is fine, every other training sequence holds a NaN: the run stops at step 1
    # with the DataError naming the sequence, on every backend (TensorFlow's tf.data wraps it).
    frames = np.random.default_rng(0).random((12, 6, 16, 16, 1)).astype("float32")
    frames[:, 0, 0, 0, 0] = np.arange(12) / 255.0  # tag: which file sequence a sample is
    np.save(tmp_path / "data.npy", frames)
    config = load_config(
        "smoke",
        [
            'data.dataset="file"',
            f'data.path="{tmp_path / "data.npy"}"',
            "data.validation_fraction=0.2",
            "train.steps=3",
            "train.steps_per_epoch=3",
            "train.progress=false",
        ],
    )
    from predrnn.jobs.train import build_datasets

    first_batch = build_datasets(config)[0].batch_at(0)[0]["frames"]
    used = set(np.round(first_batch[:, 0, 0, 0, 0] * 255).astype(int))
    for index in set(range(12)) - used:
        frames[index, 2, 3, 3, 0] = np.nan
    np.save(tmp_path / "data.npy", frames)
    with pytest.raises(DataError, match="contains NaN"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # stopped before its first checkpoint: the run's folder is removed


def test_a_data_error_comes_before_the_schedule_line(tmp_path, capsys):
    # The run's first words are the data problem, not a schedule for a run that never starts.
    config = load_config("smoke", ['data.dataset="file"', f'data.path="{tmp_path / "missing.npy"}"'])
    with pytest.raises(DataError, match="missing.npy"):
        train(config, tmp_path / "run")
    assert "Scheduled sampling" not in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "flag, overrides, compiled",
    [  # compiled: XLA cells on TensorFlow, on JAX; Winograd convolutions on PyTorch
        ("0", ["model.filters=[64]", "model.kernel_size=5"], (False, False, False)),
        ("1", [], (True, True, True)),
        ("1", ["train.precision=mixed_bfloat16"], (False, False, False)),  # float32 steps only
        ("auto", [], (False, True, False)),  # the smoke model: 8 filters, 3x3 (JAX: every 3x3-7x7 model)
        ("auto", ["model.filters=[8, 64]", "model.kernel_size=5"], (True, True, True)),  # PyTorch: 7 x 64 outputs
        ("auto", ["model.architecture=convlstm", "model.filters=[16, 16]", "model.kernel_size=5"], (False, True, False)),
        ("auto", ["model.filters=[64]", "model.kernel_size=9"], (False, False, False)),
    ],
)
def test_run_json_records_the_performance_switches(monkeypatch, flag, overrides, compiled):
    from predrnn.jobs.train import _run_info

    monkeypatch.setenv("PREDRNN_XLA_CELLS", flag)
    monkeypatch.setenv("PREDRNN_FUSED_GATES", "1" if flag == "1" else "0")
    monkeypatch.setenv("PREDRNN_TORCH_WINOGRAD", flag)
    info = json.loads(json.dumps(_run_info(load_config("smoke", overrides))))
    backend = keras.backend.backend()
    assert info["xla_cells"] is dict(zip(("tensorflow", "jax"), compiled[:2])).get(backend, False)
    assert info["fused_gates"] is (flag == "1")
    assert info["torch_winograd"] is (compiled[2] and backend == "torch")


@pytest.mark.skipif(keras.backend.backend() == "torch", reason="PREDRNN_XLA_CELLS is ignored on PyTorch")
def test_an_unknown_xla_cells_setting_stops_training_before_it_writes(monkeypatch, tmp_path):
    monkeypatch.setenv("PREDRNN_XLA_CELLS", "true")
    with pytest.raises(ConfigError, match="PREDRNN_XLA_CELLS must be 0, 1 or auto"):
        train(load_config("smoke", ["train.steps=2"]), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="PREDRNN_TORCH_WINOGRAD is read on PyTorch only")
def test_an_unknown_torch_winograd_setting_stops_training_before_it_writes(monkeypatch, tmp_path):
    monkeypatch.setenv("PREDRNN_TORCH_WINOGRAD", "yes")
    with pytest.raises(ConfigError, match="PREDRNN_TORCH_WINOGRAD must be 0, 1 or auto"):
        train(load_config("smoke", ["train.steps=2"]), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_gallery_draws_every_model_on_the_same_sequences(tmp_path):
    from predrnn.jobs.evaluate import gallery

    for name in ("a", "b"):
        train(load_config("smoke", ["train.steps=2", "train.progress=false", f"train.seed={len(name)}"]), tmp_path / name)
    result = gallery([tmp_path / "a", tmp_path / "b"], out=tmp_path / "g" / "grid.gif", labels=["first", "second"], num=3)
    assert result["num_sequences"] == 3 and result["models"] == {"first": str(tmp_path / "a"), "second": str(tmp_path / "b")}
    frames = iio.imread(tmp_path / "g" / "grid.gif", index=None)
    assert frames.shape[0] == 6  # 3 context + 3 future frames
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["grid.gif", "grid_0.png", "grid_1.png", "grid_2.png"]
    png = iio.imread(tmp_path / "g" / "grid_0.png")
    assert png.shape[0] == 4 * 32 + 3  # rows: context, truth, first, second (16 px frames, scale 2)
    with pytest.raises(ConfigError, match="exists"):
        gallery([tmp_path / "a"], out=tmp_path / "g" / "grid.gif")
    with pytest.raises(ConfigError, match="one distinct label per model"):
        gallery([tmp_path / "a", tmp_path / "b"], out=tmp_path / "x.gif", labels=["same", "same"])
