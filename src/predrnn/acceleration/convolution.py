"""The seam between the cells and the fast paths: how a cell's convolutions run.

A cell's :meth:`~predrnn.layers.ConvRecurrentCell.step` calls three functions of this
module (through its base class), never a backend:

- :func:`convolve`: one stride-1, "same", bias-free convolution;
- :func:`gate_preactivations`: the sum of the cell's gate convolutions, one tensor per gate,
  as the cell declares them (:class:`~predrnn.layers.Convolution` ``gates``);
- :func:`concatenate_states`: a channel concatenation of new states.

Outside a model's time loop they compute the reference: each convolution with
``keras.ops.conv``, each gate the sum of its convolutions' slices. Inside the loop
(:func:`loop_context`, entered by :mod:`predrnn.acceleration.loops`) they run in the loop's
layout (channels-first on PyTorch), and a *convolution hook* may replace the convolutions:
Winograd's in JAX's scanned loop and PyTorch's loop, recorded and replayed ones in
TensorFlow's XLA cell steps (:mod:`predrnn.acceleration.tensorflow_steps`), kernels cast once
per sequence under mixed precision. A hook is ``function(x, kernel, data_format)``; one with
a ``summed(terms, out_channels, data_format)`` method also takes a cell's whole gate sum
(PyTorch's Winograd convolutions sum before their output transform). With
``AccelerationOptions.fused_gates`` the gate convolutions that feed the same gates are one
convolution of the concatenated inputs with stacked kernels.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading

import keras
from keras import ops

from predrnn.acceleration.options import CHANNELS_FIRST, CHANNELS_LAST, get_options, torch_records_gradients
from predrnn.acceleration.winograd import checked_placements


def channel_axis(data_format=None):
    """The channel axis of ``data_format`` (default: the current loop's layout)."""
    data_format = data_format or current_layout()
    return 1 if data_format == CHANNELS_FIRST else -1


def conv2d(x, kernel, data_format=CHANNELS_LAST):
    """Stride-1, "same"-padded, bias-free 2-D convolution; ``kernel`` is ``(k, k, in, out)``.

    Channels-last 1x1 kernels run as a matmul over the channel axis (the same result, cheaper).
    """
    if data_format == CHANNELS_LAST and kernel.shape[0] == 1 and kernel.shape[1] == 1:
        return ops.matmul(x, kernel[0, 0])
    return ops.conv(x, kernel, strides=1, padding="same", data_format=data_format)


# --------------------------------------------------------------------------- the loop context
@dataclasses.dataclass(frozen=True)
class LoopContext:
    """How the cells' steps run right now (per thread).

    ``layout``: the data format of the loop's tensors. ``convolve``: the convolution hook, or
    None for :func:`conv2d`. ``fused``: ``{id(cell): kernels}``, the fused gate kernels of
    this sequence (computed once per sequence by the loop), or None to compute them per step.
    ``options``: the :class:`~predrnn.acceleration.AccelerationOptions` the loop runs with
    (None: :func:`~predrnn.acceleration.get_options`).
    """

    layout: str = CHANNELS_LAST
    convolve: object = None
    fused: dict | None = None
    options: object = None


_CONTEXT = threading.local()


def current_context() -> LoopContext:
    context = getattr(_CONTEXT, "value", None)
    return LoopContext() if context is None else context


def current_layout() -> str:
    return current_context().layout


def current_options():
    return current_context().options or get_options()


@contextlib.contextmanager
def loop_context(context=None, **changes):
    """Within it (this thread), the cells run in ``context`` (default: the current one) with ``changes``."""
    chosen = dataclasses.replace(context or current_context(), **changes)
    previous = getattr(_CONTEXT, "value", None)
    _CONTEXT.value = chosen
    try:
        yield chosen
    finally:
        _CONTEXT.value = previous


def conv_hook(function):
    """Within it, the cells' convolutions run as ``function(x, kernel, data_format)``."""
    return loop_context(convolve=function)


# --------------------------------------------------------------------------- what cells call
def convolve(x, kernel):
    """``conv(x, kernel)`` in the current layout: :func:`conv2d`, or what the loop's hook substitutes."""
    context = current_context()
    if context.convolve is None:
        return conv2d(x, kernel, context.layout)
    return context.convolve(x, kernel, context.layout)


def concatenate_states(tensors):
    """The channel concatenation of ``tensors`` and the tensors again, as views of it where
    PyTorch's autograd records: its backward keeps the concatenation anyway (the next
    convolution's input), so the states then cost no second copy. Elsewhere, and without
    gradients (views made rollouts slower), the tensors are returned as they are."""
    axis = channel_axis()
    both = ops.concatenate(list(tensors), axis=axis)
    if torch_records_gradients():
        widths = [t.shape[axis] for t in tensors]
        if len(set(widths)) == 1:
            return both, tuple(ops.split(both, len(tensors), axis=axis))
    return both, tuple(tensors)


def gate_preactivations(cell, sources):
    """``{gate: pre-activation}``: for each gate the sum of its convolutions' slices.

    ``sources`` maps each gate convolution's name to its input (``None``: an exact-zero
    state, whose convolution is skipped; with layer norm it contributes the norm's ``beta``).
    The reference sums the separate convolutions (after their layer norms), adding whole
    outputs where convolutions feed the same gates in the same order; the fast paths
    (fused gates, a hook's gate sums) compute the same sums.
    """
    convolutions = cell.gate_convolutions()
    options = current_options()
    if not cell.use_layer_norm:
        if options.fused_gates:
            return _fused_gates(cell, convolutions, sources)
        summed = getattr(current_context().convolve, "summed", None)
        if summed is not None:
            gates = _hook_summed_gates(summed, cell, convolutions, sources)
            if gates is not None:
                return gates
    return _reference_gates(cell, convolutions, sources)


def add_terms(*terms):
    """Sum of the terms that are not ``None`` (``None`` stands for an exact zero)."""
    present = [t for t in terms if t is not None]
    total = present[0]
    for term in present[1:]:
        total = total + term
    return total


def _gate_order(convolutions):
    order = []
    for conv in convolutions:
        order += [gate for gate in conv.gates if gate not in order]
    return order


def _reference_gates(cell, convolutions, sources):
    groups = {}  # gates tuple -> the outputs of the convolutions that feed exactly those gates
    for conv in convolutions:
        y = cell.conv(conv.name, sources[conv.name])
        groups.setdefault(conv.gates, []).append(y)
    axis = channel_axis()
    pieces = {}
    for gates, outputs in groups.items():
        outputs = [y for y in outputs if y is not None]
        if not outputs:
            continue
        parts = ops.split(add_terms(*outputs), len(gates), axis=axis) if len(gates) > 1 else [add_terms(*outputs)]
        for gate, part in zip(gates, parts):
            pieces.setdefault(gate, []).append(part)
    return {gate: add_terms(*pieces[gate]) for gate in _gate_order(convolutions)}


def _runs(pairs):
    """Consecutive ``(source, target)`` gate positions merged into ``(source, target, count)`` runs."""
    runs = []
    for source, target in pairs:
        if runs and runs[-1][0] + runs[-1][2] == source and runs[-1][1] + runs[-1][2] == target:
            runs[-1][2] += 1
        else:
            runs.append([source, target, 1])
    return [tuple(run) for run in runs]


def _hook_summed_gates(summed, cell, convolutions, sources):
    order = _gate_order(convolutions)
    n = cell.filters
    terms = []
    for conv in convolutions:
        x = sources[conv.name]
        if x is None:
            continue
        pairs = [(index, order.index(gate)) for index, gate in enumerate(conv.gates)]
        places = tuple((s * n, t * n, c * n) for s, t, c in _runs(pairs))
        terms.append((x, cell.kernel(conv.name), places))
    total = summed(terms, len(order) * n, current_layout())
    if total is None:
        return None
    return dict(zip(order, ops.split(total, len(order), axis=channel_axis())))


def fused_groups(convolutions):
    """``[(conv names, gates)]``: the gates grouped by the convolutions that feed them."""
    groups = {}
    for gate in _gate_order(convolutions):
        names = tuple(conv.name for conv in convolutions if gate in conv.gates)
        groups.setdefault(names, []).append(gate)
    return [(names, tuple(gates)) for names, gates in groups.items()]


def fused_kernels(cell):
    """Per :func:`fused_groups` group, the kernel of its one convolution: the group's gate
    columns of each of its convolutions' kernels, stacked over input channels (in the
    convolutions' order). ``conv([x, h], fused) == conv(x, kernel_x[gates]) + conv(h, kernel_h[gates])``."""
    convolutions = cell.gate_convolutions()
    n = cell.filters
    kernels = []
    for names, gates in fused_groups(convolutions):
        blocks = []
        for name in names:
            conv = next(c for c in convolutions if c.name == name)
            kernel = ops.convert_to_tensor(cell.kernel(name))
            pairs = [(conv.gates.index(gate), index) for index, gate in enumerate(gates)]
            columns = [kernel[..., s * n : (s + c) * n] for s, _, c in _runs(pairs)]
            blocks.append(columns[0] if len(columns) == 1 else ops.concatenate(columns, axis=-1))
        kernels.append(blocks[0] if len(blocks) == 1 else ops.concatenate(blocks, axis=2))
    return tuple(kernels)


def _fused_gates(cell, convolutions, sources):
    context = current_context()
    kernels = None if context.fused is None else context.fused.get(id(cell))
    if kernels is None:
        kernels = fused_kernels(cell)
    axis = channel_axis()
    gates_out = {}
    for (names, gates), kernel in zip(fused_groups(convolutions), kernels):
        inputs, rows, start = [], [], 0
        for name in names:
            x = sources[name]
            width = cell.kernel(name).shape[2]
            if x is not None:
                inputs.append(x)
                rows.append((start, start + width))
            start += width
        if len(inputs) < len(names):  # zero states contribute nothing: their kernel rows are left out
            slices = [kernel[:, :, a:b, :] for a, b in rows]
            kernel = slices[0] if len(slices) == 1 else ops.concatenate(slices, axis=2)
        x = inputs[0] if len(inputs) == 1 else ops.concatenate(inputs, axis=axis)
        y = convolve(x, kernel)
        parts = ops.split(y, len(gates), axis=axis) if len(gates) > 1 else [y]
        gates_out.update(zip(gates, parts))
    return {gate: gates_out[gate] for gate in _gate_order(convolutions)}


def placed_sum(outputs, out_channels, data_format=CHANNELS_LAST):
    """``sum_i y_i`` over ``outputs`` ``(y_i, placements_i)``, each ``y_i`` placed into the
    ``out_channels`` channels by its ``(source, target, width)`` triples (channels ``source ..
    source + width`` of ``y_i`` to ``target .. target + width``; see
    :func:`predrnn.acceleration.winograd.summed_transformed_winograd_conv2d`)."""
    axis = channel_axis(data_format) % 4
    total = None
    for y, places in outputs:
        for source, target, width in checked_placements(places, y.shape[axis], out_channels):
            piece = y
            if width != y.shape[axis]:
                piece = y[:, source : source + width] if axis == 1 else y[..., source : source + width]
            if width != out_channels:
                padding = [[0, 0]] * 4
                padding[axis] = [target, out_channels - target - width]
                piece = ops.pad(piece, padding)
            total = piece if total is None else total + piece
    return total


def is_low_precision(x):
    return keras.backend.standardize_dtype(x.dtype) in ("float16", "bfloat16")
