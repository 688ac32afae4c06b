"""Experiments: N seeded runs of several config variants, evaluated on one test set,
aggregated into a table (mean and standard deviation per variant).

An experiment spec is a TOML file (or a shipped spec name, see :func:`spec_names`)::

    base = "quickstart"                  # a preset or a .toml config (relative to the spec);
                                         # a variant may have its own base
    set = ["train.steps=300"]            # overrides for every variant (optional)
    runs = 3                             # default run count (--runs overrides it)
    [evaluate]                           # the evaluation of every run: num, seed, digits,
    num = 200                            # batch_size, context, horizon, data
    [variants.convlstm]
    set = ["model.architecture=\\"convlstm\\""]
    [variants.predrnn_ss]
    sampling = { schedule = "linear", rate = 0.004 }   # a table replaces that whole section
    [slurm]                              # sbatch options (partition, time, gpus, ...)
    time = "02:00:00"

A variant's config is: its base (the variant's own, else the spec's), then the
spec's ``set`` (and ``--set``), then the variant's section tables (each replaces that
whole section), then the variant's ``set``. Run ``i`` (0..N-1) of each variant uses
``train.seed = i``; every run is evaluated on the same test set. ``--set`` also takes the
``[evaluate]`` keys (``evaluate.num=50``, ``evaluate.extra.NAME.KEY=VALUE``).

Experiment folder (``workdir``)::

    spec.toml                  the resolved spec (a valid spec: pass it back with --resume)
    experiment.json            runs, backend, evaluation options and the task table
    <variant>/config.toml      the variant's resolved config (train.seed is set per run)
    <variant>/seed_<i>/        a training run folder (see predrnn.jobs.train), then
                               metrics.json (+ .csv, .png) from evaluate, log.txt
                               (train and evaluate output) and status.json
    results.csv                one row per run: variant, seed, status, metrics, log
    summary.csv, summary.md    per variant: mean and std of each metric, finished runs,
                               the baselines (copy last frame, all black, mean of
                               the context: predrnn.baselines)
    summary.png                bar chart with error bars, one panel per metric
    slurm/                     with --slurm: job.sbatch, tasks.json, logs/, submissions.json

``predrnn experiment-summary DIR --export OUT`` (:func:`export_experiment`) copies the
results without the weights (the record, the tables, and each finished run's config,
history, metrics, status and log) to OUT: an experiment folder small enough to commit.

Until a run's folder exists (its first training attempt), its log is
``<variant>/seed_<i>.log``; it is moved into the folder as ``log.txt`` when that attempt
ends, or when the run resumes if the experiment was stopped during it.

Modules: ``spec`` (reading and checking specs, TOML writing), ``state`` (the experiment
folder and each run's status), ``runner`` (running the runs), ``slurm`` (Slurm job arrays),
``summary`` (the tables and the chart), ``export`` (the results without the weights) and ``commands`` (the ``predrnn experiment*``
subcommands).
"""

from predrnn.jobs.experiment.export import export_experiment
from predrnn.jobs.experiment.runner import execute_run, run_commands, run_experiment, run_task
from predrnn.jobs.experiment.spec import (
    DEFAULT_RUNS,
    SPECS_DIR,
    ExperimentSpec,
    Variant,
    config_toml,
    load_spec,
    resolve_spec_path,
    spec_from_dict,
    spec_names,
    toml_dumps,
    variant_config,
)
from predrnn.jobs.experiment.state import STATUSES, load_experiment, prepare_experiment, run_dir, run_status
from predrnn.jobs.experiment.summary import METRICS, format_summary_table, summarize_experiment

__all__ = [
    "DEFAULT_RUNS",
    "METRICS",
    "SPECS_DIR",
    "STATUSES",
    "ExperimentSpec",
    "Variant",
    "config_toml",
    "execute_run",
    "export_experiment",
    "format_summary_table",
    "load_experiment",
    "load_spec",
    "prepare_experiment",
    "resolve_spec_path",
    "run_commands",
    "run_dir",
    "run_experiment",
    "run_status",
    "run_task",
    "spec_from_dict",
    "spec_names",
    "summarize_experiment",
    "toml_dumps",
    "variant_config",
]
