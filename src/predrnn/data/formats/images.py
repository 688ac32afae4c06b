"""Sequences stored as folders of frame images (``root/<sequence>/*.png``, KTH style), decoded
with Pillow when read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from predrnn.data.formats.sequence import SequenceArray, _check_resize, _existing_path, _natural_key
from predrnn.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _open_image(path: Path):
    """Decode one image; the file is closed on return."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise DataError(f"Cannot read the image {str(path)!r}: truncated or corrupt ({error}).") from None
    return image


def _image_header(path: Path):
    """``(size, mode)`` of an image from its header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size, image.mode
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise DataError(f"Cannot read the image {str(path)!r}: truncated or corrupt ({error}).") from None


def _image_mode(image, path: Path) -> str:
    if image.mode in ("1", "L", "LA"):
        return "L"
    if image.mode.startswith("I") or image.mode == "F":
        raise DataError(
            f"{str(path)!r} is a {image.mode} (16-bit or float) image; only 8-bit gray or color "
            "frames are supported. Convert the frames to 8-bit PNG."
        )
    return "RGB"


def _image_to_array(image, mode: str, resize) -> np.ndarray:
    from PIL import Image

    if image.mode != mode:
        image = image.convert(mode)
    if resize is not None and image.size != (resize[1], resize[0]):
        image = image.resize((resize[1], resize[0]), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


class _ImageFolderReader:
    """Sequences of frame images, one list of files per sequence (decoded on read)."""

    def __init__(self, sequences: list[tuple[str, list[Path]]], resize, path: str):
        self.path = path
        self.names = [name for name, _ in sequences]
        self.files = [files for _, files in sequences]
        self.lengths = np.array([len(files) for files in self.files], dtype=np.int64)
        self.resize = resize
        self.dtype = np.dtype(np.uint8)
        first = _open_image(self.files[0][0])
        self.mode = _image_mode(first, self.files[0][0])
        self.size = first.size  # (W, H) of every frame when not resizing
        # Check the header of the first frame of every sequence now; the others when read.
        for files in self.files:
            size, _ = _image_header(files[0])
            self._check_size(size, files[0])
        height, width = resize if resize is not None else (self.size[1], self.size[0])
        self.frame_shape = (height, width, 1 if self.mode == "L" else 3)
        self.stored_shape = (self.size[1], self.size[0], self.frame_shape[2])

    def _check_size(self, size, path: Path) -> None:
        if self.resize is None and tuple(size) != self.size:
            first = self.files[0][0]
            raise DataError(
                f"Inconsistent frame sizes: {str(path)!r} is {size[0]}x{size[1]} "
                f"(WxH) but {str(first)!r} is {self.size[0]}x{self.size[1]}. Pass "
                "resize=(H, W) to resize every frame, or fix the files."
            )

    def read(self, i: int, start: int, stop: int) -> np.ndarray:
        frames = []
        for path in self.files[i][start:stop]:
            image = _open_image(path)
            self._check_size(image.size, path)
            _image_mode(image, path)
            frames.append(_image_to_array(image, self.mode, self.resize))
        return np.stack(frames)


def _list_frames(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: _natural_key(p.name))


def load_image_folder(path, *, channels=None, resize=None) -> SequenceArray:
    """Sequences of frame images: ``root/<sequence>/<frame>.png|jpg|...`` (KTH style).

    Each sub-folder of ``root`` is one sequence, named after the folder; its frames are its image
    files in natural sort order (``frame_2`` before ``frame_10``). A folder of images with no
    sub-folders is one sequence. Sub-folders that hold only folders are groups
    (``root/<action>/<sequence>/``, as KTH): their sub-folders are the sequences, named
    ``<group>/<sequence>``. Hidden entries (``.name``) are ignored. Frames are decoded when
    read; the first frame of every sequence is checked now (size, mode) and the others when read.
    Sequences may have different lengths.

    Args:
        channels: ``None`` keeps gray frames gray (C=1) and color frames RGB (C=3); 1 or 3
            converts (see :mod:`predrnn.data.formats`).
        resize: ``(H, W)``: resize every frame with PIL's bilinear filter; required when the
            frames differ in size.
    """
    root = _existing_path(path)
    if not root.is_dir():
        raise DataError(f"{str(root)!r} is not a folder of frame images.")
    resize = _check_resize(resize)
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    folders = sorted((p for p in entries if p.is_dir()), key=lambda p: _natural_key(p.name))
    loose = _list_frames(root)
    if folders and loose:
        raise DataError(
            f"{str(root)!r} holds both frame images and sequence folders; put every sequence's frames in its own sub-folder."
        )
    if folders and not any(_list_frames(f) for f in folders):
        # root/<group>/<sequence>/frames (KTH: root/<action>/<sequence>/): sequences named group/sequence
        nested = []
        for group in folders:
            inner = sorted(
                (p for p in group.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: _natural_key(p.name)
            )
            nested.extend(inner)
        folders = nested or folders
    if folders:
        sequences = []
        for folder in folders:
            frames = _list_frames(folder)
            if not frames:
                raise DataError(f"The sequence folder {str(folder)!r} holds no frame images ({', '.join(IMAGE_EXTENSIONS)}).")
            name = folder.name if folder.parent == root else f"{folder.parent.name}/{folder.name}"
            sequences.append((name, frames))
    elif loose:
        sequences = [(root.name, loose)]
    else:
        raise DataError(
            f"The folder {str(root)!r} is empty: expected sub-folders of frame images "
            f"({', '.join(IMAGE_EXTENSIONS)}) or video files."
        )
    reader = _ImageFolderReader(sequences, resize, str(root))
    lengths = reader.lengths
    source = (
        f"{str(root)!r} (frame folder, {len(sequences)} sequences of {lengths.min()}-{lengths.max()} "
        f"frames, {reader.frame_shape[0]}x{reader.frame_shape[1]} {reader.mode})"
    )
    return SequenceArray(
        reader,
        source=source,
        layout="image-folder",
        value_range=(0, 255),
        channels=channels,
        layout_reason="a folder per sequence" if folders else "one folder, one sequence",
        format="frames",
    )
