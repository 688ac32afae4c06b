"""Peak resident memory of PredRNN training steps by sequence length (TensorFlow backend).

The `moving_mnist_predrnn` preset's model at 4x64 channels (kernel 5, patch 4), batch 8 of
random 64x64 frames: one compiling `train_on_batch`, then STEPS more; prints the median step
and the process's peak resident set (`getrusage`), and apart from it the peak of the
compiling first step and that of the later steps (Linux: `VmHWM`, restarted in between).
Extra arguments are config overrides, as for `predrnn train --set`.

    python benchmarks/peak_memory.py FRAMES [STEPS] [section.key=value ...]
    for t in 4 12 20; do PREDRNN_XLA_CELLS=0 python benchmarks/peak_memory.py $t 2; python benchmarks/peak_memory.py $t 2; done
    python benchmarks/peak_memory.py 20 2 model.remat=true

This model's cells compile their steps with XLA by default (``PREDRNN_XLA_CELLS=auto``: 64
filters, 5x5); ``PREDRNN_XLA_CELLS=0`` measures the uncompiled cells.

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


def status_mb(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":")) / 1024


start = time.time()
model.train_on_batch(x, y)
first = time.time() - start
compiled_peak = status_mb("VmHWM")
with open("/proc/self/clear_refs", "w") as clear:  # Linux: restart the high-water mark here
    clear.write("5")
times = []
for _ in range(steps):
    start = time.time()
    model.train_on_batch(x, y)
    times.append(time.time() - start)
# Restarting the high-water mark restarts getrusage's ru_maxrss too: the peak is the larger of the two.
peak = max(compiled_peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(
    f"T={frames} first {first:.1f}s step {np.median(times):.2f}s peak {peak:.0f} MB "
    f"(first step {compiled_peak:.0f} MB, later steps {status_mb('VmHWM'):.0f} MB); "
    f"resident now: {status_mb('RssAnon'):.0f} MB allocated, {status_mb('RssFile'):.0f} MB of mapped files"
)
