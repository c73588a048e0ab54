"""autobp.forward (``ab.forward_ad``) and the forward-mode functional transforms.

Oracles: numpy derivatives written out by hand, reverse mode (``ab.grad``), and the other
strategy of ``jacobian``. The per-op rules are checked over the registry in test_ops_jvp.py.
"""

from __future__ import annotations

import copy
import gc
import pickle
import re
import tracemalloc
import weakref
from typing import Any

import numpy as np
import pytest

import autobp as ab
from autobp.ops.registry import op

fwd = ab.forward_ad


def test_make_dual_carries_a_tangent_through_a_chain() -> None:
    x0, t0 = np.array([0.3, -1.2, 2.0]), np.array([1.0, 0.5, -2.0])
    with fwd.dual_level():
        x = fwd.make_dual(ab.tensor(x0), ab.tensor(t0))
        y = ab.sin(x) * ab.exp(x) + x**3
        primal, tangent = fwd.unpack_dual(y)
    expected = (np.cos(x0) * np.exp(x0) + np.sin(x0) * np.exp(x0) + 3 * x0**2) * t0
    np.testing.assert_allclose(tangent.data, expected, rtol=1e-12)
    np.testing.assert_allclose(primal.data, np.sin(x0) * np.exp(x0) + x0**3, rtol=1e-12)


def test_a_closed_over_primal_carries_no_tangent() -> None:
    # make_dual gives a new Tensor: the primal it was made from stays a constant.
    p = ab.tensor([2.0, 3.0])
    with fwd.dual_level():
        x = fwd.make_dual(p, ab.tensor([1.0, 1.0]))
        assert fwd.unpack_dual(x * p).tangent.tolist() == [2.0, 3.0]
        assert fwd.unpack_dual(p * p).tangent is None
    _, tangent = ab.functional.jvp(lambda a: a * p, p, ab.tensor([1.0, 1.0]))
    assert tangent.tolist() == [2.0, 3.0]


def test_forward_of_forward_gives_the_second_derivative() -> None:
    # d^2/dx^2 of x^4 at x = 1.5 is 12 x^2 = 27.
    def derivative(x: ab.Tensor) -> ab.Tensor:
        return ab.functional.jvp(lambda z: z**4, x, ab.tensor(1.0), create_graph=True)[1]

    _, second = ab.functional.jvp(derivative, ab.tensor(1.5), ab.tensor(1.0))
    assert second.item() == pytest.approx(27.0, rel=1e-12)


def test_reverse_over_forward_differentiates_the_tangent() -> None:
    x = ab.tensor([0.5, -0.7], requires_grad=True)
    _, tangent = ab.functional.jvp(lambda z: ab.tanh(z).sum(), x, ab.tensor([1.0, 1.0]), create_graph=True)
    (g,) = ab.grad(tangent, [x])
    # d/dx of sum(1 - tanh^2 x) = -2 tanh x (1 - tanh^2 x)
    t = np.tanh(x.data)
    np.testing.assert_allclose(g.data, -2 * t * (1 - t**2), rtol=1e-12)


def _mlp_loss(w: ab.Tensor, b: ab.Tensor, x: np.ndarray) -> ab.Tensor:
    return (ab.tanh(x @ w + b) ** 2).sum()


def test_tangents_never_share_memory_with_the_directions_or_each_other() -> None:
    # add's jvp hands the tangent through: jvp(x + 0) returned the direction's own array, so an
    # in-place write to the tangent changed the caller's v.
    x, v = ab.tensor([1.0, 2.0]), ab.tensor([0.5, 0.25])
    _, t = ab.functional.jvp(lambda x: x + 0.0, x, v)
    _, (t1, t2) = ab.functional.jvp(lambda x: (x + 0.0, x - 0.0), x, v)
    _, hv = ab.functional.hvp(lambda x: (x * x).sum() * 0.5, x, v)
    for a, b in [(t, v), (t1, v), (t2, v), (t1, t2), (hv, v)]:
        assert not np.shares_memory(a.data, b.data)
    t.add_(1.0)
    assert v.tolist() == [0.5, 0.25] and t.tolist() == [1.5, 1.25]


def test_hvp_and_hessian_match_reverse_over_reverse() -> None:
    rng = np.random.default_rng(0)
    w, b, x = ab.tensor(rng.standard_normal((3, 2))), ab.tensor(rng.standard_normal(2)), rng.standard_normal((4, 3))
    v = (ab.tensor(rng.standard_normal((3, 2))), ab.tensor(rng.standard_normal(2)))
    _, products = ab.functional.hvp(lambda w, b: _mlp_loss(w, b, x), (w, b), v)
    leaves = [ab.tensor(w.data, requires_grad=True), ab.tensor(b.data, requires_grad=True)]
    grads = ab.grad(_mlp_loss(*leaves, x), leaves, create_graph=True)
    expected = ab.grad((grads[0] * v[0]).sum() + (grads[1] * v[1]).sum(), leaves)
    for got, want in zip(products, expected, strict=True):
        np.testing.assert_allclose(got.data, want.data, rtol=1e-10, atol=1e-12)
    _, other = ab.functional.hvp(lambda w, b: _mlp_loss(w, b, x), (w, b), v, strategy="reverse-over-forward")
    for got, want in zip(other, expected, strict=True):
        np.testing.assert_allclose(got.data, want.data, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="hvp: strategy"):
        ab.functional.hvp(lambda w: _mlp_loss(w, b, x), w, v[0], strategy="sideways")
    hessian = ab.functional.hessian(lambda w: _mlp_loss(w, b, x), w)
    reverse = ab.functional.jacobian(
        lambda w: ab.grad(_mlp_loss(w, b, x), [w], create_graph=True)[0], w, strategy="reverse-mode"
    )
    np.testing.assert_allclose(hessian.data, reverse.data, rtol=1e-10, atol=1e-12)


def test_jacobian_picks_forward_mode_for_fewer_inputs_than_outputs() -> None:
    calls = []

    def widen(x: ab.Tensor) -> ab.Tensor:  # 2 inputs -> 6 outputs
        calls.append(1)
        return ab.concatenate([ab.sin(x), x * x, ab.exp(x)])

    x = ab.tensor([0.2, -0.4])
    auto = ab.functional.jacobian(widen, x)
    assert len(calls) == 1 + 2  # one call to see the shapes, then one jvp per input element
    reverse = ab.functional.jacobian(widen, x, strategy="reverse-mode")
    forward = ab.functional.jacfwd(widen, x)
    np.testing.assert_allclose(auto.data, reverse.data, rtol=1e-12)
    np.testing.assert_allclose(forward.data, reverse.data, rtol=1e-12)
    calls.clear()
    ab.functional.jacobian(lambda x: widen(x).sum(), x)  # 2 inputs -> 1 output: reverse
    assert len(calls) == 1
    with pytest.raises(ValueError, match="strategy"):
        ab.functional.jacobian(widen, x, strategy="sideways")


def test_jacfwd_of_several_inputs_and_outputs_matches_reverse() -> None:
    def func(a: ab.Tensor, b: ab.Tensor) -> tuple[ab.Tensor, ab.Tensor]:
        return a @ b, ab.sum(a * a, axis=0)

    rng = np.random.default_rng(1)
    inputs = (ab.tensor(rng.standard_normal((2, 3))), ab.tensor(rng.standard_normal((3, 2))))
    forward = ab.functional.jacfwd(func, inputs)
    reverse = ab.functional.jacobian(func, inputs, strategy="reverse-mode")
    for row_f, row_r in zip(forward, reverse, strict=True):
        for block_f, block_r in zip(row_f, row_r, strict=True):
            assert block_f.shape == block_r.shape
            np.testing.assert_allclose(block_f.data, block_r.data, rtol=1e-12, atol=1e-14)


def _random_calls() -> dict[str, Any]:
    """Calls of the transforms that run func once per input element, on funcs drawing a new
    sample at every call from a Generator made outside them. Fresh generators on every use."""
    x = ab.tensor([1.0, 2.0, 3.0])
    drop = np.random.default_rng(0)  # dropout's mask differs between calls
    swap = np.random.default_rng(0)  # the value stays 6.0 at x = 1; only the gradient shows the draw

    def dropout(t: ab.Tensor) -> ab.Tensor:
        return ab.nn.functional.dropout(t, 0.5, rng=drop)

    def shuffled(t: ab.Tensor) -> ab.Tensor:
        return (t * ab.tensor(swap.permutation([1.0, 2.0, 3.0]))).sum()

    def wide(t: ab.Tensor) -> ab.Tensor:  # 3 inputs, 6 outputs: jacobian's "auto" picks forward mode
        return ab.concatenate([dropout(t), t])

    def grows(t: ab.Tensor) -> Any:  # a Tensor at the first call, a tuple after
        calls.append(t)
        return t if len(calls) == 1 else (t, t)

    calls: list[ab.Tensor] = []

    return {
        "jacfwd": lambda: ab.functional.jacfwd(dropout, x),
        "jacfwd, tuple": lambda: ab.functional.jacfwd(lambda a, b: (a * b, dropout(a)), (x, x)),
        "jacfwd, another structure": lambda: ab.functional.jacfwd(grows, x),
        "jacobian, auto": lambda: ab.functional.jacobian(wide, x),
        "jacobian, forward-mode": lambda: ab.functional.jacobian(dropout, x, strategy="forward-mode"),
        "hessian": lambda: ab.functional.hessian(lambda t: (dropout(t) ** 3).sum(), x),
        "hessian, same value": lambda: ab.functional.hessian(shuffled, ab.ones(3)),
        "hessian, tuple": lambda: ab.functional.hessian(lambda a, b: (dropout(a) * b).sum(), (x, x)),
    }


@pytest.mark.parametrize("name", list(_random_calls()))
def test_a_func_drawing_random_numbers_is_refused_not_mixed_into_one_jacobian(name: str) -> None:
    # jacfwd and hessian call func once per input element and assemble the columns: a new dropout
    # mask at every call once gave a Jacobian whose columns came from different functions,
    # without an error. Every call computes the same primal values; each is checked.
    transform = name.split(",")[0]
    advice = {
        "jacfwd": 'jacobian(func, inputs, strategy="reverse-mode")',
        "jacobian": 'pass strategy="reverse-mode"',
        "hessian": "jacobian(lambda x: ab.grad(func(x), [x], create_graph=True)[0], x",
    }[transform]
    differs = "func's gradient" if name == "hessian, same value" else ""
    message = rf"^{transform}: func gave different values on repeated calls \({differs}.*element 1.*{re.escape(advice)}"
    with pytest.raises(RuntimeError, match=message):
        _random_calls()[name]()


def test_the_ways_out_the_error_names_give_one_samples_derivatives() -> None:
    x = ab.tensor([1.0, 2.0, 3.0])
    # A seed inside func: the same mask at every call, which jacfwd and hessian accept.
    seeded = ab.functional.jacfwd(lambda t: ab.nn.functional.dropout(t, 0.5, rng=3), x)
    mask = ab.nn.functional.dropout(ab.ones(3), 0.5, rng=3).numpy()
    np.testing.assert_array_equal(seeded.numpy(), np.diag(mask))
    ab.functional.hessian(lambda t: (ab.nn.functional.dropout(t, 0.5, rng=3) ** 3).sum(), x)
    # Reverse mode calls func once: one sample, whose Jacobian is diagonal with one mask.
    rng = np.random.default_rng(0)
    reverse = ab.functional.jacobian(lambda t: ab.nn.functional.dropout(t, 0.5, rng=rng), x, strategy="reverse-mode")
    diagonal = np.diag(reverse.numpy())
    assert set(diagonal) <= {0.0, 2.0} and np.array_equal(reverse.numpy(), np.diag(diagonal))

    # hessian's way out (one call differentiated twice) is the Hessian:
    def cubic(t: ab.Tensor) -> ab.Tensor:
        return (t**3).sum() + t[0] * t[1]

    twice = ab.functional.jacobian(lambda t: ab.grad(cubic(t), [t], create_graph=True)[0], x, strategy="reverse-mode")
    np.testing.assert_allclose(twice.numpy(), ab.functional.hessian(cubic, x).numpy(), rtol=1e-12)


def test_deterministic_nan_outputs_are_not_taken_for_random_draws() -> None:
    # NaN where the first call had NaN is the same value.
    x = ab.tensor([1.0, -2.0, 3.0])
    jac = ab.functional.jacfwd(lambda t: ab.concatenate([ab.log(t), ab.sqrt(t) * 0.0]), x)
    assert np.isnan(jac.numpy()).any()
    ab.functional.jacobian(lambda t: ab.concatenate([ab.log(t), t]), x)  # auto: forward mode
    # func's value and gradient (log(t) + 1) are NaN at every call; the Hessian, 1 / t, is not
    hess = ab.functional.hessian(lambda t: (ab.log(t) * t).sum(), x)
    np.testing.assert_allclose(hess.numpy(), np.diag(1.0 / x.numpy()), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_last_bit_differences_between_calls_pass_and_another_sample_does_not(dtype: str) -> None:
    # A deterministic func can differ in the last bits between calls where its library sums in a
    # varying order (atomic adds on a GPU); another random draw differs in the leading digits.
    eps = float(np.finfo(dtype).eps)
    x = ab.tensor(np.array([1.0, 2.0, 3.0], dtype=dtype))

    def jittered(size: float) -> Any:
        calls = iter(range(100))

        def func(t: ab.Tensor) -> ab.Tensor:
            return t * 3.0 + size * next(calls)

        return func

    jac = ab.functional.jacfwd(jittered(4 * eps), x)  # a few units in the last place of 3.0..9.0
    np.testing.assert_allclose(jac.numpy(), 3.0 * np.eye(3), rtol=1e-6)
    with pytest.raises(RuntimeError, match="different values on repeated calls"):
        ab.functional.jacfwd(jittered(0.05), x)


def test_an_output_that_ignores_the_inputs_has_a_zero_tangent() -> None:
    _, tangent = ab.functional.jvp(lambda x: ab.ones(3) * 2.0, ab.tensor([1.0]), ab.tensor([1.0]))
    assert tangent.tolist() == [0.0, 0.0, 0.0]


def test_a_custom_op_without_a_jvp_rule_is_refused_by_name() -> None:
    @op("test_forward_cube_no_jvp")
    def cube(x: Any) -> np.ndarray:
        """x ** 3. Shapes: any -> same."""
        return np.asarray(x) ** 3

    cube.defvjp(lambda grad, out, x: grad * 3 * x * x)
    try:
        with pytest.raises(NotImplementedError, match=r"test_forward_cube_no_jvp: forward mode .*defjvp"):
            ab.functional.jvp(cube, ab.tensor([1.0, 2.0]), ab.tensor([1.0, 1.0]))
        cube.defjvp(lambda tangent, out, x: tangent * 3 * x * x)  # d x^3 = 3 x^2 dx
        _, tangent = ab.functional.jvp(cube, ab.tensor([1.0, 2.0]), ab.tensor([1.0, 1.0]))
        assert tangent.tolist() == [3.0, 12.0]
    finally:
        del ab.REGISTRY["test_forward_cube_no_jvp"]


def test_misuse_is_explained() -> None:
    with pytest.raises(RuntimeError, match="no forward-mode level is active"):
        fwd.make_dual(ab.tensor([1.0]), ab.tensor([1.0]))
    with fwd.dual_level():
        with pytest.raises(ValueError, match=r"make_dual: tangent has shape \(2,\) but primal has shape \(1,\)"):
            fwd.make_dual(ab.tensor([1.0]), ab.tensor([1.0, 2.0]))
        with pytest.raises(TypeError, match="floating-point"):
            fwd.make_dual(ab.tensor([1]), ab.tensor([1]))


def test_an_in_place_change_makes_the_tangent_stale() -> None:
    with fwd.dual_level():
        x = fwd.make_dual(ab.tensor([1.0, 2.0]), ab.tensor([1.0, 1.0]))
        x.add_(1.0)
        with pytest.raises(RuntimeError, match=r"tensor float64\[2\] was modified in place"):
            x * 2.0


def test_tangents_do_not_outlive_their_level() -> None:
    with fwd.dual_level():
        x = fwd.make_dual(ab.tensor([1.0]), ab.tensor([1.0]))
    with fwd.dual_level():
        assert fwd.unpack_dual(x * 2.0).tangent is None


def test_a_tensor_from_an_ended_level_drops_that_entry_when_given_a_new_tangent() -> None:
    with fwd.dual_level() as first:
        x = fwd.make_dual(ab.tensor([1.0]), ab.tensor([5.0]))
    with fwd.dual_level() as second:
        assert fwd.unpack_dual(x).tangent is None  # the ended level's tangent is not read at the new one
        ab.forward_ad.attach(second, x, ab.tensor([2.0]))
        assert fwd.unpack_dual(x * 3.0).tangent.tolist() == [6.0]  # type: ignore[union-attr]
        assert x._dual is not None and list(x._dual) == [second.level]
    assert first.level not in x._dual


@pytest.mark.parametrize("differentiable", [True, False])
def test_an_intermediate_of_a_forward_pass_is_freed_with_its_tangent(differentiable: bool) -> None:
    # Forward mode needs only the live values: a level that kept every intermediate and its
    # tangent (as a table of the level's did) held 64 MB for jvp of a 200-step loop on 10,000 numbers.
    with fwd.dual_level(differentiable=differentiable):
        x = fwd.make_dual(ab.tensor(np.ones(4)), ab.tensor(np.ones(4)))
        y = ab.sin(x) * 0.5
        gone = weakref.ref(y)
        tangent = fwd.unpack_dual(y).tangent
        del y
        gc.collect()
        assert gone() is None
        assert tangent is not None and np.allclose(tangent.data, 0.5 * np.cos(1.0))


def test_jvp_through_a_long_loop_holds_the_live_values_only() -> None:
    x, v = ab.tensor(np.linspace(0.0, 1.0, 1000)), ab.tensor(np.ones(1000))

    def loop(x: ab.Tensor) -> ab.Tensor:
        for _ in range(300):
            x = ab.sin(x) * 0.5
        return x

    gc.collect()
    tracemalloc.start()
    try:
        out, tangent = ab.functional.jvp(loop, x, v)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # 8 kB an array: a few live primals and tangents at a time, not 600 of each (9.6 MB)
    assert peak < 50 * 8000, f"jvp held {peak / 1e6:.1f} MB at its peak"
    expected_out, expected_t = x.data, v.data
    for _ in range(300):
        expected_out, expected_t = 0.5 * np.sin(expected_out), 0.5 * np.cos(expected_out) * expected_t
    np.testing.assert_allclose(out.data, expected_out, rtol=1e-12)
    np.testing.assert_allclose(tangent.data, expected_t, rtol=1e-12)


def test_integer_and_boolean_results_carry_no_tangent() -> None:
    with fwd.dual_level():
        x = fwd.make_dual(ab.tensor([1.5, -2.5]), ab.tensor([1.0, 1.0]))
        assert fwd.unpack_dual(x > 0).tangent is None
        assert fwd.unpack_dual(ab.astype(x, "int64")).tangent is None
        assert fwd.unpack_dual(ab.argmax(x)).tangent is None
        assert fwd.unpack_dual(ab.astype(x, "float32")).tangent.dtype == np.float32


def test_forward_mode_is_refused_inside_a_taped_function() -> None:
    # The tape does not record tangents yet: it must refuse, not replay a program without them.
    def loss(x: ab.Tensor) -> ab.Tensor:
        return (x * ab.functional.jvp(lambda z: z * z, x, ab.ones(2))[1]).sum()

    with pytest.raises(ab.graph.TapeError, match="forward mode"):
        ab.tape.value_and_grad(loss)(np.ones(2))


def test_a_dual_tensor_reaching_a_taped_function_is_refused() -> None:
    with fwd.dual_level():
        x = fwd.make_dual(ab.tensor([1.0, 2.0]), ab.tensor([1.0, 1.0]))
        taped = ab.tape.value_and_grad(lambda w: (w * x).sum())
        with pytest.raises(ab.graph.TapeError, match="forward mode"):
            taped(np.ones(2))


def test_hvp_at_a_domain_edge_is_quiet_and_leaves_the_modes_as_they_were() -> None:
    # Inside the engine's walk the jvp rules run without an errstate of their own (the walk's
    # covers them): the edge must still give inf/nan without a warning (warnings fail the suite),
    # the finite entries must be right, and the flag that says so must not outlive the walk.
    x = ab.tensor([0.0, 1.0])
    for strategy in ("forward-over-reverse", "reverse-over-forward"):
        _, hv = ab.functional.hvp(lambda t: ab.sqrt(t).sum(), x, ab.ones(2), strategy=strategy)
        assert not np.isfinite(hv.data[0])
        np.testing.assert_allclose(hv.data[1], -0.25)  # d2/dx2 sqrt(x) = -x^(-3/2) / 4
    assert ab.graph._local.modes.quiet is False
    with pytest.raises(RuntimeError):  # a walk that fails half-way restores the flag too
        y = ab.tensor([1.0], requires_grad=True) * 2.0
        y.sum().backward()
        y.sum().backward()
    assert ab.graph._local.modes.quiet is False


def test_a_hook_in_the_walk_computes_tangents_as_user_code_does() -> None:
    # A hook is user code: forward-mode ops in it set numpy's errstate as they do outside the walk,
    # whatever the walk set. Here the hook's own np.errstate(all="raise") must not reach the rule.
    seen = []

    def hook(g: ab.Tensor) -> None:
        with np.errstate(all="raise"), fwd.dual_level(differentiable=False):  # (rules on arrays)
            t = fwd.make_dual(ab.tensor([0.0, 4.0]), ab.tensor([1.0, 1.0]))
            seen.append(fwd.unpack_dual(ab.sqrt(t)).tangent.data)

    w = ab.tensor([1.0, 2.0], requires_grad=True)
    y = w * 3.0
    y.register_hook(hook)
    y.sum().backward()
    assert np.isinf(seen[0][0]) and seen[0][1] == 0.25  # d sqrt(x) = dx / (2 sqrt(x))


def test_writes_through_a_primal_or_a_dual_are_seen_by_graphs_that_saved_the_tensor() -> None:
    # unpack_dual's primal is the tensor detached (one storage, one counter; read-only when it
    # requires grad), and make_dual's dual of a constant shares the constant's counter: a write
    # through either cannot change what a graph saved without backward noticing.
    x = ab.tensor([1.0, 2.0, 3.0], requires_grad=True)
    loss = (x * x).sum()
    with fwd.dual_level(), pytest.raises(RuntimeError, match="read-only"):
        fwd.unpack_dual(x).primal.mul_(10.0)
    loss.backward()
    np.testing.assert_array_equal(x.grad.data, [2.0, 4.0, 6.0])

    c = ab.tensor([1.0, 2.0, 3.0])
    w = ab.tensor([1.0, 1.0, 1.0], requires_grad=True)
    loss = (w * c).sum()
    with fwd.dual_level():
        fwd.make_dual(c, ab.zeros(3)).mul_(10.0)
        fwd.unpack_dual(c).primal.add_(1.0)  # (c requires no grad: its primal is writeable)
    assert c._version == 2
    with pytest.raises(RuntimeError, match=r"mul: .*modified in place"):
        loss.backward()


def test_transforms_nested_in_forward_mode_carry_its_tangents() -> None:
    # Inside an outer forward-mode transform, an inner transform (or a first-order ab.grad) must
    # give results that carry the outer tangents; detached, they read as zeros there.
    x, v, u = ab.tensor([1.0, 2.0, 3.0]), ab.tensor([1.0, 1.0, 1.0]), ab.tensor([1.0, 0.0, 2.0])
    cube = lambda a: (a**3).sum()  # noqa: E731
    fn = ab.functional
    second = 6.0 * x.data * u.data  # d/dt <grad cube(x + t u), v> with v = ones
    np.testing.assert_allclose(fn.jvp(lambda a: fn.jvp(cube, a, v)[1], x, u)[1].data, second.sum())
    np.testing.assert_allclose(fn.jvp(lambda a: fn.hvp(cube, a, v)[1], x, u)[1].data, 6.0 * u.data)
    np.testing.assert_allclose(fn.jvp(lambda a: fn.vjp(lambda b: b**2, a, v)[1], x, u)[1].data, 2.0 * u.data)
    np.testing.assert_allclose(fn.jvp(lambda a: fn.value_and_grad(cube)(a)[1], x, u)[1].data, second)
    np.testing.assert_allclose(
        fn.jvp(lambda a: (a.requires_grad_(), ab.grad((a**3).sum(), [a])[0])[1], x, u)[1].data, second
    )
    np.testing.assert_allclose(fn.jvp(lambda a: fn.jacobian(lambda b: b**2, a), x, u)[1].data, np.diag(2.0 * u.data))
    # A gradient that aliases its seed inside a level is copied by an op, which keeps the tangent.
    with fwd.dual_level():
        a = fwd.make_dual(ab.tensor([1.0, 2.0], requires_grad=True), ab.tensor([1.0, 1.0]))
        seed = a * 3.0
        (g,) = ab.grad(a + 0.0, [a], grad_outputs=[seed])
        assert g.data is not seed.data
        np.testing.assert_array_equal(fwd.unpack_dual(g).tangent.data, [3.0, 3.0])


def test_transforms_and_grads_nested_in_reverse_transforms_stay_on_the_graph() -> None:
    # jacobian(lambda z: jvp(f, z, v)[1], x) gave zeros: the inner transform's detached result
    # is on no graph, which the outer one reads as a zero derivative (no error). Every reverse
    # transform now differentiates through inner transforms and first-order ab.grad calls.
    fn = ab.functional
    f = lambda w: (ab.sin(w) * w[0]).sum()  # noqa: E731
    x, v = ab.tensor([0.3, -0.7, 1.1]), ab.tensor([1.0, 2.0, -0.5])
    hessian = fn.hessian(f, x).data
    assert np.abs(hessian).min(axis=None) == 0.0 and np.abs(hessian).max() > 0.1  # (not all zero: a check)
    # (forward mode's inputs need no grad: asked for here, as a user who calls ab.grad would)
    gradient_of = lambda z: ab.grad(f(z if z.requires_grad else z.requires_grad_()), [z])[0]  # noqa: E731
    for strategy in ("auto", "reverse-mode", "forward-mode"):
        np.testing.assert_allclose(fn.jacobian(gradient_of, x, strategy=strategy).data, hessian, rtol=1e-12)
        np.testing.assert_allclose(fn.jacobian(lambda z: fn.vjp(f, z)[1], x, strategy=strategy).data, hessian)
        directional = fn.jacobian(lambda z: fn.jvp(f, z, v)[1], x, strategy=strategy).data
        np.testing.assert_allclose(directional, hessian @ v.data)
    np.testing.assert_allclose(fn.vjp(lambda z: fn.jvp(f, z, v)[1], x)[1].data, hessian @ v.data)
    np.testing.assert_allclose(fn.value_and_grad(lambda z: fn.jvp(f, z, v)[1])(x)[1].data, hessian @ v.data)
    # Third order: the hvp of <grad f, v> along v, against central differences of H(x) v.
    directional_of = lambda z: (gradient_of(z) * v).sum()  # noqa: E731
    step = 1e-5
    shifted = [fn.hessian(f, ab.tensor(x.data + sign * step * v.data)).data @ v.data for sign in (1, -1)]
    third = (shifted[0] - shifted[1]) / (2 * step)
    for strategy in ("forward-over-reverse", "reverse-over-forward"):
        np.testing.assert_allclose(fn.hvp(directional_of, x, v, strategy=strategy)[1].data, third, rtol=1e-6)
    # Outside a transform nothing changes: a first-order gradient and jvp's results are off the graph.
    leaf = ab.tensor([0.3, -0.7, 1.1], requires_grad=True)
    assert not ab.grad(f(leaf), [leaf])[0].requires_grad
    assert not any(t.requires_grad for t in fn.jvp(f, leaf, v))


def test_make_dual_keeps_the_tangents_of_outer_levels() -> None:
    with fwd.dual_level() as outer:
        a = fwd.make_dual(ab.tensor(2.0), ab.tensor(1.0))
        with fwd.dual_level() as inner:
            b = fwd.make_dual(a, ab.tensor(1.0))
            inner_tangent = fwd.unpack_dual(b * b * a, level=inner).tangent  # d/db (b^2 a) = 2 a b
            cubed = fwd.unpack_dual(b**3, level=inner).tangent  # 3 b^2
        assert fwd.unpack_dual(inner_tangent, level=outer).tangent.item() == 8.0  # d/dt 2 (2+t)^2 = 8
        assert fwd.unpack_dual(cubed, level=outer).tangent.item() == 12.0  # d/dt 3 (2+t)^2 = 12


def test_in_place_writes_never_drop_a_tangent() -> None:
    x, v = ab.tensor([1.0, 2.0, 3.0]), ab.tensor([1.0, 10.0, 100.0])

    def slice_assign(t: ab.Tensor) -> ab.Tensor:
        y = ab.zeros(3)
        y[1:] = t[:2] * 2.0
        return y

    with pytest.raises(RuntimeError, match=r"setitem: .*carries a forward-mode tangent"):
        ab.functional.jvp(slice_assign, x, v)
    with fwd.dual_level():
        d = fwd.make_dual(ab.tensor([1.0, 2.0]), ab.tensor([1.0, 1.0]))
        for write in (lambda b: b.copy_(d), lambda b: b.add_(d), lambda b: b.mul_(d)):
            with pytest.raises(RuntimeError, match="carries a forward-mode tangent"):
                write(ab.zeros(2))

    def augmented(t: ab.Tensor) -> ab.Tensor:
        y = ab.zeros(3)
        y += t * 2.0  # rebinds y to the sum, as for a graph tensor: the tangent rides along
        y *= t
        return y

    np.testing.assert_array_equal(ab.functional.jvp(augmented, x, v)[1].data, 4.0 * x.data * v.data)


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_a_complex_tangent_or_cotangent_is_refused_not_cut_to_its_real_part(library: str) -> None:
    # A real function's tangents and cotangents are real: a complex one was cast to the input's
    # (or output's) float dtype, dropping its imaginary part with no more than a ComplexWarning
    # (jvp(lambda t: t * 3, x, [1 + 2j, 2]) gave [3, 6]; PyTorch carries it, or raises for grad).
    if library == "torch":
        torch = pytest.importorskip("torch")
        x, v = ab.tensor(torch.tensor([1.0, 2.0], dtype=torch.float64)), ab.tensor(torch.tensor([1 + 2j, 2]))
    else:
        x, v = ab.tensor([1.0, 2.0]), ab.tensor(np.array([1 + 2j, 2]))
    for name, call in _directional_calls(x, v):
        refused = pytest.raises(TypeError, match=rf"^{name}: (v|the tangent) is .*complex.*\[2\].*imaginary part")
        with ab.forward_ad.dual_level(), refused:
            call()
    leaf = x.detach().requires_grad_()
    with pytest.raises(TypeError, match=r"grad: .*complex.*\[2\].*imaginary part"):
        ab.grad(leaf * 3, [leaf], grad_outputs=[v])
    with pytest.raises(TypeError, match=r"backward: .*complex.*\[2\].*imaginary part"):
        (leaf * 3).backward(v)
    assert leaf.grad is None


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_a_complex_value_made_from_a_real_tensor_is_refused_not_differentiated_wrong(library: str) -> None:
    # autobp's rules take no conjugates and forward mode carries real tangents only: through a
    # complex value, |x * 1j| (which is |x|, derivative 1) got the gradient -1 with a ComplexWarning,
    # |x (1 + 1j)| got 0 (it is sqrt 2), and jvp dropped the complex value's tangent (0, not 1).
    from autobp.functional import jacobian, jvp

    if library == "torch":
        torch = pytest.importorskip("torch")
        x = ab.tensor(torch.tensor([1.0, 2.0], dtype=torch.float64))
    else:
        x = ab.tensor([1.0, 2.0])
    v = x.detach() * 0.0 + 1.0
    leaf = x.detach().requires_grad_()
    refused = (
        r"^(mul|astype): the result is complex \((torch )?complex128\[2?\]\), "
        r"computed from tensor (torch )?float64\[2\]"
    )
    # Reverse mode refuses the complex gradient where it reaches the real tensor (the walk's cast,
    # which the usual gradient never reaches: no op pays for the check)
    given = r"^backward: op '(mul|astype)' gives tensor (torch )?float64\[2\], which is real, a complex gradient"
    with pytest.raises(TypeError, match=given):
        ab.abs(leaf * 1j).sum().backward()
    with pytest.raises(TypeError, match=given):
        ab.abs(ab.astype(leaf, "complex128")).sum().backward()
    with pytest.raises(TypeError, match=given):
        jacobian(lambda t: ab.abs(t * (1 + 1j)), x)
    with pytest.raises(TypeError, match=given):
        ab.grad(ab.abs(leaf * (1 + 1j)).sum(), [leaf], create_graph=True)
    with pytest.raises(TypeError, match=refused + r", which carries a forward-mode tangent"):
        jvp(lambda t: ab.abs(t * 1j), x, v)
    with pytest.raises(TypeError, match=refused + r", which carries a forward-mode tangent"):
        jvp(lambda t: ab.abs(ab.astype(t, "complex128")), x, v)
    assert leaf.grad is None
    # Constants may still be complex: nothing differentiates them.
    with ab.no_grad():
        assert (leaf * 1j).dtype == (leaf.detach() * 1j).dtype
    assert not (x * 1j).requires_grad


def _directional_calls(x: ab.Tensor, v: ab.Tensor) -> list[tuple[str, Any]]:
    """Each transform that takes a direction ``v`` for ``x``, by the name its errors start with."""
    from autobp.functional import hvp, jvp, vjp

    return [
        ("jvp", lambda: jvp(lambda t: t * 3, x, v)),
        ("vjp", lambda: vjp(lambda t: t * 3, x, v)),
        ("hvp", lambda: hvp(lambda t: (t**3).sum(), x, v)),
        ("hvp", lambda: hvp(lambda t: (t**3).sum(), x, v, strategy="reverse-over-forward")),
        ("make_dual", lambda: ab.forward_ad.make_dual(x, v)),
    ]


def test_a_direction_in_another_library_than_its_input_is_refused_by_name() -> None:
    # jvp and hvp cast a direction to its input's dtype: a numpy direction for a torch input failed
    # inside that cast ("astype: Cannot interpret 'torch.float64' as a data type"), naming neither
    # the transform nor the argument; a torch direction for a numpy input was taken as it was,
    # and make_dual's error named no function.
    torch = pytest.importorskip("torch")
    on_torch, on_numpy = ab.tensor(torch.tensor([1.0, 2.0], dtype=torch.float64)), ab.tensor([1.0, 1.0])
    for x, v in ((on_torch, on_numpy), (on_numpy, on_torch)):
        for name, call in _directional_calls(x, v):
            refused = pytest.raises(ab.backends.MixedArraysError, match=rf"^{name}: .*two libraries")
            with ab.forward_ad.dual_level(), refused:
                call()


@pytest.mark.parametrize("name", ["max", "min"])
def test_an_element_that_misses_the_extreme_leaves_its_tangent_out(name: str) -> None:
    # An inf or nan tangent on an element that is not the max (sqrt's at 0) changes nothing:
    # partial 0 times tangent inf was nan. Ties and a nan extreme keep their shares.
    reduce = getattr(ab, name)
    sign = 1.0 if name == "max" else -1.0
    for x, v, want in [
        ([-1.0, 2.0], [np.inf, 1.0], 1.0),
        ([-1.0, 2.0], [np.nan, 1.0], 1.0),
        ([2.0, 2.0, -3.0], [1.0, 3.0, np.inf], 2.0),  # a tie shares equally: (1 + 3) / 2
    ]:
        xs = ab.tensor(np.array(x) * sign)
        _, tangent = ab.functional.jvp(reduce, xs, ab.tensor(np.array(v)))
        assert tangent.item() == want
    _, tangent = ab.functional.jvp(lambda t: reduce(sign * ab.sqrt(t)), ab.tensor([0.0, 4.0]), ab.tensor([1.0, 1.0]))
    assert tangent.item() == sign * 0.25
    # over an axis: each row leaves its own losers out
    x = ab.tensor(np.array([[0.0, 9.0], [4.0, 1.0]]) * sign)
    _, tangent = ab.functional.jvp(lambda t: reduce(t, axis=1), x, ab.tensor([[np.inf, 1.0], [2.0, np.nan]]))
    np.testing.assert_array_equal(tangent.data, [1.0, 2.0])


def test_a_keyword_tensor_carrying_a_tangent_is_refused_not_dropped() -> None:
    # Tangents flow from an op's positional inputs: pad's constant_values=c was dropped, and
    # jvp(lambda c: pad(x, 1, constant_values=c), 3.0, 1.0) gave [0, 0, 0, 0], not [1, 0, 0, 1].
    x = ab.tensor([1.0, 2.0])
    refused = r"pad: keyword argument 'constant_values' is a Tensor \(float64\[\]\) that carries a forward-mode tangent"

    def padded(c: ab.Tensor) -> ab.Tensor:
        return ab.pad(x, 1, constant_values=c)

    with pytest.raises(TypeError, match=refused):
        ab.functional.jvp(padded, ab.tensor(3.0), ab.tensor(1.0))
    with pytest.raises(TypeError, match=refused):
        ab.functional.jacfwd(padded, ab.tensor(3.0))
    with fwd.dual_level():
        c = fwd.make_dual(ab.tensor(3.0), ab.tensor(1.0))
        with ab.no_grad(), pytest.raises(TypeError, match=refused):  # tangents flow under no_grad too
            ab.pad(x, 1, constant_values=c)
        with pytest.raises(TypeError, match=refused):  # inside a list as well
            ab.pad(x, 1, constant_values=[c])
        # the ways out the error names: no derivative through the keyword
        assert ab.pad(x, 1, constant_values=fwd.unpack_dual(c).primal).tolist() == [3.0, 1.0, 2.0, 3.0]
        assert fwd.unpack_dual(ab.pad(x, 1, constant_values=c.detach())).tangent is None

    @op("test_forward_scaled_by_keyword", arity=1)
    def scaled(x: Any, scale: Any = 1.0) -> Any:
        return np.asarray(x) * np.asarray(scale)

    scaled.defvjp(lambda g, out, x, scale=1.0: g * scale)
    scaled.defjvp(lambda t, out, x, scale=1.0: t * scale)
    try:
        with pytest.raises(TypeError, match=r"test_forward_scaled_by_keyword: keyword argument 'scale'"):
            ab.functional.jvp(lambda s: scaled(ab.tensor([2.0]), scale=s), ab.tensor(3.0), ab.tensor(1.0))
        # a keyword tensor without a tangent at an active level is a constant, as before
        _, tangent = ab.functional.jvp(lambda z: scaled(z, scale=ab.tensor(3.0)), ab.tensor([2.0]), ab.tensor([1.0]))
        assert tangent.tolist() == [3.0]
    finally:
        del ab.REGISTRY["test_forward_scaled_by_keyword"]


def test_a_tensor_copy_of_a_dual_is_refused_not_a_constant_without_a_word() -> None:
    # ab.tensor(t) copies t's values into a constant: the tangent was dropped, and jvp of
    # t -> ab.tensor(t) * t gave [1, 2] where the derivative is 2 t = [2, 4] (PyTorch warns).
    x, v = ab.tensor([1.0, 2.0]), ab.tensor([1.0, 1.0])
    refused = r"tensor: the data is tensor float64\[2\], which carries a forward-mode tangent; the copy carries none"
    for make in (ab.tensor, ab.Tensor, lambda t: ab.Tensor(t, dtype="float32")):
        with pytest.raises(TypeError, match=refused):
            ab.functional.jvp(lambda t, make=make: make(t) * t, x, v)
    with pytest.raises(TypeError, match=r"\(Parameter\(t\) makes a constant copy\)"):
        ab.functional.jacfwd(lambda t: ab.nn.Parameter(t) * t, x)
    with fwd.dual_level():
        d = fwd.make_dual(x, v)
        with ab.no_grad(), pytest.raises(TypeError, match=refused):  # tangents flow under no_grad too
            ab.tensor(d)
        with fwd.dual_level(), pytest.raises(TypeError, match=refused):  # dual at an outer level
            ab.tensor(d * 2.0)
        # the ways out the error names: a copy that keeps the tangent, or a constant on purpose
        assert fwd.unpack_dual(d.clone() * d).tangent.tolist() == [2.0, 4.0]
        assert fwd.unpack_dual(ab.tensor(d.detach()) * d).tangent.tolist() == [1.0, 2.0]
        assert fwd.unpack_dual(ab.tensor(fwd.unpack_dual(d).primal)).tangent is None
        assert ab.tensor(x).tolist() == [1.0, 2.0]  # a tensor without a tangent copies as before
        with pytest.raises(TypeError, match=r"the data holds tensor float64\[\], which carries a forward-mode"):
            ab.tensor([d[0] * 3, d[1]])  # inside a list as well (ab.stack keeps the tangent)
        assert fwd.unpack_dual(ab.stack([d[0] * 3, d[1]])).tangent.tolist() == [3.0, 1.0]
        # a fill value and Python's copies alike
        for fill in (lambda: ab.full((2,), d[0]), lambda: ab.full_like(x, d[1])):
            with pytest.raises(TypeError, match=r"the fill value is tensor float64\[\], which carries a forward"):
                fill()
        assert fwd.unpack_dual(d[0] * ab.ones(2)).tangent.tolist() == [1.0, 1.0]
        for copied in (copy.copy, copy.deepcopy, lambda t: pickle.loads(pickle.dumps(t))):
            with pytest.raises(TypeError, match=r"carries a forward-mode tangent, which a copy cannot take along"):
                copied(d)
        assert fwd.unpack_dual(copy.copy(d.detach())).tangent is None
    assert ab.functional.jvp(lambda t: t.clone() * t, x, v)[1].tolist() == [2.0, 4.0]
    assert ab.tensor(d).tolist() == [1.0, 2.0]  # outside the level d carries nothing: a copy


@pytest.mark.parametrize("vjp_first", [True, False])
def test_an_elementwise_ops_explicit_jvp_rule_is_kept_whatever_the_order_of_defvjp(vjp_first: bool) -> None:
    # elementwise=True takes the vjp rules as jvp rules: a defvjp after defjvp_variadic replaced
    # the docs' div-like (dx - out dy) / y, and the tangent at y = 0 along dy was nan, not -inf.
    @op("test_forward_div_like", arity=2, elementwise=True)
    def div_like(x: Any, y: Any) -> Any:
        return np.asarray(x) / np.asarray(y)

    @op("test_forward_cube_like", elementwise=True)
    def cube_like(x: Any) -> Any:
        return np.asarray(x) ** 3

    def quotient(tangents: Any, out: Any, x: Any, y: Any) -> Any:
        dx, dy = tangents
        return ((0.0 if dx is None else dx) - (0.0 if dy is None else out * dy)) / y

    steps = [
        lambda: div_like.defvjp(lambda g, out, x, y: g / y, lambda g, out, x, y: -g * out / y),
        lambda: div_like.defjvp_variadic(quotient),
        lambda: cube_like.defvjp(lambda g, out, x: g * 3 * out / x),  # valid away from 0 only
        lambda: cube_like.defjvp(lambda t, out, x: t * 3 * x * x),
    ]
    try:
        for i in (0, 1, 2, 3) if vjp_first else (1, 0, 3, 2):
            steps[i]()
        with np.errstate(divide="ignore", invalid="ignore"):
            x, y, dx, dy = ab.tensor([1.0]), ab.tensor([0.0]), ab.tensor([0.0]), ab.tensor([1.0])
            _, tangent = ab.functional.jvp(div_like, (x, y), (dx, dy))
            _, expected = ab.functional.jvp(ab.div, (x, y), (dx, dy))
            assert expected.tolist() == [-np.inf]
            assert tangent.tolist() == [-np.inf]
            _, tangent = ab.functional.jvp(cube_like, ab.tensor([0.0, 2.0]), ab.tensor([1.0, 1.0]))
            assert tangent.tolist() == [0.0, 12.0]  # defjvp's rule (the vjp's is nan at 0)
    finally:
        del ab.REGISTRY["test_forward_div_like"], ab.REGISTRY["test_forward_cube_like"]


def test_an_elementwise_op_without_a_jvp_rule_still_takes_its_vjp_rules() -> None:
    @op("test_forward_square_like", elementwise=True)
    def square_like(x: Any) -> Any:
        return np.asarray(x) ** 2

    try:
        square_like.defvjp(lambda g, out, x: g * 3.0 * x)  # (deliberately not 2x: the rule in use is seen)
        square_like.defvjp(lambda g, out, x: g * 2.0 * x)  # a later defvjp updates the derived jvp
        _, tangent = ab.functional.jvp(square_like, ab.tensor([1.5]), ab.tensor([1.0]))
        assert tangent.tolist() == [3.0]
    finally:
        del ab.REGISTRY["test_forward_square_like"]


def test_a_numpy_function_refuses_a_tensor_carrying_a_tangent() -> None:
    # numpy's result carries no tangent: jvp of exp(x) + np.clip(x, 0, 1) at [0.5, 2] along
    # [1, 1] gave [1.649, 7.389] (the exp term only; true [2.649, 7.389]), sum(x * x) + np.dot(a, x)
    # gave 5, not 12. Refused as reverse mode refuses a tensor that requires grad.
    a = np.array([3.0, 4.0])
    x, v = ab.tensor([0.5, 2.0]), ab.tensor([1.0, 1.0])
    calls = [
        (lambda z: ab.exp(z) + np.clip(z, 0.0, 1.0), "numpy.clip"),
        (lambda z: ab.sum(z * z) + np.dot(a, z), "numpy.dot"),
        (lambda z: np.concatenate([a, z]), "numpy.concatenate"),  # (inside a list too)
        (lambda z: np.where(a > 3.5, z, 0.0), "numpy.where"),
    ]
    for func, name in calls:
        refused = re.escape(name) + r": given tensor float64\[2\], which carries a forward-mode tangent"
        with pytest.raises(TypeError, match=refused):
            ab.functional.jvp(func, x, v)
        with pytest.raises(TypeError, match=refused):
            ab.functional.jacfwd(func, x)
    with fwd.dual_level():
        d = fwd.make_dual(x, v)
        with ab.no_grad(), pytest.raises(TypeError, match=r"numpy\.dot"):  # tangents flow under no_grad
            np.dot(a, d)
        assert np.dot(a, d.detach()) == 9.5  # the way out the error names
        assert np.allclose(d, [0.5, 2.0]) and np.argmax(d) == 1 and np.shape(d) == (2,)  # as before
        assert np.dot(a, x) == 9.5  # the primal made the dual from carries no tangent
    assert np.dot(a, d) == 9.5  # the level has closed


def _inner_jvp(x: ab.Tensor, differentiable: bool) -> ab.Tensor:
    """d/dx (x sin x) along 1, by a hand-written level."""
    with fwd.dual_level(differentiable=differentiable):
        d = fwd.make_dual(x, ab.ones_like(x))
        return fwd.unpack_dual(ab.sin(d) * d).tangent


@pytest.mark.parametrize("differentiable", [False, True])
def test_a_plain_level_inside_a_level_or_a_transform_is_differentiated_not_read_as_zero(differentiable: bool) -> None:
    # dual_level(differentiable=False) keeps tangents as arrays on no graph: nested in a jvp,
    # jacfwd or a reverse-mode jacobian, its tangent was a constant, and the second derivative of
    # x sin x at 0.5 came out 0, not 2 cos x - x sin x = 1.5155 (torch.func's jvp-of-jvp). Inside
    # a level or a transform the level is differentiable, as functional's own levels are there.
    x0 = np.array([0.5, -1.25])
    expected = 2 * np.cos(x0) - x0 * np.sin(x0)
    x = ab.tensor(x0)

    def inner(z: ab.Tensor) -> ab.Tensor:
        return _inner_jvp(z, differentiable)

    np.testing.assert_allclose(ab.functional.jvp(inner, x, ab.ones(2))[1].data, expected, rtol=1e-14)
    for jac in (ab.functional.jacfwd(inner, x), ab.functional.jacobian(inner, x, strategy="reverse-mode")):
        np.testing.assert_allclose(jac.data, np.diag(expected), rtol=1e-14)
    with fwd.dual_level(differentiable=False):  # two hand-written plain levels
        z = fwd.make_dual(x, ab.ones(2))
        np.testing.assert_allclose(fwd.unpack_dual(inner(z)).tangent.data, expected, rtol=1e-14)
    # on its own, a plain level still records nothing (what differentiable=False is for)
    with fwd.dual_level(differentiable=False) as level:
        assert level.level.plain
        leaf = ab.tensor(x0, requires_grad=True)
        d = fwd.make_dual(leaf, ab.ones(2))
        assert not fwd.unpack_dual(ab.sin(d) * d).tangent.requires_grad


def test_a_grad_inside_jacfwd_names_the_transforms_that_compose() -> None:
    """jacfwd's inputs carry tangents and record no graph, so ``ab.grad`` of a function of them
    finds none: the error says so and names what composes (``jacobian`` inside ``jacfwd`` gives
    the Hessian, as the test checks), rather than asking for requires_grad the user cannot set."""
    x = ab.tensor([1.0, 2.0, 3.0])

    def cubes(z: ab.Tensor) -> ab.Tensor:
        return (z**3).sum()

    with pytest.raises(RuntimeError, match=r"Inside jacfwd or jvp the inputs carry tangents.*jacobian"):
        ab.functional.jacfwd(lambda z: ab.grad(cubes(z), [z])[0], x)
    hessian = ab.functional.jacfwd(lambda z: ab.functional.jacobian(cubes, z), x)
    np.testing.assert_array_equal(hessian.numpy(), np.diag([6.0, 12.0, 18.0]))
    with pytest.raises(RuntimeError) as outside:  # outside forward mode, the usual message alone
        ab.grad(cubes(x), [x])
    assert "jacfwd" not in str(outside.value)
