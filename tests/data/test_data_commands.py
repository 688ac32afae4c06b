"""The `predrnn data moving-mnist` command, through argparse and run_data_command."""

import argparse
import subprocess
import sys

import numpy as np
import pytest

from predrnn.data import commands, generate_moving_mnist, load_sequences
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
    run_data_command(
        _parse(["data", "moving-mnist", "--num", "2", "--frames", "3", "--image-size", "32", "--out", str(out), *extra])
    )
    loaded = load_sequences(out)
    assert loaded.layout == layout and loaded.shape == (2, 3, 32, 32, 1)
    np.testing.assert_array_equal(loaded[:], generate_moving_mnist(2, 0, num_frames=3, image_size=32))


@pytest.mark.parametrize("fmt", ["mnist-test-seq", "npy", "official-npz"])
def test_every_format_holds_the_generator_output_bit_for_bit_across_chunks(tmp_path, capsys, monkeypatch, fmt):
    monkeypatch.setattr(commands, "_CHUNK", 4)  # 10 sequences: chunks of 4, 4 and 2
    out = tmp_path / ("set.npz" if fmt == "official-npz" else "set.npy")
    argv = ["data", "moving-mnist", "--num", "10", "--seed", "3", "--digits", "3", "--frames", "5"]
    run_data_command(_parse(argv + ["--image-size", "40", "--format", fmt, "--out", str(out)]))
    expected = generate_moving_mnist(10, 3, num_digits=3, num_frames=5, image_size=40)
    if fmt == "mnist-test-seq":
        stored = np.load(out)  # uint8 (T, N, H, W)
        expected = np.transpose(expected[..., 0], (1, 0, 2, 3))
        np.testing.assert_array_equal(stored.astype(np.float32) / np.float32(255), expected)
    else:
        np.testing.assert_array_equal(load_sequences(out)[:], expected)


# Runs `python -m predrnn ARGS` and prints the process's own peak resident memory (VmHWM) at exit.
# (os.wait4's ru_maxrss would not do: a child's ru_maxrss starts from this test process's peak,
# which it inherits at fork and keeps through exec.)
_PEAK_OF_THE_COMMAND = """
import atexit, runpy, sys
def report():
    peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    sys.stderr.write(peak)
atexit.register(report)
sys.argv = ["predrnn", *sys.argv[1:]]
runpy.run_module("predrnn", run_name="__main__")
"""


def _peak_rss(argv) -> int:
    """Peak resident bytes of one `predrnn ...` process."""
    result = subprocess.run([sys.executable, "-c", _PEAK_OF_THE_COMMAND, *argv], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return int(result.stderr.splitlines()[-1].split()[1]) * 1024  # "VmHWM:   58504 kB"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_the_command_holds_a_chunk_not_the_set(tmp_path):
    # 3000 sequences of 20 x 64 x 64: a 246 MB file. The command generates and writes a chunk at a
    # time, so its peak grows by far less than the file over a --num 1 run (a whole uint8 set
    # would be 1x, a float32 set 4x).
    argv = ["data", "moving-mnist", "--seed", "0", "--overwrite", "--out"]
    baseline = _peak_rss(argv + [str(tmp_path / "one.npy"), "--num", "1"])
    peak = _peak_rss(argv + [str(tmp_path / "set.npy"), "--num", "3000"])
    output = (tmp_path / "set.npy").stat().st_size
    assert output == 3000 * 20 * 64 * 64 + 128
    assert peak - baseline < 0.5 * output, (peak, baseline, output)


def test_sets_under_other_names_get_a_layout_hint(tmp_path, capsys):
    out = tmp_path / "tiny.npy"
    run_data_command(_parse(["data", "moving-mnist", "--num", "2", "--frames", "3", "--out", str(out)]))
    assert "read it with --layout TNHW (data.layout = 'TNHW')" in capsys.readouterr().out
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
    for flag in ("--num", "--digits", "--frames", "--image-size"):  # argparse: "expected a positive integer"
        with pytest.raises(SystemExit):
            _parse(["data", "moving-mnist", "--num", "1", flag, "0", "--out", str(tmp_path / "a.npy")])
    with pytest.raises(DataError, match="--input-length applies to --format official-npz only"):
        run_data_command(_parse(["data", "moving-mnist", "--num", "1", "--input-length", "3", "--out", str(tmp_path / "a.npy")]))
    with pytest.raises(SystemExit):
        _parse(["data", "moving-mnist", "--num", "1", "--format", "hdf5", "--out", "a"])
    with pytest.raises(DataError, match=r"--out must name a .npy or .npz file .* Received: --out .*a.txt"):
        run_data_command(_parse(["data", "moving-mnist", "--num", "1", "--out", str(tmp_path / "a.txt")]))
    assert not any(tmp_path.iterdir())


def test_a_file_in_the_way_of_the_output_folder_is_named(tmp_path, unchanged):
    (tmp_path / "afile").write_text("x")
    for out in (tmp_path / "afile" / "x.npy", tmp_path / "afile" / "sub" / "x.npy"):
        with unchanged(tmp_path), pytest.raises(DataError, match=r"afile' is a file, not a folder. Choose another path"):
            run_data_command(_parse(["data", "moving-mnist", "--num", "1", "--frames", "2", "--out", str(out)]))


def test_importing_the_data_layer_does_not_import_keras():
    # The CLI registers `data` before --backend sets KERAS_BACKEND; only the dataset needs Keras.
    import subprocess
    import sys

    code = "import sys, predrnn.data.commands; print('keras' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_the_command_starts_without_a_deep_learning_framework(tmp_path):
    # Importing Keras (and TensorFlow) would cost the command seconds and hundreds of MB.
    out = tmp_path / "a.npy"
    code = (
        "import sys\n"
        "from predrnn.cli import main\n"
        f"status = main(['data', 'moving-mnist', '--num', '2', '--frames', '3', '--out', {str(out)!r}])\n"
        "print(status, sorted(m for m in ('keras', 'tensorflow', 'torch', 'jax') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "0 []"
