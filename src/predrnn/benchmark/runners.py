"""What runs in a benchmark worker: a Keras model of one backend, or the PyTorch reference,
trained on batches of the library's input pipeline."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from predrnn.benchmark.config import BenchmarkConfig, Implementation
from predrnn.benchmark.machine import device_name, matmul_size, measure_matmul_peak, memory_report, peak_rss_bytes


def _import_input_pipeline():
    """Import what :class:`_Batches` uses before a runner measures its memory baseline: the
    data layer imports Keras, which the reference itself does not use."""
    from predrnn.data import MovingMNISTStream, VideoPredictionDataset  # noqa: F401


class _Batches:
    """Training batches from the library's input pipeline, with the time spent waiting for them.

    Moving MNIST (one channel): :class:`~predrnn.data.VideoPredictionDataset` over a
    :class:`~predrnn.data.MovingMNISTStream` with the PredRNN-V2 reverse schedule, fetched
    synchronously in the training loop (no prefetch: the wait is an upper bound). Other
    channel counts: random frames.
    """

    def __init__(self, config: BenchmarkConfig, seed: int = 0):
        self.config = config
        self.index = 0
        self.dataset = None
        self.source = "random frames"
        if config.channels == 1:
            from predrnn.data import MovingMNISTStream, VideoPredictionDataset
            from predrnn.schedules import ReverseSchedule

            digit_size = min(28, max(1, round(28 * config.image_size / 64)))  # 28 on 64x64 canvases
            stream = MovingMNISTStream(seed, num_frames=config.total_length, image_size=config.image_size, digit_size=digit_size)
            self.dataset = VideoPredictionDataset(
                stream,
                config.batch_size,
                config.input_length,
                config.output_length,
                schedule=ReverseSchedule(),
                seed=seed,
                steps_per_epoch=1_000_000,
            )
            self.source = "Moving MNIST stream + VideoPredictionDataset (synchronous)"
        self.rng = np.random.default_rng(seed)

    def next(self):
        """``(frames (B, T, H, W, C), mask (B, T-2), seconds spent)``."""
        start = time.perf_counter()
        if self.dataset is not None:
            inputs, _ = self.dataset[self.index % len(self.dataset)]
            frames, mask = inputs["frames"], inputs["teacher_forcing_mask"]
        else:
            c = self.config
            frames = self.rng.random((c.batch_size, c.total_length, c.image_size, c.image_size, c.channels), dtype=np.float32)
            mask = (self.rng.random((c.batch_size, c.total_length - 2)) < 0.5).astype(np.float32)
        self.index += 1
        return frames, mask, time.perf_counter() - start

    def context(self):
        """A fixed batch of ``input_length`` context frames for the rollouts."""
        frames, _, _ = self.next()
        return np.ascontiguousarray(frames[:, : self.config.input_length])


class _KerasRunner:
    """A Keras model of the current backend, trained with ``train_on_batch``."""

    def __init__(self, config: BenchmarkConfig, impl: Implementation, seed: int = 0):
        import keras

        keras.ops.convert_to_tensor(np.zeros(1, "float32"))  # the backend is imported and running
        if impl.backend != keras.backend.backend():
            raise RuntimeError(
                f"{impl.spec} needs KERAS_BACKEND={impl.backend} but this process runs "
                f"{keras.backend.backend()}; run it isolated (the default)."
            )
        self.config, self.impl = config, impl
        keras.utils.set_random_seed(seed)
        _import_input_pipeline()
        # The baseline comes after the seed: keras.utils.set_random_seed imports TensorFlow
        # where it is installed, on every backend (~470 MB resident on this CPU), and so does
        # Keras' serialization when a job saves a checkpoint; that is Keras' footprint, not
        # the step's.
        self.baseline_rss = peak_rss_bytes()
        self.previous_policy = keras.mixed_precision.global_policy().name
        keras.mixed_precision.set_global_policy(impl.precision)
        self.model = config.build_model(**({"remat": True} if impl.remat else {}))
        jit = "auto" if impl.xla is None else impl.xla
        self.model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mean_squared_error", jit_compile=jit)
        self.batches = _Batches(config, seed)
        self.context = self.batches.context()

    def resolved_xla(self) -> bool:
        return bool(self.model.jit_compile)

    def step(self) -> dict:
        frames, mask, wait = self.batches.next()
        cpu, start = time.process_time(), time.perf_counter()
        loss = self.model.train_on_batch({"frames": frames, "teacher_forcing_mask": mask}, frames[:, 1:])
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        return {"step_s": seconds, "cpu_s": cpu, "data_wait_s": wait, "loss": float(np.asarray(loss).reshape(-1)[0])}

    def rollout(self) -> dict:
        start = time.perf_counter()
        out = self.model.rollout(self.context, self.config.output_length)
        seconds = time.perf_counter() - start
        return {"rollout_s": seconds, "finite": bool(np.isfinite(np.asarray(out, np.float32)).all())}

    def matmul(self) -> dict:
        import keras

        dtype = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}[self.impl.precision]
        size = matmul_size(device_name(keras.backend.backend()), dtype)
        return measure_matmul_peak(size=size, repeats=3, dtype=dtype, library="keras")

    def summary(self) -> dict:
        import keras

        versions = {"keras": keras.__version__}
        backend = keras.backend.backend()
        module = __import__(backend)
        versions[backend] = getattr(module, "__version__", "?")
        out = {
            "versions": versions,
            "xla": self.resolved_xla(),
            "device": device_name(backend),
            "parameters": int(sum(np.prod(v.shape) for v in self.model.trainable_weights)),
            "data_source": self.batches.source,
            "layout": internal_layout(),
        }
        out.update(memory_report(backend, self.baseline_rss))
        keras.mixed_precision.set_global_policy(self.previous_policy)
        return out


def internal_layout() -> str:
    from predrnn.acceleration import internal_data_format

    return internal_data_format()


def _load_reference_module(path=None):
    """The PyTorch reference: :mod:`predrnn.benchmark.reference_torch`, or the file ``path``
    (another reference with the same ``ReferenceTrainer`` interface)."""
    import importlib
    import importlib.util

    if path is None:
        return importlib.import_module("predrnn.benchmark.reference_torch")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No reference implementation at {path}. Pass the path of a Python file or drop --reference-path."
        )
    spec = importlib.util.spec_from_file_location("predrnn_reference_torch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _ReferenceRunner:
    """The PyTorch re-implementation of the official training step (float32, channels-first)."""

    def __init__(self, config: BenchmarkConfig, impl: Implementation, seed: int = 0, reference_path=None):
        if config.model != "predrnn":
            raise ValueError("The PyTorch reference implements PredRNN only (model='predrnn').")
        if len(set(config.filters)) != 1:
            raise ValueError("The official code (and its reference) needs equal layer widths.")
        module = _load_reference_module(reference_path)
        import torch

        _import_input_pipeline()
        self.baseline_rss = peak_rss_bytes()  # after importing the framework, as for Keras

        self.torch = torch
        self.config = config
        self.trainer = module.ReferenceTrainer(
            config.filters,
            config.batch_size,
            image_size=config.image_size,
            channels=config.channels,
            patch_size=config.patch_size,
            kernel_size=config.kernel_size,
            total_length=config.total_length,
            input_length=config.input_length,
            layer_norm=config.use_layer_norm,
            decoupling_beta=config.decoupling_weight,
            seed=seed,
            device="cuda" if torch.cuda.is_available() else "cpu",
        )
        self.batches = _Batches(config, seed)
        context = self.batches.context()
        c = config
        future = np.zeros((c.batch_size, c.output_length) + context.shape[2:], np.float32)
        self.rollout_frames = np.concatenate([context, future], axis=1)
        self.rollout_mask = np.zeros((c.batch_size, c.total_length - 2), np.float32)
        self.rollout_mask[:, : c.input_length - 1] = 1.0

    def resolved_xla(self) -> bool:
        return False

    def step(self) -> dict:
        frames, mask, wait = self.batches.next()
        cpu, start = time.process_time(), time.perf_counter()
        loss = self.trainer.train(frames, mask)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        return {"step_s": seconds, "cpu_s": cpu, "data_wait_s": wait, "loss": float(loss)}

    def rollout(self) -> dict:
        start = time.perf_counter()
        out = self.trainer.test(self.rollout_frames, self.rollout_mask)
        seconds = time.perf_counter() - start
        return {"rollout_s": seconds, "finite": bool(np.isfinite(out).all())}

    def matmul(self) -> dict:
        return measure_matmul_peak(size=matmul_size(device_name("torch"), "float32"), repeats=3, library="torch")

    def summary(self) -> dict:
        out = {
            "versions": {"torch": self.torch.__version__},
            "xla": False,
            "device": device_name("torch"),
            "parameters": int(sum(p.numel() for p in self.trainer.network.parameters())),
            "data_source": self.batches.source,
            "layout": "channels_first",
        }
        out.update(memory_report("torch", self.baseline_rss))
        return out


def make_runner(config: BenchmarkConfig, impl: Implementation, seed: int, reference_path=None):
    if impl.kind == "reference":
        return _ReferenceRunner(config, impl, seed, reference_path)
    return _KerasRunner(config, impl, seed)
