"""Argument handling shared by the functional transforms (``autobp.functional``).

Inputs and outputs are a Tensor or a tuple of Tensors; results mirror that structure. Errors
name the transform and the argument.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from autobp import graph
from autobp.engine import grad
from autobp.grad_mode import enable_grad
from autobp.ops import copy as _copy
from autobp.tensor import Tensor


def as_tensors(value: Any, what: str, arg: str) -> tuple[bool, tuple[Tensor, ...]]:
    """``(was_tuple, tensors)``; anything but Tensors is an error naming the transform."""
    is_tuple = isinstance(value, tuple | list)
    items = tuple(value) if is_tuple else (value,)
    for i, item in enumerate(items):
        if not isinstance(item, Tensor):
            where = f"{arg}[{i}]" if is_tuple else arg
            raise TypeError(f"{what}: {where} must be a Tensor, got {type(item).__name__}")
    return is_tuple, items


def fresh_inputs(
    inputs: tuple[Tensor, ...], create_graph: bool, what: str, requires_grad: bool = True
) -> tuple[Tensor, ...]:
    prepared = []
    for i, x in enumerate(inputs):
        if x.dtype.kind != "f":
            raise TypeError(f"{what}: inputs[{i}] has dtype {x.dtype}; only floating-point inputs are differentiable")
        if create_graph and x.requires_grad:
            prepared.append(_copy(x))  # stays connected to x, so results differentiate back to it
        elif graph._mode.forward is not None:  # inside forward mode: a copy keeps x's tangents
            copied = _copy(x)
            copied.requires_grad = copied.requires_grad or requires_grad  # a leaf unless x requires grad
            prepared.append(copied)
        else:
            leaf = Tensor._wrap(x.data, requires_grad=requires_grad)
            leaf._share_storage_with(x)  # one storage, one counter: func writing into x is seen
            prepared.append(leaf)
    return tuple(prepared)


def call_func(func: Callable[..., Any], inputs: tuple[Tensor, ...], what: str) -> tuple[bool, tuple[Tensor, ...]]:
    with enable_grad():
        outputs = func(*inputs)
    return as_tensors(outputs, what, "func's output")


def checked_vectors(v: Any, outputs: tuple[Tensor, ...], what: str, arg: str = "v") -> list[Tensor]:
    if v is None:
        if len(outputs) != 1 or outputs[0].size != 1:
            shapes = [o.shape for o in outputs]
            raise ValueError(f"{what}: {arg} may be omitted only for one single-element Tensor, got shapes {shapes}")
        return [Tensor(np.ones(outputs[0].shape, dtype=outputs[0].dtype))]
    _, vs = as_tensors(v, what, arg)
    if len(vs) != len(outputs):
        raise ValueError(f"{what}: {arg} has {len(vs)} entries for {len(outputs)} outputs of func")
    for i, (vi, out) in enumerate(zip(vs, outputs, strict=True)):
        if vi.shape != out.shape:
            raise ValueError(f"{what}: {arg}[{i}] has shape {vi.shape}, but func's output {i} has shape {out.shape}")
    return list(vs)


def input_grads(
    outputs: Sequence[Tensor],
    inputs: tuple[Tensor, ...],
    cotangents: Sequence[Tensor],
    create_graph: bool,
    retain_graph: bool | None = None,
) -> tuple[Tensor, ...]:
    """d<cotangents, outputs>/d(inputs), zeros for inputs the outputs do not depend on."""
    pairs = [(o, c) for o, c in zip(outputs, cotangents, strict=True) if o.requires_grad]
    if not pairs:
        found: tuple[Tensor | None, ...] = (None,) * len(inputs)
    else:
        found = grad(
            [o for o, _ in pairs],
            list(inputs),
            grad_outputs=[c for _, c in pairs],
            retain_graph=retain_graph,
            create_graph=create_graph,
            allow_unused=True,
        )
    return tuple(
        Tensor(np.zeros(x.shape, dtype=x.dtype)) if g is None else g for g, x in zip(found, inputs, strict=True)
    )


def maybe_detached(values: Sequence[Tensor], create_graph: bool) -> tuple[Tensor, ...]:
    return tuple(v if create_graph else v.detach() for v in values)


def packed(is_tuple: bool, values: Sequence[Any]) -> Any:
    return tuple(values) if is_tuple else values[0]


def check_scalar(outs: tuple[Tensor, ...], what: str) -> None:
    if len(outs) != 1 or outs[0].size != 1:
        raise ValueError(f"{what}: func must return a single one-element Tensor, got shapes {[o.shape for o in outs]}")
