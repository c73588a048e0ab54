"""The machinery around the ops on other array libraries (torch CPU, array_api_strict): backward,
``ab.grad``, create_graph, hooks, anomaly mode, in-place writes and version counting, forward
mode and the tape. Each result is compared with the same computation on numpy.

The graphs use ``add``/``sub``/``mul``/``neg`` and four small test ops written with the array
API standard only (``_sum``, ``_exp``, ``_head``, ``_positive``), so that these tests check the engine, the graph
and the tape, whatever the state of any one op family.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import autobp as ab
from autobp.backends import MixedArraysError, namespace
from autobp.ops.registry import REGISTRY, op

LIBRARIES = [
    pytest.param(
        "torch",
        marks=pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed"),
    ),
    "array_api_strict",
]
TOLERANCE = {"float64": 1e-12, "float32": 1e-5}


@op("test_graph_sum")
def _sum(x: Any) -> Any:
    """The sum of all elements. Shapes: any -> ()."""
    return namespace(x).sum(x)


@op("test_graph_exp")
def _exp(x: Any) -> Any:
    """Elementwise exp. Shapes: any -> same."""
    return namespace(x).exp(x)


@op("test_graph_head", differentiable=False)
def _head(x: Any) -> Any:
    """The first two elements along axis 0, a view where the library makes one. Shapes: (n, ...) -> (2, ...)."""
    return x[0:2]


@op("test_graph_positive", differentiable=False)
def _positive(x: Any) -> Any:
    """Elementwise x > 0. Shapes: any -> same (bool)."""
    return namespace(x).greater(x, 0.0)


@op("test_graph_masked")
def _masked(x: Any) -> Any:
    """x where x > 0, else 0. Shapes: any -> same."""
    return x * namespace(x).astype(x > 0.0, x.dtype)


for _name in ("test_graph_sum", "test_graph_exp", "test_graph_head", "test_graph_positive", "test_graph_masked"):
    del REGISTRY[_name]  # keep the test ops out of the registry-driven suite

_sum.defvjp(lambda grad, out, x: grad + x * 0.0, plain_arrays=True)  # d sum/dx_i = 1
_sum.defjvp(lambda tangent, out, x: _sum(tangent), plain_arrays=True)  # linear
_exp.defvjp(lambda grad, out, x: grad * out, plain_arrays=True)  # d e^x = e^x dx
_exp.defjvp(lambda tangent, out, x: tangent * out, plain_arrays=True)
# A float times a bool mask: numpy and torch take it, array-api-strict refuses it (no promotion).
_masked.defvjp(lambda grad, out, x: grad * (x > 0.0), plain_arrays=True)


def _loss(x: ab.Tensor, y: ab.Tensor) -> ab.Tensor:
    """A scalar of two vectors with products, constants, exp and a reused intermediate."""
    z = x * y - _exp(x * 0.5) + (-y)
    return _sum(z * z * 0.25 + z * x)


def _on(library: str, array: np.ndarray, requires_grad: bool = False) -> ab.Tensor:
    return ab.tensor(ab.backends.library(library).from_numpy(array), requires_grad=requires_grad)


def _host(value: ab.Tensor) -> np.ndarray:
    return value.numpy()


def _samples(dtype: str = "float64") -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.uniform(-1, 1, 5).astype(dtype), rng.uniform(-1, 1, 5).astype(dtype)


def _assert_like(got: ab.Tensor, want: ab.Tensor, library: str) -> None:
    """``got`` (on ``library``) holds ``want``'s numpy values, in ``want``'s dtype."""
    assert got.library == library, got
    assert ab.backends.library(library).dtype_name(got.dtype) == str(want.dtype)
    np.testing.assert_allclose(_host(got), want.numpy(), rtol=TOLERANCE[str(want.dtype)], atol=0)


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_grad_equals_numpys(library: str, dtype: str) -> None:
    a, b = _samples(dtype)
    x, y = ab.tensor(a, requires_grad=True), ab.tensor(b, requires_grad=True)
    want = ab.grad(_loss(x, y), [x, y])
    xs, ys = _on(library, a, True), _on(library, b, True)
    got = ab.grad(_loss(xs, ys), [xs, ys])
    for g, w in zip(got, want, strict=True):
        _assert_like(g, w, library)


@pytest.mark.parametrize("library", LIBRARIES)
def test_second_order_gradients_equal_numpys(library: str) -> None:
    a, b = _samples()

    def second(x: ab.Tensor, y: ab.Tensor) -> tuple[ab.Tensor, ...]:
        gx, gy = ab.grad(_loss(x, y), [x, y], create_graph=True)
        return ab.grad(_sum(gx * gy), [x, y])

    want = second(ab.tensor(a, requires_grad=True), ab.tensor(b, requires_grad=True))
    got = second(_on(library, a, True), _on(library, b, True))
    for g, w in zip(got, want, strict=True):
        _assert_like(g, w, library)


# -- Python numbers at higher order -----------------------------------------------------------------

WITH_NUMPY = ["numpy", *LIBRARIES]
# u(x) with a Python number c, and u's first three derivatives (numpy, float64).
SCALAR_OPS: dict[str, tuple[Callable[[Any, Any], Any], Callable[[np.ndarray, Any], list[np.ndarray]]]] = {
    "mul": (lambda x, c: x * c, lambda x, c: [c + 0 * x, 0 * x, 0 * x]),
    "rmul": (lambda x, c: c * x, lambda x, c: [c + 0 * x, 0 * x, 0 * x]),
    "div": (lambda x, c: x / c, lambda x, c: [1 / c + 0 * x, 0 * x, 0 * x]),
    "rdiv": (lambda x, c: c / x, lambda x, c: [-c / x**2, 2 * c / x**3, -6 * c / x**4]),
    "add": (lambda x, c: x + c, lambda x, c: [1 + 0 * x, 0 * x, 0 * x]),
    "sub": (lambda x, c: x - c, lambda x, c: [1 + 0 * x, 0 * x, 0 * x]),
    "rsub": (lambda x, c: c - x, lambda x, c: [-1 + 0 * x, 0 * x, 0 * x]),
    "pow": (
        lambda x, c: x**c,
        lambda x, c: [c * x ** (c - 1), c * (c - 1) * x ** (c - 2), c * (c - 1) * (c - 2) * x ** (c - 3)],
    ),
    "rpow": (lambda x, c: c**x, lambda x, c: [c**x * np.log(c) ** k for k in (1, 2, 3)]),
}


def _derivative_of_exp(u: list[np.ndarray], order: int) -> np.ndarray:
    """The order-th derivative of exp(u(x)) from u's derivatives (Faa di Bruno), without exp(u)."""
    u1, u2, u3 = u
    return [u1, u1**2 + u2, u1**3 + 3 * u1 * u2 + u3][order - 1]


@pytest.mark.parametrize("library", WITH_NUMPY)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("c", [4, 0.5], ids=["int", "float"])
@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("name", sorted(SCALAR_OPS))
def test_a_python_number_in_an_op_gives_numpys_derivatives_to_third_order(
    name: str, order: int, c: Any, dtype: str, library: str
) -> None:
    # Each walk but the last records (create_graph), the last is first-order: the op's node is walked
    # both ways, its number a WeakScalar (Node.inputs) and as it came. A Python int is a valid
    # operand of a float array in the array API standard, so array-api-strict must take it too.
    forward, derivatives = SCALAR_OPS[name]
    values = np.array([0.6, 0.9, 1.3])
    x = _on(library, values.astype(dtype), True)
    y = _sum(_exp(forward(x, c)))
    for k in range(order):
        (g,) = ab.grad(y, [x], create_graph=k < order - 1)
        y = _sum(g)
    u = derivatives(values, c)
    want = np.exp(forward(values, c)) * _derivative_of_exp(u, order)
    assert g.library == library and ab.backends.library(library).dtype_name(g.dtype) == dtype
    np.testing.assert_allclose(g.numpy(), want, rtol=TOLERANCE[dtype], atol=0)


@pytest.mark.parametrize("library", ["numpy", "array_api_strict"])  # (torch refuses such an int in the forward)
def test_an_int_beyond_64_bits_works_at_higher_order_where_the_forward_takes_it(library: str) -> None:
    # numpy computes with 2**70 as a weak number; its WeakScalar's 0-d array cannot be an integer
    # one, and the second order raised "cannot make a Tensor from int", naming no op.
    values = np.array([0.5, 1.5])
    x = _on(library, values, True)
    (g,) = ab.grad(_sum(x * x / 2**70), [x], create_graph=True)
    (h,) = ab.grad(_sum(g * x), [x])
    np.testing.assert_array_equal(h.numpy(), 4 * values / 2.0**70)  # powers of two: exact


@pytest.mark.parametrize("library", WITH_NUMPY)
def test_a_numpy_scalar_at_higher_order_computes_as_the_librarys_forward_did(library: str) -> None:
    # numpy 2 computes float32 * np.float64(0.7) in float64 (NEP 50: a numpy scalar is a 0-d array
    # of its dtype); torch in float32, as with the Python number. Each order must do the same as
    # the op did, in the library's own arrays: the numpy scalar mixed libraries on torch.
    values = np.array([0.6, 0.9, 1.3], np.float32)
    if library == "array_api_strict":  # it takes no numpy scalar in its ops: the op says so
        with pytest.raises(TypeError, match=r"^mul: .*numpy\.float64"):
            _on(library, values, True) * np.float64(0.7)
        return
    as_forward_did = np.asarray(0.7) if library == "numpy" else 0.7

    def derivatives(c: Any) -> list[ab.Tensor]:
        x = _on(library, values, True)
        results = [_exp(x * c)]
        y = _sum(results[0])
        for k in range(3):
            (g,) = ab.grad(y, [x], create_graph=k < 2)
            results.append(g)
            y = _sum(g * x)
        return results

    got, want = derivatives(np.float64(0.7)), derivatives(as_forward_did)
    assert ab.backends.library(library).dtype_name(got[0].dtype) == ("float64" if library == "numpy" else "float32")
    for g, w in zip(got, want, strict=True):
        assert g.library == library and g.dtype == w.dtype
        assert g.numpy().tobytes() == w.numpy().tobytes()


@pytest.mark.parametrize("library", ["numpy", LIBRARIES[0]])  # (torch, skipped where not installed)
def test_a_numpy_scalar_follows_each_librarys_own_rule_in_the_forward(library: str) -> None:
    # docs/arrays.md: autobp does not unify the libraries here; each computes as it does alone.
    big = (_on(library, np.array([3e38], np.float32)) * np.float64(2.0)).numpy()
    if library == "numpy":
        assert big.dtype == np.float64 and big[0] == 2 * np.float64(np.float32(3e38))  # 6e38, finite
    else:
        assert big.dtype == np.float32 and np.isinf(big[0])


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize(
    "power",
    [lambda x: x ** np.int64(3), lambda x: x ** np.int64(0), lambda x: np.float64(0.5) ** x],
    ids=["x**3", "x**0", "0.5**x"],
)
def test_pow_with_a_numpy_scalar_on_torch_gives_numpys_derivatives(power: Callable[[Any], Any], order: int) -> None:
    # pow's rules mask x == 0 (and y == 0): with a numpy scalar operand that comparison is an
    # np.bool_, which torch's `&` took for a float and refused, at first order already.
    pytest.importorskip("torch")
    values = np.array([0.0, 0.6, 1.3])

    def derivative(x: ab.Tensor) -> ab.Tensor:
        y = _sum(power(x))
        for k in range(order):
            (g,) = ab.grad(y, [x], create_graph=k < order - 1)
            y = _sum(g)
        return g

    want = derivative(ab.tensor(values, requires_grad=True))
    _assert_like(derivative(_on("torch", values, True)), want, "torch")


def test_a_library_is_asked_how_it_computes_with_a_numpy_scalar(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    from autobp import weak_scalar

    like = torch.ones(2, dtype=torch.float32)
    assert weak_scalar._numpy_scalars_are_weak(ab.backends.namespace(like), like)  # torch: as the number
    assert type(weak_scalar.constant_as_tensor(np.float64(0.7), like)) is weak_scalar.WeakScalar
    # A library with numpy's rule (CuPy with NEP 50; no GPU here, so torch stands in) gets a 0-d
    # array of the scalar's own dtype, in its own library.
    monkeypatch.setitem(weak_scalar._WEAK_NUMPY_SCALARS, "torch", False)
    strong = weak_scalar.constant_as_tensor(np.float64(0.7), like)
    assert type(strong) is ab.Tensor and strong.library == "torch" and strong.data.dtype == torch.float64


@pytest.mark.parametrize("library", LIBRARIES)
def test_backward_accumulates_grad_in_the_library(library: str) -> None:
    a, b = _samples()
    x, y = ab.tensor(a, requires_grad=True), ab.tensor(b, requires_grad=True)
    for _ in range(2):
        _loss(x, y).backward()
    xs, ys = _on(library, a, True), _on(library, b, True)
    for _ in range(2):
        _loss(xs, ys).backward()
    assert xs.grad is not None and ys.grad is not None
    _assert_like(xs.grad, x.grad, library)  # type: ignore[arg-type]
    _assert_like(ys.grad, y.grad, library)  # type: ignore[arg-type]


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_seed_is_taken_in_the_outputs_library_or_refused(library: str) -> None:
    a, b = _samples()
    xs = _on(library, a, True)
    out = xs * _on(library, b)
    (g,) = ab.grad(out, [xs], [b.tolist()], retain_graph=True)  # a list: made in the output's library and dtype
    _assert_like(g, ab.tensor(b * b), library)
    with pytest.raises(MixedArraysError, match=r"grad: the gradient is float64\[5\] but the tensor is"):
        ab.grad(out, [xs], [np.ones(5)], retain_graph=True)
    x = ab.tensor(a, requires_grad=True)
    with pytest.raises(MixedArraysError, match=rf"backward: the gradient is {library}"):
        (x * 2.0).backward(_on(library, np.ones(5)))


@pytest.mark.parametrize("library", LIBRARIES)
def test_hooks_and_retain_grad_see_the_librarys_gradients(library: str) -> None:
    a, b = _samples()
    seen: list[ab.Tensor] = []

    def run(x: ab.Tensor, y: ab.Tensor) -> tuple[ab.Tensor, ab.Tensor, ab.Tensor]:
        x.register_hook(lambda g: g * 2.0)  # doubles x's gradient
        z = x * y
        z.register_hook(lambda g: seen.append(g))
        z.retain_grad()
        (gx,) = ab.grad(_sum(_exp(z)), [x], create_graph=True)
        loss = _sum(gx * x)
        loss.backward(create_graph=True)
        return gx, z.grad, seen[-1]  # type: ignore[return-value]

    with pytest.warns(UserWarning, match="reference cycle"):
        want = run(ab.tensor(a, requires_grad=True), ab.tensor(b))
        got = run(_on(library, a, True), _on(library, b))
    for g, w in zip(got, want, strict=True):
        _assert_like(g, w, library)


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_hook_returning_another_librarys_array_is_refused(library: str) -> None:
    xs = _on(library, np.ones(3), True)
    xs.register_hook(lambda g: np.zeros(3))
    with pytest.raises(MixedArraysError, match=r"hook <lambda>: the gradient is float64\[3\]"):
        ab.grad(_sum(xs * 2.0), [xs])


@pytest.mark.parametrize("library", LIBRARIES)
def test_anomaly_mode_finds_non_finite_values_on_the_library(library: str) -> None:
    x = _on(library, np.array([1.0, np.inf]), True)  # (exp(inf) is inf without a warning on every library)
    with ab.detect_anomaly(), pytest.raises(ab.AnomalyError, match="test_graph_exp' produced 1 inf of 2 values"):
        _exp(x)
    x = _on(library, np.array([1.0, 2.0]), True)
    with ab.detect_anomaly(), pytest.raises(ab.AnomalyError, match="backward of op 'mul' produced 1 nan of 2 values"):
        out = x * _on(library, np.array([0.0, 1.0]))
        ab.grad(out, [x], [_on(library, np.array([np.inf, 1.0]))])  # inf * 0 in mul's rule


@pytest.mark.parametrize("create_graph", [False, True])
def test_a_librarys_error_in_a_rule_names_the_op_and_its_inputs(create_graph: bool) -> None:
    x = _on("array_api_strict", np.array([-1.0, 2.0]), True)
    with pytest.raises(
        TypeError, match=r"^test_graph_masked: in its backward: .*\(inputs: array_api_strict float64\[2\]\)$"
    ):
        ab.grad(_sum(_masked(x)), [x], create_graph=create_graph)


# -- in-place writes -----------------------------------------------------------------------------


def _writes(t: ab.Tensor, operand: Callable[[np.ndarray], Any]) -> ab.Tensor:
    """Every in-place method once, with operands made by ``operand`` from numpy arrays."""
    t.add_(operand(np.array([1.0, 2.0, 3.0])))
    t.sub_(0.5)
    t.mul_(operand(np.array([2.0, -1.0, 0.5])))
    t.div_(4.0)
    t += 1.0
    t -= operand(np.array([0.25, 0.25, 0.25]))
    t *= 3.0
    t /= 2.0
    t.clamp_(-1.0, 1.5)
    t[1] = 7.0
    t[0:1] = operand(np.array([-2.0]))
    return t


def test_in_place_methods_on_torch_match_numpy_and_count_versions() -> None:
    pytest.importorskip("torch")
    want = _writes(ab.tensor(np.array([0.5, -0.5, 2.0])), lambda a: a)
    got = _writes(_on("torch", np.array([0.5, -0.5, 2.0])), lambda a: _on("torch", a))
    _assert_like(got, want, "torch")
    assert got._version == want._version == 11
    got.copy_(_on("torch", np.array([1.0, 2.0, 3.0]))).fill_(4.0)
    assert got.numpy().tolist() == [4.0, 4.0, 4.0] and got.zero_().numpy().tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(MixedArraysError, match=r"add_: tensor torch float64\[3\]: arrays of two libraries"):
        got.add_(np.ones(3))
    with pytest.raises(TypeError, match=r"copy_.*cannot copy torch float64"):
        _on("torch", np.array([1, 2])).copy_(_on("torch", np.array([0.5, 1.5])))  # float into int
    with pytest.raises(ValueError, match=r"operand of shape \(2,\) does not broadcast"):
        got.add_(_on("torch", np.ones(2)))


# In-place writes of a Python int beyond a uint8 tensor's dtype: numpy raises OverflowError for
# each; torch stored it wrapped (u[0] = -1 gave 255, add_(300) added 44).
INT_WRITES = [
    ("setitem", -1, lambda t: t.__setitem__(0, -1)),
    ("setitem", -1, lambda t: t.__setitem__(slice(None), [-1, 2])),
    ("fill_", 256, lambda t: t.fill_(256)),
    ("add_", 300, lambda t: t.add_(300)),
    ("sub_", -1, lambda t: t.sub_(-1)),
    ("mul_", -1, lambda t: t.mul_(-1)),
    ("+=", 300, lambda t: t.__iadd__(300)),
    ("-=", 300, lambda t: t.__isub__(300)),
    ("*=", -1, lambda t: t.__imul__(-1)),
    ("copy_", -1, lambda t: t.copy_(-1)),
    ("clamp_", 300, lambda t: t.clamp_(300, None)),
    ("clamp_", -1, lambda t: t.clamp_(None, -1)),
]


@pytest.mark.parametrize(("method", "value", "write"), INT_WRITES, ids=[f"{m} {v}" for m, v, _ in INT_WRITES])
def test_an_int_beyond_a_torch_tensors_dtype_is_refused_as_numpy_refuses_it(
    method: str, value: int, write: Any
) -> None:
    pytest.importorskip("torch")
    with pytest.raises(OverflowError, match=f"{value} out of bounds for uint8"):
        write(ab.tensor(np.array([1, 2], np.uint8)))
    u = _on("torch", np.array([1, 2], np.uint8))
    with pytest.raises(
        OverflowError,
        match=rf"^{re.escape(method)}: tensor torch uint8\[2\]: Python integer {value} out of bounds for uint8$",
    ):
        write(u)
    assert u.numpy().tolist() == [1, 2] and u._version == 0  # nothing written


def test_copy_of_a_python_number_of_another_kind_is_refused_on_torch_as_on_numpy() -> None:
    pytest.importorskip("torch")
    for target, number in ((np.array([1, 2]), 1.5), (np.array([True, False]), 2), (np.array([1.0, 2.0]), 1j)):
        with pytest.raises(TypeError, match="copy_"):
            ab.tensor(target.copy()).copy_(number)
        with pytest.raises(TypeError, match=r"copy_: .*cannot copy (float|int|complex) .* \(would change the kind\)"):
            _on("torch", target).copy_(number)  # torch stored 1.5 as 1, 2 as True
    ints = _on("torch", np.array([1, 2], np.int16))
    ints.copy_(7)  # the same kind, in range: written, as numpy writes it
    assert ints.numpy().tolist() == [7, 7]


# Writes whose result numpy casts into the tensor's dtype only unsafely: numpy's in-place writes
# cast "same_kind" and raise; torch's can_cast lets int64 into uint8 (300 was written as 44).
UNSAFE_WRITES = [
    ("add_", lambda t, make: t.add_(make(np.array([1, 300])))),
    ("+=", lambda t, make: t.__iadd__(make(np.array([1, 300])))),
    ("copy_", lambda t, make: t.copy_(make(np.array([1, 300])))),
    ("clamp_", lambda t, make: t.clamp_(make(np.array([1, 300])), None)),
    ("mul_", lambda t, make: t.mul_(np.int64(2))),  # a numpy scalar is a typed array to numpy
]


@pytest.mark.parametrize(("method", "write"), UNSAFE_WRITES, ids=[method for method, _ in UNSAFE_WRITES])
def test_a_write_numpy_would_cast_unsafely_is_refused_on_torch(method: str, write: Any) -> None:
    pytest.importorskip("torch")
    with pytest.raises(TypeError, match="same_kind"):
        write(ab.tensor(np.array([1, 2], np.uint8)), ab.tensor)
    u = _on("torch", np.array([1, 2], np.uint8))
    with pytest.raises(TypeError, match=rf"^{re.escape(method)}: tensor torch uint8\[2\]: cannot .* 'same_kind' only"):
        write(u, lambda a: _on("torch", a))
    assert u.numpy().tolist() == [1, 2] and u._version == 0  # nothing written
    for target, operand in (
        (np.array([1, 2], np.int8), np.array([3, 4], np.uint8)),
        (np.ones(2, np.float32), np.ones(2)),
    ):
        want, got = ab.tensor(target.copy()), _on("torch", target)
        want += ab.tensor(operand)  # casts numpy allows: written on both
        got += _on("torch", operand)
        assert got.numpy().dtype == want.numpy().dtype
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_a_write_into_a_torch_view_is_seen_by_the_graph() -> None:
    pytest.importorskip("torch")
    base = _on("torch", np.array([1.0, 2.0, 3.0]))
    head = _head(base)  # a view: one storage, one version counter
    assert head._vc is not None and head._vc is base._vc
    w = _on("torch", np.array([0.5, 0.5]), True)
    out = _sum(w * head)
    base.mul_(3.0)
    with pytest.raises(RuntimeError, match=r"mul: .*(modified|written) in place"):
        ab.grad(out, [w])


def test_array_api_strict_refuses_named_in_place_methods_and_rebinds_augmented_ones() -> None:
    t = _on("array_api_strict", np.array([1.0, 2.0]))
    for write in (lambda: t.add_(1.0), lambda: t.zero_(), lambda: t.__setitem__(0, 1.0), lambda: t.clamp_(0, 1)):
        with pytest.raises(RuntimeError, match=r"\(array_api_strict\): in-place writes are refused"):
            write()
    t = _on("array_api_strict", np.array([1.0, 2.0]))  # (one name alone holds it, as below)
    t += 1.0  # Python's fallback for immutable types: a new tensor, what a write would give
    assert t.numpy().tolist() == [2.0, 3.0]
    t = _on("array_api_strict", np.array([1.0, 2.0]))
    t += t  # (its own operand)
    assert t.numpy().tolist() == [2.0, 4.0]


def _held_by_another_name(t: ab.Tensor) -> tuple[ab.Tensor, ab.Tensor]:
    other = t
    t += 1.0
    return other, t


def _a_view_written(t: ab.Tensor) -> tuple[ab.Tensor, ab.Tensor]:
    view = t[0:2]
    view += 1.0
    return t, view


def _the_base_of_a_live_view_written(t: ab.Tensor) -> tuple[ab.Tensor, ab.Tensor]:
    view = t[0:2]
    t += 1.0
    return view, t


def _a_row_written(t: ab.Tensor) -> tuple[ab.Tensor, ab.Tensor]:
    t = ab.reshape(t, (2, 2))
    for row in t:
        row += 1.0
    return t, t


def _its_array_handed_out(t: ab.Tensor) -> tuple[ab.Tensor, ab.Tensor]:
    array = t.data
    t += 1.0
    return ab.tensor(array), t


def _an_argument_written(t: ab.Tensor) -> tuple[ab.Tensor, ab.Tensor]:
    def add_one(u: ab.Tensor) -> ab.Tensor:
        u += 1.0
        return u

    return t, add_one(t)


def _parameters_stepped(t: ab.Tensor) -> tuple[ab.Tensor, ab.Tensor]:
    parameters = [t.requires_grad_()]
    with ab.no_grad():
        for p in parameters:
            p -= 1.0
    return parameters[0], p


@pytest.mark.parametrize(
    "program",
    [
        _held_by_another_name,
        _a_view_written,
        _the_base_of_a_live_view_written,
        _a_row_written,
        _its_array_handed_out,
        _an_argument_written,
        _parameters_stepped,
    ],
)
def test_augmented_assignment_on_array_api_strict_is_refused_where_a_rebind_differs_from_numpys_write(
    program: Callable[[ab.Tensor], tuple[ab.Tensor, ab.Tensor]],
) -> None:
    # On numpy each writes in place, and both tensors returned see it; array-api-strict's `+=`
    # rebinds the name, which left the other holder (a name, a view's base, the caller, a list of
    # parameters) with the old values, without an error.
    first, second = program(ab.tensor(np.array([1.0, 2.0, 3.0, 4.0])))
    assert first.numpy().flat[0] != 1.0 and second.numpy().flat[0] != 1.0  # (numpy's write reached both)
    with pytest.raises(RuntimeError, match=r"[-+]=: tensor array_api_strict float64\[[24]\] (is|shares)"):
        program(_on("array_api_strict", np.array([1.0, 2.0, 3.0, 4.0])))


@pytest.mark.parametrize("library", ["numpy", *LIBRARIES])
@pytest.mark.parametrize("make", [lambda w: w * 2.0, lambda w: _exp(w)])
def test_augmented_assignment_of_a_graph_tensor_whose_array_was_handed_out_is_refused(
    library: str, make: Callable[[ab.Tensor], ab.Tensor]
) -> None:
    # y += 1 on a graph tensor rebinds y; an array handed out (d = y.data) would keep the old values
    # where a write reaches it. On torch the count of y.data's holders missed the write count its
    # node saved of it, so the rebind went through (d kept [2, 4]).
    w = _on(library, np.array([1.0, 2.0]), True)
    y = make(w)
    handed = y.data
    with pytest.raises(RuntimeError, match=r"\+=: tensor .* shares its memory with an array handed out"):
        y += 1.0
    del handed
    want = _host(y) + 1.0
    y += 1.0  # (nothing else holds it now: the rebind is the write's result)
    np.testing.assert_allclose(_host(y), want, rtol=1e-12)


@pytest.mark.parametrize("library", ["numpy", *LIBRARIES])
def test_a_grad_set_to_a_detach_of_a_graph_tensor_is_not_written_into(library: str) -> None:
    # backward sums into .grad's own array, in place, on every library; a .grad set by hand to
    # memory a graph saved (exp's output) must not be that array: array-api-strict has no
    # read-only flag nor write count, so exp's gradient read the sum, without an error.
    x = _on(library, np.array([1.0, 2.0]), True)
    y = _exp(x)
    w = _on(library, np.array([0.0, 0.0]), True)
    w.grad = y.detach()
    _sum(w * 1.0).backward()
    np.testing.assert_allclose(_host(w.grad), np.exp([1.0, 2.0]) + 1.0, rtol=1e-12)  # type: ignore[arg-type]
    np.testing.assert_allclose(_host(y), np.exp([1.0, 2.0]), rtol=1e-12)
    (g,) = ab.grad(_sum(y), [x])
    np.testing.assert_allclose(_host(g), np.exp([1.0, 2.0]), rtol=1e-12)


@pytest.mark.parametrize("library", ["numpy", *LIBRARIES])
@pytest.mark.parametrize("view", [lambda w: w[0:2], lambda w: ab.reshape(w, (2, 2))[0]])
def test_a_node_that_saved_a_view_of_a_parameter_sees_the_optimizer_write_it(
    library: str, view: Callable[[ab.Tensor], ab.Tensor]
) -> None:
    # array-api-strict's slices and reshapes are views of the numpy memory inside (as numpy's are),
    # but autobp did not know: the view kept a version counter of its own, so after the step
    # ab.grad(y, [v]) gave 2 * (the stepped values), [0, 2], where the saved values give [2, 4].
    w = _on(library, np.array([1.0, 2.0, 3.0, 4.0]), True)
    v = view(w)
    y = _sum(v * v)
    optimizer = ab.optim.SGD([w], lr=1.0)
    w.grad = ab.ones_like(w)
    optimizer.step()
    with pytest.raises(RuntimeError, match=r"mul: .*saved for backward.* (modified|written) in place"):
        ab.grad(y, [v])


def test_writes_through_data_on_torch_are_caught_at_backward() -> None:
    pytest.importorskip("torch")
    w = _on("torch", np.array([1.0, 2.0]), True)
    y = w * w
    y.data.add_(1.0)  # the output mul saved (and the input of the next op)
    with pytest.raises(RuntimeError, match=r"mul: its output \(torch float64\[2\]\), saved for backward, was written"):
        ab.grad(_sum(y * w), [w])
    w = _on("torch", np.array([1.0, 2.0]), True)
    out = _sum(_exp(w))
    w.data.mul_(2.0)  # the input exp saved
    with pytest.raises(RuntimeError, match=r"test_graph_exp: input 0 .* was written in place"):
        ab.grad(out, [w])


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_raw_array_operand_is_copied_when_recorded(library: str) -> None:
    raw = ab.backends.library(library).from_numpy(np.array([1.0, 2.0]))
    w = _on(library, np.array([3.0, 4.0]), True)
    out = _sum(w * raw)
    if library == "torch":
        raw.mul_(10.0)
    else:
        raw[0] = 10.0  # (array_api_strict arrays take __setitem__)
    (g,) = ab.grad(out, [w])
    assert g.numpy().tolist() == [1.0, 2.0]


# -- forward mode ----------------------------------------------------------------------------------


@pytest.mark.parametrize("library", LIBRARIES)
def test_forward_mode_transforms_equal_numpys(library: str) -> None:
    a, b = _samples()

    def f(x: ab.Tensor) -> ab.Tensor:
        return _exp(x * 0.5) * x - x * x

    def scalar(x: ab.Tensor) -> ab.Tensor:
        return _sum(f(x) * x)

    def all_of(x: np.ndarray, v: np.ndarray, make: Callable[[np.ndarray], ab.Tensor]) -> list[ab.Tensor]:
        _, jv = ab.functional.jvp(f, make(x), make(v))
        _, hv = ab.functional.hvp(scalar, make(x), make(v))
        _, hv_rof = ab.functional.hvp(scalar, make(x), make(v), strategy="reverse-over-forward")
        jacobian = ab.functional.jacfwd(f, make(x[:3]))
        hessian = ab.functional.hessian(scalar, make(x[:3]))
        reverse = ab.functional.jacobian(f, make(x[:3]), strategy="reverse-mode")
        with ab.forward_ad.dual_level():
            dual = ab.forward_ad.make_dual(make(x), make(v))
            tangent = ab.forward_ad.unpack_dual(f(dual)).tangent
        return [jv, hv, hv_rof, jacobian, hessian, reverse, tangent]  # type: ignore[list-item]

    want = all_of(a, b, ab.tensor)
    got = all_of(a, b, lambda array: _on(library, array))
    for g, w in zip(got, want, strict=True):
        _assert_like(g, w, library)


@pytest.mark.parametrize("library", LIBRARIES)
def test_forward_mode_jacobians_refuse_random_draws_and_accept_nan_on_every_library(library: str) -> None:
    # The check of repeated calls compares on the arrays' own library: equal, or NaN in both.
    x = _on(library, np.array([1.0, -2.0, 3.0]))
    rng = np.random.default_rng(0)
    with pytest.raises(RuntimeError, match="jacfwd: func gave different values on repeated calls"):
        ab.functional.jacfwd(lambda t: ab.nn.functional.dropout(t, 0.5, rng=rng), x)
    with pytest.raises(RuntimeError, match="hessian: func gave different values on repeated calls"):
        ab.functional.hessian(lambda t: ab.sum(ab.nn.functional.dropout(t, 0.5, rng=rng) ** 3), x)
    jac = ab.functional.jacfwd(lambda t: ab.log(t), x)  # NaN at -2, at every call
    np.testing.assert_allclose(_host(jac), np.diag([1.0, -0.5, 1.0 / 3.0]))
    hess = ab.functional.hessian(lambda t: ab.sum(ab.log(t) * t), x)  # (the value is NaN too)
    np.testing.assert_allclose(_host(hess), np.diag([1.0, -0.5, 1.0 / 3.0]))


# -- the tape --------------------------------------------------------------------------------------


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_taped_step_replays_with_the_library_and_equals_eager(library: str) -> None:
    rng = np.random.default_rng(3)
    taped = ab.tape.value_and_grad(_loss, argnums=(0, 1))
    eager = ab.functional.value_and_grad(_loss, argnums=(0, 1))
    for _ in range(4):  # a trace, then replays (the first on new values is checked against eager)
        a, b = rng.uniform(-1, 1, 5), rng.uniform(-1, 1, 5)
        value, grads = taped(_on(library, a), _on(library, b))
        want_value, want_grads = eager(_on(library, a), _on(library, b))
        for got, want in zip([value, *grads], [want_value, *want_grads], strict=True):
            assert got.library == library
            assert got.numpy().tobytes() == want.numpy().tobytes()  # bit for bit
        numpy_value, numpy_grads = eager(ab.tensor(a), ab.tensor(b))
        for got, want in zip([value, *grads], [numpy_value, *numpy_grads], strict=True):
            _assert_like(got, want, library)
    assert taped.eager_reasons == {}
    assert "test_graph_exp" in taped.source(_on(library, a), _on(library, b))


def _squared_product(w: Any, v: Any) -> Any:
    return ((w @ v) ** 2).sum()


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_taped_call_on_strided_arrays_of_the_library_gives_functionals_bits(library: str) -> None:
    # functional makes Tensors of w[:, ::2] and v[::2] (packed copies); matmul on the views adds in
    # another order: the tape packs them too, and keys the layout (the strides) of the arrays given
    rng = np.random.default_rng(7)
    taped = ab.tape.value_and_grad(_squared_product, argnums=(0, 1))
    eager = ab.functional.value_and_grad(_squared_product, argnums=(0, 1))
    raw = ab.backends.library(library).from_numpy  # (arrays, not Tensors: a Tensor is taken as it is)
    for call in range(6):
        w, v = raw(rng.standard_normal((8, 64))), raw(rng.standard_normal(64))
        if call % 2:
            w, v = w[:, ::2], v[::2]
        else:
            w, v = w[:, :32], v[:32]
        value, grads = taped(w, v)
        want_value, want_grads = eager(w, v)
        for got, want in zip([value, *grads], [want_value, *want_grads], strict=True):
            assert got.numpy().tobytes() == want.numpy().tobytes()  # bit for bit
    assert taped.eager_reasons == {}


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_taped_guard_on_a_read_value_holds_on_the_library(library: str) -> None:
    def branchy(x: ab.Tensor) -> ab.Tensor:
        return _sum(x * x) if bool(_positive(_sum(x))) else _sum(-x)

    taped = ab.tape.value_and_grad(branchy)
    for values in ([1.0, 2.0], [-1.0, -2.0], [3.0, 1.0], [-3.0, 0.5]):
        value, grad = taped(_on(library, np.array(values)))
        want_value, want_grad = ab.functional.value_and_grad(branchy)(ab.tensor(np.array(values)))
        _assert_like(grad, want_grad, library)
        _assert_like(value, want_value, library)
    assert taped.eager_reasons == {}


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_taped_hvp_replays_with_the_library(library: str) -> None:
    rng = np.random.default_rng(5)

    def scalar(x: ab.Tensor) -> ab.Tensor:
        return _sum(_exp(x * 0.5) * x * x)

    taped = ab.tape.hvp(scalar)
    for _ in range(3):
        a, v = rng.uniform(-1, 1, 4), rng.uniform(-1, 1, 4)
        value, product = taped(_on(library, a), _on(library, v))
        want_value, want = ab.functional.hvp(scalar, ab.tensor(a), ab.tensor(v))
        _assert_like(product, want, library)
        _assert_like(value, want_value, library)
    assert taped.eager_reasons == {}


def test_a_view_of_a_callers_raw_torch_array_is_copied() -> None:
    torch = pytest.importorskip("torch")
    raw = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    head = _head(raw)  # would look into the caller's memory, which has no version counter
    w = _on("torch", np.array([1.0, 1.0]), True)
    out = _sum(w * head)
    raw.mul_(10.0)
    assert head.numpy().tolist() == [1.0, 2.0]
    assert ab.grad(out, [w])[0].numpy().tolist() == [1.0, 2.0]


def test_a_write_into_a_torch_copy_where_numpy_gives_a_view_is_refused() -> None:
    pytest.importorskip("torch")
    # numpy's t[::-1] is a view, so writing into it changes t; torch has no negative strides and
    # reads a copy, which a write would change alone: a different number, so an error instead.
    t = _on("torch", np.arange(4.0))
    flipped = t[::-1]
    writes = [
        lambda: flipped.add_(100.0),
        lambda: flipped.__setitem__(0, 5.0),
        lambda: flipped[1:].zero_(),  # a view of the copy
        lambda: flipped.detach().fill_(1.0),
        lambda: t[:, None][::-2, 0].mul_(2.0),
    ]
    for write in writes:
        with pytest.raises(RuntimeError, match=r"copy made by getitem \[.*::-.*torch has no negative-step views"):
            write()
    assert t.numpy().tolist() == [0.0, 1.0, 2.0, 3.0]
    assert flipped.numpy().tolist() == [3.0, 2.0, 1.0, 0.0]
    # What the error offers: write into an explicit copy, or through the base once the copy is
    # gone (a write into t while flipped lives would leave flipped's old values: refused too).
    mine = flipped.copy()
    assert mine.add_(1.0).numpy().tolist() == [4.0, 3.0, 2.0, 1.0]
    new = flipped + 100.0
    with pytest.raises(RuntimeError, match=r"a copy read from its memory by getitem \[::-1\] is still alive"):
        t[::-1] = new
    flipped = None  # (the copy gone: the writes above read the name, so it stays bound)
    t[::-1] = new
    assert t.numpy().tolist() == [100.0, 101.0, 102.0, 103.0]
    t[[2, 0]].add_(1.0)  # an integer array reads a copy in numpy too: writes into it stay there


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_augmented_assignment_of_a_torch_copy_where_numpy_gives_a_view_is_refused_as_numpy_refuses_it(
    library: str,
) -> None:
    pytest.importorskip(library)
    # On numpy, flipped is a view of h (or of c), whose += cannot be a rebind: refused. torch's
    # rebind of its copy left h (and c) as they were where numpy's semantics expect them written.
    x = _on(library, np.array([1.0, 2.0, 3.0]), True)
    h = x * 2.0
    flipped = h[::-1]
    with pytest.raises(
        RuntimeError, match=r"\+=: tensor .*float64\[3\] (shares its memory|holds a copy made by getitem)"
    ):
        flipped += 1.0
    c = _on(library, np.array([1.0, 2.0, 3.0]))
    flipped = c[::-1]
    with pytest.raises(
        RuntimeError, match=r"\*=: tensor .*float64\[3\] (shares its memory|holds a copy made by getitem)"
    ):
        flipped *= x
    assert h.numpy().tolist() == [2.0, 4.0, 6.0] and c.numpy().tolist() == [1.0, 2.0, 3.0]
    out = h[::-1] * 1.0  # (a tensor of its own: its rebind is a write's result)
    out += 1.0
    assert out.numpy().tolist() == [7.0, 5.0, 3.0]


def test_numpy_in_place_methods_refuse_another_librarys_operand_or_index() -> None:
    torch = pytest.importorskip("torch")
    # numpy would read a torch tensor through __array__ (a silent copy); every op refuses the mix.
    raw = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    writes = {
        "add_": lambda n: n.add_(raw),
        "mul_": lambda n: n.mul_(ab.tensor(raw)),
        "copy_": lambda n: n.copy_(ab.tensor(raw)),
        r"\+=": lambda n: n.__iadd__(raw),
        "setitem": lambda n: n.__setitem__(slice(None, 2), raw[:2]),
        "setitem(?=.*torch int64)": lambda n: n.__setitem__(torch.tensor([0, 1]), 1.0),  # the index
    }
    for method, write in writes.items():
        n = ab.tensor(np.zeros(3))
        with pytest.raises(MixedArraysError, match=rf"{method}: tensor float64\[3\].*two libraries"):
            write(n)
        assert n.numpy().tolist() == [0.0, 0.0, 0.0] and n._version == 0
    n = ab.tensor(np.zeros(3))
    n.add_(np.ones(3)).copy_([1.0, 2.0, 3.0])[ab.tensor([0])] = 7.0  # numpy operands, lists, numpy indices
    assert n.numpy().tolist() == [7.0, 2.0, 3.0]


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_complex_array_of_any_library_at_argnums_is_refused(library: str) -> None:
    # torch turned a complex tensor into float64 by dropping its imaginary part (with a warning
    # of its own): value_and_grad gave the real part's gradient.
    z = ab.backends.library(library).from_numpy(np.array([1.0 + 2.0j, 3.0 - 1.0j]))
    for transform in (ab.functional.value_and_grad, ab.tape.value_and_grad):
        with pytest.raises(TypeError, match=r"argument \(.*complex128\[2\]\) is not a real number"):
            transform(lambda a: (a * a).sum())(z)


def test_a_torch_tensor_on_torchs_graph_is_copied_off_it_or_refused() -> None:
    """autobp's torch arrays never require grad: ``ab.tensor`` of one that does copies it as a
    constant (as ``ab.tensor`` of a Tensor does); as an op's bare argument or a gradient seed it is
    refused, naming the way out. Before, the copy and the op's result joined torch's graph (which
    autobp never walks, and which grew with each step), and the seed computed on it."""
    torch = pytest.importorskip("torch")
    on_torchs_graph = torch.ones(3, dtype=torch.float64, requires_grad=True)
    copied = ab.tensor(on_torchs_graph)
    assert not copied.data.requires_grad and copied.data.grad_fn is None
    w = ab.tensor(torch.ones(3, dtype=torch.float64), requires_grad=True)
    with pytest.raises(TypeError, match=r"mul: got torch float64\[3\], which requires grad in torch.*t\.detach\(\)"):
        w * on_torchs_graph
    with pytest.raises(TypeError, match=r"backward: the gradient is torch float64\[3\], which requires grad"):
        (w * 2.0).backward(on_torchs_graph)
    assert w.grad is None
    (w * 2.0).backward(on_torchs_graph.detach())  # the ways out work
    assert w.grad.data.tolist() == [2.0, 2.0, 2.0] and not w.grad.data.requires_grad
    assert not (w * on_torchs_graph.detach()).data.requires_grad
