"""Evaluation and prediction jobs: load a run or a checkpoint, roll out, score, draw."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import numpy as np

from predrnn.errors import CheckpointError, ConfigError, DataError


def load_predictor(run_or_checkpoint, *, channels=None):
    """Load a model from a run folder, a ``.keras`` file, an official ``model.ckpt-N`` or
    the name of a shipped pretrained model (:mod:`predrnn.pretrained_models`).

    Returns ``(model, run_config_or_None, checkpoint_path)``. A run folder gives its
    ``checkpoints/best.keras`` (or ``last.keras``) and its config; a pretrained model
    its training config.
    """
    import keras

    import predrnn.models  # noqa: F401  (registers the model classes for loading)
    from predrnn import pretrained_models
    from predrnn.jobs.config import load_saved_config

    path = Path(run_or_checkpoint)
    config = None
    if not path.exists() and str(run_or_checkpoint) in pretrained_models.available():
        model, config = pretrained_models.load_with_config(str(run_or_checkpoint))
        return model, config, pretrained_models.WEIGHTS_DIR / f"{run_or_checkpoint}.npz"
    if path.is_dir():
        if (path / "config.json").is_file():
            config = load_saved_config(path / "config.json")
        for name in ("best.keras", "last.keras"):
            candidate = path / "checkpoints" / name
            if candidate.is_file():
                path = candidate
                break
        else:
            raise CheckpointError(
                f"No checkpoint in {run_or_checkpoint}: expected checkpoints/best.keras or last.keras "
                "(a run writes them after its first epoch). Pass a run folder or a .keras / model.ckpt-N file."
            )
    elif not path.exists():
        raise CheckpointError(
            f"Checkpoint not found: {str(run_or_checkpoint)!r}. Pass a run folder, a .keras file, an official "
            f"model.ckpt-N or a pretrained model's name ({', '.join(pretrained_models.available()) or 'none installed'})."
        )
    if path.suffix == ".keras":
        try:
            model = keras.saving.load_model(path, compile=False)
        except Exception as error:  # noqa: BLE001 - corrupt zips, unknown classes, ...
            raise CheckpointError(f"Could not load {path}: {type(error).__name__}: {error}") from None
    else:
        from predrnn.official_checkpoint import load_official_checkpoint

        model = load_official_checkpoint(path, channels=channels)
    if not hasattr(model, "rollout"):
        raise CheckpointError(f"{path} holds a {type(model).__name__}, not a predrnn model with rollout().")
    return model, config, path


def _test_set(config, data, num_digits, num, seed, context, horizon, image_size, frame_shape=None, reading=None):
    """The sequences to score and a description of them."""
    from predrnn.data.files import read_for_model
    from predrnn.data.moving_mnist import generate_moving_mnist

    if data is not None:
        sequences = read_for_model(data, frame_shape, config, **(reading or {}))
        test_set = {"kind": "file", "path": str(Path(data).resolve()), "num_sequences": len(sequences)}
        return sequences, {**test_set, "read": sequences.summary.to_dict()}
    d = config.data if config is not None else None
    if d is not None and d.dataset == "file" and num_digits is None:
        raise ConfigError(
            "This run was trained on a file; pass --data FILE (the test file), or --digits to score on generated Moving MNIST."
        )
    spec = {
        "kind": "moving_mnist",
        "split": "test",
        "num_digits": num_digits or (d.num_digits if d else 2),
        "num_sequences": num or 1000,
        "seed": 0 if seed is None else seed,
        "image_size": image_size or (d.image_size if d else 64),
        "digit_size": d.digit_size if d else 28,
        "step_length": d.step_length if d else 0.1,
    }
    frames = generate_moving_mnist(
        spec["num_sequences"],
        spec["seed"],
        num_digits=spec["num_digits"],
        num_frames=context + horizon,
        image_size=spec["image_size"],
        digit_size=spec["digit_size"],
        step_length=spec["step_length"],
        split="test",
    )
    return frames, spec


def default_output(run_or_checkpoint):
    """Where ``evaluate`` writes without ``output``: ``RUN/metrics.json`` for a run folder,
    else ``evaluations/NAME/metrics.json`` under the current folder, NAME being the pretrained
    model's name or the checkpoint file's name without ``.keras``."""
    path = Path(run_or_checkpoint)
    if path.is_dir():
        return path / "metrics.json"
    name = path.name.removesuffix(".keras") or "model"
    return Path("evaluations") / name / "metrics.json"


def _check_output_path(output, overwrite):
    output = Path(output)
    if output.exists() and not overwrite:
        raise ConfigError(f"{output} exists. Pass --overwrite to replace it, or another --output.")
    folder = next((parent for parent in output.parents if parent.exists()), None)
    if folder is not None and not folder.is_dir():
        raise ConfigError(f"--output {output}: {folder} is a file, not a folder.")
    return output  # its folder is created once there is something to write


def evaluate(
    run_or_checkpoint,
    *,
    data=None,
    num_digits=None,
    num=None,
    seed=None,
    context=None,
    horizon=None,
    output=None,
    batch_size=16,
    overwrite=False,
    progress=True,
    pictures=4,
    layout=None,
    channels=None,
    resize=None,
) -> dict:
    """Autoregressive evaluation of a run or checkpoint; writes JSON, CSV, a plot and pictures.

    The test set is ``data`` (any format :func:`predrnn.data.load_sequences` reads) or
    generated Moving MNIST from the test digits (``num_digits``, ``num``, ``seed``;
    defaults from the run's config, else 2 digits, 1,000 sequences, seed 0). Each
    sequence gives ``context`` frames to the model, which predicts ``horizon`` more.
    Scores follow the conventions of docs/design.md; ``output`` defaults to
    :func:`default_output`. ``pictures``: the first that many test sequences are also
    drawn, as labelled PNG strips and GIFs in ``<output stem>_pictures/`` (0: none).
    ``layout``, ``channels`` and ``resize`` read ``data`` (default: as the run read its training file, else ``"auto"``);
    frames of another size or channel count than the model's are refused (a DataError
    naming the option that fixes it).
    :mod:`predrnn.baselines` (copy last frame, all black, mean of the context) are
    scored on the same frames under ``baselines``.
    """
    from predrnn.baselines import BASELINE_LABELS, BASELINES
    from predrnn.metrics import FrameMetricsAccumulator
    from predrnn.visualize import plot_per_frame

    model, config, checkpoint = load_predictor(run_or_checkpoint)
    context = context or (config.data.input_length if config else 10)
    horizon = horizon or (config.data.output_length if config else 10)
    for name, value in (("context", context), ("horizon", horizon), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"--{name} must be a positive integer. Received: {value!r}")
    if output is None:
        output = default_output(run_or_checkpoint)
    output = _check_output_path(output, overwrite)
    image_size = model.frame_shape[0] if model.frame_shape and model.frame_shape[0] else None
    reading = {"layout": layout, "channels": channels, "resize": resize}
    sequences, test_set = _test_set(config, data, num_digits, num, seed, context, horizon, image_size, model.frame_shape, reading)
    if progress and data is not None:
        print(f"Test set: {sequences.summary.line()}")
    needed = context + horizon
    if sequences.shape[1] < needed:
        raise DataError(
            f"The test sequences have {sequences.shape[1]} frames but context + horizon = {context} + {horizon} = {needed}. "
            "Lower --context/--horizon or use longer sequences."
        )
    model_scores = FrameMetricsAccumulator()
    baseline_scores = {name: FrameMetricsAccumulator() for name in BASELINES}
    total, drawn = len(sequences), []
    counting = progress and sys.stdout.isatty()  # a count on a terminal; a log file gets no carriage returns
    for start in range(0, total, batch_size):
        batch = np.asarray(sequences[start : start + batch_size], dtype=np.float32)[:, :needed]
        past, truth = batch[:, :context], batch[:, context:]
        prediction = model.rollout(past, horizon)
        model_scores.update(truth, prediction)
        drawn += [(batch[i], np.clip(prediction[i], 0.0, 1.0)) for i in range(min(len(batch), pictures - len(drawn)))]
        for name, baseline in BASELINES.items():
            baseline_scores[name].update(truth, baseline(past, horizon))
        if counting:
            done = min(start + batch_size, total)
            print(f"\revaluating {done}/{total} sequences", end="", flush=True)
    if counting:
        print()
    import keras

    report = model_scores.result()
    report["baselines"] = {name: scores.result() for name, scores in baseline_scores.items()}
    report.update(
        {
            "num_sequences": model_scores.num_sequences,
            "context": context,
            "horizon": horizon,
            "test_set": test_set,
            "checkpoint": str(checkpoint),
            "backend": keras.backend.backend(),
            "conventions": "mse_per_frame/mae_per_frame: sum over H*W*C per frame on the [0,1] scale, "
            "mean over future frames; mse_per_pixel: mean; ssim: 11x11 Gaussian, data range 1; psnr: data range 1",
        }
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    with open(tmp, "w") as handle:
        json.dump(report, handle, indent=2)
    os.replace(tmp, output)
    csv_path = output.with_suffix(".csv")
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        names = list(report["per_frame"])
        writer.writerow(["frame"] + names + [f"{b}_{n}" for b in BASELINES for n in names])
        for index in range(horizon):
            writer.writerow(
                [context + index + 1]
                + [report["per_frame"][n][index] for n in names]
                + [report["baselines"][b]["per_frame"][n][index] for b in BASELINES for n in names]
            )
    plot_per_frame(
        output.with_suffix(".png"),
        report,
        baselines={BASELINE_LABELS[b]: report["baselines"][b] for b in BASELINES},
    )
    if drawn:
        _draw_sequences(output.with_name(f"{output.stem}_pictures"), drawn, context)
        report["pictures"] = str(output.with_name(f"{output.stem}_pictures"))
    return report


def _draw_sequences(folder, drawn, context, fps=4):
    """``sequence_<i>.png`` (labelled rows context | truth | prediction) and ``.gif`` per
    ``(frames, prediction)`` pair; the truth row only where the frames go on past the context."""
    from predrnn.visualize import comparison_strip, save_comparison_gif, save_png

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for index, (sequence, prediction) in enumerate(drawn):
        sequence = np.asarray(sequence, dtype=np.float32)
        truth = sequence[context : context + len(prediction)]
        truth = truth if len(truth) == len(prediction) else None
        save_png(folder / f"sequence_{index:03d}.png", comparison_strip(sequence[:context], truth, prediction, scale=2))
        save_comparison_gif(folder / f"sequence_{index:03d}.gif", sequence[:context], truth, prediction, fps=fps, scale=2)


def predict(
    checkpoint, input_path, *, horizon, out, context=None, pictures=8, overwrite=False, layout=None, channels=None, resize=None
) -> dict:
    """Predict ``horizon`` frames after the context of each sequence of ``input_path``.

    Writes ``out/predictions.npy`` ``(N, horizon, H, W, C)`` float32, and for the first
    ``pictures`` sequences ``sequence_<i>.gif`` (labelled rows: truth, when the input has
    it, and prediction, over time) and ``sequence_<i>.png`` (labelled rows: context |
    truth | prediction). ``context`` defaults to the run's input length, else every frame
    of the input. ``out`` is created only once the predictions are made. ``layout``,
    ``channels`` and ``resize`` read ``input_path`` as in :func:`evaluate`.
    """
    from predrnn.data.files import read_for_model

    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ConfigError(f"--horizon must be a positive integer. Received: {horizon!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out must be a folder; {out} is a file.")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"The output folder {out} exists and is not empty. Pass --overwrite or another --out.")
    model, config, path = load_predictor(checkpoint)
    sequences = read_for_model(input_path, model.frame_shape, config, layout=layout, channels=channels, resize=resize)
    frames_available = sequences.shape[1]
    if context is None:
        context = config.data.input_length if config else frames_available
    if isinstance(context, bool) or not isinstance(context, int) or not 1 <= context <= frames_available:
        raise ConfigError(f"--context must be between 1 and the {frames_available} frames of the input. Received: {context!r}")
    predictions = []
    for start in range(0, len(sequences), 16):
        batch = np.asarray(sequences[start : start + 16], dtype=np.float32)
        predictions.append(np.clip(model.rollout(batch[:, :context], horizon), 0.0, 1.0))
    predictions = np.concatenate(predictions, axis=0).astype(np.float32)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "predictions.npy", predictions)
    count = min(pictures, len(sequences))
    _draw_sequences(out, [(sequences[i], predictions[i]) for i in range(count)], context)
    return {
        "predictions": str(out / "predictions.npy"),
        "num_sequences": int(len(sequences)),
        "context": context,
        "horizon": horizon,
        "checkpoint": str(path),
        "pictures": count,
        "read": sequences.summary.to_dict(),
    }


def gallery(models, *, out, labels=None, num_digits=None, num=4, seed=0, context=None, horizon=None, overwrite=False) -> dict:
    """The same Moving MNIST test sequences predicted by several models, side by side.

    Writes ``out`` (a GIF grid: a labelled row for the truth and one per model, a column
    per sequence) and, beside it, ``<stem>_<i>.png`` per sequence (labelled rows: context,
    truth, each model). ``models`` are run folders, checkpoints or pretrained names; the
    first model's config decides the test set unless ``num_digits``, ``context`` or
    ``horizon`` are given. ``labels`` default to the models' names.
    """
    from predrnn.visualize import labelled_rows, save_png, save_rows_gif

    models = [str(m) for m in models]
    if not models:
        raise ConfigError("Name at least one model (a run folder, a checkpoint or a pretrained model).")
    labels = list(labels) if labels else [Path(m).name or m for m in models]
    if len(labels) != len(models) or len(set(labels)) != len(labels):
        raise ConfigError(f"Give one distinct label per model: {len(models)} models, labels {labels}.")
    out = Path(out)
    if out.suffix.lower() != ".gif":
        raise ConfigError(f"--out must be a .gif file. Received: {out}")
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists. Pass --overwrite to replace it, or another --out.")
    loaded = [load_predictor(m) for m in models]
    config = loaded[0][1]
    context = context or (config.data.input_length if config else 10)
    horizon = horizon or (config.data.output_length if config else 10)
    shapes = {tuple(model.frame_shape or ()) for model, _, _ in loaded}
    if len(shapes) > 1:
        raise ConfigError(f"The models take frames of different sizes: {sorted(shapes)}. Compare models of one frame size.")
    image_size = loaded[0][0].frame_shape[0] if loaded[0][0].frame_shape else None
    sequences, _ = _test_set(config, None, num_digits, num, seed, context, horizon, image_size)
    sequences = np.asarray(sequences, dtype=np.float32)[:, : context + horizon]
    past, truth = sequences[:, :context], sequences[:, context:]
    predictions = {label: np.clip(model.rollout(past, horizon), 0.0, 1.0) for label, (model, _, _) in zip(labels, loaded)}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_rows_gif(out, past, truth, predictions, scale=2)
    pictures = []
    for index in range(len(sequences)):
        rows = {"context": past[index], "truth": truth[index], **{label: p[index] for label, p in predictions.items()}}
        path = out.with_name(f"{out.stem}_{index}.png")
        save_png(path, labelled_rows(rows, scale=2))
        pictures.append(str(path))
    return {"gif": str(out), "pngs": pictures, "models": dict(zip(labels, models)), "num_sequences": len(sequences)}
