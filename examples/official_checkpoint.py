# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Loading a checkpoint of the official PyTorch PredRNN
#
# The official code (thuml/predrnn-pytorch) saves `model.ckpt-<iteration>` files. They
# load into our `PredRNN` on any backend (reading the file needs `torch`):
#
# ```python
# model = PredRNN.from_official_checkpoint("model.ckpt-80000")      # arguments inferred
# model = PredRNN.from_official_checkpoint("model.ckpt-80000", filters=(128,) * 4, patch_size=4)
# ```
#
# Then `predrnn evaluate model.ckpt-80000 --num 10000` scores it like any run. This
# notebook makes a small checkpoint in the official key layout (random weights) so that
# it runs offline.

# %%
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import numpy as np
import torch

from predrnn import PredRNN

filters, k, p, n = (8, 8), 5, 4, 8
state = {}
for l in range(2):
    cin = p * p if l == 0 else n
    state[f"cell_list.{l}.conv_x.0.weight"] = torch.randn(7 * n, cin, k, k) * 0.05
    state[f"cell_list.{l}.conv_h.0.weight"] = torch.randn(4 * n, n, k, k) * 0.05
    state[f"cell_list.{l}.conv_m.0.weight"] = torch.randn(3 * n, n, k, k) * 0.05
    state[f"cell_list.{l}.conv_o.0.weight"] = torch.randn(n, 2 * n, k, k) * 0.05
    state[f"cell_list.{l}.conv_last.weight"] = torch.randn(n, 2 * n, 1, 1) * 0.05
state["conv_last.weight"] = torch.randn(p * p, n, 1, 1) * 0.05
state["adapter.weight"] = torch.randn(n, n, 1, 1) * 0.05  # a PredRNN-V2 checkpoint
os.makedirs("runs", exist_ok=True)
torch.save({"net_param": state}, "runs/model.ckpt-1000")

# %%
model = PredRNN.from_official_checkpoint("runs/model.ckpt-1000")
print(model.get_config())
context = np.random.default_rng(0).random((1, 10, 64, 64, 1)).astype("float32")
print(model.rollout(context, 10).shape)

# %% [markdown]
# A wrong argument is named precisely:

# %%
from predrnn.errors import CheckpointError

try:
    PredRNN.from_official_checkpoint("runs/model.ckpt-1000", filters=(16, 16))
except CheckpointError as error:
    print(error)
