"""The ``predrnn data`` subcommands: a thin argparse layer over :mod:`predrnn.data`.

``predrnn data moving-mnist --num 1000 --seed 0 --out mnist_test.npy`` writes a seeded Moving
MNIST set. The main CLI registers this with :func:`add_data_parser` and runs it with
:func:`run_data_command`; errors are :class:`~predrnn.errors.DataError` (printed, exit 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from predrnn.data.moving_mnist import generate_moving_mnist_chunks
from predrnn.data.writers import sequence_writer
from predrnn.errors import DataError

__all__ = ["add_data_parser", "run_data_command", "FORMATS"]

FORMATS = ("mnist-test-seq", "official-npz", "npy")
_LAYOUTS = {"mnist-test-seq": "mnist-test-seq", "official-npz": "official-npz", "npy": "sequences"}
# Sequences generated and written at a time: about 10 MB of uint8 frames at 20 x 64 x 64.
_CHUNK = 128


def add_data_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``data`` (with its subcommand ``moving-mnist``) on the main CLI's subparsers.

    Parsed arguments carry ``data_command`` (``"moving-mnist"``) and ``handler``
    (:func:`run_data_command`).
    """
    data = subparsers.add_parser("data", help="Generate or convert datasets.", description=__doc__.split("\n")[0])
    data.set_defaults(handler=run_data_command, data_command=None)
    commands = data.add_subparsers(dest="data_command", metavar="COMMAND")
    mnist = commands.add_parser(
        "moving-mnist",
        help="Write a seeded Moving MNIST set to a file.",
        description=(
            "Write N seeded Moving MNIST sequences (64x64, bouncing 28x28 MNIST digits, 3.6 px per "
            "frame) to a file. Test digits by default, so the set is a test set."
        ),
    )
    mnist.add_argument("--num", type=int, required=True, help="number of sequences N")
    mnist.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    mnist.add_argument("--digits", type=int, default=2, help="digits per sequence (default 2)")
    mnist.add_argument("--frames", type=int, default=20, help="frames per sequence (default 20)")
    mnist.add_argument("--image-size", type=int, default=64, help="canvas size in pixels (default 64)")
    mnist.add_argument("--split", choices=("test", "train"), default="test", help="MNIST digits to use (default test)")
    mnist.add_argument("--out", type=Path, required=True, help="file to write")
    mnist.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help=(
            "mnist-test-seq: uint8 (T, N, H, W) .npy like mnist_test_seq.npy; official-npz: the "
            "official PredRNN .npz; npy: float32 (N, T, H, W, 1) .npy/.npz. "
            "Default: official-npz for .npz, mnist-test-seq otherwise."
        ),
    )
    mnist.add_argument(
        "--input-length",
        type=int,
        default=None,
        help="official-npz only: context frames per clip (default frames // 2)",
    )
    mnist.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    return data


def run_data_command(args: argparse.Namespace) -> int:
    """Run a parsed ``predrnn data ...`` command; returns the exit status (0)."""
    if getattr(args, "data_command", None) != "moving-mnist":
        raise DataError(
            f"Choose a data command: `predrnn data moving-mnist ...`. Received: {getattr(args, 'data_command', None)!r}"
        )
    if args.num < 1:
        raise DataError(f"--num must be >= 1. Received: --num {args.num}")
    out = Path(args.out)
    fmt = args.format or ("official-npz" if out.suffix.lower() == ".npz" else "mnist-test-seq")
    if out.exists() and not args.overwrite:  # fail before generating anything
        raise DataError(f"{str(out)!r} already exists; pass --overwrite to replace it.")
    if args.input_length is not None and fmt != "official-npz":
        raise DataError(f"--input-length applies to --format official-npz only. Received: --format {fmt}")
    # Generated as uint8 and written a chunk at a time: memory holds one chunk, not the set.
    # mnist_test_seq files are frame-major (T, N, H, W): frame-major chunks are stored uncopied.
    chunks = generate_moving_mnist_chunks(
        args.num,
        args.seed,
        chunk_size=_CHUNK,
        frame_major=fmt == "mnist-test-seq",
        num_digits=args.digits,
        num_frames=args.frames,
        image_size=args.image_size,
        split=args.split,
    )
    shape = (args.num, args.frames, args.image_size, args.image_size, 1)
    with sequence_writer(out, shape, layout=_LAYOUTS[fmt], input_length=args.input_length, overwrite=args.overwrite) as writer:
        for chunk in chunks:
            writer.write(chunk)
    if fmt == "mnist-test-seq":
        layout = f"mnist_test_seq layout, uint8 (T, N, H, W) = {(args.frames, args.num) + shape[2:4]}"
        if args.num < args.frames and not out.name.startswith("mnist_test_seq"):
            layout += "; fewer sequences than frames: load it with layout='TNHW'"
    elif fmt == "official-npz":
        layout = f"official PredRNN npz, float32 input_raw_data {(args.num * args.frames, 1) + shape[2:4]}"
    else:
        layout = f"float32 (N, T, H, W, C) = {shape}"
    print(
        f"Wrote {args.num} Moving MNIST sequences ({args.frames} frames, {args.image_size}x"
        f"{args.image_size}, {args.digits} digits, {args.split} digits, seed {args.seed}) to {out} "
        f"({layout})."
    )
    return 0
