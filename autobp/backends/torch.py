"""PyTorch tensors (CPU or CUDA) as autobp's arrays, through array-api-compat's torch namespace.

autobp does its own differentiation: the torch tensors it holds never require grad, and torch's
autograd records nothing.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from autobp.backends.interface import EXTRAS
from autobp.backends.standard_extras import native_copy, written_in_the_standard

NAME = "torch"
__all__ = list(EXTRAS)  # every extra (autobp/backends/interface.py)


def standard() -> Any:
    import array_api_compat.torch

    return array_api_compat.torch


def _torch() -> Any:
    import torch

    return torch


def to_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy().copy()


def from_numpy(array: np.ndarray, device: Any = None) -> Any:
    return _torch().tensor(native_copy(array), device=device)


def device(x: Any) -> Any:
    return x.device


def device_name(x: Any) -> str:
    return str(x.device)


def dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def float_dtype(dtype: Any) -> bool:
    return bool(dtype.is_floating_point)


def is_view(x: Any) -> bool:
    return x._base is not None


def owns_memory(x: Any) -> bool:
    return x._base is None  # (an expanded tensor is a view: its _base is set)


def memory_owner(x: Any) -> Any:
    base = x._base  # (torch points a view of a view at the tensor that owns the memory)
    return x if base is None else base


def strides(x: Any) -> Any:
    return tuple(x.stride())


def scatter_add(target: Any, index: Any, values: Any) -> Any:
    """``target`` with ``values`` added at ``index``; repeated positions accumulate. Writes ``target``."""
    torch = _torch()
    if not isinstance(index, tuple):
        index = (index,)
    # index_put_ takes integer tensors only: turn slices, None and Ellipsis into index tensors
    # through an index grid of the target (one gather of positions, then one accumulate).
    positions = torch.arange(target.numel(), device=target.device).reshape(target.shape)[index]
    flat = target.reshape(-1)
    flat.index_put_((positions.reshape(-1),), torch.broadcast_to(values, positions.shape).reshape(-1), accumulate=True)
    return target


def quiet(function: Any) -> Any:
    return function


# -- convolution / pooling (ops/nn.py) ------------------------------------------------------------
def sliding_windows(x: Any, kernel: tuple[int, int], stride: tuple[int, int]) -> Any:
    """Every ``kernel`` window of the last two axes, ``stride`` apart, as a view (``Tensor.unfold``).

    Shapes: x (..., H, W) -> (..., Ho, Wo, kh, kw) with ``Ho = (H - kh) // sh + 1``.
    """
    # unfold(-2) turns H into (Ho, kh) with kh last; the second unfold(-2) then reaches W.
    return x.unfold(-2, kernel[0], stride[0]).unfold(-2, kernel[1], stride[1])


# -- shape / indexing / linalg ---------------------------------------------------------------------
sum_kept, matmul_nt, matmul_tn = written_in_the_standard(standard)


# Whether x[key] means numpy's for integer arrays in a key and for negative steps; where not,
# ops/indexing.py reads elements by flat position instead (ops/positions.py). "adjacent": torch
# reads ints as basic indices, so its result has numpy's axis order only when the key's advanced
# indices (arrays, and ints beside them) sit next to each other (x[0, :, [0, 1]] differs).
advanced_indexing = "adjacent"
negative_steps = False  # torch slices take positive steps only


def einsum(subscripts: str, *operands: Any) -> Any:
    """Einstein summation; ``subscripts`` explicit (``"ij,jk->ik"``), one letter per axis.

    In numpy's dtype, the operands' promoted one, with numpy's values: uint8 wraps, bools or their ands.
    """
    torch = _torch()
    wanted = functools.reduce(torch.promote_types, (x.dtype for x in operands))
    if wanted == torch.bool:
        # torch has no bool products (bmm); counted in floats, the true products sum to 0 only
        # when there are none (no cancellation), whatever the rounding.
        return torch.einsum(subscripts, *(x.to(torch.float32) for x in operands)) != 0
    result = torch.einsum(subscripts, *operands)
    # torch sums a lone operand's narrow integers in int64; sums of products agree modulo 2**bits,
    # so the cast back gives numpy's wrapped values.
    return result if result.dtype == wanted else result.to(wanted)


# No pad of its own: ops/padding.py pads with take and concat.
pad = None
