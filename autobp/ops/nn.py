"""Neural-network ops with their own vjps: 2-D convolution (im2col) and max pooling.

Shapes: images are ``(N, C, H, W)``; a convolution weight is ``(O, C, kh, kw)``.
``stride`` and ``padding`` are an int or a pair ``(rows, columns)``.

The three convolution ops form a closed family, so every derivative of every order is again a
convolution: ``conv2d`` is linear in ``x`` and in ``w``; its vjp wrt ``x`` is
``conv_transpose2d`` (the adjoint in ``x``) and wrt ``w`` is ``conv2d_weight`` (the adjoint in
``w``); the vjps of those two are again members of the family.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from autobp.ops.registry import Hints, op
from autobp.tensor import Tensor

Pair = tuple[int, int]


def int_pair(value: Any, name: str, what: str, least: int) -> Pair:
    """``value`` (an int, or a pair for rows and columns) as a pair of ints, each at least ``least``.

    Hyper-parameters are checked before any computation: ``stride=0`` would divide by zero and a
    negative padding would silently crop. Bools and floats are refused (``stride=True`` is a slip).
    """
    pair = (value, value) if _is_int(value) else tuple(value) if isinstance(value, tuple | list) else ()
    if len(pair) != 2 or not all(_is_int(v) for v in pair) or min(pair) < least:
        raise ValueError(f"{name}: {what} must be an int or a pair of ints, each >= {least}; got {what}={value!r}")
    return int(pair[0]), int(pair[1])


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_4d(name: str, x: np.ndarray, what: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{name}: {what} must be 4-D, got shape {x.shape} ({x.dtype})")


def _padded(x: np.ndarray, padding: Pair, fill: float = 0.0) -> np.ndarray:
    ph, pw = padding
    if ph or pw:
        return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    return x


def _offsets(kernel: Pair, stride: Pair, out_size: Pair) -> Iterator[tuple[int, int, tuple[slice, ...]]]:
    """For each kernel offset (i, j): the strided slice of the padded input it meets in every window.

    Looping over the few kernel offsets with whole-array slices is much faster than numpy's
    sliding-window views, whose odd strides make every copy and reduction slow.
    """
    (sh, sw), (ho, wo) = stride, out_size
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            yield (
                i,
                j,
                (slice(None), slice(None), slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw)),
            )


def _im2col(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, out_size: Pair) -> np.ndarray:
    """Columns (C * kh * kw, N * Ho * Wo): each column is one window of the padded input."""
    n, c = x.shape[:2]
    padded = _padded(x, padding).transpose(1, 0, 2, 3)  # channels first, so each row copies contiguously
    cols = np.empty((c, *kernel, n, *out_size), dtype=x.dtype)
    for i, j, where in _offsets(kernel, stride, out_size):
        cols[:, i, j] = padded[where]
    return cols.reshape(c * kernel[0] * kernel[1], -1)


def _check_kernel(name: str, w: np.ndarray) -> None:
    if min(w.shape[2:]) < 1:
        raise ValueError(f"{name}: weight {w.shape} has an empty kernel {w.shape[2:]}; kernel sizes must be >= 1")


def _out_size(name: str, size: tuple[int, int], kernel: Pair, stride: Pair, padding: Pair) -> Pair:
    out = tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(size, kernel, stride, padding, strict=True))
    if min(out) < 1:
        raise ValueError(
            f"{name}: input size {size} with kernel {kernel}, stride {stride}, padding {padding} gives no output"
        )
    return out[0], out[1]


# -- convolution ----------------------------------------------------------------------------------
CONV = Hints(shapes="conv2d", kwargs={"stride": (1, 2), "padding": (0, 1)})


@op("conv2d", arity=2, hints=CONV)
def conv2d(x: Any, w: Any, stride: Any = 1, padding: Any = 0) -> np.ndarray:
    """2-D cross-correlation (PyTorch's ``conv2d`` without bias).

    Shapes: x (N, C, H, W), w (O, C, kh, kw) -> (N, O, Ho, Wo), ``Ho = (H + 2 ph - kh) // sh + 1``.
    """
    stride, padding = int_pair(stride, "conv2d", "stride", 1), int_pair(padding, "conv2d", "padding", 0)
    x, w = np.asarray(x), np.asarray(w)
    _check_4d("conv2d", x, "input")
    _check_4d("conv2d", w, "weight")
    _check_kernel("conv2d", w)
    if x.shape[1] != w.shape[1]:
        raise ValueError(
            f"conv2d: input has {x.shape[1]} channels (shape {x.shape}) but weight {w.shape} expects {w.shape[1]}"
        )
    kernel = (w.shape[2], w.shape[3])
    out_size = _out_size("conv2d", x.shape[2:], kernel, stride, padding)
    out = w.reshape(w.shape[0], -1) @ _im2col(x, kernel, stride, padding, out_size)  # (O, N * Ho * Wo)
    return np.ascontiguousarray(out.reshape(w.shape[0], x.shape[0], *out_size).transpose(1, 0, 2, 3))


@op("conv_transpose2d", arity=2, hints=Hints(shapes="conv_transpose2d", kwargs={"stride": (1, 2), "padding": (0, 1)}))
def conv_transpose2d(x: Any, w: Any, stride: Any = 1, padding: Any = 0, output_padding: Any = 0) -> np.ndarray:
    """Transposed convolution: the adjoint of ``conv2d`` in its input (PyTorch's ``conv_transpose2d``).

    Shapes: x (N, O, Ho, Wo), w (O, C, kh, kw) -> (N, C, H, W) with
    ``H = (Ho - 1) sh - 2 ph + kh + output_padding``.
    """
    name = "conv_transpose2d"
    (sh, sw), (ph, pw) = int_pair(stride, name, "stride", 1), int_pair(padding, name, "padding", 0)
    oh, ow = int_pair(output_padding, name, "output_padding", 0)
    if oh >= sh or ow >= sw:
        raise ValueError(f"{name}: output_padding={output_padding!r} must be smaller than the stride {(sh, sw)}")
    x, w = np.asarray(x), np.asarray(w)
    _check_4d(name, x, "input")
    _check_4d(name, w, "weight")
    _check_kernel(name, w)
    if x.shape[1] != w.shape[0]:
        raise ValueError(
            f"conv_transpose2d: input has {x.shape[1]} channels (shape {x.shape}) "
            f"but weight {w.shape} expects {w.shape[0]}"
        )
    n, _, ho, wo = x.shape
    kh, kw = w.shape[2:]
    height, width = (ho - 1) * sh + kh + oh, (wo - 1) * sw + kw + ow  # padded size
    if height - 2 * ph < 1 or width - 2 * pw < 1:
        raise ValueError(
            f"{name}: input {x.shape} with weight {w.shape}, stride {(sh, sw)}, padding {(ph, pw)} "
            f"and output_padding {(oh, ow)} gives no output"
        )
    c = w.shape[1]
    cols = w.reshape(x.shape[1], -1).T @ x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1)
    cols = cols.reshape(c, kh, kw, n, ho, wo)
    out = np.zeros((c, n, height, width), dtype=cols.dtype)
    # col2im: each kernel offset adds its columns back where they were read from.
    for i, j, where in _offsets((kh, kw), (sh, sw), (ho, wo)):
        out[where] += cols[:, i, j]
    return np.ascontiguousarray(out[:, :, ph : height - ph, pw : width - pw].transpose(1, 0, 2, 3))


@op("conv2d_weight", arity=2, hints=Hints(shapes="conv2d_weight", kwargs={"stride": (1, 2), "padding": (0, 1)}))
def conv2d_weight(x: Any, grad: Any, kernel_size: Any, stride: Any = 1, padding: Any = 0) -> np.ndarray:
    """The adjoint of ``conv2d`` in its weight: the weight gradient for output gradient ``grad``.

    Shapes: x (N, C, H, W), grad (N, O, Ho, Wo) -> (O, C, kh, kw) with ``(kh, kw) = kernel_size``.
    """
    kernel = int_pair(kernel_size, "conv2d_weight", "kernel_size", 1)
    stride, padding = int_pair(stride, "conv2d_weight", "stride", 1), int_pair(padding, "conv2d_weight", "padding", 0)
    x, grad = np.asarray(x), np.asarray(grad)
    _check_4d("conv2d_weight", x, "input")
    _check_4d("conv2d_weight", grad, "grad")
    out_size = _out_size("conv2d_weight", x.shape[2:], kernel, stride, padding)
    if (grad.shape[0], grad.shape[2:]) != (x.shape[0], out_size):
        raise ValueError(f"conv2d_weight: grad shape {grad.shape} does not match input {x.shape} and kernel {kernel}")
    rows = grad.transpose(1, 0, 2, 3).reshape(grad.shape[1], -1)  # (O, N * Ho * Wo)
    return (rows @ _im2col(x, kernel, stride, padding, out_size).T).reshape(grad.shape[1], x.shape[1], *kernel)


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
def pool_params(name: str, kernel_size: Any, stride: Any, padding: Any) -> tuple[Pair, Pair, Pair]:
    """Checked ``(kernel, stride, padding)`` pairs of a max pooling; ``stride=None`` means the kernel."""
    kernel = int_pair(kernel_size, name, "kernel_size", 1)
    step = kernel if stride is None else int_pair(stride, name, "stride", 1)
    pad = int_pair(padding, name, "padding", 0)
    if pad[0] * 2 > kernel[0] or pad[1] * 2 > kernel[1]:
        # a window of padding only would have no maximum to route a gradient to
        raise ValueError(f"{name}: padding={padding!r} must be at most half the kernel {kernel}")
    return kernel, step, pad


def _pool_args(name: str, x: np.ndarray, kernel_size: Any, stride: Any, padding: Any) -> tuple[Pair, Pair, Pair, Pair]:
    kernel, step, pad = pool_params(name, kernel_size, stride, padding)
    _check_4d(name, x, "input")
    return kernel, step, pad, _out_size(name, x.shape[2:], kernel, step, pad)


def _lowest(dtype: np.dtype[Any]) -> float:
    return -np.inf if dtype.kind == "f" else float(np.iinfo(dtype).min)


def _pool_argmax(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, out_size: Pair) -> np.ndarray:
    """Flat index (i * kw + j) in each window of the cell its gradient goes to, as PyTorch picks it.

    PyTorch scans the window's cells inside the input in order and takes a cell when
    ``value > best or isnan(value)``, starting from ``best = -inf`` at the first cell inside the
    input: the first maximum on ties, the last NaN (the forward's NaN) if there is one, and the
    first cell inside the input when all are -inf, never a padding cell.
    """
    padded = _padded(x, padding, _lowest(x.dtype))
    best = np.full((*x.shape[:2], *out_size), _lowest(x.dtype), dtype=x.dtype)
    index = np.broadcast_to(_first_inside(kernel, stride, padding, out_size), best.shape).copy()
    has_nan = x.dtype.kind == "f" and bool(np.isnan(x).any())
    for i, j, where in _offsets(kernel, stride, out_size):
        better = padded[where] > best
        if has_nan:
            better |= np.isnan(padded[where])
        np.copyto(best, padded[where], where=better)
        index[better] = i * kernel[1] + j
    return index


def _first_inside(kernel: Pair, stride: Pair, padding: Pair, out_size: Pair) -> np.ndarray:
    """Shapes: -> (Ho, Wo): the flat index of each window's first cell that is not padding."""
    # window (r, c) starts at row r * sh - ph: its first row inside the input is max(0, ph - r * sh)
    rows = np.maximum(0, padding[0] - stride[0] * np.arange(out_size[0]))
    columns = np.maximum(0, padding[1] - stride[1] * np.arange(out_size[1]))
    return rows[:, None] * kernel[1] + columns[None, :]


POOL = Hints(shapes="pool2d", kwargs={"kernel_size": (2, 3), "stride": (None, 1)}, distinct=True)


@op("max_pool2d", hints=POOL)
def max_pool2d(x: Any, kernel_size: Any = 2, stride: Any = None, padding: Any = 0) -> np.ndarray:
    """Maximum over each ``kernel_size`` window (stride defaults to the kernel; pads with -inf).

    Shapes: x (N, C, H, W) -> (N, C, Ho, Wo), ``Ho = (H + 2 ph - kh) // sh + 1``.
    """
    x = np.asarray(x)
    kernel, step, pad, out_size = _pool_args("max_pool2d", x, kernel_size, stride, padding)
    padded = _padded(x, pad, _lowest(x.dtype))
    out = np.full((*x.shape[:2], *out_size), _lowest(x.dtype), dtype=x.dtype)
    for _, _, where in _offsets(kernel, step, out_size):
        np.maximum(out, padded[where], out=out)
    return out


@op("max_pool2d_scatter", arity=2, hints=Hints(shapes="pool2d_scatter", distinct=True))
def max_pool2d_scatter(grad: Any, x: Any, kernel_size: Any = 2, stride: Any = None, padding: Any = 0) -> np.ndarray:
    """Route each window's gradient to the position of its maximum in ``x`` (``max_pool2d``'s vjp).

    Shapes: grad (N, C, Ho, Wo), x (N, C, H, W) -> (N, C, H, W).
    """
    grad, x = np.asarray(grad), np.asarray(x)
    kernel, step, pad, out_size = _pool_args("max_pool2d_scatter", x, kernel_size, stride, padding)
    index = _pool_argmax(x, kernel, step, pad, out_size)
    n, c, height, width = x.shape
    out = np.zeros((n, c, height + 2 * pad[0], width + 2 * pad[1]), dtype=grad.dtype)
    for i, j, where in _offsets(kernel, step, out_size):
        out[where] += np.where(index == i * kernel[1] + j, grad, 0)
    return out[:, :, pad[0] : pad[0] + height, pad[1] : pad[1] + width]


@op("max_pool2d_gather", arity=2, hints=Hints(shapes="pool2d_gather", distinct=True))
def max_pool2d_gather(values: Any, x: Any, kernel_size: Any = 2, stride: Any = None, padding: Any = 0) -> np.ndarray:
    """``values`` read at the position of each window's maximum in ``x`` (the adjoint of the scatter).

    Shapes: values (N, C, H, W), x (N, C, H, W) -> (N, C, Ho, Wo).
    """
    values, x = np.asarray(values), np.asarray(x)
    kernel, step, pad, out_size = _pool_args("max_pool2d_gather", x, kernel_size, stride, padding)
    index = _pool_argmax(x, kernel, step, pad, out_size)
    padded = _padded(values, pad)
    out = np.zeros(index.shape, dtype=values.dtype)
    for i, j, where in _offsets(kernel, step, out_size):
        np.copyto(out, padded[where], where=index == i * kernel[1] + j)
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
