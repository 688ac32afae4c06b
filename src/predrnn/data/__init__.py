"""Data layer: Moving MNIST, file formats, and batches for Keras.

- :func:`load_mnist_digits` - the bundled MNIST digits (no download).
- :func:`generate_moving_mnist`, :func:`moving_mnist_batch`, :class:`MovingMNISTStream` - the
  seeded Moving MNIST generator (NumPy, identical on every backend).
- :func:`load_sequences` and the format loaders - lazy ``(N, T, H, W, C)`` float32 in [0, 1]
  (:class:`SequenceArray`), whose ``.summary`` (:class:`ReadSummary`) says what was read.
- :func:`read_sequences`, :func:`open_file_dataset`, :func:`check_model_frames` - files as a run
  configures them (layout, channels, resize, split), and the check that a model takes them.
- :func:`save_mnist_test_seq`, :func:`save_official_npz`, :func:`save_sequences` - writers.
- :class:`VideoPredictionDataset` - ``keras.utils.PyDataset`` of
  ``({"frames", "teacher_forcing_mask"}, frames[:, 1:])``.
- :func:`download` - optional cached download.

Only :mod:`predrnn.data.datasets` imports Keras; it is loaded on first use of its names, so
``import predrnn.data`` (e.g. by the CLI before ``KERAS_BACKEND`` is set) does not import Keras.
"""

from predrnn.data.download import (
    MOVING_MNIST_TEST_URL,
    default_cache_dir,
    download,
    download_moving_mnist_test_set,
)
from predrnn.data.files import (
    FileDataset,
    FrameMismatchError,
    check_model_frames,
    open_file_dataset,
    read_for_model,
    read_sequences,
)
from predrnn.data.formats import (
    LayoutError,
    ReadSummary,
    SequenceArray,
    as_sequence_array,
    kth_person_id,
    load_image_folder,
    load_mnist_test_seq,
    load_npy,
    load_npz,
    load_official_npz,
    load_sequences,
    load_video,
    split_kth_by_person,
)
from predrnn.data.mnist_digits import load_mnist_digits, load_mnist_labels, read_idx
from predrnn.data.moving_mnist import (
    MovingMNISTSample,
    MovingMNISTStream,
    generate_moving_mnist,
    generate_moving_mnist_sample,
    moving_mnist_batch,
)
from predrnn.data.writers import save_mnist_test_seq, save_official_npz, save_sequences

_KERAS_NAMES = ("VideoPredictionDataset", "DatasetEpochCallback", "split_train_validation", "check_frames")

__all__ = [
    "DatasetEpochCallback",
    "FileDataset",
    "FrameMismatchError",
    "LayoutError",
    "MOVING_MNIST_TEST_URL",
    "MovingMNISTSample",
    "MovingMNISTStream",
    "ReadSummary",
    "SequenceArray",
    "VideoPredictionDataset",
    "as_sequence_array",
    "check_frames",
    "check_model_frames",
    "default_cache_dir",
    "download",
    "download_moving_mnist_test_set",
    "generate_moving_mnist",
    "generate_moving_mnist_sample",
    "kth_person_id",
    "load_image_folder",
    "load_mnist_digits",
    "load_mnist_labels",
    "load_mnist_test_seq",
    "load_npy",
    "load_npz",
    "load_official_npz",
    "load_sequences",
    "load_video",
    "moving_mnist_batch",
    "open_file_dataset",
    "read_for_model",
    "read_idx",
    "read_sequences",
    "save_mnist_test_seq",
    "save_official_npz",
    "save_sequences",
    "split_kth_by_person",
    "split_train_validation",
]


def __getattr__(name):
    if name in _KERAS_NAMES:
        from predrnn.data import datasets

        return getattr(datasets, name)
    raise AttributeError(f"module 'predrnn.data' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_KERAS_NAMES))
