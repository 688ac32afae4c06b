"""Peak resident memory of PredRNN training steps by sequence length (TensorFlow backend).

The `moving_mnist_predrnn` preset's model at 4x64 channels (kernel 5, patch 4), batch 8 of
random 64x64 frames: one compiling `train_on_batch`, then STEPS more; prints the median step
and the process's peak resident set (`getrusage`). Extra arguments are config overrides,
as for `predrnn train --set`.

    python benchmarks/peak_memory.py FRAMES [STEPS] [section.key=value ...]
    for t in 4 12 20; do python benchmarks/peak_memory.py $t 1; PREDRNN_XLA_CELLS=1 python benchmarks/peak_memory.py $t 1; done
    PREDRNN_XLA_CELLS=1 python benchmarks/peak_memory.py 20 2 model.remat=true

TensorFlow's BFC allocator is on, as the `predrnn` command sets it (`TF_CPU_ALLOCATOR_USE_BFC=0`
in the environment measures the system allocator). Produced the T = 4 / 12 / 20 peak figures
of benchmarks/README.md ("XLA cell steps"). Step times from this script are medians of a few
single steps, not of interleaved rounds: use `predrnn benchmark` for speed.
"""
import os
import resource
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "1")  # before TensorFlow starts, as in predrnn.cli

from predrnn.jobs.config import load_config
from predrnn.jobs.train import _compile, build_model

frames = int(sys.argv[1])
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 1
config = load_config("moving_mnist_predrnn", ["model.filters=[64,64,64,64]", *sys.argv[3:]])
model = build_model(config.model)
_compile(model, config.train)
x = {
    "frames": np.random.rand(8, frames, 64, 64, 1).astype("float32"),
    "teacher_forcing_mask": np.ones((8, frames - 2), "float32"),
}
y = x["frames"][:, 1:]
start = time.time()
model.train_on_batch(x, y)
first = time.time() - start
times = []
for _ in range(steps):
    start = time.time()
    model.train_on_batch(x, y)
    times.append(time.time() - start)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"T={frames} first {first:.1f}s step {np.median(times):.2f}s peak {peak:.0f} MB")
