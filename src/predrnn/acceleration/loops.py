"""The models' time loop, fast: per-sequence convolution hooks, JAX's scanned loop, remat.

:class:`~predrnn.models.VideoPredictor` runs its frame loop (``_unrolled``, the reference)
inside :func:`sequence`, which sets the loop's layout and options and, where they apply,

- on PyTorch (``AccelerationOptions.torch_winograd``): Winograd convolutions with the kernels
  transformed once per sequence, a cell's gate sum as one call with one output transform;
- under mixed precision, in inference calls: each kernel cast to the compute dtype once per
  sequence (:class:`CastOnceConvolution`);
- with fused gates: the fused gate kernels computed once per sequence.

On JAX with XLA cells (``AccelerationOptions.xla_cells``), when the call is traced, the loop
is :func:`scanned_unroll` instead: one ``keras.ops.scan`` over the steps after the first,
with Winograd convolutions. Each fast path computes what the reference loop computes, up to
float rounding.
"""

from __future__ import annotations

import contextlib

import keras
from keras import ops

from predrnn.acceleration.convolution import conv2d, current_context, fused_kernels, loop_context
from predrnn.acceleration.options import model_xla_cells, torch_records_gradients, torch_winograd
from predrnn.acceleration.tensorflow_steps import weights_read_per_step
from predrnn.acceleration.winograd import (
    summed_transformed_winograd_conv2d,
    transformed_winograd_conv2d,
    winograd_applies,
    winograd_kernel,
    winograd_tile,
)


def loop_winograd_tile(kernel_shape, dtype, options=None):
    """The Winograd tile of a cell convolution in a loop that runs Winograd's (JAX's scanned
    loop: every 3x3-7x7 float32 kernel; PyTorch's loop: where
    :func:`~predrnn.acceleration.options.torch_winograd` says, which depends on whether
    autograd records), or None for the direct convolution."""
    if keras.backend.backend() == "torch" and not torch_winograd(
        kernel_shape, dtype, torch_records_gradients(), options or current_context().options
    ):
        return None
    return winograd_applies(kernel_shape, dtype)


class CastOnceConvolution:
    """The cell convolutions of an inference pass under mixed precision (a convolution hook):
    each kernel is cast to the compute dtype once per sequence, not at every time step.
    Only without gradients (``training=False``): the time steps' gradients of a kernel cast
    once would be summed in the compute dtype."""

    def __init__(self):
        self.cast = {}  # id(kernel) -> (kernel, kernel in the compute dtype); the kernel kept so its id stays its own

    def __call__(self, x, kernel, data_format):
        cached = self.cast.get(id(kernel))
        if cached is None:
            cached = self.cast[id(kernel)] = (kernel, ops.cast(kernel, x.dtype))
        return conv2d(x, cached[1], data_format)


class WinogradLoopConvolution:
    """The cell convolutions of a time loop that runs Winograd's (a convolution hook).

    ``transformed`` maps ``id(kernel)`` to the kernel transformed once per sequence (by the
    same rule); other kernels are transformed where they are used (e.g. the first step's
    slices of fused kernels), or convolved by ``conv2d`` where :func:`loop_winograd_tile`
    says so. With ``sums`` (PyTorch) the cells' gate sums are one
    :func:`~predrnn.acceleration.winograd.summed_transformed_winograd_conv2d` each, and the
    table's kernels are transformed without a gradient: every call pulls its gradient back
    to the kernel itself (what the time loop then sums is the kernel's gradient, not the
    larger transformed kernel's).
    """

    def __init__(self, transformed, sums=False):
        self.transformed, self.sums = transformed, sums

    def __call__(self, x, kernel, data_format):
        u = self.transformed.get(id(kernel))
        if u is not None:
            size = kernel.shape[0]
            source = kernel if self.sums else None
            return transformed_winograd_conv2d(x, u, size, winograd_tile(size), data_format, kernel=source)
        tile = loop_winograd_tile(kernel.shape, x.dtype)
        if tile is None:
            return conv2d(x, kernel, data_format)
        return transformed_winograd_conv2d(x, winograd_kernel(kernel, tile), kernel.shape[0], tile, data_format)

    def summed(self, terms, out_channels, data_format):
        """``sum_i conv(x_i, kernel_i)`` placed as ``terms`` say (``(x, kernel, placements)``)
        with one output transform, where every kernel is in the table; otherwise None."""
        us = [self.transformed.get(id(kernel)) for _, kernel, _ in terms]
        if not self.sums or any(u is None for u in us):
            return None
        size = terms[0][1].shape[0]
        winograd_terms = [(x, u, places, kernel) for (x, kernel, places), u in zip(terms, us)]
        return summed_transformed_winograd_conv2d(winograd_terms, out_channels, size, winograd_tile(size), data_format)


def is_traced(x):
    """Whether ``x`` is a JAX tracer (inside ``jit``, as in ``fit``, ``predict`` and ``rollout``).

    Eager JAX calls keep the unrolled loop: there every operation is dispatched and compiled
    on its own, and Winograd's many small operations cost more than they save.
    """
    import jax

    return isinstance(x, jax.core.Tracer)


def scans_its_time_loop(model, options, patches, num_steps):
    """JAX with XLA cells for every cell, in a traced call of more than one step."""
    return (
        keras.backend.backend() == "jax"
        and num_steps > 1
        and model_xla_cells(model.filters, model.kernel_size, model.compute_dtype, options)
        and is_traced(patches)
    )


def _no_torch_gradient():
    import torch

    return torch.no_grad()


def winograd_kernels(model, fused=None, with_gradient=True, options=None):
    """``{id(kernel): winograd_kernel(kernel)}`` for the cells' kernels (variables, and the
    fused kernels of ``fused``) that the loop runs as Winograd's (:func:`loop_winograd_tile`);
    ``with_gradient=False`` (PyTorch, whose loop passes the gradient to the kernels
    themselves) computes them without recording a gradient."""
    kernels = [weight for cell in model.cells for weight in cell.weights]
    kernels += [kernel for group in (fused or {}).values() for kernel in group]
    tiles = [loop_winograd_tile(kernel.shape, model.compute_dtype, options) for kernel in kernels]  # as the loop records
    with contextlib.nullcontext() if with_gradient else _no_torch_gradient():
        return {id(kernel): winograd_kernel(kernel, tile) for kernel, tile in zip(kernels, tiles) if tile is not None}


def loop_convolution(model, options, fused=None, scanned=False, training=None):
    """The convolution hook of a time loop, or None for ``conv2d``: in JAX's scanned loop,
    Winograd's for every float32 3x3-7x7 kernel; on PyTorch, Winograd's where
    :func:`~predrnn.acceleration.options.torch_winograd` says so, and the cells' gate sums of
    them one call each with a single output transform. The kernels are transformed once per
    sequence (:func:`winograd_kernels`). Otherwise, in an inference call
    (``training=False``) under mixed precision, the kernels are cast to the compute dtype
    once (:class:`CastOnceConvolution`)."""
    torch = keras.backend.backend() == "torch"
    if not scanned and not (torch and torch_winograd(options=options)):
        if training is False and model.compute_dtype != model.variable_dtype:
            return CastOnceConvolution()
        return None
    table = winograd_kernels(model, fused, with_gradient=not torch, options=options)
    return WinogradLoopConvolution(table, sums=torch)


@contextlib.contextmanager
def sequence(model, options, layout, scanned=False, training=None):
    """The loop context of one sequence of ``model``: layout, options, fused gate kernels and
    convolution hook, each computed once per sequence."""
    fused = None
    if options.fused_gates:
        fused = {id(cell): fused_kernels(cell) for cell in model.cells if not cell.use_layer_norm}
    with loop_context(layout=layout, options=options, fused=fused, convolve=None):
        convolve = loop_convolution(model, options, fused, scanned=scanned, training=training)
        with loop_context(convolve=convolve) as context:
            yield context


def remat_step(model, with_auxiliary):
    """``model._step`` wrapped in ``keras.remat`` over a flat list of tensors.

    Its cells run in the current loop context also when PyTorch recomputes the step in the
    backward pass, outside the loop; the fused kernels are rebuilt inside, and TensorFlow's
    XLA cell steps read their weights (a rematerialised function must read the variables
    itself: ``tf.recompute_grad`` differentiates only inputs and variables).
    """
    structure = {}
    context = current_context()

    def flat_step(x, *flat_state):
        state = keras.tree.pack_sequence_as(structure["state"], list(flat_state))
        with loop_context(context, fused=None), weights_read_per_step():
            hidden, new_state, term = model._step(x, state, with_auxiliary)
        outputs = [hidden] + keras.tree.flatten(new_state)
        if term is not None:
            outputs.append(term)
        return outputs

    rematerialised = keras.remat(flat_step)

    def step(x, state):
        structure["state"] = state
        outputs = rematerialised(x, *keras.tree.flatten(state))
        count = len(keras.tree.flatten(state))
        new_state = keras.tree.pack_sequence_as(state, list(outputs[1 : 1 + count]))
        term = outputs[1 + count] if with_auxiliary else None
        return outputs[0], new_state, term

    return step


def scanned_unroll(model, patches, num_steps, context_length, mask, with_auxiliary):
    """The model's time loop with steps ``1 .. num_steps - 1`` as one ``keras.ops.scan`` (JAX).

    Step 0 (zero states, their convolutions skipped) runs on its own; the later steps are
    one traced and compiled step that the loop repeats. Step ``t`` reads
    ``w * patches[:, t] + (1 - w) * prediction``, ``w`` 1 in the context, the mask after it,
    0 without a mask: what the reference loop feeds. Runs inside :func:`sequence` with
    ``scanned=True`` (the cells' kernels transformed for Winograd once per sequence, so their
    gradient is summed over the steps before it is pulled back through the transform).
    """
    hidden, state, term = model._step(patches[:, 0], model._initial_state(), with_auxiliary)
    first = model._head(hidden)
    batch = ops.shape(patches)[0]
    columns = []
    for t in range(1, num_steps):
        if t < context_length:
            columns.append(ops.ones((batch,), patches.dtype))
        elif mask is not None:
            columns.append(ops.cast(mask[:, t - 1], patches.dtype))
        else:
            columns.append(ops.zeros((batch,), patches.dtype))
    weights = ops.stack(columns)  # (num_steps - 1, batch)
    later_patches = ops.moveaxis(patches[:, 1:num_steps], 1, 0)
    step = remat_step(model, with_auxiliary) if model.remat else None
    no_term = ops.zeros((), "float32")

    def body(carry, step_inputs):
        prediction, state = carry
        patch, weight = step_inputs
        weight = ops.reshape(weight, (-1, 1, 1, 1))
        x = weight * patch + (1.0 - weight) * prediction
        if step is not None:
            hidden, state, term = step(x, state)
        else:
            hidden, state, term = model._step(x, state, with_auxiliary)
        output = model._head(hidden)
        prediction = ops.cast(output, patch.dtype)  # fed back in the compute dtype
        return (prediction, state), (output, no_term if term is None else ops.cast(term, "float32"))

    carry = (ops.cast(first, patches.dtype), state)
    _, (later, terms) = ops.scan(body, carry, (later_patches, weights))
    predictions = ops.moveaxis(ops.concatenate([ops.expand_dims(first, 0), later], axis=0), 0, 1)
    if not with_auxiliary:
        return predictions, None
    terms = ops.concatenate([ops.reshape(ops.cast(term, "float32"), (1,)), terms], axis=0)
    return predictions, ops.mean(terms)
