"""The Tensor class: construction, dtypes, numpy interop, attributes, repr, operators."""

from __future__ import annotations

import ast
import inspect
import re

import numpy as np
import pytest

import autobp as ab
from autobp.tensor import copies as tensor_copies
from autobp.tensor import inplace as tensor_inplace
from autobp.tensor import values as tensor_values


def test_python_floats_become_float64_and_arrays_keep_their_dtype() -> None:
    assert ab.tensor([1.0, 2.0]).dtype == np.float64
    assert ab.tensor(np.ones(2, np.float32)).dtype == np.float32
    assert ab.tensor([1, 2]).dtype == np.int64


def test_the_constructor_copies_its_data() -> None:
    source = np.ones(3)
    t = ab.tensor(source)
    source[0] = 5.0
    assert t.data[0] == 1.0


@pytest.mark.parametrize("data", [[1, 2], [True, False]])
def test_integer_and_bool_tensors_cannot_require_grad(data: list) -> None:
    with pytest.raises(TypeError, match="floating-point"):
        ab.tensor(data, requires_grad=True)


def test_object_data_is_refused() -> None:
    with pytest.raises(TypeError, match="dtype object"):
        ab.tensor([object()])


def test_float32_stays_float32_through_ops_and_gradients() -> None:
    x = ab.tensor(np.array([0.5, 1.5], np.float32), requires_grad=True)
    y = (ab.exp(x) * 2.0 + x / 3.0).sum()
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32


def test_mixed_precision_gradient_comes_back_in_the_input_dtype() -> None:
    x = ab.tensor(np.array([0.5, 1.5], np.float32), requires_grad=True)
    w = ab.tensor(np.array([2.0, 3.0]), requires_grad=True)
    (x * w).sum().backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float64
    np.testing.assert_allclose(x.grad.data, [2.0, 3.0])


@pytest.mark.parametrize("left", [np.array([2.0, 3.0]), np.float64(2.0), 2.0, 2])
def test_numpy_and_python_values_on_the_left_keep_the_graph(left: object) -> None:
    x = ab.tensor([1.0, 4.0], requires_grad=True)
    for y in (left * x, left + x, left - x, left / x, left**x):
        assert isinstance(y, ab.Tensor) and y.requires_grad
    (left * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, np.broadcast_to(left, (2,)))


def test_array_protocol_and_attributes() -> None:
    x = ab.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    assert np.asarray(x) is x.data and x.numpy() is x.data
    assert x.shape == (1, 3) and x.ndim == 2 and x.size == 3 and len(x) == 1
    assert x.is_leaf and x.grad is None and x.grad_fn is None
    y = x * 2
    assert not y.is_leaf and y.grad_fn.name == "mul"
    assert ab.tensor(2.5).item() == 2.5 and float(ab.tensor(2.5)) == 2.5
    with pytest.raises(ValueError, match="one-element"):
        x.item()
    with pytest.raises(TypeError, match="0-d"):
        len(ab.tensor(1.0))


def test_copy_false_is_numpys_contract_a_view_or_an_error() -> None:
    # numpy 2: np.asarray(a, dtype=..., copy=False) raises where a copy is needed; a tensor gave a
    # copy instead, which a caller writing into it took for the tensor's own memory.
    t = ab.tensor([1.0, 2.0])
    assert np.asarray(t, dtype=np.float64, copy=False) is t.data
    with pytest.raises(ValueError, match="read as float32 is a copy, and copy=False was given"):
        np.asarray(t, dtype=np.float32, copy=False)
    assert np.asarray(t, dtype=np.float32).dtype == np.float32 and np.array(t, copy=True) is not t.data


def test_detach_cuts_the_graph() -> None:
    x = ab.tensor([1.0], requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.grad_fn is None


def test_repr_is_readable() -> None:
    assert repr(ab.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(ab.tensor([1.0], requires_grad=True)) == "tensor([1.], requires_grad=True)"
    assert repr(ab.tensor([1.0], requires_grad=True) * 2) == "tensor([2.], grad_fn=<mul>)"
    assert "dtype=float32" in repr(ab.tensor(np.ones(1, np.float32)))


def test_comparisons_give_boolean_tensors_without_gradient() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    for result in (x > 1.5, x >= 1.5, x < 1.5, x <= 1.5, x == 1.0, x != 1.0):
        assert result.dtype == np.bool_ and not result.requires_grad
    np.testing.assert_array_equal((x > 1.5).data, [False, True])
    np.testing.assert_array_equal(((x > 1.5) | (x < 1.5)).data, [True, True])
    np.testing.assert_array_equal(((x > 0) & ~(x > 1.5)).data, [True, False])


def test_tensors_hash_by_identity() -> None:
    x, y = ab.tensor([1.0]), ab.tensor([1.0])
    assert len({x, y, x}) == 2


def test_seeded_creation_is_reproducible() -> None:
    a = ab.randn(2, 3, rng=7)
    b = ab.randn((2, 3), rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.data, b.data)
    assert ab.rand(4, rng=1).data.min() >= 0
    assert ab.zeros(2, 2).shape == (2, 2) and ab.ones(3).data.sum() == 3
    with pytest.raises(TypeError, match="rng"):
        ab.randn(2, rng="seed")


def test_errors_name_the_op_shapes_and_dtypes() -> None:
    with pytest.raises(ValueError, match=r"matmul: shapes \(3, 4\) and \(5, 2\) are not aligned"):
        ab.randn(3, 4) @ ab.randn(5, 2)
    with pytest.raises(ValueError, match=r"add: .*float64\[3, 4\], float64\[5, 2\]"):
        ab.randn(3, 4) + ab.randn(5, 2)


def test_domain_edges_behave_like_pytorch() -> None:
    x = ab.tensor([0.0, -1.0], requires_grad=True)
    np.testing.assert_array_equal(ab.log(x).data, [-np.inf, np.nan])
    np.testing.assert_array_equal(ab.sqrt(x).data, [0.0, np.nan])
    ab.sqrt(x).sum().backward()
    assert x.grad.data[0] == np.inf


@pytest.mark.parametrize(
    ("method", "function"),
    [
        (lambda t: t.exp(), np.exp),
        (lambda t: t.log(), np.log),
        (lambda t: t.sqrt(), np.sqrt),
        (lambda t: t.sin(), np.sin),
        (lambda t: t.cos(), np.cos),
        (lambda t: t.square(), np.square),
        (lambda t: t.tanh(), np.tanh),
        (lambda t: t.sigmoid(), lambda a: 1 / (1 + np.exp(-a))),
        (lambda t: t.relu(), lambda a: np.maximum(a, 0)),
        (lambda t: t.abs(), np.abs),
        (lambda t: abs(t), np.abs),
        (lambda t: +t, lambda a: a),
        (lambda t: t.transpose(1, 0), lambda a: a.transpose(1, 0)),
        (lambda t: t.transpose((1, 0)), lambda a: a.transpose((1, 0))),
        (lambda t: t.T, lambda a: a.T),
        (lambda t: t.swapaxes(0, 1), lambda a: a.swapaxes(0, 1)),
        (lambda t: t.expand_dims(0), lambda a: np.expand_dims(a, 0)),
        (lambda t: t.reshape(3, 2), lambda a: a.reshape(3, 2)),
        (lambda t: t.flatten(), lambda a: a.flatten()),
    ],
)
def test_methods_match_numpy(method: object, function: object) -> None:
    data = np.array([[0.5, 1.0, 2.0], [0.25, 3.0, 1.5]])
    np.testing.assert_allclose(method(ab.tensor(data)).data, function(data))  # type: ignore[operator]


def test_conversions_and_truth_values() -> None:
    assert int(ab.tensor(3.0)) == 3 and bool(ab.tensor(1.0)) and not bool(ab.tensor(0.0))
    assert np.asarray(ab.tensor([1.0, 2.0]), dtype=np.float32).dtype == np.float32
    t = ab.tensor([1.0, 2.0])
    assert np.array(t, copy=True) is not t.data
    assert ab.Tensor(t).data is not t.data  # the constructor copies a Tensor's data too


def test_a_copy_of_a_tensor_that_requires_grad_is_refused_not_a_constant_without_a_word() -> None:
    # ab.tensor(t) copies t's values into a constant leaf: the gradient through it was dropped,
    # and t -> (ab.tensor(t) * t).sum() got the gradient t where it is 2 t (PyTorch warns);
    # a list of Tensors alike: (ab.tensor([3 w0, w1]) * w).sum() gave [3, 2], not [6, 4].
    x = ab.tensor([1.0, 2.0])
    copied = r"tensor: the data is tensor float64\[2\], which requires grad; the copy is on no graph"
    held = r"tensor: the data holds tensor float64\[\], which requires grad; .* ab\.stack"
    # (nn.Parameter(t) is a new leaf by its name, as PyTorch's: tests/test_nn.py)
    for make in (ab.tensor, ab.Tensor, lambda t: ab.tensor(t, requires_grad=True)):
        with pytest.raises(TypeError, match=copied):
            ab.functional.value_and_grad(lambda t, make=make: (make(t) * t).sum())(x)
    for data in (lambda t: [t[0] * 3, t[1]], lambda t: ([t[0] * 3, 1.0], (2.0, t[1]))):
        with pytest.raises(TypeError, match=held):
            ab.functional.value_and_grad(lambda t, data=data: (ab.tensor(data(t)) * t).sum())(x)
    w = ab.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=copied):
        ab.tensor(w)  # a leaf too: a gradient through the copy would be lost all the same
    # the ways out the errors name: a copy on the graph, or a constant on purpose
    (ab.tensor(w.detach()) * w + w.clone() * w + ab.stack([w[0] * 3, w[1]]) * w).sum().backward()
    assert w.grad.tolist() == [1.0 + 2.0 + 6.0, 2.0 + 4.0 + 4.0]
    assert not ab.tensor([w[0].detach(), w[1].detach()]).requires_grad
    with ab.no_grad():  # no gradient is wanted there: a copy as before
        assert ab.tensor(w).tolist() == ab.tensor([w[0], w[1]]).tolist() == [1.0, 2.0]
    assert ab.tensor([x[0], 2.0, np.float64(3.0)]).tolist() == [1.0, 2.0, 3.0]  # no gradient to lose
    # a fill value alike: ab.full((2,), w[0]) gave w no gradient through it
    for fill in (lambda: ab.full((2,), w[0]), lambda: ab.full_like(x, w[1])):
        with pytest.raises(TypeError, match=r"the fill value is tensor float64\[\], which requires grad"):
            fill()
    assert ab.full((2,), w[0].detach()).tolist() == ab.full((2,), ab.tensor(1.0)).tolist() == [1.0, 1.0]


REFLECTED = {  # Tensor's reflected operators and what numpy computes for `other OP self`
    "__radd__": np.add,
    "__rsub__": np.subtract,
    "__rmul__": np.multiply,
    "__rtruediv__": np.true_divide,
    "__rpow__": np.power,
    "__rmatmul__": np.matmul,
}


def test_operators_and_methods_are_the_ops_themselves() -> None:
    # No Python frame between `t * u` and ab.mul: the method table installs the op functions.
    pairs = {"__add__": ab.add, "__mul__": ab.mul, "__eq__": ab.equal, "__getitem__": ab.getitem, "__neg__": ab.neg}
    pairs.update({"exp": ab.exp, "sum": ab.sum, "argmax": ab.argmax, "squeeze": ab.squeeze, "clone": ab.copy})
    for method, function in pairs.items():
        assert getattr(ab.Tensor, method) is function, method
    entries = [name for name, value in vars(ab.Tensor).items() if type(value).__name__ == "_OpEntry"]
    assert not entries, f"table entries left without their op: {entries}"


METHOD_MODULES = (tensor_values, tensor_inplace, tensor_copies)


def test_methods_kept_in_other_modules_are_installed_as_they_stand() -> None:
    # No wrapper frame either: Tensor's attribute is the module's function (or property) itself.
    for module in METHOD_MODULES:
        for name in module.TENSOR_METHODS:
            assert vars(ab.Tensor)[name] is getattr(module, name), f"{module.__name__}.{name}"


def test_type_checkers_see_every_installed_method() -> None:
    # Tensor's class body declares the installed methods under TYPE_CHECKING, so that mypy types
    # user code that calls them; a method installed but not declared (or declared, not installed) fails.
    (class_body,) = ast.parse(inspect.getsource(ab.Tensor)).body
    assert isinstance(class_body, ast.ClassDef)
    (declarations,) = [
        node for node in class_body.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    ]
    declared = {
        target.id
        for statement in declarations.body
        if isinstance(statement, ast.Assign)
        for assigned in statement.targets
        for target in (assigned.elts if isinstance(assigned, ast.Tuple) else [assigned])
        if isinstance(target, ast.Name)
    }
    assert declared == {name for module in METHOD_MODULES for name in module.TENSOR_METHODS}


@pytest.mark.parametrize("method", sorted(REFLECTED))
def test_reflected_operators_put_the_other_operand_first(method: str) -> None:
    other = np.array([[2.0, 0.5], [1.5, 3.0]])
    x = ab.tensor([[1.5, 2.0], [0.5, 1.0]], requires_grad=True)
    y = getattr(x, method)(other)
    np.testing.assert_allclose(y.data, REFLECTED[method](other, x.data), rtol=1e-15)
    assert y.grad_fn.inputs[1] is x  # the graph records op(other, x), in that order


def test_reflected_logical_operators_put_the_other_operand_first() -> None:
    x = ab.tensor([True, False])
    np.testing.assert_array_equal((np.array([True, True]) & x).data, [True, False])
    np.testing.assert_array_equal(x.__ror__(np.array([False, False])).data, [True, False])


@pytest.mark.parametrize("library", ["numpy", "torch", "array_api_strict"])
def test_logical_operators_refuse_operands_that_are_not_boolean(library: str) -> None:
    # On integers numpy and PyTorch's `&`, `|`, `~` are bitwise: [4, 5, 6, 0] & [2, 3, 6, 1] is
    # [0, 1, 6, 0] and ~uint8 [0, 1, 2] is [255, 254, 253]. autobp computed logical_and and
    # logical_not ([True, True, True, False], [True, False, False]) without a word.
    def made(values: list[object], dtype: str) -> ab.Tensor:
        array = np.array(values, dtype=dtype)
        return ab.tensor(array) if library == "numpy" else ab.Tensor(_foreign(library, array))

    ints, others = made([4, 5, 6, 0], "int64"), made([2, 3, 6, 1], "int64")
    flags = made([True, False], "bool")
    calls = [
        ("&", lambda: ints & others, r"int64\[4\]"),
        ("|", lambda: ints | others, r"int64\[4\]"),
        ("~", lambda: ~made([0, 1, 2], "uint8"), r"uint8\[3\]"),
        ("&", lambda: 3 & flags, "int 3"),  # (reflected: a Python int is bitwise too)
        ("|", lambda: flags | made([1.0, 0.0], "float64"), r"float64\[2\]"),
    ]
    for symbol, call, operand in calls:
        said = rf"^{re.escape(symbol)}: operand (torch |array_api_strict )?{operand} is not boolean.*ab\.logical_"
        with pytest.raises(TypeError, match=said):
            call()
    assert np.array_equal((flags & True).numpy(), [True, False])  # booleans keep the logical meaning
    assert np.array_equal((False | flags).numpy(), [True, False])
    assert np.array_equal((~flags).numpy(), [False, True])


FOREIGN = ["torch", "array_api_strict"]


def _foreign(library: str, values: object) -> object:
    module = pytest.importorskip(library)  # both are test dependencies: installed wherever the suite runs
    return module.asarray(values)


@pytest.mark.parametrize("library", FOREIGN)
def test_python_conversions_work_on_other_libraries_as_on_numpy(library: str) -> None:
    values = [[1.5, -2.0, 3.0]]
    t, n = ab.tensor(_foreign(library, values)), ab.tensor(values)
    assert t.library == library and t.size == n.size == 3 and type(t.size) is int
    assert len(t) == len(n) == 1 and t.ndim == 2 and tuple(t.shape) == n.shape
    assert t.tolist() == n.tolist()
    one = ab.tensor(_foreign(library, [[2.5]]))
    assert one.item() == 2.5 and float(one) == 2.5 and int(one) == 2 and bool(one)
    assert not bool(ab.tensor(_foreign(library, [0.0])))
    assert [0, 1, 2][ab.tensor(_foreign(library, 2))] == 2  # __index__
    with pytest.raises(TypeError, match="integer tensors"):
        [0, 1, 2][one]
    with pytest.raises(ValueError, match="one-element"):
        t.item()
    with pytest.raises(ValueError, match="ambiguous"):
        bool(t)


@pytest.mark.parametrize("library", FOREIGN)
def test_the_constructor_keeps_the_library_and_converts_dtypes(library: str) -> None:
    source = _foreign(library, [1.0, 2.0])
    for dtype in ("float32", np.float32, np.dtype("float32")):
        t = ab.tensor(source, dtype=dtype)
        assert t.library == library and t.dtype == ab.backends.library(library).float32
    own = ab.backends.library(library).float32  # the library's own dtype object works too
    assert ab.tensor(source, dtype=own).dtype == own
    with pytest.raises(TypeError, match="floating-point"):
        ab.tensor(_foreign(library, [1, 2]), requires_grad=True)
    t = ab.tensor(source, requires_grad=True)
    assert t.detach().data is t.data and not t.detach().requires_grad


def test_a_dtype_the_library_lacks_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="array_api_strict has no dtype float16"):
        ab.tensor(_foreign("array_api_strict", [1.0]), dtype="float16")


def test_an_ndarray_subclass_becomes_a_plain_numpy_tensor() -> None:
    class Marked(np.ndarray):
        pass

    t = ab.tensor(np.arange(3.0).view(Marked), requires_grad=True)
    assert type(t.data) is np.ndarray and t.library == "numpy"
    np.testing.assert_array_equal(t.data, np.arange(3.0))


def test_a_numpy_function_refuses_a_float_result_from_a_tensor_that_requires_grad() -> None:
    # (x * x).sum() + np.dot(a, x) gave x.grad without the np.dot term: numpy's float result is
    # on no graph. Refused, naming the function; predicates, no_grad and detached tensors compute.
    a = np.array([1.0, 2.0, 3.0])
    x = ab.tensor([0.5, -1.0, 2.0], requires_grad=True)
    for call, name in [
        (lambda: np.dot(a, x), "numpy.dot"),
        (lambda: np.where(a > 1, x, 0.0), "numpy.where"),
        (lambda: np.concatenate([a, x]), "numpy.concatenate"),  # (inside a list too)
        (lambda: np.linalg.norm(x), "numpy.linalg.norm"),
        (lambda: np.clip(x, 0.0, 1.0), "numpy.clip"),
    ]:
        with pytest.raises(TypeError, match=re.escape(name) + r": given tensor float64\[3\], which requires grad"):
            call()
    assert np.allclose(x, [0.5, -1.0, 2.0]) and np.argmax(x) == 2 and np.shape(x) == (3,)
    assert np.dot(a, x.detach()) == 4.5
    with ab.no_grad():
        assert np.dot(a, x) == 4.5
    assert np.dot(a, ab.tensor([0.5, -1.0, 2.0])) == 4.5  # (a constant tensor: as before)
    assert np.asarray(x) is x.data  # (asarray is numpy reading the tensor, as documented)


@pytest.mark.parametrize("name", ["sum", "mean", "max"])
def test_a_numpy_reduction_of_a_tensor_says_what_to_call(name: str) -> None:
    # numpy calls t.sum(out=None, ...), which autobp's op does not take: the message named neither
    t = ab.tensor([1.0, 2.0])
    with pytest.raises(TypeError, match=rf"numpy.{name}: numpy calls the tensor's own method .* use ab.{name}\(t\)"):
        getattr(np, name)(t)


def test_a_subclass_may_name_its_tensor_before_calling_tensors_constructor() -> None:
    # The name lives on the tensor's rare part, which the constructor sets: a subclass that names
    # itself first raised AttributeError (its slot was not set yet). The constructor starts the
    # tensor with no name, as it did when the name was a slot of its own.
    class Named(ab.Tensor):
        def __init__(self, data: object) -> None:
            self.name = "early"
            super().__init__(data)

    t = Named([1.0, 2.0])
    assert t.tolist() == [1.0, 2.0]
    assert t.name is None
    t.name = "later"
    assert t.name == "later"
