"""Pretrained models that ship inside the package (no download).

Each model is two files in ``predrnn/pretrained_models/weights/``:

- ``NAME.npz``: the weights, float16, one array per model variable, keyed
  ``"<index>:<variable path inside the model>"`` in the order of ``model.weights``;
- ``NAME.json``: its model card: what it predicts, the full training config, the command
  that trained it, steps, wall time and machine, test metrics beside the baselines of
  :mod:`predrnn.baselines`, a small fixed ``check`` evaluation (what the tests re-score
  on every backend) and the data licence.

Use::

    import predrnn
    model = predrnn.pretrained("mnist1_predrnn_v2")        # a built Keras model
    future = model.rollout(context, horizon=10)            # (B, 10, 64, 64, 1)

or from the command line: ``predrnn pretrained`` (list and cards), ``predrnn evaluate
NAME``, ``predrnn predict NAME INPUT --horizon 10 --out DIR``.

Maintainers add a model with :func:`package_run` (``predrnn pretrained package RUN
--name NAME``): it stores the best checkpoint of a finished run in float16 with its card.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from predrnn.errors import CheckpointError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MAX_FILE_BYTES = 10 * 2**20  # what one shipped file may weigh
DATA_LICENCE = (
    "Trained on Moving MNIST rendered from the MNIST digits (Yann LeCun, Corinna Cortes, "
    "Christopher J.C. Burges; CC BY-SA 3.0), see predrnn/data/mnist/NOTICE.md."
)

__all__ = ["DATA_LICENCE", "available", "card", "load_with_config", "package_run", "pretrained"]


def available() -> list[str]:
    """The names of the shipped models."""
    if not WEIGHTS_DIR.is_dir():
        return []
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.json") if (WEIGHTS_DIR / f"{p.stem}.npz").is_file())


def _unknown(name) -> CheckpointError:
    names = available()
    choices = ", ".join(names) if names else "none are installed"
    return CheckpointError(f"No pretrained model named {name!r}. Pretrained models: {choices} (`predrnn pretrained` lists them).")


def card(name: str) -> dict:
    """The model card of a shipped model (a dict; see the module docstring)."""
    path = WEIGHTS_DIR / f"{name}.json"
    if not isinstance(name, str) or not path.is_file():
        raise _unknown(name)
    with open(path) as handle:
        return json.load(handle)


def _build(config, weights: dict):
    from predrnn.jobs.config import from_dict
    from predrnn.jobs.train import build_model

    experiment = from_dict(config, source="model card")
    model = build_model(experiment.model)
    d = experiment.data
    model.build((None, d.input_length + d.output_length, d.image_size, d.image_size, int(config.get("channels", 1))))
    keys = sorted(weights, key=lambda k: int(k.split(":", 1)[0]))
    if len(keys) != len(model.weights):
        raise CheckpointError(f"The weights file holds {len(keys)} arrays, the model has {len(model.weights)} variables.")
    for key, variable in zip(keys, model.weights):
        path = key.split(":", 1)[1]
        if path != _local_path(variable) or tuple(weights[key].shape) != tuple(variable.shape):
            raise CheckpointError(
                f"The weights file does not fit the model: {path} {weights[key].shape} against "
                f"{_local_path(variable)} {tuple(variable.shape)}."
            )
        variable.assign(weights[key].astype(variable.dtype))
    return model, experiment


def pretrained(name: str):
    """A shipped model, built, with its float16 weights cast to the variables' dtype.

    Returns a :class:`predrnn.PredRNN` or :class:`predrnn.ConvLSTM`; its training config is
    in :func:`card` (``card(name)["config"]``).
    """
    return load_with_config(name)[0]


def _local_path(variable) -> str:
    """The variable's path inside the model (without the model's own, numbered, name)."""
    return variable.path.split("/", 1)[-1]


def load_with_config(name: str):
    """``(model, ExperimentConfig)`` of a shipped model (what ``predrnn evaluate NAME`` uses)."""
    info = card(name)
    with np.load(WEIGHTS_DIR / f"{name}.npz") as stored:
        weights = {key: stored[key] for key in stored.files}
    return _build(info["config"], weights)


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_run(run, name: str, *, description: str, training: dict, out=WEIGHTS_DIR, check_num: int = 32) -> dict:
    """Store a finished run's best checkpoint as the shipped model ``name``.

    Args:
        run: a run folder with ``checkpoints/best.keras`` (or ``last.keras``), its
            ``config.json`` and a ``metrics.json`` from ``predrnn evaluate`` (the card's
            test metrics and baselines).
        name: the model's name (letters, digits, ``_``).
        description: one sentence: what it predicts.
        training: what the card says of the training beside what the run recorded
            (``steps`` of the packaged checkpoint, ``total_steps``, ``wall_time_hours``,
            ``machine``): at least the ``command`` that trained it.
        out: the folder to write ``name.npz`` and ``name.json`` into.
        check_num: sequences of the card's ``check`` evaluation, scored here with the
            float16 weights (the tests re-score them on every backend).

    Returns the card. Refuses a weights file over :data:`MAX_FILE_BYTES`.
    """
    import re

    from predrnn.jobs.evaluate import load_predictor

    if not re.fullmatch(r"[A-Za-z0-9_]+", name or ""):
        raise CheckpointError(f"A pretrained model's name takes letters, digits and '_'. Received: {name!r}")
    run = Path(run)
    metrics_path = run / "metrics.json"
    if not metrics_path.is_file():
        raise CheckpointError(f"{run} has no metrics.json: run `predrnn evaluate {run}` first (the card reports its scores).")
    with open(metrics_path) as handle:
        metrics = json.load(handle)
    model, config, checkpoint = load_predictor(run)
    if config is None:
        raise CheckpointError(f"{run} has no config.json: pass a run folder made by `predrnn train`.")
    with open(run / "checkpoints" / "state.json") as handle:
        state = json.load(handle)
    training = {
        "steps": state.get("best_step") if checkpoint.name == "best.keras" else state.get("step"),
        "total_steps": state.get("step"),
        "wall_time_hours": round(state.get("train_seconds", float("nan")) / 3600, 2),
        "machine": _machine(),
        **training,
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    weights = {
        f"{i}:{_local_path(v)}": np.asarray(v.numpy() if hasattr(v, "numpy") else v, dtype=np.float16)
        for i, v in enumerate(model.weights)
    }
    weights_path = out / f"{name}.npz"
    tmp = out / f".{name}.{os.getpid()}.npz"
    np.savez_compressed(tmp, **weights)
    size = tmp.stat().st_size
    if size > MAX_FILE_BYTES:
        tmp.unlink()
        raise CheckpointError(
            f"{name}: the float16 weights take {size / 2**20:.1f} MB, over the {MAX_FILE_BYTES / 2**20:.0f} MB a shipped file may weigh."
        )
    os.replace(tmp, weights_path)
    config_dict = config.to_dict()
    config_dict["model"]["filters"] = list(config_dict["model"]["filters"])
    for section in config_dict.values():
        for key in [k for k, v in section.items() if v is None]:
            del section[key]
    check = _check_evaluation(name, config_dict, weights, check_num)
    info = {
        "name": name,
        "description": description,
        "architecture": config.model.architecture + ("_v2" if getattr(config.model, "decoupling_weight", 0) else ""),
        "parameters": int(sum(int(np.prod(v.shape)) for v in model.weights)),
        "frame_shape": list(model.frame_shape),
        "config": config_dict,
        "training": training,
        "checkpoint": str(checkpoint.relative_to(run)) if checkpoint.is_relative_to(run) else checkpoint.name,
        "test": {
            key: metrics[key]
            for key in (
                "mse_per_frame",
                "mae_per_frame",
                "ssim",
                "psnr",
                "mse_per_pixel",
                "num_sequences",
                "context",
                "horizon",
                "test_set",
                "baselines",
                "backend",
            )
            if key in metrics
        },
        "check": check,
        "weights": {"file": weights_path.name, "dtype": "float16", "bytes": size, "sha256": _sha256(weights_path)},
        "data_licence": DATA_LICENCE,
    }
    for per in [info["test"]] + list(info["test"].get("baselines", {}).values()):
        per.pop("per_frame", None)
    info = json.loads(json.dumps(info))  # the card as it reads back (tuples as lists)
    tmp_card = out / f".{name}.{os.getpid()}.json"
    with open(tmp_card, "w") as handle:
        json.dump(info, handle, indent=2)
        handle.write("\n")
    os.replace(tmp_card, out / f"{name}.json")
    return info


def _machine() -> str:
    import platform

    from predrnn.hardware import cpu_features

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            name = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    features = cpu_features()
    return f"{name}, {os.cpu_count()} cores" + (f" ({', '.join(features)})" if features else "") + ", CPU only"


def _check_evaluation(name, config_dict, weights, num) -> dict:
    """Scores of the float16 model on ``num`` fixed test sequences (seed 0)."""
    import keras

    from predrnn.data.moving_mnist import generate_moving_mnist
    from predrnn.metrics import FrameMetricsAccumulator

    model, experiment = _build(config_dict, weights)
    d = experiment.data
    frames = generate_moving_mnist(
        num,
        0,
        num_digits=d.num_digits,
        num_frames=d.input_length + d.output_length,
        image_size=d.image_size,
        digit_size=d.digit_size,
        step_length=d.step_length,
        split="test",
    )
    scores = FrameMetricsAccumulator()
    scores.update(frames[:, d.input_length :], model.rollout(frames[:, : d.input_length], d.output_length))
    result = scores.result()
    return {
        "num_sequences": num,
        "seed": 0,
        "num_digits": d.num_digits,
        "mse_per_frame": result["mse_per_frame"],
        "ssim": result["ssim"],
        "backend": keras.backend.backend(),
    }
