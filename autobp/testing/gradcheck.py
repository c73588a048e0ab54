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

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from autobp import backends
from autobp.engine import grad
from autobp.tensor import Tensor

__all__ = ["GradcheckError", "gradcheck", "gradgradcheck"]

# Inputs with more elements than this are checked along random directions instead of per element.
FULL_CHECK_MAX_ELEMENTS = 64
# Larger inputs are checked along one random direction per block of about BLOCK_SIZE random
# elements (at most MAX_BLOCKS, so at most 2 * MAX_BLOCKS evaluations, as an input of 64 elements):
# one element wrong by a factor 2 in 10,000 then fails nearly always (tests/test_testing_kit.py).
BLOCK_SIZE = 32
MAX_BLOCKS = 64


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
                numeric = (pairing_at(index, plus) - pairing_at(index, minus)) / (plus[element] - minus[element])
                for path, a in gradients.items():
                    if not _close(a[element], numeric, atol, rtol):
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
    if not _check_own_dtype(fn, _as_tuple(inputs), args, checked, cotangents, paths, rtol, raise_exception):
        return False
    if check_forward_ad:
        return _check_forward(fn, args, checked, outs, generator, eps, atol, rtol, raise_exception)
    return True


def _check_own_dtype(
    fn: Callable[..., Any],
    original: tuple[Any, ...],
    args: tuple[Any, ...],
    checked: list[int],
    cotangents: list[np.ndarray],
    paths: dict[str, tuple[Tensor | None, ...]],
    rtol: float,
    raise_exception: bool,
) -> bool:
    """Lower-precision inputs (float32, float16): the finite differences ran on float64 copies,
    which never run a rule in the inputs' own dtype, and a rule can be wrong only there. The
    gradients on copies in their own dtype must have that dtype and agree with the float64 ones
    (checked against finite differences by then) to a tolerance suited to the dtype."""
    own = {i: backends.namespace(original[i].data).dtype_name(original[i].dtype) for i in checked}
    low = [i for i in checked if own[i] != "float64"]
    if not low:
        return True
    copies = tuple(
        _like(_host(original[i].data), original[i], same_dtype=True, requires_grad=True) if i in low else x
        for i, x in enumerate(args)
    )
    for path, wanted in paths.items():
        try:
            found = _analytic(fn, copies, checked, cotangents, create_graph=path == "create_graph backward")
        except _Refused as refused:
            return _fail(str(refused), raise_exception)
        for slot, index in enumerate(checked):
            g = found[slot]
            if index not in low or g is None:
                continue
            dtype = backends.namespace(g.data).dtype_name(g.dtype)
            if dtype != own[index]:
                return _fail(
                    f"gradcheck: the gradient of {own[index]} input {index} ({path}) has dtype {dtype}",
                    raise_exception,
                )
            a = _host(g.data)
            reference = np.zeros(a.shape) if wanted[slot] is None else _host(wanted[slot].data)  # type: ignore[union-attr]
            # Rounding in the dtype, relative to each element and to the largest one (cancellation
            # near zero): sqrt(eps) of the dtype, or rtol if looser.
            tol = max(rtol, float(np.sqrt(np.finfo(own[index]).eps)))
            scale = float(np.max(np.abs(reference), initial=0.0))
            wrong = np.argwhere(~(np.abs(a - reference) <= tol * (np.abs(reference) + scale)))
            if wrong.size:
                element = tuple(int(i) for i in wrong[0])
                return _fail(
                    f"gradcheck: input {index} (shape {a.shape}), element {element}: the gradient computed in "
                    f"{own[index]} ({path}) is {a[element]!r}, the float64 one {reference[element]!r}",
                    raise_exception,
                )
    return True


def _check_forward(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    checked: list[int],
    outs: tuple[Tensor, ...],
    generator: np.random.Generator,
    eps: float,
    atol: float,
    rtol: float,
    raise_exception: bool,
) -> bool:
    """Forward mode against central differences: ``J u`` from ``jvp`` along a random tangent ``u``
    (of every checked input at once) against ``(f(x + eps u) - f(x - eps u)) / (2 eps)``, output
    element by output element. True also when forward mode cannot run ``fn`` (an op without a
    jvp rule)."""
    from autobp.forward import ForwardModeError  # (autobp.functional imports much: only when used)
    from autobp.functional import jvp

    def on_checked(*values: Tensor) -> Any:
        trial = list(args)
        for i, value in zip(checked, values, strict=True):
            # jvp's own copies, which require no grad: fn gets inputs as gradcheck's other calls
            # do (a function that differentiates them, as gradgradcheck's does, needs that).
            trial[i] = value.requires_grad_() if value.is_leaf and not value.requires_grad else value
        return fn(*trial)

    compared = [k for k, o in enumerate(outs) if o.requires_grad]
    hosts = {i: _host(args[i].data) for i in checked}
    # Random signs, magnitudes in [0.5, 1.5]: no element's part is too small to see, and no two
    # wrong Jacobian entries cancel for every draw.
    directions = {
        i: generator.choice([-1.0, 1.0], x.shape) * generator.uniform(0.5, 1.5, x.shape) for i, x in hosts.items()
    }

    def mismatch(moved: list[int]) -> str | None:
        """Why jvp along the inputs ``moved`` (the others fixed) disagrees, or None."""
        plus, minus, tangents = list(args), list(args), []
        for i in checked:
            step = eps * _scale(hosts[i]) * directions[i] if i in moved else np.zeros(hosts[i].shape)
            plus[i] = _like(hosts[i] + step, args[i], requires_grad=True)
            minus[i] = _like(hosts[i] - step, args[i], requires_grad=True)
            # the step actually taken, after rounding, as the tangent
            tangents.append(_like((_host(plus[i].data) - _host(minus[i].data)) / (2 * eps), args[i]))
        _, found = jvp(on_checked, tuple(args[i] for i in checked), tuple(tangents))
        analytic = _as_tuple(found)
        outs_plus, outs_minus = _outputs(fn, tuple(plus)), _outputs(fn, tuple(minus))
        along = f"input {moved[0]}" if len(moved) == 1 else f"inputs {moved}"
        for k in compared:
            numeric = (_host(outs_plus[k].data) - _host(outs_minus[k].data)) / (2 * eps)
            a = _host(analytic[k].data)
            if a.shape != numeric.shape:
                shapes = f"has shape {a.shape}, not {numeric.shape}"
                return f"forward mode (jvp) along {along}: output {k}'s tangent {shapes}"
            wrong = np.argwhere(~_close_elements(a, numeric, atol, rtol))
            if wrong.size:
                element = tuple(int(i) for i in wrong[0])
                return (
                    f"forward mode (jvp) along {along}, output {k} (shape {numeric.shape}), element {element}: "
                    f"analytic {a[element]!r} vs numeric {numeric[element]!r}"
                )
        return None

    try:
        # All inputs along one tangent: one jvp, whatever the number of inputs; only a failure
        # moves them one at a time, to name the input whose rule is wrong.
        found = mismatch(checked)
        if found is not None and len(checked) > 1:
            found = next((m for m in (mismatch([i]) for i in checked) if m is not None), found)
    except ForwardModeError:
        return True  # an op without a jvp rule: forward mode cannot run fn, nothing to check
    return True if found is None else _fail(f"gradcheck: {found}", raise_exception)


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
    vjp rules call).

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
    return _gradcheck(
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
    )
