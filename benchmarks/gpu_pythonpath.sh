# Sourced by gpu_check.sh and gpu_train.sh (from the repository root, with $PYTHON set): puts
# Keras on PYTHONPATH from the wheels in .whl/ (see gpu_wheels.sh) where the machine lacks it,
# then this checkout's src/, so the package runs without being installed.
if ! KERAS_BACKEND=jax "$PYTHON" -c "import keras" 2>/dev/null && ! "$PYTHON" -c "import keras" 2>/dev/null; then
    if ! ls .whl/*.whl >/dev/null 2>&1; then
        echo "Keras is not installed here and no wheels were carried: run 'bash benchmarks/gpu_wheels.sh'" \
            "where pip works, then carry .whl" >&2
        exit 1
    fi
    SITE="$(mktemp -d)"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" .whl/*.whl
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
