"""Pictures of predictions and metrics: GIFs, comparison strips, per-frame plots.

Host-side only (NumPy, imageio, matplotlib). Frames are NumPy arrays
``(time, height, width, channels)`` with ``channels`` 1 or 3, floats on the
``[0, 1]`` scale; values outside are clipped and NaN/inf is an error. Images come
out as ``uint8`` RGB.

Every writer creates missing parent folders and writes atomically (a temporary
file in the same folder, then ``os.replace``), so a reader never sees a partial
file. Existing files are replaced: these functions write into a job's own output
folder. matplotlib is imported lazily and used through its object API with the Agg
canvas, so the global pyplot backend is never touched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Mapping

import numpy as np

__all__ = [
    "to_uint8",
    "save_gif",
    "comparison_strip",
    "labelled_rows",
    "save_png",
    "save_comparison_gif",
    "save_rows_gif",
    "plot_per_frame",
    "plot_schedule",
    "save_figure",
]

SEPARATOR_VALUE = 128  # mid grey: visible on black Moving MNIST backgrounds and on white
CONTEXT_BAR_COLOR = (0, 170, 0)  # green bar under observed (context) frames
FUTURE_BAR_COLOR = (200, 0, 0)  # red bar under predicted frames
BAR_HEIGHT = 2  # pixels, times the upscaling factor
LABEL_FONT_SIZE = 12  # pixels, for row labels
LABEL_BACKGROUND = 32  # near-black label column

# Metrics drawn by plot_per_frame, in subplot order, with axis labels.
PLOTTED_METRICS = {
    "mse_per_frame": "MSE per frame (sum over pixels)",
    "mae_per_frame": "MAE per frame (sum over pixels)",
    "ssim": "SSIM",
    "psnr": "PSNR (dB)",
}


# ----------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _atomic_path(path, suffix: str):
    """Yield a temporary path beside ``path``; move it onto ``path`` on success."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=parent)
    os.close(handle)
    try:
        yield temporary
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp's file is private; a picture is not
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise


def _check_frames(name: str, frames) -> np.ndarray:
    """``(T, H, W, C)`` with C in {1, 3}, finite; returns a float array."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3) or frames.shape[0] < 1:
        raise ValueError(
            f"{name} must be frames of shape (time, height, width, channels) with 1 or 3 "
            f"channels and at least one frame (for a batch, pass one sample: x[i]). "
            f"Received: {name}.shape={frames.shape}"
        )
    if not np.issubdtype(frames.dtype, np.floating):
        raise ValueError(
            f"{name} must hold floats on the [0, 1] scale (convert uint8 with x / 255). Received: {name}.dtype={frames.dtype}"
        )
    if not np.all(np.isfinite(frames)):
        raise ValueError(f"{name} contains NaN or infinite values. Received: {name}.shape={frames.shape}")
    return frames


def _check_scale(scale) -> int:
    if not isinstance(scale, (int, np.integer)) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"scale must be a positive int. Received: scale={scale!r}")
    return int(scale)


def to_uint8(frames) -> np.ndarray:
    """Floats on [0, 1] -> ``uint8`` on [0, 255] (clipped, rounded), same shape."""
    return np.round(np.clip(np.asarray(frames, dtype=np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)


def _rgb(images_uint8: np.ndarray) -> np.ndarray:
    """``(..., C)`` uint8 with C in {1, 3} -> ``(..., 3)``."""
    if images_uint8.shape[-1] == 1:
        return np.repeat(images_uint8, 3, axis=-1)
    return images_uint8


def _upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling of the two axes before the last (H, W of ``(..., H, W, C)``)."""
    if scale == 1:
        return image
    return np.repeat(np.repeat(image, scale, axis=-3), scale, axis=-2)


def _hstack(images: list[np.ndarray], separator: int) -> np.ndarray:
    """Images ``(H, W, 3)`` side by side with grey columns of width ``separator``."""
    height = images[0].shape[0]
    gap = np.full((height, separator, 3), SEPARATOR_VALUE, dtype=np.uint8)
    parts = []
    for index, image in enumerate(images):
        if index:
            parts.append(gap)
        parts.append(image)
    return np.concatenate(parts, axis=1)


def _label_column(labels: list[str], heights: list[int], separator: int) -> np.ndarray:
    """A column of row labels: ``labels[i]`` left-aligned and vertically centred in a band of
    ``heights[i]`` pixels, bands separated by ``separator`` grey pixels; ``(H, W, 3)`` uint8."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=LABEL_FONT_SIZE)
    width = 8 + max(int(font.getbbox(label)[2]) for label in labels)
    bands = []
    for index, (label, height) in enumerate(zip(labels, heights)):
        if index:
            bands.append(np.full((separator, width, 3), SEPARATOR_VALUE, dtype=np.uint8))
        band = Image.new("RGB", (width, height), (LABEL_BACKGROUND,) * 3)
        top, bottom = font.getbbox(label)[1::2]
        ImageDraw.Draw(band).text((4, (height - (top + bottom)) // 2), label, fill=(255, 255, 255), font=font)
        bands.append(np.asarray(band))
    return np.concatenate(bands, axis=0)


def _with_labels(image: np.ndarray, labels: list[str], heights: list[int], separator: int) -> np.ndarray:
    """``image`` with a label column on its left (and a grey gap of ``separator`` between)."""
    column = _label_column(labels, heights, separator)
    gap = np.full((image.shape[0], max(separator, 1), 3), SEPARATOR_VALUE, dtype=np.uint8)
    return np.concatenate([column, gap, image], axis=1)


def _check_matching(reference_name, reference, others: dict) -> None:
    for name, frames in others.items():
        if frames is not None and frames.shape[1:] != reference.shape[1:]:
            raise ValueError(
                f"{name} and {reference_name} must have the same frame size and channels. "
                f"Received: {reference_name}.shape={reference.shape}, {name}.shape={frames.shape}"
            )


# ----------------------------------------------------------------------------------
# Writers
# ----------------------------------------------------------------------------------


def save_png(path, image) -> None:
    """Write a ``uint8`` image ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` as PNG."""
    import imageio.v3 as iio

    image = np.asarray(image)
    bad_channels = image.ndim == 3 and image.shape[-1] not in (1, 3)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or bad_channels:
        raise ValueError(
            "save_png expects a uint8 image of shape (H, W), (H, W, 1) or (H, W, 3) "
            f"(convert floats with to_uint8). Received: dtype={image.dtype}, shape={image.shape}"
        )
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    with _atomic_path(path, ".png") as temporary:
        iio.imwrite(temporary, image, extension=".png")


def _write_gif(path, frames_uint8: np.ndarray, fps: float) -> None:
    import imageio.v3 as iio

    if not fps > 0:
        raise ValueError(f"fps must be > 0. Received: fps={fps!r}")
    if frames_uint8.shape[-1] == 1:
        frames_uint8 = frames_uint8[..., 0]
    with _atomic_path(path, ".gif") as temporary:
        # Pillow's GIF writer takes the frame duration in milliseconds; loop=0 repeats forever.
        iio.imwrite(temporary, frames_uint8, extension=".gif", duration=1000.0 / fps, loop=0)


def save_gif(path, frames, fps: float = 4, scale: int = 1) -> None:
    """Write frames ``(T, H, W, C)`` (C = 1 or 3, floats on [0, 1]) as a looping GIF.

    Args:
        path: output file, parent folders are created.
        frames: the frames; values are clipped to [0, 1] and rounded to uint8.
        fps: frames per second.
        scale: integer nearest-neighbour upscaling (e.g. 4 makes a 64x64 clip 256x256).

    Note: Pillow merges identical consecutive frames into one longer frame, so a
    clip with repeated frames reads back with fewer frames (same total duration).
    """
    frames = _check_frames("frames", frames)
    _write_gif(path, _upscale(to_uint8(frames), _check_scale(scale)), fps)


def comparison_strip(context, truth, prediction, separator: int = 1, scale: int = 1, labels: bool = True) -> np.ndarray:
    """One RGB ``uint8`` image: rows context | truth | prediction, frames side by side,
    each row labelled on the left.

    Args:
        context: observed frames ``(T_in, H, W, C)``, or ``None`` to omit the row.
        truth: ground-truth future frames ``(T_out, H, W, C)``, or ``None`` to omit.
        prediction: predicted future frames ``(T_out, H, W, C)``.
        separator: width in pixels (after scaling) of the grey lines between frames and rows.
        scale: integer nearest-neighbour upscaling of every frame.
        labels: draw the row names ("context", "truth", "prediction") in a column on the left.

    Returns:
        ``(rows * H' + (rows - 1) * separator, W, 3)`` uint8 with ``H' = H * scale``;
        shorter rows are padded on the right with grey.
    """
    scale = _check_scale(scale)
    if not isinstance(separator, (int, np.integer)) or isinstance(separator, bool) or separator < 0:
        raise ValueError(f"separator must be an int >= 0. Received: separator={separator!r}")
    separator = int(separator)
    prediction = _check_frames("prediction", prediction)
    rows = {"context": context, "truth": truth}
    rows = {name: _check_frames(name, frames) for name, frames in rows.items() if frames is not None}
    _check_matching("prediction", prediction, rows)
    if "truth" in rows and rows["truth"].shape[0] != prediction.shape[0]:
        raise ValueError(
            "truth and prediction must have the same number of frames. "
            f"Received: truth.shape={rows['truth'].shape}, prediction.shape={prediction.shape}"
        )
    rows["prediction"] = prediction
    return labelled_rows(rows, separator=separator, scale=scale, labels=labels)


def labelled_rows(rows: Mapping, separator: int = 1, scale: int = 1, labels: bool = True) -> np.ndarray:
    """One RGB ``uint8`` image with a row of frames per entry of ``rows`` (``{label: frames
    (T, H, W, C)}``, in order), each labelled on the left; shorter rows padded with grey.

    E.g. ``{"context": x[:10], "truth": x[10:], "PredRNN-V2": p1, "ConvLSTM": p2}``.
    """
    scale = _check_scale(scale)
    if not rows:
        raise ValueError("rows must hold at least one {label: frames} entry.")
    rows = {str(name): _check_frames(str(name), frames) for name, frames in rows.items()}
    first_name, first = next(iter(rows.items()))
    _check_matching(first_name, first, rows)
    images = [_hstack(list(_upscale(_rgb(to_uint8(frames)), scale)), separator) for frames in rows.values()]
    width = max(image.shape[1] for image in images)
    padded = []
    for index, image in enumerate(images):
        if index:
            padded.append(np.full((separator, width, 3), SEPARATOR_VALUE, dtype=np.uint8))
        pad = np.full((image.shape[0], width - image.shape[1], 3), SEPARATOR_VALUE, dtype=np.uint8)
        padded.append(np.concatenate([image, pad], axis=1))
    image = np.concatenate(padded, axis=0)
    if labels:
        image = _with_labels(image, list(rows), [i.shape[0] for i in images], separator)
    return image


def save_comparison_gif(path, context, truth, prediction, fps: float = 4, scale: int = 1, separator: int = 1) -> None:
    """A GIF of ``T_in + T_out`` frames with two labelled rows, "truth" above "prediction".

    During the context part both rows show the observed frame, with a green bar
    underneath; during the future part the top row shows the true frame and the
    bottom row the prediction, with a red bar underneath. With ``truth=None`` only
    the prediction row is drawn (context, then prediction).

    Args:
        path: output file, parent folders are created.
        context: observed frames ``(T_in, H, W, C)``.
        truth: true future frames ``(T_out, H, W, C)`` or ``None``.
        prediction: predicted future frames ``(T_out, H, W, C)``.
        fps, scale: as in :func:`save_gif`; separator: grey gap between rows, pixels.
    """
    context = _check_frames("context", context)
    truth = None if truth is None else _check_frames("truth", truth)
    save_rows_gif(
        path,
        context[None],
        None if truth is None else truth[None],
        {"prediction": _check_frames("prediction", prediction)[None]},
        fps=fps,
        scale=scale,
        separator=separator,
    )


def save_rows_gif(path, context, truth, predictions: Mapping, fps: float = 4, scale: int = 1, separator: int = 1) -> None:
    """A GIF grid: one labelled row for the truth and one per model, one column per sequence.

    Each GIF frame shows time step ``t`` of every sequence: the observed frame while
    ``t < T_in`` (a green bar underneath), then the true frame in the "truth" row and each
    model's prediction in its row (a red bar underneath).

    Args:
        path: output file, parent folders are created.
        context: observed frames ``(N, T_in, H, W, C)``.
        truth: true future frames ``(N, T_out, H, W, C)``, or ``None`` for no truth row.
        predictions: ``{label: (N, T_out, H, W, C)}``, one row each, in order.
        fps, scale: as in :func:`save_gif`; separator: grey gap between panels, pixels.
    """
    scale = _check_scale(scale)
    context = np.asarray(context)
    if context.ndim != 5:
        raise ValueError(f"context must be (N, T_in, H, W, C). Received: context.shape={context.shape}")
    rows = {} if truth is None else {"truth": truth}
    rows.update(predictions)
    if not rows:
        raise ValueError("save_rows_gif needs truth or at least one prediction.")
    horizons = set()
    for name, frames in rows.items():
        frames = np.asarray(frames)
        if frames.ndim != 5 or frames.shape[0] != context.shape[0] or frames.shape[2:] != context.shape[2:]:
            raise ValueError(
                f"{name} must be (N, T_out, H, W, C) with the context's N, H, W and C. "
                f"Received: {name}.shape={frames.shape}, context.shape={context.shape}"
            )
        horizons.add(frames.shape[1])
    if len(horizons) != 1:
        raise ValueError(f"Every row must have the same number of future frames. Received: {sorted(horizons)}")
    horizon, steps = horizons.pop(), context.shape[1]
    sequences = [
        {name: np.concatenate([_check_frames("context", context[i]), _check_frames(name, rows[name][i])]) for name in rows}
        for i in range(context.shape[0])
    ]
    frames = []
    for step in range(steps + horizon):
        images = []
        for name in rows:
            panels = [_upscale(_rgb(to_uint8(sequence[name][step])), scale) for sequence in sequences]
            images.append(_hstack(panels, separator))
        heights = [image.shape[0] for image in images]
        grid = np.concatenate(
            [
                part
                for index, image in enumerate(images)
                for part in (
                    ([np.full((separator, image.shape[1], 3), SEPARATOR_VALUE, dtype=np.uint8)] if index else []) + [image]
                )
            ],
            axis=0,
        )
        grid = _with_labels(grid, list(rows), heights, separator)
        bar = np.empty((BAR_HEIGHT * scale, grid.shape[1], 3), dtype=np.uint8)
        bar[:] = CONTEXT_BAR_COLOR if step < steps else FUTURE_BAR_COLOR
        frames.append(np.concatenate([grid, bar], axis=0))
    _write_gif(path, np.stack(frames), fps)


# ----------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------


def save_figure(figure, path) -> None:
    """Write a matplotlib Figure as PNG, atomically (parent folders created)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    with _atomic_path(path, ".png") as temporary:
        figure.savefig(temporary, format="png", dpi=100)


def _per_frame_lists(name: str, values: Mapping) -> Mapping:
    """Accept ``{metric: list}`` or a :func:`predrnn.metrics.summarize` report."""
    if not isinstance(values, Mapping):
        raise ValueError(f"{name} must be a dict of per-frame lists. Received: {type(values).__name__}")
    nested = values.get("per_frame")
    return nested if isinstance(nested, Mapping) else values


def plot_per_frame(
    path,
    per_frame: Mapping,
    baselines: Mapping | None = None,
    title: str = "Per-frame metrics",
    label: str = "model",
) -> None:
    """A PNG with one subplot per metric vs future frame index (1-based).

    Args:
        path: output file, parent folders are created.
        per_frame: ``{metric_name: per-frame values}`` (or a ``summarize`` report,
            whose ``"per_frame"`` entry is used). Drawn: ``mse_per_frame``,
            ``mae_per_frame``, ``ssim``, ``psnr``, those present; others are ignored.
        baselines: ``{legend label: per-frame values}`` of baselines drawn dashed beside
            the model (e.g. copy last frame, all black), or None.
        title: figure title.
        label: the model's legend entry.

    Infinite values (PSNR of a perfect frame) are left out of the lines.
    """
    per_frame = _per_frame_lists("per_frame", per_frame)
    baselines = {
        baseline_label: _per_frame_lists(f"baselines[{baseline_label!r}]", values)
        for baseline_label, values in (baselines or {}).items()
    }
    names = [name for name in PLOTTED_METRICS if name in per_frame]
    if not names:
        raise ValueError(f"plot_per_frame needs at least one of {list(PLOTTED_METRICS)}. Received keys: {list(per_frame)}")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    columns = 2 if len(names) > 1 else 1
    rows_count = (len(names) + columns - 1) // columns
    figure = Figure(figsize=(5 * columns, 3.2 * rows_count), layout="constrained")
    axes = figure.subplots(rows_count, columns, squeeze=False).ravel()
    for axis, name in zip(axes, names):
        series = [(label, per_frame[name], "o-")]
        series += [(baseline_label, values[name], "--") for baseline_label, values in baselines.items() if name in values]
        for series_label, values, style in series:
            values = np.asarray(values, dtype=np.float64)
            if values.ndim != 1:
                raise ValueError(f"per-frame values must be 1-D. Received: {name} with shape {values.shape}")
            values = np.where(np.isfinite(values), values, np.nan)
            axis.plot(np.arange(1, values.shape[0] + 1), values, style, label=series_label, markersize=3)
        axis.set_xlabel("future frame")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel(PLOTTED_METRICS[name])
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize="small")
    for axis in axes[len(names) :]:
        axis.set_visible(False)
    figure.suptitle(title)
    save_figure(figure, path)


def plot_schedule(
    path,
    schedule,
    steps: int | Iterable[int],
    input_length: int,
    output_length: int,
    title: str | None = None,
) -> None:
    """Plot a scheduled-sampling schedule's probabilities of feeding the true frame.

    Args:
        path: output file, parent folders are created.
        schedule: a :class:`predrnn.schedules.SamplingSchedule`.
        steps: the last global step (an int; up to 501 evenly spaced steps from 0 are
            drawn) or the steps themselves.
        input_length, output_length: context and future lengths; the context curve is
            drawn when ``input_length > 1``, the future curve when ``output_length > 1``.
        title: figure title; the schedule's repr by default.
    """
    if isinstance(steps, (int, np.integer)) and not isinstance(steps, bool):
        if steps < 0:
            raise ValueError(f"steps must be >= 0. Received: steps={steps}")
        steps = np.unique(np.linspace(0, int(steps), num=min(int(steps) + 1, 501)).round().astype(int))
    else:
        steps = np.asarray(list(steps), dtype=np.int64)
        if steps.ndim != 1 or steps.size == 0:
            raise ValueError(f"steps must be an int or a non-empty list of ints. Received: steps={steps}")
    if input_length < 2 and output_length < 2:
        raise ValueError(
            "With input_length=1 and output_length=1 no input step is sampled: nothing to plot. "
            f"Received: input_length={input_length}, output_length={output_length}"
        )
    probabilities = np.stack([schedule.probabilities(int(s), input_length, output_length) for s in steps])
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.5), layout="constrained")
    axis = figure.subplots()
    if input_length > 1:
        axis.plot(steps, probabilities[:, 0], label="context steps")
    if output_length > 1:
        axis.plot(steps, probabilities[:, input_length - 1], "--", label="future steps")
    axis.set_xlabel("global step")
    axis.set_ylabel("P(feed true frame)")
    axis.set_ylim(-0.05, 1.05)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize="small")
    axis.set_title(repr(schedule) if title is None else title, fontsize="small")
    save_figure(figure, path)
