"""One ST-LSTM step's gate convolutions on PyTorch, forward + backward: separate or summed.

`separate`: ``conv_x(x)``, ``conv_h(h)`` and ``conv_m(m)`` as three
``transformed_winograd_conv2d`` calls, added channel by channel as the cell adds them;
`summed`: the same sums as one ``summed_transformed_winograd_conv2d`` call (one output
transform). Channels-first, 16x16, 5x5 kernels, ``n`` filters (the inputs have ``n``
channels, as in layers 2-4); the two alternate, 15 pairs, medians in ms. Checks first that
both give the same values and gradients.

    python benchmarks/gate_sums.py 64 8     # 4x64 model, batch 8
    python benchmarks/gate_sums.py 128 16   # paper model, batch 16

``model PRESET PAIRS`` instead times whole training steps of a benchmark preset's model,
the gate sums on and off (the loop's summing hook disabled) alternating step by step in
one process, and prints the medians and the median per-pair ratio:

    python benchmarks/gate_sums.py model mnist 6

Produced the per-step figures of benchmarks/README.md ("Gate sums with one output transform").
"""

import os
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "torch")
import torch  # noqa: E402

from predrnn.acceleration.winograd import summed_transformed_winograd_conv2d, transformed_winograd_conv2d  # noqa: E402


def whole_model(preset, pairs):
    import numpy as np

    from predrnn import benchmark
    from predrnn.acceleration.loops import WinogradLoopConvolution
    from predrnn.benchmark.runners import _KerasRunner

    runner = _KerasRunner(benchmark.PRESETS[preset], benchmark.parse_implementation("torch"))
    sums = WinogradLoopConvolution.summed
    on = {"value": True}
    WinogradLoopConvolution.summed = lambda self, *args: sums(self, *args) if on["value"] else None
    for on["value"] in (True, False):
        runner.step()  # warm-up
    steps = {True: [], False: []}
    for i in range(pairs):
        for on["value"] in (True, False) if i % 2 == 0 else (False, True):
            steps[on["value"]].append(runner.step()["step_s"])
    ratio = np.median([a / b for a, b in zip(steps[True], steps[False])])
    print(
        f"{preset}: summed {np.median(steps[True]):.2f} s, separate {np.median(steps[False]):.2f} s per step; "
        f"per pair {ratio:.3f}x ({pairs} pairs)"
    )


if len(sys.argv) > 1 and sys.argv[1] == "model":
    whole_model(sys.argv[2] if len(sys.argv) > 2 else "mnist", int(sys.argv[3]) if len(sys.argv) > 3 else 6)
    sys.exit()
n = int(sys.argv[1]) if len(sys.argv) > 1 else 64
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 8
make = lambda *shape: torch.randn(*shape, requires_grad=True)  # noqa: E731
x, h, m = make(batch, n, 16, 16), make(batch, n, 16, 16), make(batch, n, 16, 16)
ux, uh, um = make(64, n, 7 * n), make(64, n, 4 * n), make(64, n, 3 * n)  # F(4x4, 5x5): 64 coefficients


def separate():
    conv = lambda x, u: transformed_winograd_conv2d(x, u, 5, 4, "channels_first")  # noqa: E731
    gx, gh, gm = conv(x, ux), conv(h, uh), conv(m, um)
    return torch.cat([gx[:, : 3 * n] + gh[:, : 3 * n], gx[:, 3 * n : 6 * n] + gm, gx[:, 6 * n :] + gh[:, 3 * n :]], 1)


def summed():
    terms = [(x, ux, ((0, 0, 7 * n),)), (h, uh, ((0, 0, 3 * n), (3 * n, 6 * n, n))), (m, um, ((0, 3 * n, 3 * n),))]
    return summed_transformed_winograd_conv2d(terms, 7 * n, 5, 4, "channels_first")


weights = torch.randn(batch, 7 * n, 16, 16)
want = torch.autograd.grad((separate() * weights).sum(), [x, h, m, ux, uh, um])
got = torch.autograd.grad((summed() * weights).sum(), [x, h, m, ux, uh, um])
for a, b in zip(want, got):
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * a.abs().max().item())
times = {"separate": [], "summed": []}
for i in range(17):
    for name, conv in (("separate", separate), ("summed", summed)):
        start = time.perf_counter()
        (conv() * weights).sum().backward()
        if i >= 2:
            times[name].append(time.perf_counter() - start)
median = {name: statistics.median(values) * 1e3 for name, values in times.items()}
print(
    f"n={n} batch={batch}: separate {median['separate']:.1f} ms, summed {median['summed']:.1f} ms "
    f"({median['summed'] / median['separate']:.2f}x)"
)
