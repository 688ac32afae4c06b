import keras
import numpy as np
import pytest

import numpy_reference as ref
from predrnn import from_patches, to_patches


@pytest.mark.parametrize("p, c", [(1, 1), (2, 3), (4, 1)])
def test_round_trip_and_layout(rng, p, c):
    x = rng.random((2, 3, 8, 12, c)).astype("float32")
    patches = keras.ops.convert_to_numpy(to_patches(x, p))
    assert patches.shape == (2, 3, 8 // p, 12 // p, p * p * c)
    np.testing.assert_array_equal(patches, ref.patchify(x, p))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(from_patches(patches, p)), x)


def test_channel_index_convention():
    x = np.zeros((1, 1, 4, 4, 2), "float32")
    x[0, 0, 1, 0, 1] = 1.0  # row 1, col 0 inside the first 2x2 patch, channel 1
    patches = keras.ops.convert_to_numpy(to_patches(x, 2))
    assert patches[0, 0, 0, 0, (1 * 2 + 0) * 2 + 1] == 1.0
    assert patches.sum() == 1.0


def test_not_divisible_raises():
    with pytest.raises(ValueError, match="not divisible by patch_size=4"):
        to_patches(np.zeros((1, 2, 10, 8, 1), "float32"), 4)
