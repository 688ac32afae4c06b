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
(see :func:`predrnn.acceleration.options.xla_cells`): inside an XLA-compiled cell step, a 5x5 conv
forward + backward of PredRNN's shapes runs several times faster than the direct convolution
on a CPU (``benchmarks/conv_kernels.py tfxlawino``); without XLA it is slower (the
transforms stay separate kernels), so it is never used there. On JAX (inside the models'
scanned time loop) and on PyTorch (the models' eager loop), as :func:`transformed_winograd_conv2d`
with the kernels transformed once per sequence by :func:`winograd_kernel`.
"""

import functools

import keras
import numpy as np
from keras import ops

CHANNELS_FIRST = "channels_first"

# Interpolation points of the Toom-Cook construction, smallest first (plus the point at
# infinity): small points keep the transforms' coefficients, and the rounding error, small.
_POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, 1.0 / 3.0, -1.0 / 3.0)


WINOGRAD_KERNEL_SIZES = (3, 7)  # the square kernels the library runs as Winograd's (smallest, largest)


def winograd_tile(kernel_size):
    """The output tile used for a k x k kernel: 4x4 up to 5x5 (F(4x4, 5x5): 6.25x fewer
    multiplies), 2x2 above (larger tiles need more interpolation points, and more rounding)."""
    return 4 if kernel_size <= 5 else 2


def winograd_applies(kernel_shape, dtype):
    """The output tile for a ``(k, k, in, out)`` kernel convolving ``dtype`` inputs, or None
    where the library keeps the direct convolution: a square 3x3 to 7x7 kernel and float32
    (the transforms' rounding is checked in float32 only)."""
    low, high = WINOGRAD_KERNEL_SIZES
    if len(kernel_shape) != 4 or kernel_shape[0] != kernel_shape[1] or not low <= kernel_shape[0] <= high:
        return None
    if keras.backend.standardize_dtype(dtype) != "float32":
        return None
    return winograd_tile(kernel_shape[0])


@functools.cache
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


def recomputing_winograd_conv2d(x, kernel, tile=4, data_format="channels_last", u=None):
    """:func:`winograd_conv2d` whose gradient keeps only ``x`` and ``kernel`` (TensorFlow).

    TensorFlow's automatic gradient of :func:`winograd_conv2d` keeps every intermediate for
    the backward pass: the transformed tiles and kernels, the per-coefficient products and
    the input of each transform matmul (for the unused gradient with respect to the
    constant transform matrices), several times the direct convolution's memory. This
    gradient recomputes the cheap, linear transforms of ``x`` and ``kernel``
    instead, and pulls the output gradient back through the (linear) output transform; the
    two large products of the backward pass are the same as before. The input's gradient
    goes back through the input transform's written-out adjoint
    (:func:`_input_transform_adjoint`; TensorFlow's gradient of its strided gather is
    slower). Same values and
    gradients as :func:`winograd_conv2d` (``tests/test_winograd.py``).

    ``u``: ``kernel`` already transformed (:func:`winograd_kernel`, e.g. once per sequence
    by the XLA cell steps), used in both passes instead of transforming ``kernel`` in each;
    ``kernel``'s gradient is still pulled back through the transform here (its value is
    not needed for that, and XLA drops it). ``u`` itself gets no gradient.
    """
    import tensorflow as tf

    to_v, to_u, to_y = _transforms(x, kernel.shape, tile, data_format)
    given_u = None if u is None else tf.stop_gradient(ops.convert_to_tensor(u))

    @tf.custom_gradient
    def conv(x, kernel):
        products = ops.matmul(to_v(x), to_u(kernel) if given_u is None else given_u)

        def grad(dy):
            with tf.GradientTape() as tape:
                tape.watch(kernel)
                u = to_u(kernel)
            v = to_v(x)
            zeros = tf.zeros_like(products)  # to_y is linear: its gradient does not depend on the point
            with tf.GradientTape() as output_tape:
                output_tape.watch(zeros)
                y = to_y(zeros)
            d_products = output_tape.gradient(y, zeros, output_gradients=dy)
            d_v = tf.matmul(d_products, u if given_u is None else given_u, transpose_b=True)
            d_u = tf.matmul(v, d_products, transpose_a=True)
            d_x = _input_transform_adjoint(x.shape, kernel.shape[0], tile, data_format, x.dtype)(d_v)
            return d_x, tape.gradient(u, kernel, output_gradients=d_u)

        return to_y(products), grad

    return conv(ops.convert_to_tensor(x), ops.convert_to_tensor(kernel))


def winograd_kernel(kernel, tile=4):
    """``kernel`` ``(k, k, in, out)`` transformed for F(tile, k): ``(n^2, in, out)``, n = tile + k - 1.

    The operand of :func:`transformed_winograd_conv2d`. Computed once per sequence, outside
    a time loop, its gradient is summed over the time steps before it is pulled back
    through this transform once.
    """
    kernel = ops.convert_to_tensor(kernel)
    return _kernel_transform(kernel.shape, tile, kernel.dtype)(kernel)


def transformed_winograd_conv2d(x, u, kernel_size, tile=4, data_format="channels_last", kernel=None):
    """:func:`winograd_conv2d` of ``x`` with the :func:`winograd_kernel` ``u`` (JAX, PyTorch).

    Its gradient keeps only ``x`` and ``u``, as the direct convolution keeps ``x`` and the
    kernel, recomputes the (cheap, linear) input transform and pulls ``x``'s gradient back
    through its written-out adjoint (:func:`_input_transform_adjoint`); an automatic gradient would
    keep the transformed input, ``(n / tile)^2`` times larger than ``x`` (4x for 5x5
    kernels), per convolution and time step. JAX: a ``jax.custom_vjp``. PyTorch: a
    ``torch.autograd.Function`` with every transform and its adjoint written out
    (separable: a gather or block addition and two small matrix products each). Eagerly,
    on a 2-core AVX2 CPU, its forward + backward took 0.3-0.7x the direct convolution's
    time at PredRNN's 5x5 gate convolutions with 192-896 output channels, but was slower
    for 64 outputs or 7x7 kernels (``benchmarks/conv_kernels.py torchtransformed``; see
    ``predrnn.acceleration.options.torch_winograd``). TensorFlow differentiates the plain
    composition (its models use :func:`recomputing_winograd_conv2d`).

    ``kernel`` (PyTorch only): the kernel ``u`` was transformed from, which then takes the
    gradient instead of ``u`` (see :func:`summed_transformed_winograd_conv2d`).
    """
    backend = keras.backend.backend()
    if kernel is not None and backend != "torch":
        raise NotImplementedError("transformed_winograd_conv2d takes a kernel on the PyTorch backend only.")
    if backend == "jax":
        return _jax_transformed_winograd(kernel_size, tile, data_format)(x, u)
    if backend == "torch":
        term = (x, u, ((0, 0, u.shape[2]),), kernel)
        return summed_transformed_winograd_conv2d([term], u.shape[2], kernel_size, tile, data_format)
    to_v, to_y = _data_transforms(x, kernel_size, u.shape[2], tile, data_format)
    return to_y(ops.matmul(to_v(x), u))


def summed_transformed_winograd_conv2d(terms, out_channels, kernel_size, tile=4, data_format="channels_last"):
    """A sum of :func:`transformed_winograd_conv2d` convolutions, with one output transform (PyTorch).

    ``terms`` are ``(x, u, placements)`` or ``(x, u, placements, kernel)``: the input, its
    :func:`winograd_kernel` and where its output channels go, as ``(source, target, width)``
    triples that take channels ``source .. source + width`` of ``conv(x, u)`` to channels
    ``target .. target + width`` of the ``out_channels``-channel result (together, in order,
    every channel of ``u``). With a ``kernel`` (``u = winograd_kernel(kernel, tile)``, computed
    without a gradient) the gradient goes to the kernel, pulled back through the kernel
    transform at every call: a time loop that transforms its kernels once per sequence then
    sums the kernel's gradient over the steps, not ``u``'s, which is ``(n / k)^2`` times
    larger (2.56x for 5x5 kernels and tile 4), at one small matrix product per call. A gate
    pre-activation such as ``conv_x(x) + conv_h(h)`` of the recurrent cells is one call:
    the transform is linear, so the terms' products are summed and transformed back once,
    instead of once per term; the inputs are transformed once each. The products are summed
    per range of output channels to which the same terms contribute (the ST-LSTM's gate sum:
    three), each range's products contiguous: then every product is one batched matrix
    product accumulated in place, where a product into a channel slice of the whole sum
    ran as one matrix product per Winograd coefficient. The result is in channels-last memory
    (``torch.channels_last``; its shape is channels-first), which the cells' elementwise
    operations and convolutions keep: the output transform then writes, and its adjoint
    reads, runs of channels (a 4x64 step's copies took 0.40 instead of 0.73 s). The
    gradient keeps the inputs and the transformed kernels, like
    :func:`transformed_winograd_conv2d`'s. All inputs have the same batch and spatial shape
    and are convolved with the same kernel size and tile.
    """
    if keras.backend.backend() != "torch":
        raise NotImplementedError("summed_transformed_winograd_conv2d runs on the PyTorch backend only.")
    tensors, placements = [], []
    for x, u, places, *kernel in terms:
        places = checked_placements(places, u.shape[2], out_channels)
        kernel = kernel[0] if kernel else None
        if kernel is not None:
            kernel = ops.convert_to_tensor(kernel)
            if u.requires_grad:
                raise ValueError(
                    "A Winograd term with its kernel takes the gradient at the kernel: compute its "
                    "transformed kernel u without one (torch.no_grad() or u.detach())."
                )
        tensors += [x if data_format == CHANNELS_FIRST else ops.transpose(x, (0, 3, 1, 2)), u, kernel]
        placements.append(places)
    y = _torch_transformed_winograd().apply(kernel_size, tile, out_channels, tuple(placements), *tensors)
    return y if data_format == CHANNELS_FIRST else ops.transpose(y, (0, 2, 3, 1))


def checked_placements(places, kernel_channels, out_channels):
    """``places`` as a tuple of int triples, after checking that they take the kernel's
    output channels ``0 .. kernel_channels`` in order into ``0 .. out_channels``."""
    places = tuple(tuple(int(value) for value in place) for place in places)
    sources = [0]  # where each triple must start: where the one before it ended
    for _, _, width in places:
        sources.append(sources[-1] + width)
    valid = sources[-1] == kernel_channels and all(
        source == start and width >= 1 and 0 <= target and target + width <= out_channels
        for (source, target, width), start in zip(places, sources)
    )
    if valid:
        return places
    raise ValueError(
        f"The placements {places} must take every one of the kernel's {kernel_channels} output "
        f"channels, in order, into the {out_channels} output channels."
    )


@functools.cache
def _jax_transformed_winograd(kernel_size, tile, data_format):  # made at first use: JAX is optional
    import jax
    import jax.numpy as jnp

    def maps(x, u):
        return _data_transforms(x, kernel_size, u.shape[2], tile, data_format)

    @jax.custom_vjp
    def conv(x, u):
        to_v, to_y = maps(x, u)
        return to_y(jnp.matmul(to_v(x), u))

    def forward(x, u):
        return conv(x, u), (x, u)

    def backward(saved, dy):
        x, u = saved
        to_v, to_y = maps(x, u)
        v = to_v(x)
        # to_y is linear: its transpose, applied to dy, is its gradient at any point.
        _, y_transpose = jax.vjp(to_y, jnp.zeros((v.shape[0], v.shape[1], u.shape[2]), dy.dtype))
        (d_products,) = y_transpose(dy)
        to_x = _input_transform_adjoint(x.shape, kernel_size, tile, data_format, x.dtype)
        d_x = to_x(jnp.matmul(d_products, jnp.swapaxes(u, 1, 2)))
        return d_x, jnp.matmul(jnp.swapaxes(v, 1, 2), d_products)

    conv.defvjp(forward, backward)
    return conv


@functools.cache
def _torch_maps(tile, kernel_size, dtype, device):
    """F(tile, k)'s matrices for PyTorch: ``(B^T (n, n), A^T (tile, n), GG (n^2, k^2))``.

    The input and output transforms are applied separably, ``B^T`` and ``A^T`` along one tile
    axis and then the other (4x and 2.7x fewer multiplies than the Kronecker matrices
    ``B^T (x) B^T`` and ``A^T (x) A^T`` of :func:`winograd_conv2d`; the transforms are
    memory-bound in PyTorch's eager loop, so the separable ones are faster). ``GG[e * n + a, i * k + j] = G[a, i] G[e, j]`` maps
    the kernel's taps ``g[i, j]`` (row-major, as ``kernel.reshape(k * k, ...)`` orders them) to
    :func:`_kernel_transform`'s ``u`` in one product.
    """
    import torch

    a_t, g, b_t = winograd_matrices(tile, kernel_size)
    n = tile + kernel_size - 1
    gg = np.einsum("ai,ej->eaij", g, g).reshape(n * n, kernel_size * kernel_size)
    return tuple(torch.tensor(m, dtype=dtype, device=device) for m in (b_t, a_t, gg))


@functools.cache
def _torch_transformed_winograd():  # made at first use: torch is optional
    import torch
    import torch.nn.functional as F

    def geometry(shape, tile, k):
        """Batch, channels, height, width, tile rows and columns, and the ``F.pad`` amounts
        (the "same" padding, plus what completes the last tile) of a channels-first input."""
        b, c, h, w = shape
        th, tw = -(-h // tile), -(-w // tile)
        lo = k // 2
        return b, c, h, w, th, tw, (lo, tile * tw + k - 1 - w - lo, lo, tile * th + k - 1 - h - lo)

    def to_v(x, b_t, tile, k):  # (b, c, H, W) -> (n^2, b * th * tw, c): v[e * n + a] = (B^T d B)[a, e]
        n = tile + k - 1
        b, c, _, _, th, tw, pads = geometry(x.shape, tile, k)
        padded = F.pad(x, pads)
        batch, channel, row, column = padded.stride()
        # B^T along the tile rows, then along the tile columns: each pass gathers its n
        # (overlapping) row or column offsets, in the order that makes it one matrix product
        # and leaves v in the order (e, a, b, th, tw, c), which needs no further copy.
        rows = padded.as_strided((n, b, th, padded.shape[3], c), (row, batch, tile * row, column, channel))
        rows = torch.mm(b_t, rows.reshape(n, -1)).view(n, b, th, padded.shape[3], c)  # (a, b, th, W, c)
        by_a, by_batch, by_tile_row, by_column, by_channel = rows.stride()
        columns = rows.as_strided((n, n, b, th, tw, c), (by_column, by_a, by_batch, by_tile_row, tile * by_column, by_channel))
        return torch.mm(b_t, columns.reshape(n, -1)).view(n * n, b * th * tw, c)

    def to_v_adjoint(d_v, shape, b_t, tile, k):  # (n^2, b * th * tw, c) -> (b, c, H, W), channels-last memory
        n = tile + k - 1
        b, c, h, w, th, tw, pads = geometry(shape, tile, k)
        # d_tiles[r, s] = sum_(e, a) B^T[a, r] B^T[e, s] d_v[e * n + a]: over e, then over a.
        d_columns = torch.mm(b_t.T, d_v.reshape(n, -1)).view(n, n, -1)  # (s, a, ...)
        d_tiles = torch.matmul(b_t.T, d_columns).view(n, n, b, th, tw, c).transpose(0, 1)  # (r, s, ...)
        # The overlapping tiles summed into the padded input's gradient (channels-last, in
        # tile-sized blocks): tile offset (r, s) = (rb * tile + i, sb * tile + j) lands in
        # block (T + rb, U + sb) of tile (T, U). One addition per block offset, each copying
        # runs of channels, much faster than F.fold.
        blocks = -(-n // tile)
        d_padded = d_v.new_zeros((b, th + blocks - 1, tile, tw + blocks - 1, tile, c))
        for rb in range(blocks):
            rows = min(tile, n - rb * tile)
            for sb in range(blocks):
                columns = min(tile, n - sb * tile)
                block = d_tiles[rb * tile : rb * tile + rows, sb * tile : sb * tile + columns]
                d_padded[:, rb : rb + th, :rows, sb : sb + tw, :columns].add_(block.permute(2, 3, 0, 4, 1, 5))
        d_padded = d_padded.view(b, (th + blocks - 1) * tile, (tw + blocks - 1) * tile, c)
        return d_padded[:, pads[2] : pads[2] + h, pads[0] : pads[0] + w].permute(0, 3, 1, 2)

    def to_y(products, a_t, y, tile):  # (n^2, b * th * tw, w) -> y (b, w, tile * th, tile * tw), written in place
        b, width, height, breadth = y.shape
        th, tw = height // tile, breadth // tile
        n = a_t.shape[1]
        # A^T M A over the products' e (columns of M), then a (rows): pixels (j, i, ...).
        half = torch.mm(a_t, products.view(n, -1)).view(tile, n, -1)  # (j, a, ...)
        pixels = torch.matmul(a_t, half).view(tile, tile, b, th, tw, width)  # (j, i, ...)
        y.permute(0, 2, 3, 1).view(b, th, tile, tw, tile, width).permute(4, 2, 0, 1, 3, 5).copy_(pixels)

    def to_y_adjoint(d_y, a_t, shape, tile):  # (b, out, H, W) -> (n^2, b * th * tw, out)
        b, out, h, w, th, tw = shape
        n = a_t.shape[1]
        d_y = d_y.contiguous(memory_format=torch.channels_last)  # as y: then the gather copies channel runs
        if (h, w) != (tile * th, tile * tw):
            d_y = F.pad(d_y, (0, tile * tw - w, 0, tile * th - h))
        d_y = d_y.permute(0, 2, 3, 1).reshape(b, th, tile, tw, tile, out).permute(4, 2, 0, 1, 3, 5).reshape(tile, -1)
        d_half = torch.mm(a_t.T, d_y).view(n, tile, -1)  # (e, i, ...) from (j, i, ...)
        return torch.matmul(a_t.T, d_half).view(n * n, b * th * tw, out)  # (e, a, ...)

    @functools.cache
    def channel_ranges(placements, out_channels):
        """The output channel ranges ``(start, end, [(term, source), ...])`` between every
        placement's ends, with the terms that contribute to the whole range and where in
        their kernel's channels it starts."""
        ends = {0, out_channels}
        for places in placements:
            for _, target, width in places:
                ends |= {target, target + width}
        ends = sorted(ends)
        ranges = []
        for start, end in zip(ends, ends[1:]):
            sources = [
                (i, source + start - target)
                for i, places in enumerate(placements)
                for source, target, width in places
                if target <= start and end <= target + width
            ]
            ranges.append((start, end, sources))
        return ranges

    class SummedTransformedWinogradConv2d(torch.autograd.Function):
        """``sum_i conv(x_i, u_i)``, term ``i``'s output channels placed by its ``placements``
        (see :func:`summed_transformed_winograd_conv2d`); channels-first ``x_i`` ``(b, c_i, H, W)``,
        ``u_i`` ``(n^2, c_i, out_i)`` -> ``(b, out_channels, H, W)``. The products are summed
        before the one output transform. Called as ``apply(kernel_size, tile, out_channels,
        placements, x_0, u_0, kernel_0, x_1, u_1, kernel_1, ...)``, ``kernel_i`` ``(k, k, c_i,
        out_i)`` or None: with it the gradient goes to ``kernel_i``, not to ``u_i``."""

        @staticmethod
        def forward(ctx, kernel_size, tile, out_channels, placements, *tensors):
            ctx.save_for_backward(*tensors)
            ctx.kernel_size, ctx.tile, ctx.out_channels, ctx.placements = kernel_size, tile, out_channels, placements
            xs, us = tensors[0::3], tensors[1::3]
            b_t, a_t, _ = _torch_maps(tile, kernel_size, xs[0].dtype, xs[0].device)
            b, _, h, w, th, tw, _ = geometry(xs[0].shape, tile, kernel_size)
            # The output, which the cell keeps, first: allocated after the transforms' buffers it
            # would sit above them in the heap, and fragmentation would raise the peak.
            y = torch.empty(
                (b, out_channels, tile * th, tile * tw), dtype=xs[0].dtype, device=xs[0].device, memory_format=torch.channels_last
            )
            vs = [to_v(x, b_t, tile, kernel_size) for x in xs]
            # Per range of output channels to which the same terms contribute: its products are
            # contiguous, so every product is one batched matrix product (a product into a
            # channel slice of a wider result would run as one per coefficient).
            for start, end, sources in channel_ranges(placements, out_channels):
                products = None
                for i, source in sources:
                    u = us[i][:, :, source : source + end - start]
                    products = torch.bmm(vs[i], u) if products is None else products.baddbmm_(vs[i], u)
                if products is None:
                    y[:, start:end].zero_()
                else:
                    to_y(products, a_t, y[:, start:end], tile)
            return y[:, :, :h, :w]

        @staticmethod
        def backward(ctx, d_y):
            tensors = ctx.saved_tensors
            k, tile, out_channels = ctx.kernel_size, ctx.tile, ctx.out_channels
            xs, us, kernels = tensors[0::3], tensors[1::3], tensors[2::3]
            b_t, a_t, gg = _torch_maps(tile, k, xs[0].dtype, xs[0].device)
            b, _, h, w, th, tw, _ = geometry(xs[0].shape, tile, k)
            d_sum = to_y_adjoint(d_y, a_t, (b, out_channels, h, w, th, tw), tile)
            grads = []
            for i, (x, u, kernel, places) in enumerate(zip(xs, us, kernels, ctx.placements)):
                # The gradient of term i's products: its channels of the sum's, in its own order.
                slices = [d_sum[:, :, target : target + width] for _, target, width in places]
                d_products = slices[0] if len(slices) == 1 else torch.cat(slices, dim=2)
                d_x = d_u = d_kernel = None
                if ctx.needs_input_grad[4 + 3 * i]:
                    d_x = to_v_adjoint(torch.bmm(d_products, u.transpose(1, 2)), x.shape, b_t, tile, k)
                wants_u, wants_kernel = ctx.needs_input_grad[5 + 3 * i], ctx.needs_input_grad[6 + 3 * i]
                if wants_u or wants_kernel:
                    d_u = torch.bmm(to_v(x, b_t, tile, k).transpose(1, 2), d_products)
                if wants_kernel:  # back through u = GG kernel (its taps row-major) at once
                    d_kernel = torch.mm(gg.T, d_u.view(d_u.shape[0], -1)).view(kernel.shape)
                    d_u = None
                grads += [d_x, d_u, d_kernel]
            return (None, None, None, None, *grads)

    return SummedTransformedWinogradConv2d


def _transforms(x, kernel_shape, tile, data_format):
    """The three linear maps of F(tile, k) for ``x``'s shape and a ``(k, k, in, out)`` kernel:
    ``(x -> v, kernel -> u, products -> y)``.

    ``v`` is ``(n^2, tiles, in)``, ``u`` ``(n^2, in, out)``; the convolution is
    ``to_y(v @ u)``.
    """
    to_v, to_y = _data_transforms(x, kernel_shape[0], kernel_shape[3], tile, data_format)
    return to_v, _kernel_transform(kernel_shape, tile, x.dtype), to_y


def _check_kernel_shape(kernel_shape):
    if len(kernel_shape) != 4 or kernel_shape[0] != kernel_shape[1] or kernel_shape[0] % 2 == 0:
        raise ValueError(f"winograd_conv2d needs a square, odd kernel. Received: kernel shape {tuple(kernel_shape)}")


def _kernel_transform(kernel_shape, tile, dtype):
    """``kernel -> u`` of F(tile, k) for a ``(k, k, in, out)`` kernel: ``u[e * n + a] = (G g G^T)[a, e]``."""
    _check_kernel_shape(kernel_shape)
    k, in_channels, out_channels = kernel_shape[0], kernel_shape[2], kernel_shape[3]
    n = tile + k - 1
    _, g, _ = winograd_matrices(tile, k)
    g_g = ops.convert_to_tensor(np.kron(g, g).astype("float32"), dtype=dtype)

    def to_u(kernel):
        kernel = ops.reshape(ops.transpose(kernel, (1, 0, 2, 3)), (k * k, in_channels * out_channels))
        return ops.reshape(ops.matmul(g_g, kernel), (n * n, in_channels, out_channels))

    return to_u


def _data_transforms(x, kernel_size, out_channels, tile, data_format):
    """``(x -> v, products -> y)`` of F(tile, k) for ``x``'s shape and ``out_channels`` outputs."""
    _check_kernel_shape((kernel_size, kernel_size, 1, out_channels))
    k = kernel_size
    channels_first = data_format == CHANNELS_FIRST
    height, width = (x.shape[2], x.shape[3]) if channels_first else (x.shape[1], x.shape[2])
    in_channels = x.shape[1] if channels_first else x.shape[3]
    m, n = tile, tile + k - 1
    tiles_h, tiles_w = -(-height // m), -(-width // m)
    a_t, _, b_t = winograd_matrices(m, k)
    b_t, a_a = (ops.convert_to_tensor(a.astype("float32"), dtype=x.dtype) for a in (b_t, np.kron(a_t, a_t)))
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

    return to_v, to_y


def _input_transform_adjoint(x_shape, kernel_size, tile, data_format, dtype):
    """The adjoint (transpose) of :func:`_data_transforms`' ``to_v`` for inputs of ``x_shape``:
    ``d_v (n^2, tiles, in) -> d_x``, the gradient of ``to_v`` at any point (it is linear).

    Written out instead of differentiating ``to_v``: ``to_v`` gathers each n x n tile with
    n strided slices per axis, whose automatic gradient sums n interleaved, strided
    paddings (what XLA compiled into the slowest fusions of a backward cell step:
    ``add_bitcast_fusion``, 1.3-2.2 ms each, ~7 of a 4x64 backward step's ~40 ms of op time).
    Here the input is cut into m-row (m-column) blocks, of which a tile spans
    ``blocks = ceil(n / m)`` (2 for 5x5 kernels and tile 4): ``B`` (padded with zero rows
    to ``blocks * m``) takes ``d_v`` back to each tile's blocks, and each input block sums
    the ``blocks`` tiles that cover it, as whole shifted blocks. The same values as the
    automatic gradient, up to the order of float additions (``tests/test_winograd.py``).
    """
    k, m = kernel_size, tile
    n = m + k - 1
    channels_first = data_format == CHANNELS_FIRST
    in_channels, height, width = x_shape[1:4] if channels_first else (x_shape[3], x_shape[1], x_shape[2])
    tiles_h, tiles_w = -(-height // m), -(-width // m)
    blocks = -(-n // m)
    _, _, b_t = winograd_matrices(m, k)
    # (blocks * m, n): row j * m + i is B^T's column for tile offset j * m + i (zero past n).
    b_ext = ops.convert_to_tensor(np.pad(b_t, [[0, 0], [0, blocks * m - n]]).T.astype("float32"), dtype=dtype)
    lo = k // 2

    def scatter(d, axis, tiles):
        """``(n, ..., tiles @ axis, ...)``: gradients of the n tile offsets along ``axis`` (of
        the rest) -> ``(..., (tiles + blocks - 1) * m @ axis, ...)``, the padded input's."""
        rest = list(d.shape[1:])
        rest[0] = -1 if rest[0] is None else rest[0]
        d = ops.reshape(ops.matmul(b_ext, ops.reshape(d, (n, -1))), (blocks, m, *rest))
        order = [0, *range(2, axis + 3), 1, *range(axis + 3, len(rest) + 2)]
        d = ops.transpose(d, order)  # (blocks, ..., tiles, m, ...)
        total = None
        for j in range(blocks):  # tile t's block j is the input's block t + j
            padding = [[0, 0]] * (len(rest) + 1)
            padding[axis] = [j, blocks - 1 - j]
            piece = ops.pad(d[j], padding)
            total = piece if total is None else total + piece
        shape = list(total.shape)
        shape[0] = -1 if shape[0] is None else shape[0]
        return ops.reshape(total, [*shape[:axis], shape[axis] * m, *shape[axis + 2 :]])

    def adjoint(d_v):
        d_v = ops.reshape(d_v, (n, n, -1, tiles_h, tiles_w, in_channels))  # (e, a, b, th, tw, c)
        if channels_first:
            d_v = ops.transpose(d_v, (0, 1, 2, 5, 3, 4))  # (e, a, b, c, th, tw)
            d_rows = scatter(d_v, 4, tiles_w)  # (a, b, c, th, W')
            return scatter(d_rows, 2, tiles_h)[:, :, lo : lo + height, lo : lo + width]  # (b, c, H', W') cropped
        d_rows = scatter(d_v, 3, tiles_w)  # (a, b, th, W', c)
        return scatter(d_rows, 1, tiles_h)[:, lo : lo + height, lo : lo + width]  # (b, H', W', c) cropped

    return adjoint
