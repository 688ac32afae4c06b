"""What the backward pass keeps: one training forward of the 4x64 model.

PyTorch: walks the graph behind the loss of one forward (batch 8, 20 random 64x64 frames,
every frame teacher-forced) and adds up the distinct storages of the tensors its nodes
saved, by node type: the library's PredRNN (``library``, the default) or
predrnn.benchmark.reference_torch (``reference``). JAX (``jax``): the residuals that
``jax.ad_checkpoint.print_saved_residuals`` lists for the library's loss (the scanned time
loop), by shape. Compares activation memory without an allocator or a framework in the figure.

    python benchmarks/saved_tensors.py library
    python benchmarks/saved_tensors.py reference
    python benchmarks/saved_tensors.py jax

Produced the "saved for the backward pass" figures of benchmarks/README.md.
"""

import os
import sys

which = sys.argv[1] if len(sys.argv) > 1 else "library"
os.environ.setdefault("KERAS_BACKEND", "jax" if which == "jax" else "torch")
import numpy as np  # noqa: E402


def jax_saved_residuals():
    """``(count, MB in all, {shape: count})`` of the residuals of the library's JAX loss."""
    import contextlib
    import io
    import re

    import jax
    import jax.numpy as jnp
    import keras

    from predrnn import PredRNN

    keras.utils.set_random_seed(0)
    model = PredRNN(filters=(64,) * 4, kernel_size=5, patch_size=4)
    inputs = {"frames": jnp.asarray(frames), "teacher_forcing_mask": jnp.asarray(mask)}
    model(inputs)
    fixed = [v.value for v in model.non_trainable_variables]

    def loss(trainable):
        predictions, _ = model.stateless_call(trainable, fixed, inputs, training=True)
        return jnp.mean((predictions - inputs["frames"][:, 1:]) ** 2)

    listing = io.StringIO()
    with contextlib.redirect_stdout(listing):
        jax.ad_checkpoint.print_saved_residuals(loss, [v.value for v in model.trainable_variables])
    sizes = {"f32": 4, "f16": 2, "bf16": 2, "i32": 4, "u32": 4}
    count, total, shapes = 0, 0, {}
    for line in listing.getvalue().splitlines():
        found = re.match(r"(\w+)\[([\d,]*)\]", line)
        if found:
            shape = found.group(2)
            elements = int(np.prod([int(d) for d in shape.split(",") if d])) if shape else 1
            count, total = count + 1, total + elements * sizes.get(found.group(1), 4)
            shapes[shape] = shapes.get(shape, 0) + 1
    return count, total / 2**20, dict(sorted(shapes.items(), key=lambda kv: -kv[1]))


def saved_storages(root):
    """``(MB in all, {node type: MB})`` of the distinct storages saved in ``root``'s graph."""
    from predrnn.testing import saved_for_backward

    storages, by_type = {}, {}
    for node, tensor in saved_for_backward(root):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in storages:
            storages[storage.data_ptr()] = storage.nbytes()
            kind = type(node).__name__
            by_type[kind] = by_type.get(kind, 0) + storage.nbytes()
    return sum(storages.values()) / 2**20, {k: round(v / 2**20) for k, v in sorted(by_type.items(), key=lambda kv: -kv[1])}


frames = np.random.default_rng(0).random((8, 20, 64, 64, 1)).astype("float32")
mask = np.ones((8, 18), "float32")
if which == "jax":
    count, total, shapes = jax_saved_residuals()
    print(f"jax: {count} residuals, {total:.0f} MB saved for the backward pass; count by shape: {shapes}")
    sys.exit(0)
import torch  # noqa: E402

if which == "reference":
    from predrnn.benchmark import reference_torch

    trainer = reference_torch.ReferenceTrainer(
        [64] * 4,
        8,
        image_size=64,
        channels=1,
        patch_size=4,
        kernel_size=5,
        total_length=20,
        input_length=10,
        layer_norm=False,
        decoupling_beta=0.0,
        seed=0,
        device="cpu",
    )
    patches = torch.FloatTensor(reference_torch.reshape_patch(frames, 4))
    _, loss = trainer.network(patches, torch.FloatTensor(np.ascontiguousarray(trainer._mask(mask))))
else:
    from predrnn import PredRNN

    model = PredRNN(filters=(64,) * 4, kernel_size=5, patch_size=4)
    predictions = model({"frames": frames, "teacher_forcing_mask": mask})
    loss = ((predictions - torch.tensor(frames[:, 1:])) ** 2).mean()
total, by_type = saved_storages(loss.grad_fn)
print(f"{which}: {total:.0f} MB saved for the backward pass; by node type (MB): {by_type}")
