"""Winograd convolution and ``PREDRNN_XLA_CELLS``: the transforms' identity, agreement with the
direct convolution (values and gradients, both layouts), and models that train the same."""

import functools
import os

import keras
import numpy as np
import pytest

import numpy_reference as ref
from predrnn import ConvLSTM, PredRNN
from predrnn.acceleration import loops, run_step
from predrnn.acceleration.convolution import conv2d
from predrnn.acceleration.options import model_xla_cells, torch_winograd, xla_cells
from predrnn.acceleration.winograd import (
    _data_transforms,
    _input_transform_adjoint,
    recomputing_winograd_conv2d,
    summed_transformed_winograd_conv2d,
    transformed_winograd_conv2d,
    winograd_applies,
    winograd_conv2d,
    winograd_kernel,
    winograd_matrices,
)
from predrnn.errors import ConfigError
from predrnn.layers import ConvLSTMCell, SpatioTemporalLSTMCell

BACKEND = keras.backend.backend()


def _flat(result):
    """A cell step's ``(output, new_states[, auxiliary])`` as the flat tuple ``cell(...)`` returns."""
    return (*result[1], *(result[2] if len(result) > 2 else ()))


def _plain(cell):
    return lambda x, states: _flat(cell.step(x, states))


def _compiled(cell):
    """The cell's step as the models' loop runs it (XLA cell steps where the options say so)."""
    return lambda x, states: _flat(run_step(cell, x, states))


# The models whose time loops are checked with Winograd convolutions against the direct ones
# (JAX's scanned loop, PyTorch's loop): PredRNN-V2 with layer norm, ConvLSTM, remat, and
# fused gates with 7x7 kernels (the fused kernels, too, are transformed once per sequence).
WINOGRAD_LOOP_MODELS = [
    (PredRNN, dict(filters=(4, 4), decoupling_weight=0.1, use_layer_norm=True)),
    (ConvLSTM, dict(filters=(4, 4))),
    (PredRNN, dict(filters=(4,), kernel_size=3, remat=True)),
    (PredRNN, dict(filters=(4, 4), kernel_size=7, fused=True)),
]


@pytest.mark.parametrize("tile, kernel_size", [(2, 3), (4, 3), (2, 5), (4, 5), (2, 7)])
def test_transforms_compute_the_correlation(rng, tile, kernel_size):
    a_t, g, b_t = winograd_matrices(tile, kernel_size)
    n = tile + kernel_size - 1
    assert a_t.shape == (tile, n) and g.shape == (n, kernel_size) and b_t.shape == (n, n)
    d, w = rng.standard_normal(n), rng.standard_normal(kernel_size)
    want = [np.dot(d[i : i + kernel_size], w) for i in range(tile)]
    np.testing.assert_allclose(a_t @ ((g @ w) * (b_t @ d)), want, atol=1e-12)


def test_too_large_a_tile_is_refused():
    with pytest.raises(ValueError, match="points"):
        winograd_matrices(8, 7)


@pytest.mark.parametrize(
    "height, width, kernel_size, tile",
    [(16, 16, 5, 4), (13, 7, 5, 4), (9, 10, 3, 4), (6, 6, 5, 2), (8, 5, 7, 2), (3, 2, 5, 4)],
)
def test_matches_the_direct_convolution_in_both_layouts(rng, height, width, kernel_size, tile):
    x = rng.standard_normal((2, height, width, 3))
    kernel = rng.standard_normal((kernel_size, kernel_size, 3, 4)) / kernel_size
    want = ref.conv_same(x, kernel)
    xt, kt = (keras.ops.convert_to_tensor(a.astype("float32")) for a in (x, kernel))
    got = keras.ops.convert_to_numpy(winograd_conv2d(xt, kt, tile=tile))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=2e-5 * np.abs(want).max())
    first = winograd_conv2d(keras.ops.transpose(xt, (0, 3, 1, 2)), kt, tile=tile, data_format="channels_first")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(first).transpose(0, 2, 3, 1), got, atol=1e-6 * np.abs(want).max())


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize(
    "height, width, kernel_size, tile", [(16, 16, 5, 4), (13, 7, 5, 4), (9, 10, 3, 4), (8, 5, 7, 2), (3, 2, 5, 4)]
)
def test_the_written_out_input_transform_adjoint_is_the_transpose_of_the_input_transform(
    rng, data_format, height, width, kernel_size, tile
):
    """``<to_v(x), d_v> = <x, adjoint(d_v)>`` for every ``x`` and ``d_v``: the gradient the
    Winograd convolutions pull back to their input (TensorFlow's XLA steps, JAX's VJP) is
    exactly the input transform's."""
    shape = (2, height, width, 3) if data_format == "channels_last" else (2, 3, height, width)
    x = keras.ops.convert_to_tensor(rng.standard_normal(shape).astype("float32"))
    to_v, _ = _data_transforms(x, kernel_size, 4, tile, data_format)
    v = keras.ops.convert_to_numpy(to_v(x)).astype("float64")
    d_v = rng.standard_normal(v.shape).astype("float32")
    d_x = keras.ops.convert_to_numpy(_input_transform_adjoint(shape, kernel_size, tile, data_format, "float32")(d_v))
    assert d_x.shape == shape
    np.testing.assert_allclose(np.sum(v * d_v), np.sum(keras.ops.convert_to_numpy(x).astype("float64") * d_x), rtol=1e-5)
    # Each input pixel's gradient, not only the total: against the transpose applied pixel by pixel.
    basis = np.zeros(shape, "float32")
    for index in [(0, 0, 0, 0), (1, height - 1, width - 1, 2), (0, height // 2, 0, 1)]:
        index = index if data_format == "channels_last" else (index[0], index[3], index[1], index[2])
        basis[:] = 0
        basis[index] = 1
        column = keras.ops.convert_to_numpy(to_v(keras.ops.convert_to_tensor(basis)))
        np.testing.assert_allclose(d_x[index], np.sum(column * d_v), rtol=1e-4, atol=1e-4)


def test_even_kernels_are_refused():
    with pytest.raises(ValueError, match="square, odd kernel"):
        winograd_conv2d(keras.ops.zeros((1, 8, 8, 2)), keras.ops.zeros((4, 4, 2, 3)))


@pytest.mark.skipif(BACKEND != "tensorflow", reason="the gradient check uses tf.GradientTape")
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("conv", [winograd_conv2d, recomputing_winograd_conv2d])
@pytest.mark.parametrize("jit_compile", [False, True])
def test_gradients_match_the_direct_convolution(rng, conv, data_format, jit_compile):
    import tensorflow as tf

    x = tf.constant(rng.standard_normal((2, 10, 9, 3)).astype("float32"))
    kernel = tf.constant((rng.standard_normal((5, 5, 3, 4)) / 5).astype("float32"))
    weights = tf.constant(rng.standard_normal((2, 10, 9, 4)).astype("float32"))
    first = data_format == "channels_first"

    def loss_and_gradients(conv, x, kernel):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            y = conv(tf.transpose(x, (0, 3, 1, 2)) if first else x, kernel)
            loss = tf.reduce_sum((tf.transpose(y, (0, 2, 3, 1)) if first else y) * weights)
        return (loss, *tape.gradient(loss, [x, kernel]))

    def direct(x, kernel):  # NHWC only on CPU
        x = tf.transpose(x, (0, 2, 3, 1)) if first else x
        y = tf.nn.conv2d(x, kernel, 1, "SAME")
        return tf.transpose(y, (0, 3, 1, 2)) if first else y

    want = loss_and_gradients(direct, x, kernel)
    winograd = functools.partial(conv, tile=4, data_format=data_format)
    got = tf.function(loss_and_gradients, jit_compile=jit_compile)(winograd, x, kernel)
    for got, want in zip(got, want):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-4 * np.abs(want.numpy()).max())


@pytest.mark.skipif(BACKEND != "torch", reason="PyTorch's autograd.Function")
@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
@pytest.mark.parametrize("kernel_size, tile", [(3, 4), (5, 4), (7, 2)])
def test_torch_transformed_winograd_matches_the_direct_convolution_and_keeps_only_its_inputs(rng, data_format, kernel_size, tile):
    """Values and gradients (the kernel transform included, as in the models) against the
    direct convolution, on a 10x9 input (tiles padded and cropped); what the backward keeps:
    the input and the transformed kernel; and each gradient alone."""
    import torch

    first = data_format == "channels_first"
    x = torch.tensor(rng.standard_normal((2, 10, 9, 3)).astype("float32"), requires_grad=True)
    kernel = torch.tensor(
        (rng.standard_normal((kernel_size, kernel_size, 3, 4)) / kernel_size).astype("float32"), requires_grad=True
    )
    weights = torch.tensor(rng.standard_normal((2, 10, 9, 4)).astype("float32"))

    def winograd(x, kernel):
        return transformed_winograd_conv2d(x, winograd_kernel(kernel, tile), kernel_size, tile, data_format)

    def direct(x, kernel):
        x = x if first else x.permute(0, 3, 1, 2)
        y = torch.nn.functional.conv2d(x, kernel.permute(3, 2, 0, 1), padding=kernel_size // 2)
        return y if first else y.permute(0, 2, 3, 1)

    def loss_and_gradients(conv, wrt):
        y = conv(x.permute(0, 3, 1, 2) if first else x, kernel)
        loss = ((y.permute(0, 2, 3, 1) if first else y) * weights).sum()
        return [loss, *torch.autograd.grad(loss, wrt)]

    for wrt in ([x, kernel], [x], [kernel]):
        want, got = loss_and_gradients(direct, wrt), loss_and_gradients(winograd, wrt)
        for got, want in zip(got, want):
            np.testing.assert_allclose(
                got.detach().numpy(), want.detach().numpy(), rtol=1e-4, atol=1e-4 * want.abs().max().item()
            )
    u = winograd_kernel(kernel, tile)
    x_in = x.permute(0, 3, 1, 2).contiguous() if first else x
    y = transformed_winograd_conv2d(x_in, u, kernel_size, tile, data_format)
    function = y.grad_fn if first else y.grad_fn.next_functions[0][0]  # channels-last: behind the output transpose
    saved = sorted(tuple(t.shape) for t in function.saved_tensors if t is not None)  # None: no kernel given
    assert saved == sorted([(2, 3, 10, 9), tuple(u.shape)])


SUMMED_PLACEMENTS = [
    # An ST-LSTM-like gate sum: a full term, a term split over two places, a term in the middle.
    (14, [((0, 0, 14),), ((0, 0, 6), (6, 12, 2)), ((0, 6, 6),)]),
    # No term over every channel; channels 16-17 get none (zeros); term 1's second place
    # and term 2 overlap term 0 in part, so the channel ranges split inside placements.
    (18, [((0, 2, 14),), ((0, 0, 6), (6, 12, 2)), ((0, 6, 6),)]),
]


@pytest.mark.skipif(BACKEND != "torch", reason="PyTorch's autograd.Function")
@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
@pytest.mark.parametrize("out_channels, placements", SUMMED_PLACEMENTS)
def test_torch_summed_winograd_matches_the_placed_sum_of_direct_convolutions(rng, data_format, out_channels, placements):
    """Gate sums against the direct convolutions added channel by channel: values and every
    gradient; the backward keeps the inputs and the transformed kernels only."""
    import torch

    first = data_format == "channels_first"
    shapes = [(3, 14), (2, 8), (2, 6)]  # (in, out) of the three terms
    xs = [torch.tensor(rng.standard_normal((2, 10, 9, c)).astype("float32"), requires_grad=True) for c, _ in shapes]
    kernels = [torch.tensor((rng.standard_normal((5, 5, c, o)) / 5).astype("float32"), requires_grad=True) for c, o in shapes]
    weights = torch.tensor(rng.standard_normal((2, 10, 9, out_channels)).astype("float32"))
    layout = lambda x: x.permute(0, 3, 1, 2) if first else x  # the function's layout from channels-last

    def direct():
        total = torch.zeros(2, out_channels, 10, 9)
        for x, kernel, places in zip(xs, kernels, placements):
            y = torch.nn.functional.conv2d(x.permute(0, 3, 1, 2), kernel.permute(3, 2, 0, 1), padding=2)
            for source, target, width in places:
                total[:, target : target + width] += y[:, source : source + width]
        return total.permute(0, 2, 3, 1)

    def summed():
        terms = [(layout(x), winograd_kernel(k, 4), places) for x, k, places in zip(xs, kernels, placements)]
        y = summed_transformed_winograd_conv2d(terms, out_channels, 5, 4, data_format)
        return y.permute(0, 2, 3, 1) if first else y

    def summed_to_the_kernels():  # u without a gradient; each call pulls it back to the kernel
        with torch.no_grad():
            us = [winograd_kernel(k, 4) for k in kernels]
        terms = [(layout(x), u, places, k) for x, u, k, places in zip(xs, us, kernels, placements)]
        y = summed_transformed_winograd_conv2d(terms, out_channels, 5, 4, data_format)
        return y.permute(0, 2, 3, 1) if first else y

    for conv in (direct, summed, summed_to_the_kernels):
        loss = (conv() * weights).sum()
        got = [loss, *torch.autograd.grad(loss, xs + kernels)]
        if conv is direct:
            want = got
            continue
        for got_value, want_value in zip(got, want):
            scale = want_value.abs().max().item()
            np.testing.assert_allclose(got_value.detach().numpy(), want_value.detach().numpy(), rtol=1e-4, atol=1e-4 * scale)
    for wrt in (xs, kernels):  # each gradient alone
        loss = (summed_to_the_kernels() * weights).sum()
        direct_loss = (direct() * weights).sum()
        for got_value, want_value in zip(torch.autograd.grad(loss, wrt), torch.autograd.grad(direct_loss, wrt)):
            scale = want_value.abs().max().item()
            np.testing.assert_allclose(got_value.numpy(), want_value.numpy(), rtol=1e-4, atol=1e-4 * scale)
    us = [winograd_kernel(k, 4) for k in kernels]
    inputs = [layout(x).contiguous() for x in xs]
    y = summed_transformed_winograd_conv2d(list(zip(inputs, us, placements)), out_channels, 5, 4, data_format)
    assert y.stride(1 if first else 3) == 1  # channels-last memory in either layout
    function = y.grad_fn if first else y.grad_fn.next_functions[0][0]  # channels-last: behind the output transpose
    saved = sorted(tuple(t.shape) for t in function.saved_tensors if t is not None)  # None: no kernel given
    channels_first_shapes = [tuple(t.shape) if first else tuple(t.permute(0, 3, 1, 2).shape) for t in inputs]
    assert saved == sorted(channels_first_shapes + [tuple(u.shape) for u in us])  # channels-last: views of the inputs


@pytest.mark.skipif(BACKEND != "torch", reason="summed_transformed_winograd_conv2d is PyTorch's")
@pytest.mark.parametrize("places", [((0, 0, 4),), ((0, 0, 2), (4, 4, 4)), ((2, 0, 2), (0, 2, 4)), ((0, 6, 6),)])
def test_torch_summed_winograd_refuses_placements_that_do_not_cover_the_kernel(places):
    import torch

    x, u = torch.zeros(1, 2, 8, 8), torch.zeros(64, 2, 6)
    with pytest.raises(ValueError, match="must take every one of the kernel's 6 output channels"):
        summed_transformed_winograd_conv2d([(x, u, places)], 8, 5, 4, "channels_first")


@pytest.mark.skipif(BACKEND != "torch", reason="summed_transformed_winograd_conv2d is PyTorch's")
def test_torch_winograd_with_its_kernel_refuses_a_transformed_kernel_with_a_gradient():
    """With the kernel given, the gradient goes to the kernel: a ``u`` that records one would
    silently get none."""
    import torch

    kernel = torch.zeros(5, 5, 2, 6, requires_grad=True)
    with pytest.raises(ValueError, match="compute its transformed kernel u without one"):
        summed_transformed_winograd_conv2d(
            [(torch.zeros(1, 2, 8, 8), winograd_kernel(kernel, 4), ((0, 0, 6),), kernel)], 6, 5, 4, "channels_first"
        )


@pytest.mark.skipif(BACKEND == "torch", reason="the other backends")
def test_a_kernel_for_transformed_winograd_is_pytorch_only():
    kernel = np.zeros((5, 5, 2, 6), "float32")
    with pytest.raises(NotImplementedError, match="takes a kernel on the PyTorch backend only"):
        transformed_winograd_conv2d(np.zeros((1, 8, 8, 2), "float32"), winograd_kernel(kernel, 4), 5, 4, kernel=kernel)


@pytest.mark.skipif(BACKEND == "torch", reason="the other backends")
def test_summed_winograd_is_pytorch_only():
    with pytest.raises(NotImplementedError, match="PyTorch backend only"):
        summed_transformed_winograd_conv2d([], 8, 5, 4)


@pytest.mark.performance
@pytest.mark.skipif(BACKEND != "torch", reason="PREDRNN_TORCH_WINOGRAD is PyTorch's")
@pytest.mark.parametrize("cls, kwargs", WINOGRAD_LOOP_MODELS)
def test_torch_winograd_trains_like_the_direct_convolution(rng, monkeypatch, cls, kwargs):
    """``PREDRNN_TORCH_WINOGRAD=1``: the same losses (with PredRNN-V2's decoupling loss) over
    three SGD steps and the same rollout as ``0``, from the same weights; every k x k cell
    convolution of the second run was Winograd's, with a kernel transformed once per sequence
    (none transformed inside the loop but the first step's slices of fused kernels)."""
    kwargs = dict(kwargs)
    fused = kwargs.pop("fused", False)
    monkeypatch.setenv("PREDRNN_FUSED_GATES", "1" if fused else "0")
    kwargs.setdefault("kernel_size", 5)
    calls = []  # (PREDRNN_TORCH_WINOGRAD, kind, size) of each convolution in the loop
    flag = lambda: os.environ["PREDRNN_TORCH_WINOGRAD"]
    winograd, transform = loops.transformed_winograd_conv2d, loops.winograd_kernel
    summed = loops.summed_transformed_winograd_conv2d
    monkeypatch.setattr(
        loops,
        "transformed_winograd_conv2d",
        lambda *args, **kw: calls.append((flag(), "winograd", args[2])) or winograd(*args, **kw),
    )
    monkeypatch.setattr(
        loops, "summed_transformed_winograd_conv2d", lambda *args: calls.append((flag(), "summed", args[2])) or summed(*args)
    )
    monkeypatch.setattr(loops, "winograd_kernel", lambda *args: calls.append((flag(), "transform", None)) or transform(*args))
    tables, make_table = [], loops.winograd_kernels
    monkeypatch.setattr(loops, "winograd_kernels", lambda *args, **kw: tables.append(make_table(*args, **kw)) or tables[-1])
    make = lambda: cls(patch_size=2, **kwargs)
    models = _train_with_the_switch_off_and_on(rng, monkeypatch, "PREDRNN_TORCH_WINOGRAD", make)
    assert not [call for call in calls if call[0] == "0"]
    assert {size for _, kind, size in calls if kind != "transform"} == {kwargs["kernel_size"]}
    # Without layer norm or fused gates the cells' gate sums are one call each, no gate
    # convolution runs on its own: ST-LSTM's conv_o is the only separate one.
    sums = kwargs.get("use_layer_norm") is not True and not fused
    assert any(kind == "summed" for _, kind, _ in calls) is sums
    if sums:
        separate = sum(1 for _, kind, _ in calls if kind == "winograd")
        assert separate == (0 if cls is ConvLSTM else sum(1 for _, kind, _ in calls if kind == "summed"))
    # One table per sequence: every k x k kernel variable, and the fused kernels (2 per cell).
    # Nothing else is transformed but, with fused gates, the first step's slices of the fused
    # kernels for its zero states: layer 1's hidden state and memory, layer 2's hidden state
    # (its memory comes from layer 1 in the same step).
    kernels = sum(1 for cell in models[1].cells for w in cell.weights if len(w.shape) == 4 and w.shape[0] > 1)
    assert tables and {len(table) for table in tables} == {kernels + (2 * len(kwargs["filters"]) if fused else 0)}
    transforms = sum(1 for call in calls if call[1] == "transform")
    assert transforms == len(tables) * (len(tables[0]) + (3 if fused else 0))
    # The table's kernels record no gradient: every call passes it to the kernel itself.
    assert not any(u.requires_grad for table in tables for u in table.values())


def _train_with_the_switch_off_and_on(rng, monkeypatch, variable, make_model):
    """Three SGD steps and a rollout from one seed with ``variable`` at 0 and at 1: asserts the
    same losses and rollouts (up to float rounding) and that training lowers the loss.
    Returns the two models."""
    frames = rng.random((2, 6, 12, 12, 2)).astype("float32")
    inputs = {"frames": frames, "teacher_forcing_mask": (rng.random((2, 4)) < 0.5).astype("float32")}
    runs, models = [], []
    for flag in ("0", "1"):
        monkeypatch.setenv(variable, flag)
        keras.utils.set_random_seed(5)
        model = make_model()
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        losses = [float(np.asarray(model.train_on_batch(inputs, frames[:, 1:])).reshape(-1)[0]) for _ in range(3)]
        runs.append((losses, model.rollout(frames[:, :3], 3)))
        models.append(model)
    (want_losses, want_rollout), (losses, rollout) = runs
    np.testing.assert_allclose(losses, want_losses, rtol=1e-4)
    np.testing.assert_allclose(rollout, want_rollout, atol=1e-4)
    assert losses[-1] < losses[0]
    return models


def test_torch_winograd_rule(monkeypatch):
    """``auto``: 5x5 float32 kernels with at least 128 output channels (PyTorch on the CPU),
    and without gradients also those with at least 64 input and output channels; ``1``:
    every 3x3-7x7 float32 kernel; ``0``: none; the other backends: never."""
    torch = BACKEND == "torch"
    monkeypatch.delenv("PREDRNN_TORCH_WINOGRAD", raising=False)
    assert torch_winograd() is torch
    assert torch_winograd((5, 5, 64, 448)) is torch
    assert torch_winograd((5, 5, 16, 128)) is torch
    assert torch_winograd((5, 5, 128, 64)) is False  # narrow outputs measured slower
    assert torch_winograd((5, 5, 128, 64), gradients=False) is torch  # but faster forward only
    assert torch_winograd((5, 5, 64, 64), gradients=False) is torch
    assert torch_winograd((5, 5, 32, 64), gradients=False) is False
    assert torch_winograd((5, 5, 128, 32), gradients=False) is False
    assert torch_winograd((5, 5, 16, 128), gradients=False) is torch
    assert torch_winograd((3, 3, 64, 448)) is False
    assert torch_winograd((3, 3, 128, 64), gradients=False) is False
    assert torch_winograd((7, 7, 64, 448)) is False  # F(2x2, 7x7) measured slower
    assert torch_winograd((5, 5, 64, 448), "bfloat16") is False
    assert torch_winograd((5, 5, 128, 64), "bfloat16", gradients=False) is False
    monkeypatch.setenv("PREDRNN_TORCH_WINOGRAD", "1")
    assert torch_winograd((3, 3, 4, 4)) is torch
    assert torch_winograd((9, 9, 64, 448)) is False  # no transform defined
    assert torch_winograd((1, 1, 64, 448)) is False
    monkeypatch.setenv("PREDRNN_TORCH_WINOGRAD", "0")
    assert torch_winograd() is False
    assert torch_winograd((5, 5, 64, 448)) is False
    assert torch_winograd((5, 5, 128, 64), gradients=False) is False


@pytest.mark.performance
@pytest.mark.skipif(BACKEND != "torch", reason="PREDRNN_TORCH_WINOGRAD is PyTorch's")
def test_torch_rollouts_run_the_narrow_output_convolutions_as_winograd(monkeypatch):
    """``auto``: a 64-filter ST-LSTM's conv_o (128 -> 64) is Winograd's without gradients
    only; the rollout equals the one with every convolution direct."""
    import torch

    monkeypatch.delenv("PREDRNN_TORCH_WINOGRAD", raising=False)
    tables, make_table = [], loops.winograd_kernels
    monkeypatch.setattr(loops, "winograd_kernels", lambda *a, **kw: tables.append(make_table(*a, **kw)) or tables[-1])
    keras.utils.set_random_seed(3)
    model = PredRNN(filters=(64,), kernel_size=5, patch_size=2)
    frames = np.random.default_rng(0).random((2, 4, 8, 8, 1)).astype("float32")
    rollout = model.rollout(frames, 2)
    kernel_o = id(model.cells[0].kernel_o)
    assert tables and all(kernel_o in table for table in tables)
    tables.clear()
    model({"frames": frames, "teacher_forcing_mask": np.ones((2, 2), "float32")})  # autograd records
    assert torch.is_grad_enabled() and tables and not any(kernel_o in table for table in tables)
    monkeypatch.setenv("PREDRNN_TORCH_WINOGRAD", "0")
    np.testing.assert_allclose(model.rollout(frames, 2), rollout, atol=1e-5)


def test_winograd_applies_to_float32_3x3_to_7x7_kernels():
    assert [winograd_applies((k, k, 2, 2), "float32") for k in (1, 3, 5, 7, 9)] == [None, 4, 4, 2, None]
    assert winograd_applies((5, 3, 2, 2), "float32") is None
    assert winograd_applies((5, 5, 2, 2), "bfloat16") is None


@pytest.mark.skipif(BACKEND != "torch", reason="PREDRNN_TORCH_WINOGRAD is read on PyTorch only")
def test_an_unknown_torch_winograd_setting_is_refused(monkeypatch):
    monkeypatch.setenv("PREDRNN_TORCH_WINOGRAD", "yes")
    with pytest.raises(ConfigError, match="PREDRNN_TORCH_WINOGRAD must be 0, 1 or auto"):
        torch_winograd((5, 5, 64, 448))


@pytest.mark.performance
@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's XLA cells: compiled tf.function cell steps")
@pytest.mark.parametrize(
    "cls, states, kept_channels",
    [
        # the gate sum [i f g | i' f' g' | o] (conv_x + conv_h + conv_m) and conv_o; conv_last
        # (1x1) is recomputed
        (SpatioTemporalLSTMCell, 3, (7, 1)),
        (ConvLSTMCell, 2, (4,)),  # the gate sum conv_x + conv_h
    ],
)
def test_xla_cell_steps_keep_only_the_gate_sums_and_convolution_outputs_for_the_gradient(
    rng, monkeypatch, cls, states, kept_channels
):
    """Between the compiled forward and backward step pass the gate sums and the other
    k x k convolutions' outputs, nothing else.

    TensorFlow's own gradient of one compiled step kept every gate activation, and returned
    the step's inputs and kernels again (XLA copies them), per time step: 3x what was kept
    with each convolution's output, at PredRNN's shapes. A gate sum is all the backward step
    needs of its terms, and the backward step recomputes 1x1 convolutions: an ST-LSTM step
    keeps 8 filters' channels instead of the 16 of its separate convolutions (7 + 4 + 3 + 1
    + 1), a ConvLSTM step 4 instead of 8.
    """
    import tensorflow as tf

    monkeypatch.setenv("PREDRNN_XLA_CELLS", "1")
    cell = cls(16, 5)
    cell.build((2, 12, 12, 4))
    x = tf.constant(rng.standard_normal((2, 12, 12, 4)).astype("float32"))
    h = tf.constant(rng.standard_normal((2, 12, 12, 16)).astype("float32"))

    @tf.function
    def gradients(x, h):
        with tf.GradientTape() as tape:
            tape.watch(h)
            loss = tf.reduce_sum(run_step(cell, x, (h,) * states)[0])
        return tape.gradient(loss, [h, *cell.trainable_weights])

    graph = gradients.get_concrete_function(x, h).graph
    calls = [op for op in graph.get_operations() if op.type in ("PartitionedCall", "StatefulPartitionedCall")]
    assert len(calls) == 2, calls
    forward, backward = sorted(calls, key=lambda op: len(op.inputs))
    kept = [tuple(t.shape) for t in backward.inputs if t.op is forward]
    assert sorted(kept) == sorted((2, 12, 12, 16 * c) for c in kept_channels), kept


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's XLA cells: compiled tf.function cell steps")
@pytest.mark.parametrize(
    "cls, kwargs, fused, zero_states",
    [
        (SpatioTemporalLSTMCell, dict(use_layer_norm=True), "0", False),
        (SpatioTemporalLSTMCell, dict(return_increments=True), "0", True),
        (SpatioTemporalLSTMCell, dict(), "1", False),
        (ConvLSTMCell, dict(), "1", True),
    ],
)
def test_xla_cell_step_gradients_match_the_step(rng, monkeypatch, cls, kwargs, fused, zero_states):
    """Outputs and gradients (inputs, states, every weight) of the two compiled halves equal ``step``'s."""
    import tensorflow as tf

    monkeypatch.setenv("PREDRNN_FUSED_GATES", fused)
    cell = cls(8, 5, **kwargs)
    cell.build((2, 10, 9, 3))
    shape = (2, 10, 9, 8)
    x = tf.constant(rng.standard_normal((2, 10, 9, 3)).astype("float32"))
    count = 3 if cls is SpatioTemporalLSTMCell else 2
    # Zero states (the first time step) are None: their convolutions are skipped.
    states = [None if zero_states else tf.constant(rng.standard_normal(shape).astype("float32")) for _ in range(count)]
    outputs = 5 if kwargs.get("return_increments") else count
    # The last output is left out of the loss: its gradient reaches the step as None.
    loss_weights = [tf.constant(rng.standard_normal(shape).astype("float32")) for _ in range(outputs - 1)]
    sources = [x, *(s for s in states if s is not None), *cell.trainable_weights]

    def loss_and_gradients(step):
        with tf.GradientTape() as tape:
            tape.watch(sources[: 1 + sum(s is not None for s in states)])
            outputs = step(x, tuple(states))
            loss = sum(tf.reduce_sum(y * w) for y, w in zip(outputs, loss_weights))
        return [loss, *tape.gradient(loss, sources)]

    want = loss_and_gradients(_plain(cell))
    monkeypatch.setenv("PREDRNN_XLA_CELLS", "1")
    got = tf.function(loss_and_gradients)(_compiled(cell))
    for got, want in zip(got, want):
        if want is None:  # a zero state's kernel: no gradient; zeros from the passed-on weights
            assert got is None or not np.any(got.numpy())
        else:
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-4 * np.abs(want.numpy()).max())


@pytest.mark.performance
@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's XLA cells: compiled tf.function cell steps")
def test_cells_of_one_configuration_share_their_compiled_steps_not_their_weights(rng, monkeypatch):
    """A model's layers 2-n (and the models of seeded runs) compile once: the weights are arguments.

    Each cell still steps with its own weights (outputs and weight gradients equal its
    ``step``'s); a cell of another configuration or other weight shapes compiles its own.
    """
    import tensorflow as tf

    monkeypatch.setenv("PREDRNN_XLA_CELLS", "1")
    cells = [SpatioTemporalLSTMCell(8, 3) for _ in range(2)] + [
        SpatioTemporalLSTMCell(8, 3, forget_bias=0.0),  # another configuration
        SpatioTemporalLSTMCell(8, 3),  # other input channels: other weight shapes
    ]
    for cell, channels in zip(cells, (8, 8, 8, 5)):
        cell.build((2, 6, 6, channels))
    assert not np.allclose(cells[0].kernel_x.numpy(), cells[1].kernel_x.numpy())
    h = tf.constant(rng.standard_normal((2, 6, 6, 8)).astype("float32"))

    def loss_and_gradients(cell, step):
        x = h[..., : cell.kernel_x.shape[2]]
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(step(x, (h, h, h))[0] ** 2)
        return [loss, *tape.gradient(loss, cell.trainable_weights)]

    for cell in cells:
        want = loss_and_gradients(cell, _plain(cell))
        got = tf.function(loss_and_gradients)(cell, _compiled(cell))
        for got, want in zip(got, want):
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-4 * np.abs(want.numpy()).max())
    shared = [vars(cell)["_xla_steps"]["channels_last"] for cell in cells]
    assert shared[0] is shared[1]
    assert len({id(s) for s in shared}) == 3


@pytest.mark.performance
@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's XLA cells: compiled tf.function cell steps")
def test_xla_cell_steps_pass_their_weights_on_and_sum_their_gradients_one_step_at_a_time(rng, monkeypatch):
    """In a traced loop each weight is read once and passed from step to step, so each
    backward step adds its weight gradients to the later steps' sum. Read by every step,
    TensorFlow's gradient summed the steps' weight gradients at the end, one ``AddN`` of T
    tensors per weight, holding them all (19 x 24 MB at 4x64/batch 8). The gradients are
    those of the loop of plain steps."""
    import tensorflow as tf

    monkeypatch.setenv("PREDRNN_XLA_CELLS", "1")
    cell = SpatioTemporalLSTMCell(8, 5)
    cell.build((2, 6, 6, 3))
    x = tf.constant(rng.standard_normal((2, 6, 6, 3)).astype("float32"))
    h = tf.constant(rng.standard_normal((2, 6, 6, 8)).astype("float32"))

    def loss_and_gradients(step, x, h):
        with tf.GradientTape() as tape:
            tape.watch(h)
            states = (None, None, None)
            for t in range(5):
                states = step(x + 0.1 * t, states)
            loss = tf.reduce_sum(states[0] * h)
        return [loss, *tape.gradient(loss, [h, *cell.trainable_weights])]

    traced = tf.function(functools.partial(loss_and_gradients, _compiled(cell)))
    for got, want in zip(traced(x, h), loss_and_gradients(_plain(cell), x, h)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-4 * np.abs(want.numpy()).max())
    operations = traced.get_concrete_function(x, h).graph.get_operations()
    assert sum(op.type == "ReadVariableOp" for op in operations) == len(cell.weights)
    assert not [op for op in operations if op.type == "AddN" and len(op.inputs) > 2]


@pytest.mark.performance
@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's XLA cells: compiled tf.function cell steps")
def test_xla_cell_steps_transform_their_kernels_once_per_sequence(rng, monkeypatch):
    """The forward steps of a traced loop convolve with Winograd kernels transformed once,
    with the weights they pass on: one transform per 3x3-7x7 kernel (conv_x, conv_h, conv_m,
    conv_o; not the 1x1 conv_last), not one per step. Eagerly every step transforms its own."""
    import tensorflow as tf

    import predrnn.acceleration.tensorflow_steps as tensorflow_steps

    monkeypatch.setenv("PREDRNN_XLA_CELLS", "1")
    transformed = []
    original = tensorflow_steps.winograd_kernel
    monkeypatch.setattr(
        tensorflow_steps, "winograd_kernel", lambda kernel, tile: transformed.append(kernel.shape) or original(kernel, tile)
    )
    cell = SpatioTemporalLSTMCell(8, 5)
    cell.build((2, 6, 6, 3))
    x = tf.constant(rng.standard_normal((2, 6, 6, 3)).astype("float32"))

    def loop(step):
        states = (None, None, None)
        for t in range(5):
            states = step(x + 0.1 * t, states)
        return states[0]

    got = tf.function(lambda: loop(_compiled(cell)))()
    assert sorted(tuple(shape) for shape in transformed) == sorted(
        tuple(w.shape) for w in (cell.kernel_x, cell.kernel_h, cell.kernel_m, cell.kernel_o)
    )
    np.testing.assert_allclose(got.numpy(), loop(_plain(cell)).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="the gradient check uses tf.GradientTape")
def test_a_kernel_transformed_beforehand_gives_the_same_values_and_gradients(rng):
    """``recomputing_winograd_conv2d(..., u=winograd_kernel(kernel))``: the values and the
    gradients of ``x`` and ``kernel`` are those without ``u``; ``u`` gets none."""
    import tensorflow as tf

    x = tf.constant(rng.standard_normal((2, 10, 9, 3)).astype("float32"))
    kernel = tf.constant((rng.standard_normal((5, 5, 3, 4)) / 5).astype("float32"))
    weights = tf.constant(rng.standard_normal((2, 10, 9, 4)).astype("float32"))
    u = winograd_kernel(kernel, 4)

    def loss_and_gradients(u):
        sources = [x, kernel] + ([] if u is None else [u])
        with tf.GradientTape() as tape:
            tape.watch(sources)
            loss = tf.reduce_sum(recomputing_winograd_conv2d(x, kernel, tile=4, u=u) * weights)
        return loss, *tape.gradient(loss, sources)

    loss, d_x, d_kernel, d_u = loss_and_gradients(u)
    want_loss, want_x, want_kernel = loss_and_gradients(None)
    assert d_u is None
    for got, want in ((loss, want_loss), (d_x, want_x), (d_kernel, want_kernel)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5 * np.abs(want.numpy()).max())


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's XLA cells: compiled tf.function cell steps")
def test_xla_cell_steps_use_the_weights_of_their_stateless_scope(rng, monkeypatch):
    """Weights passed from step to step are the ones of the scope they came from: a second
    ``keras.StatelessScope`` in the same graph (as in ``stateless_call``) steps with its own."""
    import tensorflow as tf

    monkeypatch.setenv("PREDRNN_XLA_CELLS", "1")
    cell = SpatioTemporalLSTMCell(8, 5)
    cell.build((2, 6, 6, 3))
    x = tf.constant(rng.standard_normal((2, 6, 6, 3)).astype("float32"))
    h = tf.constant(rng.standard_normal((2, 6, 6, 8)).astype("float32"))
    mappings = [[tf.constant(rng.standard_normal(w.shape).astype("float32") * 0.1) for w in cell.weights] for _ in range(2)]

    def loops(step):
        outputs = []
        for values in mappings:
            with keras.StatelessScope(state_mapping=list(zip(cell.weights, values))):
                states = (h, h, h)
                for _ in range(2):
                    states = step(x, states)
            outputs.append(states[0])
        return outputs

    got = tf.function(lambda: loops(_compiled(cell)))()
    want = loops(_plain(cell))
    assert not np.allclose(want[0].numpy(), want[1].numpy())
    for got, want in zip(got, want):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.performance
@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's XLA cells: compiled tf.function cell steps")
def test_seeded_runs_with_xla_cells_repeat_exactly_and_compile_once(rng, monkeypatch):
    """Two runs from one seed: the same losses and rollouts, bit for bit. The second model's
    cells reuse the first's compiled steps; here all three layers share one (8 filters, and
    2x2 patches of 2 channels: 8 input channels too)."""
    monkeypatch.setenv("PREDRNN_XLA_CELLS", "1")
    frames = rng.random((2, 6, 12, 12, 2)).astype("float32")
    inputs = {"frames": frames, "teacher_forcing_mask": (rng.random((2, 4)) < 0.5).astype("float32")}
    runs, models = [], []
    for _ in range(2):
        keras.utils.set_random_seed(5)
        model = PredRNN(filters=(8, 8, 8), kernel_size=5, patch_size=2)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        losses = [float(np.asarray(model.train_on_batch(inputs, frames[:, 1:])).reshape(-1)[0]) for _ in range(2)]
        runs.append((losses, model.rollout(frames[:, :3], 3)))
        models.append(model)
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    compiled = {id(vars(cell)["_xla_steps"]["channels_last"]) for model in models for cell in model.cells}
    assert len(compiled) == 1


@pytest.mark.performance
@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's XLA cells: compiled tf.function cell steps")
def test_the_first_step_runs_the_later_steps_compiled_xla_cell_functions(rng, monkeypatch):
    """The first time step's zero states go into the compiled cell steps as zeros: one trace
    (and compilation) of the forward and of the backward function serves every step."""
    monkeypatch.setenv("PREDRNN_XLA_CELLS", "1")
    frames = rng.random((2, 5, 6, 6, 1)).astype("float32")
    model = PredRNN(filters=(7, 7), kernel_size=5, patch_size=2)  # shares its steps with no other test's
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.train_on_batch({"frames": frames, "teacher_forcing_mask": np.ones((2, 3), "float32")}, frames[:, 1:])
    functions = {id(f): f for cell in model.cells for f in vars(cell)["_xla_steps"]["channels_last"].functions}
    assert len(functions) == 4  # layer 1 (4 input channels) and layer 2 (7), forward and backward
    assert [f.experimental_get_tracing_count() for f in functions.values()] == [1, 1, 1, 1]


def test_a_cell_called_on_its_own_is_unaffected_by_xla_cells(rng, monkeypatch):
    """Only the models' time loop compiles steps; a cell called eagerly under a tape runs as
    usual (its Winograd convolutions once ran uncompiled there, and failed under a tape)."""
    cell = SpatioTemporalLSTMCell(4, 3, use_layer_norm=True)
    x = keras.ops.convert_to_tensor(rng.standard_normal((2, 6, 6, 3)).astype("float32"))
    h = keras.ops.convert_to_tensor(rng.standard_normal((2, 6, 6, 4)).astype("float32"))
    runs = []
    for flag in ("0", "1"):
        monkeypatch.setenv("PREDRNN_XLA_CELLS", flag)
        if BACKEND == "tensorflow":
            import tensorflow as tf

            with tf.GradientTape() as tape:
                loss = keras.ops.sum(cell(x, (h, h, h))[0] ** 2)
            runs.append([loss, *tape.gradient(loss, cell.trainable_weights)])
        else:
            runs.append([keras.ops.sum(cell(x, (h, h, h))[0] ** 2)])
    for got, want in zip(*runs):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want))


def test_xla_cells_are_on_by_default_for_wide_cells_on_tensorflow_and_3x3_to_7x7_cells_on_jax(monkeypatch):
    """``auto`` (the default): on TensorFlow cells of >= 64 filters with 5x5-7x7 kernels, no GPU
    (measured faster there; the small quickstart model, 32 filters and 3x3, was slower); on JAX
    every 3x3-7x7 cell on the CPU, and the whole model or none of it (the scan is the model's)."""
    monkeypatch.delenv("PREDRNN_XLA_CELLS", raising=False)
    tensorflow, jax = BACKEND == "tensorflow", BACKEND == "jax"  # this machine has no GPU
    cells = [(64, 5), (128, 7), (63, 5), (32, 3), (128, 9), (128, 1)]
    expected = {"tensorflow": [True, True, False, False, False, False], "jax": [True, True, True, True, False, False]}
    assert [xla_cells(*cell) for cell in cells] == expected.get(BACKEND, [False] * len(cells))
    assert not xla_cells()
    assert not xla_cells(64, 5, "bfloat16")
    assert model_xla_cells((16, 64), 5) == (tensorflow or jax)  # TensorFlow: any layer; JAX: every layer
    assert model_xla_cells((64, 64), 9) is False
    monkeypatch.setenv("PREDRNN_XLA_CELLS", "auto")
    assert xla_cells(64, 5) == (tensorflow or jax)
    monkeypatch.setenv("PREDRNN_XLA_CELLS", "1")
    assert xla_cells(8, 3) == xla_cells() == (tensorflow or jax)
    monkeypatch.setenv("PREDRNN_XLA_CELLS", "0")
    assert not xla_cells(128, 5)


@pytest.mark.skipif(BACKEND == "torch", reason="PREDRNN_XLA_CELLS is ignored on PyTorch")
def test_an_unknown_xla_cells_setting_is_refused(monkeypatch):
    monkeypatch.setenv("PREDRNN_XLA_CELLS", "yes")
    with pytest.raises(ConfigError, match="PREDRNN_XLA_CELLS must be 0, 1 or auto"):
        xla_cells(64, 5)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's XLA cells: compiled tf.function cell steps")
def test_xla_cells_leave_mixed_precision_steps_to_the_default(rng, monkeypatch):
    """Under mixed precision the cells run uncompiled: the XLA halves are float32-only.

    The backward half is traced when the gradient is taken, outside the model's autocast
    scope, where it read float32 weights against bfloat16 activations (a dtype error).
    """
    monkeypatch.setenv("PREDRNN_XLA_CELLS", "1")
    frames = rng.random((2, 4, 8, 8, 1)).astype("float32")
    inputs = {"frames": frames, "teacher_forcing_mask": np.ones((2, 2), "float32")}
    model = PredRNN(filters=(4,), kernel_size=3, patch_size=2, dtype="mixed_bfloat16")
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    loss = float(np.asarray(model.train_on_batch(inputs, frames[:, 1:])).reshape(-1)[0])
    assert np.isfinite(loss)
    assert not vars(model.cells[0]).get("_xla_steps")


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's XLA cells: compiled tf.function cell steps")
@pytest.mark.parametrize(
    "cls, kwargs",
    # One PredRNN layer: each cell step compiles on its own (twice: the zero initial states
    # and the rest), so a second layer adds XLA compile time, not coverage; ConvLSTM keeps two.
    [
        (PredRNN, dict(filters=(4,), decoupling_weight=0.1, use_layer_norm=True)),
        (ConvLSTM, dict(filters=(4, 4))),
        (PredRNN, dict(filters=(4,), remat=True)),  # keras.remat recomputes the compiled steps
    ],
)
def test_xla_cells_train_like_the_default(rng, monkeypatch, cls, kwargs):
    """The same losses over three training steps, and the same rollout, from the same weights."""
    make = lambda: cls(kernel_size=5, patch_size=2, **kwargs)
    models = _train_with_the_switch_off_and_on(rng, monkeypatch, "PREDRNN_XLA_CELLS", make)
    for model, flag in zip(models, ("0", "1")):
        compiled = [bool(vars(cell).get("_xla_steps")) for cell in model.cells]
        assert compiled == [flag == "1"] * len(kwargs["filters"])


@pytest.mark.skipif(BACKEND != "jax", reason="jax.custom_vjp")
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("kernel_size, tile", [(3, 4), (5, 4), (7, 2)])
def test_transformed_winograd_matches_the_direct_convolution_and_keeps_only_its_inputs(rng, data_format, kernel_size, tile):
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(rng.standard_normal((2, 10, 9, 3)).astype("float32"))
    kernel = jnp.asarray((rng.standard_normal((kernel_size, kernel_size, 3, 4)) / kernel_size).astype("float32"))
    weights = jnp.asarray(rng.standard_normal((2, 10, 9, 4)).astype("float32"))
    first = data_format == "channels_first"

    def loss(conv, x, kernel):
        y = conv(jnp.transpose(x, (0, 3, 1, 2)) if first else x, kernel)
        return jnp.sum((jnp.transpose(y, (0, 2, 3, 1)) if first else y) * weights)

    def direct(x, kernel):
        return keras.ops.conv(x, kernel, padding="same", data_format=data_format)

    def winograd(x, kernel):  # the kernel transform is differentiated too, as in the models
        return transformed_winograd_conv2d(x, winograd_kernel(kernel, tile), kernel_size, tile, data_format)

    want = jax.value_and_grad(functools.partial(loss, direct), argnums=(0, 1))(x, kernel)
    got = jax.jit(jax.value_and_grad(functools.partial(loss, winograd), argnums=(0, 1)))(x, kernel)
    for got, want in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4 * np.abs(np.asarray(want)).max())
    # What its gradient keeps: the input and the transformed kernel, not the (n / tile)^2
    # times larger transformed input.
    u = winograd_kernel(kernel, tile)
    x_in = jnp.transpose(x, (0, 3, 1, 2)) if first else x
    _, pullback = jax.vjp(lambda x, u: transformed_winograd_conv2d(x, u, kernel_size, tile, data_format), x_in, u)
    assert sorted(leaf.shape for leaf in jax.tree_util.tree_leaves(pullback)) == sorted([x_in.shape, u.shape])


@pytest.mark.performance
@pytest.mark.skipif(BACKEND != "jax", reason="the scanned time loop is JAX's XLA cells")
@pytest.mark.parametrize("cls, kwargs", WINOGRAD_LOOP_MODELS)
def test_the_scanned_time_loop_trains_like_the_unrolled_one(rng, monkeypatch, cls, kwargs):
    """JAX's XLA cells: the same losses (with PredRNN-V2's decoupling loss) over three training
    steps and the same rollout as the unrolled loop with direct convolutions, from the same
    weights; the scanned model's cell convolutions all ran as Winograd's."""
    import predrnn.models.video_predictor as video_predictor

    kwargs = dict(kwargs)
    monkeypatch.setenv("PREDRNN_FUSED_GATES", "1" if kwargs.pop("fused", False) else "0")
    kwargs.setdefault("kernel_size", 5)
    calls = []  # (PREDRNN_XLA_CELLS, kind, tile or kernel size) of each convolution traced in the loop
    flag = lambda: os.environ["PREDRNN_XLA_CELLS"]
    winograd = loops.transformed_winograd_conv2d
    monkeypatch.setattr(
        loops,
        "transformed_winograd_conv2d",
        lambda *args, **kw: calls.append((flag(), "winograd", args[3])) or winograd(*args, **kw),
    )
    direct = lambda x, k, *args: calls.append((flag(), "direct", k.shape[0])) or conv2d(x, k, *args)
    monkeypatch.setattr(video_predictor, "conv2d", direct)  # the head
    monkeypatch.setattr(loops, "conv2d", direct)  # the loop's cell convolutions that stay direct
    make = lambda: cls(patch_size=2, **kwargs)
    _train_with_the_switch_off_and_on(rng, monkeypatch, "PREDRNN_XLA_CELLS", make)
    tile = 4 if kwargs["kernel_size"] <= 5 else 2
    scanned = {(kind, size) for setting, kind, size in calls if setting == "1"}
    assert scanned == {("winograd", tile), ("direct", 1)}  # 1x1 (the head, conv_last): a matmul
    assert {(kind, size) for setting, kind, size in calls if setting == "0"} == {("direct", 1)}  # only the head


@pytest.mark.skipif(BACKEND != "jax", reason="the scanned time loop is JAX's XLA cells")
def test_models_outside_the_rule_keep_the_unrolled_loop_on_jax(rng, monkeypatch):
    """A 9x9 kernel (no Winograd transform; XLA:CPU runs direct convolutions in a loop several
    times slower) and mixed precision (float32 Winograd only) keep the unrolled loop."""
    monkeypatch.delenv("PREDRNN_XLA_CELLS", raising=False)
    scans = lambda model: model_xla_cells(model.filters, model.kernel_size, model.compute_dtype)
    assert scans(PredRNN(filters=(64,), kernel_size=5))
    assert not scans(PredRNN(filters=(64,), kernel_size=9))
    model = PredRNN(filters=(4,), kernel_size=3, patch_size=2, dtype="mixed_bfloat16")
    assert not scans(model)
    frames = rng.random((2, 4, 8, 8, 1)).astype("float32")
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    loss = model.train_on_batch({"frames": frames, "teacher_forcing_mask": np.ones((2, 2), "float32")}, frames[:, 1:])
    assert np.isfinite(np.asarray(loss)).all()
    monkeypatch.setenv("PREDRNN_XLA_CELLS", "0")
    assert not scans(PredRNN(filters=(64,), kernel_size=5))


@pytest.mark.performance
@pytest.mark.skipif(BACKEND != "jax", reason="the scanned time loop is JAX's XLA cells")
def test_eager_jax_calls_keep_the_unrolled_loop(rng, monkeypatch):
    """Only traced calls scan (eager JAX dispatches and compiles each small Winograd operation
    on its own): an eager call and a jitted one of the same model agree up to rounding."""
    import jax

    monkeypatch.setenv("PREDRNN_XLA_CELLS", "1")
    calls, winograd = [], loops.transformed_winograd_conv2d
    monkeypatch.setattr(loops, "transformed_winograd_conv2d", lambda *args, **kw: calls.append(1) or winograd(*args, **kw))
    model = PredRNN(filters=(4,), kernel_size=3, patch_size=2)
    inputs = {"frames": rng.random((2, 5, 8, 8, 1)).astype("float32"), "teacher_forcing_mask": np.ones((2, 3), "float32")}
    eager = np.asarray(model(inputs))
    assert not calls
    values = [v.value for v in model.variables]

    def call(values, inputs):
        with keras.StatelessScope(state_mapping=list(zip(model.variables, values))):
            return model(inputs)

    traced = np.asarray(jax.jit(call)(values, inputs))
    assert calls
    np.testing.assert_allclose(traced, eager, atol=1e-5)
