"""Taping: record a scalar function and its derivatives once, then replay them as plain array calls.

``value_and_grad(func)`` computes what ``autobp.functional.value_and_grad`` computes, bit for
bit, but pays the define-by-run bookkeeping (Tensors, nodes, the engine's walk) once per input
signature (shapes, dtypes, static arguments by type and exact value) instead of once per call.
The first call *traces*: ``func`` runs as usual and the engine differentiates it with
``create_graph=True``, so that every op of the forward and of the backward goes through an
autobp op; each op call is written on a tape. The tape becomes a straight-line Python function
of the ops' array forwards (``Taped.source`` shows it); later calls run it on the new input
arrays, with no Tensor, node or walk in between. A tape computes with the library it traced:
numpy's fast forwards for numpy arrays, the ops' general forwards for another library's (torch,
cupy, array_api_strict), whose tensors are tape inputs like numpy arrays (the signature holds
their library and device). Classic AD calls this taping (ADOL-C);
``jax.jit`` traces the same way.

A replay computes what running ``func`` computes, or the call does not replay (the soundness
model, docs/design.md#taping):

- **Guarded**: a value read into Python while tracing (``bool()``, ``.item()``, ``float()``,
  ``int()``, ``__index__``, a slice bound ``x[:n]``, an axis ``sum(x, axis=t)``, the text of
  one value: ``str()``, ``repr()``, ``format()``) is checked on every replay, right where it
  is computed; a Tensor ``func`` reads without taking it as an argument (a closure) must hold
  the same array at the same version. A failed guard traces the call anew (up to
  ``MAX_TRACES`` tapes per signature), then runs the signature eagerly. A numpy array ``func``
  passes to autobp's ops as it is (a closure) is read at each replay as it is then, as an operand
  or an integer index; in another keyword (a mask, a slice bound, an axis) its values are guarded.
- **Eager**: whole arrays read into Python (``.numpy()``, ``.tolist()``, ``__array__``, a copy
  into ``ab.tensor``, the text of more than one value), ops whose gradient reads values
  (``max``, ``prod``, ``std``...), keywords computed from the inputs, autobp's random draws from a
  Generator or with ``rng=None`` (``dropout``), a static NaN, anomaly mode:
  ``Taped.eager_reasons`` says why.
- **Refused** (``TapeError``): a first-order ``backward``/``grad`` or an in-place method while
  tracing; forward mode while tracing (``hvp`` below makes its own level); a taped function
  called inside another one being traced, or inside a function that ``autobp.functional``
  differentiates or a forward-mode level (its results are constants, which read as zero
  derivatives there); a first replay on new values that differs from an eager run (each tape is
  checked so, once).
- **Documented limitations**: ``func`` reading ``t.data`` (the raw array), numpy randomness,
  numpy's own arithmetic on arrays outside autobp's ops (``arr * 2.0`` on a closure), or Python
  values from outside its arguments that change later (a global name rebound to another object, an attribute of a
  static argument): the tape keeps what it saw, as ``jax.jit`` does.

Value checks that ops make (``cross_entropy``'s class indices) run on every replay; results are
fresh arrays on every call; replays run with numpy's floating-point warnings off, as the
engine's backward walk does.

>>> import autobp as ab
>>> f = ab.tape.value_and_grad(lambda w, x: ((w * x).sum() - 1.0) ** 2)
>>> value, g = f(ab.tensor([1.0, 2.0]), ab.tensor([3.0, 4.0]))
>>> value.item(), g.tolist()
(100.0, [60.0, 80.0])
"""

from __future__ import annotations

from collections.abc import Callable

from autobp import graph
from autobp.graph import TapeError
from autobp.tape.hvp import TapedHvp
from autobp.tape.taped import MAX_TAPES, MAX_TRACES, Taped
from autobp.tensor import Tensor

__all__ = ["TapeError", "Taped", "TapedHvp", "value_and_grad", "hvp", "is_tracing", "MAX_TAPES", "MAX_TRACES"]


def is_tracing() -> bool:
    """Whether a taped function is being traced now (its op calls go on a tape)."""
    return graph._local.modes.tape is not None


def value_and_grad(func: Callable[..., Tensor], argnums: int | tuple[int, ...] = 0) -> Taped:
    """``functional.value_and_grad`` on a tape: ``(func(*args), d func / d args[argnums])``.

    ``func`` takes positional arguments and returns a one-element Tensor (or a tuple of one, as
    ``functional.value_and_grad`` takes it; anything else raises its error). Tensors and arrays
    (numpy's or another library's) among the arguments are the tape's inputs and reach ``func``
    as Tensors; their values may change from call to call. So does every argument at ``argnums``,
    taken as ``functional.value_and_grad`` takes it: a Tensor or a floating-point array (a numpy
    scalar too) keeps its dtype, any other array-like (a Python number, a list, an integer or
    bool array) becomes float64, and an integer Tensor is a ``TypeError``. A numpy scalar
    elsewhere reaches ``func`` as it is, as ``functional.value_and_grad`` passes it (an axis,
    ``np.int64(1)``). Any other argument is static and must be hashable: a new type or value
    (``1`` and ``True``, ``0.0`` and ``-0.0``, ``np.float64(2)`` and ``np.float32(2)`` differ) is
    traced anew. Returns Tensors: the value, and one gradient for an int ``argnums`` or a tuple
    of them (``Taped.arrays`` returns the arrays), each a fresh array. Shapes: each gradient has
    its argument's shape; one the value does not depend on gets zeros.

    Raises ``TapeError`` when ``func`` does what a tape cannot replay (module docstring).

    >>> import numpy as np
    >>> import autobp as ab
    >>> step = ab.tape.value_and_grad(lambda w: (w * w).sum() if (w.sum() > 0).item() else -w.sum())
    >>> [step(np.array(v))[1].tolist() for v in ([1.0, 2.0], [-1.0, -2.0], [3.0, 1.0])]
    [[2.0, 4.0], [-1.0, -1.0], [6.0, 2.0]]
    """
    return Taped(func, argnums)


def hvp(func: Callable[..., Tensor], argnums: int | tuple[int, ...] = 0) -> TapedHvp:
    """``functional.hvp`` on a tape: ``(func(*args), H v)`` for the arguments at ``argnums``.

    Call the result with ``func``'s arguments followed by the direction ``v`` (one array for an
    int ``argnums``, a tuple of them otherwise). The trace is forward-over-reverse (the gradient
    computed once while carrying ``v`` as tangents, as ``functional.hvp`` does by default); a
    replay runs the forward, the backward and the tangents' ops as straight array calls, under
    the same guards as ``value_and_grad`` (module docstring), and gives what
    ``functional.hvp(f, args[argnums], v)`` gives, bit for bit, with the other arguments held
    fixed; the arguments at ``argnums`` are taken as ``value_and_grad`` takes them (an integer
    array as float64). Shapes: ``v`` and ``H v`` have the shapes of the differentiated arguments.

    >>> import autobp as ab
    >>> f = ab.tape.hvp(lambda w, x: ((w * x).sum()) ** 2)
    >>> value, hv = f(ab.tensor([1.0, 2.0]), ab.tensor([3.0, 4.0]), ab.tensor([1.0, 0.0]))
    >>> value.item(), hv.tolist()
    (121.0, [18.0, 24.0])
    """
    return TapedHvp(func, argnums)
