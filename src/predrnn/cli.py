"""The ``predrnn`` command: thin subcommands over importable jobs.

Keras reads ``KERAS_BACKEND`` when it is first imported, so nothing here imports
keras (or anything that does) before ``--backend`` has been applied.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.abc
import importlib.machinery
import json
import os
import re
import sys
import tempfile

from predrnn.cli_args import BACKENDS, add_backend_argument, non_negative_int, positive_int


def _train(args) -> int:
    from predrnn.errors import ConfigError
    from predrnn.jobs.config import load_config
    from predrnn.jobs.train import train

    config_path = args.config
    if config_path is None:
        if not args.resume:
            raise ConfigError("Name a config: a .toml file or a preset (see `predrnn presets`).")
        config_path = os.path.join(args.workdir, "config.json")
        if not os.path.isfile(config_path):
            raise ConfigError(f"Nothing to resume in {args.workdir}: no config.json. Start the run without --resume.")
    config = load_config(config_path, args.set or ())
    summary = train(config, args.workdir, resume=args.resume, overwrite=args.overwrite)
    return 130 if summary.get("interrupted") else 0


def _evaluate(args) -> int:
    from predrnn.jobs.evaluate import evaluate

    report = evaluate(
        args.run,
        data=args.data,
        num_digits=args.digits,
        num=args.num,
        seed=args.seed,
        context=args.context,
        horizon=args.horizon,
        output=args.output,
        batch_size=args.batch_size,
        overwrite=args.overwrite,
        pictures=args.pictures,
        layout=args.layout,
        channels=args.channels,
        resize=args.resize,
    )
    print(format_evaluation(report))
    return 0


def _gallery(args) -> int:
    from predrnn.jobs.evaluate import gallery

    result = gallery(
        args.models,
        out=args.out,
        labels=args.labels.split(",") if args.labels else None,
        num_digits=args.digits,
        num=args.num,
        seed=args.seed,
        context=args.context,
        horizon=args.horizon,
        overwrite=args.overwrite,
    )
    print(json.dumps(result, indent=2))
    return 0


def format_evaluation(report) -> str:
    """The evaluation's summary: a line for the model, then one for each baseline on the same frames."""
    from predrnn.baselines import BASELINE_LABELS

    def scores(r):
        return f"mse_per_frame {r['mse_per_frame']:.2f}, ssim {r['ssim']:.4f}, psnr {r['psnr']:.2f} dB"

    lines = [f"{report['num_sequences']} sequences, {report['context']} -> {report['horizon']} frames:"]
    lines.append(f"  {'model':22s} {scores(report)}")
    for name, result in report["baselines"].items():
        lines.append(f"  {BASELINE_LABELS.get(name, name):22s} {scores(result)}")
    return "\n".join(lines)


def _predict(args) -> int:
    from predrnn.jobs.evaluate import predict

    result = predict(
        args.checkpoint,
        args.input,
        horizon=args.horizon,
        out=args.out,
        context=args.context,
        overwrite=args.overwrite,
        pictures=args.pictures,
        layout=args.layout,
        channels=args.channels,
        resize=args.resize,
    )
    print(json.dumps(result, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from predrnn.data.commands import add_reading_arguments  # --layout, --channels, --resize (no keras)

    parser = argparse.ArgumentParser(
        prog="predrnn",
        description="PredRNN, PredRNN-V2 and ConvLSTM for video prediction (Keras 3: TensorFlow, JAX, PyTorch).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = commands.add_parser(
        "train",
        help="train a model from a TOML config or preset",
        description="Train a model from a TOML config or preset.",
        epilog=(
            "environment: PREDRNN_XLA_CELLS=auto|0|1 (TensorFlow, JAX): compile the cell steps on "
            "their own, with Winograd convolutions. TensorFlow: each cell step is an XLA function; "
            "auto, the default, for cells of at least 64 filters with 5x5-7x7 kernels when no GPU is "
            "visible (faster on CPU, about 0.17 GB more memory). JAX: the time loop is one scanned "
            "step; auto for models whose kernels are all 3x3-7x7, on the CPU (faster, and far "
            "shorter compiles). run.json records it. PREDRNN_TORCH_WINOGRAD=auto|0|1 (PyTorch): the "
            "models' 5x5 convolutions with at least 128 output channels run as Winograd "
            "convolutions (auto, the default, on the CPU; 1: every 3x3-7x7 kernel; 0: none)."
        ),
    )
    p.add_argument(
        "config",
        nargs="?",
        help="a .toml file or a preset name (see `predrnn presets`); with --resume it may be left out "
        "(the run's own config.json is read)",
    )
    p.add_argument("--workdir", required=True, help="run folder (config, logs, checkpoints, samples)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --workdir from its last checkpoint (--set may change train.steps, progress, "
        "workers and distribution)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="start again in an existing --workdir (the old folder is renamed, not deleted)"
    )
    add_backend_argument(p)
    p.set_defaults(handler=_train)

    p = commands.add_parser("evaluate", help="score a run or checkpoint by autoregressive rollout")
    p.add_argument("run", metavar="RUN_OR_CHECKPOINT", help="a run folder, a .keras file or an official model.ckpt-N")
    p.add_argument("--data", help="test sequences file/folder (default: generated Moving MNIST test set)")
    p.add_argument("--digits", type=positive_int, help="Moving MNIST digits per sequence")
    p.add_argument("--num", type=positive_int, help="Moving MNIST test sequences (default 1000)")
    p.add_argument("--seed", type=int, help="Moving MNIST test-set seed (default 0)")
    p.add_argument("--context", type=positive_int, help="context frames (default: the run's input_length, else 10)")
    p.add_argument("--horizon", type=positive_int, help="frames to predict (default: the run's output_length, else 10)")
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument(
        "--output",
        help="metrics JSON path (default: RUN/metrics.json for a run folder, else evaluations/NAME/metrics.json); CSV and PNG are written beside it",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    p.add_argument(
        "--pictures",
        type=non_negative_int,
        default=4,
        metavar="N",
        help="draw the first N test sequences as labelled PNG strips and GIFs in OUTPUT_pictures/ (default 4; 0: none)",
    )
    add_reading_arguments(p, from_run=True)
    add_backend_argument(p)
    p.set_defaults(handler=_evaluate)

    p = commands.add_parser("predict", help="predict future frames of the sequences in a file")
    p.add_argument("checkpoint", help="a run folder, a .keras file or an official model.ckpt-N")
    p.add_argument("input", help="sequences: .npy/.npz, a folder of frame folders, a GIF or video")
    p.add_argument("--horizon", type=positive_int, required=True, help="frames to predict")
    p.add_argument("--context", type=positive_int, help="context frames taken from each sequence")
    p.add_argument("--out", required=True, help="output folder: predictions.npy, GIFs and PNG strips")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    p.add_argument(
        "--pictures",
        type=non_negative_int,
        default=8,
        metavar="N",
        help="draw the first N sequences as labelled PNG strips and GIFs (default 8; 0: none)",
    )
    add_reading_arguments(p, from_run=True)
    add_backend_argument(p)
    p.set_defaults(handler=_predict)

    p = commands.add_parser(
        "gallery",
        help="the same test sequences predicted by several models: a labelled GIF grid and PNGs",
        description="Roll out several models (run folders, checkpoints or pretrained names) on the same Moving MNIST "
        "test sequences and draw them together: OUT (a GIF grid, a labelled row for the truth and one per model, a "
        "column per sequence) and OUT_<i>.png per sequence (rows: context, truth, each model).",
    )
    p.add_argument(
        "models", nargs="+", metavar="MODEL", help="a run folder, a .keras file, an official checkpoint or a pretrained name"
    )
    p.add_argument("--out", required=True, help="the GIF to write (PNGs go beside it)")
    p.add_argument("--labels", help="comma-separated row labels, one per model (default: the models' names)")
    p.add_argument("--digits", type=positive_int, help="Moving MNIST digits per sequence (default: the first model's)")
    p.add_argument("--num", type=positive_int, default=4, help="test sequences, one column each (default 4)")
    p.add_argument("--seed", type=int, default=0, help="test-set seed (default 0)")
    p.add_argument("--context", type=positive_int, help="context frames (default: the first model's input_length)")
    p.add_argument("--horizon", type=positive_int, help="frames to predict (default: the first model's output_length)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    add_backend_argument(p)
    p.set_defaults(handler=_gallery)

    p = commands.add_parser(
        "pretrained",
        help="list the pretrained models that ship with the package, with their model cards",
        description="List the pretrained models that ship with the package (use a NAME wherever a run folder "
        "is accepted: predrnn evaluate NAME, predrnn predict NAME INPUT), show one's card, or package a run as one.",
    )
    p.set_defaults(handler=_pretrained, pretrained_command=None)
    pretrained_commands = p.add_subparsers(dest="pretrained_command", metavar="ACTION")
    q = pretrained_commands.add_parser("show", help="print a model's whole card (JSON)")
    q.add_argument("name")
    q = pretrained_commands.add_parser(
        "package",
        help="(maintainers) store a finished, evaluated run as a pretrained model: float16 weights and a card",
    )
    q.add_argument("run", help="a run folder with checkpoints/best.keras and metrics.json")
    q.add_argument("--name", required=True, help="the model's name (letters, digits, _)")
    q.add_argument("--description", required=True, help="one sentence: what the model predicts")
    q.add_argument("--command", dest="training_command", required=True, help="the command that trained the run")
    q.add_argument("--out", help="folder for NAME.npz and NAME.json (default: the package's weights folder)")

    p = commands.add_parser("presets", help="list the shipped config presets")
    p.set_defaults(handler=_presets)

    _add_optional_commands(commands)
    return parser


def _pretrained(args) -> int:
    from predrnn import pretrained_models

    if args.pretrained_command == "package":
        card = pretrained_models.package_run(
            args.run,
            args.name,
            description=args.description,
            training={"command": args.training_command},
            out=args.out or pretrained_models.WEIGHTS_DIR,
        )
        print(
            f"Wrote {card['name']}: {card['weights']['bytes'] / 2**20:.1f} MB of float16 weights, "
            f"check mse_per_frame {card['check']['mse_per_frame']:.2f} on {card['check']['num_sequences']} sequences."
        )
        return 0
    names = pretrained_models.available()
    if args.pretrained_command == "show":
        print(json.dumps(pretrained_models.card(args.name), indent=2))
        return 0
    if not names:
        print("No pretrained models are installed.")
        return 0
    for name in names:
        print(format_card(pretrained_models.card(name)))
        print()
    print(
        "Use one with `predrnn predict NAME INPUT --horizon 10 --out DIR`, `predrnn evaluate NAME`, "
        'or predrnn.pretrained("NAME") in Python; `predrnn pretrained show NAME` prints its whole card.'
    )
    return 0


def format_card(card) -> str:
    """A pretrained model's card in a few lines: what it is, how it was trained, how it scores."""
    from predrnn.baselines import BASELINE_LABELS

    m, d, t = card["config"]["model"], card["config"]["data"], card["training"]
    test = card["test"]
    lines = [
        f"{card['name']}: {card['description']}",
        f"  model     {card['architecture']} {'x'.join(str(f) for f in m['filters'])} filters, kernel {m['kernel_size']}, "
        f"patch {m['patch_size']}; {card['parameters']:,} parameters ({card['weights']['bytes'] / 2**20:.1f} MB float16)",
        f"  data      Moving MNIST, {d['num_digits']} digit(s), {d['image_size']}x{d['image_size']}, "
        f"{d['input_length']} -> {d['output_length']} frames",
        f"  training  {t.get('steps')} steps in {t.get('wall_time_hours')} h on {t.get('machine')}",
        f"            {t.get('command')}",
        f"  test      {test['num_sequences']} sequences (seed {test['test_set'].get('seed')}): "
        f"mse_per_frame {test['mse_per_frame']:.2f}, ssim {test['ssim']:.4f}, psnr {test['psnr']:.2f} dB",
    ]
    for name, result in test.get("baselines", {}).items():
        lines.append(
            f"            {BASELINE_LABELS.get(name, name)}: mse_per_frame {result['mse_per_frame']:.2f}, ssim {result['ssim']:.4f}"
        )
    lines.append(f"  licence   {card['data_licence']}")
    return "\n".join(lines)


def _presets(args) -> int:
    from predrnn.jobs.config import PRESETS_DIR, preset_names

    for name in preset_names():
        first = (PRESETS_DIR / f"{name}.toml").read_text().splitlines()[0].lstrip("# ")
        print(f"{name:28s} {first}")
    return 0


def _add_optional_commands(commands):
    """Subcommands that live beside their jobs (data, experiment, benchmark)."""
    try:
        from predrnn.data.commands import add_data_parser
    except ImportError:  # pragma: no cover
        pass
    else:
        add_data_parser(commands)
    for module_name, adder in (
        ("predrnn.jobs.experiment.commands", "add_experiment_parser"),
        ("predrnn.benchmark.commands", "add_benchmark_parser"),
        ("predrnn.export", "add_export_parser"),
        ("predrnn.jobs.config_docs", "add_config_parser"),
    ):
        try:
            module = __import__(module_name, fromlist=[adder])
        except ImportError:
            continue
        if hasattr(module, adder):
            getattr(module, adder)(commands)


# TensorFlow's C++ start-up lines (e.g. "I0000 00:00:1.2 1 port.cc:153] oneDNN custom operations
# are on", "cudart_stub.cc:31] Could not find cuda drivers") are written while tensorflow is
# imported, before its log settings apply, and no environment variable silences them.
_ABSL_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_ABSL_LINE = re.compile(r"[IWEF]\d{4} [\d:. ]+\d+ [\w.]+:\d+\] ")


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Imports tensorflow, the first time anything does, with the C++ lines it writes to
    stderr filtered by TF_CPP_MIN_LOG_LEVEL (1: no INFO, 2: no WARNING, 3: no ERROR)."""

    def __init__(self, level: int):
        self.level = level

    def find_spec(self, name, path=None, target=None):
        # Stays on sys.meta_path until tensorflow is imported: asking whether it is installed
        # (importlib.util.find_spec, as Keras does on other backends) imports nothing.
        if name != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            exec_module = spec.loader.exec_module

            def quiet_exec_module(module):
                try:
                    with self._filtered_stderr():
                        exec_module(module)
                finally:
                    if self in sys.meta_path:
                        sys.meta_path.remove(self)

            spec.loader.exec_module = quiet_exec_module
        return spec

    def _dropped(self, line: str) -> bool:
        if line.startswith(_ABSL_BANNER):
            return True
        return bool(_ABSL_LINE.match(line)) and "IWEF".index(line[0]) < self.level

    @contextlib.contextmanager
    def _filtered_stderr(self):
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                lines = captured.read().decode(errors="replace").splitlines(keepends=True)
                sys.stderr.write("".join(line for line in lines if not self._dropped(line)))
                sys.stderr.flush()


def _quiet_tensorflow_start() -> None:
    """TF_CPP_MIN_LOG_LEVEL=3 unless the environment sets it, and its level applied to the
    lines tensorflow writes while it is imported (see :class:`_QuietTensorFlowImport`)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        level = int(os.environ["TF_CPP_MIN_LOG_LEVEL"])
    except ValueError:
        return
    if level > 0 and "tensorflow" not in sys.modules:
        if not any(isinstance(finder, _QuietTensorFlowImport) for finder in sys.meta_path):
            sys.meta_path.insert(0, _QuietTensorFlowImport(level))


def _apply_backend(argv) -> None:
    """Set KERAS_BACKEND from --backend, and TensorFlow's start-up settings (log level, CPU
    allocator), before anything imports keras."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--backend", choices=BACKENDS)
    known, _ = pre.parse_known_args(argv)
    if known.backend:
        if "keras" in sys.modules and os.environ.get("KERAS_BACKEND", "tensorflow") != known.backend:
            raise SystemExit(
                f"predrnn: --backend {known.backend}: keras is already imported with another backend in this process."
            )
        os.environ["KERAS_BACKEND"] = known.backend
    _quiet_tensorflow_start()
    from predrnn.acceleration.memory import use_the_command_allocators  # TensorFlow's BFC, two malloc arenas

    use_the_command_allocators()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    _apply_backend(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    from predrnn.errors import PredRNNError

    try:
        return args.handler(args)
    except PredRNNError as error:
        print(f"predrnn {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a path that cannot be written or read: one line too
        where = f": {error.filename}" if error.filename else ""
        print(f"predrnn {args.command}: error: {error.strerror or error}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"predrnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
