"""numpy's fast forwards of the convolution and pooling ops (``autobp/ops/nn.py``).

The registry runs these instead of the ops' general forwards when every array is a numpy array
(``backends/numpy.py`` adds them to ``FORWARDS``). They loop over the few kernel offsets with
whole-array strided slices, writing into preallocated buffers (``out=``, ``np.copyto``): much
faster on numpy than materialising sliding windows, whose odd strides make every copy and
reduction slow. ``tests/test_backend_nn.py`` holds them to the general forwards' results.

Shapes: images are ``(N, C, H, W)``; a convolution weight is ``(O, C, kh, kw)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autobp.backends import windows
from autobp.backends.windows import Pair, offsets


def padded(x: np.ndarray, padding: Pair, fill: float = 0.0) -> np.ndarray:
    ph, pw = padding
    if ph or pw:
        return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    return x


def im2col(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, out_size: Pair) -> np.ndarray:
    """Columns (C * kh * kw, N * Ho * Wo): each column is one window of the padded input."""
    n, c = x.shape[:2]
    source = padded(x, padding).transpose(1, 0, 2, 3)  # channels first, so each row copies contiguously
    cols = np.empty((c, *kernel, n, *out_size), dtype=x.dtype)
    for i, j, where in offsets(kernel, stride, out_size):
        cols[:, i, j] = source[where]
    # (explicit sizes, not -1, in every reshape here: no channels or an empty batch is a size-0
    # axis, which -1 cannot infer)
    return cols.reshape(c * kernel[0] * kernel[1], n * out_size[0] * out_size[1])


def conv2d(x: Any, w: Any, stride: Any = 1, padding: Any = 0) -> np.ndarray:
    x, w = np.asarray(x), np.asarray(w)
    kernel, stride, padding, out_size = windows.conv2d_geometry(x, w, stride, padding)
    out = w.reshape(w.shape[0], w.shape[1] * kernel[0] * kernel[1]) @ im2col(
        x, kernel, stride, padding, out_size
    )  # (O, N * Ho * Wo)
    return np.ascontiguousarray(out.reshape(w.shape[0], x.shape[0], *out_size).transpose(1, 0, 2, 3))


def conv_transpose2d(x: Any, w: Any, stride: Any = 1, padding: Any = 0, output_padding: Any = 0) -> np.ndarray:
    x, w = np.asarray(x), np.asarray(w)
    kernel, stride, (ph, pw), (height, width) = windows.conv_transpose2d_geometry(x, w, stride, padding, output_padding)
    n, o, ho, wo = x.shape
    c = w.shape[1]
    rows = x.transpose(1, 0, 2, 3).reshape(o, n * ho * wo)
    cols = (w.reshape(o, c * kernel[0] * kernel[1]).T @ rows).reshape(c, *kernel, n, ho, wo)
    out = np.zeros((c, n, height, width), dtype=cols.dtype)
    # col2im: each kernel offset adds its columns back where they were read from.
    for i, j, where in offsets(kernel, stride, (ho, wo)):
        out[where] += cols[:, i, j]
    return np.ascontiguousarray(out[:, :, ph : height - ph, pw : width - pw].transpose(1, 0, 2, 3))


def conv2d_weight(x: Any, grad: Any, kernel_size: Any, stride: Any = 1, padding: Any = 0) -> np.ndarray:
    x, grad = np.asarray(x), np.asarray(grad)
    kernel, stride, padding, out_size = windows.conv2d_weight_geometry(x, grad, kernel_size, stride, padding)
    rows = grad.transpose(1, 0, 2, 3).reshape(grad.shape[1], x.shape[0] * out_size[0] * out_size[1])  # (O, N * Ho * Wo)
    return (rows @ im2col(x, kernel, stride, padding, out_size).T).reshape(grad.shape[1], x.shape[1], *kernel)


def lowest(dtype: np.dtype[Any]) -> float:
    return -np.inf if dtype.kind == "f" else float(np.iinfo(dtype).min)


def pool_argmax(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, out_size: Pair) -> np.ndarray:
    """Flat index (i * kw + j) in each window of the cell its gradient goes to, as PyTorch picks it.

    PyTorch scans the window's cells inside the input in order and takes a cell when
    ``value > best or isnan(value)``, starting from ``best = -inf`` at the first cell inside the
    input: the first maximum on ties, the last NaN (the forward's NaN) if there is one, and the
    first cell inside the input when all are -inf, never a padding cell.
    """
    source = padded(x, padding, lowest(x.dtype))
    best = np.full((*x.shape[:2], *out_size), lowest(x.dtype), dtype=x.dtype)
    first = np.asarray(windows.first_inside(kernel, stride, padding, out_size), dtype=np.intp)
    index = np.broadcast_to(first, best.shape).copy()
    has_nan = x.dtype.kind == "f" and bool(np.isnan(x).any())
    for i, j, where in offsets(kernel, stride, out_size):
        better = source[where] > best
        if has_nan:
            better |= np.isnan(source[where])
        np.copyto(best, source[where], where=better)
        index[better] = i * kernel[1] + j
    return index


def max_pool2d(x: Any, kernel_size: Any = 2, stride: Any = None, padding: Any = 0) -> np.ndarray:
    x = np.asarray(x)
    kernel, step, pad, out_size = windows.pool_geometry("max_pool2d", x, kernel_size, stride, padding)
    source = padded(x, pad, lowest(x.dtype))
    out = np.full((*x.shape[:2], *out_size), lowest(x.dtype), dtype=x.dtype)
    for _, _, where in offsets(kernel, step, out_size):
        np.maximum(out, source[where], out=out)
    return out


def max_pool2d_scatter(grad: Any, x: Any, kernel_size: Any = 2, stride: Any = None, padding: Any = 0) -> np.ndarray:
    grad, x = np.asarray(grad), np.asarray(x)
    kernel, step, pad, out_size = windows.pool_geometry("max_pool2d_scatter", x, kernel_size, stride, padding)
    index = pool_argmax(x, kernel, step, pad, out_size)
    n, c, height, width = x.shape
    out = np.zeros((n, c, height + 2 * pad[0], width + 2 * pad[1]), dtype=grad.dtype)
    for i, j, where in offsets(kernel, step, out_size):
        out[where] += np.where(index == i * kernel[1] + j, grad, 0)
    return out[:, :, pad[0] : pad[0] + height, pad[1] : pad[1] + width]


def max_pool2d_gather(values: Any, x: Any, kernel_size: Any = 2, stride: Any = None, padding: Any = 0) -> np.ndarray:
    values, x = np.asarray(values), np.asarray(x)
    kernel, step, pad, out_size = windows.pool_geometry("max_pool2d_gather", x, kernel_size, stride, padding)
    index = pool_argmax(x, kernel, step, pad, out_size)
    source = padded(values, pad)
    out = np.zeros(index.shape, dtype=values.dtype)
    for i, j, where in offsets(kernel, step, out_size):
        np.copyto(out, source[where], where=index == i * kernel[1] + j)
    return out


FORWARDS: dict[str, Any] = {
    "conv2d": conv2d,
    "conv_transpose2d": conv_transpose2d,
    "conv2d_weight": conv2d_weight,
    "max_pool2d": max_pool2d,
    "max_pool2d_scatter": max_pool2d_scatter,
    "max_pool2d_gather": max_pool2d_gather,
}
