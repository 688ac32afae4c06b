"""The shared frame loop of PredRNN and ConvLSTM: patching, teacher forcing, head, rollout."""

import keras
import numpy as np
from keras import ops

from predrnn.acceleration import loops
from predrnn.acceleration.convolution import conv2d, current_layout
from predrnn.acceleration.memory import release_after_compiling
from predrnn.acceleration.options import CHANNELS_FIRST, get_options, internal_data_format
from predrnn.acceleration.tensorflow_steps import run_step
from predrnn.layers.common import (
    check_kernel_size,
    check_positive_int,
    get_kernel_initializer,
    serialize_kernel_initializer,
)
from predrnn.layers.conv_recurrent_cell import get_cell_class
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


def _runs_on_one_replica(model):
    """Whether no distribution spreads the model's steps over replicas (a Keras
    ``keras.distribution`` or TensorFlow's ``tf.distribute`` strategy of several replicas)."""
    if keras.distribution.distribution() is not None:
        return False
    strategy = getattr(model, "distribute_strategy", None)  # TensorFlow's trainer only
    return strategy is None or strategy.num_replicas_in_sync == 1


def _is_concrete(value):
    return isinstance(value, (np.ndarray, np.generic, list, tuple))


@keras.saving.register_keras_serializable(package="predrnn")
class VideoPredictor(keras.Model):
    """A stack of recurrent cells over time: patching, teacher forcing, the head, rollout.

    The base of :class:`PredRNN` and :class:`ConvLSTM`, and the model of any registered cell
    (:func:`predrnn.layers.register_cell`; docs/adding-a-cell.md): ``cell`` names it. Each
    layer is one cell ``filters[l]`` wide. The cell's states (its ``state_spec``) start at
    zero; a state that *flows up* (PredRNN's memory) goes from layer ``l`` to ``l + 1`` at
    each step and from the top layer to layer 0 at the next step (1x1 adapters where the
    widths differ); the others stay in their layer. A 1x1 head maps the top layer's output
    back to patch space.

    The frame loop (:meth:`_unrolled`) is the reference computation. It runs in the layout
    and with the fast paths of :mod:`predrnn.acceleration` (the options read once per call):
    channels-first on PyTorch, XLA cell steps on TensorFlow, Winograd convolutions, and on
    JAX, in traced calls, one ``keras.ops.scan`` (:func:`~predrnn.acceleration.loops.scanned_unroll`).
    Inputs and outputs are always channels-last.

    Args:
        cell: the registered name of the cell (or the cell class).
        filters: widths of the layers, bottom to top.
        kernel_size: odd conv kernel size.
        patch_size: the frame height and width must be divisible by it.
        use_layer_norm: layer norm inside the cells; fixes the frame size at build time.
        forget_bias: passed to the cells (added to forget gates).
        kernel_initializer: ``"reference"`` (PyTorch's conv default) or any Keras initializer.
        remat: rematerialise each time step in the backward pass (``keras.remat``): only
            the step's inputs and states are kept per time step, the rest is recomputed
            (about a third more compute for much less activation memory on long sequences).
        cell_arguments: further constructor arguments of the cells (a dict), if any.

    Inputs: ``{"frames": (B, T, H, W, C), "teacher_forcing_mask": (B, T-2)}``, frames as
    floats in [0, 1]. The loop runs ``t = 0 .. T-2`` and returns the ``T-1`` predictions
    of frames ``1 .. T-1``. At step ``t >= 1`` the input is
    ``mask[:, t-1] * frames[:, t] + (1 - mask[:, t-1]) * previous_prediction``.
    """

    cell_prefix = None  # the cells' names: f"{cell_prefix}_{layer}" (default: the cell's registered name)

    def __init__(
        self,
        cell="conv_lstm",
        filters=(64, 64, 64, 64),
        kernel_size=5,
        patch_size=4,
        use_layer_norm=False,
        forget_bias=1.0,
        kernel_initializer="reference",
        remat=False,
        cell_arguments=None,
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
        cell_class = get_cell_class(cell)
        self.cell = cell_class.cell_name or cell_class.__name__
        self.filters = filters
        self.kernel_size = check_kernel_size(kernel_size)
        self.patch_size = check_positive_int("patch_size", patch_size)
        self.use_layer_norm = bool(use_layer_norm)
        self.forget_bias = float(forget_bias)
        self.kernel_initializer = serialize_kernel_initializer(kernel_initializer)
        self._initializer = get_kernel_initializer(kernel_initializer)
        self.remat = bool(remat)
        self.cell_arguments = dict(cell_arguments or {})
        self.frame_shape = None  # (H, W, C), known once built
        prefix = self.cell_prefix or self.cell
        self.cells = [
            cell_class(
                width,
                kernel_size=self.kernel_size,
                use_layer_norm=self.use_layer_norm,
                forget_bias=self.forget_bias,
                kernel_initializer=kernel_initializer,
                name=f"{prefix}_{index}",
                **self.cell_arguments,
            )
            for index, width in enumerate(self.filters)
        ]

    # ----------------------------------------------------------------- building
    def build(self, input_shape):
        shape = _frames_shape(input_shape)
        if len(shape) != 5:
            raise ValueError(f"frames must have shape (batch, time, height, width, channels). Received: frames shape {shape}")
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
        for index, cell in enumerate(self.cells):
            cell.build((None, height, width, in_channels if index == 0 else self.filters[index - 1]))
        # 1x1 adapters where a state that flows up enters a layer of another width. Layer 0
        # receives the top layer's state of the previous step.
        self.state_adapters = {}
        for spec in self._flowing_states():
            for index, target in enumerate(self.filters):
                source = self.filters[index - 1]  # index 0 -> the top layer
                if source != target:
                    self.state_adapters[f"{spec.name}_{index}"] = self.add_weight(
                        name=f"{spec.name}_adapter_{index}", shape=(1, 1, source, target), initializer=self._initializer
                    )

    def step_flops(self, batch, height, width, in_channels):
        """FLOPs of one time step through the stack and the head (patch space: ``height`` x
        ``width`` x ``in_channels``): every convolution of the cells (from their
        ``convolutions``), the adapters and the head, at 2 FLOPs per multiply-add."""
        pixels = 2 * batch * height * width
        total = 0
        for index, (cell, width_) in enumerate(zip(self.cells, self.filters)):
            source = self.filters[index - 1]  # a state that flows up comes from the layer below (the top for 0)
            if source != width_:
                total += len(self._flowing_states()) * pixels * source * width_
            total += cell.flops(batch, height, width, in_channels if index == 0 else self.filters[index - 1])
        return total + pixels * self.filters[-1] * in_channels  # the 1x1 head

    def _flowing_states(self):
        return [spec for spec in self.cells[0].state_spec if spec.flows_up]

    # --------------------------------------------------------------- validation
    def _check_frames(self, frames, name="frames"):
        shape = tuple(frames.shape)
        if len(shape) != 5:
            raise ValueError(f"{name} must have shape (batch, time, height, width, channels). Received: {name} shape {shape}")
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
        if len(mask_shape) != 2 or (time is not None and mask_shape[1] is not None and mask_shape[1] != time - 2):
            raise ValueError(
                f"{TEACHER_FORCING_MASK} must have shape (batch, T-2) = (batch, {None if time is None else time - 2})"
                f" for frames of T={time} steps: one value per sample for each input step 1..T-2. "
                f"Received: {TEACHER_FORCING_MASK} shape {mask_shape}"
            )

    def __call__(self, inputs, *args, **kwargs):
        self._check_inputs(inputs)
        return super().__call__(inputs, *args, **kwargs)

    # --------------------------------------------------------------- the loop
    def _head(self, hidden):
        """The 1x1 head, top hidden state -> the next frame's patches, in the variable dtype.

        Under mixed precision the head (a sliver of the step's work) computes in float32,
        as Keras advises for a model's output layer, so the predictions and the loss keep
        float32's resolution; the loop feeds the prediction back in the compute dtype. What
        it changes in the scores is in docs/performance.md.
        """
        return conv2d(ops.cast(hidden, self.head_kernel.dtype), self.head_kernel, current_layout())

    def _initial_state(self):
        """``(per-layer states, flowing states)`` at t=0: ``None``, exact zeros (the first step skips their convolutions)."""
        spec = self.cells[0].state_spec
        per_layer = [tuple(None for s in spec if not s.flows_up) for _ in self.cells]
        return per_layer, tuple(None for s in spec if s.flows_up)

    def _step(self, x, state, with_auxiliary=False):
        """One time step through the stack: ``(top output, new state, auxiliary term or None)``."""
        per_layer, flowing = state
        new_per_layer, terms = [], []
        inputs = x
        for index, cell in enumerate(self.cells):
            flowing = tuple(self._adapt(spec.name, index, value) for spec, value in zip(self._flowing_states(), flowing))
            kept, passed = iter(per_layer[index]), iter(flowing)
            states = tuple(next(passed) if spec.flows_up else next(kept) for spec in cell.state_spec)
            result = run_step(cell, inputs, states, current_layout())
            inputs, new_states = result[0], result[1]
            new_per_layer.append(tuple(s for spec, s in zip(cell.state_spec, new_states) if not spec.flows_up))
            flowing = tuple(s for spec, s in zip(cell.state_spec, new_states) if spec.flows_up)
            if with_auxiliary:
                terms.append(self._auxiliary_term(index, result[2]))
        term = ops.mean(ops.stack(terms)) if terms else None
        return inputs, (new_per_layer, flowing), term

    def _adapt(self, name, index, value):
        adapter = self.state_adapters.get(f"{name}_{index}")
        if adapter is None or value is None:
            return value
        return conv2d(value, adapter, current_layout())

    def _auxiliary_term(self, index, auxiliary):
        """A loss term out of layer ``index``'s auxiliary outputs (PredRNN-V2's decoupling)."""
        raise NotImplementedError(f"{type(self).__name__} has no auxiliary loss term.")

    def _unroll(self, patches, num_steps, context_length, mask=None, with_auxiliary=False, training=None):
        """Run the stack over ``num_steps`` steps in patch space.

        Steps ``t < context_length`` read ``patches[:, t]``; later steps read
        ``mask``-mixed truth and prediction, or the prediction alone when ``mask`` is
        None. Returns the stacked predictions ``(B, num_steps, h, w, p*p*C)`` and the
        mean auxiliary term (or None). ``training``: the model call's (an inference call
        may cast kernels once per sequence under mixed precision).
        """
        options = get_options()
        layout = internal_data_format(options)
        if layout == CHANNELS_FIRST:
            patches = ops.transpose(patches, (0, 1, 4, 2, 3))
        scanned = loops.scans_its_time_loop(self, options, patches, num_steps)
        with loops.sequence(self, options, layout, scanned=scanned, training=training):
            run = loops.scanned_unroll if scanned else type(self)._unrolled
            predictions, term = run(self, patches, num_steps, context_length, mask, with_auxiliary)
        if layout == CHANNELS_FIRST:
            predictions = ops.transpose(predictions, (0, 1, 3, 4, 2))
        return predictions, term

    def _unrolled(self, patches, num_steps, context_length, mask, with_auxiliary):
        """The frame loop, in the current loop layout."""
        state = self._initial_state()  # None = exact zeros: the first step skips their convs
        remat_step = loops.remat_step(self, with_auxiliary) if self.remat else None
        predictions, terms = [], []
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
                hidden, state, term = remat_step(x, state)
            else:
                hidden, state, term = self._step(x, state, with_auxiliary)
            output = self._head(hidden)
            predictions.append(output)
            prediction = ops.cast(output, patches.dtype)  # fed back in the compute dtype
            if term is not None:
                terms.append(term)
        term = ops.mean(ops.stack(terms)) if terms else None
        return ops.stack(predictions, axis=1), term

    def _forward(self, frames, mask, with_auxiliary, training=None):
        patches = to_patches(frames, self.patch_size)
        predictions, decoupling = self._unroll(
            patches, frames.shape[1] - 1, context_length=1, mask=mask, with_auxiliary=with_auxiliary, training=training
        )
        return from_patches(predictions, self.patch_size), decoupling

    def _output(self, predictions):
        """Predictions leave the model in the variable dtype (float32 under mixed precision)."""
        if predictions.dtype != self.dtype:
            predictions = ops.cast(predictions, self.dtype)
        return predictions

    def call(self, inputs, training=None):
        frames = ops.cast(inputs[FRAMES], self.compute_dtype)
        predictions, _ = self._forward(frames, inputs[TEACHER_FORCING_MASK], with_auxiliary=False, training=training)
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
        function, without ``predict``'s data pipeline, which costs a large share of a short
        rollout on TensorFlow), unless
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
        system (:mod:`predrnn.acceleration.memory`): on TensorFlow after the first call (which traces and
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
        return release_after_compiling(function)

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
                "cell": self.cell,
                "filters": list(self.filters),
                "kernel_size": self.kernel_size,
                "patch_size": self.patch_size,
                "use_layer_norm": self.use_layer_norm,
                "forget_bias": self.forget_bias,
                "kernel_initializer": self.kernel_initializer,
                "remat": self.remat,
                "cell_arguments": dict(self.cell_arguments),
            }
        )
        return config
