"""Elementwise arithmetic: ``+ - * / **``, negation, copies and dtype conversions.

Shapes: inputs broadcast as numpy does; the output has the broadcast shape (each vjp returns a
gradient of that shape and the engine sums it back to each input's shape). At domain edges
(``1 / 0``, ``0 ** -1``) they give numpy's inf and nan without raising or warning. Each input's
Jacobian is diagonal, so the vjp rules are the jvp rules too (``elementwise=True``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from autobp.backends import describe, int_out_of_bounds, library, library_of, namespace
from autobp.backends.numpy import quiet
from autobp.forward import carries_tangent
from autobp.graph import WeakScalar
from autobp.ops.registry import Hints, op
from autobp.tensor import Tensor

BINARY = Hints(shapes="broadcast")
# ``quiet``: numpy, and array_api_strict (which computes with numpy), warn at domain edges, where
# torch and cupy are silent; the general forwards below give inf and nan quietly on every library.


def refuse_wrapping_ints(name: str, x: Any, y: Any) -> None:
    """numpy 2's ``OverflowError`` for a Python int outside the other operand's integer dtype
    (``u8 + 300``), which torch wraps silently (to 44).

    torch reads a numpy integer scalar as a Python int too (``u8 + np.int64(300)`` wraps, where
    numpy computes 301 in int64), so on other libraries' arrays one out of bounds is refused the
    same way; with numpy's arrays it promotes as numpy promotes it.
    """
    for array, number in ((x, y), (y, x)):
        kind = type(number)
        if kind is int:
            value = number
        elif kind in _NUMPY_INTEGERS and type(array) is not np.ndarray:
            value = int(number)
        else:
            continue
        if int_out_of_bounds(array, value) is not None:
            dtype = namespace(array).dtype_name(array.dtype)
            what = "Python integer" if kind is int else f"numpy {kind.__name__}"
            raise OverflowError(
                f"{name}: {what} {number} out of bounds for {dtype} (inputs: {describe(x)}, {describe(y)})"
            )


# numpy's integer scalar types (a set: one lookup tells an array operand, the usual one, apart).
_NUMPY_INTEGERS = frozenset([np.dtype(c).type for c in "bBhHiIlLqQ"])


@op("add", arity=2, hints=BINARY, elementwise=True)
def add(x: Any, y: Any) -> Any:
    """Elementwise ``x + y``. Shapes: broadcastable -> broadcast shape."""
    refuse_wrapping_ints("add", x, y)
    return namespace(x, y).add(x, y)


add.defvjp(
    lambda grad, out, x, y: grad,  # d(x+y)/dx = 1
    lambda grad, out, x, y: grad,  # d(x+y)/dy = 1
    plain_arrays=True,
)


@op("sub", arity=2, hints=BINARY, elementwise=True)
def sub(x: Any, y: Any) -> Any:
    """Elementwise ``x - y``. Shapes: broadcastable -> broadcast shape."""
    refuse_wrapping_ints("sub", x, y)
    return namespace(x, y).subtract(x, y)


sub.defvjp(
    lambda grad, out, x, y: grad,  # d(x-y)/dx = 1
    lambda grad, out, x, y: -grad,  # d(x-y)/dy = -1
    plain_arrays=True,
)


@op("mul", arity=2, hints=BINARY, elementwise=True)
def mul(x: Any, y: Any) -> Any:
    """Elementwise ``x * y``. Shapes: broadcastable -> broadcast shape."""
    refuse_wrapping_ints("mul", x, y)
    return namespace(x, y).multiply(x, y)


mul.defvjp(
    lambda grad, out, x, y: grad * y,  # d(xy)/dx = y
    lambda grad, out, x, y: grad * x,  # d(xy)/dy = x
    plain_arrays=True,
)


@op("div", arity=2, hints=Hints(shapes="broadcast", domain=((-2.0, 2.0), (0.5, 2.0))), elementwise=True)
@quiet
def div(x: Any, y: Any) -> Any:
    """Elementwise ``x / y`` (true division). Shapes: broadcastable -> broadcast shape."""
    return namespace(x, y).divide(x, y)


div.defvjp(
    lambda grad, out, x, y: grad / y,  # d(x/y)/dx = 1/y
    # d(x/y)/dy = -x/y^2 = -out/y. The cotangent meets the whole partial, as in every rule here
    # and in PyTorch: -grad * out first overflowed where the gradient fits (float16 300 / 100
    # with cotangent 60000: -inf, not -1800).
    lambda grad, out, x, y: -grad * (out / y),
    plain_arrays=True,
)


def _div_jvp(tangents: list[Any], out: Any, x: Any, y: Any) -> Any:
    # d(x/y) = (dx - out dy) / y, one division, as PyTorch's forward mode computes it. The sum of
    # the vjp rules, dx / y - out dy / y, is nan where a part is: 0 / 0 for a zero dx at y = 0
    # (the whole is -inf there), inf - inf for x / x at a subnormal x (the whole is 0).
    dx, dy = tangents
    if dy is None:
        return dx / y
    return (-(out * dy) if dx is None else dx - out * dy) / y


div.defjvp_variadic(_div_jvp, plain_arrays=True)


@op("pow", arity=2, hints=Hints(shapes="broadcast", domain=((0.5, 2.0), (-2.0, 2.0))), elementwise=True)
@quiet
def pow(x: Any, y: Any) -> Any:
    """Elementwise ``x ** y``. Shapes: broadcastable -> broadcast shape."""
    refuse_wrapping_ints("pow", x, y)
    refuse_negative_int_powers(x, y)
    return namespace(x, y).pow(x, y)


def refuse_negative_int_powers(x: Any, y: Any) -> None:
    """numpy's ``ValueError`` for integers (or bools) to a negative integer power, which torch
    computes as 0 (``int64 [2] ** [-1]``) and cupy too: one ``any`` where both operands hold integers,
    a dtype test elsewhere. (numpy and array-api-strict raise themselves; a Python int exponent on
    torch raised torch's RuntimeError, now numpy's error too.)"""
    if not _int_kind(x) or _int_kind(y) != "i":
        return
    negative = y < 0 if type(y) is int else bool(namespace(y).any(y < 0))
    if negative:
        raise ValueError("Integers to negative integer powers are not allowed.")


# (dtype type, dtype) -> "b" for bool, "i" for signed integers, "u" for unsigned ones, "" for the rest.
_INT_KINDS: dict[tuple[type, Any], str] = {}


def _int_kind(value: Any) -> str:
    """Whether ``value`` (an array, a numpy scalar or a Python number) holds bools or integers."""
    kind = type(value)
    if kind is int:
        return "i"
    if kind is bool:
        return "b"
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return ""
    key = (type(dtype), dtype)  # (never == between two libraries' dtypes: array-api-strict warns)
    try:
        return _INT_KINDS[key]
    except KeyError:  # (once per dtype)
        lib = library_of(value) or library("numpy")  # (numpy scalars: numpy's dtypes)
        found = next((k for k, name in _KIND_NAMES if lib.isdtype(dtype, name)), "")
        _INT_KINDS[key] = found
        return found


_KIND_NAMES = (("b", "bool"), ("i", "signed integer"), ("u", "unsigned integer"))


def _pow_dx(grad: Tensor, out: Tensor, x: Tensor, y: Tensor) -> Tensor:
    # d(x^y)/dx = y x^(y-1); at y = 0 that is 0 * x^-1, which is 0 * inf = nan where x^-1
    # overflows: at x = 0, and at a subnormal x (1 / 1e-310 is inf in float64, 1 / 1e-5 in
    # float16). Take 0 there, PyTorch's convention: x^0 = 1 does not depend on x.
    exponent = y.value if type(y) is WeakScalar else y  # (a number, as rules on Tensors see it)
    if isinstance(exponent, int | float) and exponent == 0:
        # x ** 0 is 1 everywhere (inf and nan too): zeros, whatever grad holds, as PyTorch gives;
        # grad * 0 * x ** -1 was nan where grad is inf or nan, or where x ** -1 or, one order up
        # (x ** 1 -> x ** 0 -> x ** -1), x ** -2 overflows (1e-300 in float64, 0.003 in float16).
        return zero_gradient(grad, x)
    if isinstance(exponent, int | float):
        # A constant nonzero exponent (`x ** 2`) never meets that mask, and x ** 1 == x exactly
        # (nan and inf included): the same numbers with fewer ops (a taped HVP of a squared error
        # runs this rule and its derivatives: W5). Its higher derivatives reach the mask below
        # through x ** (y - 1) (x ** 1 -> x ** 0), whose rule is this one again.
        # grad times the partial y x^(y-1), computed first (PyTorch's order): grad * y first
        # overflowed where the gradient fits (float16 x = 1e-3, cotangent 40000: inf, not 80).
        if exponent == 2:
            return grad * (y * x)
        return grad * (y * x ** (y - 1))
    from autobp.ops.elementwise.elementary import abs as magnitude  # (see _pow_dy)
    from autobp.ops.elementwise.selection import where

    # The mask twice ("double where"): masking only the result leaves 0^(-1) = inf in the branch
    # not taken, and the next derivative multiplies its zero cotangent by the inf below it (nan).
    # Base 1 where masked keeps every number of that branch, and of its derivatives, finite.
    # Only where x^-1 is infinite: elsewhere the branch is finite, and its derivative through y
    # (d/dy y x^(y-1) = x^-1 at y = 0) is needed. (x = nan is not masked: its nan propagates.)
    # An exponent nothing differentiates (an array, a Tensor with neither grad nor tangent, any
    # exponent at first order, whose rules run on arrays) needs no such derivative: masked at
    # every y = 0, so that x ** 0 gives zeros whatever grad holds (inf, nan) and one order up
    # (where x ** -2 overflows), as a Python-number exponent does and PyTorch gives.
    # The mask is a constant: computed from x detached, it records no node and carries no tangent.
    base = x.detach() if isinstance(x, Tensor) else x
    constant = not isinstance(y, Tensor) or not (y.requires_grad or carries_tangent(y))
    at_zero = _truth(y == 0)
    masked = (_truth(magnitude(1.0 / base) == math.inf) | constant) & at_zero
    value = grad * (y * where(masked, 1.0, x) ** (y - 1))
    # Where y = 0 and the branch is kept for its derivative through y, its value is 0 * grad *
    # x^-1, -0.0 for a negative grad, x or y; the masked zero of the first-order path (and
    # PyTorch's) is +0.0. Adding 0.0 gives +0.0 there and changes no derivative.
    return where(masked, 0.0, where(at_zero, value + 0.0, value))


def zero_gradient(grad: Any, x: Any = None) -> Any:
    """Zeros of ``grad``'s shape, dtype and library: the vjp (and jvp) of an input the output does
    not vary with (``sign``, ``x ** 0``). ``grad * 0`` is nan where ``grad`` is inf or nan; PyTorch
    gives 0 there. The zeros stay on ``grad``'s graph, and on ``x``'s when given (so that a higher
    derivative is a zero on the graph, as before), through wheres on a constant condition, whose
    derivatives are exact zeros: ``x`` enters as ``where(True, 1, x)``, never multiplied by a zero."""
    from autobp.ops.elementwise.selection import where

    data = grad.data if isinstance(grad, Tensor) else grad
    xp = namespace(data)
    always = xp.ones(tuple(data.shape), dtype=xp.bool, device=xp.device(data))
    return where(always, 0.0, grad if x is None else grad * where(always, 1.0, x))


def _pow_dy(grad: Tensor, out: Tensor, x: Tensor, y: Tensor) -> Tensor:
    # d(x^y)/dy = x^y log x; 0 at x == 0 with y >= 0, where x^y log x -> 0.
    # Imported here: at the top, importing them would register log and where before add (the
    # registry lists arithmetic first, and its order is the op tables' and tests' order).
    from autobp.ops.elementwise.elementary import log
    from autobp.ops.elementwise.selection import where

    # Double where, as in _pow_dx: log(0) = -inf in the branch not taken would turn the next
    # derivative's zero cotangent into nan (0 * -inf, and 0 / 0 through log's rule).
    masked = _truth(x == 0) & _truth(y >= 0)
    # A constant base (`4 ** x`) goes into `where` as the number, as on the first-order path: a
    # WeakScalar's 0-d array is an int64 one for 4, which array-api-strict refuses beside 1.0 and
    # torch widens only to float32 (log(4) then loses digits in a float64 gradient).
    base = x.value if type(x) is WeakScalar else x
    if not isinstance(base, int | float) and base.dtype != out.dtype:
        # log in the result's precision: a float16 base's log gave a float64 exponent's gradient
        # float16's error (2.3e-4), where the forward's float64 value was exact.
        base = astype(base, out.dtype)
    return where(masked, 0.0, grad * (out * log(where(masked, 1.0, base))))  # (grad times the partial)


def _truth(condition: Any) -> Any:
    """A comparison, ready for ``&`` with another library's bool array: a numpy scalar operand
    (``x ** np.int64(3)`` on torch, first order) answers with np.bool_, which torch's ``&`` takes
    for a float and refuses; the Python bool it stands for works with every library."""
    return bool(condition) if isinstance(condition, np.bool_) else condition


pow.defvjp(_pow_dx, _pow_dy, plain_arrays=True)


@op("neg", elementwise=True)
def neg(x: Any) -> Any:
    """Elementwise ``-x``. Shapes: any -> same."""
    return namespace(x).negative(x)


neg.defvjp(lambda grad, out, x: -grad, plain_arrays=True)  # d(-x)/dx = -1


@op("copy", elementwise=True)
def copy(x: Any) -> Any:
    """A copy of ``x``, differentiable. Shapes: any -> same."""
    return namespace(x).asarray(x, copy=True)


copy.defvjp(lambda grad, out, x: grad, plain_arrays=True)  # identity


@op("astype", hints=Hints(kwargs={"dtype": ("float64",)}), elementwise=True, integer_results=True)
def astype(x: Any, dtype: Any) -> Any:
    """``x`` converted to ``dtype``; the gradient is converted back to ``x``'s dtype.

    ``dtype`` is a name (``"float32"``; ``"bfloat16"`` on torch), a numpy dtype or the library's own.
    Shapes: any -> same.
    """
    xp = namespace(x)
    return xp.astype(xp.asarray(x), _library_dtype(xp, dtype))


def _library_dtype(xp: Any, dtype: Any) -> Any:
    """``dtype`` in library ``xp``: a name, numpy dtype or Python type, read as numpy reads it."""
    if xp.name == "numpy":
        return dtype
    try:
        name = np.dtype(dtype).name  # only the dtype's spelling goes through numpy, no data
    except TypeError:
        if isinstance(dtype, str):  # a name numpy lacks ("bfloat16"): the library's dtype of that name
            found = getattr(xp, dtype, None)
            if found is not None and type(found) is type(xp.float32):
                return found
        return dtype  # the library's own dtype (torch.float32)
    return getattr(xp, name)


astype.defvjp(lambda grad, out, x, dtype: grad, plain_arrays=True)  # the engine casts to x's dtype
