"""The training job: config -> model, data, callbacks -> a run folder.

Run folder (``workdir``)::

    config.json            the resolved config (the sampling schedule's every value included)
    run.json               backend, versions, start time, performance switches in effect
    history.csv            one row per epoch: loss, sampling probabilities, validation metrics
    logs/                  TensorBoard logs (TensorFlow backend): per-step and per-epoch scalars, validation images
    checkpoints/last.keras weights + optimizer state after the last finished epoch
    checkpoints/best.keras the best validation mse_per_frame so far
    checkpoints/state.json epoch, global step, best value (what --resume reads)
    samples/step_*.png     context | truth | prediction of one held-out sequence

A run stopped by Ctrl-C, SIGTERM or a crash resumes from ``last.keras`` with
``resume=True``: weights, optimizer state and global step come from the checkpoint;
the data stream and the teacher-forcing masks are pure functions of (seed, step), so
the resumed run follows the uninterrupted trajectory. At most the steps since the
last finished epoch are lost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
import platform
import shutil
import signal
import sys
from pathlib import Path

import numpy as np

from predrnn.errors import ConfigError, PredRNNError
from predrnn.jobs.config import ExperimentConfig, load_saved_config, model_arguments, resolve_sampling, save_config

# Config keys that may change when a run is resumed.
RESUMABLE_CHANGES = {("train", "steps"), ("train", "progress"), ("train", "workers"), ("train", "distribution")}


def build_model(model_config):
    """The configured :class:`PredRNN`, :class:`ConvLSTM` or stack of a registered cell (not built yet)."""
    from predrnn.models import ConvLSTM, PredRNN, VideoPredictor

    arguments = model_arguments(model_config)
    if model_config.architecture == "predrnn":
        return PredRNN(**arguments)
    if model_config.architecture == "convlstm":
        return ConvLSTM(**arguments)
    return VideoPredictor(cell=model_config.architecture, **arguments)  # a registered cell (docs/adding-a-cell.md)


def build_schedule(sampling_config):
    from predrnn.schedules import get_schedule

    return get_schedule(sampling_config.schedule, **sampling_config.arguments())


def _resolve_schedule(config: ExperimentConfig, workdir: Path, resume: bool) -> ExperimentConfig:
    """``config`` with its schedule resolved: the step keys left unset scale with train.steps;
    a resumed run keeps the values its config.json recorded."""
    saved = workdir / "config.json"
    return resolve_sampling(config, load_saved_config(saved).sampling if resume and saved.is_file() else None)


def _announce_schedule(config: ExperimentConfig) -> None:
    """The resolved schedule in words on stderr, with a note for a part of the run that is
    fully teacher-forced and for a schedule that does not finish within train.steps."""
    from predrnn.schedules import describe_schedule

    for line in describe_schedule(build_schedule(config.sampling), config.train.steps):
        print(line, file=sys.stderr)


def _num_epochs(train_config) -> int:
    return math.ceil(train_config.steps / train_config.steps_per_epoch)


def build_datasets(config: ExperimentConfig, initial_epoch: int = 0):
    """The training :class:`VideoPredictionDataset` and the held-out validation frames."""
    from predrnn.data.datasets import VideoPredictionDataset
    from predrnn.data.moving_mnist import MovingMNISTStream, generate_moving_mnist

    d, t = config.data, config.train
    num_frames = d.input_length + d.output_length
    if d.dataset == "moving_mnist":
        common = dict(
            num_digits=d.num_digits,
            num_frames=num_frames,
            image_size=d.image_size,
            digit_size=d.digit_size,
            step_length=d.step_length,
        )
        source = MovingMNISTStream(seed=t.seed, split="train", **common)
        validation = generate_moving_mnist(d.validation_sequences, d.validation_seed, split="test", **common)
    else:
        from predrnn.data.files import open_file_dataset

        files = open_file_dataset(d, seed=t.seed)
        print(files.line(), file=sys.stderr)
        source, held_out = files.train, files.validation
        count = 0 if held_out is None else min(len(held_out), d.validation_sequences)
        validation = np.asarray(held_out[np.arange(count)], dtype=np.float32)[:, :num_frames] if count else None
    dataset = VideoPredictionDataset(
        source,
        t.batch_size,
        d.input_length,
        d.output_length,
        schedule=build_schedule(resolve_sampling(config).sampling),
        seed=t.seed,
        shuffle=True,
        steps_per_epoch=t.steps_per_epoch,
        initial_epoch=initial_epoch,
        window_stride=d.window_stride,
        workers=t.workers,
    )
    # What was read, for run.json (None for generated Moving MNIST).
    dataset.read_summary = files.to_dict() if d.dataset == "file" else None
    return dataset, validation


def _check_workdir(workdir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse a workdir this run cannot use. Writes nothing (see :func:`_start_workdir`)."""
    if resume and overwrite:
        raise ConfigError("Pass either --resume (continue the run) or --overwrite (start again), not both.")
    if workdir.exists() and not workdir.is_dir():
        raise ConfigError(f"The workdir {workdir} is a file. Choose a folder for --workdir.")
    if resume:
        if not (workdir / "checkpoints" / "last.keras").is_file():
            raise ConfigError(
                f"Nothing to resume in {workdir}: no checkpoints/last.keras (a run writes it after its "
                "first epoch). Start the run without --resume."
            )
        return
    if workdir.exists() and any(workdir.iterdir()) and not overwrite:
        raise ConfigError(
            f"The workdir {workdir} already exists and is not empty. Pass --resume to continue that run, "
            "--overwrite to start again (the old folder is kept, renamed), or choose another --workdir."
        )


class _NewRunFolder:
    """A new run's workdir: :meth:`start` creates it once the config and data are checked (a
    non-empty one, with ``overwrite``, is first renamed, not deleted); :meth:`remove_unfinished`
    removes what the run wrote if it stopped before its first checkpoint, so that the same
    command can simply be run again."""

    def __init__(self, workdir: Path):
        self.workdir, self.started, self.created = workdir, False, False

    def start(self) -> None:
        workdir = self.workdir
        if workdir.exists() and any(workdir.iterdir()):
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            backup = workdir.with_name(f"{workdir.name}.old-{stamp}")
            workdir.rename(backup)
            print(f"Moved the existing {workdir} to {backup}.", file=sys.stderr)
        self.created = not workdir.exists()
        workdir.mkdir(parents=True, exist_ok=True)
        self.started = True

    def remove_unfinished(self) -> bool:
        """Empty the folder (it was missing or empty before :meth:`start`; everything in it is
        this run's), and remove it if the run created it. True if it did."""
        if not self.started or (self.workdir / "checkpoints" / "last.keras").exists():
            return False
        for entry in self.workdir.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        if self.created:
            self.workdir.rmdir()
        self.started = False
        return True


def _absolute_data_path(config: ExperimentConfig) -> ExperimentConfig:
    """The config with ``data.path`` made absolute, so that the run's config.json names the
    same data from any current directory (e.g. when the run is resumed)."""
    if not config.data.path:
        return config
    path = str(Path(config.data.path).expanduser().resolve())
    return dataclasses.replace(config, data=dataclasses.replace(config.data, path=path))


def _check_resume_config(saved: ExperimentConfig, config: ExperimentConfig) -> None:
    differences = []
    for section, old in dataclasses.asdict(saved).items():
        new = dataclasses.asdict(config)[section]
        for key in old:
            if old[key] != new[key] and (section, key) not in RESUMABLE_CHANGES:
                differences.append(f"{section}.{key}: run {old[key]!r}, now {new[key]!r}")
    if differences:
        raise ConfigError(
            "The config differs from the run being resumed (only train.steps, progress, workers and distribution may change):\n  "
            + "\n  ".join(differences)
            + "\nResume without a config (predrnn train --resume --workdir DIR reads DIR/config.json), "
            "or start a new --workdir."
        )


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Let SIGTERM (e.g. from a scheduler) stop training like Ctrl-C."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not in the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def dtype_policy(precision: str):
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def cpu_lacks_bfloat16() -> bool:
    """True on an x86 CPU without native bfloat16 (no avx512_bf16 / amx_bf16 in /proc/cpuinfo;
    :func:`predrnn.hardware.bfloat16_support`).

    There, TensorFlow/oneDNN emulate bfloat16 convolutions: measured 225 s per step of the
    4x64/batch-8 model against 15.5 s in float32 on an AVX2-only AMD EPYC (benchmarks/README.md).
    """
    from predrnn.hardware import bfloat16_support

    return bfloat16_support() == "emulated"


def _warn_slow_precision(precision: str) -> None:
    import keras

    if precision != "mixed_bfloat16":
        return
    try:
        devices = keras.distribution.list_devices()
    except Exception:  # noqa: BLE001 - a backend without a device list: assume the CPU
        devices = ["cpu"]
    if not all("cpu" in str(device).lower() for device in devices):
        return
    if cpu_lacks_bfloat16():
        print(
            'Note: train.precision = "mixed_bfloat16" on a CPU without native bfloat16 '
            "(no avx512_bf16/amx_bf16): bfloat16 is emulated and can be 10x slower than float32 here; "
            "use float32 on this machine.",
            file=sys.stderr,
        )
    elif keras.backend.backend() == "jax":
        print(
            'Note: train.precision = "mixed_bfloat16" with JAX on a CPU: XLA:CPU\'s bfloat16 '
            "convolutions do not use the CPU's bfloat16 instructions, and the 4x64 Moving MNIST "
            'step took 1.9x float32\'s time on an AMX CPU (docs/performance.md, "Mixed precision"); '
            "use float32 with JAX here, or TensorFlow or PyTorch for bfloat16.",
            file=sys.stderr,
        )


def _run_info(config):
    import keras

    m, compute_dtype = config.model, keras.mixed_precision.Policy(config.train.precision).compute_dtype
    return {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "python": platform.python_version(),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        # The acceleration options in effect (the same results up to float rounding, different
        # speed and memory; predrnn.acceleration.AccelerationOptions), and what they resolve
        # to for this model: xla_cells (TensorFlow: any layer's steps are compiled; JAX: the
        # time loop is scanned), fused_gates, torch_winograd (any cell convolution).
        **_acceleration(m, compute_dtype),
    }


def _acceleration(model_config, compute_dtype):
    """:func:`predrnn.acceleration.options.resolved` for the configured model: PyTorch's
    Winograd rule reads each layer's widest convolution, from its cell's declared convolutions."""
    from predrnn.acceleration.options import resolved

    model = build_model(model_config)
    widest = [cell.widest_convolution(cell.filters).kernel_shape for cell in model.cells]
    return resolved(model_config.filters, model_config.kernel_size, widest, compute_dtype)


def _verbosity(progress: bool) -> int:
    """Keras' ``verbose``: a progress bar on a terminal, else one plain line per epoch (no
    colour codes or carriage returns in a log file)."""
    return 1 if progress and sys.stdout.isatty() else 2


def _compile(model, train_config):
    import keras

    from predrnn.jobs.config import build_optimizer

    # Adam as configured; by default PyTorch's arithmetic and eps, the official code's
    # (TrainConfig's comments; benchmarks/results/learning-parity/README.md).
    optimizer = build_optimizer(train_config)
    jit = {"auto": "auto", "true": True, "false": False}[train_config.jit_compile]
    if jit == "auto" and keras.backend.backend() == "tensorflow":
        # Measured on a 2-core CPU (quickstart model): XLA took 121 s to compile and
        # 3.6 s/step, TensorFlow graph mode 24 s and 1.2 s/step. JAX always compiles
        # with XLA; torch runs eagerly under "auto".
        jit = False
    model.compile(optimizer=optimizer, loss="mean_squared_error", jit_compile=jit)


def train(config: ExperimentConfig, workdir, *, resume: bool = False, overwrite: bool = False) -> dict:
    """Train a model as configured into ``workdir``; returns a summary dict.

    Raises :class:`ConfigError` for a workdir that exists (without ``resume`` or
    ``overwrite``) and for a resumed run whose config changed. Nothing is written before the
    config and the data are checked, and a new run that fails (or is interrupted) before its
    first checkpoint removes what it wrote, so that the same call can be made again.
    """
    workdir = Path(workdir)
    new_run = _NewRunFolder(workdir)
    try:
        summary = _train(_absolute_data_path(config), workdir, resume, overwrite, new_run)
    except BaseException:
        new_run.remove_unfinished()
        raise
    if summary.get("interrupted") and new_run.remove_unfinished():
        print(f"Removed what the run had written to {workdir}; the same command starts it again.", file=sys.stderr)
    return summary


def _train(config: ExperimentConfig, workdir: Path, resume: bool, overwrite: bool, new_run: _NewRunFolder) -> dict:
    """:func:`train`, with ``new_run`` to create a new run's workdir."""
    import keras

    from predrnn.acceleration import get_options
    from predrnn.jobs.callbacks import RolloutValidation, RunCheckpoint, SamplingProbabilityLogger, atomic_write_json
    from predrnn.jobs.distribution import distribution_scope, multi_worker_environment

    t = config.train
    cluster = multi_worker_environment() if t.distribution != "none" else None
    is_chief = cluster is None or cluster.worker_index == 0
    if is_chief:
        _check_workdir(workdir, resume, overwrite)
    get_options()  # before any file is written: it checks the PREDRNN_* variables
    config = _resolve_schedule(config, workdir, resume)
    checkpoints = workdir / "checkpoints"
    initial_epoch, best_value, best_step, train_seconds = 0, None, None, 0.0
    if resume:
        saved = load_saved_config(workdir / "config.json")
        _check_resume_config(saved, config)
        with open(checkpoints / "state.json") as handle:
            state = json.load(handle)
        initial_epoch, best_value = int(state["epoch"]), state.get("best_value")
        best_step, train_seconds = state.get("best_step"), state.get("train_seconds", 0.0)
    epochs = _num_epochs(t)
    with (
        dtype_policy(t.precision),
        distribution_scope(t.distribution, global_batch_size=t.batch_size) as info,
        info.run_directory(workdir) as out,  # non-chief workers write to a scratch folder
    ):
        if info.is_distributed:
            print(f"Distribution: {info.describe()}", file=sys.stderr)
        # The data and, on resume, the checkpoint are checked before anything is written.
        dataset, validation = build_datasets(config, initial_epoch)
        if resume:
            from predrnn.models import load_model

            model = load_model(checkpoints / "last.keras")
            step = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
            if step != initial_epoch * t.steps_per_epoch:
                raise PredRNNError(
                    f"checkpoints/last.keras is at step {step} but state.json says epoch {initial_epoch} "
                    f"(step {initial_epoch * t.steps_per_epoch}). The checkpoint folder was modified by hand."
                )
            if dataset.sequences is not None:
                from predrnn.data.files import check_model_frames

                check_model_frames(dataset.sequences, model.frame_shape, model="The checkpoint to resume")
        if is_chief:
            _announce_schedule(config)
            if not resume:
                new_run.start()
            save_config(config, workdir / "config.json")
            # In the scope: on JAX, whether a GPU is visible is only asked once the cluster is
            # joined (jax.distributed.initialize must precede any use of the devices).
            run_info = _run_info(config)
            if dataset.read_summary is not None:
                run_info["data"] = dataset.read_summary
            atomic_write_json(workdir / "run.json", run_info)
            _warn_slow_precision(t.precision)
        # Seeded here, after the chief-only work above (which may draw random numbers, e.g.
        # to probe the acceleration options), so that every worker builds the same weights.
        keras.utils.set_random_seed(t.seed)
        if not resume:
            model = build_model(config.model)
            _compile(model, t)
        d = config.data
        # The dataset's step follows Keras' epoch index exactly, whatever Keras does with
        # the dataset's own epoch hooks (see predrnn.data.datasets).
        callbacks = [dataset.epoch_callback(), SamplingProbabilityLogger(dataset)]
        if validation is not None:
            validation_callback = RolloutValidation(
                validation,
                d.input_length,
                d.output_length,
                batch_size=t.batch_size,
                samples_dir=out / "samples",
                steps_per_epoch=t.steps_per_epoch,
            )
            callbacks.append(info.validation_callback(validation_callback))
        callbacks += [
            RunCheckpoint(out / "checkpoints", best_value=best_value, best_step=best_step, train_seconds=train_seconds),
            keras.callbacks.CSVLogger(str(out / "history.csv"), append=resume),
        ]
        if keras.backend.backend() == "tensorflow":
            from predrnn.jobs.callbacks import TrainingTensorBoard

            samples = validation_callback if validation is not None else None
            first_step = initial_epoch * t.steps_per_epoch
            callbacks.append(TrainingTensorBoard(out / "logs", initial_step=first_step, validation=samples))
        if initial_epoch >= epochs:
            print(f"The run in {workdir} already finished its {t.steps} steps.", file=sys.stderr)
            return {"workdir": str(workdir), "epochs": initial_epoch, "interrupted": False}
        if resume:
            print(
                f"Resuming {workdir} at step {initial_epoch * t.steps_per_epoch} (epoch {initial_epoch + 1} of {epochs}).",
                file=sys.stderr,
            )
        training_data, steps_per_epoch = info.shard_dataset(dataset), None
        if keras.backend.backend() == "tensorflow" and info.num_workers == 1:
            # In-graph step numbers instead of Keras' from_generator: ~2x faster steps for
            # small models (see VideoPredictionDataset.to_tf_dataset). One process only
            # (MirroredStrategy splits each global batch itself); several workers keep the
            # PyDataset path their tests cover.
            first_step = initial_epoch * t.steps_per_epoch
            training_data = dataset.to_tf_dataset(first_step, epochs * t.steps_per_epoch - first_step)
            steps_per_epoch = t.steps_per_epoch
        interrupted = False
        with _sigterm_as_interrupt():
            try:
                model.fit(
                    training_data,
                    epochs=epochs,
                    steps_per_epoch=steps_per_epoch,
                    initial_epoch=initial_epoch,
                    callbacks=callbacks,
                    shuffle=False,
                    verbose=_verbosity(t.progress) if info.is_chief else 0,
                )
            except KeyboardInterrupt:
                interrupted = True
            except Exception:
                if dataset.loader_error is not None:  # e.g. a DataError for NaN frames
                    raise dataset.loader_error from None
                raise
        summary = {"workdir": str(workdir), "interrupted": interrupted}
        # This process's own state: another worker must not read the chief's state.json,
        # which the chief may not have written yet for the last step.
        state_file = out / "checkpoints" / "state.json"
        if state_file.exists():
            with open(state_file) as handle:
                summary.update(json.load(handle))
    if interrupted and "step" in summary:
        print(
            f"\nInterrupted. The last checkpoint is at step {summary['step']}; "
            f"continue with: predrnn train --resume --workdir {workdir}",
            file=sys.stderr,
        )
    elif interrupted:
        print("\nInterrupted before the first checkpoint.", file=sys.stderr)
    return summary
