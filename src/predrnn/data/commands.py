"""The ``predrnn data`` subcommands: a thin argparse layer over :mod:`predrnn.data`.

- ``predrnn data moving-mnist --num 1000 --seed 0 --out mnist_test.npy`` writes a seeded Moving
  MNIST set;
- ``predrnn data info INPUT`` prints what a file or folder holds, as training and evaluation read it;
- ``predrnn data convert INPUT --out FILE.npy`` turns frame folders, GIFs, videos or arrays into
  one ``(N, T, H, W, C)`` array file, read without further options;
- ``predrnn data kth`` prints how to fetch KTH for the ``kth`` preset.

``info`` and ``convert`` take ``--layout``, ``--channels`` and ``--resize``. The main CLI registers
these with :func:`add_data_parser` and runs them with :func:`run_data_command`; errors are
:class:`~predrnn.errors.DataError` (printed, exit 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from predrnn.cli_args import positive_int
from predrnn.data.files import read_sequences
from predrnn.data.formats.sequence import CHANNEL_CHOICES
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
    data = subparsers.add_parser(
        "data",
        help="generate, inspect or convert datasets",
        description="Generate Moving MNIST, print what a file holds, or convert frames, GIFs and videos into one .npy.",
    )
    data.set_defaults(handler=run_data_command, data_command=None)
    commands = data.add_subparsers(dest="data_command", metavar="COMMAND")
    mnist = commands.add_parser(
        "moving-mnist",
        help="Write a seeded Moving MNIST set to a file.",
        description=(
            "Write N seeded Moving MNIST sequences (28x28 MNIST digits bouncing in frames of 64x64 "
            "pixels by default, 3.6 pixels per frame at that size) to a file. Test digits by default, "
            "so the set is a test set."
        ),
    )
    mnist.add_argument("--num", type=positive_int, required=True, help="number of sequences N")
    mnist.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    mnist.add_argument("--digits", type=positive_int, default=2, help="digits per sequence (default 2)")
    mnist.add_argument("--frames", type=positive_int, default=20, help="frames per sequence (default 20)")
    mnist.add_argument("--image-size", type=positive_int, default=64, help="canvas size in pixels (default 64)")
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
        type=positive_int,
        default=None,
        help="official-npz only: context frames per clip (default frames // 2)",
    )
    mnist.add_argument("--overwrite", action="store_true", help="replace an existing --out file")

    info = commands.add_parser(
        "info",
        help="print what a file or folder holds, as train, evaluate and predict read it",
        description="Print one line: sequences, frames, size, channels and layout of INPUT as read with these options.",
    )
    info.add_argument("input", type=Path, help="a .npy/.npz, a folder of frame folders, a GIF or video, or a folder of them")
    add_reading_arguments(info)

    convert = commands.add_parser(
        "convert",
        help="turn frame folders, GIFs and videos (or any array) into one .npy",
        description=(
            "Read INPUT once (frame folders, GIFs, videos, .npy/.npz) and write its sequences as one (N, T, H, W, C) "
            ".npy file: uint8 for 8-bit sources, else float32 in [0, 1]. Use it as data.path (no layout needed)."
        ),
    )
    convert.add_argument("input", type=Path, help="a .npy/.npz, a folder of frame folders, a GIF or video, or a folder of them")
    convert.add_argument("--out", type=Path, required=True, help="the .npy file to write")
    add_reading_arguments(convert)
    convert.add_argument(
        "--frames",
        type=int,
        default=None,
        help="keep the first N frames of every sequence (needed when the sequences differ in length)",
    )
    convert.add_argument("--overwrite", action="store_true", help="replace an existing --out file")

    commands.add_parser(
        "kth",
        help="print how to fetch the KTH actions dataset for the kth preset",
        description="Print how to fetch the KTH human actions dataset and lay it out as frame folders for the kth preset.",
    )
    return data


def add_reading_arguments(parser: argparse.ArgumentParser, *, from_run: bool = False) -> None:
    """``--layout``, ``--channels`` and ``--resize``: how a file is read (the config keys
    ``data.layout``, ``data.channels`` and ``data.resize``). ``from_run``: the options default to
    ``None`` (the caller takes the run's ``[data]`` settings, else ``auto``)."""
    default = None if from_run else "auto"
    inherited = "the run's data.{}, else {}" if from_run else "{1}"
    parser.add_argument(
        "--layout",
        default=default,
        metavar="AXES",
        help="axis order of a .npy/.npz array: NTHW, TNHW, NTHWC, NTCHW, TNHWC, THWC, ... (N sequence, T time, "
        f"C channel). Default: {inherited.format('layout', 'auto')}; auto takes only what the file tells, e.g. a "
        "5-D array is NTHWC, mnist_test_seq*.npy is TNHW",
    )
    parser.add_argument(
        "--channels",
        choices=CHANNEL_CHOICES,
        default=default,
        help=f"auto: as stored (grey images and GIFs: 1 channel); grey or rgb: convert. Default: {inherited.format('channels', 'auto')}",
    )
    parser.add_argument(
        "--resize",
        default=None,
        metavar="S|HxW",
        help=f"resize every frame (bilinear), e.g. 64 or 64x48. Default: {inherited.format('resize', 'the stored size')}",
    )


def _read(args):
    return read_sequences(args.input, layout=args.layout, channels=args.channels, resize=args.resize)


def run_data_command(args: argparse.Namespace) -> int:
    """Run a parsed ``predrnn data ...`` command; returns the exit status (0)."""
    command = getattr(args, "data_command", None)
    if command == "info":
        print(_read(args).summary.line())
        return 0
    if command == "convert":
        return _convert(args)
    if command == "kth":
        from predrnn.data.download import KTH_INSTRUCTIONS

        print(KTH_INSTRUCTIONS, end="")
        return 0
    if command != "moving-mnist":
        raise DataError(
            f"Choose a data command: moving-mnist, info, convert or kth (see `predrnn data --help`). Received: {command!r}"
        )
    out = Path(args.out)
    if out.suffix.lower() not in (".npy", ".npz"):
        raise DataError(f"--out must name a .npy or .npz file (the sequences are written in NumPy format). Received: --out {out}")
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
        if not out.name.startswith("mnist_test_seq"):
            layout += "; read it with --layout TNHW (data.layout = 'TNHW'), or name it mnist_test_seq*.npy"
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


def _convert(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix.lower() != ".npy":
        raise DataError(f"--out must be a .npy file. Received: --out {out}")
    if out.exists() and not args.overwrite:  # fail before reading anything
        raise DataError(f"{str(out)!r} already exists; pass --overwrite to replace it.")
    sequences = _read(args)
    lengths = sequences.lengths
    frames = int(lengths.min())
    if args.frames is not None:
        if not 1 <= args.frames <= frames:
            raise DataError(
                f"--frames must be between 1 and the shortest sequence's {frames} frames. Received: --frames {args.frames}"
            )
        frames = args.frames
    elif lengths.max() != frames:
        raise DataError(
            f"{sequences.summary.source}: the sequences have {frames} to {int(lengths.max())} frames, and one array holds "
            f"sequences of one length. Pass --frames N (at most {frames}) to keep the first N frames of each."
        )
    height, width, channels = sequences.frame_shape
    dtype = "uint8" if sequences.original_dtype == "uint8" else "float32"
    shape = (len(sequences), frames, height, width, channels)
    with sequence_writer(out, shape, layout="sequences", dtype=dtype, overwrite=args.overwrite) as writer:
        for start in range(0, len(sequences), _CHUNK):
            indices = range(start, min(start + _CHUNK, len(sequences)))
            writer.write(np.stack([sequences.read(i, 0, frames) for i in indices]))
    print(sequences.summary.line())
    print(f"Wrote {out}: {dtype} (N, T, H, W, C) = {shape}.")
    return 0
