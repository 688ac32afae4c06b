"""The `predrnn data moving-mnist` command, through argparse and run_data_command."""

import argparse

import numpy as np
import pytest

from predrnn.data import generate_moving_mnist, load_sequences
from predrnn.data.commands import add_data_parser, run_data_command
from predrnn.errors import DataError


def _parse(argv):
    parser = argparse.ArgumentParser(prog="predrnn")
    add_data_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_moving_mnist_command_writes_the_mnist_test_seq_layout(tmp_path, capsys):
    out = tmp_path / "mnist_test_seq_small.npy"  # 3 sequences < 4 frames: the name tells the layout
    args = _parse(["data", "moving-mnist", "--num", "3", "--seed", "7", "--digits", "1", "--frames", "4", "--out", str(out)])
    assert args.handler is run_data_command
    assert run_data_command(args) == 0
    stored = np.load(out)
    assert stored.shape == (4, 3, 64, 64) and stored.dtype == np.uint8
    expected = generate_moving_mnist(3, 7, num_digits=1, num_frames=4, split="test")
    np.testing.assert_allclose(load_sequences(out)[:], np.round(expected * 255) / 255, atol=1e-6)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Wrote 3 Moving MNIST sequences") and "seed 7" in lines[0]


@pytest.mark.parametrize(
    "name, extra, layout",
    [("set.npz", [], "official-npz"), ("set.npy", ["--format", "npy"], "NTHWC"), ("set.npz", ["--format", "npy"], "NTHWC")],
)
def test_other_formats(tmp_path, capsys, name, extra, layout):
    out = tmp_path / name
    run_data_command(_parse(["data", "moving-mnist", "--num", "2", "--frames", "3", "--image-size", "32", "--out", str(out), *extra]))
    loaded = load_sequences(out)
    assert loaded.layout == layout and loaded.shape == (2, 3, 32, 32, 1)
    np.testing.assert_array_equal(loaded[:], generate_moving_mnist(2, 0, num_frames=3, image_size=32))


def test_small_sets_under_other_names_get_a_layout_hint(tmp_path, capsys):
    out = tmp_path / "tiny.npy"
    run_data_command(_parse(["data", "moving-mnist", "--num", "2", "--frames", "3", "--out", str(out)]))
    assert "load it with layout='TNHW'" in capsys.readouterr().out
    assert load_sequences(out, layout="TNHW").shape == (2, 3, 64, 64, 1)


def test_existing_output_needs_overwrite(tmp_path, capsys, unchanged):
    out = tmp_path / "x.npy"
    argv = ["data", "moving-mnist", "--num", "1", "--frames", "2", "--out", str(out)]
    run_data_command(_parse(argv))
    with unchanged(tmp_path), pytest.raises(DataError, match="x.npy' already exists; pass --overwrite"):
        run_data_command(_parse(argv + ["--seed", "1"]))
    assert run_data_command(_parse(argv + ["--seed", "1", "--overwrite"])) == 0


def test_bad_arguments(tmp_path):
    with pytest.raises(DataError, match="Choose a data command"):
        run_data_command(_parse(["data"]))
    with pytest.raises(DataError, match="--num must be >= 1"):
        run_data_command(_parse(["data", "moving-mnist", "--num", "0", "--out", str(tmp_path / "a.npy")]))
    with pytest.raises(DataError, match="--input-length applies to --format official-npz only"):
        run_data_command(_parse(["data", "moving-mnist", "--num", "1", "--input-length", "3", "--out", str(tmp_path / "a.npy")]))
    with pytest.raises(SystemExit):
        _parse(["data", "moving-mnist", "--num", "1", "--format", "hdf5", "--out", "a"])
    assert not any(tmp_path.iterdir())


def test_importing_the_data_layer_does_not_import_keras():
    # The CLI registers `data` before --backend sets KERAS_BACKEND; only the dataset needs Keras.
    import subprocess
    import sys

    code = "import sys, predrnn.data.commands; print('keras' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
