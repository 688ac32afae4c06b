#!/usr/bin/env bash
# Download the wheels that benchmarks/gpu_check.sh installs on a GPU node without network access.
#
# For a node whose Python has JAX and/or PyTorch with CUDA, NumPy, h5py, rich, ml-dtypes,
# absl-py, imageio, pillow and matplotlib, but not Keras: this fetches Keras and the two of
# its dependencies such images usually lack (namex, optree), without their other
# dependencies, into .whl/ (git-ignored; replaced on each run so that no older version stays
# beside the new). Copy the repository with .whl/ to the node; gpu_check.sh installs them there
# when Keras is missing. TensorFlow is not fetched (a ~600 MB wheel); the check leaves its rows
# out where it is not installed.
#
#   bash benchmarks/gpu_wheels.sh [PYTHON_VERSION]     # the node's Python, default 3.12
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-3.12}"
rm -rf .whl && mkdir .whl
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$tag")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$version" --implementation cp \
    "${platforms[@]}" -d .whl "keras==3.15.1" "namex==0.1.0" "optree==0.20.0"
ls -l .whl
du -sh .whl
