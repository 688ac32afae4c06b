"""Experiments: spec checks, a tiny real experiment (in-process), failures, resume,
local subprocess runs (with a fake interpreter) and the CLI."""

import csv
import dataclasses
import json
import math
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from predrnn.baselines import BASELINES
from predrnn.errors import ConfigError
from predrnn.jobs import experiment as ex
from predrnn.jobs.config import load_config
from predrnn.jobs.experiment import summary as experiment_summary
from predrnn.schedules import get_schedule

METRICS = ex.METRICS


def write_spec(path, text):
    path = Path(path)
    path.write_text(textwrap.dedent(text))
    return path


TINY = """
    base = "smoke"
    set = ["train.steps=2", "train.steps_per_epoch=2", "train.batch_size=2", "data.validation_sequences=2",
           "data.input_length=2", "data.output_length=2", "model.filters=[4]", "train.jit_compile=\\"false\\""]
    runs = 2
    [evaluate]
    num = 4
    seed = 3
    [evaluate.extra.two_digits]
    digits = 2
    num = 3
    [variants.predrnn]
    set = []
    [variants.convlstm]
    set = ["model.architecture=\\"convlstm\\""]
"""


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# ----------------------------------------------------------------------------------
# Specs
# ----------------------------------------------------------------------------------


def test_shipped_specs_load_and_validate():
    assert {"compare_models", "compare_schedules", "compare_versions"} <= set(ex.spec_names())
    models = ex.load_spec("compare_models").configs()
    assert models["convlstm"].model.architecture == "convlstm"
    assert models["predrnn_no_ss"].sampling.schedule == "constant"
    assert models["predrnn_no_ss"].sampling.future_probability == 0.0
    assert models["predrnn_ss"].sampling.schedule == "reference"
    assert models["predrnn_v2"].model.decoupling_weight == 0.1 and models["predrnn_v2"].sampling.schedule == "reverse"
    schedules = ex.load_spec("compare_schedules").configs()
    assert [c.sampling.schedule for c in schedules.values()] == ["linear", "exponential", "sigmoid", "reverse"]
    for table in ("compare_models", "compare_schedules"):  # the same budget and test sets for every row
        spec = ex.load_spec(table)
        assert spec.runs == 5 and spec.evaluate["num"] == 1000 and spec.evaluate["extra"] == {"three_digits": {"digits": 3}}
        assert {(c.train.steps, c.train.learning_rate, c.model.filters) for c in spec.configs().values()} == {
            (6400, 0.003, (32, 32))
        }
        for name, c in spec.configs().items():  # every schedule has handed the future over by step 4,000
            if c.sampling.schedule != "constant":
                schedule = get_schedule(c.sampling.schedule, **c.sampling.arguments())
                assert schedule.future_probability(0) >= 0.5 and schedule.future_probability(4000) <= 0.01, name
    versions = ex.load_spec("compare_versions").configs()
    assert versions["v1"].model.decoupling_weight == 0.0
    assert versions["v2"].model.decoupling_weight == 0.1 and versions["v2"].sampling.schedule == "reverse"
    precisions = ex.load_spec("compare_precision").configs()
    assert {name: c.train.precision for name, c in precisions.items()} == {
        "float32": "float32",
        "mixed_bfloat16": "mixed_bfloat16",
    }
    quickstart = load_config("quickstart")
    for config in precisions.values():  # the quickstart itself, in each precision
        assert dataclasses.replace(config, train=dataclasses.replace(config.train, precision="float32")) == quickstart
    for configs in (models, schedules, versions, precisions):
        assert all(c.train.steps <= 6400 and c.data.image_size == 64 for c in configs.values())  # CPU-sized


def test_paper_size_specs():
    models = ex.load_spec("compare_models_paper").configs()
    assert models["convlstm"].model.architecture == "convlstm" and models["predrnn_ss"].model.filters == (128,) * 4
    assert models["predrnn_no_ss"].sampling.schedule == "constant" and models["predrnn_ss"].sampling.schedule == "reference"
    schedules = ex.load_spec("compare_schedules_paper")
    assert schedules.base is None and [v.base for v in schedules.variants] == ["ss_linear", "ss_exponential", "ss_sigmoid"]
    assert [c.sampling.schedule for c in schedules.configs().values()] == ["linear", "exponential", "sigmoid"]
    versions = ex.load_spec("compare_versions_paper")
    configs = versions.configs()
    assert configs["v2"].model.decoupling_weight == 0.1 and configs["v2"].sampling.stop_step == 50000
    assert configs["v1"].train == configs["v2"].train  # only the V2 changes differ
    for spec in (schedules, versions):
        assert spec.evaluate["num"] == 1000 and spec.slurm["gpus"] == 1
        assert all(c.train.steps == 80000 for c in spec.configs().values())


def test_variant_config_order_and_section_tables(tmp_path):
    spec = ex.load_spec(
        write_spec(
            tmp_path / "s.toml",
            """
        base = "smoke"
        set = ["train.steps=6", "sampling.decay_rate=0.5"]
        [variants.plain]
        [variants.const]
        sampling = { schedule = "constant", future_probability = 0.25 }
        set = ["train.steps=8"]
    """,
        ),
        overrides=["train.learning_rate=0.01"],
    )
    configs = spec.configs()
    assert configs["plain"].train.steps == 6 and configs["plain"].sampling.decay_rate == 0.5
    assert configs["plain"].train.learning_rate == 0.01
    # the section table replaces the whole [sampling] (the spec's decay_rate is gone); the variant's set wins
    assert configs["const"].sampling.schedule == "constant" and configs["const"].sampling.decay_rate is None
    assert configs["const"].train.steps == 8 and configs["const"].train.learning_rate == 0.01


SPEC_ERRORS = [
    ('base = "smoke"\nrunz = 2\n[variants.a]\n', "unknown key 'runz'. Did you mean 'runs'?"),
    ("set = []\n[variants.a]\n", "missing base"),
    ('[variants.a]\nbase = "smoke"\n[variants.b]\n', "[variants.b] has none"),
    ('[variants.a]\nbase = "smokey"\n', "[variants.a]: base: Unknown preset 'smokey'. Did you mean 'smoke'?"),
    ('base = "smok"\n[variants.a]\n', "Did you mean 'smoke'?"),
    ('base = "nope.toml"\n[variants.a]\n', "not found"),
    ('base = "smoke"\n', "at least one variant"),
    ('base = "smoke"\n[variants.a]\nsett = []\n', "unknown key 'sett'. Did you mean 'set'?"),
    ('base = "smoke"\n[variants.a]\nset = ["model.filterz=[4]"]\n', "Did you mean 'filters'?"),
    ('base = "smoke"\n[variants.a]\nset = ["model.architecture=\\"lstm\\""]\n', "variant 'a'"),
    ('base = "smoke"\n[variants.a]\nset = ["train.seed=3"]\n', "train.seed is set by the experiment"),
    ('base = "smoke"\n[evaluate]\nnumber = 3\n[variants.a]\n', "Did you mean 'num'?"),
    ('base = "smoke"\n[evaluate]\nnum = 0\n[variants.a]\n', "evaluate.num must be a positive integer"),
    ('base = "smoke"\n[variants."a/b"]\n', "folder name"),
    ('base = "smoke"\n[slurm]\npartiton = "gpu"\n[variants.a]\n', "Did you mean 'partition'?"),
    ('base = "smoke"\n[variants.a]\nmodel = 3\n', "must be a table"),
]


def test_spec_errors(tmp_path):
    # one test (not parametrized): each test's teardown clears the Keras session, which is slow
    for text, message in SPEC_ERRORS:
        path = tmp_path / "bad.toml"
        path.write_text(text)
        with pytest.raises(ConfigError) as info:
            ex.load_spec(path)
        assert message in str(info.value), (text, str(info.value))


def test_set_takes_the_evaluate_keys_too(tmp_path, capsys):
    from predrnn.cli import main

    spec = ex.load_spec("compare_models", overrides=["evaluate.num=50", "evaluate.extra.three_digits.num=20", "train.steps=800"])
    assert (spec.evaluate["num"], spec.evaluate["seed"]) == (50, 0)
    assert spec.evaluate["extra"] == {"three_digits": {"digits": 3, "num": 20}}
    assert spec.set[-1] == "train.steps=800" and not any(text.startswith("evaluate") for text in spec.set)
    assert all(config.train.steps == 800 for config in spec.configs().values())
    assert ex.load_spec("compare_models").evaluate["num"] == 1000  # the shipped spec is unchanged
    for override, message in [
        ("evaluate.nmu=5", "--set: unknown key evaluate.nmu. Did you mean 'num'? Valid keys in [evaluate]: num, seed, digits"),
        ("evaluate.num=0", "--set: evaluate.num must be a positive integer. Received: 0"),
        ("evaluate.extra.three_digits=3", "evaluate.extra.NAME.KEY=VALUE"),
        ("evaluat.num=5", "unknown section [evaluat]. Did you mean 'evaluate'?"),
    ]:
        with pytest.raises(ConfigError) as info:
            ex.load_spec("compare_models", overrides=[override])
        assert message in str(info.value), (override, str(info.value))
    # the command line: the runs are scored on 50 sequences
    argv = ["experiment", "compare_versions", "--workdir", str(tmp_path / "exp"), "--runs", "1", "--dry-run"]
    assert main([*argv, "--set", "evaluate.num=50", "--set", "evaluate.digits=2"]) == 0
    out = capsys.readouterr().out
    assert "--num 50" in out and "--digits 2" in out and "--num 200" not in out
    assert main([*argv, "--set", "evaluate.bogus=1"]) == 2
    assert "unknown key evaluate.bogus" in capsys.readouterr().err


def test_unknown_spec_name_lists_shipped_specs():
    with pytest.raises(ConfigError, match="Did you mean 'compare_models'") as info:
        ex.load_spec("compare_model")
    assert "compare_schedules" in str(info.value)


def test_bases_relative_to_the_spec_and_per_variant(tmp_path):
    (tmp_path / "configs").mkdir()
    smoke = Path(ex.SPECS_DIR).parent / "presets" / "smoke.toml"
    (tmp_path / "configs" / "mine.toml").write_text(smoke.read_text().replace("filters = [8]", "filters = [6]"))
    spec = ex.load_spec(
        write_spec(
            tmp_path / "s.toml",
            """
        base = "configs/mine.toml"
        [variants.a]
        [variants.b]
        base = "smoke"
    """,
        )
    )
    assert Path(spec.base) == (tmp_path / "configs" / "mine.toml").resolve()
    configs = spec.configs()
    assert configs["a"].model.filters == (6,) and configs["b"].model.filters == (8,)
    (tmp_path / "elsewhere").mkdir()
    copy = write_spec(tmp_path / "elsewhere" / "copy.toml", spec.to_toml())
    assert ex.load_spec(copy).configs() == configs  # the copy names the base by its absolute path


def test_spec_toml_roundtrip(tmp_path):
    spec = ex.load_spec("compare_versions", overrides=["train.learning_rate=0.002"])
    copy = write_spec(tmp_path / "copy.toml", spec.to_toml(runs=5))
    again = ex.load_spec(copy)
    assert again.runs == 5 and again.configs() == spec.configs() and again.evaluate == spec.evaluate


def test_config_toml_roundtrip(tmp_path):
    from predrnn.jobs.config import load_config

    for config in ex.load_spec("compare_schedules").configs().values():
        path = tmp_path / "c.toml"
        path.write_text(ex.config_toml(config))
        assert load_config(str(path)) == config


# ----------------------------------------------------------------------------------
# A tiny real experiment (in-process train() and evaluate())
# ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_experiment(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    spec = write_spec(root / "tiny.toml", TINY)
    result = ex.run_experiment(spec, 2, root / "exp", in_process=True)
    return root / "exp", result


def test_tiny_experiment_tables(tiny_experiment):
    workdir, result = tiny_experiment
    assert result["exit_code"] == 0, [Path(r["log"]).read_text()[-2000:] for r in result["records"]]
    assert result["status"] == "finished" and len(result["records"]) == 4
    rows = read_csv(workdir / "results.csv")
    assert [(r["variant"], r["seed"], r["status"]) for r in rows] == [
        ("predrnn", "0", "finished"),
        ("predrnn", "1", "finished"),
        ("convlstm", "0", "finished"),
        ("convlstm", "1", "finished"),
    ]
    summary = {r["variant"]: r for r in read_csv(workdir / "summary.csv")}
    md = (workdir / "summary.md").read_text()
    for variant in ("predrnn", "convlstm"):
        reports = [json.loads((workdir / variant / f"seed_{s}" / "metrics.json").read_text()) for s in (0, 1)]
        for report, row in zip(reports, [r for r in rows if r["variant"] == variant]):
            assert report["num_sequences"] == 4 and report["test_set"]["seed"] == 3
            for metric in METRICS:
                assert float(row[metric]) == pytest.approx(report[metric], rel=1e-12)
        assert summary[variant]["runs_finished"] == "2" and summary[variant]["runs_total"] == "2"
        for metric in METRICS:
            values = np.array([r[metric] for r in reports])
            assert float(summary[variant][f"{metric}_mean"]) == pytest.approx(values.mean(), rel=1e-12)
            assert float(summary[variant][f"{metric}_std"]) == pytest.approx(values.std(ddof=1), rel=1e-9, abs=1e-15)
            for b in BASELINES:
                baseline = reports[0]["baselines"][b][metric]
                if np.isfinite(baseline):
                    assert float(summary[variant][f"{b}_{metric}"]) == pytest.approx(baseline)
        mean, std = (np.mean([r["mse_per_frame"] for r in reports]), np.std([r["mse_per_frame"] for r in reports], ddof=1))
        assert f"| {variant} | 2/2 |" in md and f"{mean:.2f} ± {std:.2f}" in md
    # same test set for every run: identical baselines, one row each in the table
    for b in BASELINES:
        assert len({r[f"{b}_mse_per_frame"] for r in rows}) == 1
    assert "copy last frame (baseline)" in md and "all black (zeros) (baseline)" in md and "mean of the context (baseline)" in md
    # the extra evaluation: its own file per run (2 digits, 3 sequences), columns and table
    for row in rows:
        extra = json.loads((workdir / row["variant"] / f"seed_{row['seed']}" / "metrics_two_digits.json").read_text())
        assert extra["test_set"]["num_digits"] == 2 and extra["num_sequences"] == 3 and extra["test_set"]["seed"] == 3
        assert float(row["two_digits_mse_per_frame"]) == pytest.approx(extra["mse_per_frame"], rel=1e-12)
        assert float(row["two_digits_zeros_mse_per_frame"]) == pytest.approx(
            extra["baselines"]["zeros"]["mse_per_frame"], rel=1e-12
        )
    assert "## Evaluation two_digits" in md and md.count("all black (zeros) (baseline)") == 2
    assert float(summary["predrnn"]["two_digits_mse_per_frame_mean"]) == pytest.approx(
        np.mean([float(r["two_digits_mse_per_frame"]) for r in rows if r["variant"] == "predrnn"]), rel=1e-12
    )
    assert (workdir / "summary_per_frame.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # learning curves: every epoch of every run's history.csv
    curves = read_csv(workdir / "learning_curves.csv")
    assert [(c["variant"], c["seed"], c["step"]) for c in curves] == [
        (v, str(s), "2") for v in ("predrnn", "convlstm") for s in (0, 1)
    ]
    history = read_csv(workdir / "convlstm" / "seed_1" / "history.csv")
    assert float(curves[-1]["val_mse_per_frame"]) == pytest.approx(float(history[-1]["val_mse_per_frame"]))
    assert (workdir / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (workdir / "summary.png").stat().st_size > 1000
    assert (workdir / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # layout
    assert (workdir / "spec.toml").is_file() and (workdir / "experiment.json").is_file()
    config = json.loads((workdir / "convlstm" / "seed_1" / "config.json").read_text())
    assert config["train"]["seed"] == 1 and config["model"]["architecture"] == "convlstm"
    log = (workdir / "predrnn" / "seed_0" / "log.txt").read_text()
    assert "(train in-process)" in log and "(evaluate in-process)" in log
    assert not (workdir / "predrnn" / "seed_0.log").exists()
    assert json.loads((workdir / "predrnn" / "seed_0" / "status.json").read_text())["status"] == "finished"


def test_tiny_experiment_resume_skips_finished_runs(tiny_experiment, monkeypatch):
    workdir, _ = tiny_experiment
    watched = [
        workdir / v / f"seed_{s}" / name
        for v in ("predrnn", "convlstm")
        for s in (0, 1)
        for name in ("metrics.json", "checkpoints/last.keras", "log.txt")
    ]
    before = {p: p.stat().st_mtime_ns for p in watched}

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished run was run again")

    monkeypatch.setattr("predrnn.jobs.train.train", must_not_run)
    monkeypatch.setattr("predrnn.jobs.evaluate.evaluate", must_not_run)
    source = json.loads((workdir / "experiment.json").read_text())["spec"]
    assert source.endswith(".toml") and source != str(workdir / "spec.toml")
    result = ex.run_experiment(workdir / "spec.toml", None, workdir, resume=True, in_process=True)
    assert result["exit_code"] == 0 and result["skipped"] == 4 and result["records"] == []
    # Resumed from the folder's own copy, the record still names the spec it came from.
    assert json.loads((workdir / "experiment.json").read_text())["spec"] == source
    assert (workdir / "spec.toml").read_text().startswith(f"# Experiment spec 'tiny' (resolved from {source}).")
    assert f"of {source};" in (workdir / "predrnn" / "config.toml").read_text().splitlines()[0]
    assert {p: p.stat().st_mtime_ns for p in watched} == before
    # the summary alone can be rebuilt
    assert ex.summarize_experiment(workdir)["counts"]["finished"] == 4


def test_export_copies_the_results_without_the_weights(tiny_experiment, tmp_path, capsys):
    from predrnn.cli import main

    workdir, _ = tiny_experiment
    out = tmp_path / "published" / "tiny"
    assert main(["experiment-summary", str(workdir), "--export", str(out)]) == 0
    assert "Exported 4 finished run(s)" in capsys.readouterr().out
    runs = [f"{v}/seed_{s}" for s in (0, 1) for v in ("predrnn", "convlstm")]
    assert sorted(json.loads((out / "export.json").read_text())["runs"]) == sorted(runs)
    for name in ("experiment.json", "spec.toml", "results.csv", "summary.md", "summary.png", "learning_curves.csv"):
        assert (out / name).read_bytes() == (workdir / name).read_bytes(), name
    assert (out / "convlstm" / "config.toml").read_text() == (workdir / "convlstm" / "config.toml").read_text()
    for run in runs:
        kept = sorted(p.name for p in (out / run).iterdir())
        assert kept == sorted(
            [
                "config.json",
                "history.csv",
                "log.txt",
                "metrics.csv",
                "metrics.json",
                "metrics_two_digits.csv",
                "metrics_two_digits.json",
                "run.json",
                "status.json",
            ]
        ), kept
        assert (workdir / run / "checkpoints" / "last.keras").is_file()  # left behind, not moved
    # An export is an experiment folder: its tables rebuild to the same numbers.
    before = read_csv(out / "summary.csv")
    assert main(["experiment-summary", str(out)]) == 0
    assert read_csv(out / "summary.csv") == before
    # Exporting again replaces the earlier export as a whole.
    (out / "predrnn" / "seed_0" / "stale.txt").write_text("from an earlier export")
    assert ex.export_experiment(workdir, out, plot=False)["runs"] == json.loads((out / "export.json").read_text())["runs"]
    assert not (out / "predrnn" / "seed_0" / "stale.txt").exists() and (out / "predrnn" / "seed_0" / "metrics.json").is_file()
    assert not any(p.name.startswith(".tiny") for p in out.parent.iterdir())


def test_export_refuses_a_folder_it_did_not_write(tiny_experiment, tmp_path, capsys):
    from predrnn.cli import main

    workdir, _ = tiny_experiment
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert main(["experiment-summary", str(workdir), "--export", str(mine)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("predrnn experiment-summary: error: ") and "is not empty and is not an earlier export" in err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep"
    (tmp_path / "afile").write_text("keep")
    with pytest.raises(ConfigError, match="it is a file"):
        ex.export_experiment(workdir, tmp_path / "afile")
    for inside in (workdir, workdir / "export", workdir.parent):
        with pytest.raises(ConfigError, match="Export to a folder"):
            ex.export_experiment(workdir, inside)
    with pytest.raises(ConfigError, match="not an experiment folder"):
        ex.export_experiment(mine, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_existing_workdir_is_refused_without_resume(tiny_experiment):
    workdir, _ = tiny_experiment
    with pytest.raises(ConfigError, match="--resume"):
        ex.run_experiment(workdir / "spec.toml", 2, workdir, in_process=True)
    (workdir.parent / "other").mkdir()
    (workdir.parent / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        ex.run_experiment(workdir / "spec.toml", 2, workdir.parent / "other", in_process=True)
    assert (workdir.parent / "other" / "notes.txt").read_text() == "mine"


def test_resume_refuses_a_changed_variant(tiny_experiment):
    workdir, _ = tiny_experiment
    with pytest.raises(ConfigError, match="differs from its runs"):
        ex.run_experiment(workdir / "spec.toml", 2, workdir, overrides=["train.learning_rate=0.5"], resume=True, in_process=True)
    spec = write_spec(workdir.parent / "other_eval.toml", TINY.replace("num = 4", "num = 5"))
    with pytest.raises(ConfigError, match="evaluate"):
        ex.run_experiment(spec, 2, workdir, resume=True, in_process=True)


# ----------------------------------------------------------------------------------
# Failures and resume, with fake train()/evaluate() (fast)
# ----------------------------------------------------------------------------------


def fake_metrics(variant, seed):
    value = 10.0 + 3.0 * seed + len(variant)
    metrics = {m: value + i for i, m in enumerate(METRICS)}
    baselines = {b: {m: 100.0 + i + j for i, m in enumerate(METRICS)} for j, b in enumerate(BASELINES)}
    return {**metrics, "num_sequences": 4, "test_set": {"kind": "fake"}, "baselines": baselines}


@pytest.fixture
def no_plot(monkeypatch):
    """summary.png is checked once (the tiny experiment); elsewhere skip matplotlib's ~1 s."""
    monkeypatch.setattr(experiment_summary, "_plot_summary", lambda path, aggregates: None)


@pytest.fixture
def fakes(monkeypatch, no_plot):
    calls = []

    def train(config, workdir, *, resume=False, overwrite=False):
        workdir = Path(workdir)
        calls.append(("train", workdir.parent.name, config.train.seed, resume, overwrite))
        if config.train.learning_rate == 0.123:
            raise RuntimeError("boom: this variant crashes")
        if not resume and workdir.exists() and any(workdir.iterdir()):
            assert overwrite
            workdir.rename(workdir.with_name(workdir.name + ".old"))
        (workdir / "checkpoints").mkdir(parents=True, exist_ok=True)
        (workdir / "checkpoints" / "last.keras").write_text("weights")
        print("training output")
        return {"interrupted": False}

    def evaluate(run, *, output, **kwargs):
        run = Path(run)
        calls.append(("evaluate", run.parent.name, int(run.name.split("_")[1]), kwargs))
        Path(output).write_text(json.dumps(fake_metrics(run.parent.name, int(run.name.split("_")[1]))))
        return {}

    monkeypatch.setattr("predrnn.jobs.train.train", train)
    monkeypatch.setattr("predrnn.jobs.evaluate.evaluate", evaluate)
    return calls


FAKE_SPEC = """
    base = "smoke"
    [evaluate]
    num = 4
    digits = 1
    [variants.good]
    set = []
    [variants.bad]
    set = ["train.learning_rate=0.123"]
"""


def test_failed_run_is_recorded_and_others_continue(tmp_path, fakes):
    spec = write_spec(tmp_path / "s.toml", FAKE_SPEC)
    result = ex.run_experiment(spec, 2, tmp_path / "exp", in_process=True)
    assert result["exit_code"] == 1 and result["status"] == "failed"
    assert [(r["variant"], r["seed"], r["status"]) for r in result["records"]] == [  # seed by seed
        ("good", 0, "finished"),
        ("bad", 0, "failed"),
        ("good", 1, "finished"),
        ("bad", 1, "failed"),
    ]
    evaluations = [c for c in fakes if c[0] == "evaluate"]
    assert [c[1:3] for c in evaluations] == [("good", 0), ("good", 1)]
    assert evaluations[0][3] == {
        "num": 4,
        "seed": 0,
        "batch_size": 16,
        "num_digits": 1,
        "progress": False,
        "overwrite": True,
        "pictures": 4,
    }
    rows = read_csv(tmp_path / "exp" / "results.csv")
    bad = [r for r in rows if r["variant"] == "bad"]
    assert [r["status"] for r in bad] == ["failed", "failed"] and bad[0]["log"] == "bad/seed_0/log.txt"
    assert bad[0]["mse_per_frame"] == ""
    log = (tmp_path / "exp" / "bad" / "seed_0" / "log.txt").read_text()
    assert "RuntimeError: boom: this variant crashes" in log
    status = json.loads((tmp_path / "exp" / "bad" / "seed_0" / "status.json").read_text())
    assert status["status"] == "failed" and status["stage"] == "train"
    summary = {r["variant"]: r for r in read_csv(tmp_path / "exp" / "summary.csv")}
    assert summary["bad"]["runs_finished"] == "0" and summary["bad"]["mse_per_frame_mean"] == ""
    assert float(summary["good"]["mse_per_frame_mean"]) == pytest.approx(np.mean([14.0, 17.0]))
    assert float(summary["good"]["mse_per_frame_std"]) == pytest.approx(np.std([14.0, 17.0], ddof=1))
    md = (tmp_path / "exp" / "summary.md").read_text()
    assert "| bad | 0/2 |" in md and "bad seed 0: failed (log: `bad/seed_0/log.txt`)" in md


def test_resume_skips_finished_resumes_interrupted_and_starts_missing(tmp_path, fakes):
    spec = write_spec(tmp_path / "s.toml", FAKE_SPEC.replace('set = ["train.learning_rate=0.123"]', "set = []"))
    workdir = tmp_path / "exp"
    assert ex.run_experiment(spec, 2, workdir, in_process=True)["exit_code"] == 0
    # interrupted after a checkpoint: last.keras, no metrics; died before its first checkpoint; never started
    (workdir / "good" / "seed_1" / "metrics.json").unlink()
    (workdir / "bad" / "seed_0" / "metrics.json").unlink()
    (workdir / "bad" / "seed_0" / "checkpoints" / "last.keras").unlink()
    finished = workdir / "good" / "seed_0" / "metrics.json"
    mtime = finished.stat().st_mtime_ns
    fakes.clear()
    result = ex.run_experiment(spec, 3, workdir, resume=True, in_process=True)
    assert result["exit_code"] == 0 and result["skipped"] == 2
    trains = sorted(c for c in fakes if c[0] == "train")
    assert trains == [
        ("train", "bad", 0, False, True),  # no checkpoint: started again, the old folder kept (renamed)
        ("train", "bad", 2, False, False),  # new (--runs 3)
        ("train", "good", 1, True, False),  # resumed from last.keras
        ("train", "good", 2, False, False),
    ]
    assert finished.stat().st_mtime_ns == mtime
    assert (workdir / "bad" / "seed_0.old").is_dir()
    record = json.loads((workdir / "experiment.json").read_text())
    assert [(t["index"], t["variant"], t["seed"]) for t in record["tasks"]] == [
        (0, "good", 0),
        (1, "good", 1),
        (2, "bad", 0),
        (3, "bad", 1),
        (4, "good", 2),
        (5, "bad", 2),
    ]
    rows = read_csv(workdir / "results.csv")
    assert len(rows) == 6 and all(r["status"] == "finished" for r in rows)


def test_resume_moves_the_log_of_an_attempt_stopped_with_the_experiment(tmp_path, fakes):
    spec = write_spec(tmp_path / "s.toml", FAKE_SPEC.replace('set = ["train.learning_rate=0.123"]', "set = []"))
    workdir = tmp_path / "exp"
    assert ex.run_experiment(spec, 1, workdir, in_process=True)["exit_code"] == 0
    # The experiment process was killed during the first attempt: a checkpoint, and the
    # attempt's log still beside the run folder (it is moved in only after training returns).
    folder = workdir / "good" / "seed_0"
    for name in ("metrics.json", "log.txt", "status.json"):
        (folder / name).unlink()
    (workdir / "good" / "seed_0.log").write_text("first attempt: epochs 1-7\n")
    fakes.clear()
    result = ex.run_experiment(spec, 1, workdir, resume=True, in_process=True)
    assert result["exit_code"] == 0 and [c[1:4] for c in fakes if c[0] == "train"] == [("good", 0, True)]
    assert not (workdir / "good" / "seed_0.log").exists()
    log = (folder / "log.txt").read_text()
    assert log.startswith("first attempt: epochs 1-7\n") and "(train in-process)" in log


def test_summary_single_run_and_statuses(tmp_path, fakes):
    spec = write_spec(tmp_path / "s.toml", FAKE_SPEC)
    ex.run_experiment(spec, 1, tmp_path / "exp", in_process=True)
    summary = ex.summarize_experiment(tmp_path / "exp")
    good = summary["variants"]["good"]["metrics"]["ssim"]
    assert good["std"] == 0.0 and good["values"] == [fake_metrics("good", 0)["ssim"]]
    assert summary["counts"] == {"finished": 1, "failed": 1, "interrupted": 0, "incomplete": 0, "not_started": 0}


def test_summary_names_a_shipped_spec_and_gives_another_by_its_path(tmp_path, fakes):
    spec = write_spec(tmp_path / "s.toml", FAKE_SPEC)
    ex.run_experiment(spec, 1, tmp_path / "exp", in_process=True)
    ex.summarize_experiment(tmp_path / "exp")
    assert f"spec: `{tmp_path / 's.toml'}`." in (tmp_path / "exp" / "summary.md").read_text()
    # A shipped spec's path is only where one machine installed the package.
    record = json.loads((tmp_path / "exp" / "experiment.json").read_text())
    record["spec"] = "/opt/venv/lib/python3.11/site-packages/predrnn/experiments/compare_models.toml"
    (tmp_path / "exp" / "experiment.json").write_text(json.dumps(record))
    ex.summarize_experiment(tmp_path / "exp")
    assert "spec: `compare_models` (shipped with predrnn)." in (tmp_path / "exp" / "summary.md").read_text()


# ----------------------------------------------------------------------------------
# Local subprocess runs, with a fake interpreter standing in for `python -m predrnn`
# ----------------------------------------------------------------------------------


FAKE_PYTHON = """#!{python}
import json, os, sys, time
from pathlib import Path

args = sys.argv[1:]
assert args[:2] == ["-m", "predrnn"], args
with open(os.environ["FAKE_PREDRNN_CALLS"], "a") as handle:
    handle.write(json.dumps(args[2:]) + "\\n")

def option(name):
    return args[args.index(name) + 1]

if args[2] == "train":
    workdir = Path(option("--workdir"))
    if "learning_rate = 0.123" in Path(args[3]).read_text():
        print("boom: training failed")
        sys.exit(1)
    if "--resume" not in args and workdir.exists() and any(workdir.iterdir()):
        print("workdir exists")
        sys.exit(2)
    (workdir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (workdir / "checkpoints" / "last.keras").write_text("weights")
    time.sleep(0.2)
    print("trained", option("--set"))
else:
    run = Path(args[3])
    seed = int(run.name.split("_")[1])
    value = 10.0 + 3.0 * seed + len(run.parent.name)
    report = {{m: value for m in {metrics!r}}}
    report["baselines"] = {{b: {{m: 100.0 for m in {metrics!r}}} for b in ("copy_last", "zeros", "context_mean")}}
    report["num_sequences"] = int(option("--num"))
    Path(option("--output")).write_text(json.dumps(report))
    print("evaluated")
"""


@pytest.fixture
def fake_python(tmp_path, monkeypatch, no_plot):
    path = tmp_path / "bin" / "python"
    path.parent.mkdir()
    path.write_text(FAKE_PYTHON.format(python=sys.executable, metrics=METRICS))
    path.chmod(0o755)
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_PREDRNN_CALLS", str(calls))

    def read_calls():
        return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []

    return str(path), read_calls


def test_local_subprocess_runs_in_parallel(tmp_path, fake_python):
    python, calls = fake_python
    spec = write_spec(tmp_path / "s.toml", FAKE_SPEC)
    result = ex.run_experiment(spec, 2, tmp_path / "exp", parallel=2, backend="jax", python=python)
    assert result["exit_code"] == 1
    assert sorted((r["variant"], r["seed"], r["status"]) for r in result["records"]) == [
        ("bad", 0, "failed"),
        ("bad", 1, "failed"),
        ("good", 0, "finished"),
        ("good", 1, "finished"),
    ]
    train = [c for c in calls() if c[0] == "train"]
    assert len(train) == 4 and all(c[c.index("--backend") + 1] == "jax" for c in train)
    assert ["--set", "train.seed=1"] in [c[i : i + 2] for c in train for i in range(len(c))]
    evaluate = [c for c in calls() if c[0] == "evaluate"]
    assert len(evaluate) == 2 and all(c[c.index("--num") + 1] == "4" for c in evaluate)
    log = (tmp_path / "exp" / "bad" / "seed_1" / "log.txt").read_text()
    assert "-m predrnn train" in log and "boom: training failed" in log
    good_log = (tmp_path / "exp" / "good" / "seed_0" / "log.txt").read_text()
    assert "trained train.seed=0" in good_log and "evaluated" in good_log
    rows = read_csv(tmp_path / "exp" / "results.csv")
    assert {r["status"] for r in rows if r["variant"] == "bad"} == {"failed"}
    # resume: the finished runs are skipped; the failed variant's runs are tried again
    before = len(calls())
    again = ex.run_experiment(spec, 2, tmp_path / "exp", resume=True, backend="jax", python=python)
    assert again["skipped"] == 2 and again["exit_code"] == 1
    assert [c[0] for c in calls()[before:]] == ["train", "train"]
    assert all("--overwrite" in c for c in calls()[before:])  # folders without a checkpoint: kept, renamed


def test_run_task_resumes_and_skips(tmp_path, fake_python):
    python, calls = fake_python
    spec = write_spec(tmp_path / "s.toml", FAKE_SPEC)
    workdir = tmp_path / "exp"
    ex.prepare_experiment(ex.load_spec(spec), 2, workdir, backend="torch")
    record = ex.run_task(workdir, 1, python=python, echo=False)
    assert record["status"] == "finished" and record["exit_code"] == 0
    assert calls()[0][:2] == ["train", str(workdir.resolve() / "good" / "config.toml")]
    assert "torch" in calls()[0]
    assert ex.run_task(workdir, 1, python=python)["skipped"]
    assert ex.run_task(workdir, 2, python=python, echo=False)["exit_code"] == 1
    with pytest.raises(ConfigError, match="not in"):
        ex.run_task(workdir, 9, python=python)


def test_dry_run_writes_nothing(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.toml", FAKE_SPEC)
    result = ex.run_experiment(spec, 2, tmp_path / "exp", dry_run=True, backend="tensorflow")
    assert result["status"] == "dry_run" and result["exit_code"] == 0
    assert not (tmp_path / "exp").exists()
    out = capsys.readouterr().out
    assert "4 to run" in out and "-m predrnn train" in out and "train.seed=1" in out
    # seed by seed, so that a stopped experiment has every variant at the same seeds
    order = re.findall(r"^  (\w+) seed (\d):", out, flags=re.M)
    assert order == [("good", "0"), ("bad", "0"), ("good", "1"), ("bad", "1")]


# ----------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------


def test_cli_experiment_commands(tmp_path, fake_python, monkeypatch, capsys):
    from predrnn.cli import main

    python, calls = fake_python
    monkeypatch.setattr(sys, "executable", python)
    spec = write_spec(tmp_path / "s.toml", FAKE_SPEC.replace('set = ["train.learning_rate=0.123"]', "set = []"))
    workdir = tmp_path / "exp"
    assert main(["experiment", str(spec), "--runs", "1", "--workdir", str(workdir)]) == 0
    out = capsys.readouterr().out
    assert "| good | 1/1 |" in out and "summary.md" in out
    assert main(["experiment", str(spec), "--runs", "1", "--workdir", str(workdir)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["experiment", "--workdir", str(workdir), "--resume"]) == 0  # the folder's spec.toml
    assert "2 of 2 runs already finished" in capsys.readouterr().out
    (workdir / "summary.md").unlink()
    assert main(["experiment-summary", str(workdir)]) == 0
    assert (workdir / "summary.md").is_file() and "| bad | 1/1 |" in capsys.readouterr().out
    assert main(["experiment", "--workdir", str(workdir), "--summarize-only"]) == 0
    assert main(["experiment", "compare_modles", "--workdir", str(tmp_path / "x")]) == 2
    assert "Did you mean 'compare_models'" in capsys.readouterr().err
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    assert main(["experiment-task", str(workdir)]) == 0
    assert "task 0: finished" in capsys.readouterr().out


def test_summary_table_shows_a_spread_only_over_several_runs():
    def aggregate(finished, mean, std):
        return {
            "finished": finished,
            "total": 5,
            "metrics": {m: {"mean": mean, "std": std} for m in METRICS},
            "baselines": {b: {m: 99.0 for m in METRICS} for b in BASELINES},
        }

    table = experiment_summary.format_summary_table({"one": aggregate(1, 40.0, 0.0), "three": aggregate(3, 50.0, 2.5)})
    one = next(line for line in table.splitlines() if line.startswith("| one |"))
    three = next(line for line in table.splitlines() if line.startswith("| three |"))
    assert "| one | 1/5 | **40.00** |" in one and "±" not in one
    assert "| three | 3/5 | 50.00 ± 2.50 |" in three


def test_summary_table_shows_a_baseline_once_when_its_variants_agree_as_printed():
    def aggregate(baseline):
        return {
            "finished": 3,
            "total": 5,
            "metrics": {m: {"mean": 40.0, "std": 1.0} for m in METRICS},
            "baselines": {b: {m: baseline for m in METRICS} for b in BASELINES},
        }

    # A mean over runs of one value can differ from it in the last bit: one row, not one per variant.
    x = 89.68878934326172
    table = experiment_summary.format_summary_table({"a": aggregate(x), "b": aggregate(math.nextafter(x, math.inf))})
    assert table.count("all black (zeros) (baseline)") == 1 and "test set)" not in table
    # Test sets that really differ keep a row each.
    table = experiment_summary.format_summary_table({"a": aggregate(89.69), "b": aggregate(175.7)})
    assert "all black (zeros) (a's test set)" in table and "all black (zeros) (b's test set)" in table
