"""argparse helpers shared by the subcommands of the ``predrnn`` command."""

from __future__ import annotations

import argparse

BACKENDS = ("tensorflow", "jax", "torch")


def add_backend_argument(parser, help="Keras backend (default: $KERAS_BACKEND, else tensorflow)."):
    """``--backend`` for a subcommand."""
    parser.add_argument("--backend", choices=BACKENDS, default=None, help=help)


def _int_at_least(minimum: int, text) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise argparse.ArgumentTypeError(f"expected {what}, got {value if value is not None else repr(text)}")
    return value


def positive_int(text):
    """argparse type: an integer >= 1."""
    return _int_at_least(1, text)


def non_negative_int(text):
    """argparse type: an integer >= 0."""
    return _int_at_least(0, text)
