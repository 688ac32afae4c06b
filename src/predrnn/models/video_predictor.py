"""The shared frame loop of PredRNN and ConvLSTM: patching, teacher forcing, head, rollout."""

import contextlib

import keras
import numpy as np
from keras import ops

from predrnn.layers.common import (
    CHANNELS_FIRST,
    check_kernel_size,
    check_positive_int,
    conv2d,
    fused_gates,
    conv_hook,
    get_kernel_initializer,
    internal_data_format,
    model_xla_cells,
    serialize_kernel_initializer,
    torch_records_gradients,
    torch_winograd,
    weights_read_per_step,
)
from predrnn.layers.winograd import (
    summed_transformed_winograd_conv2d,
    transformed_winograd_conv2d,
    winograd_applies,
    winograd_kernel,
    winograd_tile,
)
from predrnn.memory import release_after_jax_compiles, released_after_first_call
from predrnn.patching import check_patchable, from_patches, to_patches
from predrnn.schedules import inference_teacher_forcing_mask

FRAMES = "frames"
TEACHER_FORCING_MASK = "teacher_forcing_mask"


def _frames_shape(input_shape):
    """The frames shape out of whatever Keras hands to ``build``."""
    if isinstance(input_shape, dict):
        if FRAMES not in input_shape:
            raise ValueError(
                f"Model inputs must be a dict with keys {FRAMES!r} and {TEACHER_FORCING_MASK!r}. "
                f"Received keys: {sorted(input_shape)}"
            )
        return tuple(input_shape[FRAMES])
    return tuple(input_shape)


def _loop_winograd_tile(kernel_shape, dtype):
    """The Winograd tile of a cell convolution in a loop that runs Winograd's (JAX's scanned
    loop: every 3x3-7x7 float32 kernel; PyTorch's loop: where :func:`torch_winograd` says,
    which depends on whether autograd records), or None for the direct convolution."""
    if keras.backend.backend() == "torch" and not torch_winograd(kernel_shape, dtype, torch_records_gradients()):
        return None
    return winograd_applies(kernel_shape, dtype)


def _no_torch_gradient():
    import torch

    return torch.no_grad()


class _CastOnceConvolution:
    """The cell convolutions of an inference pass under mixed precision (a
    :func:`~predrnn.layers.common.conv_hook` function): each kernel is cast to the compute
    dtype once per sequence, not at every time step. On TensorFlow the 4x64 model's casts
    were 62 ms of the ~0.9 s of op time of a bfloat16 rollout, and casting once made the
    rollout 0.93x (one process, 6 alternating rounds, the same predictions to the bit;
    benchmarks/README.md, "Session 18"); PyTorch's loop has its own hook. Only without
    gradients (``training=False``): the time steps' gradients of a kernel cast once would be
    summed in the compute dtype."""

    def __init__(self):
        self.cast = {}  # id(kernel) -> (kernel, kernel in the compute dtype); the kernel kept so its id stays its own

    def __call__(self, x, kernel, data_format):
        cached = self.cast.get(id(kernel))
        if cached is None:
            cached = self.cast[id(kernel)] = (kernel, ops.cast(kernel, x.dtype))
        return conv2d(x, cached[1], data_format)


class _WinogradLoopConvolution:
    """The cell convolutions of a time loop that runs Winograd's (``VideoPredictor._loop_convolution``),
    a :func:`~predrnn.layers.common.conv_hook` function.

    ``transformed`` maps ``id(kernel)`` to the kernel transformed once per sequence (by the
    same rule); other kernels are transformed where they are used (e.g. the first step's
    slices of fused kernels), or convolved by :func:`conv2d` where :func:`_loop_winograd_tile`
    says so. With ``sums`` (PyTorch) the cells' gate sums are one
    :func:`~predrnn.layers.winograd.summed_transformed_winograd_conv2d` each, and the table's
    kernels are transformed without a gradient: every call pulls its gradient back to the
    kernel itself (what the time loop then sums is the kernel's gradient, not the 2.56x
    larger ``u``'s).
    """

    def __init__(self, transformed, sums=False):
        self.transformed, self.sums = transformed, sums

    def __call__(self, x, kernel, data_format):
        u = self.transformed.get(id(kernel))
        if u is not None:
            size = kernel.shape[0]
            source = kernel if self.sums else None
            return transformed_winograd_conv2d(x, u, size, winograd_tile(size), data_format, kernel=source)
        tile = _loop_winograd_tile(kernel.shape, x.dtype)
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


def _runs_on_one_replica(model):
    """Whether no distribution spreads the model's steps over replicas (a Keras
    ``keras.distribution`` or TensorFlow's ``tf.distribute`` strategy of several replicas)."""
    if keras.distribution.distribution() is not None:
        return False
    strategy = getattr(model, "distribute_strategy", None)  # TensorFlow's trainer only
    return strategy is None or strategy.num_replicas_in_sync == 1


def _is_traced(x):
    """Whether ``x`` is a JAX tracer (inside ``jit``, as in ``fit``, ``predict`` and ``rollout``).

    Eager JAX calls keep the unrolled loop: there every operation is dispatched and compiled
    on its own, and Winograd's many small operations cost more than they save (the JAX
    pass of ``tests/test_models.py``, all eager calls, took 197 s with the scan against 105 s).
    """
    import jax

    return isinstance(x, jax.core.Tracer)


def _is_concrete(value):
    return isinstance(value, (np.ndarray, np.generic, list, tuple))


class VideoPredictor(keras.Model):
    """Base class of :class:`PredRNN` and :class:`ConvLSTM`: everything but the cells.

    Subclasses implement ``_build_stack(in_channels, height, width)``,
    ``_initial_state()`` (the state structure at t=0, ``None`` standing for exact zeros) and
    ``_step(x, state, with_decoupling, data_format, constants)`` (one time step through the
    whole stack, returning the top hidden state, the new state and the step's decoupling-loss
    term or ``None``; ``constants`` are the per-cell fused kernels of
    ``_step_constants()``, computed once per sequence, or ``None``). The loop runs in :func:`~predrnn.layers.common.internal_data_format`
    (channels-first on the torch backend); inputs and outputs are always channels-last.

    On JAX with XLA cells (``PREDRNN_XLA_CELLS``, by default on the CPU for 3x3-7x7 kernels)
    the steps after the first run as one ``keras.ops.scan`` with Winograd convolutions
    (:meth:`_scanned_unroll`) when the call is traced (``fit``, ``predict``, ``rollout``, any
    ``jax.jit``); elsewhere, and in eager calls, the loop is unrolled in Python.

    ``remat=True`` rematerialises each time step in the backward pass (``keras.remat``):
    only the step's inputs and states are kept per time step, the rest is recomputed
    (about a third more compute for much less activation memory on long sequences).

    Inputs: ``{"frames": (B, T, H, W, C), "teacher_forcing_mask": (B, T-2)}``, frames as
    floats in [0, 1]. The loop runs ``t = 0 .. T-2`` and returns the ``T-1`` predictions
    of frames ``1 .. T-1``. At step ``t >= 1`` the input is
    ``mask[:, t-1] * frames[:, t] + (1 - mask[:, t-1]) * previous_prediction``.
    """

    def __init__(
        self,
        filters=(64, 64, 64, 64),
        kernel_size=5,
        patch_size=4,
        use_layer_norm=False,
        forget_bias=1.0,
        kernel_initializer="reference",
        remat=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(filters, int):
            filters = (filters,)
        filters = tuple(filters)
        if not filters:
            raise ValueError(f"filters must name at least one layer width. Received: filters={filters}")
        for width in filters:
            check_positive_int("each entry of filters", width)
        self.filters = filters
        self.kernel_size = check_kernel_size(kernel_size)
        self.patch_size = check_positive_int("patch_size", patch_size)
        self.use_layer_norm = bool(use_layer_norm)
        self.forget_bias = float(forget_bias)
        self.kernel_initializer = serialize_kernel_initializer(kernel_initializer)
        self._initializer = get_kernel_initializer(kernel_initializer)
        self.remat = bool(remat)
        self.frame_shape = None  # (H, W, C), known once built

    # ----------------------------------------------------------------- building
    def build(self, input_shape):
        shape = _frames_shape(input_shape)
        if len(shape) != 5:
            raise ValueError(
                "frames must have shape (batch, time, height, width, channels). "
                f"Received: frames shape {shape}"
            )
        height, width, channels = shape[2:]
        if channels is None:
            raise ValueError(f"The channel dimension of frames must be known. Received: frames shape {shape}")
        check_patchable(height, width, self.patch_size)
        p = self.patch_size
        self.frame_shape = (height, width, channels)
        patch_height = None if height is None else height // p
        patch_width = None if width is None else width // p
        self._build_stack(p * p * channels, patch_height, patch_width)
        self.head_kernel = self.add_weight(
            name="head_kernel",
            shape=(1, 1, self.filters[-1], p * p * channels),
            initializer=self._initializer,
            autocast=False,  # the head computes in the variable dtype: see _head
        )
        self.built = True

    def _build_stack(self, in_channels, height, width):
        raise NotImplementedError(f"{type(self).__name__} must implement _build_stack().")

    def _initial_state(self):
        raise NotImplementedError(f"{type(self).__name__} must implement _initial_state().")

    def _step(self, x, state, with_decoupling, data_format, constants=None):
        raise NotImplementedError(f"{type(self).__name__} must implement _step().")

    def _step_constants(self):
        """Per cell: its fused gate kernels (computed once per sequence), or None with layer norm."""
        if not fused_gates():
            return None
        return [None if cell.use_layer_norm else cell.fused_kernels() for cell in self.cells]

    # --------------------------------------------------------------- validation
    def _check_frames(self, frames, name="frames"):
        shape = tuple(frames.shape)
        if len(shape) != 5:
            raise ValueError(
                f"{name} must have shape (batch, time, height, width, channels). "
                f"Received: {name} shape {shape}"
            )
        height, width, channels = shape[2:]
        check_patchable(height, width, self.patch_size)
        if self.frame_shape is not None:
            built_channels = self.frame_shape[2]
            if channels is not None and built_channels is not None and channels != built_channels:
                raise ValueError(
                    f"This model was built for {built_channels}-channel frames but {name} have "
                    f"{channels} channels. Convert the frames (e.g. to grayscale) or build a new "
                    f"model. Received: {name} shape {shape}"
                )
            if self.use_layer_norm:
                built_hw = self.frame_shape[:2]
                if (height, width) != tuple(built_hw) and None not in (height, width):
                    raise ValueError(
                        f"This model uses layer norm over a fixed frame size {built_hw[0]}x{built_hw[1]}"
                        f" but {name} are {height}x{width}. Resize the frames. Received: {name} shape {shape}"
                    )
        if _is_concrete(frames):
            values = np.asarray(frames)
            if not np.all(np.isfinite(values)):
                raise ValueError(
                    f"{name} contain NaN or infinite values ({int(np.size(values) - np.isfinite(values).sum())}"
                    " of them). Clean or re-normalise the data to [0, 1]."
                )

    def _check_inputs(self, inputs):
        if not isinstance(inputs, dict) or FRAMES not in inputs or TEACHER_FORCING_MASK not in inputs:
            got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
            raise ValueError(
                f"{type(self).__name__} takes a dict {{'{FRAMES}': (B, T, H, W, C), "
                f"'{TEACHER_FORCING_MASK}': (B, T-2)}}; for pure prediction from a context use "
                f"model.rollout(context, horizon). Received: {got}"
            )
        frames, mask = inputs[FRAMES], inputs[TEACHER_FORCING_MASK]
        self._check_frames(frames)
        time = frames.shape[1]
        if time is not None and time < 2:
            raise ValueError(f"frames need at least 2 time steps. Received: frames shape {tuple(frames.shape)}")
        mask_shape = tuple(mask.shape)
        if len(mask_shape) != 2 or (
            time is not None and mask_shape[1] is not None and mask_shape[1] != time - 2
        ):
            raise ValueError(
                f"{TEACHER_FORCING_MASK} must have shape (batch, T-2) = (batch, {None if time is None else time - 2})"
                f" for frames of T={time} steps: one value per sample for each input step 1..T-2. "
                f"Received: {TEACHER_FORCING_MASK} shape {mask_shape}"
            )

    def __call__(self, inputs, *args, **kwargs):
        self._check_inputs(inputs)
        return super().__call__(inputs, *args, **kwargs)

    # --------------------------------------------------------------- the loop
    def _head(self, hidden, data_format="channels_last"):
        """The 1x1 head, top hidden state -> the next frame's patches, in the variable dtype.

        Under mixed precision the head (a sliver of the step's work) computes in float32,
        as Keras advises for a model's output layer, so the predictions and the loss keep
        float32's resolution; the loop feeds the prediction back in the compute dtype. What
        it changed in the quickstart's scores is in benchmarks/README.md ("Mixed precision").
        """
        return conv2d(ops.cast(hidden, self.head_kernel.dtype), self.head_kernel, data_format)

    def _remat_step(self, with_decoupling, data_format, convolve=None):
        """``_step`` wrapped in ``keras.remat`` over a flat list of tensors; its convolutions
        run under the :func:`conv_hook` ``convolve`` also when PyTorch recomputes the step
        in the backward pass, outside the loop's own hook."""
        structure = {}

        def flat_step(x, *flat_state):
            state = keras.tree.pack_sequence_as(structure["state"], list(flat_state))
            # The fused kernels are rebuilt inside, and TensorFlow's XLA cell steps read their
            # weights: a rematerialised function must read the variables itself
            # (tf.recompute_grad differentiates only inputs and variables).
            with conv_hook(convolve), weights_read_per_step():
                hidden, new_state, decoupling = self._step(x, state, with_decoupling, data_format)
            outputs = [hidden] + keras.tree.flatten(new_state)
            if decoupling is not None:
                outputs.append(decoupling)
            return outputs

        rematerialised = keras.remat(flat_step)

        def step(x, state):
            structure["state"] = state
            outputs = rematerialised(x, *keras.tree.flatten(state))
            count = len(keras.tree.flatten(state))
            new_state = keras.tree.pack_sequence_as(state, list(outputs[1 : 1 + count]))
            decoupling = outputs[1 + count] if with_decoupling else None
            return outputs[0], new_state, decoupling

        return step

    def _unroll(self, patches, num_steps, context_length, mask=None, with_decoupling=False, training=None):
        """Run the stack over ``num_steps`` steps in patch space.

        Steps ``t < context_length`` read ``patches[:, t]``; later steps read
        ``mask``-mixed truth and prediction, or the prediction alone when ``mask`` is
        None. Returns the stacked predictions ``(B, num_steps, h, w, p*p*C)`` and the
        mean decoupling term (or None). ``training``: the model call's (see
        :meth:`_loop_convolution`).
        """
        data_format = internal_data_format()
        if data_format == CHANNELS_FIRST:
            patches = ops.transpose(patches, (0, 1, 4, 2, 3))
        constants = self._step_constants()
        if num_steps > 1 and self._scans_its_time_loop() and _is_traced(patches):
            predictions, decoupling = self._scanned_unroll(patches, num_steps, context_length, mask, with_decoupling, data_format, constants)
        else:
            convolve = self._loop_convolution(constants, training=training)
            with conv_hook(convolve):
                predictions, decoupling = self._unrolled(
                    patches, num_steps, context_length, mask, with_decoupling, data_format, constants, convolve
                )
        if data_format == CHANNELS_FIRST:
            predictions = ops.transpose(predictions, (0, 1, 3, 4, 2))
        return predictions, decoupling

    def _unrolled(self, patches, num_steps, context_length, mask, with_decoupling, data_format, constants, convolve):
        """:meth:`_unroll`'s loop as a Python loop, in ``data_format`` (``convolve``: the
        convolution hook it runs under, for the rematerialised steps)."""
        state = self._initial_state()  # None = exact zeros: the first step skips their convs
        remat_step = self._remat_step(with_decoupling, data_format, convolve) if self.remat else None
        predictions, decoupling_terms = [], []
        prediction = None
        for t in range(num_steps):
            if t < context_length:
                x = patches[:, t]
            elif mask is not None:
                weight = ops.reshape(ops.cast(mask[:, t - 1], patches.dtype), (-1, 1, 1, 1))
                x = weight * patches[:, t] + (1.0 - weight) * prediction
            else:
                x = prediction
            if remat_step is not None and t > 0:
                hidden, state, decoupling = remat_step(x, state)
            else:
                hidden, state, decoupling = self._step(x, state, with_decoupling, data_format, constants)
            output = self._head(hidden, data_format)
            predictions.append(output)
            prediction = ops.cast(output, patches.dtype)  # fed back in the compute dtype
            if decoupling is not None:
                decoupling_terms.append(decoupling)
        decoupling = ops.mean(ops.stack(decoupling_terms)) if decoupling_terms else None
        return ops.stack(predictions, axis=1), decoupling

    def _scans_its_time_loop(self):
        """JAX with XLA cells (:func:`~predrnn.layers.common.xla_cells` for every cell): the
        loop is :meth:`_scanned_unroll`, the cells' k x k convolutions Winograd's."""
        return keras.backend.backend() == "jax" and model_xla_cells(self.filters, self.kernel_size, self.compute_dtype)

    def _loop_convolution(self, constants=None, scanned=False, training=None):
        """What the time loop's cell convolutions run as (a :func:`conv_hook` function), or None
        for :func:`conv2d`: in JAX's scanned loop (``scanned``, :meth:`_scanned_unroll`),
        Winograd's for every float32 3x3-7x7 kernel; on PyTorch, Winograd's where
        :func:`torch_winograd` says so, and the cells' gate sums of them one call each with
        a single output transform. The kernels are transformed once per sequence
        (:meth:`_winograd_kernels`). Otherwise, in an inference call (``training=False``)
        under mixed precision, the kernels are cast to the compute dtype once
        (:class:`_CastOnceConvolution`)."""
        torch = keras.backend.backend() == "torch"
        if not scanned and not (torch and torch_winograd()):
            if training is False and self.compute_dtype != self.variable_dtype:
                return _CastOnceConvolution()
            return None
        return _WinogradLoopConvolution(self._winograd_kernels(constants, with_gradient=not torch), sums=torch)

    def _scanned_unroll(self, patches, num_steps, context_length, mask, with_decoupling, data_format, constants):
        """:meth:`_unroll` with steps ``1 .. num_steps - 1`` as one ``keras.ops.scan`` (JAX).

        Step 0 (zero states, their convolutions skipped) runs on its own; the later steps
        are one traced and compiled step that the loop repeats. Step ``t`` reads
        ``w * patches[:, t] + (1 - w) * prediction``, ``w`` 1 in the context, the mask after
        it, 0 without a mask. The cells' 3x3-7x7 kernels are transformed for Winograd once
        per sequence (so their gradient is summed over the steps before it is pulled back
        through the transform) and their convolutions run as
        :func:`~predrnn.layers.winograd.transformed_winograd_conv2d`.
        """
        convolve = self._loop_convolution(constants, scanned=True)
        with conv_hook(convolve):
            hidden, state, decoupling = self._step(patches[:, 0], self._initial_state(), with_decoupling, data_format, constants)
        first = self._head(hidden, data_format)
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
        remat_step = self._remat_step(with_decoupling, data_format, convolve) if self.remat else None
        no_term = ops.zeros((), "float32")

        def body(carry, step_inputs):
            prediction, state = carry
            patch, weight = step_inputs
            weight = ops.reshape(weight, (-1, 1, 1, 1))
            x = weight * patch + (1.0 - weight) * prediction
            with conv_hook(convolve):
                if remat_step is not None:
                    hidden, state, term = remat_step(x, state)
                else:
                    hidden, state, term = self._step(x, state, with_decoupling, data_format, constants)
            output = self._head(hidden, data_format)
            prediction = ops.cast(output, patch.dtype)  # fed back in the compute dtype
            return (prediction, state), (output, no_term if term is None else ops.cast(term, "float32"))

        carry = (ops.cast(first, patches.dtype), state)
        _, (later, terms) = ops.scan(body, carry, (later_patches, weights))
        predictions = ops.moveaxis(ops.concatenate([ops.expand_dims(first, 0), later], axis=0), 0, 1)
        if not with_decoupling:
            return predictions, None
        terms = ops.concatenate([ops.reshape(ops.cast(decoupling, "float32"), (1,)), terms], axis=0)
        return predictions, ops.mean(terms)

    def _winograd_kernels(self, constants=None, with_gradient=True):
        """``{id(kernel): winograd_kernel(kernel)}`` for the cells' kernels (variables, and the
        fused kernels of ``constants``) that the loop runs as Winograd's (:func:`_loop_winograd_tile`);
        ``with_gradient=False`` (PyTorch, whose loop passes the gradient to the kernels
        themselves) computes them without recording a gradient."""
        kernels = [weight for cell in self.cells for weight in cell.weights]
        kernels += [kernel for fused in constants or () if fused is not None for kernel in fused]
        tiles = [_loop_winograd_tile(kernel.shape, self.compute_dtype) for kernel in kernels]  # as the loop records
        with contextlib.nullcontext() if with_gradient else _no_torch_gradient():
            return {id(kernel): winograd_kernel(kernel, tile) for kernel, tile in zip(kernels, tiles) if tile is not None}

    def _forward(self, frames, mask, with_decoupling, training=None):
        patches = to_patches(frames, self.patch_size)
        predictions, decoupling = self._unroll(
            patches, frames.shape[1] - 1, context_length=1, mask=mask, with_decoupling=with_decoupling, training=training
        )
        return from_patches(predictions, self.patch_size), decoupling

    def _output(self, predictions):
        """Predictions leave the model in the variable dtype (float32 under mixed precision)."""
        if predictions.dtype != self.dtype:
            predictions = ops.cast(predictions, self.dtype)
        return predictions

    def call(self, inputs, training=None):
        frames = ops.cast(inputs[FRAMES], self.compute_dtype)
        predictions, _ = self._forward(frames, inputs[TEACHER_FORCING_MASK], with_decoupling=False, training=training)
        return self._output(predictions)

    def rollout(self, context, horizon, batch_size=None):
        """Predict ``horizon`` frames after ``context`` by pure autoregression.

        The rollout is the model's call with the inference mask (true frames in the context,
        its own predictions after it) on the context followed by ``horizon`` placeholder
        frames that the mask never reads. For NumPy contexts it runs through Keras'
        ``predict`` machinery: compiled once per ``(context length, horizon)`` (a
        ``tf.function``, a ``jax.jit``; ``torch.no_grad`` on PyTorch) and without gradient
        bookkeeping. Backend tensors run the call directly (eagerly or inside your trace).

        Args:
            context: ``(B, T_context, H, W, C)`` frames in [0, 1], ``T_context >= 1``.
            horizon: number of future frames, any positive integer (longer than the
                training length is fine).
            batch_size: optional; split a large context batch into chunks.

        Returns:
            ``(B, horizon, H, W, C)``: the predictions of frames ``T_context ..
            T_context + horizon - 1``, a NumPy array when ``context`` is one.
        """
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
            raise ValueError(f"horizon must be a positive integer. Received: horizon={horizon!r}")
        self._check_frames(context, name="context")
        if context.shape[1] is not None and context.shape[1] < 1:
            raise ValueError(f"context needs at least one frame. Received: context shape {tuple(context.shape)}")
        is_numpy = _is_concrete(context)
        if not self.built:
            self.build(tuple(context.shape))
        context_length, horizon = int(context.shape[1]), int(horizon)
        if is_numpy:
            context = np.asarray(context, dtype="float32")
            batch = context.shape[0]
            placeholders = np.zeros((batch, horizon) + context.shape[2:], dtype="float32")
            frames = np.concatenate([context, placeholders], axis=1)
            mask = inference_teacher_forcing_mask(batch, context_length, horizon)
            predictions = self._compiled_rollout(
                {FRAMES: frames, TEACHER_FORCING_MASK: mask}, (context_length, horizon), batch_size or batch
            )
            return np.asarray(predictions[:, context_length - 1 :])
        context = ops.convert_to_tensor(context)
        batch = ops.shape(context)[0]
        placeholders = ops.zeros((batch, horizon) + tuple(context.shape[2:]), dtype=context.dtype)
        frames = ops.concatenate([context, placeholders], axis=1)
        row = inference_teacher_forcing_mask(1, context_length, horizon)
        mask = ops.zeros((batch, row.shape[1]), dtype="float32") + ops.convert_to_tensor(row)
        predictions = self({FRAMES: frames, TEACHER_FORCING_MASK: mask})
        return predictions[:, context_length - 1 :]

    def _compiled_rollout(self, inputs, key, batch_size):
        """``predict`` with one compiled predict function per ``(context length, horizon)``.

        ``predict`` compiles ``self.predict_function`` once and reuses it; the loop length is
        static, so each rollout length keeps its own function (and ``model.predict`` its own).
        A batch of at most ``batch_size`` sequences runs as ``predict_on_batch`` (the same
        function, without ``predict``'s data pipeline: on TensorFlow ``predict`` added about
        1 s to many 1.5 s rollouts of the 4x64 model's batch, benchmarks/README.md), unless
        the model is distributed (``predict_on_batch`` does not split a batch over replicas).
        """
        cache = self.__dict__.get("_rollout_functions")
        if cache is None:
            cache = {}
            object.__setattr__(self, "_rollout_functions", cache)
        previous = self.predict_function
        self.predict_function = cache.get(key)
        try:
            if inputs[FRAMES].shape[0] <= batch_size and _runs_on_one_replica(self):
                predictions = self.predict_on_batch(inputs)
            else:
                predictions = self.predict(inputs, batch_size=batch_size, verbose=0)
            cache[key] = self.predict_function
        finally:
            self.predict_function = previous
        return predictions

    # ---------------------------------------------------------------- memory after compiling
    def make_train_function(self, force=False):
        """Keras' train function, after whose compilation the freed heap goes back to the
        system (:mod:`predrnn.memory`): on TensorFlow after the first call (which traces and
        compiles), on JAX after each XLA compilation, before the step first runs."""
        super().make_train_function(force)
        self.train_function = self._releasing_memory(self.train_function)
        return self.train_function

    def make_test_function(self, force=False):
        """Keras' test function; the heap as in :meth:`make_train_function`."""
        super().make_test_function(force)
        self.test_function = self._releasing_memory(self.test_function)
        return self.test_function

    def make_predict_function(self, force=False):
        """Keras' predict function (rollouts too); the heap as in :meth:`make_train_function`."""
        super().make_predict_function(force)
        self.predict_function = self._releasing_memory(self.predict_function)
        return self.predict_function

    def _releasing_memory(self, function):
        backend = keras.backend.backend()
        if backend == "jax":
            release_after_jax_compiles()
        elif backend == "tensorflow":
            return released_after_first_call(function)
        return function

    # ---------------------------------------------------------------- defaults
    def compile(self, optimizer=None, loss=None, **kwargs):
        """Keras ``compile`` with defaults: Adam(1e-3) and the MSE of the predicted frames."""
        if optimizer is None:
            optimizer = keras.optimizers.Adam(learning_rate=1e-3)
        if loss is None:
            loss = "mean_squared_error"
        super().compile(optimizer=optimizer, loss=loss, **kwargs)

    def compile_from_config(self, config):
        # Keras skips compiling on load when compile() is overridden; ours only adds
        # defaults, so restore the saved compile arguments (and optimizer variables).
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": list(self.filters),
                "kernel_size": self.kernel_size,
                "patch_size": self.patch_size,
                "use_layer_norm": self.use_layer_norm,
                "forget_bias": self.forget_bias,
                "kernel_initializer": self.kernel_initializer,
                "remat": self.remat,
            }
        )
        return config
