"""The geometry of sliding windows (convolution and pooling), shared by every library's forward.

``autobp/ops/nn.py`` (the general forwards, any library) and ``autobp/backends/numpy_nn.py``
(numpy's fast ones) check their hyper-parameters and shapes here, so both paths refuse the same
input with the same message before any array work starts. Plain Python on shapes: no array is
read here, whatever its library.

Shapes: images are ``(N, C, H, W)``; a convolution weight is ``(O, C, kh, kw)``; a window
geometry is the pairs ``(kernel, stride, padding, out_size)``, each ``(rows, columns)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from autobp.backends import describe

Pair = tuple[int, int]


def int_pair(value: Any, name: str, what: str, least: int) -> Pair:
    """``value`` (an int, or a pair for rows and columns) as a pair of ints, each at least ``least``.

    Hyper-parameters are checked before any computation: ``stride=0`` would divide by zero and a
    negative padding would silently crop. Bools and floats are refused (``stride=True`` is a slip).

    >>> int_pair(2, "conv2d", "stride", 1)
    (2, 2)
    """
    pair = (value, value) if _is_int(value) else tuple(value) if isinstance(value, tuple | list) else ()
    if len(pair) != 2 or not all(_is_int(v) for v in pair) or min(pair) < least:
        raise ValueError(f"{name}: {what} must be an int or a pair of ints, each >= {least}; got {what}={value!r}")
    return int(pair[0]), int(pair[1])


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def check_4d(name: str, x: Any, what: str) -> None:
    if len(x.shape) != 4:
        raise ValueError(f"{name}: {what} must be 4-D, got shape {tuple(x.shape)} ({describe(x)})")


def check_kernel(name: str, w: Any) -> None:
    if min(w.shape[2:]) < 1:
        raise ValueError(
            f"{name}: weight {tuple(w.shape)} has an empty kernel {tuple(w.shape[2:])}; kernel sizes must be >= 1"
        )


def out_size(name: str, size: tuple[int, ...], kernel: Pair, stride: Pair, padding: Pair) -> Pair:
    """The number of windows along rows and columns; an error when there are none."""
    out = tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(size, kernel, stride, padding, strict=True))
    if min(out) < 1:
        raise ValueError(
            f"{name}: input size {tuple(size)} with kernel {kernel}, stride {stride}, padding {padding} gives no output"
        )
    return out[0], out[1]


def offsets(kernel: Pair, stride: Pair, out: Pair) -> Iterator[tuple[int, int, tuple[slice, ...]]]:
    """For each kernel offset (i, j): the strided slice of the padded input it meets in every window.

    Basic strided slicing is in the array API standard, so every library runs these loops.
    """
    (sh, sw), (ho, wo) = stride, out
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            yield (
                i,
                j,
                (slice(None), slice(None), slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw)),
            )


def conv2d_geometry(x: Any, w: Any, stride: Any, padding: Any) -> tuple[Pair, Pair, Pair, Pair]:
    """``conv2d``'s checked ``(kernel, stride, padding, out_size)``."""
    stride, padding = int_pair(stride, "conv2d", "stride", 1), int_pair(padding, "conv2d", "padding", 0)
    check_4d("conv2d", x, "input")
    check_4d("conv2d", w, "weight")
    check_kernel("conv2d", w)
    if x.shape[1] != w.shape[1]:
        raise ValueError(
            f"conv2d: input has {x.shape[1]} channels (shape {tuple(x.shape)}) "
            f"but weight {tuple(w.shape)} expects {w.shape[1]}"
        )
    kernel = (int(w.shape[2]), int(w.shape[3]))
    return kernel, stride, padding, out_size("conv2d", tuple(x.shape[2:]), kernel, stride, padding)


def conv_transpose2d_geometry(x: Any, w: Any, stride: Any, padding: Any, output_padding: Any) -> tuple[Pair, ...]:
    """``conv_transpose2d``'s checked ``(kernel, stride, padding, padded_size)``: the size before cropping."""
    name = "conv_transpose2d"
    (sh, sw), (ph, pw) = int_pair(stride, name, "stride", 1), int_pair(padding, name, "padding", 0)
    oh, ow = int_pair(output_padding, name, "output_padding", 0)
    if oh >= sh or ow >= sw:
        raise ValueError(f"{name}: output_padding={output_padding!r} must be smaller than the stride {(sh, sw)}")
    check_4d(name, x, "input")
    check_4d(name, w, "weight")
    check_kernel(name, w)
    if x.shape[1] != w.shape[0]:
        raise ValueError(
            f"{name}: input has {x.shape[1]} channels (shape {tuple(x.shape)}) "
            f"but weight {tuple(w.shape)} expects {w.shape[0]}"
        )
    kh, kw = int(w.shape[2]), int(w.shape[3])
    height, width = (x.shape[2] - 1) * sh + kh + oh, (x.shape[3] - 1) * sw + kw + ow
    if height - 2 * ph < 1 or width - 2 * pw < 1:
        raise ValueError(
            f"{name}: input {tuple(x.shape)} with weight {tuple(w.shape)}, stride {(sh, sw)}, padding {(ph, pw)} "
            f"and output_padding {(oh, ow)} gives no output"
        )
    return (kh, kw), (sh, sw), (ph, pw), (int(height), int(width))


def conv2d_weight_geometry(x: Any, grad: Any, kernel_size: Any, stride: Any, padding: Any) -> tuple[Pair, ...]:
    """``conv2d_weight``'s checked ``(kernel, stride, padding, out_size)``."""
    name = "conv2d_weight"
    kernel = int_pair(kernel_size, name, "kernel_size", 1)
    stride, padding = int_pair(stride, name, "stride", 1), int_pair(padding, name, "padding", 0)
    check_4d(name, x, "input")
    check_4d(name, grad, "grad")
    out = out_size(name, tuple(x.shape[2:]), kernel, stride, padding)
    if (grad.shape[0], tuple(grad.shape[2:])) != (x.shape[0], out):
        raise ValueError(
            f"{name}: grad shape {tuple(grad.shape)} does not match input {tuple(x.shape)} and kernel {kernel}"
        )
    return kernel, stride, padding, out


def pool_params(name: str, kernel_size: Any, stride: Any, padding: Any) -> tuple[Pair, Pair, Pair]:
    """Checked ``(kernel, stride, padding)`` pairs of a max pooling; ``stride=None`` means the kernel."""
    kernel = int_pair(kernel_size, name, "kernel_size", 1)
    step = kernel if stride is None else int_pair(stride, name, "stride", 1)
    pad = int_pair(padding, name, "padding", 0)
    if pad[0] * 2 > kernel[0] or pad[1] * 2 > kernel[1]:
        # a window of padding only would have no maximum to route a gradient to
        raise ValueError(f"{name}: padding={padding!r} must be at most half the kernel {kernel}")
    return kernel, step, pad


def pool_geometry(name: str, x: Any, kernel_size: Any, stride: Any, padding: Any) -> tuple[Pair, Pair, Pair, Pair]:
    """A max pooling's checked ``(kernel, stride, padding, out_size)``."""
    kernel, step, pad = pool_params(name, kernel_size, stride, padding)
    check_4d(name, x, "input")
    return kernel, step, pad, out_size(name, tuple(x.shape[2:]), kernel, step, pad)


def first_inside(kernel: Pair, stride: Pair, padding: Pair, out: Pair) -> list[list[int]]:
    """Shapes: -> (Ho, Wo) nested lists: the flat index (i * kw + j) of each window's first cell inside the input.

    Plain geometry (no input value enters): each library makes an array of it.
    """
    # window (r, c) starts at row r * sh - ph: its first row inside the input is max(0, ph - r * sh)
    rows = [max(0, padding[0] - stride[0] * r) for r in range(out[0])]
    columns = [max(0, padding[1] - stride[1] * c) for c in range(out[1])]
    return [[row * kernel[1] + column for column in columns] for row in rows]
