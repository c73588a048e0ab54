"""autobp.tape: a taped value_and_grad gives the eager numbers bit for bit, or says why it cannot.

Every registered op is also checked on a tape by the registry suite (tests/test_ops.py); this
file checks the tape's own behaviour: signatures, what it refuses, its fallbacks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autobp as ab
from autobp.models import Network
from autobp.tape import MAX_TAPES, TapeError
from autobp.tape.arguments import inputs_and_signature


def _same(got: Any, want: Any) -> bool:
    got, want = np.asarray(getattr(got, "data", got)), np.asarray(getattr(want, "data", want))
    return got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want, equal_nan=True)


def _mlp_loss(w1: ab.Tensor, b1: ab.Tensor, w2: ab.Tensor, x: ab.Tensor, labels: ab.Tensor) -> ab.Tensor:
    hidden = ab.tanh(x @ w1 + b1)
    return ab.nn.functional.cross_entropy(hidden @ w2, labels)


def _mlp_args(rng: np.random.Generator, batch: int = 8) -> tuple[np.ndarray, ...]:
    return (
        rng.standard_normal((5, 7)),
        rng.standard_normal(7),
        rng.standard_normal((7, 3)),
        rng.standard_normal((batch, 5)),
        rng.integers(0, 3, size=batch),
    )


def test_replays_equal_eager_over_many_calls() -> None:
    rng = np.random.default_rng(0)
    taped = ab.tape.value_and_grad(_mlp_loss, (0, 1, 2))
    eager = ab.functional.value_and_grad(_mlp_loss, (0, 1, 2))
    for _ in range(5):
        args = _mlp_args(rng)
        (value, grads), (want, wanted) = taped(*args), eager(*[ab.tensor(a) for a in args])
        assert _same(value, want)
        assert all(_same(g, w) for g, w in zip(grads, wanted, strict=True))
    assert len(taped._signatures) == 1  # one signature, one tape, replayed


def test_a_new_shape_is_traced_anew_and_the_old_tape_kept() -> None:
    rng = np.random.default_rng(1)
    taped = ab.tape.value_and_grad(_mlp_loss, 0)
    for batch in (8, 3, 8, 3):
        args = _mlp_args(rng, batch)
        value, g = taped(*args)
        want, wanted = ab.functional.value_and_grad(_mlp_loss, 0)(*[ab.tensor(a) for a in args])
        assert _same(value, want) and _same(g, wanted)
    assert len(taped._signatures) == 2


def test_the_number_of_tapes_is_bounded() -> None:
    taped = ab.tape.value_and_grad(lambda x: (x * x).sum())
    for n in range(1, MAX_TAPES + 4):
        _, g = taped(np.arange(float(n)))
        assert _same(g, 2 * np.arange(float(n)))
    assert len(taped._signatures) == MAX_TAPES


def test_float32_stays_float32() -> None:
    taped = ab.tape.value_and_grad(lambda w, x: ab.sigmoid(x @ w).sum())
    w, x = np.ones((3, 2), np.float32), np.ones((4, 3), np.float32)
    for _ in range(3):
        value, g = taped(w, x)
        assert value.dtype == np.float32 and g.dtype == np.float32


def test_static_arguments_are_part_of_the_signature() -> None:
    taped = ab.tape.value_and_grad(lambda x, power: (x**power).sum())
    x = np.array([1.0, 2.0])
    for power in (2, 3, 2, 3):
        assert _same(taped(x, power)[1], power * x ** (power - 1))
    assert len(taped._signatures) == 2


def test_shapes_with_the_same_dimensions_in_order_are_different_signatures() -> None:
    # The signature lists every array's dimensions one after another: (2, 3), (4,) and (2,), (3, 4)
    # both read 2, 3, 4 there, and must not share a tape.
    taped = ab.tape.value_and_grad(lambda a, b: (a * a).sum() + (b * b * b).sum(), (0, 1))
    for shapes in [((2, 3), (4,)), ((2,), (3, 4)), ((2, 3), (4,)), ((2,), (3, 4))]:
        a, b = (np.arange(1.0, 1.0 + np.prod(s)).reshape(s) for s in shapes)
        _, (ga, gb) = taped(a, b)
        assert _same(ga, 2 * a) and _same(gb, 3 * b * b)
    assert len(taped._signatures) == 2


def test_the_same_array_twice_is_its_own_signature() -> None:
    taped = ab.tape.value_and_grad(lambda a, b: (a * b).sum(), (0, 1))
    x, y = np.array([1.0, 2.0]), np.array([3.0, 5.0])
    _, (ga, gb) = taped(x, x)
    assert _same(ga, x) and _same(gb, x)
    _, (ga, gb) = taped(x, y)  # a different aliasing: traced anew, not read from x's slot
    assert _same(ga, y) and _same(gb, x)


def test_a_value_made_from_data_is_caught_by_the_checked_replay() -> None:
    # w.data * 2 is a constant to a tape (.data is the documented escape from its sight): the
    # first replay on new values is compared with an eager run and shows the difference.
    taped = ab.tape.value_and_grad(lambda w: (w * ab.tensor(w.data * 2)).sum())
    taped(np.array([1.0, 2.0]))
    with pytest.raises(TapeError, match="different value than running it"):
        taped(np.array([3.0, 4.0]))


@pytest.mark.parametrize(
    ("func", "message"),
    [
        (lambda w: (w * 1.0).add_(1.0).sum(), "in-place add_"),
        (lambda w: ab.grad((w * w).sum(), [w])[0].sum(), "first-order backward or grad"),
    ],
    ids=["in-place", "first-order grad"],
)
def test_what_a_tape_cannot_see_is_refused_while_tracing(func: Any, message: str) -> None:
    with pytest.raises(TapeError, match=message):
        ab.tape.value_and_grad(func)(np.array([1.0, 2.0]))
    assert not ab.tape.is_tracing()  # the recorder is gone after the error


def test_hooks_run_while_tracing_and_their_ops_are_replayed() -> None:
    def hooked(w: ab.Tensor) -> ab.Tensor:
        y = w * 2.0
        y.register_hook(lambda g: g * w)  # the hook's ops go on the tape like any other
        return (y * y).sum()

    taped = ab.tape.value_and_grad(hooked)
    for values in ([1.0, 2.0], [3.0, -1.0], [0.5, 4.0]):
        w = np.array(values)
        assert _same(taped(w)[1], 2.0 * (2.0 * 2.0 * w) * w)  # d/dw of (2w)^2 is 8w, times w by the hook


def test_a_second_order_gradient_inside_is_taped() -> None:
    def penalty(w: ab.Tensor, x: ab.Tensor) -> ab.Tensor:
        loss = ab.tanh(x @ w).sum()
        (g,) = ab.grad(loss, [w], create_graph=True)
        return loss + (g * g).sum()

    rng = np.random.default_rng(2)
    taped = ab.tape.value_and_grad(penalty)
    for _ in range(3):
        w, x = rng.standard_normal((3, 2)), rng.standard_normal((4, 3))
        value, g = taped(w, x)
        want, wanted = ab.functional.value_and_grad(penalty)(ab.tensor(w), ab.tensor(x))
        assert _same(value, want) and _same(g, wanted)
    assert not taped.eager_reasons


@pytest.mark.parametrize("reduction", [ab.max, ab.min, ab.prod, ab.std])
def test_ops_whose_gradient_reads_values_run_eagerly(reduction: Any) -> None:
    taped = ab.tape.value_and_grad(lambda x: reduction(x * x))
    for values in ([1.0, 3.0, 2.0], [3.0, 1.0, 2.0], [0.0, 2.0, 2.0]):
        x = np.array(values)
        value, g = taped(x)
        want, wanted = ab.functional.value_and_grad(lambda t: reduction(t * t))(ab.tensor(x))
        assert _same(value, want) and _same(g, wanted)
    (reason,) = taped.eager_reasons.values()  # no tape for this signature: eager every call
    assert f"{reduction.__name__}'s gradient reads" in reason


def test_an_index_computed_from_the_inputs_runs_eagerly() -> None:
    # getitem's index is a keyword: computed from x, a tape would freeze it.
    taped = ab.tape.value_and_grad(lambda x: x[ab.argmax(x)] * 2.0)
    for values in ([1.0, 3.0, 2.0], [3.0, 1.0, 2.0]):
        _, g = taped(np.array(values))
        assert _same(g, 2.0 * (np.array(values) == max(values)))
    assert list(taped.eager_reasons.values()) == ["a keyword argument of 'getitem' is computed from the inputs"]


def test_a_read_whose_guard_keeps_failing_is_named_with_its_dtype_and_shape() -> None:
    func = lambda x: (x * float(x.sum())).sum()  # noqa: E731 (a new value read on every call)
    taped = ab.tape.value_and_grad(func)
    for step in range(ab.tape.MAX_TRACES + 2):
        x = np.array([1.0, 2.0 + step])
        assert _same(taped(x)[1], ab.functional.value_and_grad(func)(ab.tensor(x))[1])
    (reason,) = taped.eager_reasons.values()
    assert f".item() of a {ab.backends.describe(ab.tensor([1.0, 2.0]).sum())} value" in reason  # float64[]


def test_anomaly_mode_runs_eagerly() -> None:
    taped = ab.tape.value_and_grad(lambda x: (x * x).sum())
    with ab.detect_anomaly():
        assert _same(taped(np.array([1.0, 2.0]))[1], np.array([2.0, 4.0]))
    assert not taped._signatures[next(iter(taped._signatures))].tapes  # nothing traced in anomaly mode
    assert _same(taped(np.array([1.0, 2.0]))[1], np.array([2.0, 4.0]))  # traced once it is over
    assert len(next(iter(taped._signatures.values())).tapes) == 1


@pytest.mark.parametrize(
    ("func", "args", "argnums", "error", "message"),
    [
        (
            lambda x: x * 2.0,
            (np.ones(2),),
            0,
            ValueError,
            r"must return a single one-element Tensor, got shapes \[\(2,\)\]",
        ),
        (lambda x: (x * 2.0).sum(), (np.ones(2),), 3, IndexError, "argnums 3 out of range for 1 positional"),
        (lambda i: (i * 2.0).sum(), (ab.arange(3),), 0, TypeError, "is differentiated but not floating-point"),
    ],
    ids=["not scalar", "argnum out of range", "int Tensor argnum"],
)
def test_bad_calls_raise_clear_errors(
    func: Any, args: tuple[Any, ...], argnums: Any, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        ab.tape.value_and_grad(func, argnums)(*args)


def test_results_are_tensors_and_arrays_returns_arrays() -> None:
    taped = ab.tape.value_and_grad(lambda x: (x * x).sum())
    value, g = taped(ab.tensor([1.0, 2.0]))
    assert isinstance(value, ab.Tensor) and isinstance(g, ab.Tensor) and not g.requires_grad
    value_array, grads = taped.arrays(np.array([1.0, 2.0]))
    assert isinstance(value_array, np.ndarray | np.generic) and _same(grads[0], np.array([2.0, 4.0]))
    assert "taped value_and_grad" in repr(taped)


def test_the_seed_network_trains_the_same_taped_or_not() -> None:
    rng = np.random.default_rng(3)
    x, labels = rng.random((12, 60)), rng.integers(0, 4, size=60)
    nets = [Network([12, 6, 4], rng=5, taped=taped) for taped in (True, False)]
    histories = [net.SGD((x, labels), epochs=2, mini_batch_size=7, eta=2.0) for net in nets]
    assert histories[0] == histories[1]  # mini-batches of 7 and a last one of 4: two tapes
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        assert _same(a, b)


def test_a_taped_function_inside_a_traced_one_is_refused() -> None:
    inner = ab.tape.value_and_grad(lambda x: (x * x).sum())
    inner(np.array([1.0, 2.0]))
    inner(np.array([1.0, 2.0]))  # traced and checked: it would replay plain arrays

    def outer(x: ab.Tensor) -> ab.Tensor:
        value, _ = inner(x)
        return value * x.sum()

    with pytest.raises(TapeError, match="while another one was being traced"):
        ab.tape.value_and_grad(outer)(np.array([1.0, 2.0]))
    assert not ab.tape.is_tracing()


def test_the_replayed_program_can_be_read() -> None:
    taped = ab.tape.value_and_grad(lambda w, x: ab.sigmoid(x @ w).sum())
    w, x = np.ones((3, 2)), np.ones((4, 3))
    source = taped.source(w, x)
    assert source.startswith("def replay(inputs):")
    ops = [line.rsplit("# ", 1)[1] for line in source.splitlines() if line.startswith("    s") and "  # " in line]
    assert ops[:3] == ["matmul", "sigmoid", "sum"]  # the forward, then the backward's ops
    assert "sigmoid_backward" in ops and "matmul_tn" in ops
    assert ab.tape.value_and_grad(lambda x: ab.max(x)).source(x).startswith("# no tape: this signature runs eagerly")


def test_a_product_with_ones_is_replayed_as_its_operand() -> None:
    # sum(exp(x w - y)): exp's gradient multiplies its output by the sum's gradient, ones.
    taped = ab.tape.value_and_grad(lambda w, x, y: ab.exp(x @ w - y).sum())
    rng = np.random.default_rng(3)
    args = rng.standard_normal((3, 2)), rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    ops = [line.rsplit("# ", 1)[1] for line in taped.source(*args).splitlines() if "  # " in line]
    assert ops == ["matmul", "sub", "exp", "sum", "matmul_tn"]  # no mul: exp's output is the gradient
    new = [a + 1.0 for a in args]
    want = ab.functional.value_and_grad(lambda w, x, y: ab.exp(x @ w - y).sum())(*new)
    value, (grad,) = taped.arrays(*new)
    assert _same(value, want[0]) and _same(grad, want[1])


def test_a_gradient_that_is_a_product_with_ones_stays_its_own_array() -> None:
    taped = ab.tape.value_and_grad(lambda x: ab.square(x).sum() * 0.5)  # gradient: ones * x
    x = np.arange(3.0)
    for _ in range(3):  # trace, checked replay, replay
        _, (grad,) = taped.arrays(x)
        assert np.array_equal(grad, x) and not np.shares_memory(grad, x)


def test_a_product_with_ones_that_changes_the_dtype_is_kept() -> None:
    ones = np.ones(3)  # float64: the float32 operand is promoted, so the product is not the operand
    taped = ab.tape.value_and_grad(lambda x: (ab.tanh(x) * ones).sum())
    x = np.linspace(-1, 1, 3, dtype=np.float32)
    lines = taped.source(x).splitlines()
    ops = [line.rsplit("# ", 1)[1] for line in lines if line.startswith("    s") and "  # " in line]  # (no guards)
    # (the gradient's cast of `ones`, which the function closes over, is replayed: ones may change)
    assert ops == ["tanh", "mul", "sum", "astype", "tanh_backward"]
    value, _ = taped.arrays(x)
    assert value.dtype == np.float64


class _Marked(np.ndarray):
    """An ndarray subclass, as some libraries hand out (np.matrix, masked arrays are others)."""


def test_an_ndarray_subclass_is_an_input_like_any_array() -> None:
    taped = ab.tape.value_and_grad(lambda w, x: ab.tanh(x @ w).sum())
    w, x = np.linspace(-1, 1, 6).reshape(3, 2), np.linspace(0, 1, 12).reshape(4, 3)
    for scale in (1.0, 2.0, 3.0):  # trace, checked replay, replay
        marked = (scale * w).view(_Marked)
        value, (grad,) = taped.arrays(marked, x)
        want_value, want_grad = ab.functional.value_and_grad(lambda w, x: ab.tanh(x @ w).sum())(scale * w, x)
        assert _same(value, want_value) and np.array_equal(np.asarray(grad), want_grad.data)


_POOL_SHAPES = [(), (0,), (2,), (3,), (2, 3), (3, 2), (6,), (1, 2, 3)]


# An argument list: per argument, a shape (its index in _POOL_SHAPES), a dtype, and which of three arrays.
_ARGUMENT_LISTS = st.lists(
    st.tuples(st.integers(0, len(_POOL_SHAPES) - 1), st.sampled_from(["f4", "f8"]), st.integers(0, 2)), max_size=4
)


@given(_ARGUMENT_LISTS, _ARGUMENT_LISTS)
def test_calls_of_numpy_arrays_share_a_signature_exactly_when_their_shapes_dtypes_and_aliases_do(
    first: list[tuple[int, str, int]], second: list[tuple[int, str, int]]
) -> None:
    # A signature must tell apart every array's dtype and shape, in order ((2, 3), (4,) against
    # (2,), (3, 4)), and which arguments are one array; and nothing else, or calls that could
    # share a tape would each trace their own.
    pool: dict[tuple[int, str, int], np.ndarray] = {}

    def arrays(spec: list[tuple[int, str, int]]) -> tuple[np.ndarray, ...]:
        # The third number picks one of a few arrays of that shape and dtype: equal picks alias.
        return tuple(pool.setdefault(s, np.zeros(_POOL_SHAPES[s[0]], s[1])) for s in spec)

    def described(values: tuple[np.ndarray, ...]) -> Any:
        ids = [id(v) for v in values]
        return [(v.dtype, v.shape) for v in values], [ids.index(i) for i in ids]

    a, b = arrays(first), arrays(second)
    (inputs_a, key_a), (_, key_b) = inputs_and_signature(a), inputs_and_signature(b)
    assert inputs_a == list(a)
    assert (key_a == key_b) == (described(a) == described(b))


def test_signatures_with_the_same_dtypes_and_dimensions_in_another_grouping_differ() -> None:
    # Keys list each array's dtype and then its dimensions: two 0-d arrays, and a 0-d array beside
    # a (0, 0) Tensor, must not meet (a key that listed dtypes first, then all dimensions, would
    # read float64, float64, 0, 0 for both if it dropped the dimension counts).
    zero_d = np.zeros(())
    _, two_scalars = inputs_and_signature((zero_d, np.zeros(())))
    assert inputs_and_signature((zero_d, ab.tensor(np.zeros((0, 0)))))[1] != two_scalars
    assert inputs_and_signature((zero_d, 0.0))[1] != two_scalars  # a static argument is no array
    # A Tensor is keyed by its array: the tape replays either on the same slots.
    assert inputs_and_signature((ab.tensor(zero_d), np.zeros(())))[1] == two_scalars
