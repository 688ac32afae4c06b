"""Training and inference throughput of PredRNN, side by side with a PyTorch reference.

One command measures, for a model configuration and a list of *implementations* (a Keras
backend, a precision, fast paths on or off, or the PyTorch reference re-implementation in
:mod:`predrnn.benchmark.reference_torch`):

- seconds per training step (median of ``steps`` timed steps after warm-up and compile), the
  compile time (first step minus the median step), sequences and frames per second;
- the analytic FLOPs of one training step (:func:`training_flops`, derived from the cells), the achieved GFLOP/s and its
  fraction of the machine's dense-matmul peak, measured in the same run (NumPy sgemm, once per
  round, so under the same load as the steps) and per backend (its own matmul, in its precision);
- the time of a compiled ``input_length -> output_length`` inference rollout per sequence;
- the peak memory (resident set of the implementation's own process; device peak on a GPU);
- the time the step waits for the input pipeline (the library's Moving MNIST stream and
  :class:`~predrnn.data.VideoPredictionDataset`, fetched synchronously: an upper bound).

Every implementation runs in its own worker process (``KERAS_BACKEND`` is fixed per process,
and peak memory is per process). Timed steps are *interleaved*: round ``r`` runs one step of
every implementation, then one NumPy sgemm, so a change of machine load hits all of them alike;
ratios to the reference are medians of per-round ratios. Use::

    predrnn benchmark --preset mnist --impl reference tensorflow torch jax \\
        --output benchmarks/results/mnist.json --readme benchmarks/results/mnist.md
    python -m predrnn.benchmark ...   # the same without the predrnn entry point

Modules: :mod:`~predrnn.benchmark.config` (what is timed), :mod:`~predrnn.benchmark.flops`,
:mod:`~predrnn.benchmark.machine` (matmul peaks, memory, devices), :mod:`~predrnn.benchmark.runners`
and :mod:`~predrnn.benchmark.workers` (what runs in each worker process),
:mod:`~predrnn.benchmark.run` (the interleaved rounds), :mod:`~predrnn.benchmark.report` (the
table), :mod:`~predrnn.benchmark.commands` (the command line).
"""

from predrnn.benchmark.config import PRESETS, BenchmarkConfig, Implementation, parse_implementation
from predrnn.benchmark.flops import conv_flops, forward_flops, rollout_flops, step_forward_flops, training_flops
from predrnn.benchmark.machine import measure_matmul_peak
from predrnn.benchmark.report import format_markdown
from predrnn.benchmark.run import RESULT_KEYS, run_benchmark

__all__ = [
    "BenchmarkConfig",
    "Implementation",
    "PRESETS",
    "RESULT_KEYS",
    "conv_flops",
    "format_markdown",
    "forward_flops",
    "measure_matmul_peak",
    "parse_implementation",
    "rollout_flops",
    "run_benchmark",
    "step_forward_flops",
    "training_flops",
]
