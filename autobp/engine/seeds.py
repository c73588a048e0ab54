"""The seeds of a reverse walk: ``backward``'s ``gradient`` and ``grad``'s ``grad_outputs``, checked.

Shapes: each seed has its output's shape; a scalar output's default seed is a one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from autobp import backends, graph
from autobp.engine.errors import describe_tensor
from autobp.tensor import Tensor

__all__ = ["seed_grads"]


def seed_grads(
    outputs: Sequence[Tensor], grad_outputs: Sequence[Any] | None, what: str, constants: bool = False
) -> list[Tensor]:
    """The checked seeds, one per output. ``constants``: outputs on no graph are allowed (``grad``
    with ``allow_unused``, which only checks their seeds' shapes)."""
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"{what}: got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    seeds = []
    for out, g in zip(outputs, grad_outputs, strict=True):
        if not isinstance(out, Tensor):
            raise TypeError(f"{what}: outputs must be Tensors, got {type(out).__name__}")
        if not out._requires_grad and not constants:
            raise RuntimeError(
                f"{what}: output {describe_tensor(out)} does not require grad; did you forget "
                "requires_grad=True on an input, or compute it under ab.no_grad()? (A first-order "
                "gradient that does not vary with the input, as relu's, is on no graph either: its "
                "derivative is zero, which ab.grad(..., allow_unused=True) returns as None)" + _in_forward_mode()
            )
        if g is None:
            if math.prod(out.data.shape) != 1:  # (a torch tensor's size is a method)
                raise RuntimeError(
                    f"{what}: output {describe_tensor(out)} is not a scalar; pass a gradient of its shape "
                    "(grad_outputs / gradient=) or reduce it first, e.g. out.sum().backward()"
                )
            if type(out.data) is np.ndarray:
                ones = np.empty(out.data.shape, out.data.dtype)  # np.ones without its Python frame
                ones.fill(1)
            else:
                ones = backends.namespace(out.data).ones_like(out.data)
            g = Tensor._wrap(ones)
        elif not isinstance(g, Tensor) or type(g.data) is not type(out.data):
            g = graph.as_gradient(g, out, what)  # in the output's library (another library's: an error)
        if g.data.shape != out.data.shape:  # (the arrays' shapes: no property calls)
            raise ValueError(f"{what}: gradient shape {g.shape} does not match output shape {out.shape}")
        if g.data.dtype is not out.data.dtype and g.data.dtype != out.data.dtype:
            # The walk computes in the seed's dtype: a bool seed would add as logical or, an int
            # one overflow, a float16 one round; cast to the output's, as PyTorch does (an op: a
            # seed that requires grad stays on its graph). A complex one would lose its imaginary part.
            backends.refuse_complex(g, what, f"the gradient for output {describe_tensor(out)}")
            g = g.astype(out.data.dtype)
        seeds.append(g)
    return seeds


def _in_forward_mode() -> str:
    """What to say of a graph-less output inside a forward-mode transform (``jacfwd``, ``jvp``),
    whose inputs carry tangents and build no graph, so that a ``grad`` inside finds none."""
    if graph._local.modes.forward is None:
        return ""
    return (
        ". Inside jacfwd or jvp the inputs carry tangents and record no graph: to differentiate a "
        "gradient there, take it with ab.functional.vjp or jacobian (which make inputs that require "
        "grad), or use ab.functional.hessian or hvp"
    )
