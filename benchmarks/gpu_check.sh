#!/usr/bin/env bash
# GPU check of the PredRNN benchmark: the paper's model (4x128 channels, batch 16, 64x64 Moving
# MNIST, patch 4, kernel 5, 10 -> 10 frames, ~11 TFLOP per training step) in float32 and bfloat16,
# in one `predrnn benchmark` run: JAX (XLA), the PyTorch backend and the PyTorch reference
# re-implementation, and TensorFlow with XLA where TensorFlow is installed. It prints training
# steps per second and flags a bfloat16 row below 20 steps/s (a step above 0.05 s).
#
# Needs: one CUDA GPU with room for up to seven paper-model worker processes at once (they share
# it; no framework preallocates its memory), Python >= 3.10 with JAX and/or PyTorch built for CUDA, and
# Keras 3 (installed, or as wheels in .whl/ at the repository root). The package runs from
# src/ (PYTHONPATH), so it need not be installed. On a cluster node without network access:
#
#   bash benchmarks/gpu_wheels.sh [PYTHON_VERSION]  # where pip works: Keras' wheels into .whl/
#   bash benchmarks/gpu_check.sh [OUTPUT_DIR]       # on the GPU node; default: $OUT or benchmarks/results/gpu
#
# copying the repository with .whl/ to the node. TensorFlow is used only where it is installed.
#
# Time: about 10 minutes (BUDGET seconds for the benchmark, default 500): each implementation
# starts in its own process and compiles once (JAX: the 19-step unrolled graph, ~1-2 min per
# precision), then 20 timed steps of ~0.05-0.3 s each, interleaved.
#
# Environment: PRESET (paper), STEPS (20), WARMUP (3), ROLLOUT_REPEATS (5), BUDGET (500),
# PYTHON (python3). GPU_CHECK_ALLOW_CPU=1 runs it without a GPU (e.g. PRESET=tiny STEPS=2
# WARMUP=1 ROLLOUT_REPEATS=1 to check the script on a CPU).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT_DIR="${1:-${OUT:-benchmarks/results/gpu}}"
PRESET="${PRESET:-paper}"
STEPS="${STEPS:-20}"
WARMUP="${WARMUP:-3}"
ROLLOUT_REPEATS="${ROLLOUT_REPEATS:-5}"
BUDGET="${BUDGET:-500}"
mkdir -p "$OUT_DIR"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
PYTHON="${PYTHON:-python3}"

# Several worker processes share the GPU: no framework may grab all of its memory.
export TF_FORCE_GPU_ALLOW_GROWTH=true
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export TF_CPP_MIN_LOG_LEVEL=3
export PYTHONUNBUFFERED=1

if ! nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null; then
    if [[ "${GPU_CHECK_ALLOW_CPU:-0}" != 1 ]]; then
        echo "no GPU visible (GPU_CHECK_ALLOW_CPU=1 runs the check on the CPU)" >&2
        exit 1
    fi
    echo "no GPU visible: running on the CPU (GPU_CHECK_ALLOW_CPU=1)"
fi

# Keras from the wheels in .whl/ where the machine lacks it; the package from this checkout.
source benchmarks/gpu_pythonpath.sh

# Which frameworks this machine has, and whether they see the GPU.
"$PYTHON" - <<'PY' | tee "$OUT_DIR/frameworks-$STAMP.txt"
import importlib, importlib.util, os
os.environ.setdefault("KERAS_BACKEND", "tensorflow" if importlib.util.find_spec("tensorflow") else "jax")
for name in ("keras", "tensorflow", "jax", "torch"):
    try:
        module = importlib.import_module(name)
    except Exception as error:  # noqa: BLE001
        print(f"{name}: unavailable ({type(error).__name__}: {error})")
        continue
    devices = ""
    if name == "jax":
        devices = f", devices {module.devices()}"
    elif name == "torch":
        devices = f", CUDA {module.cuda.is_available()}"
    elif name == "tensorflow":
        devices = f", GPUs {module.config.list_physical_devices('GPU')}"
    print(f"{name} {getattr(module, '__version__', '?')}{devices}")
PY
has() { "$PYTHON" -c "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('$1') else 1)"; }

IMPLS=()
if has tensorflow; then
    IMPLS+=(tensorflow+xla tensorflow+xla:mixed_bfloat16)
else
    echo "TensorFlow is not installed here: its rows are left out."
fi
if has jax; then
    IMPLS+=(jax jax:mixed_bfloat16)
fi
if has torch; then
    IMPLS+=(reference torch torch:mixed_bfloat16)
fi
echo "implementations: ${IMPLS[*]}"

# One command, every implementation interleaved round by round (ratios within one run).
timeout "$BUDGET" "$PYTHON" -m predrnn.benchmark --preset "$PRESET" --impl "${IMPLS[@]}" \
    --steps "$STEPS" --warmup "$WARMUP" --rollout-repeats "$ROLLOUT_REPEATS" \
    --output "$OUT_DIR/gpu-$PRESET-$STAMP.json" --readme "$OUT_DIR/gpu-$PRESET-$STAMP.md"

"$PYTHON" - "$OUT_DIR/gpu-$PRESET-$STAMP.json" <<'PY'
import json, sys
result = json.load(open(sys.argv[1]))
ok = True
for entry in result["implementations"]:
    steps_per_s = 1.0 / entry["step_s"]
    flag = ""
    if entry["precision"] == "mixed_bfloat16" and entry["implementation"] != "reference":
        flag = "OK" if steps_per_s >= 20 else "BELOW TARGET (>= 20 steps/s)"
        ok = ok and steps_per_s >= 20
    print(f"{entry['implementation']:32s} {steps_per_s:7.2f} steps/s  {entry['gflops_per_s'] / 1e3:7.1f} TFLOP/s  {flag}")
sys.exit(0 if ok else 3)
PY
