import numpy as np
import pytest

import numpy_reference as ref
from predrnn import PredRNN
from predrnn.errors import CheckpointError
from predrnn.official_checkpoint import load_official_checkpoint

torch = pytest.importorskip("torch", reason="reading official checkpoints needs the torch extra")


def _official_file(tmp_path, rng, filters, patch_size, use_layer_norm, decoupling_weight, size=8, channels=1):
    """Build random reference weights, write them in the official key layout with torch.save."""
    model = PredRNN(
        filters=filters,
        kernel_size=3,
        patch_size=patch_size,
        use_layer_norm=use_layer_norm,
        decoupling_weight=decoupling_weight,
    )
    model.build((None, None, size, size, channels))
    weights = ref.random_weights_like(ref.model_weights(model), rng)
    state = ref.to_official_state(weights, filters, use_layer_norm, decoupling_weight)
    path = tmp_path / "model.ckpt-80000"
    torch.save({"net_param": {k: torch.from_numpy(v) for k, v in state.items()}}, str(path))
    return path, weights


@pytest.mark.parametrize("use_layer_norm, decoupling_weight", [(False, 0.0), (True, 0.0), (False, 0.1), (True, 0.1)])
def test_official_checkpoint_reproduces_reference(tmp_path, rng, use_layer_norm, decoupling_weight):
    filters, p = (4, 4), 2
    path, weights = _official_file(tmp_path, rng, filters, p, use_layer_norm, decoupling_weight)
    model = PredRNN.from_official_checkpoint(
        path,
        filters=filters,
        kernel_size=3,
        patch_size=p,
        use_layer_norm=use_layer_norm,
        decoupling_weight=decoupling_weight,
    )
    frames = rng.random((2, 5, 8, 8, 1)).astype("float32")
    mask = (rng.random((2, 3)) < 0.5).astype("float32")
    want, want_dec = ref.predrnn_forward(frames, mask, weights, filters, p, decoupling_weight)
    import keras

    got = keras.ops.convert_to_numpy(model({"frames": frames, "teacher_forcing_mask": mask}))
    np.testing.assert_allclose(got, want, atol=1e-5)
    if decoupling_weight:
        inputs = {"frames": frames, "teacher_forcing_mask": mask}
        np.testing.assert_allclose(float(keras.ops.convert_to_numpy(model.decoupling_loss(inputs))), want_dec, atol=1e-5)


def test_arguments_are_inferred(tmp_path, rng):
    path, _ = _official_file(tmp_path, rng, (4, 4, 4), 2, True, 0.1)
    model = load_official_checkpoint(path)
    assert model.filters == (4, 4, 4) and model.kernel_size == 3 and model.patch_size == 2
    assert model.use_layer_norm and model.decoupling_weight > 0 and model.frame_shape == (8, 8, 1)


def test_gpu_saved_style_checkpoint_without_wrapper(tmp_path, rng):
    """A bare state dict (no 'net_param') also loads; tensors are mapped to the CPU."""
    path, weights = _official_file(tmp_path, rng, (4,), 2, False, 0.0)
    state = torch.load(str(path), map_location="cpu")["net_param"]
    bare = tmp_path / "bare.ckpt"
    torch.save(state, str(bare))
    model = load_official_checkpoint(bare, image_size=8)
    assert model.frame_shape == (8, 8, 1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(filters=(8, 8)), "filters=\\(4, 4\\)"),
        (dict(use_layer_norm=True), "use_layer_norm=False"),
        (dict(kernel_size=5), "kernel_size=3"),
        (dict(decoupling_weight=0.1), "Missing keys: \\['adapter.weight'\\].*decoupling_weight=0"),
        (dict(patch_size=4), "Wrong shapes"),
    ],
)
def test_mismatch_names_keys_and_argument(tmp_path, rng, kwargs, match):
    path, _ = _official_file(tmp_path, rng, (4, 4), 2, False, 0.0)
    with pytest.raises(CheckpointError, match=f"(?s){match}"):
        PredRNN.from_official_checkpoint(path, **kwargs)


def test_v2_checkpoint_into_v1_model_says_so(tmp_path, rng):
    path, _ = _official_file(tmp_path, rng, (4, 4), 2, False, 0.1)
    with pytest.raises(CheckpointError, match="(?s)Unexpected keys: \\['adapter.weight'\\].*PredRNN-V2"):
        PredRNN.from_official_checkpoint(path, decoupling_weight=0.0)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_official_checkpoint(tmp_path / "nope.ckpt")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="Could not read"):
        load_official_checkpoint(bad)
