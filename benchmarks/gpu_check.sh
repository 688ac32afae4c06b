#!/usr/bin/env bash
# GPU check of the PredRNN benchmark: the paper's model (4x128 channels, batch 16, 64x64 Moving
# MNIST, patch 4, kernel 5, 10 -> 10 frames, ~11 TFLOP per training step) in float32 and bfloat16,
# XLA on TensorFlow and JAX, plus the PyTorch reference re-implementation when torch sees a GPU.
# Target: >= 20 training steps/s in bf16 (step <= 0.05 s).
#
#   bash benchmarks/gpu_check.sh [OUTPUT_DIR]      # default: $OUT or benchmarks/results/gpu
#
# Budget: about 15 minutes in all (each implementation compiles once, ~1-3 min for the 19-step
# unrolled graph; 20 timed steps of ~0.05-0.3 s each). Run from the repository root with the
# package installed (pip install -e '.[jax]' plus the CUDA builds of tensorflow/jax available).
# NOT RUN YET: the development machine had no GPU; the first run on a GPU validates this script.
set -euo pipefail

OUT_DIR="${1:-${OUT:-benchmarks/results/gpu}}"
mkdir -p "$OUT_DIR"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"

# Several worker processes share the GPU: no framework may grab all of its memory.
export TF_FORCE_GPU_ALLOW_GROWTH=true
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export TF_CPP_MIN_LOG_LEVEL=3

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || { echo "no GPU visible" >&2; exit 1; }
python - <<'PY'
import importlib
for name in ("tensorflow", "jax", "torch", "keras"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "?"))
    except Exception as error:  # noqa: BLE001
        print(name, "unavailable:", error)
PY

# jax+xlacells: the scanned time loop with Winograd convolutions (JAX's CPU default), forced on
# the GPU to see whether it also pays there (float32 only; compiles one step, not 19).
IMPLS=(tensorflow+xla tensorflow+xla:mixed_bfloat16 jax jax:mixed_bfloat16 jax+xlacells)
if python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    IMPLS=(reference "${IMPLS[@]}")
fi

# One command, all implementations interleaved; ~12 minutes at most, then the check below.
timeout 780 python -m predrnn.benchmark --preset paper --impl "${IMPLS[@]}" \
    --steps 20 --warmup 3 --rollout-repeats 5 \
    --output "$OUT_DIR/gpu-paper-$STAMP.json" --readme "$OUT_DIR/gpu-paper-$STAMP.md"

python - "$OUT_DIR/gpu-paper-$STAMP.json" <<'PY'
import json, sys
result = json.load(open(sys.argv[1]))
ok = True
for entry in result["implementations"]:
    steps_per_s = 1.0 / entry["step_s"]
    target = entry["precision"] == "mixed_bfloat16"
    flag = ""
    if target:
        flag = "OK" if steps_per_s >= 20 else "BELOW TARGET (>= 20 steps/s)"
        ok = ok and steps_per_s >= 20
    print(f"{entry['implementation']:32s} {steps_per_s:7.2f} steps/s  {entry['gflops_per_s'] / 1e3:7.1f} TFLOP/s  {flag}")
sys.exit(0 if ok else 3)
PY
