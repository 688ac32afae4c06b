import keras
import numpy as np
import pytest

import numpy_reference as ref
from predrnn import ConvLSTM, PredRNN
from predrnn.schedules import inference_teacher_forcing_mask
from predrnn.testing import run_model_saving_test, run_serialization_test

B, T, H, W, C = 2, 5, 8, 8, 1


def _batch(rng, b=B, t=T, h=H, w=W, c=C, mask_value=None):
    frames = rng.random((b, t, h, w, c)).astype("float32")
    if mask_value is None:
        mask = (rng.random((b, t - 2)) < 0.5).astype("float32")
    else:
        mask = np.full((b, t - 2), mask_value, "float32")
    return {"frames": frames, "teacher_forcing_mask": mask}


def _built(model, inputs, rng=None):
    model(inputs)
    if rng is not None:
        ref.set_model_weights(model, ref.random_weights_like(ref.model_weights(model), rng))
    return model


def _np(x):
    return keras.ops.convert_to_numpy(x)


CASES = {
    "v1": dict(filters=(4, 4), kernel_size=3, patch_size=2),
    "v1_layer_norm": dict(filters=(4, 4), kernel_size=3, patch_size=2, use_layer_norm=True),
    "unequal_widths": dict(filters=(3, 5, 4), kernel_size=3, patch_size=2),
    "v2": dict(filters=(4, 4), kernel_size=3, patch_size=2, decoupling_weight=0.1),
    "v2_unequal": dict(filters=(4, 6), kernel_size=3, patch_size=4, decoupling_weight=0.01),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_predrnn_matches_numpy_reference(rng, case):
    kwargs = CASES[case]
    inputs = _batch(rng, c=2)
    model = _built(PredRNN(**kwargs), inputs, rng)
    want, want_decoupling = ref.predrnn_forward(
        inputs["frames"],
        inputs["teacher_forcing_mask"],
        ref.model_weights(model),
        kwargs["filters"],
        kwargs["patch_size"],
        kwargs.get("decoupling_weight", 0.0),
    )
    got = _np(model(inputs))
    assert got.shape == (B, T - 1, H, W, 2)
    np.testing.assert_allclose(got, want, atol=1e-5)
    if kwargs.get("decoupling_weight", 0) > 0:
        assert want_decoupling > 0
        np.testing.assert_allclose(float(_np(model.decoupling_loss(inputs))), want_decoupling, atol=1e-5)
        np.testing.assert_allclose(float(_np(model.losses[0])), kwargs["decoupling_weight"] * want_decoupling, atol=1e-6)


@pytest.mark.parametrize("use_layer_norm", [False, True])
def test_conv_lstm_matches_numpy_reference(rng, use_layer_norm):
    inputs = _batch(rng)
    model = _built(ConvLSTM(filters=(4, 3), kernel_size=3, patch_size=2, use_layer_norm=use_layer_norm), inputs, rng)
    want, _ = ref.predrnn_forward(
        inputs["frames"], inputs["teacher_forcing_mask"], ref.model_weights(model), (4, 3), 2, conv_lstm=True
    )
    np.testing.assert_allclose(_np(model(inputs)), want, atol=1e-5)


def test_memory_adapters_only_for_unequal_widths(rng):
    inputs = _batch(rng)
    equal = _built(PredRNN(filters=(4, 4, 4), kernel_size=3, patch_size=2), inputs)
    assert not equal.memory_adapters
    unequal = _built(PredRNN(filters=(3, 5, 4), kernel_size=3, patch_size=2), inputs)
    shapes = {k: tuple(v.shape) for k, v in unequal.memory_adapters.items()}
    assert shapes == {"0": (1, 1, 4, 3), "1": (1, 1, 3, 5), "2": (1, 1, 5, 4)}


@pytest.mark.parametrize("cls", [PredRNN, ConvLSTM])
def test_causality(rng, cls):
    """Frames >= k never change predictions of frames <= k (indices < k)."""
    model = _built(cls(filters=(4, 4), kernel_size=3, patch_size=2), _batch(rng))
    inputs = _batch(rng, t=6)
    base = _np(model(inputs))
    for k in range(1, 6):
        changed = {key: value.copy() for key, value in inputs.items()}
        changed["frames"][:, k:] = rng.random(changed["frames"][:, k:].shape)
        out = _np(model(changed))
        np.testing.assert_allclose(out[:, :k], base[:, :k], atol=1e-6)
        if k < 5:
            assert np.abs(out[:, k:] - base[:, k:]).max() > 0 or not inputs["teacher_forcing_mask"][:, k - 1].any()


def test_mask_semantics(rng):
    """Mask 1 at input step t feeds the true frame t; mask 0 feeds the prediction."""
    model = _built(PredRNN(filters=(4,), kernel_size=3, patch_size=2), _batch(rng))
    for value in (1.0, 0.0):
        inputs = _batch(rng, mask_value=value)
        base = _np(model(inputs))
        changed = {key: v.copy() for key, v in inputs.items()}
        changed["frames"][:, 2] += 0.5
        out = _np(model(changed))
        np.testing.assert_allclose(out[:, :2], base[:, :2], atol=1e-6)
        if value == 1.0:
            assert np.abs(out[:, 2] - base[:, 2]).max() > 1e-4
        else:
            np.testing.assert_allclose(out, base, atol=1e-6)


def test_zigzag_memory_reaches_the_bottom_layer_next_step(rng):
    """The top layer's memory at t is the bottom layer's memory at t+1."""
    model = _built(PredRNN(filters=(4, 4), kernel_size=3, patch_size=2), _batch(rng), rng)
    weights = ref.model_weights(model)
    inputs = _batch(rng, mask_value=1.0)
    base = _np(model(inputs))
    # Cut the memory path out of the bottom layer: its conv_m no longer reads M.
    cut = dict(weights)
    cut["st_lstm_0/kernel_m"] = np.zeros_like(weights["st_lstm_0/kernel_m"])
    ref.set_model_weights(model, cut)
    out = _np(model(inputs))
    np.testing.assert_allclose(out[:, 0], base[:, 0], rtol=0, atol=1e-6)  # t=0: memory is zero anyway
    assert np.abs(out[:, 1:] - base[:, 1:]).max() > 1e-4


@pytest.mark.parametrize("cls", [PredRNN, ConvLSTM])
def test_rollout_equals_call_with_inference_mask(rng, cls):
    model = _built(cls(filters=(4, 4), kernel_size=3, patch_size=2), _batch(rng), rng)
    frames = rng.random((2, 7, H, W, C)).astype("float32")
    context = 3
    mask = inference_teacher_forcing_mask(2, context, 4)
    full = _np(model({"frames": frames, "teacher_forcing_mask": mask}))
    rolled = model.rollout(frames[:, :context], 4)
    assert isinstance(rolled, np.ndarray) and rolled.shape == (2, 4, H, W, C)
    np.testing.assert_allclose(rolled, full[:, context - 1 :], atol=1e-6)
    longer = model.rollout(frames[:, :context], 12, batch_size=1)
    assert longer.shape == (2, 12, H, W, C)
    np.testing.assert_allclose(longer[:, :4], rolled, atol=1e-6)


def test_rollout_of_one_chunk_skips_predicts_data_pipeline(rng, monkeypatch):
    """A batch of at most ``batch_size`` sequences runs as ``predict_on_batch`` (``predict``
    added ~1 s to many TensorFlow rollouts of 1.5 s); larger ones go through ``predict`` in
    chunks, with the same predictions."""
    model = _built(PredRNN(filters=(4,), kernel_size=3, patch_size=2), _batch(rng), rng)
    context = rng.random((3, 3, H, W, C)).astype("float32")
    calls = []
    predict = model.predict
    monkeypatch.setattr(model, "predict", lambda *args, **kwargs: calls.append(kwargs) or predict(*args, **kwargs))
    whole = model.rollout(context, 4)
    assert calls == []
    chunked = model.rollout(context, 4, batch_size=2)
    assert [call["batch_size"] for call in calls] == [2]
    np.testing.assert_allclose(chunked, whole, atol=1e-6)


def test_rollout_builds_an_unbuilt_model(rng):
    model = PredRNN(filters=(4,), kernel_size=3, patch_size=2)
    assert model.rollout(rng.random((1, 2, H, W, C)).astype("float32"), 3).shape == (1, 3, H, W, C)


@pytest.mark.parametrize(
    "cls, kwargs",
    [(PredRNN, dict(use_layer_norm=True)), (PredRNN, dict(decoupling_weight=0.1, filters=(4, 6))), (ConvLSTM, {})],
)
def test_serialization_and_saving(rng, cls, kwargs):
    kwargs = {"filters": (4, 4), "kernel_size": 3, "patch_size": 2, **kwargs}
    inputs = _batch(rng)
    model = _built(cls(**kwargs), inputs)
    clone = run_serialization_test(model)
    assert clone.get_config()["filters"] == list(kwargs["filters"])
    run_model_saving_test(model, inputs)


def test_fit_lowers_loss_and_trains_the_decoupling_adapter(rng):
    inputs = _batch(rng, b=4)
    target = inputs["frames"][:, 1:]
    model = PredRNN(filters=(8,), kernel_size=3, patch_size=2, decoupling_weight=0.1)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model(inputs)
    adapter_before = _np(model.decoupling_adapters["8"]).copy()
    history = model.fit(inputs, target, epochs=6, batch_size=4, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert losses[-1] < 0.8 * losses[0], losses
    assert np.abs(_np(model.decoupling_adapters["8"]) - adapter_before).max() > 0


def test_convlstm_fit_lowers_loss(rng):
    inputs = _batch(rng, b=4)
    model = ConvLSTM(filters=(8,), kernel_size=3, patch_size=2)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    losses = model.fit(inputs, inputs["frames"][:, 1:], epochs=5, batch_size=4, verbose=0).history["loss"]
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.parametrize(
    "make_inputs, match",
    [
        (
            lambda r: {"frames": r.random((2, 5, 8, 8)).astype("float32"), "teacher_forcing_mask": np.ones((2, 3), "float32")},
            "shape \\(batch, time, height, width, channels\\)",
        ),
        (
            lambda r: {
                "frames": r.random((2, 5, 10, 8, 1)).astype("float32"),
                "teacher_forcing_mask": np.ones((2, 3), "float32"),
            },
            "not divisible by patch_size=4",
        ),
        (
            lambda r: {"frames": r.random((2, 5, 8, 8, 1)).astype("float32"), "teacher_forcing_mask": np.ones((2, 4), "float32")},
            "must have shape \\(batch, T-2\\)",
        ),
        (
            lambda r: {"frames": np.full((2, 5, 8, 8, 1), np.nan, "float32"), "teacher_forcing_mask": np.ones((2, 3), "float32")},
            "NaN",
        ),
        (lambda r: r.random((2, 5, 8, 8, 1)).astype("float32"), "takes a dict"),
    ],
)
def test_bad_inputs_raise_clear_errors(rng, make_inputs, match):
    model = PredRNN(filters=(4,), kernel_size=3, patch_size=4)
    with pytest.raises(ValueError, match=match):
        model(make_inputs(rng))


def test_channel_mismatch_after_build(rng):
    model = _built(PredRNN(filters=(4,), kernel_size=3, patch_size=2), _batch(rng))
    with pytest.raises(ValueError, match="built for 1-channel frames but frames have 3 channels"):
        model(_batch(rng, c=3))


@pytest.mark.parametrize("horizon", [0, -1, 2.5, True])
def test_rollout_rejects_bad_horizon(rng, horizon):
    model = PredRNN(filters=(4,), kernel_size=3, patch_size=2)
    with pytest.raises(ValueError, match="horizon must be a positive integer"):
        model.rollout(rng.random((1, 2, 8, 8, 1)).astype("float32"), horizon)


@pytest.mark.parametrize("bad", [dict(filters=()), dict(decoupling_weight=-1), dict(patch_size=0), dict(kernel_size=2)])
def test_bad_model_arguments(bad):
    with pytest.raises(ValueError, match="Received"):
        PredRNN(**bad)
