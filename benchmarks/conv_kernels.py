"""One 5x5 convolution, forward + both gradients, per framework: the conv-kernel ceiling.

The shape is a fused PredRNN gate conv of the 4x64 Moving MNIST model (batch 8, 16x16
patches, 128 -> 256 channels; ``CIN``/``COUT`` in the environment override the channels).
Modes: tf (graph), tfxla, torch (channels-first), tfmm (im2col + matmul in TensorFlow),
tfwino / tfxlawino (``predrnn.acceleration.winograd.winograd_conv2d``, F(4x4, 5x5), graph / XLA),
torchwino / torchtransformed / torchcompile / torchcompilewino (PyTorch channels-first:
Winograd eager, with autograd's gradient and as the models run it, ``transformed_winograd_conv2d``
of a kernel transformed beforehand, as once per sequence, whose gradient it returns; and
``torch.compile`` of the direct and the Winograd convolution). ``K`` sets the kernel size.
Prints the median of 10 runs and GFLOP/s of the direct convolution's FLOPs (3x forward).

    for m in tf tfxla torch tfmm tfwino tfxlawino; do python benchmarks/conv_kernels.py $m; done

Produced the 86 / 100 / 93 / 90 GFLOP/s figures of benchmarks/README.md (2026-11-29) and
the Winograd comparison there.
"""

import os
import statistics
import sys
import time

import numpy as np

which = sys.argv[1]
B, S, K = 8, 16, int(os.environ.get("K", 5))
CIN, COUT = int(os.environ.get("CIN", 128)), int(os.environ.get("COUT", 256))
x = np.random.rand(B, S, S, CIN).astype("float32")
w = (np.random.rand(K, K, CIN, COUT).astype("float32") - 0.5) * 0.05
flops = 3 * 2 * B * S * S * K * K * CIN * COUT


def bench(fn, n=10):
    fn()
    fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


if which in ("tf", "tfxla", "tfwino", "tfxlawino"):
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import tensorflow as tf

    from predrnn.acceleration.winograd import winograd_conv2d

    conv = winograd_conv2d if which.endswith("wino") else (lambda x, w: tf.nn.conv2d(x, w, 1, "SAME"))
    xt, wt = tf.constant(x), tf.Variable(w)

    @tf.function(jit_compile=which.startswith("tfxla"))
    def step():
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = conv(xt, wt)
            loss = tf.reduce_sum(y * y)
        gx, gw = tape.gradient(loss, [xt, wt])
        return gx[0, 0, 0, 0] + gw[0, 0, 0, 0]

    f = lambda: step().numpy()
elif which in ("torchwino", "torchtransformed", "torchcompile", "torchcompilewino"):  # channels-first
    os.environ["KERAS_BACKEND"] = "torch"
    import torch

    from predrnn.acceleration.winograd import transformed_winograd_conv2d, winograd_conv2d, winograd_kernel, winograd_tile

    xt = torch.tensor(x).permute(0, 3, 1, 2).contiguous().requires_grad_(True)
    wt = torch.tensor(w).requires_grad_(True)  # (k, k, in, out), as the library stores it
    if which == "torchtransformed":  # the kernel transformed beforehand: its gradient is u's
        wt = winograd_kernel(wt, winograd_tile(K)).detach().requires_grad_(True)
        conv = lambda x, u: transformed_winograd_conv2d(x, u, K, winograd_tile(K), "channels_first")
    elif which.endswith("wino"):
        conv = lambda x, w: winograd_conv2d(x, w, tile=winograd_tile(K), data_format="channels_first")
    else:
        conv = lambda x, w: torch.nn.functional.conv2d(x, w.permute(3, 2, 0, 1), padding=K // 2)

    def loss(x, w):
        y = conv(x, w)
        return (y * y).sum()

    if which.startswith("torchcompile"):
        loss = torch.compile(loss)

    def f():
        loss(xt, wt).backward()
        xt.grad = None
        wt.grad = None
elif which.startswith("torch"):
    import torch

    xt = torch.tensor(x).permute(0, 3, 1, 2).contiguous().requires_grad_(True)
    wt = torch.tensor(w).permute(3, 2, 0, 1).contiguous().requires_grad_(True)

    def f():
        y = torch.nn.functional.conv2d(xt, wt, padding=K // 2)
        (y * y).sum().backward()
        xt.grad = None
        wt.grad = None
elif which == "tfmm":  # im2col + matmul
    import tensorflow as tf

    xt, wt = tf.constant(x), tf.Variable(w)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(xt)
            p = tf.image.extract_patches(xt, [1, K, K, 1], [1, 1, 1, 1], [1, 1, 1, 1], "SAME")
            y = tf.reshape(p, (-1, K * K * CIN)) @ tf.reshape(wt, (K * K * CIN, COUT))
            loss = tf.reduce_sum(y * y)
        gx, gw = tape.gradient(loss, [xt, wt])
        return gx[0, 0, 0, 0] + gw[0, 0, 0, 0]

    f = lambda: step().numpy()
t = bench(f)
print(f"{which}: {t * 1000:.1f} ms fwd+bwd, {flops / t / 1e9:.1f} GFLOP/s")
