"""predrnn export: the rollout as a SavedModel that plain TensorFlow runs without this package."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from predrnn import PredRNN
from predrnn.cli import main
from predrnn.errors import ConfigError
from predrnn.export import export_model

ON_TENSORFLOW = keras.backend.backend() == "tensorflow"

# Run in a fresh interpreter: TensorFlow alone loads the export and rolls out; predrnn is never imported.
_LOAD_WITH_TENSORFLOW_ONLY = """
import sys
import numpy as np
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
context = tf.constant(np.load(sys.argv[2]))
np.save(sys.argv[3], loaded.rollout(context).numpy())
np.save(sys.argv[4], loaded.signatures["serving_default"](context=context)["output_0"].numpy())
assert not any(name == "predrnn" or name.startswith("predrnn.") for name in sys.modules), "predrnn was imported"
"""


def _checkpoint(tmp_path, **arguments):
    model = PredRNN(filters=(4, 4), kernel_size=3, patch_size=2, **arguments)
    model.build((None, None, 16, 16, 1))
    path = tmp_path / "model.keras"
    model.save(path)
    return model, path


@pytest.mark.skipif(not ON_TENSORFLOW, reason="the SavedModel is traced by TensorFlow: export runs on the TensorFlow backend")
def test_the_saved_model_rolls_out_like_the_model_with_tensorflow_alone(tmp_path):
    model, path = _checkpoint(tmp_path, decoupling_weight=0.1)
    description = export_model(path, tmp_path / "export", context=3, horizon=5)
    assert description["input"]["shape"] == [None, 3, 16, 16, 1] and description["output"]["shape"] == [None, 5, 16, 16, 1]
    assert json.loads((tmp_path / "export" / "predrnn_export.json").read_text())["horizon"] == 5
    context = np.random.default_rng(0).random((3, 3, 16, 16, 1)).astype("float32")
    np.save(tmp_path / "context.npy", context)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH="")  # nothing but site-packages
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_WITH_TENSORFLOW_ONLY, tmp_path / "export", tmp_path / "context.npy",
         tmp_path / "rollout.npy", tmp_path / "serving.npy"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    expected = model.rollout(context, 5)
    np.testing.assert_allclose(np.load(tmp_path / "rollout.npy"), expected, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "serving.npy"), expected, atol=1e-5)


@pytest.mark.skipif(not ON_TENSORFLOW, reason="the export runs on the TensorFlow backend")
def test_the_command_refuses_a_non_empty_folder_and_prints_what_it_wrote(tmp_path, capsys):
    _, path = _checkpoint(tmp_path)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("precious")
    assert main(["export", str(path), "--out", str(tmp_path / "busy"), "--context", "2", "--horizon", "2"]) == 2
    assert "exists and is not empty. Pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "busy" / "keep.txt").read_text() == "precious"
    assert main(["export", str(path), "--out", str(tmp_path / "out"), "--context", "2", "--horizon", "3"]) == 0
    assert "rollout(context Bx2x16x16x1) -> Bx3x16x16x1 frames" in capsys.readouterr().out


@pytest.mark.skipif(ON_TENSORFLOW, reason="checks the message given on the other backends")
def test_other_backends_are_told_to_use_tensorflow(tmp_path):
    _, path = _checkpoint(tmp_path)
    with pytest.raises(ConfigError, match="Run it with --backend tensorflow"):
        export_model(path, tmp_path / "export")
    assert not (tmp_path / "export").exists()


@pytest.mark.skipif(not ON_TENSORFLOW, reason="the export runs on the TensorFlow backend")
def test_onnx_without_tf2onnx_names_the_missing_package(tmp_path, monkeypatch):
    _, path = _checkpoint(tmp_path)
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # as if not installed
    with pytest.raises(
        ConfigError, match="needs the tf2onnx and onnx packages, which are not installed: pip install tf2onnx onnx"
    ):
        export_model(path, tmp_path / "export", format="onnx", context=2, horizon=2)


@pytest.mark.skipif(not ON_TENSORFLOW, reason="the export runs on the TensorFlow backend")
def test_the_onnx_export_rolls_out_like_the_model_in_onnxruntime(tmp_path):
    pytest.importorskip("tf2onnx", reason='--format onnx needs tf2onnx: pip install -e ".[onnx]"')
    onnxruntime = pytest.importorskip("onnxruntime", reason="the check runs the export with onnxruntime")
    model, path = _checkpoint(tmp_path)
    description = export_model(path, tmp_path / "export", format="onnx", context=3, horizon=4)
    session = onnxruntime.InferenceSession(description["artifact"])
    context = np.random.default_rng(1).random((2, 3, 16, 16, 1)).astype("float32")
    (prediction,) = session.run([description["output"]["name"]], {"context": context})
    np.testing.assert_allclose(prediction, model.rollout(context, 4), atol=1e-5)
