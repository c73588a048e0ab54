"""Neural-network ops with their own vjps: 2-D convolution (im2col) and max pooling.

Shapes: images are ``(N, C, H, W)``; a convolution weight is ``(O, C, kh, kw)``.
``stride`` and ``padding`` are an int or a pair ``(rows, columns)``.

The three convolution ops form a closed family, so every derivative of every order is again a
convolution: ``conv2d`` is linear in ``x`` and in ``w``; its vjp wrt ``x`` is
``conv_transpose2d`` (the adjoint in ``x``) and wrt ``w`` is ``conv2d_weight`` (the adjoint in
``w``); the vjps of those two are again members of the family.
"""

from __future__ import annotations

from typing import Any

from autobp.backends import Namespace, namespace, windows
from autobp.backends.windows import Pair, int_pair
from autobp.backends.windows import offsets as _offsets
from autobp.backends.windows import pool_params as pool_params  # re-exported for nn.MaxPool2d
from autobp.ops.registry import Hints, op
from autobp.tensor import Tensor


# The general forwards below run on any library through ``namespace(...)`` and the standard's
# functions; the one extra they need, ``xp.sliding_windows``, each backend module supplies.
# numpy runs its own fast forwards instead (``backends/numpy_nn.py``), held to these by
# tests/test_backend_nn.py. Hyper-parameters and shapes are checked in ``backends/windows.py``,
# before any array work, by both.
def _padded(xp: Namespace, x: Any, padding: Pair, fill: float = 0.0) -> Any:
    """Shapes: (N, C, H, W) -> (N, C, H + 2 ph, W + 2 pw), the border filled with ``fill``."""
    ph, pw = padding
    if not (ph or pw):
        return x
    n, c, height, width = x.shape
    out = xp.full((n, c, height + 2 * ph, width + 2 * pw), fill, dtype=x.dtype, device=xp.device(x))
    out[:, :, ph : ph + height, pw : pw + width] = x  # a new array of ours: writing it is safe
    return out


def _im2col(xp: Namespace, x: Any, kernel: Pair, stride: Pair, padding: Pair) -> Any:
    """Columns (C * kh * kw, N * Ho * Wo): each column is one window of the padded input."""
    found = xp.sliding_windows(_padded(xp, x, padding), kernel, stride)  # (N, C, Ho, Wo, kh, kw)
    n, c, ho, wo = found.shape[:4]
    return xp.reshape(xp.permute_dims(found, (1, 4, 5, 0, 2, 3)), (c * kernel[0] * kernel[1], n * ho * wo))


# -- convolution ----------------------------------------------------------------------------------
CONV = Hints(shapes="conv2d", kwargs={"stride": (1, 2), "padding": (0, 1)})


@op("conv2d", arity=2, hints=CONV)
def conv2d(x: Any, w: Any, stride: Any = 1, padding: Any = 0) -> Any:
    """2-D cross-correlation (PyTorch's ``conv2d`` without bias).

    Shapes: x (N, C, H, W), w (O, C, kh, kw) -> (N, O, Ho, Wo), ``Ho = (H + 2 ph - kh) // sh + 1``.
    """
    xp = namespace(x, w)
    kernel, stride, padding, out_size = windows.conv2d_geometry(x, w, stride, padding)
    n, o = x.shape[0], w.shape[0]
    # (explicit sizes, not -1, in every reshape here: no channels or an empty batch is a size-0
    # axis, which -1 cannot infer)
    rows = xp.reshape(w, (o, w.shape[1] * kernel[0] * kernel[1]))
    out = xp.matmul(rows, _im2col(xp, x, kernel, stride, padding))  # (O, N * Ho * Wo)
    return xp.permute_dims(xp.reshape(out, (o, n, *out_size)), (1, 0, 2, 3))


@op("conv_transpose2d", arity=2, hints=Hints(shapes="conv_transpose2d", kwargs={"stride": (1, 2), "padding": (0, 1)}))
def conv_transpose2d(x: Any, w: Any, stride: Any = 1, padding: Any = 0, output_padding: Any = 0) -> Any:
    """Transposed convolution: the adjoint of ``conv2d`` in its input (PyTorch's ``conv_transpose2d``).

    Shapes: x (N, O, Ho, Wo), w (O, C, kh, kw) -> (N, C, H, W) with
    ``H = (Ho - 1) sh - 2 ph + kh + output_padding``.
    """
    xp = namespace(x, w)
    kernel, stride, (ph, pw), (height, width) = windows.conv_transpose2d_geometry(x, w, stride, padding, output_padding)
    n, o, ho, wo = x.shape
    rows = xp.reshape(xp.permute_dims(x, (1, 0, 2, 3)), (o, n * ho * wo))  # (O, N * Ho * Wo)
    cols = xp.matmul(xp.matrix_transpose(xp.reshape(w, (o, w.shape[1] * kernel[0] * kernel[1]))), rows)
    cols = xp.reshape(cols, (w.shape[1], *kernel, n, ho, wo))
    out = xp.zeros((w.shape[1], n, height, width), dtype=cols.dtype, device=xp.device(cols))
    # col2im: each kernel offset adds its columns back where they were read from (a new array
    # of ours, written in place; in offset order, as numpy's fast forward adds them).
    for i, j, where in _offsets(kernel, stride, (ho, wo)):
        out[where] = out[where] + cols[:, i, j, ...]
    return xp.permute_dims(out[:, :, ph : height - ph, pw : width - pw], (1, 0, 2, 3))


@op("conv2d_weight", arity=2, hints=Hints(shapes="conv2d_weight", kwargs={"stride": (1, 2), "padding": (0, 1)}))
def conv2d_weight(x: Any, grad: Any, kernel_size: Any, stride: Any = 1, padding: Any = 0) -> Any:
    """The adjoint of ``conv2d`` in its weight: the weight gradient for output gradient ``grad``.

    Shapes: x (N, C, H, W), grad (N, O, Ho, Wo) -> (O, C, kh, kw) with ``(kh, kw) = kernel_size``.
    """
    xp = namespace(x, grad)
    kernel, stride, padding, _ = windows.conv2d_weight_geometry(x, grad, kernel_size, stride, padding)
    n, o, ho, wo = grad.shape
    rows = xp.reshape(xp.permute_dims(grad, (1, 0, 2, 3)), (o, n * ho * wo))  # (O, N * Ho * Wo)
    columns = _im2col(xp, x, kernel, stride, padding)
    return xp.reshape(xp.matmul(rows, xp.matrix_transpose(columns)), (o, x.shape[1], *kernel))


def _output_padding(size: tuple[int, ...], out_size: tuple[int, ...], kernel: Pair, stride: Any, padding: Any) -> Pair:
    """The ``output_padding`` that makes ``conv_transpose2d`` give back the input size ``size``."""
    s, p = int_pair(stride, "conv2d", "stride", 1), int_pair(padding, "conv2d", "padding", 0)
    extra = [n - ((m - 1) * si - 2 * pi + k) for n, m, k, si, pi in zip(size, out_size, kernel, s, p, strict=True)]
    return extra[0], extra[1]


def _conv2d_dx(grad: Tensor, out: Tensor, x: Tensor, w: Tensor, stride: Any = 1, padding: Any = 0) -> Tensor:
    # d<g, conv(x, w)>/dx = conv^T(g, w)
    kernel = (w.shape[2], w.shape[3])
    extra = _output_padding(x.shape[2:], grad.shape[2:], kernel, stride, padding)
    return conv_transpose2d(grad, w, stride=stride, padding=padding, output_padding=extra)


def _conv2d_dw(grad: Tensor, out: Tensor, x: Tensor, w: Tensor, stride: Any = 1, padding: Any = 0) -> Tensor:
    # d<g, conv(x, w)>/dw = correlation of x's windows with g
    return conv2d_weight(x, grad, (w.shape[2], w.shape[3]), stride=stride, padding=padding)


conv2d.defvjp(_conv2d_dx, _conv2d_dw, plain_arrays=True)
# The three convolution ops are bilinear: each operand's tangent goes through the same op.
conv2d.defjvp(
    lambda tangent, out, x, w, **kw: conv2d(tangent, w, **kw),
    lambda tangent, out, x, w, **kw: conv2d(x, tangent, **kw),
    plain_arrays=True,
)


def _conv_t_dx(grad: Tensor, out: Tensor, x: Tensor, w: Tensor, stride: Any = 1, padding: Any = 0, **_: Any) -> Tensor:
    # conv_transpose2d is conv2d's adjoint in x, so its own adjoint in x is conv2d.
    return conv2d(grad, w, stride=stride, padding=padding)


def _conv_t_dw(grad: Tensor, out: Tensor, x: Tensor, w: Tensor, stride: Any = 1, padding: Any = 0, **_: Any) -> Tensor:
    # <G, conv^T(x, w)> = <conv(G, w), x>: its w-derivative is conv2d_weight(G, x)
    return conv2d_weight(grad, x, (w.shape[2], w.shape[3]), stride=stride, padding=padding)


conv_transpose2d.defvjp(_conv_t_dx, _conv_t_dw, plain_arrays=True)
conv_transpose2d.defjvp(
    lambda tangent, out, x, w, **kw: conv_transpose2d(tangent, w, **kw),
    lambda tangent, out, x, w, **kw: conv_transpose2d(x, tangent, **kw),
    plain_arrays=True,
)


def _conv_w_dx(
    grad: Tensor, out: Tensor, x: Tensor, g: Tensor, kernel_size: Any, stride: Any = 1, padding: Any = 0
) -> Tensor:
    # <G, conv2d_weight(x, g)> = <conv(x, G), g>: its x-derivative is conv^T(g, G)
    kernel = int_pair(kernel_size, "conv2d_weight", "kernel_size", 1)
    extra = _output_padding(x.shape[2:], g.shape[2:], kernel, stride, padding)
    return conv_transpose2d(g, grad, stride=stride, padding=padding, output_padding=extra)


def _conv_w_dg(
    grad: Tensor, out: Tensor, x: Tensor, g: Tensor, kernel_size: Any, stride: Any = 1, padding: Any = 0
) -> Tensor:
    # ... and its g-derivative is conv(x, G)
    return conv2d(x, grad, stride=stride, padding=padding)


conv2d_weight.defvjp(_conv_w_dx, _conv_w_dg, plain_arrays=True)
conv2d_weight.defjvp(
    lambda tangent, out, x, g, kernel_size, **kw: conv2d_weight(tangent, g, kernel_size, **kw),
    lambda tangent, out, x, g, kernel_size, **kw: conv2d_weight(x, tangent, kernel_size, **kw),
    plain_arrays=True,
)


# -- max pooling ----------------------------------------------------------------------------------
def _lowest(xp: Namespace, dtype: Any) -> float:
    """The fill of a max pooling's padding: below every value of ``dtype``."""
    return float("-inf") if xp.isdtype(dtype, "real floating") else xp.iinfo(dtype).min


def _pool_argmax(xp: Namespace, x: Any, kernel: Pair, stride: Pair, padding: Pair, out_size: Pair) -> Any:
    """Flat index (i * kw + j) in each window of the cell its gradient goes to, as PyTorch picks it.

    PyTorch scans the window's cells inside the input in order and takes a cell when
    ``value > best or isnan(value)``, starting from ``best = -inf`` at the first cell inside the
    input: the first maximum on ties, the last NaN (the forward's NaN) if there is one, and the
    first cell inside the input when all are -inf, never a padding cell. The same scan, one
    kernel offset at a time over all windows, runs here on every library.
    Shapes: x (N, C, H, W) -> (N, C, Ho, Wo) integers.
    """
    low = _lowest(xp, x.dtype)
    source = _padded(xp, x, padding, low)
    best = xp.full((*x.shape[:2], *out_size), low, dtype=x.dtype, device=xp.device(x))
    first = xp.asarray(windows.first_inside(kernel, stride, padding, out_size), device=xp.device(x))
    index = xp.broadcast_to(first, best.shape)
    floating = xp.isdtype(x.dtype, "real floating")
    for i, j, where in _offsets(kernel, stride, out_size):
        value = source[where]
        better = value > best
        if floating:  # (no test for a NaN first: that would read a GPU's result back to the host)
            better = xp.logical_or(better, xp.isnan(value))
        best = xp.where(better, value, best)
        index = xp.where(better, i * kernel[1] + j, index)
    return index


POOL = Hints(shapes="pool2d", kwargs={"kernel_size": (2, 3), "stride": (None, 1)}, distinct=True)


@op("max_pool2d", hints=POOL)
def max_pool2d(x: Any, kernel_size: Any = 2, stride: Any = None, padding: Any = 0) -> Any:
    """Maximum over each ``kernel_size`` window (stride defaults to the kernel; pads with -inf).

    Shapes: x (N, C, H, W) -> (N, C, Ho, Wo), ``Ho = (H + 2 ph - kh) // sh + 1``.
    """
    xp = namespace(x)
    kernel, step, pad, out_size = windows.pool_geometry("max_pool2d", x, kernel_size, stride, padding)
    low = _lowest(xp, x.dtype)
    source = _padded(xp, x, pad, low)
    out = xp.full((*x.shape[:2], *out_size), low, dtype=x.dtype, device=xp.device(x))
    for _, _, where in _offsets(kernel, step, out_size):
        out = xp.maximum(out, source[where])  # NaN wins, as in PyTorch
    return out


@op("max_pool2d_scatter", arity=2, hints=Hints(shapes="pool2d_scatter", distinct=True))
def max_pool2d_scatter(grad: Any, x: Any, kernel_size: Any = 2, stride: Any = None, padding: Any = 0) -> Any:
    """Route each window's gradient to the position of its maximum in ``x`` (``max_pool2d``'s vjp).

    Shapes: grad (N, C, Ho, Wo), x (N, C, H, W) -> (N, C, H, W).
    """
    xp = namespace(grad, x)
    kernel, step, pad, out_size = windows.pool_geometry("max_pool2d_scatter", x, kernel_size, stride, padding)
    index = _pool_argmax(xp, x, kernel, step, pad, out_size)
    n, c, height, width = x.shape
    out = xp.zeros((n, c, height + 2 * pad[0], width + 2 * pad[1]), dtype=grad.dtype, device=xp.device(grad))
    for i, j, where in _offsets(kernel, step, out_size):
        out[where] = out[where] + xp.where(index == i * kernel[1] + j, grad, 0)  # overlapping windows add up
    return out[:, :, pad[0] : pad[0] + height, pad[1] : pad[1] + width]


@op("max_pool2d_gather", arity=2, hints=Hints(shapes="pool2d_gather", distinct=True))
def max_pool2d_gather(values: Any, x: Any, kernel_size: Any = 2, stride: Any = None, padding: Any = 0) -> Any:
    """``values`` read at the position of each window's maximum in ``x`` (the adjoint of the scatter).

    Shapes: values (N, C, H, W), x (N, C, H, W) -> (N, C, Ho, Wo).
    """
    xp = namespace(values, x)
    kernel, step, pad, out_size = windows.pool_geometry("max_pool2d_gather", x, kernel_size, stride, padding)
    index = _pool_argmax(xp, x, kernel, step, pad, out_size)
    source = _padded(xp, values, pad)
    out = xp.zeros(index.shape, dtype=values.dtype, device=xp.device(values))
    for i, j, where in _offsets(kernel, step, out_size):
        out = xp.where(index == i * kernel[1] + j, source[where], out)
    return out


# The argmax positions are piecewise constant in x, so x gets no gradient through them (None).
max_pool2d.defvjp(lambda grad, out, x, **kw: max_pool2d_scatter(grad, x, **kw), plain_arrays=True)  # grad to each max
max_pool2d_scatter.defvjp(
    lambda grad, out, g, x, **kw: max_pool2d_gather(grad, x, **kw),  # adjoint of a scatter is a gather
    lambda grad, out, g, x, **kw: None,
    plain_arrays=True,
)
max_pool2d_gather.defvjp(
    lambda grad, out, values, x, **kw: max_pool2d_scatter(grad, x, **kw),
    lambda grad, out, values, x, **kw: None,
    plain_arrays=True,
)
# Forward mode: each window's output moves with its maximum's tangent (a gather); the scatter
# and the gather are linear in their first input, and x's tangent moves no argmax (None).
max_pool2d.defjvp(lambda tangent, out, x, **kw: max_pool2d_gather(tangent, x, **kw), plain_arrays=True)
max_pool2d_scatter.defjvp(
    lambda tangent, out, g, x, **kw: max_pool2d_scatter(tangent, x, **kw),
    None,
    plain_arrays=True,
)
max_pool2d_gather.defjvp(
    lambda tangent, out, values, x, **kw: max_pool2d_gather(tangent, x, **kw),
    None,
    plain_arrays=True,
)
