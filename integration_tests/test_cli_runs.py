"""``predrnn train``, ``evaluate`` and ``predict`` runs that are easy to retry and resume: a
failed start leaves nothing behind, a resume needs only its workdir, and failed commands leave
no empty output folders."""

import json

import keras
import numpy as np

from predrnn.cli import main

BACKEND = keras.backend.backend()
# A tiny own_data run: 2 steps per epoch on 16x16 clips of 6 frames (3 -> 3).
TINY = ["model.filters=[4]", "data.input_length=3", "data.output_length=3", "train.steps=2", "train.steps_per_epoch=2",
        "train.batch_size=2", "sampling.stop_step=4", "data.validation_sequences=2", "train.progress=false"]  # fmt: skip


def _sets(*overrides):
    return [arg for override in overrides for arg in ("--set", override)]


def _clips(path, frames=6, size=16):
    np.save(path, np.random.default_rng(0).integers(0, 256, (6, frames, size, size), dtype=np.uint8))


def _fails(capsys, args, match):
    """Exit status 2 and one message naming the problem, the last line on stderr; no traceback.
    Returns that line."""
    code = main([*map(str, args)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and err.count(": error: ") == 1, err
    message = err.splitlines()[-1]
    assert message.startswith(f"predrnn {args[0]}: error: ") and match in message, err
    return message


def _train(capsys, *args):
    code = main([*map(str, args), "--backend", BACKEND])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.err


def test_a_run_that_fails_at_start_up_writes_nothing_and_the_retry_just_works(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _clips(tmp_path / "short.npy", frames=4)  # 4 frames for a model of 3 + 3
    _clips(tmp_path / "clips.npy")
    tiny, short = _sets(*TINY, "data.layout=NTHW"), _sets('data.path="short.npy"')
    run = ["train", "own_data", "--workdir", "run", *tiny]
    _fails(capsys, [*run, *_sets('data.path="missing.npy"')], f"Data file or folder not found: '{tmp_path / 'missing.npy'}'")
    assert not (tmp_path / "run").exists()
    _fails(capsys, [*run, *short], "fewer than input_length + output_length = 3 + 3 = 6")
    assert not (tmp_path / "run").exists()
    (tmp_path / "empty").mkdir()  # a folder the user made is kept, empty
    _fails(capsys, ["train", "own_data", "--workdir", "empty", *tiny, *short], "fewer than")
    assert (tmp_path / "empty").is_dir() and not any((tmp_path / "empty").iterdir())
    (tmp_path / "old").mkdir()  # --overwrite moves an old run aside only once the new one can start
    (tmp_path / "old" / "keep.txt").write_text("precious")
    _fails(capsys, ["train", "own_data", "--workdir", "old", "--overwrite", *tiny, *short], "fewer than")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clips.npy", "empty", "old", "short.npy"]
    assert (tmp_path / "old" / "keep.txt").read_text() == "precious"

    _train(capsys, *run, *_sets('data.path="clips.npy"'))  # the retry, same workdir, no --overwrite
    assert (tmp_path / "run" / "checkpoints" / "last.keras").is_file()


def test_resume_reads_the_runs_own_config_from_any_directory(tmp_path, capsys, monkeypatch):
    (tmp_path / "project").mkdir()
    (tmp_path / "elsewhere").mkdir()
    _clips(tmp_path / "project" / "clips.npy")
    monkeypatch.chdir(tmp_path / "project")
    run = tmp_path / "project" / "run"
    _train(capsys, "train", "own_data", "--workdir", "run", *_sets(*TINY, 'data.path="clips.npy"', "data.layout=NTHW"))
    saved = json.loads((run / "config.json").read_text())
    assert saved["data"]["path"] == str(tmp_path / "project" / "clips.npy")  # stored absolute

    monkeypatch.chdir(tmp_path / "elsewhere")  # the relative data path would not resolve from here
    err = _train(capsys, "train", "--resume", "--workdir", run, "--set", "train.steps=4")
    assert f"Resuming {run} at step 2 (epoch 2 of 2).\n" in err
    assert json.loads((run / "checkpoints" / "state.json").read_text())["step"] == 4
    # the run's own config.json as the config, as the refusal below recommends
    err = _train(capsys, "train", run / "config.json", "--resume", "--workdir", run, "--set", "train.steps=6")
    assert f"Resuming {run} at step 4 (epoch 3 of 3).\n" in err
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 6

    before = (run / "config.json").read_text()
    code = main(["train", "--resume", "--workdir", str(run), "--set", "train.learning_rate=0.5", "--set", "train.steps=8"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "train.learning_rate: run 0.001, now 0.5" in err and "predrnn train --resume --workdir DIR" in err
    assert (run / "config.json").read_text() == before
    assert json.loads((run / "checkpoints" / "state.json").read_text())["step"] == 6


def test_train_without_a_config_is_refused_unless_it_resumes(tmp_path, capsys):
    _fails(capsys, ["train", "--workdir", tmp_path / "run"], "Name a config: a .toml file or a preset")
    _fails(capsys, ["train", "--resume", "--workdir", tmp_path / "run"], f"Nothing to resume in {tmp_path / 'run'}")
    (tmp_path / "file").write_text("mine")
    _fails(capsys, ["train", "smoke", "--workdir", tmp_path / "file"], "is a file. Choose a folder for --workdir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_failed_evaluate_and_predict_leave_no_output_folder(tmp_path, capsys):
    from PIL import Image

    from predrnn import PredRNN

    net = PredRNN(filters=(4,), kernel_size=3, patch_size=2)
    net.build((None, None, 16, 16, 1))
    net.save(tmp_path / "m.keras")
    (tmp_path / "noise.npy").write_bytes(np.random.default_rng(1).bytes(3000))
    frames = [Image.fromarray(f, "L") for f in np.random.default_rng(0).integers(0, 256, (12, 16, 16), dtype=np.uint8)]
    frames[0].save(tmp_path / "whole.gif", save_all=True, append_images=frames[1:])
    data = (tmp_path / "whole.gif").read_bytes()
    (tmp_path / "cut.gif").write_bytes(data[: len(data) // 2])
    model = tmp_path / "m.keras"

    for bad, match in (("noise.npy", "noise.npy' is not a NumPy .npy file"), ("cut.gif", "it is truncated or corrupt")):
        err = _fails(capsys, ["predict", model, tmp_path / bad, "--horizon", 2, "--out", tmp_path / "out" / "p"], match)
        assert str(tmp_path / bad) in err and "pickle" not in err
        message = err.split(": error: ", 1)[1]
        args = [
            "evaluate",
            model,
            "--data",
            tmp_path / bad,
            "--context",
            3,
            "--horizon",
            3,
            "--output",
            tmp_path / "out" / "m.json",
        ]
        assert _fails(capsys, args, match).split(": error: ", 1)[1] == message  # the same refusal from both
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.gif", "m.keras", "noise.npy", "whole.gif"]
