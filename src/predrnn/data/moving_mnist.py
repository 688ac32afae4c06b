"""Moving MNIST: digits bouncing inside a canvas, generated with NumPy.

The standard generator (Srivastava et al., 2015), as used for PredRNN:

- a ``image_size`` x ``image_size`` canvas (64) and ``digit_size`` x ``digit_size`` digits (28);
- each of ``num_digits`` digits (2) starts at a position drawn uniformly in ``[0, 1)^2`` and moves
  in a direction drawn uniformly in ``[0, 2*pi)`` by ``step_length`` (0.1) per frame;
- positions are in units of the free range ``image_size - digit_size`` (36 px), so a step of 0.1
  is 3.6 px per frame; the digit's top-left pixel is ``floor(position * 36)`` (row, column);
- when a coordinate leaves ``[0, 1]`` its velocity flips and it is mirrored back inside
  (``-x`` below 0, ``2 - x`` above 1), so the digit bounces off the border and stays whole
  inside the canvas, and it always travels exactly ``step_length`` per frame;
- digits are combined by pixel-wise maximum; values are float32 in ``[0, 1]`` (uint8 / 255);
- ``num_frames`` frames (20 = 10 context + 10 future), frame 0 at the start position.

Difference from Srivastava's script: it takes a step before recording frame 0, and at a border
it clamps the coordinate to 0 or 1 instead of mirroring it (so a bouncing digit travels less than
3.6 px on that frame). The statistics are otherwise the same; fixed test sets made by either are
different files anyway, so report which one was used.

Everything is vectorised NumPy and driven by ``np.random.default_rng``: the same seed gives the
same sequences on every Keras backend. Training digits feed training streams (``split="train"``),
test digits feed test sets (``split="test"``). :func:`generate_moving_mnist_chunks` gives the
same sequences as uint8, a chunk at a time, for writing large sets to files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from predrnn.data.mnist_digits import load_mnist_digits
from predrnn.errors import DataError

__all__ = [
    "MovingMNISTSample",
    "MovingMNISTStream",
    "generate_moving_mnist",
    "generate_moving_mnist_chunks",
    "generate_moving_mnist_sample",
    "moving_mnist_batch",
]

# Sequences rendered per chunk: small enough for the uint8 canvas to stay in cache.
_CHUNK = 64


@dataclasses.dataclass(frozen=True)
class MovingMNISTSample:
    """Sequences with the trajectories that made them.

    Attributes:
        frames: ``(N, T, H, W, 1)`` float32 in ``[0, 1]``.
        positions: ``(N, T, D, 2)`` float64 positions in ``[0, 1]`` (row, column), in units of
            the free range ``image_size - digit_size``.
        pixel_positions: ``(N, T, D, 2)`` int64 top-left pixel (row, column) of each digit,
            ``floor(positions * (image_size - digit_size))``.
        digit_indices: ``(N, D)`` int64 index of each digit in its source set.
    """

    frames: np.ndarray
    positions: np.ndarray
    pixel_positions: np.ndarray
    digit_indices: np.ndarray


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"{name} must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


def _prepare_sprites(digits, split: str, digit_size: int) -> np.ndarray:
    """The digit sprites as a (K, digit_size, digit_size) uint8 array."""
    if digits is None:
        sprites = load_mnist_digits(split)
    else:
        sprites = np.asarray(digits)
        if sprites.ndim != 3 or sprites.shape[0] < 1:
            raise DataError(f"digits must be a (K, h, w) array of K >= 1 sprites. Received: shape {sprites.shape}")
        if np.issubdtype(sprites.dtype, np.floating):
            if not np.all(np.isfinite(sprites)) or sprites.min() < 0 or sprites.max() > 1:
                raise DataError(
                    "Float digit sprites must be finite and within [0, 1]. Received: "
                    f"min {np.nanmin(sprites)}, max {np.nanmax(sprites)}"
                )
            sprites = np.round(sprites * 255).astype(np.uint8)
        elif sprites.dtype != np.uint8:
            raise DataError(f"digits must be uint8 (0..255) or float in [0, 1]. Received: dtype {sprites.dtype}")
    if sprites.shape[1:] != (digit_size, digit_size):
        if digits is not None:
            raise DataError(
                f"The digit sprites are {sprites.shape[1]}x{sprites.shape[2]} but "
                f"digit_size={digit_size}. Pass digit_size={sprites.shape[1]} or square sprites of "
                f"that size. Received: digits shape {sprites.shape}"
            )
    return sprites


def _resize_sprites(sprites: np.ndarray, digit_size: int) -> np.ndarray:
    from PIL import Image

    if sprites.shape[1:] == (digit_size, digit_size):
        return sprites
    resized = [np.asarray(Image.fromarray(s).resize((digit_size, digit_size), Image.Resampling.BILINEAR)) for s in sprites]
    return np.stack(resized).astype(np.uint8)


def _triangle_wave(unfolded: np.ndarray) -> np.ndarray:
    """Fold a free path back into [0, 1] by mirror reflection at 0 and 1."""
    folded = np.mod(unfolded, 2.0)
    return np.where(folded > 1.0, 2.0 - folded, folded)


def _render(pixel_positions: np.ndarray, sprites: np.ndarray, canvas: np.ndarray) -> None:
    """Paste ``sprites`` (N, D, s, s) uint8 at ``pixel_positions`` (N, T, D, 2) into ``canvas``
    (N, T, H, W) uint8 (any strides), cleared first, combining digits by maximum."""
    num, frames, num_digits = pixel_positions.shape[:3]
    size = sprites.shape[-1]
    canvas[...] = 0
    # windows[n, t, y, x] is the (size, size) patch of canvas[n, t] whose top-left is (y, x).
    windows = np.lib.stride_tricks.sliding_window_view(canvas, (size, size), axis=(2, 3), writeable=True)
    seq = np.arange(num)[:, None]
    time = np.arange(frames)[None, :]
    for d in range(num_digits):
        rows, cols = pixel_positions[:, :, d, 0], pixel_positions[:, :, d, 1]
        sprite = sprites[:, d, None]  # (N, 1, s, s), broadcast over time
        if d == 0:
            windows[seq, time, rows, cols] = sprite
        else:
            patch = windows[seq, time, rows, cols]  # a copy: (N, T, s, s)
            np.maximum(patch, sprite, out=patch)
            windows[seq, time, rows, cols] = patch


@dataclasses.dataclass(frozen=True)
class _Plan:
    """The drawn trajectories and digits of a set, before any frame is rendered."""

    positions: np.ndarray
    pixel_positions: np.ndarray
    digit_indices: np.ndarray
    sprites: np.ndarray  # (K, s, s) uint8, the source set
    num_frames: int
    image_size: int
    digit_size: int

    def __len__(self) -> int:
        return self.digit_indices.shape[0]

    def render(self, begin: int, end: int, canvas: np.ndarray) -> None:
        """Render sequences ``begin:end`` as uint8 into ``canvas`` ((end - begin, T, H, W)),
        ``_CHUNK`` sequences at a time."""
        for start in range(begin, end, _CHUNK):
            stop = min(start + _CHUNK, end)
            indices = self.digit_indices[start:stop]
            chosen = _resize_sprites(self.sprites[indices.reshape(-1)], self.digit_size)
            chosen = chosen.reshape(indices.shape + (self.digit_size, self.digit_size))
            _render(self.pixel_positions[start:stop], chosen, canvas[start - begin : stop - begin])


def _plan(
    rng: np.random.Generator,
    num_sequences: int,
    *,
    num_digits: int,
    num_frames: int,
    image_size: int,
    digit_size: int,
    step_length: float,
    split: str,
    digits,
) -> _Plan:
    num_sequences = _check_int("num_sequences", num_sequences, 0)
    num_digits = _check_int("num_digits", num_digits, 1)
    num_frames = _check_int("num_frames", num_frames, 1)
    image_size = _check_int("image_size", image_size, 1)
    digit_size = _check_int("digit_size", digit_size, 1)
    if digit_size > image_size:
        raise DataError(f"digit_size must be <= image_size. Received: digit_size={digit_size}, image_size={image_size}")
    step_length = float(step_length)
    if not np.isfinite(step_length) or step_length < 0:
        raise DataError(f"step_length must be finite and >= 0. Received: step_length={step_length}")
    sprites = _prepare_sprites(digits, split, digit_size)

    # Draw order is part of the reproducibility contract: do not reorder.
    start = rng.random((num_sequences, num_digits, 2))
    angle = rng.random((num_sequences, num_digits)) * (2.0 * np.pi)
    digit_indices = rng.integers(0, sprites.shape[0], size=(num_sequences, num_digits))

    velocity = step_length * np.stack([np.sin(angle), np.cos(angle)], axis=-1)  # (N, D, 2)
    steps = np.arange(num_frames, dtype=np.float64)[None, :, None, None]
    positions = _triangle_wave(start[:, None] + steps * velocity[:, None])  # (N, T, D, 2)
    free_range = image_size - digit_size
    pixel_positions = np.minimum(np.floor(positions * free_range), free_range).astype(np.int64)
    return _Plan(positions, pixel_positions, digit_indices, sprites, num_frames, image_size, digit_size)


def _generate(rng: np.random.Generator, num_sequences: int, **options) -> MovingMNISTSample:
    plan = _plan(rng, num_sequences, **options)
    size = plan.image_size
    frames = np.empty((len(plan), plan.num_frames, size, size, 1), dtype=np.float32)
    canvas = np.empty((min(len(plan), _CHUNK), plan.num_frames, size, size), dtype=np.uint8)
    for begin in range(0, len(plan), _CHUNK):
        end = min(begin + _CHUNK, len(plan))
        plan.render(begin, end, canvas[: end - begin])
        np.divide(canvas[: end - begin], np.float32(255.0), out=frames[begin:end, ..., 0])
    return MovingMNISTSample(frames, plan.positions, plan.pixel_positions, plan.digit_indices)


def generate_moving_mnist_sample(
    num_sequences: int,
    seed: int,
    *,
    num_digits: int = 2,
    num_frames: int = 20,
    image_size: int = 64,
    digit_size: int = 28,
    step_length: float = 0.1,
    split: str = "test",
    digits=None,
) -> MovingMNISTSample:
    """Like :func:`generate_moving_mnist`, also returning the trajectories and digit indices."""
    return _generate(
        np.random.default_rng(int(seed)),
        num_sequences,
        num_digits=num_digits,
        num_frames=num_frames,
        image_size=image_size,
        digit_size=digit_size,
        step_length=step_length,
        split=split,
        digits=digits,
    )


def generate_moving_mnist(
    num_sequences: int,
    seed: int,
    *,
    num_digits: int = 2,
    num_frames: int = 20,
    image_size: int = 64,
    digit_size: int = 28,
    step_length: float = 0.1,
    split: str = "test",
    digits=None,
) -> np.ndarray:
    """A fixed, seeded set of Moving MNIST sequences (by default a test set from test digits).

    Args:
        num_sequences: number of sequences N.
        seed: the seed of ``np.random.default_rng``; the same seed gives the same array.
        num_digits: digits per sequence (1, 2, 3, ...).
        num_frames: frames per sequence T (20 = 10 context + 10 future).
        image_size: canvas height and width in pixels.
        digit_size: digit height and width in pixels; MNIST digits (28x28) are resized
            (bilinear) when it differs from 28.
        step_length: distance per frame in units of the free range ``image_size - digit_size``
            (0.1 -> 3.6 px per frame on 64x64 with 28x28 digits).
        split: which bundled MNIST digits to use, ``"test"`` or ``"train"``.
        digits: optional ``(K, digit_size, digit_size)`` sprites (uint8 0..255 or float in
            [0, 1]) used instead of MNIST, e.g. synthetic shapes in tests.

    Returns:
        ``(N, T, image_size, image_size, 1)`` float32 in ``[0, 1]``.
    """
    return generate_moving_mnist_sample(
        num_sequences,
        seed,
        num_digits=num_digits,
        num_frames=num_frames,
        image_size=image_size,
        digit_size=digit_size,
        step_length=step_length,
        split=split,
        digits=digits,
    ).frames


def generate_moving_mnist_chunks(
    num_sequences: int,
    seed: int,
    *,
    chunk_size: int = 128,
    frame_major: bool = False,
    num_digits: int = 2,
    num_frames: int = 20,
    image_size: int = 64,
    digit_size: int = 28,
    step_length: float = 0.1,
    split: str = "test",
    digits=None,
) -> Iterator[np.ndarray]:
    """:func:`generate_moving_mnist`'s sequences as uint8, ``chunk_size`` sequences at a time.

    The arguments are checked, and every trajectory and digit drawn, when it is called; each
    chunk is rendered when it is taken. For writing large sets to a file: memory holds one
    chunk, and uint8 is a quarter of float32.

    Args:
        num_sequences, seed, num_digits, num_frames, image_size, digit_size, step_length, split,
            digits: as in :func:`generate_moving_mnist`.
        chunk_size: sequences per chunk (the last chunk holds the rest).
        frame_major: store each chunk frame by frame: it is then a transposed view of a
            ``(T, n, H, W, 1)`` array, the memory order of the mnist_test_seq layout, so that
            the writer of that layout copies nothing. The values are the same.

    Returns:
        An iterator of new ``(n, T, image_size, image_size, 1)`` uint8 arrays (0..255), the
        consecutive sequences ``0:n``, ``n:2n``, ...: divided by 255 in float32 they are exactly
        ``generate_moving_mnist(num_sequences, seed, ...)`` with the same arguments.
    """
    chunk_size = _check_int("chunk_size", chunk_size, 1)
    plan = _plan(
        np.random.default_rng(int(seed)),
        num_sequences,
        num_digits=num_digits,
        num_frames=num_frames,
        image_size=image_size,
        digit_size=digit_size,
        step_length=step_length,
        split=split,
        digits=digits,
    )

    def chunks():
        for begin in range(0, len(plan), chunk_size):
            end = min(begin + chunk_size, len(plan))
            size = plan.image_size
            shape = (end - begin, plan.num_frames, size, size, 1)
            if frame_major:
                chunk = np.empty((shape[1], shape[0]) + shape[2:], np.uint8).transpose(1, 0, 2, 3, 4)
            else:
                chunk = np.empty(shape, np.uint8)
            plan.render(begin, end, chunk[..., 0])
            yield chunk

    return chunks()


def moving_mnist_batch(
    batch_size: int,
    seed: int,
    step: int,
    *,
    num_digits: int = 2,
    num_frames: int = 20,
    image_size: int = 64,
    digit_size: int = 28,
    step_length: float = 0.1,
    split: str = "train",
    digits=None,
) -> np.ndarray:
    """Batch ``step`` of an infinite seeded training stream, ``(B, T, H, W, 1)`` float32.

    A pure function of ``(seed, step)``: it draws from ``np.random.default_rng([seed, step])``,
    so any batch can be regenerated on its own (resume, several workers, several backends).
    Arguments as in :func:`generate_moving_mnist`; training digits by default.
    """
    step = _check_int("step", step, 0)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, step])
    return _generate(
        rng,
        batch_size,
        num_digits=num_digits,
        num_frames=num_frames,
        image_size=image_size,
        digit_size=digit_size,
        step_length=step_length,
        split=split,
        digits=digits,
    ).frames


class MovingMNISTStream:
    """An infinite, seeded Moving MNIST source for :class:`VideoPredictionDataset`.

    ``stream.batch(batch_size, step)`` is :func:`moving_mnist_batch` with this stream's
    arguments: batch ``step`` is a pure function of ``(seed, step)``.

    Args:
        seed: stream seed.
        num_digits, num_frames, image_size, digit_size, step_length, split, digits: as in
            :func:`generate_moving_mnist` (``split="train"`` by default).
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        num_digits: int = 2,
        num_frames: int = 20,
        image_size: int = 64,
        digit_size: int = 28,
        step_length: float = 0.1,
        split: str = "train",
        digits=None,
    ):
        self.seed = int(seed)
        self.num_digits = _check_int("num_digits", num_digits, 1)
        self.num_frames = _check_int("num_frames", num_frames, 1)
        self.image_size = _check_int("image_size", image_size, 1)
        self.digit_size = _check_int("digit_size", digit_size, 1)
        self.step_length = float(step_length)
        if split not in ("train", "test"):
            raise DataError(f"split must be 'train' or 'test'. Received: split={split!r}")
        self.split = split
        self.digits = digits
        # Fail now, not in the first batch: render one tiny batch.
        self.batch(1, 0)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of one frame."""
        return (self.image_size, self.image_size, 1)

    @property
    def source(self) -> str:
        return (
            f"Moving MNIST stream (seed {self.seed}, {self.num_digits} digits, {self.split} digits, "
            f"{self.image_size}x{self.image_size})"
        )

    def batch(self, batch_size: int, step: int) -> np.ndarray:
        """Batch ``step``, ``(batch_size, num_frames, H, W, 1)`` float32 in [0, 1]."""
        return moving_mnist_batch(
            batch_size,
            self.seed,
            step,
            num_digits=self.num_digits,
            num_frames=self.num_frames,
            image_size=self.image_size,
            digit_size=self.digit_size,
            step_length=self.step_length,
            split=self.split,
            digits=self.digits,
        )

    def get_config(self) -> dict:
        """Constructor arguments (without ``digits``, which is an array)."""
        return {
            "seed": self.seed,
            "num_digits": self.num_digits,
            "num_frames": self.num_frames,
            "image_size": self.image_size,
            "digit_size": self.digit_size,
            "step_length": self.step_length,
            "split": self.split,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"MovingMNISTStream({args})"
