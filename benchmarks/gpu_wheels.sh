#!/usr/bin/env bash
# Download, here, the wheels that benchmarks/gpu_check.sh needs on the lent GPU machine.
#
# That machine cannot reach the network. Its image (Python 3.12) has JAX and PyTorch with CUDA,
# numpy, h5py, rich, ml-dtypes, absl-py, imageio, pillow and matplotlib, but not Keras nor
# TensorFlow: this fetches Keras and the two packages of Keras' that the image lacks, without
# their other dependencies, into .whl/ (git-ignored; this script's own folder, replaced on
# each run so that no older version stays beside the new). TensorFlow stays behind: its wheel is
# about ten times the 64 MiB that may travel to the machine.
#
#   bash benchmarks/gpu_wheels.sh [PYTHON_VERSION]     # default 3.12, the GPU image's
#
# Then pass carry [".whl"] to the device tool's run; gpu_check.sh installs them there.
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
