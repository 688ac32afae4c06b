#!/usr/bin/env bash
# Train the paper configuration (PredRNN-V2 4x128, kernel 5, patch 4, batch 16, lr 1e-4, reverse
# scheduled sampling, two-digit Moving MNIST; the `moving_mnist_predrnn_v2` preset) in bfloat16
# on one GPU for a fixed wall-clock budget, then score it: metrics against the step, the
# measured steps per second and the projected time to the papers' 80,000 steps.
#
#   bash benchmarks/gpu_train.sh [OUTPUT_DIR]        # default: $OUT or benchmarks/results/gpu-train
#
# Needs what benchmarks/gpu_check.sh needs (one CUDA GPU; JAX, PyTorch or TensorFlow built for it;
# Keras installed or as wheels in .whl/, see gpu_wheels.sh). The package runs from src/.
# Training stops after TRAIN_SECONDS with SIGTERM, which ends a run like Ctrl-C: the last
# finished epoch (STEPS_PER_EPOCH steps) is kept, the unfinished one is dropped.
#
# Writes into OUTPUT_DIR: history.csv (validation metrics every STEPS_PER_EPOCH steps),
# metrics.json and metrics.csv (EVAL_NUM two-digit test sequences, with the baselines),
# config.json, run.json, train.log, and summary.md (the table and the projection).
# The run folder itself (checkpoints, ~70 MB) stays in RUN_DIR, outside OUTPUT_DIR.
#
# Environment: TRAIN_SECONDS (540), BACKEND (auto: jax if it sees a GPU, else torch, else
# tensorflow), PRESET (moving_mnist_predrnn_v2), PRECISION (mixed_bfloat16), STEPS_PER_EPOCH (500),
# EVAL_NUM (1000), RUN_DIR (a new temporary folder), PYTHON (python3).
# GPU_TRAIN_ALLOW_CPU=1 runs it without a GPU, to check the script, e.g.
#   GPU_TRAIN_ALLOW_CPU=1 PRESET=smoke PRECISION=float32 TRAIN_SECONDS=60 STEPS_PER_EPOCH=2 EVAL_NUM=4 \
#       bash benchmarks/gpu_train.sh /tmp/gpu-train-check
set -euo pipefail
cd "$(dirname "$0")/.."

OUT_DIR="${1:-${OUT:-benchmarks/results/gpu-train}}"
TRAIN_SECONDS="${TRAIN_SECONDS:-540}"
BACKEND="${BACKEND:-auto}"
PRESET="${PRESET:-moving_mnist_predrnn_v2}"
PRECISION="${PRECISION:-mixed_bfloat16}"
STEPS_PER_EPOCH="${STEPS_PER_EPOCH:-500}"
EVAL_NUM="${EVAL_NUM:-1000}"
PYTHON="${PYTHON:-python3}"
RUN_DIR="${RUN_DIR:-$(mktemp -d)/run}"
mkdir -p "$OUT_DIR"

export TF_FORCE_GPU_ALLOW_GROWTH=true
export TF_CPP_MIN_LOG_LEVEL=3
export PYTHONUNBUFFERED=1

if ! nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee "$OUT_DIR/gpu.txt"; then
    if [[ "${GPU_TRAIN_ALLOW_CPU:-0}" != 1 ]]; then
        echo "no GPU visible (GPU_TRAIN_ALLOW_CPU=1 runs the script on the CPU)" >&2
        exit 1
    fi
    echo "no GPU visible: running on the CPU (GPU_TRAIN_ALLOW_CPU=1)" | tee "$OUT_DIR/gpu.txt"
fi

# Keras from the wheels in .whl/ where the machine lacks it; the package from this checkout.
source benchmarks/gpu_pythonpath.sh

if [[ "$BACKEND" == auto ]]; then
    BACKEND="$("$PYTHON" - <<'PY'
import importlib.util
def gpu(name):
    if importlib.util.find_spec(name) is None:
        return False
    try:
        if name == "jax":
            import jax
            return any(d.platform == "gpu" for d in jax.devices())
        if name == "torch":
            import torch
            return torch.cuda.is_available()
        import tensorflow as tf
        return bool(tf.config.list_physical_devices("GPU"))
    except Exception:  # noqa: BLE001 - a framework that cannot start has no GPU for us
        return False
print(next((name for name in ("jax", "torch", "tensorflow") if gpu(name)), "jax"))
PY
)"
fi
echo "backend: $BACKEND; preset $PRESET, $PRECISION, $TRAIN_SECONDS s of training; run folder $RUN_DIR"

# Train for TRAIN_SECONDS (exit 130 after the SIGTERM is the expected end), then score.
set +e
timeout -s TERM "$TRAIN_SECONDS" "$PYTHON" -m predrnn train "$PRESET" --workdir "$RUN_DIR" --backend "$BACKEND" \
    --set "train.precision=\"$PRECISION\"" --set "train.steps_per_epoch=$STEPS_PER_EPOCH" \
    --set train.progress=false 2>&1 | tee "$OUT_DIR/train.log"
status=${PIPESTATUS[0]}
set -e
if [[ $status != 0 && $status != 124 && $status != 130 ]]; then
    echo "training failed (exit $status); see $OUT_DIR/train.log" >&2
    exit "$status"
fi
if [[ ! -f "$RUN_DIR/checkpoints/state.json" ]]; then
    echo "training stopped before its first epoch ended: raise TRAIN_SECONDS or lower STEPS_PER_EPOCH" >&2
    exit 1
fi
"$PYTHON" -m predrnn evaluate "$RUN_DIR" --backend "$BACKEND" --num "$EVAL_NUM" 2>&1 | tee "$OUT_DIR/evaluate.log"
for name in history.csv metrics.json metrics.csv config.json run.json; do
    cp "$RUN_DIR/$name" "$OUT_DIR/"
done
cp "$RUN_DIR/checkpoints/state.json" "$OUT_DIR/state.json"

# The table of metrics against the step, and the projection to 80,000 steps from the epochs after
# the first (which also compiles).
"$PYTHON" - "$OUT_DIR" "$BACKEND" "$PRECISION" <<'PY'
import csv, json, re, statistics, sys
from pathlib import Path
out, backend, precision = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
state = json.loads((out / "state.json").read_text())
metrics = json.loads((out / "metrics.json").read_text())
gpu = (out / "gpu.txt").read_text().strip()
rows = list(csv.DictReader(open(out / "history.csv")))
unit = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
per_step = [float(v) * unit[u] for v, u in re.findall(r" - ([0-9.]+)(us|ms|s)/step", (out / "train.log").read_text())]
steady = statistics.median(per_step[1:]) if len(per_step) > 1 else float("nan")
steps, seconds = int(state["step"]), float(state["train_seconds"])
lines = [
    f"# Paper configuration on {gpu}",
    "",
    f"Backend {backend}, {precision}. {steps} steps in {seconds:.0f} s of training (compilation and validation",
    f"included). After the first epoch: {steady * 1e3:.1f} ms a step (Keras' figure, median of {max(len(per_step) - 1, 0)}",
    f"epochs), so 80,000 steps would take {80000 * steady / 3600:.1f} h.",
    "",
    "| step | val mse/frame | val SSIM | val PSNR | true future frames fed |",
    "|---:|---:|---:|---:|---:|",
]
for row in rows:
    lines.append(
        f"| {float(row['step']):.0f} | {float(row['val_mse_per_frame']):.1f} | {float(row['val_ssim']):.3f} "
        f"| {float(row['val_psnr']):.2f} | {float(row['ss_future']):.3f} |"
    )
lines += [
    "",
    f"Test: {metrics['num_sequences']} sequences, {metrics['context']} -> {metrics['horizon']} frames, {metrics['checkpoint']}",
    "",
    "| predictor | mse/frame | SSIM | PSNR |",
    "|---|---:|---:|---:|",
]
for name, entry in [("model", metrics), *metrics["baselines"].items()]:
    lines.append(f"| {name} | {entry['mse_per_frame']:.1f} | {entry['ssim']:.3f} | {entry['psnr']:.2f} |")
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
