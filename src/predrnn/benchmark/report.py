"""The Markdown table of a benchmark result."""

from __future__ import annotations


def _fmt(value, digits=2, percent=False):
    if value is None:
        return "-"
    if percent:
        return f"{100 * value:.{digits}f}%"
    return f"{value:.{digits}f}"


def format_markdown(result: dict) -> str:
    """The README table (machine, backend, precision, config, figures) of a result."""
    m = result["machine"]
    load = result["load_average"]
    lines = [
        f"**{result['config']['description']}** — {result['flops']['training_step'] / 1e12:.2f} TFLOP per "
        f"training step (analytic), {result['flops']['rollout'] / 1e12:.3f} TFLOP per rollout of the batch.",
        "",
        f"Machine: {m.get('cpu')}{features_text(m)}, {m.get('usable_cores', m.get('cores'))} cores, "
        f"{m.get('memory_gb', '?')} GB; "
        f"NumPy sgemm {result['sgemm']['best_gflops']:.0f} GFLOP/s best, "
        f"{result['sgemm']['median_gflops_during_rounds']:.0f} median during the rounds; "
        f"load average {load.get('start')} -> {load.get('end')}; {result['started_utc']}; "
        f"{result['steps']} interleaved timed steps (median), {result['warmup']} warm-up.",
        "",
        f"| implementation | precision | XLA | step s | vs reference | vs {result.get('first_keras', result['implementations'][0]['implementation'])} "
        "| compile s | seq/s | frames/s "
        "| GFLOP/s | % sgemm | rollout s/seq | rollout/train per seq | peak MB (over import) | data wait |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in result["implementations"]:
        lines.append(
            f"| {e['implementation']} | {e['precision']} | {'yes' if e['xla'] else 'no'} | {_fmt(e['step_s'])} "
            f"| {_fmt(e['step_vs_reference'])} | {_fmt(e['step_vs_first'])} | {_fmt(e['compile_s'], 1)} "
            f"| {_fmt(e['sequences_per_s'], 3)} "
            f"| {_fmt(e['frames_per_s'], 1)} | {_fmt(e['gflops_per_s'], 1)} | {_fmt(e['fraction_of_sgemm_peak'], 0, True)} "
            f"| {_fmt(e['rollout_s_per_sequence'], 3)} | {_fmt(e['rollout_vs_train_per_sequence'])} "
            f"| {_fmt(e['peak_memory_mb'], 0)} ({_fmt(e['working_memory_mb'], 0)}) "
            f"| {_fmt(e['data_wait_fraction'], 2, True)} |"
        )
    versions = {}
    for e in result["implementations"]:
        versions.update(e.get("versions") or {})
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) + "."]
    if result.get("reference"):
        lines.append(f"Reference: {result['reference']}.")
    return "\n".join(lines) + "\n"


def features_text(machine: dict) -> str:
    """`` (AVX2, AVX-512; bfloat16 emulated on the CPU)`` for the Markdown table's machine line; empty
    for results that do not record the features."""
    if "bfloat16" not in machine:
        return ""
    features = machine.get("cpu_features")
    if features is None:
        listed = "flags unknown"
    elif not features:
        listed = "no AVX2/AVX-512"
    else:
        listed = ", ".join(features)
    return f" ({listed}; bfloat16 {machine['bfloat16']} on the CPU)"
