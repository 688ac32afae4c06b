"""The Moving MNIST generator: statistics, determinism, splits."""

import numpy as np
import pytest

from predrnn.data import (
    MovingMNISTStream,
    generate_moving_mnist,
    generate_moving_mnist_sample,
    load_mnist_digits,
    moving_mnist_batch,
)
from predrnn.data.moving_mnist import generate_moving_mnist_chunks
from predrnn.errors import DataError


def _render_naively(sample, sprites, image_size):
    """Independent reference: paste each digit frame by frame with Python loops, max-combined."""
    num, frames, digits = sample.pixel_positions.shape[:3]
    size = sprites.shape[-1]
    out = np.zeros((num, frames, image_size, image_size), np.float32)
    for n in range(num):
        for t in range(frames):
            for d in range(digits):
                y, x = sample.pixel_positions[n, t, d]
                sprite = sprites[sample.digit_indices[n, d]].astype(np.float32) / 255
                region = out[n, t, y : y + size, x : x + size]
                np.maximum(region, sprite, out=region)
    return out[..., None]


def test_default_shape_dtype_and_range():
    frames = generate_moving_mnist(3, seed=0)
    assert frames.shape == (3, 20, 64, 64, 1) and frames.dtype == np.float32
    assert frames.min() == 0.0 and frames.max() == 1.0


@pytest.mark.parametrize("num_digits", [1, 2, 3])
def test_frames_are_the_max_of_the_digits_at_their_trajectories(square_sprites, num_digits):
    sample = generate_moving_mnist_sample(
        4,
        seed=num_digits,
        num_digits=num_digits,
        num_frames=9,
        image_size=24,
        digit_size=6,
        digits=square_sprites,
    )
    assert sample.frames.shape == (4, 9, 24, 24, 1)
    assert sample.positions.shape == sample.pixel_positions.shape == (4, 9, num_digits, 2)
    assert sample.digit_indices.shape == (4, num_digits)
    np.testing.assert_array_equal(sample.frames, _render_naively(sample, square_sprites, 24))


def test_one_full_square_digit_is_always_entirely_inside_the_canvas(square_sprites):
    sample = generate_moving_mnist_sample(
        16,
        seed=3,
        num_digits=1,
        num_frames=40,
        image_size=20,
        digit_size=6,
        digits=square_sprites[:1],
        step_length=0.3,
    )
    # A bounce was exercised and no pixel of the 6x6 square was ever cut off by the border.
    lit = (sample.frames > 0).sum(axis=(2, 3, 4))
    np.testing.assert_array_equal(lit, 36)
    assert sample.pixel_positions.min() == 0 and sample.pixel_positions.max() in (13, 14)


def test_speed_is_step_length_times_the_free_range_and_digits_bounce():
    sample = generate_moving_mnist_sample(64, seed=7, num_frames=20)
    free_range = 64 - 28
    assert 0.0 <= sample.positions.min() and sample.positions.max() <= 1.0
    steps = np.diff(sample.positions, axis=1)  # (N, T-1, D, 2)
    # A step that crosses a border is shortened and flips the sign of the next one. Every step
    # whose neighbours keep its signs is a free flight of exactly 0.1 * 36 = 3.6 px.
    signs = np.sign(steps)
    clean = np.all((signs[:, 1:-1] == signs[:, :-2]) & (signs[:, 1:-1] == signs[:, 2:]), axis=-1)
    speed = np.linalg.norm(steps[:, 1:-1], axis=-1) * free_range
    np.testing.assert_allclose(speed[clean], 3.6, rtol=1e-9)
    assert (speed[~clean] <= 3.6 + 1e-9).all()
    assert (~clean).sum() > 10  # many bounces happened
    # Integer pixel positions move 3.6 px per frame on average as well.
    pixel_steps = np.diff(sample.pixel_positions, axis=1)[:, 1:-1]
    assert abs(np.linalg.norm(pixel_steps, axis=-1)[clean].mean() - 3.6) < 0.15


def test_same_seed_same_sequences_and_other_seeds_differ():
    a = generate_moving_mnist(2, seed=11, num_frames=5)
    np.testing.assert_array_equal(a, generate_moving_mnist(2, seed=11, num_frames=5))
    assert not np.array_equal(a, generate_moving_mnist(2, seed=12, num_frames=5))


def test_stream_batches_are_a_pure_function_of_seed_and_step():
    a = moving_mnist_batch(2, seed=5, step=3, num_frames=4)
    np.testing.assert_array_equal(a, moving_mnist_batch(2, seed=5, step=3, num_frames=4))
    assert not np.array_equal(a, moving_mnist_batch(2, seed=5, step=4, num_frames=4))
    assert not np.array_equal(a, moving_mnist_batch(2, seed=6, step=3, num_frames=4))
    stream = MovingMNISTStream(5, num_frames=4)
    np.testing.assert_array_equal(stream.batch(2, 3), a)
    assert stream.frame_shape == (64, 64, 1)
    assert stream.get_config()["split"] == "train"


def test_trajectories_do_not_depend_on_the_number_of_frames():
    long = generate_moving_mnist(2, seed=1, num_frames=12)
    np.testing.assert_array_equal(generate_moving_mnist(2, seed=1, num_frames=5), long[:, :5])


@pytest.mark.parametrize("split, size", [("test", 10_000), ("train", 60_000)])
def test_digits_come_from_the_requested_split(split, size):
    sample = generate_moving_mnist_sample(200, seed=2, num_digits=1, num_frames=1, split=split)
    assert sample.digit_indices.max() < size
    if split == "train":
        assert sample.digit_indices.max() >= 10_000  # would be impossible with test digits
    digits = load_mnist_digits(split)
    for n in range(3):
        y, x = sample.pixel_positions[n, 0, 0]
        crop = sample.frames[n, 0, y : y + 28, x : x + 28, 0]
        np.testing.assert_allclose(crop, digits[sample.digit_indices[n, 0]] / 255, atol=1e-7)


def test_other_canvas_and_digit_sizes():
    frames = generate_moving_mnist(2, seed=0, image_size=32, digit_size=14, num_digits=3, num_frames=6)
    assert frames.shape == (2, 6, 32, 32, 1)
    assert 0.0 <= frames.min() and frames.max() <= 1.0


def test_zero_step_length_keeps_digits_still(square_sprites):
    frames = generate_moving_mnist(2, seed=0, step_length=0.0, image_size=16, digit_size=6, digits=square_sprites)
    np.testing.assert_array_equal(frames, np.repeat(frames[:, :1], 20, axis=1))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"digit_size": 70}, "digit_size must be <= image_size"),
        ({"num_digits": 0}, "num_digits must be an integer >= 1"),
        ({"split": "valid"}, "split must be 'train' or 'test'"),
        ({"step_length": float("nan")}, "step_length must be finite"),
        ({"digits": np.zeros((3, 5)), "digit_size": 5}, "digits must be a \\(K, h, w\\) array"),
        ({"digits": np.full((2, 6, 6), 2.0), "digit_size": 6}, "within \\[0, 1\\]"),
        ({"digits": np.zeros((2, 6, 6), np.uint8)}, "Pass digit_size=6"),
    ],
)
def test_bad_generator_arguments_raise_data_errors(kwargs, message):
    with pytest.raises(DataError, match=message):
        generate_moving_mnist(1, seed=0, **kwargs)


@pytest.mark.parametrize("chunk_size", [1, 3, 64, 100])
@pytest.mark.parametrize("frame_major", [False, True])
def test_uint8_chunks_are_the_float_frames_times_255(chunk_size, frame_major):
    options = dict(num_digits=3, num_frames=5, image_size=40, split="train")
    expected = generate_moving_mnist(70, 9, **options)  # 70: chunks of 64 + 6 inside
    chunks = list(generate_moving_mnist_chunks(70, 9, chunk_size=chunk_size, frame_major=frame_major, **options))
    assert [len(c) for c in chunks] == [min(chunk_size, 70 - b) for b in range(0, 70, chunk_size)]
    assert all(c.dtype == np.uint8 and c.shape[1:] == (5, 40, 40, 1) for c in chunks)
    if frame_major:  # stored (T, n, H, W): frame t of the chunk is one contiguous block
        assert all(c[:, 2, ..., 0].flags.c_contiguous for c in chunks)
    assert not any(np.shares_memory(a, b) for a, b in zip(chunks, chunks[1:]))
    # Bit for bit: uint8 / 255 in float32 is the float generator's output.
    np.testing.assert_array_equal(np.concatenate(chunks).astype(np.float32) / np.float32(255), expected)


def test_uint8_chunks_with_custom_sprites_and_resized_digits(square_sprites):
    options = dict(num_digits=2, num_frames=4, image_size=20, digit_size=6, digits=square_sprites / 255.0)
    chunks = generate_moving_mnist_chunks(9, 1, chunk_size=4, **options)
    np.testing.assert_array_equal(np.concatenate(list(chunks)) / np.float32(255), generate_moving_mnist(9, 1, **options))
    resized = np.concatenate(list(generate_moving_mnist_chunks(5, 2, chunk_size=2, digit_size=20, image_size=32)))
    np.testing.assert_array_equal(resized / np.float32(255), generate_moving_mnist(5, 2, digit_size=20, image_size=32))


def test_uint8_chunks_check_their_arguments_when_called():
    with pytest.raises(DataError, match="chunk_size must be an integer >= 1"):
        generate_moving_mnist_chunks(4, 0, chunk_size=0)
    with pytest.raises(DataError, match="num_digits must be an integer >= 1"):
        generate_moving_mnist_chunks(4, 0, num_digits=0)  # raised before any chunk is taken
    assert list(generate_moving_mnist_chunks(0, 0)) == []
