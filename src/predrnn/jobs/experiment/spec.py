"""Experiment specs: reading and checking a spec TOML file, each variant's config, and
writing specs and configs back as TOML.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from predrnn.errors import ConfigError

SPECS_DIR = Path(__file__).resolve().parents[2] / "experiments"
SPEC_KEYS = ("description", "base", "set", "runs", "evaluate", "variants", "slurm")
VARIANT_KEYS = ("description", "base", "set", "model", "data", "sampling", "train")
SECTION_NAMES = ("model", "data", "sampling", "train")
# evaluate()'s keyword arguments, by their spec names.
EVALUATE_KEYS = {
    "num": ("num", int),
    "seed": ("seed", int),
    "digits": ("num_digits", int),
    "batch_size": ("batch_size", int),
    "context": ("context", int),
    "horizon": ("horizon", int),
    "data": ("data", str),
}
EVALUATE_DEFAULTS = {"num": 1000, "seed": 0, "batch_size": 16}
DEFAULT_RUNS = 3
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Variant:
    name: str
    set: tuple[str, ...] = ()
    sections: dict = field(default_factory=dict)  # section name -> table replacing the base's
    description: str = ""
    base: str | None = None  # this variant's own base (a preset name or an absolute path)
    base_path: Path | None = None


@dataclass(frozen=True)
class ExperimentSpec:
    """A parsed and checked experiment spec (see :mod:`predrnn.jobs.experiment`)."""

    name: str
    source: str
    base: str | None  # a preset name or an absolute .toml path (None: every variant has its own)
    base_path: Path | None
    set: tuple[str, ...] = ()
    runs: int | None = None
    evaluate: dict = field(default_factory=dict)
    variants: tuple[Variant, ...] = ()
    slurm: dict = field(default_factory=dict)
    description: str = ""

    def variant_names(self) -> list[str]:
        return [v.name for v in self.variants]

    def configs(self) -> dict:
        """``{variant: ExperimentConfig}``; raises ConfigError naming the variant."""
        return {v.name: variant_config(self, v) for v in self.variants}

    def to_toml(self, runs: int | None = None) -> str:
        data = {}
        if self.description:
            data["description"] = self.description
        if self.base is not None:
            data["base"] = self.base
        data["set"] = list(self.set)
        runs = runs if runs is not None else self.runs
        if runs is not None:
            data["runs"] = runs
        data["evaluate"] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.evaluate.items()}
        data["variants"] = {}
        for variant in self.variants:
            table = {}
            if variant.description:
                table["description"] = variant.description
            if variant.base is not None:
                table["base"] = variant.base
            table["set"] = list(variant.set)
            table.update({k: dict(v) for k, v in variant.sections.items()})
            data["variants"][variant.name] = table
        if self.slurm:
            data["slurm"] = dict(self.slurm)
        header = f"# Experiment spec {self.name!r} (resolved from {self.source}).\n"
        return header + toml_dumps(data)


def spec_names() -> list[str]:
    """The shipped experiment specs."""
    return sorted(p.stem for p in SPECS_DIR.glob("*.toml"))


def _nearest(name, valid) -> str:
    close = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def resolve_spec_path(name_or_path) -> Path:
    text = os.fspath(name_or_path)
    path = Path(text)
    if path.suffix == ".toml" or os.sep in text or path.exists():
        if path.is_dir() and (path / "spec.toml").is_file():
            return path / "spec.toml"
        if not path.is_file():
            raise ConfigError(
                f"Experiment spec not found: {text!r}. Pass a .toml file or a shipped spec: {', '.join(spec_names())}."
            )
        return path
    shipped = SPECS_DIR / f"{text}.toml"
    if not shipped.is_file():
        raise ConfigError(
            f"Unknown experiment spec {text!r}.{_nearest(text, spec_names())} "
            f"Shipped specs: {', '.join(spec_names())}; or pass a path to a .toml file."
        )
    return shipped


def load_spec(name_or_path, overrides=(), slurm_options=None) -> ExperimentSpec:
    """Read and check a spec (a file or a shipped name). ``overrides`` (``--set``) are
    added to the spec's ``set``; ``slurm_options`` update its ``[slurm]`` table. Every
    variant's config is built and validated here, before anything runs."""
    path = resolve_spec_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error}).") from None
    except OSError as error:
        raise ConfigError(f"Could not read {path}: {error}") from None
    name = path.parent.name if path.name == "spec.toml" else path.stem
    spec = with_overrides(spec_from_dict(raw, source=str(path), root=path.parent, name=name), overrides, slurm_options)
    spec.configs()
    return spec


def with_overrides(spec: ExperimentSpec, overrides=(), slurm_options=None) -> ExperimentSpec:
    """``spec`` with the command line's ``--set`` and ``--slurm-option`` applied.

    ``evaluate.KEY=VALUE`` (and ``evaluate.extra.NAME.KEY=VALUE``) set a key of the spec's
    ``[evaluate]`` table (``[evaluate.extra.NAME]``); every other ``SECTION.KEY=VALUE`` is added
    to the spec's ``set``, a config override of every variant.
    """
    from predrnn.jobs.config import parse_override

    config_overrides, evaluate = [], {k: (dict(v) if isinstance(v, dict) else v) for k, v in spec.evaluate.items()}
    for text in overrides or ():
        section, name, value = parse_override(text)
        if section != "evaluate":
            if section not in SECTION_NAMES:
                raise ConfigError(
                    f"--set {text!r}: unknown section [{section}].{_nearest(section, (*SECTION_NAMES, 'evaluate'))} "
                    f"An experiment's --set takes the config sections {', '.join(SECTION_NAMES)} and [evaluate]."
                )
            config_overrides.append(text)
            continue
        parts = name.split(".")
        if parts[0] == "extra":
            if len(parts) != 3 or not _NAME.match(parts[1]):
                raise ConfigError(
                    f"--set {text!r}: an extra evaluation's key is evaluate.extra.NAME.KEY=VALUE, e.g. evaluate.extra.three_digits.digits=3."
                )
            checked = _check_evaluate_keys({parts[2]: value}, "--set", f"evaluate.extra.{parts[1]}")
            evaluate.setdefault("extra", {}).setdefault(parts[1], {}).update(checked)
        else:
            evaluate.update(_check_evaluate_keys({name: value}, "--set", "evaluate"))
    slurm = dict(spec.slurm)
    if slurm_options:
        from predrnn.jobs.experiment.slurm import check_options

        slurm.update(check_options(slurm_options, "--slurm-option"))
    return dataclasses.replace(spec, set=spec.set + tuple(config_overrides), evaluate=evaluate, slurm=slurm)


def _string_list(value, where) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'{where} must be a list of "section.key=value" strings. Received: {value!r}')
    return tuple(value)


def _resolve_base(base, root: Path) -> tuple[str, Path]:
    from predrnn.jobs.config import PRESETS_DIR, resolve_config_path

    if not isinstance(base, str) or not base:
        raise ConfigError(f"base must be a preset name or a .toml path. Received: {base!r}")
    candidate = Path(base)
    if (candidate.suffix == ".toml" or os.sep in base) and not candidate.is_absolute():
        beside = root / candidate
        if beside.is_file():
            return str(beside.resolve()), beside.resolve()
    path = resolve_config_path(base)
    if path.resolve().parent == PRESETS_DIR.resolve() and path.stem == base:
        return base, path
    return str(path.resolve()), path.resolve()


def spec_from_dict(raw: dict, source: str = "spec", root=".", name: str = "experiment") -> ExperimentSpec:
    """Build an :class:`ExperimentSpec` from TOML tables (variant configs not built yet)."""
    for key in raw:
        if key not in SPEC_KEYS:
            raise ConfigError(f"{source}: unknown key {key!r}.{_nearest(key, SPEC_KEYS)} Valid keys: {', '.join(SPEC_KEYS)}.")
    base = base_path = None
    if "base" in raw:
        try:
            base, base_path = _resolve_base(raw["base"], Path(root))
        except ConfigError as error:
            raise ConfigError(f"{source}: base: {error}") from None
    common = _string_list(raw.get("set", []), f"{source}: set")
    runs = raw.get("runs")
    if runs is not None and (isinstance(runs, bool) or not isinstance(runs, int) or runs < 1):
        raise ConfigError(f"{source}: runs must be a positive integer. Received: {runs!r}")
    evaluate = _check_evaluate(raw.get("evaluate", {}), source)
    variants_raw = raw.get("variants")
    if not isinstance(variants_raw, dict) or not variants_raw:
        raise ConfigError(
            f"{source}: needs at least one variant, e.g.\n  [variants.baseline]\n  set = []\n"
            "  [variants.convlstm]\n  set = [\"model.architecture='convlstm'\"]"
        )
    variants = []
    for variant_name, table in variants_raw.items():
        where = f"{source}: [variants.{variant_name}]"
        if not _NAME.match(variant_name) or variant_name in ("slurm",):
            raise ConfigError(f"{where}: a variant name is a folder name: letters, digits, '_', '-', '.'.")
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table (set = [...], and optional [model]/[data]/[sampling]/[train] tables).")
        for key in table:
            if key not in VARIANT_KEYS:
                raise ConfigError(
                    f"{where}: unknown key {key!r}.{_nearest(key, VARIANT_KEYS)} Valid keys: {', '.join(VARIANT_KEYS)}."
                )
        sections = {}
        for section in SECTION_NAMES:
            if section in table:
                if not isinstance(table[section], dict):
                    raise ConfigError(f"{where}: {section} must be a table (it replaces the base's [{section}]).")
                sections[section] = dict(table[section])
        description = table.get("description", "")
        if not isinstance(description, str):
            raise ConfigError(f"{where}: description must be a string.")
        own_base = own_base_path = None
        if "base" in table:
            try:
                own_base, own_base_path = _resolve_base(table["base"], Path(root))
            except ConfigError as error:
                raise ConfigError(f"{where}: base: {error}") from None
        elif base is None:
            raise ConfigError(
                f'{source}: missing base: the preset or .toml config every variant starts from, e.g. base = "quickstart" '
                f"(or a base in each variant; [variants.{variant_name}] has none)."
            )
        variants.append(
            Variant(
                variant_name,
                _string_list(table.get("set", []), f"{where} set"),
                sections,
                description,
                own_base,
                own_base_path,
            )
        )
    slurm = raw.get("slurm", {})
    if not isinstance(slurm, dict):
        raise ConfigError(f"{source}: [slurm] must be a table of sbatch options.")
    from predrnn.jobs.experiment.slurm import check_options

    slurm = check_options(slurm, f"{source}: [slurm]")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{source}: description must be a string.")
    return ExperimentSpec(
        name=name,
        source=source,
        base=base,
        base_path=base_path,
        set=common,
        runs=runs,
        evaluate=evaluate,
        variants=tuple(variants),
        slurm=slurm,
        description=description,
    )


def _check_evaluate(table, source) -> dict:
    """The [evaluate] table with its defaults, and its ``[evaluate.extra.NAME]`` tables:
    further evaluations of every run (e.g. ``digits = 3``), each overriding the main one's
    keys and written as ``metrics_NAME.json``."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [evaluate] must be a table ({', '.join(EVALUATE_KEYS)}).")
    table = dict(table)
    extra = table.pop("extra", {})
    checked = {**EVALUATE_DEFAULTS, **_check_evaluate_keys(table, source, "evaluate")}
    if not isinstance(extra, dict):
        raise ConfigError(f"{source}: evaluate.extra must hold tables, e.g. [evaluate.extra.three_digits] digits = 3.")
    if extra:
        checked["extra"] = {}
    for name, overrides in extra.items():
        where = f"evaluate.extra.{name}"
        if not _NAME.match(name) or not isinstance(overrides, dict) or not overrides:
            raise ConfigError(
                f"{source}: [{where}] must be a non-empty table named with letters, digits, '_', '-', '.' "
                "(e.g. [evaluate.extra.three_digits] digits = 3)."
            )
        checked["extra"][name] = _check_evaluate_keys(overrides, source, where)
    return checked


def _check_evaluate_keys(table, source, where) -> dict:
    checked = {}
    for key, value in table.items():
        if key not in EVALUATE_KEYS:
            raise ConfigError(
                f"{source}: unknown key {where}.{key}.{_nearest(key, EVALUATE_KEYS)} "
                f"Valid keys in [{where}]: {', '.join(EVALUATE_KEYS)}."
            )
        kind = EVALUATE_KEYS[key][1]
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, int) or (value < 1 and key != "seed") or value < 0:
                raise ConfigError(
                    f"{source}: {where}.{key} must be a {'non-negative' if key == 'seed' else 'positive'} integer. Received: {value!r}"
                )
        elif not isinstance(value, str) or not value:
            raise ConfigError(f"{source}: {where}.{key} must be a path. Received: {value!r}")
        checked[key] = value
    return checked


def _check_override(text, where):
    from predrnn.jobs.config import parse_override

    section, name, value = parse_override(text)
    if (section, name) == ("train", "seed"):
        raise ConfigError(
            f"{where}: {text!r}: train.seed is set by the experiment (run i uses seed i, i = 0..N-1); remove this override."
        )
    return section, name, value


def variant_config(spec: ExperimentSpec, variant: Variant):
    """The variant's validated :class:`ExperimentConfig` (with the base's train.seed)."""
    from predrnn.jobs.config import from_dict

    where = f"{spec.source}: variant {variant.name!r}"
    base_path = variant.base_path or spec.base_path
    try:
        raw = tomllib.loads(base_path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{where}: could not read the base {base_path}: {error}") from None

    def apply(overrides):
        for text in overrides:
            section, name, value = _check_override(text, where)
            raw.setdefault(section, {})
            if not isinstance(raw[section], dict):
                raise ConfigError(f"{where}: {text!r}: [{section}] is not a table.")
            raw[section][name] = value

    apply(spec.set)
    for section, table in variant.sections.items():
        if "seed" in table and section == "train":
            raise ConfigError(f"{where}: train.seed is set by the experiment (run i uses seed i); remove it.")
        raw[section] = dict(table)
    apply(variant.set)
    try:
        return from_dict(raw, source=where)
    except ConfigError as error:
        message = str(error)
        raise ConfigError(message if message.startswith(where) else f"{where}: {message}") from None


# ----------------------------------------------------------------------------------
# TOML writing (configs and specs hold scalars, lists and tables only)
# ----------------------------------------------------------------------------------


def _toml_key(key) -> str:
    return key if re.match(r"^[A-Za-z0-9_-]+$", str(key)) else json.dumps(str(key))


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def toml_dumps(data: dict, prefix: str = "") -> str:
    lines, tables = [], []
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    text = "\n".join(lines) + ("\n" if lines else "")
    for key, value in tables:
        name = f"{prefix}.{_toml_key(key)}" if prefix else _toml_key(key)
        body = toml_dumps(value, name)
        has_scalars = any(not isinstance(v, dict) and v is not None for v in value.values())
        if has_scalars or not value:
            text += f"\n[{name}]\n"
        text += body
    return text


def config_toml(config) -> str:
    return toml_dumps({section: dict(values) for section, values in config.to_dict().items()})
