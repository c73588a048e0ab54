"""What a compiled tape writes: numpy expressions in place of forwards (``tape.numpy_forms``),
arrays dropped after their last read and results written into dead temporaries
(``tape.program``). Each must give the forward's numbers bit for bit, and no write may reach
memory that anything else can see."""

from __future__ import annotations

import tracemalloc
from typing import Any

import numpy as np
import pytest

import autobp as ab
from autobp.ops.registry import REGISTRY, op
from autobp.tape import numpy_forms, program


def _form_value(expression: str, *operands: Any) -> Any:
    names = [f"a{i}" for i in range(len(operands))]
    return eval(expression.format(*names), {"np": np, **dict(zip(names, operands, strict=True))})


@pytest.mark.parametrize(
    ("name", "shapes", "kwargs"),
    [
        ("matmul_nt", [(5, 3), (4, 3)], {}),
        ("matmul_nt", [(2, 5, 3), (2, 4, 3)], {}),
        ("matmul_tn", [(5, 3), (5, 4)], {}),
        ("matmul_tn", [(2, 5, 3), (5, 4)], {}),
        ("matmul_nt", [(128, 1), (64, 1)], {}),  # one term: an outer product, a broadcast multiply
        ("matmul_nt", [(2, 5, 1), (4, 1)], {}),
        ("matmul_tn", [(1, 5), (1, 4)], {}),
        ("matmul_tn", [(3, 1, 5), (1, 4)], {}),
        ("sum_to", [(128, 64)], {"shape": (64,)}),  # the leading axis dropped
        ("sum_to", [(128, 1)], {"shape": (1,)}),
        ("sum_to", [(6, 4, 3)], {"shape": (4, 1)}),  # kept as 1 and dropped: summed, then reshaped
        ("sum_to", [(6, 4, 3)], {"shape": (1, 4, 1)}),  # kept: keepdims alone
        ("sum_to", [(5,)], {"shape": ()}),  # all summed: a 0-d array, as the forward gives
        ("sum", [(7, 5)], {}),
        ("sum", [(7, 5)], {"keepdims": True}),
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_each_form_computes_its_forward_bit_for_bit(name: str, shapes: list[Any], kwargs: Any, dtype: Any) -> None:
    rng = np.random.default_rng(3)
    operands = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    expression = numpy_forms.form_of(name, operands, kwargs)
    assert expression is not None
    got, want = _form_value(expression, *operands), REGISTRY[name].numpy_forward(*operands, **kwargs)
    assert type(got) is type(want)
    assert got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes()


def test_forms_decline_what_they_do_not_cover() -> None:
    vector, matrix = np.ones(3), np.ones((3, 3))
    assert numpy_forms.form_of("matmul_nt", [vector, matrix], {}) is None  # (a vector: the forward explains)
    assert numpy_forms.form_of("sum_to", [matrix], {"shape": (3, 3)}) is None  # nothing summed: x itself
    assert numpy_forms.form_of("sum", [matrix], {"axis": 0}) is None
    assert numpy_forms.form_of("sum", [matrix, 0], {}) is None  # an axis given by position
    assert numpy_forms.form_of("exp", [matrix], {}) is None
    assert numpy_forms.factor_of("tanh_backward", [np.ones(3, np.float32), np.ones(3)], {}) is None
    assert numpy_forms.factor_of("tanh_backward", [np.ones(()), np.ones(())], {}) is None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_shared_tanh_factor_gives_the_forward_bit_for_bit(dtype: Any) -> None:
    rng = np.random.default_rng(4)
    g, y = rng.standard_normal((6, 5)).astype(dtype), np.tanh(rng.standard_normal((6, 5))).astype(dtype)
    factor = numpy_forms.factor_of("tanh_backward", [g, y], {})
    assert factor is not None
    made, product = factor
    local = {"np": np, "a0": g, "a1": y}
    exec(made.format("a0", "a1", d="d"), local)
    got = eval(product.format("a0", "a1", d="d").replace("{into}", ""), local)
    assert got.tobytes() == REGISTRY["tanh_backward"].numpy_forward(g, y).tobytes()


def test_a_replay_holds_only_the_arrays_still_needed() -> None:
    # Forty steps in a row whose gradients need no forward value: each intermediate is dropped
    # once the next is made, so the replay's peak is a few arrays, not forty (hand-written numpy's
    # temporaries die alike).
    def chain(x: Any) -> Any:
        for _ in range(20):
            x = x * 1.5 - 0.25
        return (x * 1.0).sum()

    taped = ab.tape.value_and_grad(chain)
    x = np.linspace(0.0, 1.0, 50_000)
    for _ in range(5):  # traced, then checked against eager
        taped.arrays(x)
    assert taped.source(x).count("del ") >= 20
    tracemalloc.start()
    try:
        taped.arrays(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * x.nbytes  # (every intermediate kept: more than 40)


@op("scaled_by_s9")
def _scaled_by_s9(x: Any, s9: float = 2.0) -> Any:
    """x * s9, with a parameter named like a replay's slot. Shapes: any -> same."""
    return x * s9


_scaled_by_s9.defvjp(lambda g, out, x, s9=2.0: g * s9, plain_arrays=True)
del REGISTRY["scaled_by_s9"]  # a test-only op: keep the registry-driven suites to the library's ops


def test_a_keyword_named_like_a_slot_is_not_read_as_one() -> None:
    # `f0(s0, s9=k0_0)`: s9 is the op's parameter, not a slot; dropping "it" raised UnboundLocalError.
    taped = ab.tape.value_and_grad(lambda x: _scaled_by_s9(x, s9=3.0).sum())
    for _ in range(4):
        value, (grad,) = taped.arrays(np.ones(3))
        assert value == 9.0 and grad.tolist() == [3.0, 3.0, 3.0]
    assert "del s9" not in taped.source(np.ones(3))


def _w5_like(w1: Any, b1: Any, w2: Any, x: Any, y: Any) -> Any:
    h = ab.tanh(x @ w1 + b1)
    return 0.5 * ((h @ w2 - y) ** 2).sum()


def test_results_go_into_dead_temporaries_and_stay_exact() -> None:
    rng = np.random.default_rng(5)
    shapes = [(3, 8), (8,), (8, 2), (16, 3), (16, 2)]
    taped = ab.tape.value_and_grad(_w5_like, (0, 1, 2))
    for _ in range(5):
        args = [rng.standard_normal(s) for s in shapes]
        value, grads = taped.arrays(*args)
        tensors = [ab.tensor(a, requires_grad=i < 3) for i, a in enumerate(args)]
        loss = _w5_like(*tensors)
        for got, want in zip([value, *grads], [loss, *ab.grad(loss, tensors[:3])], strict=True):
            assert got.tobytes() == want.data.tobytes()
    source = taped.source(*args)
    assert ", out=s" in source  # (this program does write into temporaries)
    assert taped.eager_reasons == {}


def test_a_temporary_something_views_is_never_written_into() -> None:
    # t is dead after `t + 1.0`, but `t.T` (a view) and `t.reshape` read it before: writing the sum
    # into t would change what they see. The replay must equal eager bit for bit.
    def viewed(a: Any, b: Any) -> Any:
        t = a * b
        view, flat = t.T, t.reshape(-1)
        u = t + 1.0
        return (view * 3.0).sum() + (flat * flat).sum() + (u * u).sum()

    rng = np.random.default_rng(6)
    taped = ab.tape.value_and_grad(viewed, (0, 1))
    for _ in range(5):
        a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
        value, grads = taped.arrays(a, b)
        ta, tb = ab.tensor(a, requires_grad=True), ab.tensor(b, requires_grad=True)
        loss = viewed(ta, tb)
        for got, want in zip([value, *grads], [loss, *ab.grad(loss, [ta, tb])], strict=True):
            assert got.tobytes() == want.data.tobytes()
    assert taped.eager_reasons == {}


def test_the_liveness_rules_refuse_what_could_be_seen() -> None:
    live = program.Liveness()
    fresh, other = np.ones((2, 3)), np.ones((2, 3))
    live.made("s1", fresh)
    live.made("s2", fresh[0])  # a view: never owned
    assert live.owned == {"s1"}
    assert live.call(np.exp, ["s1"], [fresh], {}, "s3", np.exp(fresh)) == ""  # not IEEE arithmetic
    assert live.call(np.add, ["s1", "s0"], [fresh, other.astype(np.float32)], {}, "s4", fresh + other) == ""
    assert live.call(np.add, ["s1", "c0"], [fresh, 2.0], {}, "s5", fresh + 2.0) == "{into}"
    live.call(lambda x: x, ["s1"], [fresh], {}, "s6", fresh)  # a Python forward: it may keep a view
    assert live.call(np.add, ["s1", "c0"], [fresh, 2.0], {}, "s7", fresh + 2.0) == ""
    # A marked line writes into the donor only where the donor is read last and not returned.
    lines = live.finished(["s5 = f(s1, c0{into})  # add", "s8 = g(s5)  # exp"], "return s8, []")
    assert lines == ["s5 = f(s1, c0, out=s1)  # add", "del s1", "s8 = g(s5)  # exp", "del s5"]
    kept = program.Liveness()
    kept.made("s1", fresh)
    kept.call(np.add, ["s1", "c0"], [fresh, 2.0], {}, "s5", fresh + 2.0)
    assert kept.finished(["s5 = f(s1, c0{into})  # add"], "return s1, [s5]") == ["s5 = f(s1, c0)  # add"]
