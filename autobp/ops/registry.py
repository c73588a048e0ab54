"""The op registry: one entry per op, its forward and its vjp side by side, plus test hints.

An op is declared once, in the file of its family::

    @op("mul", arity=2, hints=Hints(shapes="broadcast"))
    def mul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return x * y

    mul.defvjp(
        lambda grad, out, x, y: grad * y,  # d(xy)/dx = y
        lambda grad, out, x, y: grad * x,  # d(xy)/dy = x
    )

``@op`` turns the array function into the public function (``ab.mul``) that takes Tensors,
records the graph and names ``grad_fn``. Each vjp rule takes ``(grad, out, *inputs, **kwargs)``
as Tensors and returns the gradient for one input; rules are written with autobp ops, so the
gradient is itself differentiable. The engine sums each returned gradient back to its input's
shape, so rules never un-broadcast by hand.

Forward mode (``autobp.forward``) reads each op's jvp rules, set beside the vjp rules::

    mul.defjvp(
        lambda tangent, out, x, y: tangent * y,  # d(xy) = dx y
        lambda tangent, out, x, y: tangent * x,  # ... + x dy
    )

A jvp rule takes the tangent of one input and returns its contribution to the output's tangent;
forward mode adds the contributions and broadcasts them to the output's shape. An op declared
``linear=True`` needs none: its jvp is the op applied to the tangents. For an elementwise op,
whose Jacobian is diagonal, ``@op(..., elementwise=True)`` makes its vjp rules its jvp rules
too (the tangent takes the gradient's place).

The registry is the declarative table of the API: the docs list it and the test suite is
generated from it (``tests/test_ops.py``, ``tests/test_ops_jvp.py``). This module holds the table
and the decorators; an entry's data (``OpDef``, ``Hints``) is in ``opdef.py``, the public function
``@op`` returns in ``public_function.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from autobp.backends import describe
from autobp.forward import linear_jvp
from autobp.ops.opdef import Hints, OpDef, OpFunction
from autobp.ops.public_function import NUMPY_LIKE as _NUMPY_LIKE  # noqa: F401  (tape/compile.py reads it here)
from autobp.ops.public_function import make_public

__all__ = ["Hints", "OpDef", "REGISTRY", "op", "composite", "describe"]

REGISTRY: dict[str, OpDef] = {}


def op(
    name: str,
    *,
    arity: int | None = 1,
    hints: Hints | None = None,
    differentiable: bool = True,
    ufunc: np.ufunc | None = None,
    explain: Callable[..., None] | None = None,
    linear: bool = False,
    elementwise: bool = False,
    integer_results: bool = False,
) -> Callable[[Callable[..., Any]], OpFunction]:
    """Register an array function as an autobp op and return its public Tensor function.

    Args:
        name: the registry name, also the name ``grad_fn`` shows.
        arity: how many leading positional arguments are tensors (``None``: all of them).
        hints: test hints (plain data) for the generated test suite.
        differentiable: False for ops with integer or boolean results (comparisons, argmax).
        ufunc: a numpy ufunc that is the whole forward (``np.add`` for ``add``); the decorated
            function then only declares the signature and the docstring. Calls then skip a
            Python frame, which elementwise chains and taped replays feel.
        explain: called with the input arrays when the forward raised; it raises a clearer
            error than the forward's (numpy's messages name neither the op nor the fix).
        linear: the op is linear in its tensor inputs taken together (``reshape``, ``sum``,
            ``concatenate``): its jvp is the op applied to the tangents (zeros for inputs
            without one), so it needs no jvp rule.
        elementwise: the op is elementwise (each input's Jacobian is diagonal once inputs
            broadcast): its vjp rules, given a tangent in the gradient's place, are its jvp
            rules, which ``defvjp`` then sets too.
        integer_results: the result may be integer or boolean for floating inputs (``astype``):
            such a result is then on no graph, its derivative being 0. Ops registered outside
            autobp are treated so whatever this says.
    """

    def register(declared: Callable[..., Any]) -> OpFunction:
        if name in REGISTRY:
            raise ValueError(f"op {name!r} is registered twice")
        if ufunc is not None and ufunc.nin != (arity or 0):
            raise TypeError(f"{name}: ufunc {ufunc.__name__} takes {ufunc.nin} inputs, but arity is {arity}")
        forward = declared if ufunc is None else ufunc
        if ufunc is None and not declared.__module__.startswith("autobp."):
            forward = _reading_only(name, declared)
        opdef = OpDef(
            name,
            forward,
            arity,
            hints or Hints(),
            differentiable,
            composite=False,
            declared=declared,
            explain=explain,
            linear=linear,
            elementwise=elementwise,
            integer_results=integer_results,
        )

        public = make_public(opdef)
        public.op = opdef  # type: ignore[attr-defined]
        public.defvjp = opdef.defvjp  # type: ignore[attr-defined]
        public.defvjp_variadic = opdef.defvjp_variadic  # type: ignore[attr-defined]
        public.defjvp = opdef.defjvp  # type: ignore[attr-defined]
        public.defjvp_variadic = opdef.defjvp_variadic  # type: ignore[attr-defined]
        opdef.public = public
        if linear:
            linear_jvp(opdef)
        REGISTRY[name] = opdef
        return public  # type: ignore[return-value]

    return register


def _reading_only(name: str, declared: Callable[..., Any]) -> Callable[..., Any]:
    """The forward of an op registered outside autobp, given read-only views of its numpy array
    arguments: a forward that wrote into one (``x *= 2``) changed the Tensor's values with no
    version counted, so a graph that had saved the tensor gave a wrong gradient without an error
    (and a leaf that requires grad changed). numpy now refuses the write; the error names the op.
    autobp's own forwards never write their inputs (``tests/test_ops.py``): they are left bare."""

    @functools.wraps(declared)
    def forward(*args: Any, **kwargs: Any) -> Any:
        viewed = [_read_only_view(a) if type(a) is np.ndarray and a.flags.writeable else a for a in args]
        try:
            return declared(*viewed, **kwargs)
        except ValueError as error:
            if "read-only" not in str(error):
                raise
            raise ValueError(
                f"{name}: the forward wrote into an input array in place ({error}); the array belongs "
                "to a Tensor, whose values a graph may have saved. Compute a new array instead "
                "(x * 2, not x *= 2; np.sort(x), not x.sort())"
            ) from error

    return forward


def _read_only_view(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def composite(name: str, *, hints: Hints | None = None) -> Callable[[Callable[..., Any]], Any]:
    """Register a public function built from other ops: it needs no vjp, but is tested like one."""

    def register(function: Callable[..., Any]) -> Any:
        if name in REGISTRY:
            raise ValueError(f"op {name!r} is registered twice")
        opdef = OpDef(name, function, None, hints or Hints(), True, composite=True)
        function.op = opdef  # type: ignore[attr-defined]
        REGISTRY[name] = opdef
        return function

    return register
