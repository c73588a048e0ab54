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
    # The forward's product is laid out as y is; the form's as numpy lays out g and the factor.
    assert numpy_forms.factor_of("tanh_backward", [matrix, np.asfortranarray(matrix)], {}) is None
    assert numpy_forms.factor_of("tanh_backward", [np.ones(6)[::2], np.ones(6)[::2]], {}) is None


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_shared_tanh_factor_gives_the_forward_bit_for_bit(dtype: Any, order: str) -> None:
    rng = np.random.default_rng(4)
    g, y = rng.standard_normal((6, 5)).astype(dtype), np.tanh(rng.standard_normal((6, 5))).astype(dtype)
    g, y = np.asarray(g, order=order), np.asarray(y, order=order)
    factor = numpy_forms.factor_of("tanh_backward", [g, y], {})
    assert factor is not None
    made, product = factor
    local = {"np": np, "a0": g, "a1": y}
    exec(made.format("a0", "a1", d="d"), local)
    got = eval(product.format("a0", "a1", d="d").replace("{into}", ""), local)
    want = REGISTRY["tanh_backward"].numpy_forward(g, y)
    assert (got.tobytes(), got.strides) == (want.tobytes(), want.strides)


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


def _bits_of(taped: Any, func: Any, *args: np.ndarray) -> list[tuple[bytes, bytes]]:
    """Per result, the taped call's bytes beside the eager call's (which must be equal)."""
    value, grads = taped.arrays(*args)
    tensors = [ab.tensor(a, requires_grad=True) for a in args]
    loss = func(*tensors)
    wanted = ab.grad(loss, tensors)
    return [
        (np.asarray(got).tobytes(), want.data.tobytes())
        for got, want in zip([value, *grads], [loss, *wanted], strict=True)
    ]


def _mixed_layouts(x: Any, y: Any) -> Any:
    # sin(x) is laid out as x is; divided by cos(y), numpy lays the quotient out in C order when
    # the two differ (x in Fortran order): writing it into sin(x)'s array would keep x's layout,
    # and the sum would add the same numbers in another order (the last bit differs).
    return (ab.sin(x) / ab.cos(y)).sum() * 1.0


def test_a_result_goes_into_an_operand_only_where_laid_out_alike() -> None:
    # (found by tests/test_tape_fuzz.py at 1000 programs: a transpose's tanh took a quotient)
    rng = np.random.default_rng(12)
    taped = ab.tape.value_and_grad(_mixed_layouts, (0, 1))
    for _ in range(3):
        x, y = np.asfortranarray(rng.standard_normal((16, 16))), rng.standard_normal((16, 16))
        for got, want in _bits_of(taped, _mixed_layouts, x, y):
            assert got == want
    # the shortcuts' own rules keep the layouts (the check when compiling is the backstop)
    assert next(iter(taped._signatures.values())).tapes[0].plain_because is None


def test_an_input_laid_out_otherwise_gets_a_tape_of_its_own() -> None:
    # Traced on C-ordered arrays, the quotient may go into sin(x)'s array; an x in Fortran order
    # (the same shape and dtype) would then give the quotient x's layout: a signature has strides.
    rng = np.random.default_rng(13)
    taped = ab.tape.value_and_grad(_mixed_layouts, (0, 1))
    x, y = rng.standard_normal((16, 16)), rng.standard_normal((16, 16))
    assert all(got == want for got, want in _bits_of(taped, _mixed_layouts, x, y))
    assert "out=s" in taped.source(x, y)  # (the shortcut is taken for C-ordered inputs)
    for _ in range(3):
        x, y = np.asfortranarray(rng.standard_normal((16, 16))), rng.standard_normal((16, 16))
        assert all(got == want for got, want in _bits_of(taped, _mixed_layouts, x, y))
    assert len(taped._signatures) == 2


def _times_ones(x: Any) -> Any:
    # sin(x.T) is in Fortran order; its product with a C-ordered array of ones is in C order.
    return (ab.sin(ab.transpose(x)) * ab.tensor(np.ones((16, 16)))).sum() * 1.0


def _sloppy_times_one(opdef: Any, refs: Any, out: Any, recorder: Any, constant: Any) -> Any:
    # compile._times_one without its layout condition: x * ones is x, whatever x's layout
    if opdef.name != "mul":
        return None
    kept, one = refs
    return kept if constant[one] and not constant[kept] and np.all(recorder.values[one] == 1) else None


def test_the_layout_check_catches_a_shortcut_that_lays_an_array_out_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shortcut that breaks the layout rule is caught when the tape is compiled: the tape calls
    the forwards plainly, and the numbers are eager's. Without the check they would differ."""
    from autobp.tape import compile as compiled

    rng = np.random.default_rng(14)
    xs = [rng.standard_normal((16, 16)) for _ in range(3)]
    monkeypatch.setattr(compiled, "_times_one", _sloppy_times_one)
    taped = ab.tape.value_and_grad(_times_ones)
    assert all(got == want for x in xs for got, want in _bits_of(taped, _times_ones, x))
    tape = next(iter(taped._signatures.values())).tapes[0]
    assert tape.plain_because is not None and "laid out otherwise" in tape.plain_because
    monkeypatch.setattr(compiled, "_layout_differs", lambda *args: None)
    unchecked = ab.tape.value_and_grad(_times_ones)
    # (the first replay on new values is compared with an eager run: it raises; a tape checked on
    # values where the sums happen to agree would give wrong bits silently after)
    with pytest.raises(ab.tape.TapeError, match="different value than running it"):
        [_bits_of(unchecked, _times_ones, x) for x in xs]


def test_a_tape_whose_plain_program_is_still_laid_out_otherwise_runs_eagerly(monkeypatch: pytest.MonkeyPatch) -> None:
    from autobp.tape import compile as compiled

    monkeypatch.setattr(compiled, "_times_one", _sloppy_times_one)
    # (the plain program taking the shortcut too: what a forward laying arrays out by chance would give)
    monkeypatch.setattr(compiled, "_program", lambda recorder, results, plain: _unplain(recorder, results))
    taped = ab.tape.value_and_grad(_times_ones)
    x = np.random.default_rng(15).standard_normal((16, 16))
    assert all(got == want for got, want in _bits_of(taped, _times_ones, x))
    (reason,) = taped.eager_reasons.values()
    assert "lays slot" in reason and "otherwise than the eager call" in reason


_plain_program = __import__("autobp.tape.compile", fromlist=["_program"])._program


def _unplain(recorder: Any, results: Any) -> Any:
    return _plain_program(recorder, results, plain=False)


def _product_sum(w: Any, v: Any) -> Any:
    return (w @ v).sum()


def test_a_strided_argument_is_computed_on_as_functional_computes_on_it() -> None:
    # functional.value_and_grad makes a Tensor of a view taking every other column (a packed
    # copy); numpy's matmul adds in another order on the view itself: the tape packs it too.
    rng = np.random.default_rng(16)
    taped = ab.tape.value_and_grad(_product_sum, (0, 1))
    eager = ab.functional.value_and_grad(_product_sum, (0, 1))
    for _ in range(4):
        w, v = rng.standard_normal((2, 6))[:, ::2], rng.standard_normal(6)[::2]
        value, grads = taped.arrays(w, v)
        want, wanted = eager(w, v)
        for got, expected in zip([value, *grads], [want, *wanted], strict=True):
            assert np.asarray(got).tobytes() == expected.data.tobytes()
    assert taped.eager_reasons == {}
    # tape.hvp's directions are Tensors in functional.hvp: packed alike (the tangent of the
    # gradient has dw @ v in it)
    hvp = ab.tape.hvp(_squared_product_sum, (0, 1))
    for _ in range(3):
        w, v = rng.standard_normal((4, 16))[:, ::2], rng.standard_normal(16)[::2]
        dw, dv = rng.standard_normal((4, 16))[:, ::2], rng.standard_normal(16)[::2]
        value, products = hvp.arrays(w, v, (dw, dv))
        tensors = (ab.tensor(w), ab.tensor(v)), (ab.tensor(dw), ab.tensor(dv))
        want, wanted = ab.functional.hvp(_squared_product_sum, *tensors)
        for got, expected in zip([value, *products], [want, *wanted], strict=True):
            assert np.asarray(got).tobytes() == expected.data.tobytes()
    assert hvp.eager_reasons == {}


def _squared_product_sum(w: Any, v: Any) -> Any:
    return ((w @ v) ** 2).sum()


def _sloppy_into(self: Any, operands: Any, values: Any, value: Any) -> str:
    # Liveness.into without its layout condition: any owned, unviewed operand of the shape
    if not self.aliases or type(value) is not np.ndarray or not value.ndim:
        return ""
    names = [n for n, v in zip(operands, values, strict=True) if n in self.owned and n not in self.viewed]
    donors = tuple([n for n, v in zip(operands, values, strict=True) if n in names and v.shape == value.shape])
    if not donors:
        return ""
    self.donors.append(donors)
    return program.INTO


def test_the_layout_check_catches_a_result_written_into_an_operand_laid_out_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from autobp.tape import compile as compiled

    monkeypatch.setattr(program.Liveness, "into", _sloppy_into)
    rng = np.random.default_rng(17)
    x, y = np.asfortranarray(rng.standard_normal((16, 16))), rng.standard_normal((16, 16))
    taped = ab.tape.value_and_grad(_mixed_layouts, (0, 1))
    assert all(got == want for got, want in _bits_of(taped, _mixed_layouts, x, y))
    tape = next(iter(taped._signatures.values())).tapes[0]
    assert tape.plain_because is not None and "out=" not in tape.source
    monkeypatch.setattr(compiled, "_layout_differs", lambda *args: None)
    unchecked = ab.tape.value_and_grad(_mixed_layouts, (0, 1))
    unchecked.arrays(x, y)
    # without the check, only the comparison of the traced call with eager saw it (these values'
    # sums differ in the last bit): the signature lost its tape; on values whose sums agree, the
    # tape would have been kept, and been wrong on later ones
    assert list(unchecked.eager_reasons.values()) == ["its replay on the traced values differs from running it"]


def test_a_taped_hvp_whose_plain_program_is_laid_out_otherwise_runs_eagerly(monkeypatch: pytest.MonkeyPatch) -> None:
    from autobp.tape import compile as compiled

    monkeypatch.setattr(compiled, "_times_one", _sloppy_times_one)
    monkeypatch.setattr(compiled, "_program", lambda recorder, results, plain: _unplain(recorder, results))
    hvp = ab.tape.hvp(_times_ones)
    rng = np.random.default_rng(18)
    x, v = rng.standard_normal((16, 16)), rng.standard_normal((16, 16))
    value, product = hvp.arrays(x, v)
    want, wanted = ab.functional.hvp(_times_ones, ab.tensor(x), ab.tensor(v))
    assert np.asarray(value).tobytes() == want.data.tobytes() and product[0].tobytes() == wanted.data.tobytes()
    (reason,) = hvp.eager_reasons.values()
    assert "otherwise than the eager call" in reason


def _data_product(w: Any, x: Any) -> Any:
    return ((x @ w) * 0.5).sum()


@pytest.mark.parametrize("layout", ["F", "T"])
def test_a_data_argument_in_fortran_order_gives_the_same_bits_taped_raw_and_wrapped(layout: str) -> None:
    # functional passes a raw non-differentiated array on; the op saves a copy for its backward
    # (the caller could refill it), which was C-ordered: matmul's gradient added in another order
    # than with the array in a Tensor, or on a tape (the last bit, 16 calls in 20)
    rng = np.random.default_rng(19)
    taped = ab.tape.value_and_grad(_data_product)
    eager = ab.functional.value_and_grad(_data_product)
    for _ in range(6):
        w = rng.standard_normal(48)
        x = np.asfortranarray(rng.standard_normal((64, 48))) if layout == "F" else rng.standard_normal((48, 64)).T
        results = [taped(w, x), eager(w, x), eager(w, ab.Tensor(x))]
        bits = [(value.data.tobytes(), grad.data.tobytes()) for value, grad in results]
        assert bits[0] == bits[1] == bits[2]
