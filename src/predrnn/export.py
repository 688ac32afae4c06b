"""Models to deploy: a run's or a checkpoint's rollout as a TensorFlow SavedModel (or ONNX) that
runs without this package.

``predrnn export RUN_OR_CHECKPOINT --format saved_model --out DIR --context 10 --horizon 10``
writes one function, ``rollout``: ``context`` float32 ``(batch, context, H, W, C)`` frames in
[0, 1] in, ``(batch, horizon, H, W, C)`` predicted frames out: exactly ``model.rollout(context,
horizon)`` (pure autoregression, predictions not clipped). The batch size is free; the context
and horizon lengths are fixed when exporting (the time loop is unrolled for them). Use it with
TensorFlow alone::

    import tensorflow as tf
    rollout = tf.saved_model.load("DIR").rollout
    future = rollout(tf.constant(context)).numpy()

The same function is the ``serving_default`` signature (input ``context``, output ``output_0``)
for TensorFlow Serving. ``DIR/predrnn_export.json`` describes the export (shapes, lengths, the
checkpoint and its config).

The export is traced by TensorFlow: it needs the TensorFlow backend (``--backend
tensorflow``); the checkpoint itself is the same on every backend. The cells' compiled fast
paths (:mod:`predrnn.acceleration`) are switched off for it, so the graph holds only standard
TensorFlow operations. ``--format onnx`` converts the same function with ``tf2onnx`` (``pip
install tf2onnx onnx``) into ``DIR/model.onnx``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from predrnn.errors import ConfigError

__all__ = ["FORMATS", "add_export_parser", "export_model", "run_export_command"]

FORMATS = ("saved_model", "onnx")
DESCRIPTION_FILE = "predrnn_export.json"


def _check_backend() -> None:
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ConfigError(
            f"predrnn export writes a TensorFlow graph and runs on the TensorFlow backend only (this is "
            f"{keras.backend.backend()}). Run it with --backend tensorflow; the checkpoint is the same on every backend."
        )


def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"--{name} must be a positive integer. Received: {value!r}")
    return value


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out must be a folder; {out} is a file.")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(f"The output folder {out} exists and is not empty. Pass --overwrite or another --out.")
        shutil.rmtree(out)


def _rollout_function(model, context: int, horizon: int):
    """A ``tf.function`` of ``(None, context, H, W, C)`` float32 frames: the model's rollout."""
    import tensorflow as tf

    height, width, channels = model.frame_shape
    spec = tf.TensorSpec((None, context, height, width, channels), tf.float32, name="context")

    @tf.function(input_signature=[spec], autograph=False)
    def rollout(frames):
        return model.rollout(frames, horizon)

    return rollout, spec


def _write_onnx(rollout, spec, path: Path) -> str:
    """Convert with tf2onnx; returns the ONNX graph's output name."""
    try:
        import tf2onnx
    except ImportError:
        raise ConfigError(
            "--format onnx needs the tf2onnx and onnx packages, which are not installed: pip install tf2onnx onnx "
            'onnxruntime (in a clone of the repository: pip install -e ".[onnx]"; onnxruntime runs the result). '
            "--format saved_model needs nothing more."
        ) from None
    try:
        proto, _ = tf2onnx.convert.from_function(rollout, input_signature=[spec], opset=17, output_path=str(path))
    except Exception as error:  # noqa: BLE001 - any converter failure is reported the same way
        raise ConfigError(f"tf2onnx could not convert the rollout: {type(error).__name__}: {error}") from None
    return proto.graph.output[0].name


def export_model(run_or_checkpoint, out, *, format: str = "saved_model", context=None, horizon=None, overwrite=False) -> dict:
    """Export the rollout of a run folder, ``.keras`` file, official checkpoint or pretrained name.

    ``context`` and ``horizon`` default to the run's ``input_length`` and ``output_length``
    (else 10 and 10). Returns the description written to ``out/predrnn_export.json``.
    """
    if format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}. Received: {format!r}")
    _check_backend()
    out = Path(out)
    _prepare_out(out, overwrite)

    from predrnn.acceleration.options import use_options
    from predrnn.jobs.evaluate import load_predictor

    model, config, checkpoint = load_predictor(run_or_checkpoint)
    context = _positive("context", context if context is not None else (config.data.input_length if config else 10))
    horizon = _positive("horizon", horizon if horizon is not None else (config.data.output_length if config else 10))
    if model.frame_shape is None or None in tuple(model.frame_shape):
        raise ConfigError(f"{checkpoint} holds a model that was never built: its frame size is unknown.")
    height, width, channels = (int(v) for v in model.frame_shape)
    with use_options(xla_cells=False, fused_gates=False):
        rollout, spec = _rollout_function(model, context, horizon)
        out.mkdir(parents=True, exist_ok=True)
        if format == "saved_model":
            import keras

            # The archive tracks the weights, not the model: a model's own SavedModel signature
            # would be its call on the frames and mask, which is not what is exported.
            archive = keras.export.ExportArchive()
            archive.add_variable_collection("weights", model.weights)
            archive.add_endpoint("serve", rollout)
            archive.add_endpoint("rollout", rollout)
            archive.write_out(str(out), verbose=False)
            artifact, output_name = str(out), "output_0"  # the serving_default signature's output
        else:
            artifact = str(out / "model.onnx")
            output_name = _write_onnx(rollout, spec, Path(artifact))
    description = {
        "format": format,
        "artifact": artifact,
        "function": "rollout",
        "input": {"name": "context", "shape": [None, context, height, width, channels], "dtype": "float32", "range": [0, 1]},
        "output": {"name": output_name, "shape": [None, horizon, height, width, channels], "dtype": "float32"},
        "context": context,
        "horizon": horizon,
        "checkpoint": str(Path(checkpoint).resolve()) if Path(str(checkpoint)).exists() else str(checkpoint),
        "model": {"class": type(model).__name__, "parameters": int(model.count_params())},
        "config": config.to_dict() if config is not None else None,
    }
    (out / DESCRIPTION_FILE).write_text(json.dumps(description, indent=2, default=list))
    return description


def add_export_parser(commands) -> argparse.ArgumentParser:
    """Register ``predrnn export`` on the main CLI's subcommands."""
    from predrnn.cli_args import add_backend_argument, positive_int

    parser = commands.add_parser(
        "export",
        help="write a model's rollout as a TensorFlow SavedModel (or ONNX) that runs without predrnn",
        description=(
            "Write the rollout of a run, checkpoint or pretrained model (context frames in, HORIZON future frames out) "
            "as a TensorFlow SavedModel: tf.saved_model.load(OUT).rollout(context). Needs the TensorFlow backend."
        ),
    )
    parser.add_argument(
        "run", metavar="RUN_OR_CHECKPOINT", help="a run folder, a .keras file, an official model.ckpt-N or a pretrained name"
    )
    parser.add_argument("--out", required=True, help="the folder to write")
    parser.add_argument("--format", choices=FORMATS, default="saved_model", help="saved_model (default) or onnx (needs tf2onnx)")
    parser.add_argument(
        "--context", type=positive_int, help="context frames the function takes (default: the run's input_length, else 10)"
    )
    parser.add_argument("--horizon", type=positive_int, help="frames it predicts (default: the run's output_length, else 10)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    add_backend_argument(parser)
    parser.set_defaults(handler=run_export_command)
    return parser


def run_export_command(args) -> int:
    description = export_model(
        args.run, args.out, format=args.format, context=args.context, horizon=args.horizon, overwrite=args.overwrite
    )
    shape = lambda s: "x".join("B" if v is None else str(v) for v in s)  # noqa: E731
    print(
        f"Wrote {description['artifact']} ({description['format']}): rollout(context {shape(description['input']['shape'])}) "
        f"-> {shape(description['output']['shape'])} frames; {DESCRIPTION_FILE} describes it."
    )
    return 0
