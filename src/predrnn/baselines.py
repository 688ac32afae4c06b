"""Trivial predictors that every evaluation is scored against.

A model that does not beat all three has not learned the motion:

- ``copy_last``: every future frame is the last context frame (the papers' baseline;
  sharp, but the digit stays where it was);
- ``zeros``: every future frame is black (on Moving MNIST, where most pixels are 0,
  this is what a model that blurs the digit away converges to);
- ``context_mean``: every future frame is the mean of the context frames (the
  digit's smeared trail).

Each takes the context ``(N, T, H, W, C)`` and the horizon and returns the predicted
future frames ``(N, horizon, H, W, C)`` as float32.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BASELINES", "BASELINE_LABELS", "context_mean", "copy_last", "zeros"]


def copy_last(context, horizon: int) -> np.ndarray:
    context = np.asarray(context, dtype=np.float32)
    return np.repeat(context[:, -1:], horizon, axis=1)


def zeros(context, horizon: int) -> np.ndarray:
    context = np.asarray(context)
    return np.zeros((context.shape[0], horizon, *context.shape[2:]), dtype=np.float32)


def context_mean(context, horizon: int) -> np.ndarray:
    mean = np.asarray(context, dtype=np.float32).mean(axis=1, keepdims=True)
    return np.repeat(mean, horizon, axis=1)


BASELINES = {"copy_last": copy_last, "zeros": zeros, "context_mean": context_mean}
BASELINE_LABELS = {
    "copy_last": "copy last frame",
    "zeros": "all black (zeros)",
    "context_mean": "mean of the context",
}
