"""TensorFlow's XLA cell steps: a cell's step as a compiled forward and backward function.

Where :func:`~predrnn.acceleration.options.xla_cells` says so (TensorFlow without a GPU,
cells of at least 64 filters with 5x5-7x7 kernels, float32), :func:`run_step` runs a cell's
``step`` as :func:`xla_step`: two ``tf.function(jit_compile=True)``, a forward that keeps
only the step's inputs and its convolutions' outputs, and a backward that recomputes the
elementwise rest, inside an otherwise uncompiled training step. Their k x k convolutions are
Winograd's (:func:`xla_conv2d`), which XLA fuses. The cells' ``step`` is traced as it is:
the convolution hooks below record and replay its convolutions.
"""

import contextlib
import json
import threading
import weakref

import keras
from keras import ops

from predrnn.acceleration.convolution import (
    CHANNELS_FIRST,
    CHANNELS_LAST,
    conv2d,
    current_options,
    loop_context,
    placed_sum,
)
from predrnn.acceleration.options import xla_cells
from predrnn.acceleration.winograd import recomputing_winograd_conv2d, winograd_applies, winograd_kernel


def run_step(cell, inputs, states, data_format=CHANNELS_LAST):
    """``cell.step(inputs, states)`` as the models' time loop runs it: XLA-compiled where
    :func:`~predrnn.acceleration.options.xla_cells` says so (TensorFlow), else the step itself.

    Float32 steps only: under mixed precision the step runs as it is (the backward half is
    traced outside the layer's autocast scope, and the Winograd convolutions are float32-only).
    On JAX the models compile the cells inside their scanned time loop instead
    (:func:`predrnn.acceleration.loops.scanned_unroll`).
    """
    if keras.backend.backend() != "tensorflow" or not xla_cells(cell.filters, cell.kernel_size, inputs.dtype, current_options()):
        return cell.step(inputs, states)
    return xla_step(cell, inputs, states, data_format)


def xla_conv2d(x, kernel, data_format=CHANNELS_LAST, u=None):
    """:func:`~predrnn.acceleration.convolution.conv2d` as the XLA cell steps compute it.

    3x3-7x7 float32 kernels run as Winograd convolutions (4x4 output tiles up to 5x5, 2x2
    above), which XLA fuses; the rest as ``conv2d``. Only inside XLA-compiled steps:
    uncompiled, Winograd is slower than the direct convolution. ``u``: the Winograd kernel
    of ``kernel`` transformed beforehand (see :func:`_transformed_kernels`), or None.
    """
    tile = winograd_applies(kernel.shape, x.dtype)
    if tile is not None:
        return recomputing_winograd_conv2d(x, kernel, tile=tile, data_format=data_format, u=u)
    return conv2d(x, kernel, data_format)


def xla_step(cell, inputs, states, data_format=CHANNELS_LAST):
    """``cell.step(inputs, states)`` as two XLA-compiled functions, forward and backward
    (TensorFlow; see :func:`~predrnn.acceleration.options.xla_cells`).

    Returns what ``cell.step`` returns.

    The forward step returns the step's outputs and the outputs of its convolutions, a
    cell's gate sum (``conv_x(x) + conv_h(h) [+ conv_m(m)]`` placed channel-wise, without
    layer norm or fused gates; :func:`~predrnn.acceleration.convolution.gate_preactivations`) as one output:
    the sum is all the backward step needs of its terms. The backward step recomputes the
    rest of the step from those (gates, layer norms: elementwise work, and the 1x1
    convolutions, whose outputs it does not keep) and pulls the output gradients back
    through the other convolutions, which it does not recompute. Only the step's
    inputs, the weights and those outputs are kept between the two: TensorFlow's automatic
    gradient of one compiled step kept every gate activation and returned its inputs and the
    kernels again, copied by XLA, per time step.
    ``None`` states (exact zeros, the first time step's) go in as zero tensors, so that the
    first step runs the later steps' functions instead of a pair of its own: the first
    step's convolutions of zeros cost a few percent of one step, and save compiling and
    keeping two more functions per cell configuration (memory and compile time). The
    results are the same: a convolution of zeros is zero (``beta`` after a layer norm, as
    :meth:`~predrnn.layers.ConvRecurrentCell.conv` gives).
    With fused gates the fused kernels are computed inside each step.
    Cells of one configuration and weight shapes share the two functions (the weights are
    arguments): a model's layers 2 to n compile once.
    """
    import tensorflow as tf

    compiled = cell.__dict__.setdefault("_xla_steps", {})
    if data_format not in compiled:
        compiled[data_format] = _shared_xla_step(cell, data_format)
    shared = compiled[data_format]
    forward, backward = shared.functions
    states = _zeros_for_none(cell, inputs, states, data_format)
    sources, weights, transformed = _step_weights(cell)
    arguments = _differentiable(inputs, states, weights)
    flat = [tf.convert_to_tensor(value) for value in tf.nest.flatten(arguments)]
    count = len(weights)  # the weights are the last arguments

    def unflatten(flat):
        x, given, values = tf.nest.pack_sequence_as(arguments, list(flat))
        return x, tuple(given), values

    @tf.custom_gradient
    def step(*flat):
        outputs, conv_outputs = forward(*unflatten(flat), transformed)
        passed = [tf.identity(weight) for weight in flat[len(flat) - count :]]

        def grad(*output_gradients):  # None for an output the loss does not use
            later = output_gradients[len(outputs) :]  # the cell's later steps' weight gradients, summed
            output_gradients = [tf.zeros_like(y) if g is None else g for y, g in zip(outputs, output_gradients)]
            gradients = backward(*unflatten(flat), conv_outputs, output_gradients)
            own = gradients[len(gradients) - count :]
            summed = [a if b is None else b if a is None else a + b for a, b in zip(own, later)]
            return [*gradients[: len(gradients) - count], *summed]

        return (*outputs, *passed), grad

    results = step(*flat)
    _pass_weights(cell, sources, results[len(results) - count :], transformed)
    return shared.unpack(results[: len(results) - count])


# Per thread (a tf.distribute replica runs in its own) and per graph: the weights each cell's
# last XLA step passed on (see :func:`_step_weights`).
_PASSED_WEIGHTS = threading.local()


def _passed_weights_table():
    import tensorflow as tf

    tables = getattr(_PASSED_WEIGHTS, "tables", None)
    if tables is None:
        tables = _PASSED_WEIGHTS.tables = weakref.WeakKeyDictionary()
    return tables.setdefault(tf.compat.v1.get_default_graph(), {})


@contextlib.contextmanager
def weights_read_per_step():
    """Within it, XLA cell steps read their variables themselves and pass nothing on
    (:func:`_step_weights`). For rematerialised steps (``keras.remat``; TensorFlow's
    ``tf.recompute_grad`` differentiates only a step's inputs and the variables it reads)."""
    previous = getattr(_PASSED_WEIGHTS, "off", None)
    _PASSED_WEIGHTS.off = True
    try:
        yield
    finally:
        _PASSED_WEIGHTS.off = previous


def _passes_weights():
    import tensorflow as tf

    return not tf.executing_eagerly() and not getattr(_PASSED_WEIGHTS, "off", None)


def _step_weights(cell):
    """``(sources, weights, transformed)``: the cell's weights as an XLA step takes them (TensorFlow).

    In a traced graph the steps of a cell pass its weights on, one step to the next
    (:func:`xla_step`: an identity, no copy), so that each step's backward adds its weight
    gradients to those of the later steps and passes one sum on. Each step reading the
    variables itself left TensorFlow's gradient to sum every step's weight gradients at
    once, holding them all until the first time step's backward. ``sources`` (the variables, or what a
    ``keras.StatelessScope`` maps them to) tell whether the passed weights are still the
    ones to use; eagerly (and under :func:`weights_read_per_step`) every step reads the
    variables. ``transformed`` are the Winograd kernels of the weights that are read
    (:func:`_transformed_kernels`), passed on with them: once per sequence in a traced graph.
    """
    import tensorflow as tf

    sources = tuple(weight.value for weight in cell.weights)
    if _passes_weights():
        passed = _passed_weights_table().get(id(cell))
        if passed is not None and all(a is b for a, b in zip(passed[0], sources)):
            return sources, list(passed[1]), passed[2]
    weights = [tf.convert_to_tensor(source) for source in sources]
    return sources, weights, _transformed_kernels(cell, weights)


def _pass_weights(cell, sources, weights, transformed):
    if _passes_weights():
        _passed_weights_table()[id(cell)] = (sources, tuple(weights), transformed)


def _winograd_weights(cell):
    """The positions in ``cell.weights`` of the kernels the XLA steps run as Winograd's, with their tiles."""
    return [
        (index, tile)
        for index, weight in enumerate(cell.weights)
        if (tile := winograd_applies(tuple(weight.shape), weight.dtype)) is not None
    ]


def _transformed_kernels(cell, weights):
    """The Winograd kernels (:func:`predrnn.layers.winograd.winograd_kernel`) of the cell's
    3x3-7x7 kernels among ``weights``, in :func:`_winograd_weights`' order, without a gradient.

    The forward XLA steps convolve with them instead of transforming their kernels at every
    time step (faster rollouts and training steps); the backward steps still transform
    theirs, so that nothing of the size of the transformed kernels (tens to hundreds of MB)
    stays alive into the backward pass, where the memory peaks. The results are the same up
    to float rounding.
    """
    import tensorflow as tf

    return tuple(tf.stop_gradient(winograd_kernel(weights[index], tile)) for index, tile in _winograd_weights(cell))


def _zeros_for_none(cell, inputs, states, data_format):
    """``states`` with each ``None`` (an exact-zero state) as a zero tensor of the cell's state shape."""
    if all(state is not None for state in states):
        return tuple(states)
    height, width = inputs.shape[2:] if data_format == CHANNELS_FIRST else inputs.shape[1:3]
    shape = (cell.filters, height, width) if data_format == CHANNELS_FIRST else (height, width, cell.filters)
    zeros = ops.zeros((ops.shape(inputs)[0], *shape), dtype=inputs.dtype)
    return tuple(zeros if state is None else state for state in states)


def _differentiable(x, states, weights):
    """What a step is differentiated by, in the order of :func:`xla_step`'s flat arguments
    and of the backward step's gradients."""
    return x, list(states), weights


class _CompiledStep:
    """The forward and backward functions of :func:`xla_step` for cells of one configuration
    (an object, not a tuple, so that the weak-valued cache below can refer to it)."""

    def __init__(self, functions, structure):
        self.functions = functions
        self.structure = structure  # filled while the forward function is traced

    def unpack(self, flat):
        """``cell.step``'s result out of the compiled function's flat outputs."""
        states, output_index, auxiliary = self.structure["states"], self.structure["output"], self.structure["auxiliary"]
        new_states = tuple(flat[:states])
        output = new_states[output_index] if output_index is not None else flat[states + auxiliary]
        if auxiliary:
            return output, new_states, tuple(flat[states : states + auxiliary])
        return output, new_states


# Cells of one configuration (a model's layers 2 to n, or the models of several seeded runs
# in one process) share their compiled functions: the weights are arguments, so only the
# configuration and the shapes shape the computation. A model's 4 layers then compile 4
# functions (the first layer's configuration and the others', forward and backward) instead
# of 8. An entry lives while a cell that uses it does.
_SHARED_XLA_STEPS = weakref.WeakValueDictionary()


def _shared_xla_step(cell, data_format):
    config = {k: v for k, v in cell.get_config().items() if k not in ("name", "trainable")}
    weights = tuple((tuple(w.shape), str(w.dtype)) for w in cell.weights)
    key = (type(cell), json.dumps(config, sort_keys=True, default=str), weights, data_format, current_options().fused_gates)
    shared = _SHARED_XLA_STEPS.get(key)
    if shared is None:
        # The first cell of the configuration is the template its steps are traced with;
        # StatelessScope maps its weights to the calling cell's values.
        structure = {}
        shared = _SHARED_XLA_STEPS[key] = _CompiledStep(_compile_xla_step(cell, data_format, structure), structure)
    return shared


def _compile_xla_step(cell, data_format, structure):
    """The forward and backward ``tf.function(jit_compile=True)`` of :func:`xla_step`."""
    import tensorflow as tf

    def table(transformed):  # {id(variable): its Winograd kernel}, as the cell's step passes the variables
        return {id(cell.weights[index]): u for (index, _), u in zip(_winograd_weights(cell), transformed)}

    def run(x, states, values, conv):
        """``cell.step``'s result as a flat tuple: the new states, the auxiliary outputs, and
        the output where it is not one of the states (recorded in ``structure``)."""
        context = dict(layout=data_format, convolve=conv, fused=None)
        with keras.StatelessScope(state_mapping=list(zip(cell.weights, values))), loop_context(**context):
            result = cell.step(x, states)
        output, new_states = result[0], tuple(result[1])
        auxiliary = tuple(result[2]) if len(result) > 2 else ()
        index = next((i for i, state in enumerate(new_states) if state is output), None)
        structure.update(states=len(new_states), output=index, auxiliary=len(auxiliary))
        return (*new_states, *auxiliary) + (() if index is not None else (output,))

    def forward(x, states, values, transformed):
        record = _RecordedConvolutions(table(transformed))
        return run(x, states, values, record), tuple(record.outputs)

    def backward(x, states, values, conv_outputs, output_gradients):
        sources = _differentiable(x, states, values)
        with tf.GradientTape() as tape:
            tape.watch(sources)
            outputs = run(x, states, values, _ReplayedConvolutions(conv_outputs))
        gradients = tape.gradient(outputs, sources, output_gradients=list(output_gradients))
        return tf.nest.flatten(gradients)  # None for a weight the step does not use

    return tf.function(forward, jit_compile=True), tf.function(backward, jit_compile=True)


class _RecordedConvolutions:
    """The forward XLA step's convolutions (a convolution hook): :func:`xla_conv2d`,
    each output recorded for the backward step; a cell's gate sum is recorded as the sum
    (:func:`placed_sum`), which is all the backward step needs of its terms. 1x1
    convolutions (the ST-LSTM's conv_last) are not recorded: the backward step recomputes
    them (:func:`_recomputed`)."""

    def __init__(self, transformed=None):
        self.outputs = []
        self.transformed = transformed or {}  # {id(kernel variable): its Winograd kernel}

    def __call__(self, x, kernel, data_format):
        if _recomputed(kernel):
            return xla_conv2d(x, kernel, data_format)
        return self.summed([_whole_term(x, kernel)], kernel.shape[-1], data_format)

    def summed(self, terms, out_channels, data_format):
        convolved = [
            (xla_conv2d(x, kernel, data_format, u=self.transformed.get(id(kernel))), places) for x, kernel, places in terms
        ]
        self.outputs.append(placed_sum(convolved, out_channels, data_format))
        return self.outputs[-1]


class _ReplayedConvolutions:
    """The backward XLA step's convolutions: the recorded outputs, in the forward's order,
    with the convolutions' gradients (:func:`_replayed_sum`)."""

    def __init__(self, recorded):
        self.recorded = iter(recorded)

    def __call__(self, x, kernel, data_format):
        if _recomputed(kernel):
            return xla_conv2d(x, kernel, data_format)
        return self.summed([_whole_term(x, kernel)], kernel.shape[-1], data_format)

    def summed(self, terms, out_channels, data_format):
        return _replayed_sum(terms, next(self.recorded), out_channels, data_format)


def _recomputed(kernel):
    """Whether the backward XLA step recomputes this convolution instead of keeping its output:
    1x1 kernels, whose multiply-adds are 1/25 of a 5x5's (the ST-LSTM's conv_last), while
    their outputs are as large as any other's."""
    return tuple(kernel.shape[:2]) == (1, 1)


def _whole_term(x, kernel):
    """``conv(x, kernel)`` as the one term of a gate sum: every output channel in place."""
    return x, kernel, ((0, 0, kernel.shape[-1]),)


def _replayed_sum(terms, y, out_channels, data_format):
    """``y``, recorded as the :func:`placed_sum` of the :func:`xla_conv2d` of ``terms``
    (``(x, kernel, placements)``), with the gradients of those convolutions (TensorFlow).

    The gradient is that of the recomputed sum; its forward computation is unused, so XLA
    removes it.
    """
    import tensorflow as tf

    places = [p for _, _, p in terms]
    flat = [ops.convert_to_tensor(value) for x, kernel, _ in terms for value in (x, kernel)]

    @tf.custom_gradient
    def replayed(*arguments):
        inputs, y = list(arguments[:-1]), arguments[-1]

        def grad(dy):
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                convolved = [(xla_conv2d(x, kernel, data_format), p) for x, kernel, p in zip(inputs[0::2], inputs[1::2], places)]
                recomputed = placed_sum(convolved, out_channels, data_format)
            return (*tape.gradient(recomputed, inputs, output_gradients=dy), None)

        return tf.identity(y), grad

    return replayed(*flat, y)
