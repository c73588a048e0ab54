"""The pieces ``gradcheck`` and ``gradgradcheck`` share: inputs promoted and moved between
array libraries, the analytic vjp of one backward path (with its guards against rules that write
in place), and the comparisons with finite differences (``autobp.testing.gradcheck``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from autobp import backends
from autobp.engine import grad
from autobp.tensor import Tensor


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with finite differences; the message says where."""


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, list | tuple) else (value,)


def _promote(inputs: tuple[Any, ...], stacklevel: int) -> tuple[Any, ...]:
    """Float64 copies of the inputs that require grad (float32 differences are too coarse); a
    lower-precision one warns, at ``stacklevel`` (0: silently)."""
    promoted = []
    for x in inputs:
        if isinstance(x, Tensor) and x.requires_grad:
            if stacklevel and backends.namespace(x.data).dtype_name(x.dtype) != "float64":
                warnings.warn(
                    f"gradcheck: input of dtype {x.dtype} promoted to float64; finite differences "
                    "in lower precision cannot check gradients reliably",
                    stacklevel=stacklevel,
                )
            x = Tensor(x.data, dtype=np.float64, requires_grad=True)
        promoted.append(x)
    return tuple(promoted)


def _outputs(fn: Callable[..., Any], inputs: tuple[Any, ...]) -> tuple[Tensor, ...]:
    outs = _as_tuple(fn(*inputs))
    for out in outs:
        if not isinstance(out, Tensor):
            raise TypeError(f"gradcheck: fn must return Tensors, got {type(out).__name__}")
    return outs


def _host(array: Any) -> np.ndarray:
    """A float64 numpy copy of an array of any library (the array itself for float64 numpy)."""
    return np.asarray(backends.namespace(array).to_numpy(array), dtype=np.float64)


def _like(values: np.ndarray, like: Tensor, same_dtype: bool = False, requires_grad: bool = False) -> Tensor:
    """A host float64 array as a Tensor in ``like``'s library and on its device; of ``like``'s
    dtype if ``same_dtype``, else float64."""
    xp = backends.namespace(like.data)
    if xp.name == "numpy":
        return Tensor(values, dtype=like.dtype if same_dtype else np.float64, requires_grad=requires_grad)
    moved = xp.from_numpy(values, xp.device_name(like.data))
    return Tensor(xp.astype(moved, like.dtype) if same_dtype else moved, requires_grad=requires_grad)


def _where(array: Any) -> str:
    """``numpy``, ``torch on cuda:0``...: an array's library and device, to compare and report."""
    xp = backends.namespace(array)
    return xp.name if xp.name == "numpy" else f"{xp.name} on {xp.device_name(array)}"


def _pairing(outs: tuple[Tensor, ...], cotangents: list[np.ndarray]) -> float:
    """<v, f(x)> summed over outputs, in float64 on the host."""
    return float(sum(np.sum(_host(o.data) * v) for o, v in zip(outs, cotangents, strict=True)))


def _fail(message: str, raise_exception: bool) -> bool:
    if raise_exception:
        raise GradcheckError(message)
    return False


class _Refused(Exception):
    """A backward pass wrote where it must not; the message says where (``_fail`` reports it)."""


def _analytic(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    checked: list[int],
    cotangents: list[np.ndarray],
    create_graph: bool,
) -> tuple[Tensor | None, ...]:
    """The vjp ``d<v, fn(args)>/d(args[checked])`` from a fresh forward (a first-order backward
    frees its graph, and each path must start from a graph of its own).

    The seeds are read-only, as a real backward's incoming gradients often are (a ``sum``'s
    broadcast view), and the inputs must come back unchanged: a rule writing into either
    gives right numbers here and wrong ones in a real graph. Raises ``_Refused`` when one does.
    """
    path = "create_graph backward" if create_graph else "first-order backward"
    outs = _outputs(fn, args)
    differentiable = [o for o in outs if o.requires_grad]
    if not differentiable:
        return tuple(None for _ in checked)
    seeds = [_like(v, o, same_dtype=True) for o, v in zip(outs, cotangents, strict=True) if o.requires_grad]
    for seed in seeds:
        if isinstance(seed.data, np.ndarray):
            seed.data.flags.writeable = False
    before = [_host(x.data).copy() if isinstance(x, Tensor) else None for x in args]
    try:
        found = grad(
            differentiable, [args[i] for i in checked], grad_outputs=seeds, create_graph=create_graph, allow_unused=True
        )
    except ValueError as error:
        if "read-only" not in str(error):
            raise
        raise _Refused(
            f"gradcheck: the {path} wrote into a read-only array: a vjp rule changed its incoming gradient "
            f"(or another argument) in place, which a real backward refuses or gets wrong ({error})"
        ) from error
    for index, (x, old) in enumerate(zip(args, before, strict=True)):
        if old is not None and not np.array_equal(_host(x.data), old, equal_nan=True):
            raise _Refused(
                f"gradcheck: input {index} changed during the {path}: a vjp rule wrote into it in place, "
                "which corrupts the input (and any rule that reads it later)"
            )
    return found


def _close_elements(analytic: np.ndarray, numeric: np.ndarray, atol: float, rtol: float) -> np.ndarray:
    """``_close`` element by element."""
    with np.errstate(invalid="ignore"):  # (inf - inf: the finite test below decides those)
        near = np.abs(analytic - numeric) <= atol + rtol * np.abs(numeric)
    finite = np.isfinite(analytic) & np.isfinite(numeric)
    return np.where(finite, near, analytic == numeric)


def _dtype_name(t: Tensor) -> str:
    return str(backends.namespace(t.data).dtype_name(t.dtype))


def _scale(x: np.ndarray) -> np.ndarray:
    """What the step ``eps`` is relative to, per element: ``max(1, |x|)``. At ``x = 3e7`` a step
    of 1e-6 moves ``f = x^2`` by 60 against its rounding of 0.1: the difference is off by 0.2%."""
    return np.maximum(1.0, np.abs(x))


def _close(analytic: float, numeric: float, atol: float, rtol: float) -> bool:
    if not (np.isfinite(analytic) and np.isfinite(numeric)):
        return bool(analytic == numeric)
    return bool(abs(analytic - numeric) <= atol + rtol * abs(numeric))
