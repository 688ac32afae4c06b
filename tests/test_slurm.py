"""Slurm job arrays: options, the sbatch script, tasks.json, (re)submission with fake
sbatch/squeue executables; and, only where a Slurm cluster answers, a real run."""

import json
import os
import shutil
import subprocess
import textwrap
import time
import warnings

import pytest

from predrnn.baselines import BASELINES
from predrnn.errors import ConfigError, PredRNNError
from predrnn.jobs import experiment as ex
from predrnn.jobs.experiment import slurm
from predrnn.jobs.experiment import summary as experiment_summary

SPEC = """
    base = "smoke"
    set = ["train.steps=2"]
    [evaluate]
    num = 4
    [variants.a]
    [variants.b]
    set = ["model.architecture=\\"convlstm\\""]
    [slurm]
    partition = "gpu"
    time = "01:00:00"
    cpus = 4
    setup = ["source /opt/venv/bin/activate"]
"""

FAKE_SBATCH = """#!/bin/sh
echo "$@" >> "{calls}"
echo "Submitted batch job $(( 122 + $(wc -l < "{calls}") ))"
"""

FAKE_SQUEUE = """#!/bin/sh
cat "{queue}" 2>/dev/null
"""


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """sbatch records its arguments (job ids 123, 124, ...); squeue prints DIR/queue.txt."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls, queue = tmp_path / "sbatch_calls.txt", tmp_path / "queue.txt"
    (bin_dir / "sbatch").write_text(FAKE_SBATCH.format(calls=calls))
    (bin_dir / "squeue").write_text(FAKE_SQUEUE.format(queue=queue))
    for name in ("sbatch", "squeue"):
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(experiment_summary, "_plot_summary", lambda path, aggregates: None)

    def read_calls():
        return [line.split() for line in calls.read_text().splitlines()] if calls.exists() else []

    return read_calls, queue


def write_spec(path, text=SPEC):
    path.write_text(textwrap.dedent(text))
    return path


def test_option_checks():
    assert slurm.check_options({"cpus": 4, "gpus": 1, "time": "04:00:00", "mem_per_cpu": "4G", "exclusive": True}) == {
        "cpus-per-task": 4,
        "gpus": 1,
        "time": "04:00:00",
        "mem-per-cpu": "4G",
        "exclusive": True,
    }
    with pytest.raises(ConfigError, match="Did you mean 'partition'"):
        slurm.check_options({"partiton": "gpu"})
    with pytest.raises(ConfigError, match="%K"):
        slurm.check_options({"array": "0-3"})
    with pytest.raises(ConfigError, match="logs"):
        slurm.check_options({"output": "x.out"})
    assert slurm.parse_option_texts(["partition=gpu", "gpus=2", "setup=module load cuda"]) == {
        "partition": "gpu",
        "gpus": "2",
        "setup": ["module load cuda"],
    }
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        slurm.parse_option_texts(["partition"])
    assert slurm.format_array([0, 1, 2, 5, 7, 8, 11]) == "0-2,5,7-8,11"
    assert slurm._expand_indices("[1,3-5%2]") == {1, 3, 4, 5} and slurm._expand_indices("7") == {7}


def test_sbatch_script_and_tasks(tmp_path, fake_slurm):
    calls, _ = fake_slurm
    spec = write_spec(tmp_path / "s.toml")
    workdir = tmp_path / "exp"
    result = ex.run_experiment(
        spec, 3, workdir, slurm=True, backend="jax", parallel=2, slurm_options={"gpus": "1", "time": "02:00:00"}
    )
    assert result["status"] == "submitted" and result["exit_code"] == 0 and result["job_id"] == "123"
    script = (workdir / "slurm" / "job.sbatch").read_text()
    resolved = workdir.resolve()
    assert script.startswith("#!/bin/bash\n")
    assert "#SBATCH --array=0-5%2\n" in script
    assert f"#SBATCH --output={resolved}/slurm/logs/%A_%a.out\n" in script
    assert "#SBATCH --partition=gpu\n" in script and "#SBATCH --cpus-per-task=4\n" in script
    assert "#SBATCH --gpus=1\n" in script and "#SBATCH --time=02:00:00\n" in script  # --slurm-option wins
    assert "#SBATCH --job-name=predrnn-s\n" in script
    assert "source /opt/venv/bin/activate\n" in script
    assert f'-m predrnn experiment-task {resolved} "${{SLURM_ARRAY_TASK_ID}}" --backend jax' in script
    assert (workdir / "slurm" / "logs").is_dir()
    tasks = json.loads((workdir / "slurm" / "tasks.json").read_text())
    assert [(t["index"], t["variant"], t["seed"]) for t in tasks["tasks"]] == [
        (0, "a", 0),
        (1, "a", 1),
        (2, "a", 2),
        (3, "b", 0),
        (4, "b", 1),
        (5, "b", 2),
    ]
    assert tasks["tasks"][4]["run_dir"] == str(resolved / "b" / "seed_1")
    # the array job, then the summary job after it
    assert calls() == [
        [str(resolved / "slurm" / "job.sbatch")],
        ["--dependency=afterany:123", str(resolved / "slurm" / "summary.sbatch")],
    ]
    summary_script = (workdir / "slurm" / "summary.sbatch").read_text()
    assert "#SBATCH --partition=gpu" in summary_script and "gpus" not in summary_script
    assert f"-m predrnn experiment-summary {resolved}" in summary_script
    submissions = json.loads((workdir / "slurm" / "submissions.json").read_text())
    assert submissions[0]["job_id"] == "123" and submissions[0]["indices"] == [0, 1, 2, 3, 4, 5]
    # the script's task command runs: task 4 is b, seed 1
    assert ex.load_experiment(workdir)["tasks"][4] == {"index": 4, "variant": "b", "seed": 1}


def test_resubmits_only_unfinished_tasks(tmp_path, fake_slurm):
    calls, queue = fake_slurm
    spec = write_spec(tmp_path / "s.toml")
    workdir = tmp_path / "exp"
    ex.run_experiment(spec, 3, workdir, slurm=True)
    # tasks 0, 1 and 4 finished; task 3 is still queued; 2 and 5 failed or never ran
    for variant, seed in (("a", 0), ("a", 1), ("b", 1)):
        folder = ex.run_dir(workdir, variant, seed)
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(
            json.dumps(
                {
                    **{m: 1.0 for m in ex.METRICS},
                    "baselines": {b: {m: 2.0 for m in ex.METRICS} for b in BASELINES},
                    "num_sequences": 4,
                }
            )
        )
    queue.write_text("123|3|PENDING\n999|2|RUNNING\n")  # 999 is not ours
    result = ex.run_experiment(workdir / "spec.toml", None, workdir, slurm=True, resume=True)
    resolved = workdir.resolve()
    assert result["indices"] == [2, 5] and result["queued"] == [3] and result["job_id"] == "125"
    assert calls()[2] == ["--array=2,5", str(resolved / "slurm" / "job.sbatch")]
    assert calls()[3] == ["--dependency=afterany:125", str(resolved / "slurm" / "summary.sbatch")]
    assert "#SBATCH --array=0-5\n" in (workdir / "slurm" / "job.sbatch").read_text()
    # nothing left: no submission, the summary is rebuilt
    for variant, seed in (("a", 2), ("b", 0), ("b", 2)):
        folder = ex.run_dir(workdir, variant, seed)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.json").write_text((ex.run_dir(workdir, "a", 0) / "metrics.json").read_text())
    queue.write_text("")
    result = ex.run_experiment(workdir / "spec.toml", None, workdir, slurm=True, resume=True)
    assert result["status"] == "nothing_to_submit" and len(calls()) == 4
    assert result["summary"]["counts"]["finished"] == 6 and (workdir / "summary.csv").is_file()


def test_dry_run_writes_the_script_without_sbatch(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch
    spec = write_spec(tmp_path / "s.toml")
    with pytest.raises(PredRNNError, match="--dry-run"):
        ex.run_experiment(spec, 2, tmp_path / "exp", slurm=True)
    assert not (tmp_path / "exp").exists()  # checked before anything is written
    result = ex.run_experiment(spec, 2, tmp_path / "exp", slurm=True, dry_run=True)
    assert result["status"] == "dry_run" and (tmp_path / "exp" / "slurm" / "job.sbatch").is_file()
    assert "#SBATCH --array=0-3\n" in (tmp_path / "exp" / "slurm" / "job.sbatch").read_text()
    assert "sbatch " in capsys.readouterr().out


def test_sbatch_refusal_is_a_clear_error(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text("#!/bin/sh\necho 'sbatch: error: invalid partition specified: gpu' >&2\nexit 1\n")
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(PredRNNError, match="invalid partition"):
        ex.run_experiment(write_spec(tmp_path / "s.toml"), 1, tmp_path / "exp", slurm=True)


def test_cli_slurm(tmp_path, fake_slurm, capsys):
    from predrnn.cli import main

    calls, _ = fake_slurm
    spec = write_spec(tmp_path / "s.toml")
    code = main(
        [
            "experiment",
            str(spec),
            "--runs",
            "1",
            "--workdir",
            str(tmp_path / "exp"),
            "--slurm",
            "--slurm-option",
            "qos=high",
            "--slurm-option",
            "partition=cpu",
        ]
    )
    assert code == 0 and "Submitted job array 123" in capsys.readouterr().out
    script = (tmp_path / "exp" / "slurm" / "job.sbatch").read_text()
    assert "#SBATCH --qos=high\n" in script and "#SBATCH --partition=cpu\n" in script and "#SBATCH --array=0-1\n" in script
    assert main(["experiment", str(spec), "--workdir", str(tmp_path / "exp2"), "--slurm", "--slurm-option", "partiton=cpu"]) == 2
    assert "Did you mean 'partition'" in capsys.readouterr().err


def _slurm_answers() -> bool:
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return False
    try:
        # a live controller answers at once; without one sinfo retries for ~10 s
        result = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=3)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and any(s.strip("*~#") in ("idle", "mixed", "allocated") for s in result.stdout.split())


with warnings.catch_warnings():  # until pyproject.toml registers the "slurm" marker
    warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
    needs_slurm = pytest.mark.slurm


@needs_slurm
def test_real_slurm_array(tmp_path_factory):
    """Submit a 2-task array of the smoke experiment to the real cluster and wait for
    both tasks and the summary job (run with `pytest -m slurm`; on a multi-node cluster
    pass a --basetemp on a file system the compute nodes share)."""
    if not _slurm_answers():  # asked here, not at collection: sinfo may take seconds to fail
        pytest.skip("no Slurm cluster answers (sinfo)")
    root = tmp_path_factory.mktemp("slurm")
    spec = write_spec(
        root / "s.toml",
        """
        base = "smoke"
        set = ["train.steps=2"]
        [evaluate]
        num = 4
        [variants.a]
        [slurm]
        time = "00:20:00"
    """,
    )
    workdir = root / "exp"
    result = ex.run_experiment(spec, 2, workdir, slurm=True, backend=os.environ.get("KERAS_BACKEND", "tensorflow"))
    assert result["status"] == "submitted"
    summary_job = result["summary_job_id"]
    deadline = time.time() + 900
    while time.time() < deadline:
        queued = subprocess.run(
            ["squeue", "--noheader", "--jobs", f"{result['job_id']},{summary_job}"], capture_output=True, text=True
        ).stdout.strip()
        if not queued:
            break
        time.sleep(5)
    logs = {p.name: p.read_text()[-3000:] for p in (workdir / "slurm" / "logs").glob("*.out")}
    rows = (workdir / "results.csv").read_text() if (workdir / "results.csv").exists() else ""
    assert rows.count(",finished,") == 2, logs
    assert (workdir / "summary.md").is_file() and "| a | 2/2 |" in (workdir / "summary.md").read_text()
    assert sum(name.startswith(f"{result['job_id']}_") for name in logs) == 2
