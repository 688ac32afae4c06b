"""An independent NumPy implementation of the equations of docs/design.md, for the tests.

Written from the equations, not from the library: explicit padding and im2col
convolution, explicit patch reshapes, float64 throughout. Weights are passed as a
dict of NumPy arrays in the library's channels-last naming (see ``model_weights``).
"""

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def conv_same(x, kernel):
    """x (B, H, W, Cin), kernel (k, k, Cin, Cout): stride 1, zero 'same' padding, no bias."""
    k = kernel.shape[0]
    pad = k // 2
    b, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = np.zeros((b, h, w, kernel.shape[3]))
    for dy in range(k):
        for dx in range(k):
            out += np.einsum("bhwc,cd->bhwd", padded[:, dy : dy + h, dx : dx + w, :], kernel[dy, dx])
    return out


def layer_norm(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    var = ((x - mean) ** 2).mean(axis=(1, 2, 3), keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def patchify(frames, p):
    b, t, h, w, c = frames.shape
    out = np.zeros((b, t, h // p, w // p, p * p * c))
    for row in range(p):
        for col in range(p):
            for ch in range(c):
                out[..., (row * p + col) * c + ch] = frames[:, :, row::p, col::p, ch]
    return out


def unpatchify(patches, p, c):
    b, t, hp, wp, _ = patches.shape
    out = np.zeros((b, t, hp * p, wp * p, c))
    for row in range(p):
        for col in range(p):
            for ch in range(c):
                out[:, :, row::p, col::p, ch] = patches[..., (row * p + col) * c + ch]
    return out


def _maybe_norm(y, weights, prefix, name):
    gamma = weights.get(f"{prefix}norm_{name}_gamma")
    if gamma is None:
        return y
    return layer_norm(y, gamma, weights[f"{prefix}norm_{name}_beta"])


def st_lstm_step(x, h, c, m, weights, prefix="", forget_bias=1.0):
    """One ST-LSTM step; returns h, c, m, delta_c, delta_m."""
    n = h.shape[-1]
    xs = _maybe_norm(conv_same(x, weights[prefix + "kernel_x"]), weights, prefix, "x")
    hs = _maybe_norm(conv_same(h, weights[prefix + "kernel_h"]), weights, prefix, "h")
    ms = _maybe_norm(conv_same(m, weights[prefix + "kernel_m"]), weights, prefix, "m")
    i_x, f_x, g_x, ip_x, fp_x, gp_x, o_x = (xs[..., j * n : (j + 1) * n] for j in range(7))
    i_h, f_h, g_h, o_h = (hs[..., j * n : (j + 1) * n] for j in range(4))
    i_m, f_m, g_m = (ms[..., j * n : (j + 1) * n] for j in range(3))
    i = sigmoid(i_x + i_h)
    f = sigmoid(f_x + f_h + forget_bias)
    g = np.tanh(g_x + g_h)
    delta_c = i * g
    c_new = f * c + delta_c
    ip = sigmoid(ip_x + i_m)
    fp = sigmoid(fp_x + f_m + forget_bias)
    gp = np.tanh(gp_x + g_m)
    delta_m = ip * gp
    m_new = fp * m + delta_m
    mem = np.concatenate([c_new, m_new], axis=-1)
    o = sigmoid(o_x + o_h + _maybe_norm(conv_same(mem, weights[prefix + "kernel_o"]), weights, prefix, "o"))
    h_new = o * np.tanh(conv_same(mem, weights[prefix + "kernel_last"]))
    return h_new, c_new, m_new, delta_c, delta_m


def conv_lstm_step(x, h, c, weights, prefix="", forget_bias=1.0):
    n = h.shape[-1]
    gates = _maybe_norm(conv_same(x, weights[prefix + "kernel_x"]), weights, prefix, "x") + _maybe_norm(
        conv_same(h, weights[prefix + "kernel_h"]), weights, prefix, "h"
    )
    i, f, g, o = (gates[..., j * n : (j + 1) * n] for j in range(4))
    c_new = sigmoid(f + forget_bias) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c_new), c_new


def decoupling(delta_c, delta_m, adapter):
    a = conv_same(delta_c, adapter)
    b = conv_same(delta_m, adapter)
    batch, n = a.shape[0], a.shape[-1]
    a = a.reshape(batch, -1, n)
    b = b.reshape(batch, -1, n)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    cos = (a * b).sum(axis=1)  # (batch, n)
    return np.abs(cos).mean()


def predrnn_forward(frames, mask, weights, filters, patch_size, decoupling_weight=0.0, conv_lstm=False):
    """The whole model: returns predictions (B, T-1, H, W, C) and the decoupling loss."""
    frames = np.asarray(frames, np.float64)
    mask = np.asarray(mask, np.float64)
    channels = frames.shape[-1]
    patches = patchify(frames, patch_size)
    b, t_total, hp, wp, _ = patches.shape
    hidden = [np.zeros((b, hp, wp, n)) for n in filters]
    cell = [np.zeros((b, hp, wp, n)) for n in filters]
    memory = np.zeros((b, hp, wp, filters[-1]))
    cell_prefix = "conv_lstm_{}/" if conv_lstm else "st_lstm_{}/"
    predictions, terms = [], []
    prediction = None
    for t in range(t_total - 1):
        if t == 0:
            x = patches[:, 0]
        else:
            w = mask[:, t - 1][:, None, None, None]
            x = w * patches[:, t] + (1 - w) * prediction
        for l in range(len(filters)):
            prefix = cell_prefix.format(l)
            if conv_lstm:
                hidden[l], cell[l] = conv_lstm_step(x, hidden[l], cell[l], weights, prefix)
            else:
                adapter = weights.get(f"memory_adapter_{l}")
                if adapter is not None:
                    memory = conv_same(memory, adapter)
                hidden[l], cell[l], memory, dc, dm = st_lstm_step(x, hidden[l], cell[l], memory, weights, prefix)
                if decoupling_weight > 0:
                    terms.append(decoupling(dc, dm, weights[f"decoupling_adapter_{filters[l]}"]))
            x = hidden[l]
        prediction = conv_same(x, weights["head_kernel"])
        predictions.append(prediction)
    out = unpatchify(np.stack(predictions, axis=1), patch_size, channels)
    return out, (float(np.mean(terms)) if terms else 0.0)


def model_weights(model):
    """The model's weights as {name: float64 array}, names relative to the model.

    A cell's weights are prefixed with its name (``st_lstm_0/kernel_x``); the model's
    own weights keep their bare names (``head_kernel``, ``memory_adapter_1``).
    """
    weights = {}
    for cell in model.cells:
        for variable in cell.weights:
            weights[f"{cell.name}/{variable.name}"] = np.asarray(variable.numpy(), np.float64)
    cell_ids = {id(v) for cell in model.cells for v in cell.weights}
    for variable in model.weights:  # the model's own, not its cells'
        if id(variable) not in cell_ids:
            weights[variable.name] = np.asarray(variable.numpy(), np.float64)
    return weights


def to_official_state(weights, filters, use_layer_norm, decoupling_weight):
    """Reference weights -> the official PyTorch key layout (channels-first)."""

    def conv(w):
        return np.ascontiguousarray(np.transpose(w, (3, 2, 0, 1)), dtype=np.float32)

    def norm(w):
        return np.ascontiguousarray(np.transpose(w, (2, 0, 1)), dtype=np.float32)

    state = {}
    for l in range(len(filters)):
        prefix = f"st_lstm_{l}/"
        for short, name in (("x", "conv_x"), ("h", "conv_h"), ("m", "conv_m"), ("o", "conv_o")):
            state[f"cell_list.{l}.{name}.0.weight"] = conv(weights[prefix + f"kernel_{short}"])
            if use_layer_norm:
                state[f"cell_list.{l}.{name}.1.weight"] = norm(weights[prefix + f"norm_{short}_gamma"])
                state[f"cell_list.{l}.{name}.1.bias"] = norm(weights[prefix + f"norm_{short}_beta"])
        state[f"cell_list.{l}.conv_last.weight"] = conv(weights[prefix + "kernel_last"])
    state["conv_last.weight"] = conv(weights["head_kernel"])
    if decoupling_weight > 0:
        state["adapter.weight"] = conv(weights[f"decoupling_adapter_{filters[0]}"])
    return state


def random_weights_like(weights, rng, scale=0.3):
    """Fresh random weights with the same names and shapes (layer-norm affines near 1 / 0)."""
    out = {}
    for name, w in weights.items():
        if name.endswith("_gamma"):
            out[name] = 1.0 + 0.1 * rng.standard_normal(w.shape)
        elif name.endswith("_beta"):
            out[name] = 0.1 * rng.standard_normal(w.shape)
        else:
            out[name] = scale * rng.standard_normal(w.shape)
    return out


def set_model_weights(model, weights):
    """Assign ``{name: array}`` (as returned by :func:`model_weights`) to the model."""
    by_name = {}
    for cell in model.cells:
        for variable in cell.weights:
            by_name[f"{cell.name}/{variable.name}"] = variable
    cell_ids = {id(v) for cell in model.cells for v in cell.weights}
    for variable in model.weights:
        if id(variable) not in cell_ids:
            by_name[variable.name] = variable
    if set(by_name) != set(weights):
        raise KeyError(f"weight names differ: {sorted(set(by_name) ^ set(weights))}")
    for name, variable in by_name.items():
        variable.assign(np.asarray(weights[name], np.float32))
