"""autobp.tape.hvp: a taped forward-over-reverse Hessian-vector product is bit-equal to the eager
``functional.hvp`` on new values, and every guard of the soundness model still applies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import autobp as ab


def _eager(
    func: Callable[..., Any], args: tuple[Any, ...], positions: tuple[int, ...], vs: tuple[Any, ...]
) -> list[Any]:
    """``functional.hvp`` with the other arguments held fixed: value, then the products, as arrays."""
    tensors = [ab.tensor(a) if isinstance(a, np.ndarray) else a for a in args]

    def of_differentiated(*xs: Any) -> Any:
        call = list(tensors)
        for p, x in zip(positions, xs, strict=True):
            call[p] = x
        return func(*call)

    value, products = ab.functional.hvp(
        of_differentiated, tuple(tensors[p] for p in positions), tuple(map(ab.tensor, vs))
    )
    return [value.data, *(p.data for p in products)]


def _check(
    func: Callable[..., Any], make: Callable[[np.random.Generator], tuple[Any, ...]], argnums: Any, dtype: Any
) -> ab.tape.TapedHvp:
    """Several calls on new values (and direction): each bit-equal to eager, none eager."""
    taped = ab.tape.hvp(func, argnums)
    positions = (argnums,) if isinstance(argnums, int) else argnums
    rng = np.random.default_rng(0)
    for _ in range(4):
        args = tuple(a.astype(dtype) if isinstance(a, np.ndarray) else a for a in make(rng))
        vs = tuple(rng.standard_normal(np.shape(args[p])).astype(dtype) for p in positions)
        value, products = taped.arrays(*args, vs[0] if isinstance(argnums, int) else vs)
        for got, want in zip([value, *products], _eager(func, args, positions, vs), strict=True):
            assert got.dtype == want.dtype and got.shape == want.shape
            assert got.tobytes() == want.tobytes()
    assert taped.eager_reasons == {}
    return taped


def _mlp(w1: Any, b1: Any, w2: Any, x: Any, y: Any) -> Any:
    return 0.5 * (((ab.tanh(x @ w1 + b1)) @ w2 - y) ** 2).sum()


def _mlp_args(rng: np.random.Generator) -> tuple[Any, ...]:
    return tuple(rng.standard_normal(s) for s in [(3, 5), (5,), (5, 1), (4, 3), (4, 1)])


MODELS: dict[str, tuple[Callable[..., Any], Callable[[np.random.Generator], tuple[Any, ...]], Any]] = {
    "tanh mlp": (_mlp, _mlp_args, (0, 1, 2)),
    "tanh mlp, input too": (_mlp, _mlp_args, (0, 3)),
    "sigmoid logistic": (
        lambda w, x: -ab.log(ab.sigmoid(x @ w)).mean(),
        lambda rng: (rng.standard_normal(3), rng.standard_normal((6, 3))),
        0,
    ),
    "exp, div, sqrt": (
        lambda a, b: (ab.exp(a * 0.3) / (1.0 + b * b) + ab.sqrt(a * a + 1.0)).sum(),
        lambda rng: (rng.standard_normal((2, 3)), rng.standard_normal(3)),
        (0, 1),
    ),
    "softmax-like, reshape, transpose": (
        lambda z: ((ab.exp(z) / ab.exp(z).sum(axis=1, keepdims=True)).T.reshape(-1) ** 3).sum(),
        lambda rng: (rng.standard_normal((3, 4)),),
        0,
    ),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_taped_hvp_is_bit_equal_to_eager_hvp(name: str, dtype: Any) -> None:
    func, make, argnums = MODELS[name]
    _check(func, make, argnums, dtype)


def test_a_replay_is_straight_numpy_calls_with_the_tangents_ops() -> None:
    taped = ab.tape.hvp(lambda w: (ab.tanh(w) ** 2).sum())
    source = taped.source(np.ones(3), np.ones(3))
    assert source.startswith("def replay(inputs):") and "# tanh" in source
    # The direction is an input: a replay on another direction is another product, not the traced one.
    _, first = taped.arrays(np.ones(3), np.ones(3))
    _, second = taped.arrays(np.ones(3), np.full(3, 2.0))
    assert np.array_equal(second[0], 2.0 * first[0])


def test_linear_and_unused_arguments_give_zero_products() -> None:
    taped = ab.tape.hvp(lambda a, b: (a * 2.0).sum(), (0, 1))
    value, (ha, hb) = taped(ab.tensor([1.0, 2.0]), ab.tensor([3.0]), (ab.tensor([1.0, 1.0]), ab.tensor([1.0])))
    assert value.item() == 6.0 and ha.tolist() == [0.0, 0.0] and hb.tolist() == [0.0]


def test_a_guarded_branch_retraces_and_stays_exact() -> None:
    def func(w: Any) -> Any:
        return (w**3).sum() if (w.sum() > 0).item() else (ab.exp(w)).sum()

    taped = _check(func, lambda rng: (rng.standard_normal(3) + (3.0 if rng.random() > 0.5 else -3.0),), 0, np.float64)
    assert sum(len(entry.tapes) for entry in taped._signatures.values()) == 2


def test_a_closed_over_tensor_changed_in_place_is_seen() -> None:
    scale = ab.tensor([1.0, 2.0])
    taped = ab.tape.hvp(lambda w: ((w * scale) ** 3).sum())
    w, v = np.array([1.0, -1.0]), np.array([0.5, 1.0])
    before = taped.arrays(w, v)[1][0]
    scale += 1.0  # an in-place write: the closure's version changes
    after = taped.arrays(w, v)[1][0]
    assert not np.array_equal(before, after)
    assert after.tobytes() == _eager(lambda w: ((w * scale) ** 3).sum(), (w,), (0,), (v,))[1].tobytes()


def test_static_arguments_key_the_tape() -> None:
    taped = ab.tape.hvp(lambda w, power: (w**power).sum())
    w, v = np.array([1.0, 2.0]), np.array([1.0, 1.0])
    assert taped.arrays(w, 2, v)[1][0].tolist() == [2.0, 2.0]
    assert taped.arrays(w, 3, v)[1][0].tolist() == [6.0, 12.0]


def test_results_are_fresh_arrays() -> None:
    taped = ab.tape.hvp(lambda w: (w * w).sum() * 0.5)  # H v = v: the product must not be v itself
    w, v = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    for _ in range(3):
        _, (product,) = taped.arrays(w, v)
        assert product is not v and not np.shares_memory(product, v)
        product[...] = 0.0
    assert taped.arrays(w, v)[1][0].tolist() == [3.0, 4.0]


def test_the_first_replay_on_new_values_is_compared_with_eager() -> None:
    def func(w: Any) -> Any:  # reads .data: a tape would freeze it, the comparison sees that
        return (w**3).sum() * ab.tensor(np.asarray(w.data[0]))

    taped = ab.tape.hvp(func)
    taped.arrays(np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    with pytest.raises(ab.tape.TapeError, match=r"different value .*functional\.hvp"):
        taped.arrays(np.array([5.0, 2.0]), np.array([1.0, 1.0]))


def test_forward_mode_outside_the_tape_is_refused() -> None:
    dual = None
    with ab.forward_ad.dual_level():
        dual = ab.forward_ad.make_dual(ab.tensor([1.0]), ab.tensor([1.0]))
        with pytest.raises(ab.tape.TapeError, match=r"tape\.hvp: called inside a forward-mode level"):
            ab.tape.hvp(lambda w: (w * w).sum())(np.array([1.0]), np.array([1.0]))
        # A dual tensor reaching a plain taped value_and_grad is still refused.
        with pytest.raises(ab.tape.TapeError, match="forward mode"):
            ab.tape.value_and_grad(lambda w: (w * dual).sum())(np.array([2.0]))


def test_forward_mode_inside_the_traced_function_is_refused() -> None:
    def opens_a_level(w: Any) -> Any:
        with ab.forward_ad.dual_level():
            return (w * w).sum()

    def makes_a_dual(w: Any) -> Any:  # would mark tape.hvp's own level
        return (ab.forward_ad.make_dual(w, ab.tensor(np.ones(2))) * w).sum()

    for func in (opens_a_level, makes_a_dual):
        with pytest.raises(ab.tape.TapeError, match="forward mode"):
            ab.tape.hvp(func)(np.ones(2), np.ones(2))
        assert not ab.tape.is_tracing()


def test_bad_directions_name_the_problem() -> None:
    taped = ab.tape.hvp(lambda a, b: (a * b).sum(), (0, 1))
    with pytest.raises(TypeError, match="v must be a tuple of arrays"):
        taped(np.ones(2), np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="direction for argument 1 has shape"):
        taped(np.ones(2), np.ones(2), (np.ones(2), np.ones(3)))
    with pytest.raises(ValueError, match="names an argument twice"):
        ab.tape.hvp(lambda a: a.sum(), (0, 0))


def test_directions_as_a_list_or_one_array_give_the_tuple_calls_products() -> None:
    # A tuple of directions takes a shorter way into the tape than a list or one array does.
    a, b, va, vb = np.array([1.0, 2.0]), np.array([3.0, -1.0]), np.array([0.5, 1.0]), np.array([2.0, 1.0])

    def func(a: Any, b: Any) -> Any:
        return (a * a * b).sum()

    both = ab.tape.hvp(func, (0, 1))
    for _ in range(3):
        for v in ((va, vb), [va, vb]):
            _, (ha, hb) = both.arrays(a, b, v)
            assert np.array_equal(ha, 2 * b * va + 2 * a * vb) and np.array_equal(hb, 2 * a * va)
    first = ab.tape.hvp(func, 0)
    for _ in range(3):
        _, (ha,) = first.arrays(a, b, va)
        assert np.array_equal(ha, 2 * b * va)
    with pytest.raises(TypeError, match="v must be a tuple of arrays"):
        both.arrays(a, b, (va,))


def test_steps_no_result_needs_are_left_out_only_where_they_cannot_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    # The primal weight gradient (a matmul_tn) is needed by nothing: left out of the replay.
    # With the list of ops that cannot raise emptied, every step runs: same results, bit for bit.
    def loss(w: Any, x: Any) -> Any:
        return (ab.tanh(x @ w) ** 2).sum()

    rng = np.random.default_rng(1)
    calls = [(rng.standard_normal((3, 2)), rng.standard_normal((4, 3)), rng.standard_normal((3, 2))) for _ in range(3)]

    def run() -> tuple[int, list[bytes]]:
        taped = ab.tape.hvp(loss)
        outputs = [
            b"".join(a.tobytes() for a in [value, *products])
            for value, products in map(lambda c: taped.arrays(*c), calls)
        ]
        return taped.source(*calls[0]).count("# matmul"), outputs

    pruned, pruned_outputs = run()
    monkeypatch.setattr("autobp.tape.compile._CANNOT_RAISE_ON_FLOATS", frozenset())
    every, every_outputs = run()
    assert pruned == every - 1 and pruned_outputs == every_outputs


def test_the_taped_w5_product_runs_as_many_matrix_products_as_the_r_operator() -> None:
    import inspect

    from benchmarks.w5_hvp import _loss, _setup, numpy_hvp

    params, direction, x, y = _setup(4)
    taped = ab.tape.hvp(lambda *a: _loss(ab, list(a[:-2]), a[-2], a[-1]), tuple(range(len(params))))
    source = taped.source(*params, x, y, tuple(direction))
    r_operator = [line.split("#")[0] for line in inspect.getsource(numpy_hvp).splitlines()]
    assert source.count("# matmul") == sum(line.count(" @ ") for line in r_operator)


def test_numpy_scalars_are_inputs_where_differentiated_and_static_elsewhere() -> None:
    # An axis given as np.int64 reached func as a 0-d Tensor; a differentiated one and a direction stay inputs.
    func = lambda s, x, axis: (ab.tanh(x * s) * s).sum(axis=axis).sum()  # noqa: E731
    taped = ab.tape.hvp(func)
    for s, v in ((2.0, 1.0), (3.0, -0.5), (-1.5, 2.0)):
        args = (np.float64(s), np.array([[1.0, 2.0], [0.5, -1.0]]), np.int64(1))
        value, (product,) = taped.arrays(*args, np.float64(v))
        eager = _eager(func, (np.asarray(s), *args[1:]), (0,), (np.asarray(v),))
        assert [value.tobytes(), product.tobytes()] == [a.tobytes() for a in eager]
    assert taped.eager_reasons == {} and len(taped._signatures) == 1
