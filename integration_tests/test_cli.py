"""The ``predrnn`` command end to end: subprocesses on the smoke preset, and every
documented user error (one clear message, non-zero exit, no traceback)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from predrnn.cli import main

BACKEND = keras.backend.backend()


def run_cli(*args, cwd=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("KERAS_BACKEND", None)  # --backend must do the choosing
    for switch in ("PREDRNN_XLA_CELLS", "PREDRNN_FUSED_GATES"):  # the defaults (run.json records them)
        env.pop(switch, None)
    return subprocess.run(
        [sys.executable, "-m", "predrnn", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def test_train_evaluate_predict_in_subprocesses(tmp_path):
    run = tmp_path / "run"
    result = run_cli("train", "smoke", "--workdir", run, "--backend", BACKEND, "--set", "train.steps=2")
    assert result.returncode == 0, result.stderr[-2000:]
    run_info = json.loads((run / "run.json").read_text())
    # The smoke model (8 filters, 3x3) compiles XLA cells on JAX only (its scanned time loop).
    assert run_info["backend"] == BACKEND and run_info["xla_cells"] is (BACKEND == "jax") and run_info["fused_gates"] is False
    assert (run / "checkpoints" / "last.keras").exists()

    result = run_cli("evaluate", run, "--num", 4, "--backend", BACKEND)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "mse_per_frame" in result.stdout and "copy last frame" in result.stdout and "all black" in result.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["backend"] == BACKEND and metrics["num_sequences"] == 4

    data = tmp_path / "clips.npy"
    result = run_cli(
        "data", "moving-mnist", "--num", 3, "--seed", 1, "--digits", 1, "--frames", 6, "--format", "npy", "--out", data
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # 64x64 clips for a model of 16x16 frames: refused with one message naming the option, nothing written
    result = run_cli("predict", run, data, "--horizon", 3, "--out", tmp_path / "pred", "--backend", BACKEND)
    assert result.returncode == 2 and "--resize 16" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "pred").exists()
    result = run_cli("predict", run, data, "--horizon", 3, "--out", tmp_path / "pred", "--resize", 16, "--backend", BACKEND)
    assert result.returncode == 0, result.stderr[-2000:]
    assert np.load(tmp_path / "pred" / "predictions.npy").shape == (3, 3, 16, 16, 1)
    assert (tmp_path / "pred" / "sequence_000.gif").exists()


def test_the_command_turns_on_tensorflows_bfc_cpu_allocator_unless_told_otherwise(monkeypatch):
    from predrnn.cli import _apply_backend

    monkeypatch.delenv("TF_CPU_ALLOCATOR_USE_BFC", raising=False)
    _apply_backend([])
    assert os.environ["TF_CPU_ALLOCATOR_USE_BFC"] == "1"
    monkeypatch.setenv("TF_CPU_ALLOCATOR_USE_BFC", "0")
    _apply_backend([])
    assert os.environ["TF_CPU_ALLOCATOR_USE_BFC"] == "0"


def _fails_cleanly(capsys, args, match):
    code = main([*map(str, args)])
    err = capsys.readouterr().err
    assert code != 0
    assert match in err, err
    assert "Traceback" not in err
    return err


def test_user_errors_are_one_clear_message(tmp_path, capsys):
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("precious")
    _fails_cleanly(capsys, ["train", "smoke", "--workdir", existing], "already exists and is not empty")
    assert (existing / "keep.txt").read_text() == "precious"
    _fails_cleanly(
        capsys, ["train", "smoke", "--workdir", tmp_path / "r", "--set", "train.batchsize=2"], "Did you mean 'batch_size'"
    )
    _fails_cleanly(
        capsys,
        ["train", "smoke", "--workdir", tmp_path / "r", "--set", "model.kernel_size=four"],
        "model.kernel_size must be of type int",
    )
    _fails_cleanly(capsys, ["train", "quickstrat", "--workdir", tmp_path / "r"], "Unknown preset 'quickstrat'")
    _fails_cleanly(capsys, ["evaluate", tmp_path / "missing.keras"], "Checkpoint not found")
    _fails_cleanly(capsys, ["evaluate", existing], "No checkpoint in")
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"\x93NUMPY garbage")
    model = tmp_path / "m.keras"
    from predrnn import PredRNN

    net = PredRNN(filters=(4,), kernel_size=3, patch_size=2)
    net.build((None, None, 16, 16, 1))
    net.save(model)
    _fails_cleanly(capsys, ["predict", model, bad, "--horizon", 2, "--out", tmp_path / "p"], str(bad))
    _fails_cleanly(capsys, ["predict", model, tmp_path / "nothing.npy", "--horizon", 2, "--out", tmp_path / "p"], "nothing.npy")
    assert not (tmp_path / "r").exists() and not (tmp_path / "p").exists()


def test_files_are_read_as_told_or_refused_with_one_message(tmp_path, capsys):
    from PIL import Image

    clips = np.random.default_rng(0).integers(0, 256, (20, 20, 8, 8), dtype=np.uint8)  # 20 clips of 20 frames
    np.save(tmp_path / "clips.npy", clips)
    err = _fails_cleanly(capsys, ["data", "info", tmp_path / "clips.npy"], "holds a 4-D array of shape (20, 20, 8, 8)")
    assert "--layout NTHW" in err and err.count("\n") == 1
    assert main(["data", "info", str(tmp_path / "clips.npy"), "--layout", "NTHW"]) == 0
    assert capsys.readouterr().out == "clips.npy: 20 sequences of 20 frames, 8x8, 1 channel (grey), layout NTHW (given)\n"
    (tmp_path / "noise.npy").write_bytes(np.random.default_rng(1).bytes(3000))
    err = _fails_cleanly(capsys, ["data", "info", tmp_path / "noise.npy"], "noise.npy' is not a NumPy .npy file")
    assert "pickle" not in err
    frames = [Image.fromarray(f, "L") for f in clips[0]]
    frames[0].save(tmp_path / "grey.gif", save_all=True, append_images=frames[1:])
    assert main(["data", "info", str(tmp_path / "grey.gif")]) == 0
    assert "1 channel (grey)" in capsys.readouterr().out
    data = (tmp_path / "grey.gif").read_bytes()
    (tmp_path / "cut.gif").write_bytes(data[: len(data) // 2])
    _fails_cleanly(capsys, ["data", "convert", tmp_path / "cut.gif", "--out", tmp_path / "cut.npy"], "it is truncated or corrupt")
    assert not (tmp_path / "cut.npy").exists()
    assert main(["data", "convert", str(tmp_path / "grey.gif"), "--out", str(tmp_path / "grey.npy"), "--resize", "4"]) == 0
    assert np.load(tmp_path / "grey.npy").shape == (1, 20, 4, 4, 1)


def test_own_frames_converted_trained_evaluated_and_exported(tmp_path):
    # The own-data path end to end: frame folders -> one .npy -> the own_data preset -> evaluate -> export.
    from PIL import Image

    from predrnn.data import generate_moving_mnist

    clips = generate_moving_mnist(6, 0, num_digits=1, num_frames=8, image_size=16, digit_size=8)
    for n, clip in enumerate(np.round(clips[..., 0] * 255).astype(np.uint8)):
        (tmp_path / "frames" / f"clip{n}").mkdir(parents=True)
        for t, frame in enumerate(clip):
            Image.fromarray(frame, "L").save(tmp_path / "frames" / f"clip{n}" / f"{t:03d}.png")
    result = run_cli("data", "convert", "frames", "--out", "clips.npy", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.splitlines()[0]
        == "frames: 6 sequences of 8 frames, 16x16, 1 channel (grey), layout image-folder (a folder per sequence)"
    )
    small = ["model.filters=[4]", "data.input_length=3", "data.output_length=3", "train.steps=4", "train.steps_per_epoch=2",
             "train.batch_size=2", "sampling.stop_step=4", "sampling.decay_rate=0.25", "data.validation_sequences=2", "train.progress=false"]  # fmt: skip
    sets = [arg for override in ['data.path="clips.npy"', *small] for arg in ("--set", override)]
    result = run_cli("train", "own_data", "--workdir", "run", *sets, "--backend", BACKEND, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = run_cli("evaluate", "run", "--data", "clips.npy", "--pictures", 0, "--backend", BACKEND, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "6 sequences, 3 -> 3 frames:" in result.stdout
    result = run_cli("export", "run", "--out", "exported", "--backend", "tensorflow", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "rollout(context Bx3x16x16x1) -> Bx3x16x16x1 frames" in result.stdout
    assert (tmp_path / "exported" / "saved_model.pb").is_file()


@pytest.mark.parametrize("horizon", ["0", "-3", "two"])
def test_bad_horizon_is_a_usage_error(tmp_path, capsys, horizon):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "x.keras", "in.npy", "--horizon", horizon, "--out", str(tmp_path / "p")])
    assert exit_info.value.code == 2
    assert "positive integer" in capsys.readouterr().err


def test_presets_listed(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "quickstart" in out and "moving_mnist_predrnn_v2" in out


def test_benchmark_command_writes_json_and_table(tmp_path):
    out, table = tmp_path / "bench.json", tmp_path / "bench.md"
    result = run_cli(
        "benchmark",
        "--preset",
        "tiny",
        "--impl",
        BACKEND,
        "--steps",
        1,
        "--rollout-repeats",
        1,
        "--output",
        out,
        "--readme",
        table,
        "--quiet",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    entry = json.loads(out.read_text())["implementations"][0]
    assert entry["backend"] == BACKEND and entry["step_s"] > 0 and entry["flops_per_step"] > 0
    # the implementation ran in its own worker process, which reports its own memory
    assert entry["peak_memory_mb"] >= entry["baseline_memory_mb"] > 0
    assert "| implementation |" in table.read_text()
    result = run_cli("benchmark", "--preset", "tiny", "--impl", "tensorflow:float64")
    assert result.returncode == 2 and "Unknown precision" in result.stderr and "Traceback" not in result.stderr
