# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Scheduled-sampling curves
#
# A schedule gives, for a global step, the probability of feeding the *true* frame at
# each input step (context, then future). The data pipeline turns it into a
# `(batch, T-2)` mask, reproducibly from `(seed, step)`.

# %%
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
from predrnn import schedules
from predrnn.visualize import plot_schedule

os.makedirs("runs", exist_ok=True)
for name in ("reference", "reverse", "linear", "exponential", "sigmoid"):
    schedule = schedules.get_schedule(name)
    plot_schedule(f"runs/schedule_{name}.png", schedule, 80_000, input_length=10, output_length=10)
    print(f"{name:12s}", schedule, "p(step=30k) =", schedule.probabilities(30_000, 10, 10)[[0, -1]])

# %% [markdown]
# Masks are reproducible: the same `(seed, step)` gives the same mask on every backend.

# %%
p = schedules.ReverseSchedule(alpha=2500).probabilities(30_000, 10, 10)
mask = schedules.sample_teacher_forcing_mask(p, batch_size=4, seed=0, step=30_000)
print(mask)
