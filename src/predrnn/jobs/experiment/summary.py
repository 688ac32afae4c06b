"""The experiment's tables: results.csv (one row per run), summary.csv and summary.md (mean
and standard deviation per variant, with the baselines), the summary.png bar chart and the
summary_per_frame.png curves (per-frame MSE and SSIM of each variant, mean over its runs),
and the learning curves of every run (learning_curves.csv, from each run's history.csv, and
learning_curves.png: the held-out validation MSE and SSIM against the training step, the mean
over each variant's runs).

Each ``[evaluate.extra.NAME]`` evaluation (``metrics_NAME.json`` in every run folder) gets
its own columns (``NAME_<metric>``) and its own table in summary.md.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from predrnn.baselines import BASELINE_LABELS, BASELINES
from predrnn.jobs.experiment.spec import SPECS_DIR
from predrnn.jobs.experiment.state import STATUSES, _atomic_write, _pending_log, _read_json, load_experiment, run_dir, run_status
from predrnn.visualize import save_figure

METRICS = ("mse_per_frame", "mae_per_frame", "ssim", "psnr", "mse_per_pixel")
LOWER_IS_BETTER = frozenset({"mse_per_frame", "mae_per_frame", "mse_per_pixel"})
METRIC_FORMATS = {"mse_per_frame": ".2f", "mae_per_frame": ".2f", "ssim": ".4f", "psnr": ".2f", "mse_per_pixel": ".5f"}


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _mean_std(values):
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return math.nan, math.nan
    with np.errstate(invalid="ignore", over="ignore"):  # inf values (a perfect PSNR) give std nan
        mean = float(np.mean(values))
        std = float(np.std(values, ddof=1 if values.size > 1 else 0))
    return mean, std


def _relative(path, workdir) -> str:
    try:
        return str(Path(path).relative_to(workdir))
    except ValueError:
        return str(path)


def _csv_number(value) -> str:
    if value is None:
        return ""
    value = float(value)
    return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))


def summarize_experiment(workdir, *, plot: bool = True) -> dict:
    """Rebuild results.csv, summary.csv, summary.md and summary.png from the runs of
    ``workdir`` that have a metrics.json. Returns the per-variant aggregates."""
    workdir = Path(workdir).resolve()
    record = load_experiment(workdir)
    extra_names = list(record.get("evaluate", {}).get("extra", {}))
    rows = []
    for task in record.get("tasks", []):
        variant, seed = task["variant"], int(task["seed"])
        folder = run_dir(workdir, variant, seed)
        status = run_status(workdir, variant, seed)
        row = {
            "variant": variant,
            "seed": seed,
            "status": status,
            "metrics": None,
            "baselines": None,
            "extra": {},
            "num_sequences": None,
            "run_dir": folder,
            "log": folder / "log.txt" if folder.exists() else _pending_log(workdir, variant, seed),
        }
        if status == "finished":
            try:
                row.update(_read_evaluation(folder / "metrics.json"))
            except (OSError, KeyError, TypeError, ValueError) as error:
                row["status"] = "failed"
                row["error"] = f"unreadable metrics.json: {error}"
            for name in extra_names:
                try:
                    row["extra"][name] = _read_evaluation(folder / f"metrics_{name}.json")
                except (OSError, KeyError, TypeError, ValueError):
                    pass  # not evaluated (yet): left out of that evaluation's table
        rows.append(row)

    variants = list(dict.fromkeys(record.get("variants", []) + [r["variant"] for r in rows]))
    aggregates = {}
    for variant in variants:
        mine = [r for r in rows if r["variant"] == variant]
        finished = [r for r in mine if r["status"] == "finished"]
        aggregates[variant] = {**_aggregate(finished, len(mine)), "seeds": [r["seed"] for r in finished]}
        aggregates[variant]["extra"] = {
            name: _aggregate([r["extra"][name] for r in finished if name in r["extra"]], len(mine)) for name in extra_names
        }

    files = {}
    files["results"] = _write_results_csv(workdir, rows, extra_names)
    files["summary_csv"] = _write_summary_csv(workdir, aggregates, extra_names)
    test_set = next((r.get("test_set") for r in rows if r.get("test_set")), None)
    files["summary_md"] = _write_summary_md(workdir, record, aggregates, rows, test_set, extra_names)
    curves = _learning_curves(workdir, rows)
    if curves:
        files["learning_curves_csv"] = _write_learning_curves_csv(workdir, curves)
    if plot:
        files["summary_png"] = _plot_summary(workdir / "summary.png", aggregates)
        if curves:
            files["learning_curves_png"] = _plot_learning_curves(workdir / "learning_curves.png", curves)
        if any(a["finished"] and a.get("per_frame") for a in aggregates.values()):
            files["summary_per_frame_png"] = _plot_per_frame(workdir / "summary_per_frame.png", aggregates)
    counts = {status: sum(r["status"] == status for r in rows) for status in STATUSES}
    return {
        "workdir": str(workdir),
        "variants": aggregates,
        "results": [
            {**{k: v for k, v in r.items() if k not in ("run_dir", "log")}, "run_dir": str(r["run_dir"]), "log": str(r["log"])}
            for r in rows
        ],
        "counts": counts,
        "files": {k: str(v) for k, v in files.items() if v},
    }


def _read_evaluation(path) -> dict:
    """The scores of one metrics JSON: metrics, baselines, per-frame curves, test set."""
    metrics = _read_json(path)
    curves = ("mse_per_frame", "ssim")
    return {
        "metrics": {m: float(metrics[m]) for m in METRICS},
        "baselines": {b: {m: float(metrics["baselines"][b][m]) for m in METRICS} for b in BASELINES},
        "per_frame": {m: [float(x) for x in metrics["per_frame"][m]] for m in curves if m in metrics.get("per_frame", {})},
        "baseline_per_frame": {
            b: {
                m: [float(x) for x in metrics["baselines"][b]["per_frame"][m]]
                for m in curves
                if m in metrics["baselines"][b].get("per_frame", {})
            }
            for b in BASELINES
        },
        "num_sequences": metrics.get("num_sequences"),
        "test_set": metrics.get("test_set"),
    }


def _aggregate(evaluations, total: int) -> dict:
    """Mean and std of each metric over ``evaluations`` (what :func:`_read_evaluation` gives),
    the mean of the baselines and the mean per-frame curves."""
    import numpy as np

    result = {"finished": len(evaluations), "total": total, "metrics": {}, "baselines": {b: {} for b in BASELINES}}
    for metric in METRICS:
        values = [e["metrics"][metric] for e in evaluations]
        mean, std = _mean_std(values)
        result["metrics"][metric] = {"mean": mean, "std": std, "values": values}
        for b in BASELINES:
            result["baselines"][b][metric] = _mean_std([e["baselines"][b][metric] for e in evaluations])[0]
    curves = [e["per_frame"] for e in evaluations if e.get("per_frame")]
    result["per_frame"] = {m: np.mean([c[m] for c in curves], axis=0).tolist() for m in (curves[0] if curves else {})}
    result["baseline_per_frame"] = evaluations[0].get("baseline_per_frame", {}) if evaluations else {}
    result["test_set"] = evaluations[0].get("test_set") if evaluations else None
    return result


def _write_results_csv(workdir, rows, extra_names=()) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "variant",
            "seed",
            "status",
            *METRICS,
            *(f"{b}_{m}" for b in BASELINES for m in METRICS),
            *(f"{name}_{m}" for name in extra_names for m in METRICS),
            *(f"{name}_{b}_{m}" for name in extra_names for b in BASELINES for m in METRICS),
            "num_sequences",
            "run_dir",
            "log",
        ]
    )
    for r in rows:
        metrics = r["metrics"] or {}
        baselines = r["baselines"] or {}
        extra = r.get("extra", {})
        writer.writerow(
            [
                r["variant"],
                r["seed"],
                r["status"],
                *(_csv_number(metrics.get(m)) for m in METRICS),
                *(_csv_number(baselines.get(b, {}).get(m)) for b in BASELINES for m in METRICS),
                *(_csv_number(extra.get(n, {}).get("metrics", {}).get(m)) for n in extra_names for m in METRICS),
                *(
                    _csv_number(extra.get(n, {}).get("baselines", {}).get(b, {}).get(m))
                    for n in extra_names
                    for b in BASELINES
                    for m in METRICS
                ),
                "" if r["num_sequences"] is None else r["num_sequences"],
                _relative(r["run_dir"], workdir),
                _relative(r["log"], workdir) if r["status"] != "not_started" else "",
            ]
        )
    path = Path(workdir) / "results.csv"
    _atomic_write(path, buffer.getvalue())
    return path


def _write_summary_csv(workdir, aggregates, extra_names=()) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "variant",
            "runs_finished",
            "runs_total",
            *(f"{m}_{s}" for m in METRICS for s in ("mean", "std")),
            *(f"{b}_{m}" for b in BASELINES for m in METRICS),
            *(f"{n}_{m}_{s}" for n in extra_names for m in METRICS for s in ("mean", "std")),
            *(f"{n}_{b}_{m}" for n in extra_names for b in BASELINES for m in METRICS),
        ]
    )
    for variant, a in aggregates.items():
        extra = [a["extra"][n] for n in extra_names]
        writer.writerow(
            [
                variant,
                a["finished"],
                a["total"],
                *(_csv_number(a["metrics"][m][s]) if a["finished"] else "" for m in METRICS for s in ("mean", "std")),
                *(_csv_number(a["baselines"][b][m]) if a["finished"] else "" for b in BASELINES for m in METRICS),
                *(
                    _csv_number(e["metrics"][m][s]) if e["finished"] else ""
                    for e in extra
                    for m in METRICS
                    for s in ("mean", "std")
                ),
                *(_csv_number(e["baselines"][b][m]) if e["finished"] else "" for e in extra for b in BASELINES for m in METRICS),
            ]
        )
    path = Path(workdir) / "summary.csv"
    _atomic_write(path, buffer.getvalue())
    return path


def _format(metric, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return format(value, METRIC_FORMATS[metric])


def format_summary_table(aggregates) -> str:
    """The Markdown table of means ± standard deviations (best mean in bold)."""
    arrows = {m: "↓" if m in LOWER_IS_BETTER else "↑" for m in METRICS}
    lines = [
        "| variant | runs | " + " | ".join(f"{m} {arrows[m]}" for m in METRICS) + " |",
        "|---|---:|" + "---:|" * len(METRICS),
    ]
    best = {}
    for metric in METRICS:
        means = [(a["metrics"][metric]["mean"], v) for v, a in aggregates.items() if a["finished"]]
        means = [(m, v) for m, v in means if not math.isnan(m)]
        if len(means) > 1:
            best[metric] = (min if metric in LOWER_IS_BETTER else max)(means)[1]
    for variant, a in aggregates.items():
        cells = []
        for metric in METRICS:
            if not a["finished"]:
                cells.append("-")
                continue
            stats = a["metrics"][metric]
            text = _format(metric, stats["mean"])  # a single run has no spread to show
            if a["finished"] > 1:
                text += f" ± {_format(metric, stats['std'])}"
            cells.append(f"**{text}**" if best.get(metric) == variant else text)
        lines.append(f"| {variant} | {a['finished']}/{a['total']} | " + " | ".join(cells) + " |")
    finished = {v: a for v, a in aggregates.items() if a["finished"]}
    for b in BASELINES:
        # Compared as printed: a mean over runs of one value may differ from it in the last bit.
        baselines = {v: tuple(_format(m, a["baselines"][b][m]) for m in METRICS) for v, a in finished.items()}
        distinct = set(baselines.values())
        if len(distinct) == 1:
            lines.append(f"| {BASELINE_LABELS[b]} (baseline) | | " + " | ".join(next(iter(distinct))) + " |")
        else:
            for variant, cells in baselines.items():
                lines.append(f"| {BASELINE_LABELS[b]} ({variant}'s test set) | | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _spec_label(source: str) -> str:
    """The recorded spec for a reader: a shipped spec by its name (its path is where one
    machine installed predrnn), another spec by its path."""
    path = Path(source)
    if path.suffix == ".toml" and path.parent.parts[-2:] == SPECS_DIR.parts[-2:]:
        return f"`{path.stem}` (shipped with predrnn)"
    return f"`{source}`"


def _write_summary_md(workdir, record, aggregates, rows, test_set, extra_names=()) -> Path:
    counts = {status: sum(r["status"] == status for r in rows) for status in STATUSES}
    lines = [
        f"# Experiment {record.get('name', workdir.name)}",
        "",
        f"{_plural(len(rows), 'run')} ({_plural(len(aggregates), 'variant')}, seeds 0..{record.get('runs', 0) - 1}) on the "
        f"{record.get('backend', '?')} backend; spec: {_spec_label(record.get('spec', '?'))}.",
        "Status: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + ".",
        "",
        format_summary_table(aggregates),
        "",
        "Mean ± standard deviation over the finished runs (sample std, ddof=1; a single run shows its value alone). "
        "↓ lower is better, ↑ higher is better; the best mean is in bold.",
        "mse_per_frame and mae_per_frame: sum over the pixels of a frame ([0, 1] scale), mean over the predicted frames.",
    ]
    if test_set:
        described = ", ".join(f"{k} {v}" for k, v in test_set.items())
        lines.append(f"Test set (the same for every run): {described}.")
    for name in extra_names:
        views = {v: a["extra"][name] for v, a in aggregates.items()}
        lines += ["", f"## Evaluation {name} (metrics_{name}.json)", "", format_summary_table(views)]
        extra_set = next((e["test_set"] for e in views.values() if e.get("test_set")), None)
        if extra_set:
            lines += ["", "Test set: " + ", ".join(f"{k} {v}" for k, v in extra_set.items()) + "."]
    problems = [r for r in rows if r["status"] in ("failed", "interrupted")]
    if problems:
        lines += ["", "Runs without results:", ""]
        lines += [f"- {r['variant']} seed {r['seed']}: {r['status']} (log: `{_relative(r['log'], workdir)}`)" for r in problems]
    lines.append("")
    path = Path(workdir) / "summary.md"
    _atomic_write(path, "\n".join(lines))
    return path


CURVE_COLUMNS = ("loss", "val_mse_per_frame", "val_ssim")


def _learning_curves(workdir, rows) -> list[dict]:
    """One entry per row of every started run's history.csv: variant, seed, step and
    :data:`CURVE_COLUMNS`."""
    curves = []
    for r in rows:
        history = Path(r["run_dir"]) / "history.csv"
        if not history.is_file():
            continue
        with open(history, newline="") as handle:
            for entry in csv.DictReader(handle):
                try:
                    step = int(float(entry["step"]))
                except (KeyError, ValueError):
                    continue
                values = {c: float(entry[c]) if entry.get(c) not in (None, "") else math.nan for c in CURVE_COLUMNS}
                curves.append({"variant": r["variant"], "seed": r["seed"], "step": step, **values})
    return curves


def _write_learning_curves_csv(workdir, curves) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["variant", "seed", "step", *CURVE_COLUMNS])
    for c in curves:
        writer.writerow([c["variant"], c["seed"], c["step"], *(_csv_number(c[k]) for k in CURVE_COLUMNS)])
    path = Path(workdir) / "learning_curves.csv"
    _atomic_write(path, buffer.getvalue())
    return path


def _plot_learning_curves(path, curves):
    """Validation MSE per frame and SSIM against the step: each variant's mean over its runs."""
    import numpy as np
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.8), layout="constrained")
    axes = figure.subplots(1, 2)
    variants = list(dict.fromkeys(c["variant"] for c in curves))
    for ax, column, label in zip(axes, ("val_mse_per_frame", "val_ssim"), ("validation MSE per frame ↓", "validation SSIM ↑")):
        for index, variant in enumerate(variants):
            steps = sorted({c["step"] for c in curves if c["variant"] == variant})
            means = [np.nanmean([c[column] for c in curves if c["variant"] == variant and c["step"] == s]) for s in steps]
            ax.plot(steps, means, "o-", markersize=3, color=f"C{index % 10}", label=variant)
        ax.set_xlabel("training step")
        ax.set_title(label, fontsize=10)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    save_figure(figure, path)
    return Path(path)


def _plot_per_frame(path, aggregates):
    """MSE per frame and SSIM against the future frame: one line per variant (mean over its
    finished runs), the baselines dashed."""
    import numpy as np
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.8), layout="constrained")
    axes = figure.subplots(1, 2)
    finished = {v: a for v, a in aggregates.items() if a["finished"] and a.get("per_frame")}
    baselines = next((a["baseline_per_frame"] for a in finished.values() if a.get("baseline_per_frame")), {})
    for ax, metric, label in zip(axes, ("mse_per_frame", "ssim"), ("MSE per frame ↓", "SSIM ↑")):
        for index, (variant, a) in enumerate(finished.items()):
            values = a["per_frame"].get(metric)
            if values:
                ax.plot(np.arange(1, len(values) + 1), values, "o-", markersize=3, color=f"C{index % 10}", label=variant)
        for b, style in zip(BASELINES, ("--", ":", "-.")):
            values = baselines.get(b, {}).get(metric)
            if values:
                values = np.where(np.isfinite(values), values, np.nan)
                ax.plot(np.arange(1, len(values) + 1), values, style, color="0.3", linewidth=1, label=BASELINE_LABELS[b])
        ax.set_xlabel("future frame")
        ax.set_title(label, fontsize=10)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    save_figure(figure, path)
    return Path(path)


def _plot_summary(path, aggregates):
    import numpy as np
    from matplotlib.figure import Figure

    names = list(aggregates)
    figure = Figure(figsize=(3.2 * len(METRICS), 3.6), layout="constrained")
    axes = figure.subplots(1, len(METRICS))
    colors = [f"C{i % 10}" for i in range(len(names))]
    positions = np.arange(len(names))
    for ax, metric in zip(axes, METRICS):
        means = np.array([aggregates[n]["metrics"][metric]["mean"] if aggregates[n]["finished"] else np.nan for n in names])
        stds = np.array([aggregates[n]["metrics"][metric]["std"] if aggregates[n]["finished"] else np.nan for n in names])
        finite = np.where(np.isfinite(means), means, 0.0)
        ax.bar(positions, finite, yerr=np.where(np.isfinite(stds), stds, 0.0), color=colors, capsize=4, alpha=0.85)
        for b, style in zip(BASELINES, ("--", ":", "-.")):
            baseline = [aggregates[n]["baselines"][b][metric] for n in names if aggregates[n]["finished"]]
            baseline = [x for x in baseline if np.isfinite(x)]
            if baseline:
                ax.axhline(float(np.mean(baseline)), color="0.3", linestyle=style, linewidth=1, label=BASELINE_LABELS[b])
        arrow = "↓" if metric in LOWER_IS_BETTER else "↑"
        ax.set_title(f"{metric} {arrow}", fontsize=10)
        ax.set_xticks(positions, names, rotation=30, ha="right", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
    if any(ax.get_legend_handles_labels()[0] for ax in axes):
        axes[0].legend(fontsize=7, loc="lower left")
    save_figure(figure, path)
    return Path(path)
