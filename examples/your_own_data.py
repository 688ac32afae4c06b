# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Your own sequences: radar, traffic, sensor grids, video
#
# Any `(N, T, H, W[, C])` array saved as `.npy`/`.npz` (uint8, or floats in [0, 1] — or
# declare another range), a folder of frame folders, GIFs or videos can be loaded
# lazily (memory-mapped) and trained on with `data.dataset = "file"`.

# %%
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import numpy as np

# A toy "sensor grid": a Gaussian blob drifting on a 32x32 grid, 40 sequences x 12 steps.
rng = np.random.default_rng(0)
yy, xx = np.mgrid[:32, :32]
sequences = np.zeros((40, 12, 32, 32, 1), np.float32)
for n in range(40):
    y, x = rng.uniform(8, 24, size=2)
    vy, vx = rng.uniform(-1.5, 1.5, size=2)
    for t in range(12):
        sequences[n, t, :, :, 0] = np.exp(-((yy - y - vy * t) ** 2 + (xx - x - vx * t) ** 2) / 18.0)
os.makedirs("runs", exist_ok=True)
np.save("runs/my_grid.npy", sequences)

# %% [markdown]
# Load it back: nothing is read until a sequence is indexed.

# %%
from predrnn.data import load_sequences

data = load_sequences("runs/my_grid.npy")
print(data.shape, data[0].dtype, float(data[0].max()))

# %% [markdown]
# Train with the same job as Moving MNIST: only the `[data]` table changes.

# %%
from predrnn.jobs.config import load_config
from predrnn.jobs.train import train

config = load_config(
    "quickstart",
    [
        'data.dataset="file"',
        'data.path="runs/my_grid.npy"',
        "data.input_length=6",
        "data.output_length=6",
        "model.filters=[16]",
        "model.patch_size=2",
        "train.steps=60",
        "train.steps_per_epoch=30",
        "train.batch_size=4",
        "sampling.decay_rate=0.02",
        "sampling.stop_step=60",
    ],
)
train(config, "runs/example_own_data", overwrite=True)

# %%
from predrnn.jobs.evaluate import evaluate

report = evaluate("runs/example_own_data", data="runs/my_grid.npy", context=6, horizon=6, overwrite=True, progress=False)
print(report["mse_per_frame"], {name: base["mse_per_frame"] for name, base in report["baselines"].items()})
