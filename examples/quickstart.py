# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Quickstart: train PredRNN on Moving MNIST, evaluate it, look at its predictions
#
# Everything here is also one CLI command (`predrnn train quickstart --workdir runs/qs`,
# `predrnn evaluate runs/qs`, `predrnn predict ...`). The Python API is the same code.
# This notebook trains 100 steps (`QUICKSTART_STEPS` in the environment changes it: a multiple
# of the 50-step epochs); the `quickstart` preset trains 3,000, about 8 minutes on a 2-core CPU,
# for a better model.

# %%
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # or "jax", "torch"

from predrnn.jobs.config import load_config
from predrnn.jobs.evaluate import evaluate
from predrnn.jobs.train import train

STEPS = int(os.environ.get("QUICKSTART_STEPS", 100))
config = load_config("quickstart", [f"train.steps={STEPS}", "train.steps_per_epoch=50"])
print(config.model)
print(config.sampling)

# %%
summary = train(config, "runs/example_quickstart", overwrite=True)
print({k: summary[k] for k in ("step", "best_value")})

# %% [markdown]
# ## Evaluate against the baselines (copy last frame, all black, mean of the context)
# `mse_per_frame` is the sum of squared errors over the 64x64 pixels of a frame (the
# papers' convention), averaged over the 10 predicted frames.

# %%
report = evaluate("runs/example_quickstart", num=64, overwrite=True, progress=False)
print(f"model     mse/frame {report['mse_per_frame']:.1f}  ssim {report['ssim']:.3f}")
for name, base in report["baselines"].items():
    print(f"{name:9s} mse/frame {base['mse_per_frame']:.1f}  ssim {base['ssim']:.3f}")

# %% [markdown]
# ## Predict 20 frames from 10 and write a GIF

# %%
from predrnn.data import generate_moving_mnist
from predrnn.models import load_model
from predrnn.visualize import comparison_strip, save_comparison_gif, save_png

model = load_model("runs/example_quickstart/checkpoints/best.keras")
clips = generate_moving_mnist(2, seed=7, num_digits=1, num_frames=30)
prediction = model.rollout(clips[:, :10], horizon=20)
save_comparison_gif("runs/example_quickstart/rollout.gif", clips[0, :10], clips[0, 10:], prediction[0].clip(0, 1))
save_png("runs/example_quickstart/rollout.png", comparison_strip(clips[0, :10], clips[0, 10:], prediction[0].clip(0, 1)))
print(prediction.shape)
