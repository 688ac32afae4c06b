"""The benchmark's FLOP count and result format, and the speed options' numerics (no timing asserts)."""

import argparse
import dataclasses
import json
import os

import keras
import numpy as np
import pytest

from predrnn import ConvLSTM, PredRNN
from predrnn.benchmark import (
    PRESETS,
    RESULT_KEYS,
    BenchmarkConfig,
    format_markdown,
    forward_flops,
    parse_implementation,
    rollout_flops,
    run_benchmark,
    step_forward_flops,
    training_flops,
)
from predrnn.benchmark.commands import add_benchmark_parser, run_benchmark_command

BACKEND = keras.backend.backend()
HAND = BenchmarkConfig(
    filters=(2,), batch_size=1, image_size=4, channels=1, patch_size=2, kernel_size=3, input_length=1, output_length=2
)


def test_flops_of_a_tiny_config_by_hand():
    # 2x2 patch grid, 4 input channels, n = 2, k = 3, batch 1: 2 * B*H*W * k*k * Cin * Cout per conv.
    conv_x = 2 * 4 * 9 * 4 * 14
    conv_h = 2 * 4 * 9 * 2 * 8
    conv_m = 2 * 4 * 9 * 2 * 6
    conv_o = 2 * 4 * 9 * 4 * 2
    conv_last = 2 * 4 * 1 * 4 * 2
    head = 2 * 4 * 1 * 2 * 4
    per_step = conv_x + conv_h + conv_m + conv_o + conv_last + head
    assert per_step == 6752
    assert step_forward_flops(HAND) == per_step
    assert forward_flops(HAND) == 2 * per_step  # T - 1 = 2 steps
    assert training_flops(HAND) == 3 * 2 * per_step == 40512
    assert rollout_flops(HAND) == 2 * per_step


def test_flops_of_variants_by_hand():
    v2 = dataclasses.replace(HAND, decoupling_weight=0.1)
    assert step_forward_flops(v2) == 6752 + 2 * (2 * 4 * 1 * 2 * 2)  # adapter on delta_c and delta_m
    convlstm = dataclasses.replace(HAND, model="convlstm")
    assert step_forward_flops(convlstm) == 2 * 4 * 9 * 4 * 8 + 2 * 4 * 9 * 2 * 8 + 2 * 4 * 1 * 2 * 4
    unequal = dataclasses.replace(HAND, filters=(2, 3))
    # layer 0 gets the top (3-wide) memory through a 1x1 adapter 3 -> 2, layer 1 one 2 -> 3.
    layer0 = 2 * 4 * (9 * 4 * 14 + 9 * 2 * 8 + 9 * 2 * 6 + 9 * 4 * 2 + 4 * 2) + 2 * 4 * 3 * 2
    layer1 = 2 * 4 * (9 * 2 * 21 + 9 * 3 * 12 + 9 * 3 * 9 + 9 * 6 * 3 + 6 * 3) + 2 * 4 * 2 * 3
    assert step_forward_flops(unequal) == layer0 + layer1 + 2 * 4 * 3 * 4


def test_issue_sizes():
    """The issue's figures: ~1.4 TFLOP (4x64, batch 8) and ~11 TFLOP (4x128, batch 16) per step."""
    assert training_flops(PRESETS["mnist"]) == pytest.approx(1.4e12, rel=0.02)
    assert training_flops(PRESETS["paper"]) == pytest.approx(11.1e12, rel=0.02)


def test_the_peak_matmul_is_larger_on_an_accelerator():
    from predrnn.benchmark.machine import matmul_size

    assert (matmul_size("cpu", "float32"), matmul_size("cpu", "bfloat16")) == (2048, 1024)
    assert matmul_size("NVIDIA H200", "bfloat16") == matmul_size("gpu", "float32") == 8192


def test_parse_implementation():
    impl = parse_implementation("tensorflow+xla:mixed_bfloat16")
    assert (impl.kind, impl.backend, impl.xla, impl.precision, impl.remat) == (
        "keras",
        "tensorflow",
        True,
        "mixed_bfloat16",
        False,
    )
    assert parse_implementation("torch+remat").remat
    assert parse_implementation("reference").kind == "reference"
    assert (parse_implementation("tensorflow+bfc").bfc, parse_implementation("tensorflow+nobfc").bfc) == (True, False)
    assert parse_implementation("tensorflow").bfc is None
    assert parse_implementation("tensorflow+xlacells").xla_cells is True
    assert (parse_implementation("tensorflow+noxlacells").xla_cells, parse_implementation("jax").xla_cells) == (False, None)
    assert parse_implementation("torch+channels_first+fused+nobfc+xlacells+nowinograd").environment() == {
        "PREDRNN_INTERNAL_LAYOUT": "channels_first",
        "PREDRNN_FUSED_GATES": "1",
        "TF_CPU_ALLOCATOR_USE_BFC": "0",
        "PREDRNN_XLA_CELLS": "1",
        "PREDRNN_TORCH_WINOGRAD": "0",
    }
    assert (parse_implementation("torch+winograd").torch_winograd, parse_implementation("torch").torch_winograd) == (True, None)
    assert parse_implementation("tensorflow").environment() == {}
    with pytest.raises(ValueError, match=r"sets? PREDRNN_FUSED_GATES, TF_CPU_ALLOCATOR_USE_BFC .* need isolate=True"):
        run_benchmark("tiny", ["tensorflow+fused+nobfc"], steps=1, isolate=False)
    for bad, match in (("mxnet", "backend must be one of"), ("jax:float8", "Unknown precision"), ("jax+fast", "Unknown flag")):
        with pytest.raises(ValueError, match=match):
            parse_implementation(bad)


def test_run_benchmark_in_process_returns_every_key():
    impls = [BACKEND]
    try:
        import torch  # noqa: F401

        impls.insert(0, "reference")
    except ImportError:
        pass
    result = run_benchmark("tiny", impls, steps=1, warmup=1, rollout_repeats=1, isolate=False, matmul_size=256)
    assert [e["implementation"] for e in result["implementations"]] == impls
    for entry in result["implementations"]:
        missing = [key for key in RESULT_KEYS if key not in entry]
        assert not missing, missing
        assert entry["flops_per_step"] == training_flops(PRESETS["tiny"])
        assert entry["step_s"] > 0 and entry["peak_memory_mb"] > 0 and entry["rollout_finite"]
        if "reference" in impls:
            assert entry["step_vs_reference"] is not None
    for key in ("config", "machine", "flops", "sgemm", "load_average", "implementations"):
        assert key in result
    json.dumps(result)  # JSON-able
    assert result["machine"]["bfloat16"] in ("native", "emulated", "unknown")
    table = format_markdown(result)
    assert "| implementation |" in table and BACKEND in table
    assert f"bfloat16 {result['machine']['bfloat16']} on the CPU" in table


def test_the_table_names_the_cpu_features_and_reads_older_results():
    from predrnn.benchmark.report import features_text

    machine = {"cpu": "Xeon", "cpu_features": ["AVX2", "AVX-512", "AMX-BF16"], "bfloat16": "native"}
    assert features_text(machine) == " (AVX2, AVX-512, AMX-BF16; bfloat16 native on the CPU)"
    assert features_text({"cpu_features": [], "bfloat16": "emulated"}) == " (no AVX2/AVX-512; bfloat16 emulated on the CPU)"
    assert features_text({"cpu_features": None, "bfloat16": "unknown"}) == " (flags unknown; bfloat16 unknown on the CPU)"
    assert features_text({"cpu": "EPYC"}) == ""  # a result that does not record the features


def test_command_refuses_to_overwrite(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_benchmark_parser(parser.add_subparsers(dest="command"))
    existing = tmp_path / "result.json"
    existing.write_text("{}")
    args = parser.parse_args(["benchmark", "--preset", "tiny", "--impl", BACKEND, "--output", str(existing)])
    assert run_benchmark_command(args) == 2
    assert "exists" in capsys.readouterr().err
    assert existing.read_text() == "{}"
    args = parser.parse_args(["benchmark", "--impl", "tensorflow:float64"])
    assert run_benchmark_command(args) == 2


def test_the_workers_get_the_bfc_allocator_of_the_predrnn_command(tmp_path, monkeypatch):
    """`python -m predrnn.benchmark` measures what `predrnn benchmark` does: the workers inherit
    TF_CPU_ALLOCATOR_USE_BFC=1 unless the environment sets it (it ran the system allocator),
    and MALLOC_ARENA_MAX=2."""
    from predrnn.benchmark import commands

    seen = []

    def fake_run(*args, **kwargs):
        seen.append(os.environ.get("TF_CPU_ALLOCATOR_USE_BFC"))
        arenas.append(os.environ.get("MALLOC_ARENA_MAX"))
        raise KeyboardInterrupt  # stop before anything runs

    arenas = []  # and glibc's malloc arena limit (predrnn.acceleration.memory.limit_malloc_arenas)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.setattr("predrnn.acceleration.memory._mallopt", lambda: lambda parameter, value: 1)
    monkeypatch.setattr(commands, "run_benchmark", fake_run)
    for environment, expected in ((None, "1"), ("0", "0")):
        if environment is None:
            monkeypatch.delenv("TF_CPU_ALLOCATOR_USE_BFC", raising=False)
        else:
            monkeypatch.setenv("TF_CPU_ALLOCATOR_USE_BFC", environment)
        with pytest.raises(KeyboardInterrupt):
            commands.main(["--preset", "tiny", "--impl", BACKEND, "--output", str(tmp_path / "r.json")])
        assert seen[-1] == expected and arenas[-1] == "2"


# ------------------------------------------------------------------ speed options keep the numerics
def _batch(rng, b=2, t=5, size=8, c=1):
    frames = rng.random((b, t, size, size, c)).astype("float32")
    mask = (rng.random((b, t - 2)) < 0.5).astype("float32")
    return {"frames": frames, "teacher_forcing_mask": mask}


@pytest.mark.parametrize("cls, kwargs", [(PredRNN, dict(decoupling_weight=0.1)), (ConvLSTM, {})])
def test_remat_gives_the_same_training_step(rng, cls, kwargs):
    inputs = _batch(rng)
    target = inputs["frames"][:, 1:]
    models = []
    for remat in (False, True):
        keras.utils.set_random_seed(7)
        model = cls(filters=(4, 4), kernel_size=3, patch_size=2, remat=remat, **kwargs)
        model.compile(optimizer=keras.optimizers.SGD(0.5))
        model(inputs)
        models.append(model)
    models[1].set_weights(models[0].get_weights())
    losses = [float(np.asarray(m.train_on_batch(inputs, target)).reshape(-1)[0]) for m in models]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
    for a, b in zip(models[0].get_weights(), models[1].get_weights()):
        np.testing.assert_allclose(b, a, atol=1e-5)
    assert models[1].get_config()["remat"] is True


@pytest.mark.skipif(BACKEND == "tensorflow", reason="TensorFlow's CPU convolutions are channels-last only")
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("use_layer_norm", [False, True])
def test_internal_layouts_agree(rng, monkeypatch, layout, use_layer_norm):
    inputs = _batch(rng, c=2)
    model = PredRNN(filters=(4, 4), kernel_size=3, patch_size=2, use_layer_norm=use_layer_norm, decoupling_weight=0.1)
    model(inputs)
    monkeypatch.setenv("PREDRNN_INTERNAL_LAYOUT", "channels_last")
    want = keras.ops.convert_to_numpy(model(inputs))
    want_dec = float(keras.ops.convert_to_numpy(model.decoupling_loss(inputs)))
    monkeypatch.setenv("PREDRNN_INTERNAL_LAYOUT", layout)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(inputs)), want, atol=1e-5)
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(model.decoupling_loss(inputs))), want_dec, atol=1e-6)


@pytest.mark.parametrize("cls, kwargs", [(PredRNN, dict(decoupling_weight=0.1)), (ConvLSTM, {})])
def test_fused_and_separate_gate_convolutions_agree(rng, monkeypatch, cls, kwargs):
    """PREDRNN_FUSED_GATES=1 fuses the gate convolutions: the same weights and outputs."""
    inputs = _batch(rng, c=2)
    monkeypatch.setenv("PREDRNN_FUSED_GATES", "0")
    separate = cls(filters=(4, 4), kernel_size=3, patch_size=2, **kwargs)
    want = keras.ops.convert_to_numpy(separate(inputs))
    monkeypatch.setenv("PREDRNN_FUSED_GATES", "1")
    fused = cls(filters=(4, 4), kernel_size=3, patch_size=2, **kwargs)
    fused(inputs)
    assert [tuple(w.shape) for w in fused.weights] == [tuple(w.shape) for w in separate.weights]
    fused.set_weights(separate.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fused(inputs)), want, atol=1e-5)


def test_mixed_bfloat16_trains_and_stays_close_to_float32(rng):
    inputs = _batch(rng, b=4)
    target = inputs["frames"][:, 1:]
    keras.utils.set_random_seed(3)
    full = PredRNN(filters=(8, 8), kernel_size=3, patch_size=2, use_layer_norm=True, decoupling_weight=0.1)
    full(inputs)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = PredRNN(filters=(8, 8), kernel_size=3, patch_size=2, use_layer_norm=True, decoupling_weight=0.1)
        mixed(inputs)
        mixed.set_weights(full.get_weights())
        assert all(keras.backend.standardize_dtype(v.dtype) == "float32" for v in mixed.weights)
        out = mixed(inputs)
        assert keras.backend.standardize_dtype(out.dtype) == "float32"
        # The head computes in float32: its predictions are not bfloat16 values (a float32
        # holds a bfloat16 value when its low 16 bits are zero).
        bits = keras.ops.convert_to_numpy(out).view(np.uint32)
        assert np.mean(bits & 0xFFFF != 0) > 0.9
        np.testing.assert_allclose(keras.ops.convert_to_numpy(out), keras.ops.convert_to_numpy(full(inputs)), atol=0.05)
        rolled = mixed.rollout(inputs["frames"][:, :3], 4)
        assert rolled.dtype == np.float32 and np.isfinite(rolled).all()
        mixed.compile(optimizer=keras.optimizers.Adam(1e-2))
        losses = [float(np.asarray(mixed.train_on_batch(inputs, target)).reshape(-1)[0]) for _ in range(6)]
        assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
    finally:
        keras.mixed_precision.set_global_policy(previous)


@pytest.mark.performance
@pytest.mark.parametrize("use_layer_norm", [False, True])
def test_inference_under_mixed_precision_casts_each_kernel_once_per_sequence(rng, monkeypatch, use_layer_norm):
    """An inference call (``training=False``) of a mixed-precision model casts each kernel to
    bfloat16 once for the whole sequence (``CastOnceConvolution``), not at every time
    step, and predicts exactly what the per-step casts predict (``training=None``)."""
    from predrnn.acceleration import loops

    monkeypatch.setenv("PREDRNN_TORCH_WINOGRAD", "0")  # PyTorch's loop has its own hook otherwise
    casts, convolutions = [], []
    original = loops.CastOnceConvolution.__call__

    def spy(self, x, kernel, data_format):
        convolutions.append(id(kernel))
        if id(kernel) not in self.cast:
            casts.append(id(kernel))
        return original(self, x, kernel, data_format)

    monkeypatch.setattr(loops.CastOnceConvolution, "__call__", spy)
    inputs = _batch(rng, b=2)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = PredRNN(filters=(8, 8), kernel_size=3, patch_size=2, use_layer_norm=use_layer_norm)
        per_step = keras.ops.convert_to_numpy(model(inputs, training=None))
        assert not convolutions
        once = keras.ops.convert_to_numpy(model(inputs, training=False))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    kernels = sum(1 for cell in model.cells for w in cell.weights if len(w.shape) == 4)
    assert len(casts) == len(set(casts)) == kernels  # 5 per ST-LSTM cell
    assert len(convolutions) > 3 * kernels  # the time steps reuse them
    np.testing.assert_array_equal(once, per_step)


def test_rollout_keeps_one_compiled_function_per_length(rng):
    model = PredRNN(filters=(4,), kernel_size=3, patch_size=2)
    context = rng.random((2, 3, 8, 8, 1)).astype("float32")
    first = model.rollout(context, 2)
    model.rollout(context, 5)
    again = model.rollout(context, 2)
    np.testing.assert_allclose(again, first, atol=1e-6)
    assert set(model._rollout_functions) == {(3, 2), (3, 5)}
    assert model.predict_function is None  # the user's predict function is left alone


def test_the_reference_is_part_of_the_installed_package():
    """The benchmark loads nothing from outside the package: the PyTorch reference is
    ``predrnn.benchmark.reference_torch`` unless a file is named explicitly."""
    pytest.importorskip("torch")
    import pathlib

    import predrnn.benchmark
    from predrnn.benchmark.runners import _load_reference_module

    module = _load_reference_module()
    assert pathlib.Path(module.__file__).parent == pathlib.Path(predrnn.benchmark.__file__).parent
    assert hasattr(module, "ReferenceTrainer")
