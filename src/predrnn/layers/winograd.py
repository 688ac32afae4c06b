"""Winograd convolution: the cells' 5x5 convolutions with fewer multiplies.

A k x k convolution producing an m x m output tile reads an (m + k - 1)^2 input tile.
Winograd's minimal filtering algorithm F(m x m, k x k) (Lavin & Gray, 2016) computes that
tile as ``A^T [(G g G^T) * (B^T d B)] A``: the multiply-adds over channels become
``(m + k - 1)^2`` independent matrix products, one per transform coefficient, so F(4x4, 5x5)
needs 64 multiplies per 16 outputs instead of 400 (6.25x fewer). The transforms are
exact in real arithmetic; in float32 the result differs from the direct convolution by
rounding (a few 1e-6 of the output scale for 5x5 kernels; tests/test_winograd.py checks
the transforms, the convolution in both layouts and its gradients). The kernels stay
``(k, k, in, out)``.

Used by the cells, as :func:`recomputing_winograd_conv2d`, in their XLA-compiled steps on TensorFlow
(see ``predrnn.layers.common.xla_cells``): inside an XLA-compiled cell step, one 5x5 conv forward
+ backward of PredRNN's shapes runs 2-3.6x faster than the direct convolution on a 2-core
AVX2 CPU (``benchmarks/conv_kernels.py tfxlawino``); without XLA it is slower (the
transforms stay separate kernels), so it is never used there. On JAX, as
:func:`transformed_winograd_conv2d` inside the models' scanned time loop; on PyTorch, opt-in,
as :func:`torch_winograd_conv2d`.
"""

import functools

import numpy as np
from keras import ops

CHANNELS_FIRST = "channels_first"

# Interpolation points of the Toom-Cook construction, smallest first (plus the point at
# infinity): small points keep the transforms' coefficients, and the rounding error, small.
_POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, 1.0 / 3.0, -1.0 / 3.0)


def winograd_tile(kernel_size):
    """The output tile used for a k x k kernel: 4x4 up to 5x5 (F(4x4, 5x5): 6.25x fewer
    multiplies), 2x2 above (larger tiles need more interpolation points, and more rounding)."""
    return 4 if kernel_size <= 5 else 2


@functools.lru_cache(maxsize=None)
def winograd_matrices(tile, kernel_size):
    """``(A^T (m, n), G (n, k), B^T (n, n))`` of F(m, k) as float64 NumPy arrays, n = m + k - 1.

    With ``y = A^T [(G g) * (B^T d)]``, ``y_i = sum_j d_(i + j) g_j`` (the correlation that
    a convolution layer computes) for every ``d`` of length n and ``g`` of length k.
    """
    m, k = tile, kernel_size
    n = m + k - 1
    if n - 1 > len(_POINTS):
        raise ValueError(f"Winograd F({m}, {k}) needs {n - 1} points; at most {len(_POINTS)} are defined.")
    points = np.asarray(_POINTS[: n - 1])
    a_t = np.zeros((m, n))
    g = np.zeros((n, k))
    for j, p in enumerate(points):
        others = np.delete(points, j)
        a_t[:, j] = p ** np.arange(m)
        g[j] = p ** np.arange(k) / np.prod(p - others)
    a_t[m - 1, n - 1] = 1.0
    g[n - 1, k - 1] = 1.0
    # B^T is the solution of sum_j A^T[i, j] G[j, l] B^T[j, s] = [s == i + l] (exact: the
    # system is consistent, so the least-squares residual is rounding only).
    coefficients = np.stack([a_t[i] * g[:, l] for i in range(m) for l in range(k)])
    targets = np.stack([np.eye(n)[i + l] for i in range(m) for l in range(k)])
    b_t = np.linalg.lstsq(coefficients, targets, rcond=None)[0]
    return a_t, g, b_t


def winograd_conv2d(x, kernel, tile=4, data_format="channels_last"):
    """Stride-1, "same"-padded, bias-free convolution of ``x`` with ``kernel`` ``(k, k, in, out)``.

    The same result as ``keras.ops.conv(x, kernel, padding="same")`` up to float rounding,
    for any odd ``k`` and any height and width (padded up to whole tiles, then cropped).
    Every transform is a plain matrix product: ``B^T d B`` as ``B^T`` applied to the tile
    rows, then to the tile columns; ``G g G^T`` and ``A^T M A`` each as one product with a
    Kronecker matrix. Compilers handle these far better than chains of small einsums.
    """
    to_v, to_u, to_y = _transforms(x, kernel.shape, tile, data_format)
    return to_y(ops.matmul(to_v(x), to_u(kernel)))


def recomputing_winograd_conv2d(x, kernel, tile=4, data_format="channels_last"):
    """:func:`winograd_conv2d` whose gradient keeps only ``x`` and ``kernel`` (TensorFlow).

    TensorFlow's automatic gradient of :func:`winograd_conv2d` keeps every intermediate for
    the backward pass: the transformed tiles and kernels, the per-coefficient products and
    the input of each transform matmul (for the unused gradient with respect to the
    constant transform matrices): 80 MB per PredRNN cell step at 4x64/batch 8, 5x the
    default's peak memory over 20 frames (benchmarks/README.md, "XLA cell steps"). This
    gradient recomputes the cheap, linear transforms of ``x`` and ``kernel``
    instead, and pulls the output gradient back through the (linear) output transform; the
    two large products of the backward pass are the same as before. Same values and
    gradients as :func:`winograd_conv2d` (``tests/test_winograd.py``).
    """
    import tensorflow as tf

    to_v, to_u, to_y = _transforms(x, kernel.shape, tile, data_format)

    @tf.custom_gradient
    def conv(x, kernel):
        products = ops.matmul(to_v(x), to_u(kernel))

        def grad(dy):
            with tf.GradientTape() as tape:
                tape.watch([x, kernel])
                v, u = to_v(x), to_u(kernel)
            zeros = tf.zeros_like(products)  # to_y is linear: its gradient does not depend on the point
            with tf.GradientTape() as output_tape:
                output_tape.watch(zeros)
                y = to_y(zeros)
            d_products = output_tape.gradient(y, zeros, output_gradients=dy)
            d_v = tf.matmul(d_products, u, transpose_b=True)
            d_u = tf.matmul(v, d_products, transpose_a=True)
            return tape.gradient([v, u], [x, kernel], output_gradients=[d_v, d_u])

        return to_y(products), grad

    return conv(ops.convert_to_tensor(x), ops.convert_to_tensor(kernel))


def torch_winograd_conv2d(x, kernel, tile=4, data_format="channels_first"):
    """:func:`winograd_conv2d` whose gradient keeps only ``x`` and ``kernel`` (PyTorch, eager).

    Unlike TensorFlow's graph mode, eager PyTorch runs Winograd faster than its direct
    convolution at PredRNN's shapes when both channel counts are large (one 5x5
    forward + backward, B 8, 16x16, in ms: 64 -> 448 55 against 94, 128 -> 896 164 against
    360; slower at 16 -> 448: 40 against 26; ``benchmarks/conv_kernels.py torch|torchwino``).
    PyTorch's autograd of :func:`winograd_conv2d` would keep every transform and product
    for the backward pass (tens of MB per convolution and time step); this
    ``torch.autograd.Function`` keeps what the direct convolution keeps, ``x`` and
    ``kernel``, and recomputes their (cheap, linear) transforms in the backward pass.
    """
    function = _torch_winograd_conv2d_class()
    return function.apply(ops.convert_to_tensor(x), ops.convert_to_tensor(kernel), tile, data_format)


@functools.lru_cache(maxsize=None)
def _torch_winograd_conv2d_class():  # made at first use: torch is optional
    import torch

    class TorchWinogradConv2d(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, kernel, tile, data_format):
            ctx.save_for_backward(x, kernel)
            ctx.tile, ctx.data_format = tile, data_format
            to_v, to_u, to_y = _transforms(x, kernel.shape, tile, data_format)
            return to_y(torch.matmul(to_v(x), to_u(kernel)))

        @staticmethod
        def backward(ctx, dy):
            x, kernel = ctx.saved_tensors
            to_v, to_u, to_y = _transforms(x, kernel.shape, ctx.tile, ctx.data_format)
            wanted = [t.detach().requires_grad_(needed) for t, needed in zip((x, kernel), ctx.needs_input_grad[:2])]
            with torch.enable_grad():
                v, u = to_v(wanted[0]), to_u(wanted[1])
                # to_y is linear: its adjoint, applied to dy, is the gradient of to_y at any point.
                zeros = torch.zeros((v.shape[0], v.shape[1], u.shape[2]), dtype=dy.dtype, requires_grad=True)
                (d_products,) = torch.autograd.grad(to_y(zeros), zeros, dy)
                targets = [(v, d_products @ u.detach().transpose(1, 2)), (u, v.detach().transpose(1, 2) @ d_products)]
                targets = [(out, grad) for (out, grad), needed in zip(targets, ctx.needs_input_grad[:2]) if needed]
                sources = [t for t, needed in zip(wanted, ctx.needs_input_grad[:2]) if needed]
                grads = iter(torch.autograd.grad([o for o, _ in targets], sources, [g for _, g in targets]))
            return (*(next(grads) if needed else None for needed in ctx.needs_input_grad[:2]), None, None)

    return TorchWinogradConv2d



def winograd_kernel(kernel, tile=4):
    """``kernel`` ``(k, k, in, out)`` transformed for F(tile, k): ``(n^2, in, out)``, n = tile + k - 1.

    The operand of :func:`transformed_winograd_conv2d`. Computed once per sequence, outside
    a time loop, its gradient is summed over the time steps before it is pulled back
    through this transform once.
    """
    kernel = ops.convert_to_tensor(kernel)
    return _transforms(kernel, kernel.shape, tile, "channels_last")[1](kernel)


def transformed_winograd_conv2d(x, u, kernel_size, tile=4, data_format="channels_last"):
    """:func:`winograd_conv2d` of ``x`` with the :func:`winograd_kernel` ``u`` (JAX).

    Its gradient (a ``jax.custom_vjp``) keeps only ``x`` and ``u``, as the direct
    convolution keeps ``x`` and the kernel, and recomputes the (cheap, linear) input
    transform; JAX's automatic gradient would keep the transformed input, ``(n / tile)^2``
    times larger than ``x`` (4x for 5x5 kernels), per convolution and time step.
    """
    return _jax_transformed_winograd(kernel_size, tile, data_format)(x, u)


@functools.lru_cache(maxsize=None)
def _jax_transformed_winograd(kernel_size, tile, data_format):  # made at first use: JAX is optional
    import jax
    import jax.numpy as jnp

    def maps(x, u):
        return _transforms(x, (kernel_size, kernel_size, u.shape[1], u.shape[2]), tile, data_format)

    @jax.custom_vjp
    def conv(x, u):
        to_v, _, to_y = maps(x, u)
        return to_y(jnp.matmul(to_v(x), u))

    def forward(x, u):
        return conv(x, u), (x, u)

    def backward(saved, dy):
        x, u = saved
        to_v, _, to_y = maps(x, u)
        v, v_transpose = jax.vjp(to_v, x)
        # to_y is linear: its transpose, applied to dy, is its gradient at any point.
        _, y_transpose = jax.vjp(to_y, jnp.zeros((v.shape[0], v.shape[1], u.shape[2]), dy.dtype))
        (d_products,) = y_transpose(dy)
        (d_x,) = v_transpose(jnp.matmul(d_products, jnp.swapaxes(u, 1, 2)))
        return d_x, jnp.matmul(jnp.swapaxes(v, 1, 2), d_products)

    conv.defvjp(forward, backward)
    return conv


def _transforms(x, kernel_shape, tile, data_format):
    """The three linear maps of F(tile, k) for ``x``'s shape and a ``(k, k, in, out)`` kernel:
    ``(x -> v, kernel -> u, products -> y)``.

    ``v`` is ``(n^2, tiles, in)``, ``u`` ``(n^2, in, out)``; the convolution is
    ``to_y(v @ u)``.
    """
    k = kernel_shape[0]
    if k != kernel_shape[1] or k % 2 == 0:
        raise ValueError(f"winograd_conv2d needs a square, odd kernel. Received: kernel shape {tuple(kernel_shape)}")
    channels_first = data_format == CHANNELS_FIRST
    height, width = (x.shape[2], x.shape[3]) if channels_first else (x.shape[1], x.shape[2])
    in_channels, out_channels = kernel_shape[2], kernel_shape[3]
    m, n = tile, tile + k - 1
    tiles_h, tiles_w = -(-height // m), -(-width // m)
    a_t, g, b_t = winograd_matrices(m, k)
    b_t, g_g, a_a = (ops.convert_to_tensor(a.astype("float32"), dtype=x.dtype) for a in (b_t, np.kron(g, g), np.kron(a_t, a_t)))
    # Zero-pad by k // 2 (the "same" padding), plus whatever completes the last tile.
    lo = k // 2
    pads = [[lo, m * tiles_h + k - 1 - height - lo], [lo, m * tiles_w + k - 1 - width - lo]]
    pads = [[0, 0], [0, 0], *pads] if channels_first else [[0, 0], *pads, [0, 0]]
    span_h, span_w = m * (tiles_h - 1) + 1, m * (tiles_w - 1) + 1

    def transform(stacked):  # B^T along the leading axis of (n, ...)
        return ops.reshape(ops.matmul(b_t, ops.reshape(stacked, (n, -1))), ops.shape(stacked))

    def to_v(x):
        """Input transform of every n x n tile (tiles overlap by k - 1): rows, then columns.

        ``v[e * n + a]`` is coefficient ``(a, e)`` of ``B^T d B``: ``a`` over rows, ``e`` over columns.
        """
        x = ops.pad(x, pads)
        if channels_first:  # x: (batch, c, H, W)
            rows = transform(ops.stack([x[:, :, r : r + span_h : m] for r in range(n)]))  # (n, b, c, th, W)
            v = transform(ops.stack([rows[..., s : s + span_w : m] for s in range(n)]))  # (n, n, b, c, th, tw)
            v = ops.transpose(v, (0, 1, 2, 4, 5, 3))
        else:  # x: (batch, H, W, c)
            rows = transform(ops.stack([x[:, r : r + span_h : m] for r in range(n)]))  # (n, b, th, W, c)
            v = transform(ops.stack([rows[:, :, :, s : s + span_w : m] for s in range(n)]))  # (n, n, b, th, tw, c)
        return ops.reshape(v, (n * n, -1, in_channels))

    def to_u(kernel):
        """``u[e * n + a] = (G g G^T)[a, e]``."""
        kernel = ops.reshape(ops.transpose(kernel, (1, 0, 2, 3)), (k * k, in_channels * out_channels))
        return ops.reshape(ops.matmul(g_g, kernel), (n * n, in_channels, out_channels))

    def to_y(products):
        """``A^T M A`` (rows ``j * m + i``: output pixel ``(i, j)`` of the tile), tiles back in place, crop."""
        y = ops.matmul(a_a, ops.reshape(products, (n * n, -1)))
        y = ops.reshape(y, (m, m, -1, tiles_h, tiles_w, out_channels))
        if channels_first:
            y = ops.transpose(y, (2, 5, 3, 1, 4, 0))
            y = ops.reshape(y, (-1, out_channels, m * tiles_h, m * tiles_w))
            return y[:, :, :height, :width]
        y = ops.transpose(y, (2, 3, 1, 4, 0, 5))
        y = ops.reshape(y, (-1, m * tiles_h, m * tiles_w, out_channels))
        return y[:, :height, :width]

    return to_v, to_u, to_y
