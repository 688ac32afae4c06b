#!/usr/bin/env bash
# Run the whole test suite once per Keras backend, each in its own processes.
# Exits non-zero on any failure, and when a backend collects no tests.
set -euo pipefail
cd "$(dirname "$0")"
export TF_CPP_MIN_LOG_LEVEL=3
backends=${PREDRNN_TEST_BACKENDS:-"tensorflow jax torch"}
for backend in $backends; do
  echo "=== KERAS_BACKEND=$backend ==="
  # pytest exits 5 when it collects no tests; set -e turns that into a failure too.
  KERAS_BACKEND=$backend python -m pytest -q -p no:cacheprovider --durations=10 "$@"
done
