"""What PyTorch's autograd keeps for the backward pass: one training forward of the 4x64 model.

Walks the graph behind the loss of one forward (batch 8, 20 random 64x64 frames, every
frame teacher-forced) and adds up the distinct storages of the tensors its nodes saved, by
node type: the library's PredRNN (``library``, the default) or benchmarks/reference_torch.py
(``reference``). Compares activation memory without an allocator or a framework in the figure.

    python benchmarks/saved_tensors.py library
    python benchmarks/saved_tensors.py reference

Produced the "saved for the backward pass" figures of benchmarks/README.md.
"""
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
import numpy as np  # noqa: E402
import torch  # noqa: E402


def saved_storages(root):
    """``(MB in all, {node type: MB})`` of the distinct storages saved in ``root``'s graph."""
    seen, storages, by_type, stack = set(), {}, {}, [root]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        tensors = []
        for name in dir(node):
            if name.startswith("_saved_"):
                value = getattr(node, name, None)
                values = value if isinstance(value, (tuple, list)) else [value]
                tensors += [t for t in values if isinstance(t, torch.Tensor)]
        tensors += list(getattr(node, "saved_tensors", ()) or ())  # custom autograd.Functions
        for tensor in tensors:
            storage = tensor.untyped_storage()
            if storage.data_ptr() not in storages:
                storages[storage.data_ptr()] = storage.nbytes()
                kind = type(node).__name__
                by_type[kind] = by_type.get(kind, 0) + storage.nbytes()
        stack += [next_node for next_node, _ in getattr(node, "next_functions", ())]
    return sum(storages.values()) / 2**20, {k: round(v / 2**20) for k, v in sorted(by_type.items(), key=lambda kv: -kv[1])}


which = sys.argv[1] if len(sys.argv) > 1 else "library"
frames = np.random.default_rng(0).random((8, 20, 64, 64, 1)).astype("float32")
mask = np.ones((8, 18), "float32")
if which == "reference":
    sys.path.insert(0, str(Path(__file__).parent))
    import reference_torch

    trainer = reference_torch.ReferenceTrainer(
        [64] * 4, 8, image_size=64, channels=1, patch_size=4, kernel_size=5, total_length=20,
        input_length=10, layer_norm=False, decoupling_beta=0.0, seed=0, device="cpu",
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
