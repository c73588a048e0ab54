"""Check autograd gradients against float64 central finite differences.

``gradcheck`` compares vector-Jacobian products: for a random cotangent ``v`` (seeded), the
analytic ``d<v, f(x)>/dx`` against central differences. Small inputs are checked element by
element (the full Jacobian row); large ones along random directions, so the cost stays a
handful of evaluations. ``gradgradcheck`` runs ``gradcheck`` on the gradient function itself,
built with ``create_graph=True``: it checks second derivatives.

Inputs of any array library work (torch, cupy, array-api-strict): the analytic gradients are
computed by that library on float64 copies of the inputs, on their device; the finite
differences perturb host (numpy) float64 copies and move each trial point to the library; the
comparison runs on the host. A gradient that comes back in another library or on another device
than its input fails the check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from autobp.engine import grad
from autobp.tensor import Tensor
from autobp.testing.gradcheck_modes import check_forward, check_own_dtype, check_own_dtype_forward
from autobp.testing.gradcheck_parts import (
    GradcheckError,
    _analytic,
    _as_tuple,
    _close,
    _dtype_name,
    _fail,
    _host,
    _like,
    _outputs,
    _pairing,
    _promote,
    _Refused,
    _scale,
    _where,
)

__all__ = ["GradcheckError", "gradcheck", "gradgradcheck"]

# Inputs with more elements than this are checked along random directions instead of per element.
FULL_CHECK_MAX_ELEMENTS = 64
# Larger inputs are checked along one random direction per block of about BLOCK_SIZE random
# elements (at most MAX_BLOCKS, so at most 2 * MAX_BLOCKS evaluations, as an input of 64 elements):
# one element wrong by a factor 2 in 10,000 then fails nearly always (tests/test_testing_kit.py).
BLOCK_SIZE = 32
MAX_BLOCKS = 64


def gradcheck(
    fn: Callable[..., Any],
    inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    rng: int = 0,
    check_forward_ad: bool = True,
) -> bool:
    """Check ``fn``'s gradients with respect to every input that requires grad, in reverse mode
    and (``check_forward_ad``) in forward mode.

    Args:
        fn: maps the inputs to a Tensor or a tuple of Tensors.
        inputs: a Tensor or a tuple of inputs; only Tensors with ``requires_grad`` are checked.
            Lower-precision inputs are promoted to float64 copies, with a warning.
        eps: the finite-difference step, relative for elements larger than 1 in magnitude
            (``eps * max(1, |x|)``: a fixed step drowns in the rounding of ``f`` at large ``x``).
        atol, rtol: a gradient passes where ``|analytic - numeric| <= atol + rtol * |numeric|``.
        raise_exception: raise ``GradcheckError`` on failure (else return False).
        rng: seed for the random cotangent and directions.
        check_forward_ad: also check forward mode: for each input, the Jacobian-vector product
            ``ab.functional.jvp`` gives along a random tangent against the central difference of
            every output along it. Skipped where ``fn`` reaches an op without a jvp rule
            (``autobp.forward.ForwardModeError``), as forward mode cannot run there.

    Returns:
        True when every checked gradient agrees.

    >>> import autobp as ab
    >>> ab.gradcheck(lambda x: (x * x).sum(), ab.randn(3, requires_grad=True, rng=0))
    True
    """
    return _gradcheck(fn, inputs, eps, atol, rtol, raise_exception, rng, check_forward_ad, stacklevel=4)


# Rounding of <v, f(x)> in units of each output's epsilon times the pairing's terms (a product
# of k factors rounds by up to k epsilon; f's own ops round as often): the noise floor of a
# difference quotient, added to atol over the step. At ordinary sizes (terms near 1) it is 1e-9,
# nothing beside atol's 1e-5.
_ROUNDOFF = 8.0


def _pairing_size(outs: tuple[Tensor, ...], cotangents: list[np.ndarray]) -> float:
    """The sum of ``|v * f(x)|`` over every output element, each output in units of its epsilon."""
    size = 0.0
    for o, v in zip(outs, cotangents, strict=True):
        values = _host(o.data)
        if values.dtype.kind in "fc":
            size += float(np.finfo(values.dtype).eps) * float(np.sum(np.abs(values * v)))
    return size


def _gradcheck(
    fn: Callable[..., Any],
    inputs: Any,
    eps: float,
    atol: float,
    rtol: float,
    raise_exception: bool,
    rng: int,
    check_forward_ad: bool,
    stacklevel: int,
    both_paths: bool = True,
) -> bool:
    """``gradcheck``; ``stacklevel`` for ``_promote``'s warning (0: none); ``both_paths=False``
    checks the first-order backward only."""
    args = _promote(_as_tuple(inputs), stacklevel)
    checked = [i for i, x in enumerate(args) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad, so there is nothing to check")
    generator = np.random.default_rng(rng)
    outs = _outputs(fn, args)
    # An output in lower precision from float64 inputs rounds the finite differences at its
    # precision: a right rule can fail, and the message must say why.
    low = sorted({str(o.dtype) for o in outs if o.requires_grad and _dtype_name(o) not in ("float64", "complex128")})
    coarse = (
        f" (fn returned {', '.join(low)} output from float64 inputs: finite differences in that "
        "precision are too coarse to judge a gradient; compute in float64)"
        if low
        else ""
    )
    # Random signs, magnitudes in [0.5, 1.5]: a normal draw near 0 would hide the output element
    # it weighs (an element wrong by a factor 2 passed where v was 0.001).
    cotangents = [generator.choice([-1.0, 1.0], o.shape) * generator.uniform(0.5, 1.5, o.shape) for o in outs]
    # What rounding the pairing <v, f(x)> can move by: a difference quotient resolves nothing finer
    # than it over the step. Where f's terms are large beside the derivative checked (a product
    # of six values near 10 is 1e5; the derivative by a cotangent of a term beside it, 0.13), a
    # right rule failed by that noise: 0.1329 against 0.1327, with a pairing of 1e6.
    noise = _ROUNDOFF * _pairing_size(outs, cotangents)
    # Both backward paths: a first-order backward may run rules on plain arrays
    # (defvjp(plain_arrays=True)) while create_graph=True runs them on Tensors, so a rule can be
    # right on one and wrong on the other; each is checked against the same finite differences.
    try:
        paths = {"first-order backward": _analytic(fn, args, checked, cotangents, create_graph=False)}
        if both_paths:
            paths["create_graph backward"] = _analytic(fn, args, checked, cotangents, create_graph=True)
    except _Refused as refused:
        return _fail(str(refused), raise_exception)

    def pairing_at(index: int, values: np.ndarray) -> float:
        trial = list(args)
        trial[index] = _like(values, args[index], requires_grad=True)
        return _pairing(_outputs(fn, tuple(trial)), cotangents)

    for slot, index in enumerate(checked):
        x = _host(args[index].data)
        scale = _scale(x)
        gradients = {}
        for path, analytic in paths.items():
            g = analytic[slot]
            if g is not None and _where(g.data) != _where(args[index].data):
                return _fail(
                    f"gradcheck: gradient of input {index} ({path}) is a {_where(g.data)} array, "
                    f"but the input is a {_where(args[index].data)} array",
                    raise_exception,
                )
            a = np.zeros(x.shape) if g is None else _host(g.data)
            if a.shape != x.shape:
                return _fail(
                    f"gradcheck: gradient of input {index} ({path}) has shape {a.shape}, expected {x.shape}",
                    raise_exception,
                )
            gradients[path] = a
        if x.size <= FULL_CHECK_MAX_ELEMENTS:
            for element in np.ndindex(x.shape):
                step = np.zeros(x.shape)
                step[element] = eps * scale[element]
                plus, minus = x + step, x - step
                # The step actually taken: x +- eps rounds (by up to 0.2% at 3e7 with eps 1e-6).
                taken = plus[element] - minus[element]
                numeric = (pairing_at(index, plus) - pairing_at(index, minus)) / taken
                for path, a in gradients.items():
                    if not _close(a[element], numeric, atol + noise / taken, rtol):
                        return _fail(
                            f"gradcheck: input {index} (shape {x.shape}), element {element}: "
                            f"analytic {a[element]!r} ({path}) vs numeric {numeric!r}{coarse}",
                            raise_exception,
                        )
        else:
            blocks = np.array_split(generator.permutation(x.size), min(-(-x.size // BLOCK_SIZE), MAX_BLOCKS))
            for k, block in enumerate(blocks):
                # One direction per block of random elements, random signs and magnitudes in
                # [0.5, 1.5]: an element wrong by a factor shows as its own error, compared with
                # the size of its block's terms, not of the whole input's.
                flat = np.zeros(x.size)
                flat[block] = generator.choice([-1.0, 1.0], block.size) * generator.uniform(0.5, 1.5, block.size)
                direction = flat.reshape(x.shape)
                plus, minus = x + eps * scale * direction, x - eps * scale * direction
                taken = (plus - minus) / (2 * eps)  # the direction actually taken (x +- eps d rounds)
                numeric = (pairing_at(index, plus) - pairing_at(index, minus)) / (2 * eps)
                for path, a in gradients.items():
                    projected = float(np.sum(a * taken))
                    # the per-element tolerances added in quadrature over the block
                    terms = float(np.linalg.norm(a * taken))
                    tolerance = atol * float(np.linalg.norm(taken)) + rtol * max(abs(numeric), terms)
                    tolerance += noise / (2 * eps)
                    if not (np.isfinite(projected) and np.isfinite(numeric)) or abs(projected - numeric) > tolerance:
                        if projected == numeric:  # (the same infinity)
                            continue
                        shown = [tuple(int(i) for i in np.unravel_index(e, x.shape)) for e in np.sort(block)[:4]]
                        elements = ", ".join(map(str, shown)) + (", ..." if block.size > 4 else "")
                        return _fail(
                            f"gradcheck: input {index} (shape {x.shape}), random block {k} of {len(blocks)} "
                            f"({block.size} elements: {elements}): "
                            f"analytic {projected!r} ({path}) vs numeric {numeric!r}{coarse}",
                            raise_exception,
                        )
    if not check_own_dtype(fn, _as_tuple(inputs), args, checked, cotangents, paths, rtol, raise_exception):
        return False
    if check_forward_ad:
        if not check_forward(fn, args, checked, outs, generator, eps, atol, rtol, raise_exception):
            return False
        return check_own_dtype_forward(fn, _as_tuple(inputs), args, checked, rng, rtol, raise_exception)
    return True


def gradgradcheck(
    fn: Callable[..., Any],
    inputs: Any,
    grad_outputs: Sequence[Any] | None = None,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    rng: int = 0,
    check_forward_ad: bool = True,
) -> bool:
    """Check second derivatives: ``gradcheck`` of the vjp of ``fn``, built with ``create_graph``.

    ``gradcheck(fn, inputs, check_forward_ad=False)`` runs first, so the first derivatives (on
    both backward paths) are checked too: the derivatives of a wrong first derivative would
    agree with it.

    The checked function maps ``(inputs..., v)`` to ``d<v, fn(inputs)>/d(inputs)``, so both the
    dependence on the inputs (Hessian terms) and on the cotangent ``v`` are checked.
    ``grad_outputs`` fixes ``v``; by default it is drawn from ``rng``. ``check_forward_ad`` as
    in ``gradcheck``: for the vjp, that checks forward-over-reverse (the jvp rules of the ops the
    vjp rules call); it also checks the derivatives of ``fn``'s jvp, in reverse and in forward
    mode (reverse-over-forward, forward-over-forward: a jvp rule that is right but not
    differentiable fails).

    >>> import autobp as ab
    >>> ab.gradgradcheck(lambda x: (x ** 3).sum(), ab.randn(3, requires_grad=True, rng=0))
    True
    """
    # The first derivative first: the check below differentiates it, and a wrong one (on either
    # backward path) has derivatives consistent with itself, which that check alone would pass.
    # (Reverse mode only: fn's forward mode is gradcheck's; here it is checked over the vjp.)
    if not _gradcheck(fn, inputs, eps, atol, rtol, raise_exception, rng, False, stacklevel=0):
        return False  # (no promotion warning: _promote below gives it, once)
    args = _promote(_as_tuple(inputs), stacklevel=3)
    checked = [i for i, x in enumerate(args) if isinstance(x, Tensor) and x.requires_grad]
    outs = _outputs(fn, args)
    generator = np.random.default_rng(rng + 1)
    if grad_outputs is None:
        vs = [_like(generator.standard_normal(o.shape), o, requires_grad=True) for o in outs if o.requires_grad]
    else:
        vs = [Tensor(v, dtype=np.float64, requires_grad=True) for v in _as_tuple(grad_outputs)]
    n = len(args)

    def first_derivative(*values: Any) -> tuple[Tensor, ...]:
        xs, cot = values[:n], values[n:]
        results = _outputs(fn, xs)
        diff_outs = [o for o in results if o.requires_grad]
        grads = grad(diff_outs, [xs[i] for i in checked], grad_outputs=list(cot), create_graph=True, allow_unused=True)
        # An input the vjp does not depend on contributes a constant zero (still a valid output).
        return tuple(g if g is not None else xs[i] * 0.0 for g, i in zip(grads, checked, strict=True))

    # The first-order backward of first_derivative already runs every rule on Tensors (its graph
    # is made of the ops the rules called); create_graph over it would check third derivatives.
    if not _gradcheck(
        first_derivative,
        (*args, *vs),
        eps,
        atol,
        rtol,
        raise_exception,
        rng,
        check_forward_ad,
        stacklevel=0,
        both_paths=False,
    ):
        return False
    if not check_forward_ad:
        return True
    return _check_jvp_derivatives(fn, args, checked, generator, eps, atol, rtol, raise_exception, rng)


def _check_jvp_derivatives(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    checked: list[int],
    generator: np.random.Generator,
    eps: float,
    atol: float,
    rtol: float,
    raise_exception: bool,
    rng: int,
) -> bool:
    """The derivatives of ``fn``'s jvp: ``gradcheck`` of ``(inputs..., u) -> J(inputs) u``, which
    differentiates the jvp rules in reverse (reverse-over-forward) and in forward mode
    (forward-over-forward). The vjp checks above never run a jvp rule under a derivative, so a
    jvp rule right at first order but not differentiable (written with ``.detach()`` or numpy)
    passed, and ``jacfwd(jacfwd(f))`` came out wrong. Skipped where ``fn`` reaches an op without
    a jvp rule."""
    from autobp.forward import ForwardModeError  # (autobp.functional imports much: only when used)
    from autobp.functional import jvp

    n = len(args)
    us = [_like(generator.standard_normal(args[i].shape), args[i], requires_grad=True) for i in checked]

    def tangent(*values: Any) -> tuple[Tensor, ...]:
        xs, directions = values[:n], values[n:]

        def on_checked(*moved: Tensor) -> Any:
            trial = list(xs)
            for i, value in zip(checked, moved, strict=True):
                trial[i] = value
            return fn(*trial)

        # create_graph: the tangents stay differentiable in the inputs and the directions
        found = jvp(on_checked, tuple(xs[i] for i in checked), tuple(directions), create_graph=True)[1]
        return _as_tuple(found)

    try:
        tangent(*args, *us)
    except ForwardModeError:
        return True  # an op without a jvp rule: forward mode cannot run fn, nothing to check
    try:
        return _gradcheck(tangent, (*args, *us), eps, atol, rtol, True, rng, True, stacklevel=0, both_paths=False)
    except GradcheckError as error:
        detail = str(error).removeprefix("gradcheck: ")
        return _fail(
            f"gradgradcheck: the derivative of fn's jvp (inputs {n} on are the tangents) disagrees: {detail}",
            raise_exception,
        )
