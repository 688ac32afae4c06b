"""A new cell written to the cell contract plugs into the model, the benchmark's FLOP count
and every accelerated path, without a change to any of them (docs/adding-a-cell.md)."""

import keras
import numpy as np
import pytest
from keras import ops

import numpy_reference as ref
from predrnn.acceleration import sigmoid, tanh, use_options
from predrnn.benchmark import BenchmarkConfig, step_forward_flops
from predrnn.layers import CELLS, Convolution, ConvRecurrentCell, StateSpec, get_cell_class, register_cell
from predrnn.models import VideoPredictor, load_model
from predrnn.testing import run_serialization_test

BACKEND = keras.backend.backend()


@register_cell("gated_memory")
class GatedMemoryCell(ConvRecurrentCell):
    """A small cell with a per-layer hidden state and a memory that flows up the stack::

    [z_x c_x u_x] = conv_x(x)     [z_h c_h] = conv_h(hidden)     [c_m u_m] = conv_m(memory)
    z = sigmoid(z_x + z_h)   c = tanh(c_x + c_h + c_m)   u = sigmoid(u_x + u_m)
    hidden' = z * c + (1 - z) * hidden      memory' = u * c + (1 - u) * memory
    output  = tanh(conv_out([hidden', memory']))          conv_out: 1x1, 2f -> f
    """

    state_spec = (StateSpec("hidden"), StateSpec("memory", flows_up=True))

    def convolutions(self, input_channels):
        k, n = self.kernel_size, self.filters
        return (
            Convolution("x", (k, k, input_channels, 3 * n), gates=("z", "c", "u")),
            Convolution("h", (k, k, n, 2 * n), gates=("z", "c")),
            Convolution("m", (k, k, n, 2 * n), gates=("c", "u")),
            Convolution("out", (1, 1, 2 * n, n), layer_norm=False),
        )

    def step(self, inputs, states):
        hidden, memory = states
        pre = self.gates(x=inputs, h=hidden, m=memory)
        z, c, u = sigmoid(pre["z"]), tanh(pre["c"]), sigmoid(pre["u"])
        hidden = z * c if hidden is None else z * c + (1.0 - z) * hidden
        memory = u * c if memory is None else u * c + (1.0 - u) * memory
        both, (hidden, memory) = self.concatenate(hidden, memory)
        return tanh(self.conv("out", both)), (hidden, memory)


def _numpy_step(x, hidden, memory, weights):
    n = hidden.shape[-1]
    conv = lambda a, name: ref.conv_same(a, weights[f"kernel_{name}"])
    gx, gh, gm = conv(x, "x"), conv(hidden, "h"), conv(memory, "m")
    z = ref.sigmoid(gx[..., :n] + gh[..., :n])
    c = np.tanh(gx[..., n : 2 * n] + gh[..., n:] + gm[..., :n])
    u = ref.sigmoid(gx[..., 2 * n :] + gm[..., n:])
    hidden = z * c + (1 - z) * hidden
    memory = u * c + (1 - u) * memory
    return np.tanh(conv(np.concatenate([hidden, memory], -1), "out")), hidden, memory


def test_the_cell_computes_its_equations(rng):
    cell = GatedMemoryCell(4, kernel_size=3)
    x = rng.random((2, 6, 5, 3)).astype("float32")
    hidden, memory = (rng.standard_normal((2, 6, 5, 4)).astype("float32") for _ in range(2))
    cell.build(x.shape)
    weights = {}
    for variable in cell.weights:
        weights[variable.name] = 0.3 * rng.standard_normal(tuple(variable.shape))
        variable.assign(weights[variable.name].astype("float32"))
    output, new_states = cell.step(ops.convert_to_tensor(x), (ops.convert_to_tensor(hidden), ops.convert_to_tensor(memory)))
    want = _numpy_step(x.astype(np.float64), hidden, memory, weights)
    for got, expected in zip((output, *new_states), want):
        np.testing.assert_allclose(ops.convert_to_numpy(got), expected, atol=1e-5)
    assert [w.name for w in cell.weights] == ["kernel_x", "kernel_h", "kernel_m", "kernel_out"]
    run_serialization_test(cell)


def test_the_registry_finds_the_cell():
    assert get_cell_class("gated_memory") is GatedMemoryCell and CELLS["gated_memory"] is GatedMemoryCell
    with pytest.raises(ValueError, match="Unknown cell 'nope'. Registered cells: .*gated_memory"):
        get_cell_class("nope")


def _batch(rng, b=2, t=5, side=8, channels=1):
    frames = rng.random((b, t, side, side, channels)).astype("float32")
    return {"frames": frames, "teacher_forcing_mask": (rng.random((b, t - 2)) < 0.5).astype("float32")}


def test_the_model_trains_saves_and_loads_the_new_cell(rng, tmp_path):
    inputs = _batch(rng)
    model = VideoPredictor(cell="gated_memory", filters=(4, 6), kernel_size=3, patch_size=2)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    losses = [float(np.asarray(model.train_on_batch(inputs, inputs["frames"][:, 1:])).reshape(-1)[0]) for _ in range(4)]
    assert losses[-1] < losses[0], losses
    # Unequal widths: a 1x1 adapter for the memory entering each layer of another width.
    assert sorted(model.state_adapters) == ["memory_0", "memory_1"]
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = load_model(path)
    assert type(loaded.cells[0]) is GatedMemoryCell and loaded.get_config() == model.get_config()
    np.testing.assert_allclose(ops.convert_to_numpy(loaded(inputs)), ops.convert_to_numpy(model(inputs)), atol=1e-6)


def test_the_benchmark_counts_the_new_cells_convolutions():
    config = BenchmarkConfig(model="gated_memory", filters=(2, 4), batch_size=1, image_size=4, patch_size=2, kernel_size=3)
    pixels = 2 * 1 * 2 * 2  # 2 FLOPs x batch 1 x a 2x2 patch grid
    layer = lambda cin, n: pixels * (9 * cin * 3 * n + 9 * n * 2 * n + 9 * n * 2 * n + 2 * n * n)
    adapters = pixels * (4 * 2 + 2 * 4)  # the memory: 4 -> 2 into layer 0, 2 -> 4 into layer 1
    head = pixels * 4 * 4
    assert step_forward_flops(config) == layer(4, 2) + layer(2, 4) + adapters + head
    assert "VideoPredictor(gated_memory)" in config.describe()


FAST_PATHS = {
    "tensorflow": [dict(xla_cells=True), dict(fused_gates=True), dict(xla_cells=True, fused_gates=True)],
    "jax": [dict(xla_cells=True), dict(xla_cells=True, fused_gates=True)],
    "torch": [dict(torch_winograd=True), dict(torch_winograd=True, fused_gates=True), dict(internal_layout="channels_last")],
}


@pytest.mark.parametrize("options", FAST_PATHS[BACKEND])
def test_the_fast_paths_train_the_new_cell_like_the_reference(rng, options):
    """Two SGD steps and a rollout with a fast path on equal the reference's (all off), from the same seed."""
    inputs = _batch(rng, side=12, channels=2)
    target = inputs["frames"][:, 1:]
    runs = []
    for chosen in (dict(xla_cells=False, torch_winograd=False, fused_gates=False), options):
        with use_options(**chosen):
            keras.utils.set_random_seed(3)
            model = VideoPredictor(cell="gated_memory", filters=(8, 8), kernel_size=5, patch_size=2)
            model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
            losses = [float(np.asarray(model.train_on_batch(inputs, target)).reshape(-1)[0]) for _ in range(2)]
            runs.append((losses, model.rollout(inputs["frames"][:, :3], 3)))
    (want_losses, want_rollout), (losses, rollout) = runs
    np.testing.assert_allclose(losses, want_losses, rtol=1e-4)
    np.testing.assert_allclose(rollout, want_rollout, atol=1e-4)


def test_a_config_trains_and_evaluates_the_new_cell_by_name(tmp_path):
    """The CLI's config path: model.architecture names the cell, model.cell_module registers it."""
    from predrnn.errors import ConfigError
    from predrnn.jobs.config import load_config
    from predrnn.jobs.evaluate import evaluate, load_predictor
    from predrnn.jobs.train import train

    config = load_config(
        "smoke",
        ['model.architecture="gated_memory"', 'model.cell_module="test_cell_contract"', "train.steps=2", "train.progress=false"],
    )
    train(config, tmp_path / "run")
    model, saved, _ = load_predictor(tmp_path / "run")
    assert saved.model.architecture == "gated_memory" and model.get_config()["cell"] == "gated_memory"
    assert evaluate(tmp_path / "run", num=2, progress=False, pictures=0)["num_sequences"] == 2
    with pytest.raises(ConfigError, match="registered cell.*model.cell_module"):
        load_config("smoke", ['model.architecture="no_such_cell"'])
    with pytest.raises(ConfigError, match="could not be imported"):
        load_config("smoke", ['model.architecture="gated_memory"', 'model.cell_module="no_such_module_here"'])
