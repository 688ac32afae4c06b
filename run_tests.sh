#!/usr/bin/env bash
# Run the whole test suite once per Keras backend, each pass in its own processes.
# Exits non-zero on any failure, and when a backend collects no tests.
#
# PREDRNN_TEST_BACKENDS  the backends (default "tensorflow jax torch")
# PREDRNN_TEST_JOBS      how many passes run at once (default 2). Most tests trace or run
#                        small graphs on one core, so two passes side by side take about
#                        two thirds of the time of one after the other on a 2-core machine.
#                        Each pass's output is printed when it ends. 1: one after the other,
#                        output as it comes.
# PREDRNN_RUFF           1 (default): first lint and check the formatting with ruff (`ruff
#                        check`, `ruff format --check`; pyproject.toml configures them), and
#                        stop on a finding. 0: skip them.
set -euo pipefail
cd "$(dirname "$0")"
export TF_CPP_MIN_LOG_LEVEL=3
backends=${PREDRNN_TEST_BACKENDS:-"tensorflow jax torch"}
jobs=${PREDRNN_TEST_JOBS:-2}

if [[ ${PREDRNN_RUFF:-1} == 1 ]]; then
  echo "=== ruff ==="
  python -m ruff check .
  python -m ruff format --check .
fi

run_pass() {  # backend [pytest args...]; pytest exits 5 when it collects no tests: a failure too
  local backend=$1
  shift
  KERAS_BACKEND=$backend python -m pytest -q -p no:cacheprovider --durations=10 \
    --basetemp="$logs/tmp-$backend" "$@"
}

logs=$(mktemp -d "${TMPDIR:-/tmp}/predrnn-tests.XXXXXX")
trap 'rm -rf "$logs"' EXIT

if [[ $jobs -le 1 ]]; then
  for backend in $backends; do
    echo "=== KERAS_BACKEND=$backend ==="
    run_pass "$backend" "$@"
  done
  exit 0
fi

declare -A backend_of=()  # pid -> backend
failed=()
wait_for_one() {  # print the log of the next pass to end, record its status (bash >= 5.1)
  local pid status=0
  wait -n -p pid "${!backend_of[@]}" || status=$?
  local backend=${backend_of[$pid]}
  unset "backend_of[$pid]"
  echo "=== KERAS_BACKEND=$backend (exit $status, $(date +%T)) ==="
  cat "$logs/$backend.log"
  [[ $status -eq 0 ]] || failed+=("$backend")
}

for backend in $backends; do
  while [[ ${#backend_of[@]} -ge $jobs ]]; do wait_for_one; done
  echo "started KERAS_BACKEND=$backend ($(date +%T))"
  run_pass "$backend" "$@" >"$logs/$backend.log" 2>&1 &
  backend_of[$!]=$backend
done
while [[ ${#backend_of[@]} -gt 0 ]]; do wait_for_one; done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all passes passed: $backends"
