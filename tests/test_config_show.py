"""predrnn config show: every key of the resolved config with its meaning, as TOML to copy;
the own_data and kth presets."""

import dataclasses
import sys

import pytest

from predrnn.cli import main
from predrnn.jobs.config import SECTIONS, from_dict, load_config, preset_names
from predrnn.jobs.config_docs import UNCOMMENTED, field_comments, format_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_every_key_has_a_meaning():
    comments = field_comments()
    for section, cls in SECTIONS.items():
        for spec in dataclasses.fields(cls):
            trailing, block = comments[(section, spec.name)]
            assert trailing or block or UNCOMMENTED.get((section, spec.name)), f"{section}.{spec.name} has no description"
    described = {key for key, (trailing, _) in comments.items() if trailing}
    assert not described & set(UNCOMMENTED), "a key is described twice: drop it from UNCOMMENTED"


def test_field_comments_are_read_from_the_dataclasses():
    comments = field_comments()
    assert comments[("data", "layout")][0].startswith("axes of a .npy/.npz array in order")
    assert comments[("data", "num_digits")][1] == "Moving MNIST"  # the comment block above the field


@pytest.mark.parametrize("preset", ["own_data", "kth", "quickstart", "moving_mnist_predrnn_v2"])
def test_the_printed_config_is_toml_that_loads_back_to_the_same_config(preset):
    config = load_config(preset)
    text = format_config(config, preset)
    assert from_dict(tomllib.loads(text)) == config
    for section in SECTIONS:
        assert f"[{section}]" in text


def test_the_command_prints_the_config_and_refuses_unknown_presets(capsys):
    assert main(["config", "show", "own_data", "--set", "train.steps=6000"]) == 0
    out = capsys.readouterr().out
    assert 'path = "my_clips.npy"' in out and "steps = 6000" in out
    assert "# the file or folder" in out and "# context frames the model sees" in out
    assert main(["config", "show", "own_dta"]) == 2
    assert "Unknown preset 'own_dta'. Did you mean 'own_data'?" in capsys.readouterr().err


def test_the_schedule_note_says_when_a_run_is_mostly_teacher_forced():
    text = format_config(load_config("own_data"), "own_data")
    assert (
        "over train.steps = 3000: on average 25% of the future frames fed to the model are true frames; 0% at the last step"
        in text
    )
    assert "teacher-forced" not in text.split("[train]")[0].split("stop_step")[-1]
    assert "# Scheduled sampling: reference, true future frames 1.0 -> 0.0 over steps 0-1500 (decay 0.000667/step)." in text
    # the paper's stop step in a 2,000-step run
    short = format_config(load_config("moving_mnist_predrnn", ["train.steps=2000", "sampling.stop_step=50000"]), "x")
    assert "Most of this run is teacher-forced: set sampling.stop_step" in short
    assert "# Note: the schedule does not finish within train.steps = 2000: it moves until step 50000" in short
    # left unset, the step keys scale with train.steps: 0.625 x 2000 = 1250
    scaled = format_config(load_config("moving_mnist_predrnn", ["train.steps=2000"]), "x")
    assert "# stop_step = (not set: 0.625 x train.steps = 1250)" in scaled
    assert "# decay_rate = (not set: start / stop_step = 0.0008)" in scaled
    assert "true future frames 1.0 -> 0.0 over steps 0-1250 (decay 0.0008/step)" in scaled and "teacher-forced" not in scaled


def test_the_own_data_and_kth_presets_are_listed_and_read_files():
    assert {"own_data", "kth"} <= set(preset_names())
    own, kth = load_config("own_data"), load_config("kth")
    assert own.data.dataset == "file" and own.data.layout == "auto" and own.sampling.stop_step <= own.train.steps
    assert (kth.data.split, kth.data.channels, kth.data.resize) == ("kth_person", "grey", (128, 128))


def test_data_kth_says_how_to_fetch_kth(capsys):
    assert main(["data", "kth"]) == 0
    out = capsys.readouterr().out
    assert "https://www.csc.kth.se/cvap/actions/" in out and "predrnn train kth" in out
