"""``predrnn config show PRESET_OR_FILE``: the full resolved config, every key with its meaning.

The meanings are the comments of the config dataclasses' fields in :mod:`predrnn.jobs.config`
(the comment on a field's line, and a comment block right above it), read from that module's
source: one source of truth. Keys whose field carries no comment are described in
:data:`UNCOMMENTED` here, and a test checks that every key has a description.

The output is TOML: ``predrnn config show own_data > my_run.toml`` is a config to edit.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import io
import json
import tokenize
from pathlib import Path

__all__ = ["UNCOMMENTED", "add_config_parser", "field_comments", "format_config", "run_config_command"]

# Fields without a comment in predrnn.jobs.config (the model's constructor arguments, the
# sampling schedule's arguments, some training keys). A comment added to a field there wins.
UNCOMMENTED = {
    ("model", "filters"): "hidden channels of each recurrent layer, bottom to top (one entry per layer)",
    ("model", "kernel_size"): "size of the cells' convolution kernels",
    ("model", "patch_size"): "frames are cut into patch_size x patch_size patches stacked as channels (space-to-depth)",
    ("model", "use_layer_norm"): "layer normalisation inside the cells",
    ("model", "forget_bias"): "added to the forget gates",
    (
        "sampling",
        "schedule",
    ): "scheduled sampling: constant, reference (PredRNN), reverse (PredRNN-V2), linear, exponential or sigmoid",
    ("sampling", "start"): "probability at step 0 (reference, linear, exponential, sigmoid)",
    ("sampling", "end"): "probability the curve moves towards (linear, exponential, sigmoid)",
    ("sampling", "rate"): "change of the probability per step (linear)",
    ("sampling", "alpha"): "time constant in steps (reverse: the context curve; exponential)",
    ("sampling", "midpoint"): "step at which the curve is halfway (sigmoid)",
    ("sampling", "decay_rate"): "decrease of the future probability per step (reference)",
    ("sampling", "start_step"): "step at which the schedule starts to move (reverse)",
    ("sampling", "stop_step"): "step from which the future frames are always the model's own predictions",
    ("sampling", "future_probability"): "probability of feeding a true future frame (constant)",
    ("sampling", "context_probability"): "probability of feeding a true context frame (constant)",
    ("train", "seed"): "seeds the weights, the shuffling, the masks and the validation split",
    ("train", "batch_size"): "sequences per optimizer step",
    ("train", "learning_rate"): "Adam's learning rate",
    ("train", "adam_beta_1"): "Adam's beta_1 (see above)",
    ("train", "adam_beta_2"): "Adam's beta_2 (see above)",
    ("train", "clipnorm"): "clip each gradient to this norm; not set: no clipping",
    ("train", "workers"): "threads reading batches ahead of the model",
    ("train", "progress"): "a progress bar when the output is a terminal (else, and with false, one line per epoch)",
}


def field_comments() -> dict:
    """``{(section, key): (comment on the field's line, comment block above it)}`` for every field
    of the config dataclasses, read from the source of :mod:`predrnn.jobs.config`."""
    from predrnn.jobs import config as config_module

    source = Path(config_module.__file__).read_text()
    comments = {}  # line number -> comment text
    code_lines = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
        elif token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            code_lines.update(range(token.start[0], token.end[0] + 1))
    classes = {cls.__name__: section for section, cls in config_module.SECTIONS.items()}
    found = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef) or node.name not in classes:
            continue
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                trailing = comments.get(item.end_lineno, "") if item.end_lineno in code_lines else ""
                block, line = [], item.lineno - 1
                while line in comments and line not in code_lines:
                    block.insert(0, comments[line])
                    line -= 1
                found[(classes[node.name], item.target.id)] = (trailing, "\n".join(block))
    return found


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def _schedule_note(config) -> list[str]:
    """How much of the run feeds true future frames: the resolved schedule over train.steps."""
    from predrnn.schedules import describe_schedule, get_schedule

    resolved = config.sampling.resolved(config.train.steps)
    schedule = get_schedule(resolved.schedule, **resolved.arguments())
    steps = config.train.steps
    points = sorted({int(round(i * (steps - 1) / 199)) for i in range(200)}) if steps > 1 else [0]
    mean = sum(schedule.future_probability(step) for step in points) / len(points)
    last = schedule.future_probability(steps - 1)
    arguments = ", ".join(f"{k} = {_toml_value(v)}" for k, v in schedule.get_config().items())
    lines = [
        f"# resolved: {type(schedule).__name__}({arguments})",
        f"# over train.steps = {steps}: on average {mean:.0%} of the future frames fed to the model are true frames; "
        f"{last:.0%} at the last step.",
        *(f"# {line}" for line in describe_schedule(schedule, steps)),
    ]
    if last > 0.5:
        lines.append(
            "# Most of this run is teacher-forced: set sampling.stop_step (and the schedule's other step keys) "
            "within train.steps, or leave them unset to scale them with it, for a run that learns to predict "
            "from its own frames."
        )
    return lines


def _unset_sampling_key(config, key) -> str:
    """What an unset [sampling] key becomes in a run: its scaled value, or the class's default."""
    from predrnn.schedules import scaling_rule

    resolved = getattr(config.sampling.resolved(config.train.steps), key)
    if resolved is None:
        return "(not set)"
    rule = scaling_rule(config.sampling.schedule, key)
    if rule is None:
        return f"(not set: the schedule's default, {_toml_value(resolved)})"
    return f"(not set: {rule} = {resolved:.6g})"


def format_config(config, source: str) -> str:
    """The whole config as commented TOML."""
    from predrnn.jobs.config import SECTIONS

    comments = field_comments()
    lines = [
        f"# {source}, resolved: every key, defaults included. Meanings after each key.",
        "# [sampling] step keys left unset scale with train.steps (the papers' values over 80,000 steps).",
        "",
    ]
    for section, cls in SECTIONS.items():
        lines.append(f"[{section}]")
        values = getattr(config, section)
        for spec in dataclasses.fields(cls):
            trailing, block = comments.get((section, spec.name), ("", ""))
            if block:
                lines.extend(f"# {text}" for text in block.splitlines())
            meaning = trailing or UNCOMMENTED.get((section, spec.name), "")
            value = getattr(values, spec.name)
            unset = _unset_sampling_key(config, spec.name) if section == "sampling" and value is None else "(not set)"
            entry = f"# {spec.name} = {unset}" if value is None else f"{spec.name} = {_toml_value(value)}"
            lines.append(f"{entry:34s}  # {meaning}" if meaning else entry)
        if section == "sampling":
            lines.extend(_schedule_note(config))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def add_config_parser(commands) -> argparse.ArgumentParser:
    """Register ``predrnn config show`` on the main CLI's subcommands."""
    parser = commands.add_parser(
        "config",
        help="print a preset's or a file's full config, every key with its meaning",
        description="Print the full resolved config of a preset or TOML file (every key, defaults included, and "
        "what it means) as TOML: `predrnn config show own_data > my_run.toml` gives a config to edit.",
    )
    parser.set_defaults(handler=run_config_command, config_command=None)
    actions = parser.add_subparsers(dest="config_command", metavar="ACTION")
    show = actions.add_parser("show", help="print the resolved config with each key's meaning")
    show.add_argument(
        "config", metavar="PRESET_OR_FILE", help="a preset name (see `predrnn presets`), a .toml or a run's config.json"
    )
    show.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a key (repeatable), as for train")
    return parser


def run_config_command(args) -> int:
    from predrnn.errors import ConfigError
    from predrnn.jobs.config import load_config, load_saved_config, resolve_config_path

    if args.config_command != "show":
        raise ConfigError("Choose an action: `predrnn config show PRESET_OR_FILE`.")
    if str(args.config).endswith(".json"):
        if args.set:
            raise ConfigError("--set applies to presets and .toml files; edit the printed TOML instead.")
        config, source = load_saved_config(args.config), str(args.config)
    else:
        config = load_config(args.config, args.set or ())
        source = str(resolve_config_path(args.config))
    print(format_config(config, source), end="")
    return 0
