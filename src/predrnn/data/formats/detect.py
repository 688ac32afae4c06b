""":func:`load_sequences`: the loader for a file or folder, chosen by its extension and contents."""

from __future__ import annotations

from predrnn.data.formats.arrays import load_npy, load_npz
from predrnn.data.formats.images import load_image_folder
from predrnn.data.formats.sequence import SequenceArray, _existing_path, parse_layout
from predrnn.data.formats.video import VIDEO_EXTENSIONS, load_video
from predrnn.errors import DataError


def load_sequences(
    path,
    *,
    layout: str | None = None,
    key: str | None = None,
    value_range=None,
    channels=None,
    resize=None,
) -> SequenceArray:
    """Open sequences from any supported file or folder (see :mod:`predrnn.data.formats`).

    Dispatch: ``.npy`` -> :func:`load_npy`;
    ``.npz`` -> :func:`load_official_npz` when it holds ``clips``/``dims``/``input_raw_data``,
    else :func:`load_npz`; ``.gif``/``.mp4``/``.avi``/... -> :func:`load_video`; a folder ->
    :func:`load_video` if it holds only video files, else :func:`load_image_folder`.

    Args:
        path: file or folder.
        layout: the axis order of a ``.npy``/``.npz`` array (``"NTHW"``, ``"TNHW"``, ``"NTHWC"``,
            ``"NTCHW"``, ...); ``None`` or ``"auto"``: only what the file tells (see
            :func:`load_npy`); a 4-D array is otherwise refused with the choices.
        key: member of a generic ``.npz``.
        value_range: ``(lo, hi)`` of the stored values, mapped to ``[0, 1]`` (arrays only).
        channels: ``None``/``"auto"`` (as stored; grey images and GIFs give 1 channel),
            ``"grey"`` (or 1) or ``"rgb"`` (or 3).
        resize: ``S``, ``(H, W)`` or ``"HxW"``: resize every frame (bilinear); ``None`` keeps
            the stored size.

    Returns:
        A lazy :class:`SequenceArray`; ``.summary`` says what was read.
    """
    path = _existing_path(path)
    suffix = path.suffix.lower()
    is_array = path.is_file() and suffix in (".npy", ".npz")
    layout = parse_layout(layout)
    if not is_array and (layout is not None or key is not None or value_range is not None):
        raise DataError(
            f"layout, key and value_range apply to .npy/.npz files only; {str(path)!r} is not one "
            "(frames and videos say their own layout)."
        )
    if path.is_dir():
        entries = [p for p in path.iterdir() if not p.name.startswith(".")]
        videos = [p for p in entries if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS]
        if videos and len(videos) == len(entries):
            return load_video(path, channels=channels, resize=resize)
        return load_image_folder(path, channels=channels, resize=resize)
    if suffix == ".npy":
        return load_npy(path, layout=layout, value_range=value_range, channels=channels, resize=resize)
    if suffix == ".npz":
        return load_npz(path, key=key, layout=layout, value_range=value_range, channels=channels, resize=resize)
    if suffix in VIDEO_EXTENSIONS:
        return load_video(path, channels=channels, resize=resize)
    raise DataError(
        f"Unsupported data file {str(path)!r}. Supported: .npy, .npz, "
        f"{', '.join(VIDEO_EXTENSIONS)}, or a folder of frame images or videos."
    )
