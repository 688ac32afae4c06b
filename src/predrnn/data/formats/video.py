"""Sequences stored as video files or GIFs (one file per sequence), read with imageio."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from predrnn.data.formats.images import _image_to_array
from predrnn.data.formats.sequence import SequenceArray, _check_resize, _existing_path, _natural_key
from predrnn.errors import DataError

VIDEO_EXTENSIONS = (".gif", ".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
_FFMPEG_EXTENSIONS = tuple(e for e in VIDEO_EXTENSIONS if e != ".gif")


def _ffmpeg_available() -> bool:
    import importlib.util

    return any(importlib.util.find_spec(m) is not None for m in ("imageio_ffmpeg", "av"))


def _read_gif(path: Path) -> np.ndarray:
    """All frames of a GIF as ``(T, H, W, C)`` uint8, decoded with Pillow: C = 1 when every frame
    is grey (red = green = blue everywhere, as in a grey-palette GIF), else 3. A GIF that ends
    before its last frame is complete is refused."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    frames = []
    try:
        with Image.open(path) as image:
            if image.format != "GIF":
                raise DataError(f"{str(path)!r} is not a GIF (it holds {image.format} data); rename or re-export it.")
            for frame in ImageSequence.Iterator(image):
                frames.append(np.asarray(frame.convert("RGB"), dtype=np.uint8))
    except (UnidentifiedImageError, OSError, EOFError, ValueError, SyntaxError, IndexError):
        where = f"frame {len(frames) + 1}" if frames else "its header or first frame"
        raise DataError(
            f"Cannot read the GIF {str(path)!r}: it is truncated or corrupt ({where} cannot be decoded). "
            "Re-create or re-download it."
        ) from None
    if not frames:
        raise DataError(f"{str(path)!r} holds no frames.")
    with open(path, "rb") as stream:  # Pillow stops quietly at a cut between frames: a whole GIF ends with its trailer
        stream.seek(max(os.path.getsize(path) - 16, 0))
        ending = stream.read().rstrip(b"\x00")
    if not ending.endswith(b"\x3b"):
        raise DataError(
            f"Cannot read the GIF {str(path)!r}: it is truncated or corrupt (it ends after frame {len(frames)} "
            "without the GIF trailer). Re-create or re-download it."
        )
    array = np.stack(frames)
    grey = np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0], array[..., 2])
    return array[..., :1] if grey else array


def _read_video(path: Path, resize, channels_hint: int | None = None) -> np.ndarray:
    """All frames of a video file as (T, H, W, C) uint8."""
    import imageio.v3 as iio

    if path.suffix.lower() == ".gif":
        return _finish_frames(path, _read_gif(path), resize)
    if path.suffix.lower() in _FFMPEG_EXTENSIONS and not _ffmpeg_available():
        raise DataError(
            f"Reading {str(path)!r} needs a video backend for imageio. Install it with "
            "`pip install imageio-ffmpeg` (or `pip install predrnn[video]`), or convert the video "
            "to a GIF or a folder of PNG frames."
        )
    try:
        frames = np.asarray(iio.imread(path, index=None))
    except (OSError, ValueError, RuntimeError, SyntaxError):
        raise DataError(
            f"Cannot read the video {str(path)!r}: it is truncated or corrupt. Re-create or re-download it."
        ) from None
    return _finish_frames(path, frames, resize)


def _finish_frames(path: Path, frames: np.ndarray, resize) -> np.ndarray:
    from PIL import Image

    if frames.ndim == 3:  # (T, H, W) gray
        frames = frames[..., None]
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise DataError(f"{str(path)!r} holds no video frames. Received: shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise DataError(f"{str(path)!r}: only 8-bit videos are supported. Received: {frames.dtype}")
    if frames.shape[-1] == 4:
        frames = frames[..., :3]
    if resize is not None and frames.shape[1:3] != tuple(resize):
        mode = "L" if frames.shape[-1] == 1 else "RGB"
        frames = np.stack([_image_to_array(Image.fromarray(f[..., 0] if mode == "L" else f), mode, resize) for f in frames])
    return frames


class _VideoReader:
    """One video (or GIF) file per sequence; a file is decoded when one of its frames is read."""

    def __init__(self, files: list[Path], resize, path: str):
        import imageio.v3 as iio

        self.path = path
        self.files = files
        self.names = [f.stem for f in files]
        self.resize = resize
        self.dtype = np.dtype(np.uint8)
        lengths, shapes, stored = [], [], []
        for file in files:
            if file.suffix.lower() == ".gif":  # decoded in full now: small, and truncation shows at once
                shape = _read_gif(file).shape
            else:
                if file.suffix.lower() in _FFMPEG_EXTENSIONS and not _ffmpeg_available():
                    _read_video(file, resize)  # raises the "pip install imageio-ffmpeg" error
                try:
                    props = iio.improps(file, index=None)
                except (OSError, ValueError, RuntimeError, SyntaxError):
                    raise DataError(
                        f"Cannot read the video {str(file)!r}: it is truncated or corrupt. Re-create or re-download it."
                    ) from None
                shape = tuple(props.shape)
                if len(shape) == 3:  # a single frame, or (T, H, W) gray
                    shape = shape + (1,) if props.n_images > 1 else (1,) + shape
            lengths.append(shape[0])
            channels = 1 if shape[-1] == 1 else 3
            size = tuple(resize) if resize is not None else tuple(shape[1:3])
            shapes.append(size)
            stored.append(tuple(shape[1:3]) + (channels,))
        if len(set(shapes)) > 1:
            raise DataError(
                f"Inconsistent frame sizes across the videos in {path!r}: "
                f"{dict(zip([f.name for f in files], shapes))}. Pass resize=(H, W)."
            )
        self.lengths = np.array(lengths, dtype=np.int64)
        channels = max(shape[2] for shape in stored)  # grey files among colour ones are read as RGB
        self.frame_shape = shapes[0] + (channels,)
        self.stored_shape = stored[0][:2] + (channels,)

    def read(self, i: int, start: int, stop: int) -> np.ndarray:
        frames = _read_video(self.files[i], self.resize)
        if frames.shape[-1] != self.frame_shape[-1]:
            frames = frames[..., :1] if self.frame_shape[-1] == 1 else np.repeat(frames, 3, -1)
        return frames[start:stop]


def load_video(path, *, channels=None, resize=None) -> SequenceArray:
    """Video files or GIFs via imageio: one file is one sequence; a folder of them is a set.

    GIFs are read with Pillow, in full when opened: a truncated GIF is refused at once, and a GIF
    whose frames are all grey gives 1 channel. Other formats (``.mp4``, ``.avi``, ...) need the ffmpeg plugin
    (``pip install imageio-ffmpeg``); without it a DataError says so. A file is decoded in full
    when any of its frames is read. ``channels`` and ``resize`` as in :func:`load_image_folder`.
    """
    path = _existing_path(path)
    resize = _check_resize(resize)
    if path.is_dir():
        files = sorted(
            (p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS),
            key=lambda p: _natural_key(p.name),
        )
        if not files:
            raise DataError(f"The folder {str(path)!r} holds no video files ({', '.join(VIDEO_EXTENSIONS)}).")
    else:
        if path.suffix.lower() not in VIDEO_EXTENSIONS:
            raise DataError(f"{str(path)!r} is not a video file ({', '.join(VIDEO_EXTENSIONS)}).")
        files = [path]
    reader = _VideoReader(files, resize, str(path))
    source = f"{str(path)!r} (video, {len(files)} file(s), {reader.frame_shape[0]}x{reader.frame_shape[1]})"
    return SequenceArray(
        reader,
        source=source,
        layout="video",
        value_range=(0, 255),
        channels=channels,
        layout_reason="a file per sequence",
        format="gif" if all(f.suffix.lower() == ".gif" for f in files) else "video",
    )
