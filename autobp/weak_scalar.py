"""A Python number among an op's inputs, as vjp rules see it when they build a graph themselves.

``autobp.graph.node_inputs`` wraps constants with ``constant_as_tensor``: a Python number becomes a
``WeakScalar``, which computes as the number does (numpy's weak scalar rule), an array a Tensor.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from autobp import backends
from autobp.tensor import Tensor

__all__ = ["WeakScalar", "constant_as_tensor"]

_PYTHON_NUMBERS = (bool, int, float, complex)
_NUMPY_NUMBERS = (np.number, np.bool_)


def constant_as_tensor(value: Any, like: Any = None) -> Tensor:
    """A constant input as a Tensor; a Python number as a ``WeakScalar`` in the library of the
    array ``like`` (an op's output: the number then combines with the op's other arrays).

    A numpy scalar computes as the op's forward computed with it: on numpy as a 0-d array of its
    own dtype (numpy 2's rule, NEP 50: ``float32 * np.float64(2)`` is float64); on another library
    as that library did, which is as the Python number on torch (``float32 * np.float64(2)`` stays
    float32 there). Shapes: ``value``'s shape; a number's is ().

    >>> import numpy as np
    >>> type(constant_as_tensor(2.0)).__name__, constant_as_tensor(np.ones(3)).shape
    ('WeakScalar', (3,))
    """
    foreign = like is not None and type(like) is not np.ndarray and backends.library_of(like) is not None
    if foreign and isinstance(value, _NUMPY_NUMBERS):
        xp = backends.namespace(like)
        if not _numpy_scalars_are_weak(xp, like):  # a library with numpy's rule (CuPy with NEP 50)
            return Tensor._wrap(xp.asarray(value, device=xp.device(like)))
        value = value.item()  # the Python number: a numpy 0-d array would mix libraries
    if type(value) not in _PYTHON_NUMBERS:
        return Tensor._wrap(value)
    scalar = WeakScalar(value)
    if foreign:
        xp = backends.namespace(like)
        scalar.data = xp.asarray(value, dtype=getattr(xp, str(scalar.data.dtype)), device=xp.device(like))
    return scalar


# Per library name: whether its ops compute with a numpy scalar as with the Python number.
_WEAK_NUMPY_SCALARS: dict[str, bool] = {}


def _numpy_scalars_are_weak(xp: Any, like: Any) -> bool:
    """Whether library ``xp`` multiplies a float32 array by ``np.float64(2)`` into float32, as it
    would by ``2.0`` (torch), rather than float64 (numpy 2, NEP 50). Asked once of the library's
    own multiply, which an op's forward calls, not assumed: CuPy's answer depends on its version."""
    weak = _WEAK_NUMPY_SCALARS.get(xp.name)
    if weak is None:
        probe = xp.ones(1, dtype=xp.float32, device=xp.device(like))
        try:
            weak = bool(xp.multiply(probe, np.float64(2.0)).dtype == xp.float32)
        except TypeError:  # array-api-strict takes none in its ops, so no forward saved one
            weak = True
        _WEAK_NUMPY_SCALARS[xp.name] = weak
    return weak


def _binary(apply: Callable[[Any, Any], Any], reflected: bool = False) -> Callable[[WeakScalar, Any], Any]:
    def method(self: WeakScalar, other: Any) -> Any:
        other = other.value if isinstance(other, WeakScalar) else other
        return apply(other, self.value) if reflected else apply(self.value, other)

    return method


class WeakScalar(Tensor):
    """A Python number among an op's inputs, as a vjp rule sees it with ``create_graph=True``.

    Shapes: () (``data`` is a 0-d array, for code that inspects inputs). Arithmetic and
    comparisons act on the number itself (``value``), as they do on the first-order path, so
    numpy treats it as a weak scalar: ``grad * 3`` keeps a float32 ``grad`` float32. (A 0-d
    array would promote it to float64.) Python's operator rules try a subclass's reflected method
    first, so ``grad * y`` reaches ``y.__rmul__`` too.

    >>> import numpy as np
    >>> import autobp as ab
    >>> x = ab.tensor(np.ones(2, np.float32), requires_grad=True)
    >>> (g,) = ab.grad((x ** 3).sum(), [x], create_graph=True)  # the rule computes 3 * x ** 2
    >>> g.dtype
    dtype('float32')
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        # An int beyond 64 bits computes as numpy's forward computed with it (a weak number beside
        # a float array), but no integer array holds it: its 0-d array is a float64 one.
        wide = type(value) is int and not -(2**63) <= value < 2**64
        super().__init__(float(value) if wide else value)
        self.value = value

    __hash__ = Tensor.__hash__
    __add__, __radd__ = _binary(operator.add), _binary(operator.add, True)
    __sub__, __rsub__ = _binary(operator.sub), _binary(operator.sub, True)
    __mul__, __rmul__ = _binary(operator.mul), _binary(operator.mul, True)
    __truediv__, __rtruediv__ = _binary(operator.truediv), _binary(operator.truediv, True)
    __pow__, __rpow__ = _binary(operator.pow), _binary(operator.pow, True)  # type: ignore[assignment]
    __and__, __rand__ = _binary(operator.and_), _binary(operator.and_, True)
    __or__, __ror__ = _binary(operator.or_), _binary(operator.or_, True)
    __eq__, __ne__ = _binary(operator.eq), _binary(operator.ne)  # type: ignore[assignment]
    __lt__, __le__ = _binary(operator.lt), _binary(operator.le)
    __gt__, __ge__ = _binary(operator.gt), _binary(operator.ge)

    def __neg__(self) -> Any:
        return -self.value

    def __abs__(self) -> Any:
        return abs(self.value)

    def __bool__(self) -> bool:
        return bool(self.value)
