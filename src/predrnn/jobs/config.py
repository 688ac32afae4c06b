"""Typed job configuration: frozen dataclasses loaded from TOML, with ``--set`` overrides.

The model table's keys are the model constructors' argument names (plus
``architecture``), so ``PredRNN(**model_arguments(config.model))``, the TOML file and
``model.get_config()`` agree. Unknown keys are errors that name the nearest valid key.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from predrnn.errors import ConfigError

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"


@dataclass(frozen=True)
class ModelConfig:
    architecture: str = "predrnn"  # "predrnn", "convlstm", or the name of a registered cell (docs/adding-a-cell.md)
    cell_module: str = ""  # a module to import first, which registers the cell that architecture names (e.g. "my_cells")
    filters: tuple[int, ...] = (64, 64, 64, 64)
    kernel_size: int = 5
    patch_size: int = 4
    use_layer_norm: bool = False
    decoupling_weight: float = 0.0  # > 0: PredRNN-V2 (predrnn only)
    forget_bias: float = 1.0
    remat: bool = False  # recompute each time step in the backward pass: less memory, ~1/3 more compute


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "moving_mnist"  # "moving_mnist" (generated, bundled digits) or "file" (data.path)
    input_length: int = 10  # context frames the model sees
    output_length: int = 10  # frames it learns to predict after them
    # Moving MNIST
    num_digits: int = 2  # digits per sequence
    image_size: int = 64  # canvas size in pixels (Moving MNIST only; files: see resize)
    digit_size: int = 28  # digit size in pixels
    step_length: float = 0.1  # speed, as a fraction of the canvas per frame
    # file datasets: a .npy/.npz, a folder of frame folders, GIFs or videos (predrnn.data.load_sequences)
    path: str = ""  # the file or folder
    layout: str = "auto"  # axes of a .npy/.npz array in order, e.g. "NTHW", "TNHW", "NTHWC", "NTCHW"; "auto": what the file tells
    channels: str = "auto"  # "auto" (as stored; grey images and GIFs: 1), "grey" or "rgb"
    resize: tuple[int, ...] = ()  # [H, W] (or [S]) to resize every frame; [] keeps the stored size
    split: str = "random"  # "random" (validation_fraction, seeded by train.seed) or "kth_person" (KTH persons 1-16 / 17-25)
    validation_fraction: float = 0.1  # share of the file's sequences held out for validation (split "random")
    window_stride: int | None = None  # longer clips: a window every window_stride frames; not set: no overlap
    # held-out evaluation during training (Moving MNIST: generated from the test digits)
    validation_sequences: int = 64  # at most this many validation sequences are scored each epoch
    validation_seed: int = 1000  # seed of the generated Moving MNIST validation set


@dataclass(frozen=True)
class SamplingConfig:
    """The scheduled-sampling schedule: ``schedule`` names a predrnn.schedules class;
    the other keys are its arguments (only those it takes may be set)."""

    schedule: str = "reference"
    start: float | None = None
    end: float | None = None
    rate: float | None = None
    alpha: float | None = None
    midpoint: float | None = None
    decay_rate: float | None = None
    start_step: int | None = None
    stop_step: int | None = None
    future_probability: float | None = None
    context_probability: float | None = None

    def arguments(self) -> dict:
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "schedule" and getattr(self, f.name) is not None
        }

    def resolved(self, total_steps: int, pinned: SamplingConfig | None = None) -> SamplingConfig:
        """Every argument of the schedule set: the keys set here; else ``pinned``'s (the same
        schedule's values of a run being resumed); else, for the step-valued keys, the
        papers' values scaled to ``total_steps`` (:func:`predrnn.schedules.scaled_arguments`),
        and the class's defaults for the others. Raises ``ValueError``."""
        from predrnn.schedules import scaled_arguments

        given = self.arguments()
        if pinned is not None and pinned.schedule == self.schedule:
            given = {**pinned.arguments(), **given}
        return SamplingConfig(self.schedule, **scaled_arguments(self.schedule, total_steps, **given))


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    batch_size: int = 8
    steps: int = 80_000  # total optimizer steps, a multiple of steps_per_epoch
    steps_per_epoch: int = 1_000  # checkpoint, validate and write samples after each "epoch"
    learning_rate: float = 1e-3
    # Adam. The defaults are the official PredRNN code's (PyTorch's torch.optim.Adam):
    # betas (0.9, 0.999), eps 1e-8 added to the bias-corrected sqrt(v),
    #   p -= lr / (1 - beta_1^t) * m / (sqrt(v) / sqrt(1 - beta_2^t) + eps).
    # adam_epsilon_placement = "keras" is keras.optimizers.Adam's arithmetic (Kingma and Ba's
    # epsilon-hat: eps added to sqrt(v) before bias correction, so in PyTorch's terms an eps
    # 1/sqrt(1 - beta_2^t) times larger: 32x at step 1, 3.2x at step 100, 1.2x at step 1,000)
    # with Keras' own default eps 1e-7. This model's gradients are small (per-element RMS
    # 5e-8 to 2e-5 at the start of Moving MNIST training), so eps decides how large the first
    # updates are: benchmarks/results/learning-parity/README.md.
    adam_epsilon: float = 1e-8
    adam_epsilon_placement: str = "pytorch"  # "pytorch" or "keras" (see above)
    adam_beta_1: float = 0.9
    adam_beta_2: float = 0.999
    clipnorm: float | None = None
    precision: str = "float32"  # "float32" or "mixed_bfloat16"
    jit_compile: str = "auto"  # "auto" (TensorFlow: graph mode without XLA; JAX: XLA; torch: eager), "true", "false"
    distribution: str = "none"  # "none", "auto" or "data_parallel"
    workers: int = 1
    progress: bool = True


@dataclass(frozen=True)
class ExperimentConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SECTIONS = {"model": ModelConfig, "data": DataConfig, "sampling": SamplingConfig, "train": TrainConfig}
CHOICES = {
    ("data", "dataset"): ("moving_mnist", "file"),
    ("train", "precision"): ("float32", "mixed_bfloat16"),
    ("train", "adam_epsilon_placement"): ("pytorch", "keras"),
    ("train", "jit_compile"): ("auto", "true", "false"),
    ("train", "distribution"): ("none", "auto", "data_parallel"),
}


def _nearest(name, valid):
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def _coerce(section, name, value, annotation):
    """Check and convert one value against its field's type annotation (a string)."""
    where = f"{section}.{name}"
    optional = "None" in annotation
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where} cannot be empty.")
    base = annotation.replace(" | None", "")
    try:
        if base == "bool":
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            if not isinstance(value, bool):
                raise TypeError
            return value
        if base == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if base == "float":
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if base == "str":
            if isinstance(value, bool) and "true" in CHOICES.get((section, name), ()):
                value = str(value).lower()  # jit_compile = false
            if not isinstance(value, str):
                raise TypeError
            choices = CHOICES.get((section, name))
            if choices and value not in choices:
                raise ConfigError(f"{where} must be one of {', '.join(choices)}.{_nearest(value, choices)} Received: {value!r}")
            return value
        if base.startswith("tuple[int"):
            if isinstance(value, int) and not isinstance(value, bool):
                value = [value]
            if isinstance(value, str):
                value = [int(v) for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
            return tuple(int(v) for v in value)
    except ConfigError:
        raise
    except (TypeError, ValueError):
        pass
    else:
        return value
    raise ConfigError(f"{where} must be of type {annotation}. Received: {value!r} ({type(value).__name__})")


def from_dict(raw: dict, source: str = "config") -> ExperimentConfig:
    """Build and validate an :class:`ExperimentConfig` from nested dicts (TOML tables)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected tables {', '.join(SECTIONS)}. Received: {type(raw).__name__}")
    sections = {}
    for key in raw:
        if key not in SECTIONS:
            raise ConfigError(
                f"{source}: unknown section [{key}].{_nearest(key, SECTIONS)} Valid sections: {', '.join(SECTIONS)}."
            )
    for section, cls in SECTIONS.items():
        table = raw.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{section}] must be a table. Received: {table!r}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values = {}
        for name, value in table.items():
            if name not in fields:
                raise ConfigError(
                    f"{source}: unknown key {section}.{name}.{_nearest(name, fields)} "
                    f"Valid keys in [{section}]: {', '.join(fields)}."
                )
            values[name] = _coerce(section, name, value, str(fields[name].type))
        sections[section] = cls(**values)
    config = ExperimentConfig(**sections)
    validate(config, source)
    return config


def validate(config: ExperimentConfig, source: str = "config") -> None:
    """Cross-field checks with messages that name the key and the fix."""
    m, d, t = config.model, config.data, config.train
    _check_architecture(m, source)
    if m.architecture == "convlstm" and m.decoupling_weight:
        raise ConfigError(
            f"{source}: model.decoupling_weight is a PredRNN-V2 setting; ConvLSTM has no memory to decouple. Set it to 0."
        )
    if not m.filters or min(m.filters) < 1:
        raise ConfigError(f"{source}: model.filters must be positive widths. Received: {list(m.filters)}")
    if d.input_length < 1 or d.output_length < 1:
        raise ConfigError(
            f"{source}: data.input_length and data.output_length must be >= 1. Received: {d.input_length}, {d.output_length}"
        )
    if d.dataset == "moving_mnist" and d.image_size % m.patch_size:
        raise ConfigError(f"{source}: data.image_size={d.image_size} is not divisible by model.patch_size={m.patch_size}.")
    if d.dataset == "file" and not d.path:
        raise ConfigError(f"{source}: data.dataset = 'file' needs data.path (a .npy/.npz/folder/video file).")
    from predrnn.data.files import check_data_settings

    check_data_settings(d, m.patch_size, source)
    for name in ("batch_size", "steps", "steps_per_epoch"):
        if getattr(t, name) < 1:
            raise ConfigError(f"{source}: train.{name} must be >= 1. Received: {getattr(t, name)}")
    if t.steps % t.steps_per_epoch:
        divisor = max(k for k in range(1, t.steps_per_epoch + 1) if t.steps % k == 0)
        below = t.steps // t.steps_per_epoch * t.steps_per_epoch
        multiples = [m for m in (below, below + t.steps_per_epoch) if m > 0]
        raise ConfigError(
            f"{source}: train.steps = {t.steps} is not a multiple of train.steps_per_epoch = {t.steps_per_epoch} "
            "(a run trains whole epochs, with a checkpoint and validation after each). "
            f"Set train.steps_per_epoch = {divisor}, or train.steps = {' or '.join(map(str, multiples))}."
        )
    if t.learning_rate <= 0:
        raise ConfigError(f"{source}: train.learning_rate must be > 0. Received: {t.learning_rate}")
    if not 0 < t.adam_epsilon < float("inf"):
        raise ConfigError(
            f"{source}: train.adam_epsilon must be > 0 (PyTorch's and the official code's: 1e-8). Received: {t.adam_epsilon}"
        )
    for name in ("adam_beta_1", "adam_beta_2"):
        if not 0 <= getattr(t, name) < 1:
            raise ConfigError(f"{source}: train.{name} must be in [0, 1) (defaults 0.9 and 0.999). Received: {getattr(t, name)}")
    if not 0 <= d.validation_fraction < 1:
        raise ConfigError(f"{source}: data.validation_fraction must be in [0, 1). Received: {d.validation_fraction}")
    resolve_sampling(config, source=source)


def resolve_sampling(config: ExperimentConfig, pinned: SamplingConfig | None = None, source: str = "config") -> ExperimentConfig:
    """``config`` with every argument of its sampling schedule set (:meth:`SamplingConfig.resolved`):
    the step-valued keys left unset scale with ``train.steps``; ``pinned`` (a resumed run's
    saved ``[sampling]``) fills them first. Raises :class:`ConfigError`."""
    try:
        sampling = config.sampling.resolved(config.train.steps, pinned)
    except ValueError as error:
        raise ConfigError(f"{source}: [sampling] {error}") from None
    return dataclasses.replace(config, sampling=sampling)


BUILT_IN_ARCHITECTURES = ("predrnn", "convlstm")


def _check_architecture(m: ModelConfig, source: str) -> None:
    """A built-in architecture, or a cell registered by ``model.cell_module`` (imported here)."""
    if m.architecture in BUILT_IN_ARCHITECTURES and not m.cell_module:
        return
    if m.cell_module:
        import importlib

        try:
            importlib.import_module(m.cell_module)
        except ImportError as error:
            raise ConfigError(
                f"{source}: model.cell_module = {m.cell_module!r} could not be imported ({error}). "
                "Name a module on the Python path that registers the cell (docs/adding-a-cell.md)."
            ) from None
    if m.architecture in BUILT_IN_ARCHITECTURES:
        return
    from predrnn.layers import CELLS

    if m.architecture not in CELLS:
        choices = sorted(set(BUILT_IN_ARCHITECTURES) | set(CELLS))
        raise ConfigError(
            f"{source}: model.architecture must be predrnn, convlstm or a registered cell ({', '.join(choices)}).{_nearest(m.architecture, choices)} "
            f"Received: {m.architecture!r}. A cell of your own: set model.cell_module to the module that registers it."
        )
    if m.decoupling_weight:
        raise ConfigError(
            f"{source}: model.decoupling_weight is a PredRNN-V2 setting; set it to 0 for the {m.architecture!r} cell."
        )


def parse_override(text: str) -> tuple[str, str, object]:
    """``"train.batch_size=16"`` -> ``("train", "batch_size", 16)`` (the value is read as TOML)."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"--set takes section.key=value, e.g. train.batch_size=16. Received: {text!r}")
    key, raw = text.split("=", 1)
    section, name = key.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word: a string
    return section, name, value


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


def resolve_config_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".toml", ".json") or os.sep in name_or_path or path.exists():
        if not path.is_file():
            raise ConfigError(
                f"Config file not found: {name_or_path!r}. Pass a TOML file or a preset: {', '.join(preset_names())}."
            )
        return path
    preset = PRESETS_DIR / f"{name_or_path}.toml"
    if not preset.is_file():
        raise ConfigError(
            f"Unknown preset {name_or_path!r}.{_nearest(name_or_path, preset_names())} "
            f"Presets: {', '.join(preset_names())}; or pass a path to a .toml file."
        )
    return preset


def load_config(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read a TOML file, a shipped preset or a run's config.json, apply ``section.key=value``
    overrides, validate."""
    path = resolve_config_path(name_or_path)
    raw = _read_saved_config(path) if path.suffix == ".json" else _read_toml(path)
    for text in overrides:
        section, name, value = parse_override(text)
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise ConfigError(f"--set {text!r}: [{section}] is not a table.")
        raw[section][name] = value
    return from_dict(raw, source=str(path) if not overrides else f"{path} with --set")


def save_config(config: ExperimentConfig, path) -> None:
    data = config.to_dict()
    data["model"]["filters"] = list(data["model"]["filters"])
    tmp = f"{path}.tmp"
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=2)
    os.replace(tmp, path)


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML ({error}).") from None


def _read_saved_config(path) -> dict:
    """A run's config.json as TOML-like tables (its empty optional keys, JSON nulls, left out)."""
    try:
        with open(path) as handle:
            raw = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"Could not read the run's config {path}: {error}") from None
    if not isinstance(raw, dict) or not all(isinstance(section, dict) for section in raw.values()):
        raise ConfigError(f"{path}: not a run's config (tables {', '.join(SECTIONS)}).")
    return {name: {k: v for k, v in section.items() if v is not None} for name, section in raw.items()}


def load_saved_config(path) -> ExperimentConfig:
    """A run's config.json. It holds the run's resolved schedule; one written before the unset
    step keys scaled with train.steps lacks them: that run trained with the classes' defaults."""
    config = from_dict(_read_saved_config(path), source=str(path))
    from predrnn.schedules import get_schedule

    s = config.sampling
    defaults = SamplingConfig(s.schedule, **get_schedule(s.schedule, **s.arguments()).get_config())
    return dataclasses.replace(config, sampling=defaults)


def build_optimizer(train_config: TrainConfig):
    """The training optimizer of ``train_config``: Adam with its learning rate, betas,
    epsilon and epsilon placement (``"pytorch"``: :class:`predrnn.optimizers.PyTorchAdam`;
    ``"keras"``: ``keras.optimizers.Adam``), and ``clipnorm``."""
    import keras

    from predrnn.optimizers import PyTorchAdam

    t = train_config
    cls = PyTorchAdam if t.adam_epsilon_placement == "pytorch" else keras.optimizers.Adam
    return cls(
        learning_rate=t.learning_rate,
        beta_1=t.adam_beta_1,
        beta_2=t.adam_beta_2,
        epsilon=t.adam_epsilon,
        clipnorm=t.clipnorm,
    )


def model_arguments(model_config: ModelConfig) -> dict:
    """The constructor arguments of the configured model class."""
    arguments = dataclasses.asdict(model_config)
    arguments.pop("architecture")
    arguments.pop("cell_module")
    if model_config.architecture != "predrnn":
        arguments.pop("decoupling_weight")
    return arguments
