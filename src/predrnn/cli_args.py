"""argparse helpers shared by the subcommands of the ``predrnn`` command."""

from __future__ import annotations

import argparse

BACKENDS = ("tensorflow", "jax", "torch")


def add_backend_argument(parser, help="Keras backend (default: $KERAS_BACKEND, else tensorflow)."):
    """``--backend`` for a subcommand."""
    parser.add_argument("--backend", choices=BACKENDS, default=None, help=help)


def positive_int(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative_int(text):
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value
