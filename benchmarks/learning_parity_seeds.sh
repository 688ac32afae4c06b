#!/usr/bin/env bash
# Learning parity over seeds: the official PredRNN code and ours, the same setting and data,
# 1,500 steps each, then the 10 -> 10 test MSE per frame on 300 two-digit test sequences.
# benchmarks/results/learning-parity/README.md describes the setting.
#
#   PEER=/path/to/predrnn-pytorch bash benchmarks/learning_parity_seeds.sh OUT_DIR
#
# OUT_DIR gets the data (train.npy: 2,000 sequences, seed 11; test.npy: 300, seed 12), then per
# seed s: official_seed$s.json (the shared tool's JSON line), ours_seed$s/ (a training run;
# test300.json is the evaluation of its final weights, checkpoints/last.keras, as the official
# side scores its final weights) and, with KERAS_ADAM=1, ours_keras_seed$s/ (Keras' Adam
# arithmetic, eps 1e-7: keras.optimizers.Adam's default). Runs go one at a time,
# interleaved by seed (official 0, ours 0, official 1, ...), so a stopped series stays paired.
# Run it again to go on: finished runs are skipped, an interrupted run of ours resumes from
# its last checkpoint, an interrupted official run starts again (it cannot resume).
# At the end: benchmarks/learning_parity.py seeds OUT_DIR prints and writes the table.
#
# Settings (environment): PEER (required, a checkout of thuml/predrnn-pytorch), SEEDS ("0 1 2"),
# STEPS (1500), EPOCH (500: our checkpoint and validation interval, a divisor of STEPS),
# THREADS (2: CPU threads per run, both sides), SIDES ("official ours": which side's runs this
# process does), KERAS_ADAM (0), BENCH (../shared/tools/official_predrnn_bench.py),
# PYTHON (python), KERAS_BACKEND (tensorflow).
#
# Two runs at once on a 2-core machine (one thread each does more steps per CPU second than two
# threads on one run): make the data first, then start one process per side, e.g.
#   SEEDS=none bash ... OUT_DIR                                   # only the data
#   THREADS=1 SIDES=official bash ... OUT_DIR &  THREADS=1 SIDES=ours bash ... OUT_DIR &
set -euo pipefail

OUT=${1:?usage: PEER=/path/to/predrnn-pytorch bash benchmarks/learning_parity_seeds.sh OUT_DIR}
PEER=${PEER:?set PEER to a checkout of thuml/predrnn-pytorch}
HERE=$(cd "$(dirname "$0")" && pwd)
SEEDS=${SEEDS:-0 1 2}
[ "$SEEDS" = none ] && SEEDS=""
SIDES=${SIDES:-official ours}
STEPS=${STEPS:-1500}
EPOCH=${EPOCH:-500}
THREADS=${THREADS:-2}
KERAS_ADAM=${KERAS_ADAM:-0}
BENCH=${BENCH:-$HERE/../../shared/tools/official_predrnn_bench.py}
PYTHON=${PYTHON:-python}
export KERAS_BACKEND=${KERAS_BACKEND:-tensorflow}
CONFIG=$HERE/results/learning-parity/parity_predrnn.toml

[ -f "$BENCH" ] || { echo "error: the official bench tool $BENCH is missing; set BENCH" >&2; exit 2; }
[ -d "$PEER/core" ] || { echo "error: $PEER is not a checkout of thuml/predrnn-pytorch (no core/)" >&2; exit 2; }
mkdir -p "$OUT"
cd "$OUT"

if [ ! -f train.npy ] || [ ! -f test.npy ]; then
  for split in train test; do
    if [ $split = train ]; then num=2000 seed=11; else num=300 seed=12; fi
    $PYTHON -m predrnn data moving-mnist --num $num --seed $seed --split $split --out ${split}_tnhw.npy --overwrite
    $PYTHON -c "import numpy as np; np.save('$split.tmp.npy', np.load('${split}_tnhw.npy').transpose(1, 0, 2, 3)[..., None])"
    mv $split.tmp.npy $split.npy && rm ${split}_tnhw.npy
  done
fi

official() {  # seed
  local s=$1 json=official_seed$1.json
  [ -s "$json" ] && { echo "official seed $s: done"; return; }
  echo "official seed $s: training $STEPS steps ($(date +%H:%M))"
  $PYTHON "$BENCH" --peer-dir "$PEER" --model predrnn --batch 8 --num-hidden 32,32,32,32 --lr 3e-4 \
    --steps "$STEPS" --warmup 0 --threads "$THREADS" --seed "$s" --data train.npy --eval-data test.npy \
    > "$json.tmp" 2> official_seed$s.log
  mv "$json.tmp" "$json"
}

ours() {  # seed, run name, extra --set arguments...
  local s=$1 run=$2
  shift 2
  [ -s "$run/test300.json" ] && { echo "$run: done"; return; }
  echo "$run: training $STEPS steps ($(date +%H:%M))"
  local threads=(TF_NUM_INTRAOP_THREADS="$THREADS" TF_NUM_INTEROP_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS")
  local again=()  # resume from the last checkpoint; a run stopped before its first one starts over
  if [ -f "$run/checkpoints/last.keras" ]; then again=(--resume); elif [ -d "$run" ]; then again=(--overwrite); fi
  env "${threads[@]}" $PYTHON -m predrnn train "$CONFIG" --workdir "$run" "${again[@]}" --set data.path="$PWD/train.npy" \
    --set train.seed="$s" --set train.steps="$STEPS" --set train.steps_per_epoch="$EPOCH" --set train.progress=false "$@" > "$run.log" 2>&1
  env "${threads[@]}" $PYTHON -m predrnn evaluate "$run/checkpoints/last.keras" --data test.npy --layout NTHWC --output "$run/test300.json" \
    --pictures 0 >> "$run.log" 2>&1
}

for side in $SIDES; do
  case $side in official|ours) ;; *) echo "error: SIDES has '$side'; use official, ours or \"official ours\"" >&2; exit 2 ;; esac
done
side() { [[ " $SIDES " == *" $1 "* ]]; }
for s in $SEEDS; do
  side official && official "$s"
  if side ours; then
    ours "$s" "ours_seed$s"
    if [ "$KERAS_ADAM" = 1 ]; then
      ours "$s" "ours_keras_seed$s" --set train.adam_epsilon_placement='"keras"' --set train.adam_epsilon=1e-7
    fi
  fi
done
[ -z "$SEEDS" ] && exit 0
$PYTHON "$HERE/learning_parity.py" seeds "$PWD"
