"""Does a framework's bfloat16 run faster than its float32 on this CPU? Matmul and 5x5 conv rates.

For one framework (``tensorflow``, ``jax`` or ``torch``), in float32 and bfloat16: a
2048 x 2048 matmul, and a 5x5 convolution of the 4x64 PredRNN's gate shape (batch 8, 16x16
patches, 64 -> 448 channels, channels-last), forward alone and forward + both gradients.
JAX also runs the bfloat16 matmul with float32 accumulation (``preferred_element_type``),
the form XLA:CPU hands to oneDNN. Prints GFLOP/s of the best of 5 (matmul) / median of 10
(convolutions) runs, and the bfloat16 / float32 speed ratio.

    for f in tensorflow jax torch; do python benchmarks/bf16_kernels.py $f; done

On a CPU without bfloat16 instructions (no ``avx512_bf16`` / ``amx_bf16`` in
/proc/cpuinfo) every framework emulates bfloat16; with AMX the matmuls are several times
faster in bfloat16. docs/performance.md ("Mixed precision") reports its figures.
"""

import os
import statistics
import sys
import time

import numpy as np

FRAMEWORK = sys.argv[1] if len(sys.argv) > 1 else "tensorflow"
if FRAMEWORK not in ("tensorflow", "jax", "torch"):
    sys.exit(f"usage: python benchmarks/bf16_kernels.py tensorflow|jax|torch (got {FRAMEWORK!r})")
N = 2048
B, S, K, CIN, COUT = 8, 16, 5, 64, 448
MATMUL_FLOPS = 2 * N**3
CONV_FLOPS = 2 * B * S * S * K * K * CIN * COUT  # forward; forward + gradients: 3x
rng = np.random.default_rng(0)
a_np = rng.standard_normal((N, N), dtype=np.float32)
x_np = rng.random((B, S, S, CIN), dtype=np.float32)
w_np = (rng.random((K, K, CIN, COUT), dtype=np.float32) - 0.5) * 0.05


def timed(fn, repeats, pick):
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return pick(times)


def tensorflow_kernels(dtype_name):
    import tensorflow as tf

    dtype = tf.as_dtype(dtype_name)
    a = tf.cast(tf.constant(a_np), dtype)
    x, w = tf.cast(tf.constant(x_np), dtype), tf.Variable(tf.cast(tf.constant(w_np), dtype))
    matmul = tf.function(lambda: tf.matmul(a, a)[0, 0])
    forward = tf.function(lambda: tf.nn.conv2d(x, w, 1, "SAME")[0, 0, 0, 0])

    @tf.function
    def both():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.nn.conv2d(x, w, 1, "SAME")
            loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 2)
        gx, gw = tape.gradient(loss, [x, w])
        return tf.cast(gx[0, 0, 0, 0], tf.float32) + tf.cast(gw[0, 0, 0, 0], tf.float32)

    return {
        "matmul": lambda: matmul().numpy(),
        "conv forward": lambda: forward().numpy(),
        "conv forward + gradients": lambda: both().numpy(),
    }


def jax_kernels(dtype_name):
    import jax
    import jax.numpy as jnp

    dtype = jnp.dtype(dtype_name)
    a = jnp.asarray(a_np, dtype)
    x, w = jnp.asarray(x_np, dtype), jnp.asarray(w_np, dtype)
    numbers = ("NHWC", "HWIO", "NHWC")

    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=numbers)

    def loss(x, w):
        return jnp.sum(conv(x, w).astype(jnp.float32) ** 2)

    matmul = jax.jit(lambda a: a @ a)
    accumulating = jax.jit(lambda a: jnp.matmul(a, a, preferred_element_type=jnp.float32))
    forward = jax.jit(conv)
    both = jax.jit(jax.grad(loss, argnums=(0, 1)))
    kernels = {
        "matmul": lambda: matmul(a).block_until_ready(),
        "conv forward": lambda: forward(x, w).block_until_ready(),
        "conv forward + gradients": lambda: jax.block_until_ready(both(x, w)),
    }
    if dtype_name == "bfloat16":
        kernels["matmul, float32 accumulation"] = lambda: accumulating(a).block_until_ready()
    return kernels


def torch_kernels(dtype_name):
    import torch

    torch.set_grad_enabled(True)
    dtype = getattr(torch, dtype_name)
    a = torch.tensor(a_np).to(dtype)
    # channels-last memory, the layout oneDNN's bfloat16 convolutions prefer
    x = torch.tensor(x_np).permute(0, 3, 1, 2).to(dtype).requires_grad_(True)
    w = torch.tensor(w_np).permute(3, 2, 0, 1).contiguous(memory_format=torch.channels_last).to(dtype)
    w.requires_grad_(True)

    def forward():
        with torch.no_grad():
            torch.nn.functional.conv2d(x, w, padding=K // 2)

    def both():
        y = torch.nn.functional.conv2d(x, w, padding=K // 2)
        (y.float() ** 2).sum().backward()
        x.grad = w.grad = None

    return {"matmul": lambda: a @ a, "conv forward": forward, "conv forward + gradients": both}


def main():
    os.environ.setdefault("KERAS_BACKEND", FRAMEWORK)
    make = {"tensorflow": tensorflow_kernels, "jax": jax_kernels, "torch": torch_kernels}[FRAMEWORK]
    rates = {}
    for dtype_name in ("float32", "bfloat16"):
        for name, fn in make(dtype_name).items():
            if name.startswith("matmul"):
                seconds = timed(fn, 5, min)
                flops = MATMUL_FLOPS
            else:
                seconds = timed(fn, 10, statistics.median)
                flops = CONV_FLOPS * (3 if "gradients" in name else 1)
            rates[(name, dtype_name)] = flops / seconds / 1e9
            print(f"{FRAMEWORK} {dtype_name:9s} {name:30s} {seconds * 1e3:8.2f} ms {rates[(name, dtype_name)]:8.1f} GFLOP/s")
    for name in ("matmul", "conv forward", "conv forward + gradients"):
        ratio = rates[(name, "bfloat16")] / rates[(name, "float32")]
        print(f"{FRAMEWORK} bfloat16 / float32 speed, {name}: {ratio:.2f}x")
    if ("matmul, float32 accumulation", "bfloat16") in rates:
        ratio = rates[("matmul, float32 accumulation", "bfloat16")] / rates[("matmul", "float32")]
        print(f"{FRAMEWORK} bfloat16 / float32 speed, matmul, float32 accumulation: {ratio:.2f}x")


if __name__ == "__main__":
    main()
