"""Data layer: Moving MNIST, file formats, and batches for Keras.

- :func:`load_mnist_digits` - the bundled MNIST digits (no download).
- :func:`generate_moving_mnist`, :func:`moving_mnist_batch`, :class:`MovingMNISTStream` - the
  seeded Moving MNIST generator (NumPy, identical on every backend).
"""

from predrnn.data.mnist_digits import load_mnist_digits, load_mnist_labels, read_idx
from predrnn.data.moving_mnist import (
    MovingMNISTSample,
    MovingMNISTStream,
    generate_moving_mnist,
    generate_moving_mnist_sample,
    moving_mnist_batch,
)

__all__ = [
    "MovingMNISTSample",
    "MovingMNISTStream",
    "generate_moving_mnist",
    "generate_moving_mnist_sample",
    "load_mnist_digits",
    "load_mnist_labels",
    "moving_mnist_batch",
    "read_idx",
]
