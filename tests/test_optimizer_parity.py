"""The training optimizer against NumPy references of PyTorch's and Keras' Adam updates.

The official PredRNN code trains with ``torch.optim.Adam`` (eps 1e-8 added after bias
correction); ``train.adam_epsilon_placement = "keras"`` is ``keras.optimizers.Adam``'s
epsilon-hat arithmetic. Both are checked for several steps on every backend, with
gradients from 1e-12 to 1e-2 and exact zeros (this model's gradients are small, where the
two placements differ most).
"""

import subprocess
import sys

import keras
import numpy as np
import pytest

from predrnn.jobs.config import TrainConfig
from predrnn.jobs.train import _compile


def pytorch_adam(parameter, gradients, lr, beta_1=0.9, beta_2=0.999, eps=1e-8):
    """torch.optim.Adam's update (amsgrad off, no weight decay), in float64:
    m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
    p -= lr / (1-b1^t) * m / (sqrt(v) / sqrt(1-b2^t) + eps)."""
    p, m, v = parameter.astype(np.float64), 0.0, 0.0
    for t, g in enumerate(gradients, 1):
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        p = p - lr / (1 - beta_1**t) * m / (np.sqrt(v) / np.sqrt(1 - beta_2**t) + eps)
    return p


def keras_adam(parameter, gradients, lr, beta_1=0.9, beta_2=0.999, eps=1e-7):
    """keras.optimizers.Adam's update (epsilon-hat): p -= lr sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps)."""
    p, m, v = parameter.astype(np.float64), 0.0, 0.0
    for t, g in enumerate(gradients, 1):
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        p = p - lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t) * m / (np.sqrt(v) + eps)
    return p


def gradient_sequence(steps=6, seed=0):
    """Gradients over six decades of scale (as this model's are), some exactly zero, some
    changing sign from step to step."""
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.uniform(-12, -2, size=(4, 40))
    gradients = []
    for _ in range(steps):
        g = rng.standard_normal((4, 40)) * scale
        g[0, :5] = 0.0
        gradients.append(g.astype(np.float32))
    return gradients


def run_optimizer(train_config, parameter, gradients):
    """The optimizer that the training job compiles, applied to one variable."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    _compile(model, train_config)
    variable = keras.Variable(parameter, dtype="float32")
    optimizer = model.optimizer
    for g in gradients:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), variable)])
    return keras.ops.convert_to_numpy(variable), optimizer


def update_tolerance(parameter, lr, steps):
    # float32 state and arithmetic: relative errors ~1e-6 of each update of size <= ~lr
    return dict(rtol=0, atol=20 * steps * lr * 1e-6 + 1e-6 * np.abs(parameter).max())


@pytest.mark.parametrize("lr, eps, betas", [(3e-4, 1e-8, (0.9, 0.999)), (1e-3, 1e-6, (0.8, 0.99))])
def test_default_adam_is_pytorchs(lr, eps, betas):
    parameter = np.random.default_rng(1).standard_normal((4, 40)).astype(np.float32)
    gradients = gradient_sequence()
    config = TrainConfig(learning_rate=lr, adam_epsilon=eps, adam_beta_1=betas[0], adam_beta_2=betas[1])
    assert config.adam_epsilon_placement == "pytorch"
    ours, _ = run_optimizer(config, parameter, gradients)
    expected = pytorch_adam(parameter, gradients, lr, *betas, eps)
    np.testing.assert_allclose(ours, expected, **update_tolerance(parameter, lr, len(gradients)))
    # not Keras' arithmetic: the small gradients' updates differ by far more than rounding
    keras_expected = keras_adam(parameter, gradients, lr, *betas, eps)
    assert np.abs(keras_expected - expected).max() > 0.1 * lr


def test_keras_placement_is_keras_adam():
    parameter = np.random.default_rng(2).standard_normal((4, 40)).astype(np.float32)
    gradients = gradient_sequence(seed=3)
    config = TrainConfig(learning_rate=3e-4, adam_epsilon=1e-7, adam_epsilon_placement="keras")
    ours, optimizer = run_optimizer(config, parameter, gradients)
    assert isinstance(optimizer, keras.optimizers.Adam) and type(optimizer).__name__ == "Adam"  # Keras' own
    expected = keras_adam(parameter, gradients, 3e-4, eps=1e-7)
    np.testing.assert_allclose(ours, expected, **update_tolerance(parameter, 3e-4, len(gradients)))


def test_first_update_is_full_size_for_small_gradients():
    """PyTorch's first step moves every element with |g| >> eps by lr; Keras' epsilon-hat
    (eps on sqrt(v) before the 1/sqrt(1-beta_2) correction) shrinks the same step for
    gradients of the size this model has at the start of training."""
    parameter = np.zeros((1, 3), np.float32)
    gradient = np.array([[1e-4, 1e-6, -5e-8]], np.float32)
    pytorch_step, _ = run_optimizer(TrainConfig(learning_rate=1e-3), parameter, [gradient])
    g = gradient.astype(np.float64)
    np.testing.assert_allclose(pytorch_step, -1e-3 * g / (np.abs(g) + 1e-8), rtol=1e-5)
    keras_step, _ = run_optimizer(
        TrainConfig(learning_rate=1e-3, adam_epsilon=1e-7, adam_epsilon_placement="keras"), parameter, [gradient]
    )
    assert abs(keras_step[0, 2]) < 0.02 * 1e-3  # -5e-8 / (5e-8 + 1e-7 / sqrt(0.001)) of lr


def test_numpy_reference_is_torch_adam():
    torch = pytest.importorskip("torch")
    parameter = np.random.default_rng(4).standard_normal((4, 40))
    gradients = [g.astype(np.float64) for g in gradient_sequence(seed=5)]
    tensor = torch.tensor(parameter, requires_grad=True)
    optimizer = torch.optim.Adam([tensor], lr=3e-4, betas=(0.9, 0.999), eps=1e-8)
    for g in gradients:
        tensor.grad = torch.tensor(g)
        optimizer.step()
    np.testing.assert_allclose(tensor.detach().numpy(), pytorch_adam(parameter, gradients, 3e-4), rtol=0, atol=1e-12)


def test_float32_updates_track_torch_adam():
    """Forty float32 steps of ours and of torch.optim.Adam (float32) stay within float32
    rounding of each other (the bias corrections are PyTorch's, computed as in double)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    parameter = rng.standard_normal((8, 50)).astype(np.float32) * 0.05
    gradients = [(rng.standard_normal((8, 50)) * 10.0 ** rng.uniform(-9, -4, (8, 50))).astype(np.float32) for _ in range(40)]
    ours, _ = run_optimizer(TrainConfig(learning_rate=3e-4), parameter, gradients)
    tensor = torch.tensor(parameter, requires_grad=True)
    optimizer = torch.optim.Adam([tensor], lr=3e-4, eps=1e-8)
    for g in gradients:
        tensor.grad = torch.tensor(g)
        optimizer.step()
    moved = np.abs(tensor.detach().numpy() - parameter)
    np.testing.assert_allclose(ours - parameter, tensor.detach().numpy() - parameter, rtol=0, atol=2e-5 * moved.max())


def test_pytorch_adam_resumes_from_a_saved_model(tmp_path):
    """A run's checkpoint keeps the optimizer class, its settings and its slots."""
    from predrnn.jobs.config import ExperimentConfig, load_saved_config, save_config

    config = ExperimentConfig(train=TrainConfig(learning_rate=3e-4, adam_epsilon=1e-8))
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    _compile(model, config.train)
    x, y = np.ones((4, 2), np.float32), np.zeros((4, 1), np.float32)
    model.train_on_batch(x, y)
    model.save(tmp_path / "last.keras")
    save_config(config, tmp_path / "config.json")
    assert load_saved_config(tmp_path / "config.json").train == config.train
    # A fresh process loads it through predrnn.load_model (which registers PyTorchAdam).
    script = f"import predrnn; print(type(predrnn.load_model({str(tmp_path / 'last.keras')!r}).optimizer).__name__)"
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0 and loaded.stdout.strip().endswith("PyTorchAdam"), loaded.stderr[-2000:]
    from predrnn.models import load_model

    restored = load_model(tmp_path / "last.keras")
    assert type(restored.optimizer).__name__ == type(model.optimizer).__name__
    assert restored.optimizer.epsilon == 1e-8
    model.train_on_batch(x, y)
    restored.train_on_batch(x, y)
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
