"""What the ``predrnn`` command prints: no TensorFlow start-up noise, plain progress in log
files, one message per user error, help texts that are true and plain."""

import argparse
import os
import re
import subprocess
import sys

import keras
import pytest

from predrnn.cli import _ABSL_BANNER, _apply_backend, _QuietTensorFlowImport, build_parser, main

BACKEND = keras.backend.backend()
# TensorFlow's C++ log lines, e.g. "I0000 00:00:1796586623.794736   10657 port.cc:153] oneDNN ..."
NATIVE_LOG_LINE = re.compile(r"^[IWEF]\d{4} .*\.cc:\d+\]", re.MULTILINE)


def run_quietly(*args, cwd=None):
    """``python -m predrnn ARGS`` as a user runs it: no TF_CPP_MIN_LOG_LEVEL of its own,
    output captured (not a terminal)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND")}
    return subprocess.run(
        [sys.executable, "-m", "predrnn", *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )


def test_train_and_evaluate_print_no_start_up_noise_and_plain_progress(tmp_path):
    result = run_quietly("train", "smoke", "--workdir", tmp_path / "run", "--backend", BACKEND)  # 2 epochs of 2 steps
    assert result.returncode == 0, result.stderr[-2000:]
    for noise in (_ABSL_BANNER, "oneDNN custom operations", "cudart_stub", "cuInit"):
        assert noise not in result.stderr, result.stderr
    assert not NATIVE_LOG_LINE.search(result.stderr), result.stderr
    # Keras' verbose=2: one line per epoch, no progress bar, colour codes or carriage returns
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2", result.stdout
    assert lines[1].startswith("2/2 - ") and lines[3].startswith("2/2 - ")
    assert "val_mse_per_frame" in lines[1] and "val_mse_per_frame" in lines[3]
    assert "\x1b[" not in result.stdout and "\r" not in result.stdout and "━" not in result.stdout

    result = run_quietly("evaluate", tmp_path / "run", "--num", 2, "--pictures", 0, "--backend", BACKEND)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not NATIVE_LOG_LINE.search(result.stderr) and _ABSL_BANNER not in result.stderr, result.stderr
    assert "\r" not in result.stdout and "evaluating" not in result.stdout
    assert result.stdout.splitlines()[0] == "2 sequences, 3 -> 3 frames:"


def test_presets_are_listed_quietly_with_whole_descriptions():
    result = run_quietly("presets")
    assert result.returncode == 0 and result.stderr == ""
    from predrnn.jobs.config import PRESETS_DIR, preset_names

    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == preset_names()
    for name, line in zip(preset_names(), lines):
        description = line[len(name) :].strip()
        assert description == (PRESETS_DIR / f"{name}.toml").read_text().splitlines()[0].lstrip("# ")
        assert description.endswith("."), line  # a whole sentence, not cut


def test_tensorflows_log_level_is_set_unless_the_user_chose_one(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    _apply_backend([])
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    _apply_backend([])
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    assert not any(isinstance(finder, _QuietTensorFlowImport) for finder in sys.meta_path)  # tensorflow is imported


def test_the_start_up_filter_drops_only_what_the_log_level_hides():
    info = "I0000 00:00:1796586623.794736   10657 port.cc:153] oneDNN custom operations are on.\n"
    warning = "W0000 00:00:1796586623.794736   10657 some_file.cc:12] a warning\n"
    error = "E0000 00:00:1796586627.798701   10657 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\n"
    fatal = "F0000 00:00:1796586627.798701   10657 check.cc:1] Check failed\n"
    other = ["Epoch 1/2\n", "/x/y.py:3: UserWarning: something\n", "I0000 is not a log line\n"]
    quiet, some = _QuietTensorFlowImport(3), _QuietTensorFlowImport(1)
    assert [quiet._dropped(line) for line in (_ABSL_BANNER + "\n", info, warning, error, fatal)] == [True] * 4 + [False]
    assert [some._dropped(line) for line in (info, warning, error)] == [True, False, False]
    assert not any(quiet._dropped(line) for line in other)


@pytest.mark.parametrize("isatty, progress, verbose", [(True, True, 1), (False, True, 2), (True, False, 2)])
def test_a_progress_bar_only_on_a_terminal(monkeypatch, isatty, progress, verbose):
    from predrnn.jobs.train import _verbosity

    monkeypatch.setattr(sys.stdout, "isatty", lambda: isatty)
    assert _verbosity(progress) == verbose


def test_file_system_errors_are_one_message(tmp_path, capsys):
    (tmp_path / "file").write_text("mine")
    args = ["data", "moving-mnist", "--num", "1", "--frames", "2", "--out", str(tmp_path / "file" / "x.npy")]
    assert main(args) == 2
    err = capsys.readouterr().err
    blocker = tmp_path / "file"
    assert err == (
        f"predrnn data: error: Cannot write '{blocker / 'x.npy'}': '{blocker}' is a file, not a folder. Choose another path.\n"
    )
    assert main(["predict", "m.keras", "in.npy", "--horizon", "2", "--out", str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err == f"predrnn predict: error: --out must be a folder; {tmp_path / 'file'} is a file.\n"
    assert (tmp_path / "file").read_text() == "mine"


def _parsers(parser, name="predrnn"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_help_texts_are_plain_and_name_only_real_commands(monkeypatch):
    monkeypatch.setenv("COLUMNS", "10000")  # no line breaks inside a command's name
    parser = build_parser()
    parsers = dict(_parsers(parser))
    assert {"predrnn data", "predrnn data info", "predrnn data convert", "predrnn train"} <= set(parsers)
    for name, sub in parsers.items():
        text = sub.format_help()
        for markup in ("``", ":func:", ":class:", ":mod:", ":meth:"):
            assert markup not in text, f"{name} --help shows {markup}"
        for mentioned in re.findall(r"predrnn(?: [a-z][a-z0-9-]*)+", text):
            words = mentioned.split()
            while " ".join(words) not in parsers:  # the longest real command the text names
                words.pop()
            assert len(words) > 1, f"{name} --help names {mentioned!r}, not a command"
