"""The checks ``gradcheck`` adds after the vjp's: the gradient and the jvp computed in a
lower-precision input's own dtype (``check_own_dtype``, ``check_own_dtype_forward``), and forward
mode against central differences (``check_forward``). All report through ``gradcheck_parts._fail``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from autobp import backends
from autobp.tensor import Tensor
from autobp.testing.gradcheck_parts import (
    _analytic,
    _as_tuple,
    _close_elements,
    _fail,
    _host,
    _like,
    _outputs,
    _Refused,
    _scale,
)


def _own_dtypes(
    original: tuple[Any, ...], args: tuple[Any, ...], checked: list[int]
) -> tuple[dict[int, str], list[int], tuple[Any, ...]]:
    """The checked inputs' own dtypes, those below float64, and ``args`` with each of those
    replaced by a copy in its own dtype that requires grad."""
    own = {i: backends.namespace(original[i].data).dtype_name(original[i].dtype) for i in checked}
    low = [i for i in checked if own[i] != "float64"]
    copies = tuple(
        _like(_host(original[i].data), original[i], same_dtype=True, requires_grad=True) if i in low else x
        for i, x in enumerate(args)
    )
    return own, low, copies


def check_own_dtype(
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
    own, low, copies = _own_dtypes(original, args, checked)
    if not low:
        return True
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
            element = _first_far(a, reference, max(rtol, float(np.sqrt(np.finfo(own[index]).eps))))
            if element is not None:
                return _fail(
                    f"gradcheck: input {index} (shape {a.shape}), element {element}: the gradient computed in "
                    f"{own[index]} ({path}) is {a[element]!r}, the float64 one {reference[element]!r}",
                    raise_exception,
                )
    return True


def _first_far(a: np.ndarray, reference: np.ndarray, tol: float) -> tuple[int, ...] | None:
    """The first element of ``a`` (computed in a lower precision) farther from the float64
    ``reference`` than rounding in that dtype allows: ``tol`` relative to each element and to the
    largest one (cancellation near zero); None when every element is within it."""
    scale = float(np.max(np.abs(reference), initial=0.0))
    wrong = np.argwhere(~(np.abs(a - reference) <= tol * (np.abs(reference) + scale)))
    return tuple(int(i) for i in wrong[0]) if wrong.size else None


def check_forward(
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


def check_own_dtype_forward(
    fn: Callable[..., Any],
    original: tuple[Any, ...],
    args: tuple[Any, ...],
    checked: list[int],
    rng: int,
    rtol: float,
    raise_exception: bool,
) -> bool:
    """Forward mode in lower-precision inputs' own dtype, as ``check_own_dtype`` does for the vjp:
    ``jvp`` on copies in their dtype, along a random tangent, against ``jvp`` on the float64
    copies (checked against central differences by ``check_forward``). A jvp rule wrong only in
    float32 passed every run before. True also when forward mode cannot run ``fn``."""
    from autobp.forward import ForwardModeError  # (autobp.functional imports much: only when used)
    from autobp.functional import jvp

    own, low, copies = _own_dtypes(original, args, checked)
    if not low:
        return True
    generator = np.random.default_rng([rng, 1])  # (its own stream: the other checks' draws stay as they were)
    directions = {
        i: generator.choice([-1.0, 1.0], args[i].shape) * generator.uniform(0.5, 1.5, args[i].shape) for i in checked
    }

    def tangents_of(values: tuple[Any, ...]) -> tuple[Any, ...]:
        def on_checked(*moved: Tensor) -> Any:
            trial = list(values)
            for i, value in zip(checked, moved, strict=True):
                trial[i] = value.requires_grad_() if value.is_leaf and not value.requires_grad else value
            return fn(*trial)

        tangents = tuple(_like(directions[i], values[i], same_dtype=True) for i in checked)
        return _as_tuple(jvp(on_checked, tuple(values[i] for i in checked), tangents)[1])

    try:
        found, wanted = tangents_of(copies), tangents_of(args)
    except ForwardModeError:
        return True
    tol = max([rtol, *(float(np.sqrt(np.finfo(own[i]).eps)) for i in low)])
    for k, (got, want) in enumerate(zip(found, wanted, strict=True)):
        if got is None or want is None:
            continue
        a, reference = _host(got.data).astype(np.float64), _host(want.data)
        element = _first_far(a, reference, tol)
        if element is not None:
            return _fail(
                f"gradcheck: forward mode (jvp) in the inputs' own dtypes, output {k} (shape {a.shape}), element "
                f"{element}: {a[element]!r}, the float64 one {reference[element]!r}",
                raise_exception,
            )
    return True
