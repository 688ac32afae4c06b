"""Reading sequences from files, lazily, as ``(N, T, H, W, C)`` float32 in ``[0, 1]``.

Every loader returns a :class:`SequenceArray`: an array-like with ``.shape``, ``len()``,
``.dtype`` (float32) and NumPy-style indexing that reads and converts only the sequences asked
for. Nothing is loaded at open time beyond headers (and, for float data, the first sequence, to
check its value range early).

Supported sources (:func:`load_sequences` picks one by extension and layout):

=================================  ==========================================================
``mnist_test_seq.npy``-style       ``(T, N, H, W)`` uint8, the standard Moving MNIST test set
official PredRNN ``.npz``          keys ``clips`` ``(2, N, 2)``, ``dims`` ``[[C, H, W]]``,
                                   ``input_raw_data`` ``(N*T, C, H, W)`` (thuml/predrnn-pytorch)
generic ``.npy`` / ``.npz``        ``(N, T, H, W, C)``; any other axis order with ``layout=``
                                   (``"NTHW"``, ``"TNHW"``, ``"NTCHW"``, ...): a 4-D array is
                                   refused unless its layout is given
frame folders                      ``root/<sequence>/*.png|jpg|jpeg|bmp`` (KTH style), or one
                                   folder of frames as a single sequence
videos and GIFs                    one file = one sequence, or a folder of them, via imageio
=================================  ==========================================================

Values: uint8 is divided by 255; floats must lie in ``[0, 1]``; any other range (or another
integer type) must be declared with ``value_range=(lo, hi)`` and is rescaled
``(x - lo) / (hi - lo)``. Every read checks float (and declared-range) data for NaN, inf and
values outside the range, and raises :class:`~predrnn.errors.DataError` naming the file and the
sequence index.

Memory: ``.npy`` files are opened with ``np.load(mmap_mode="r")``; ``.npz`` members stored
uncompressed (``np.savez``) are memory-mapped at their offset inside the zip file. A 10 GB file
needs only the pages actually indexed. A *compressed* ``.npz`` member (``np.savez_compressed``)
cannot be mapped: it is decompressed into memory in full on the first read.

Channels: grayscale frames (and GIFs whose frames are all grey) have ``C = 1``. ``channels=1`` (``"grey"``) converts RGB to gray with the ITU-R
601-2 luma weights (0.299, 0.587, 0.114, as PIL's ``"L"`` mode); ``channels=3`` repeats a gray
channel three times; an alpha channel (RGBA) is dropped. ``resize=(H, W)`` resizes every frame with
PIL's bilinear filter before the conversion. ``SequenceArray.summary`` says what was read.

Modules: ``sequence`` (:class:`SequenceArray` and the value and channel conversions),
``arrays`` (``.npy``, ``.npz``, in-memory arrays), ``images`` (frame folders), ``video``
(video files and GIFs), ``detect`` (:func:`load_sequences`) and ``kth`` (the KTH split).
"""

from predrnn.data.formats.arrays import (
    LayoutError,
    as_sequence_array,
    load_mnist_test_seq,
    load_npy,
    load_npz,
    load_official_npz,
)
from predrnn.data.formats.detect import load_sequences
from predrnn.data.formats.images import IMAGE_EXTENSIONS, load_image_folder
from predrnn.data.formats.kth import kth_person_id, split_kth_by_person
from predrnn.data.formats.sequence import CHANNEL_CHOICES, LAYOUT_EXAMPLES, ReadSummary, SequenceArray, parse_layout
from predrnn.data.formats.video import VIDEO_EXTENSIONS, load_video

__all__ = [
    "CHANNEL_CHOICES",
    "IMAGE_EXTENSIONS",
    "LAYOUT_EXAMPLES",
    "LayoutError",
    "ReadSummary",
    "VIDEO_EXTENSIONS",
    "SequenceArray",
    "as_sequence_array",
    "load_sequences",
    "load_npy",
    "load_npz",
    "load_mnist_test_seq",
    "load_official_npz",
    "load_image_folder",
    "load_video",
    "kth_person_id",
    "split_kth_by_person",
    "parse_layout",
]
