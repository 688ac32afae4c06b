"""Patching: fold ``p x p`` pixel blocks into channels (space-to-depth) and back.

``(B, T, H, W, C) -> (B, T, H/p, W/p, p*p*C)`` with channel index
``(row_in_patch * p + col_in_patch) * C + c``: the layout of the official PredRNN
``reshape_patch`` and of a space-to-depth with block ``p``.
"""

from keras import ops


def check_patchable(height, width, patch_size):
    """Raise a clear error when the frame size is not divisible by ``patch_size``."""
    for name, size in (("height", height), ("width", width)):
        if size is not None and size % patch_size:
            raise ValueError(
                f"Frame {name} {size} is not divisible by patch_size={patch_size}. "
                "Choose a patch_size that divides both height and width, or resize/crop "
                f"the frames. Received frame size: {height}x{width}"
            )


def to_patches(frames, patch_size):
    """``(B, T, H, W, C) -> (B, T, H/p, W/p, p*p*C)``."""
    p = int(patch_size)
    if p == 1:
        return frames
    b, t, h, w, c = ops.shape(frames)
    check_patchable(h, w, p)
    x = ops.reshape(frames, (-1, t, h // p, p, w // p, p, c))
    x = ops.transpose(x, (0, 1, 2, 4, 3, 5, 6))
    return ops.reshape(x, (-1, t, h // p, w // p, p * p * c))


def from_patches(patches, patch_size):
    """``(B, T, h, w, p*p*C) -> (B, T, h*p, w*p, C)``; the inverse of :func:`to_patches`."""
    p = int(patch_size)
    if p == 1:
        return patches
    b, t, h, w, pc = ops.shape(patches)
    if pc % (p * p):
        raise ValueError(
            f"Patched channels {pc} are not divisible by patch_size**2={p * p}. Received shape: {tuple(ops.shape(patches))}"
        )
    c = pc // (p * p)
    x = ops.reshape(patches, (-1, t, h, w, p, p, c))
    x = ops.transpose(x, (0, 1, 2, 4, 3, 5, 6))
    return ops.reshape(x, (-1, t, h * p, w * p, c))
