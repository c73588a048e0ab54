"""Bad-input survey: every public entry point, given wrong shapes, dtypes, non-finite values,
empty and 0-d arrays, non-contiguous and negative-stride views, either raises a clear error
(the type, and a message naming the function and what is wrong) or gives the right result.

Two tables: ``ERRORS`` (call, exception type, text the message must contain) and ``RESULTS``
(call, numpy oracle).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import autobp as ab
from autobp import functional


def _x() -> ab.Tensor:
    return ab.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)


ERRORS: list[tuple[str, Callable[[], Any], type[BaseException], str]] = [
    # construction
    ("ragged data", lambda: ab.tensor([[1.0, 2.0], [3.0]]), ValueError, "tensor: cannot make a Tensor from list"),
    ("object data", lambda: ab.tensor({"a": 1}), TypeError, "tensor: cannot make a Tensor from dict"),
    ("None data", lambda: ab.tensor(None), TypeError, "tensor: cannot make a Tensor from NoneType"),
    ("int requires grad", lambda: ab.tensor([1, 2], requires_grad=True), TypeError, "only floating-point"),
    ("complex requires grad", lambda: ab.tensor([1j], requires_grad=True), TypeError, "complex128"),
    ("string requires grad", lambda: ab.tensor(["a"], requires_grad=True), TypeError, "only floating-point"),
    ("requires_grad_ int", lambda: ab.tensor([1]).requires_grad_(), TypeError, "requires_grad_: only floating"),
    ("requires_grad_ non-leaf", lambda: (_x() * 2).requires_grad_(False), RuntimeError, "only leaf tensors"),
    # wrong shapes
    ("add shapes", lambda: ab.add(_x(), ab.tensor([1.0, 2.0])), ValueError, "add: operands could not be broadcast"),
    ("mul list shapes", lambda: _x() * [1.0, 2.0], ValueError, "(inputs: float64[2, 3], list [1.0, 2.0])"),
    ("matmul shapes", lambda: ab.matmul(_x(), _x()), ValueError, "matmul: shapes (2, 3) and (2, 3) are not aligned"),
    ("matmul 0-d", lambda: ab.matmul(ab.tensor(1.0), _x()), ValueError, "matmul: operands must have at least one"),
    ("dot shapes", lambda: ab.dot(_x(), _x()), ValueError, "dot: shapes (2, 3) and (2, 3)"),
    ("einsum sizes", lambda: ab.einsum("ij,jk->ik", _x(), _x()), ValueError, "einsum: label 'j'"),
    ("reshape size", lambda: ab.reshape(_x(), (4, 2)), ValueError, "reshape: cannot reshape array of size 6"),
    ("broadcast_to", lambda: ab.broadcast_to(_x(), (3, 3)), ValueError, "broadcast_to: "),
    ("sum_to", lambda: ab.sum_to(_x(), (4,)), ValueError, "sum_to: cannot sum shape (2, 3) down to (4,)"),
    ("squeeze size", lambda: ab.squeeze(_x(), 0), ValueError, "squeeze: cannot squeeze axis 0"),
    ("concatenate ndim", lambda: ab.concatenate([_x(), ab.tensor([1.0])]), ValueError, "concatenate: "),
    ("concatenate nothing", lambda: ab.concatenate([]), ValueError, "concatenate: need at least one"),
    ("stack shapes", lambda: ab.stack([_x(), ab.tensor([1.0])]), ValueError, "stack: all input arrays"),
    ("split sections", lambda: ab.split(_x(), 4, axis=1), ValueError, "split: axis 1 of shape (2, 3)"),
    ("pad width", lambda: ab.pad(_x(), ((1, 1),) * 3), ValueError, "pad: pad_width"),
    ("where shapes", lambda: ab.where(np.ones(4, bool), _x(), _x()), ValueError, "where: operands could not"),
    ("pow shapes", lambda: _x() ** ab.tensor([1.0, 2.0]), ValueError, "pow: operands could not be broadcast"),
    # axes and indices
    ("sum axis", lambda: ab.sum(_x(), axis=5), np.exceptions.AxisError, "sum: axis 5 is out of bounds"),
    ("sum axis of 0-d", lambda: ab.sum(ab.tensor(2.0), axis=0), np.exceptions.AxisError, "sum: axis 0"),
    ("softmax bool axis", lambda: ab.nn.functional.softmax(_x(), True), TypeError, "softmax: axis must be an integer"),
    ("log_softmax bool axis", lambda: ab.nn.functional.log_softmax(_x(), False), TypeError, "log_softmax: axis"),
    ("mean repeated axis", lambda: ab.mean(_x(), axis=(0, 0)), ValueError, "mean: repeated axis"),
    ("transpose axes", lambda: ab.transpose(_x(), (0, 0)), ValueError, "transpose: repeated axis"),
    ("swapaxes", lambda: ab.swapaxes(_x(), 0, 3), np.exceptions.AxisError, "swapaxes: axis2"),
    ("expand_dims", lambda: ab.expand_dims(_x(), 5), np.exceptions.AxisError, "expand_dims: axis 5"),
    ("index out of range", lambda: _x()[5], IndexError, "getitem: index [5] does not fit shape (2, 3)"),
    ("index float", lambda: _x()[1.5], IndexError, "getitem: index [1.5]"),
    ("index too many", lambda: _x()[0, 0, 0], IndexError, "too many indices"),
    ("index 0-d", lambda: ab.tensor(2.0)[0], IndexError, "does not fit shape ()"),
    ("boolean index shape", lambda: _x()[np.array([True, False, True])], IndexError, "getitem: index [bool array"),
    # wrong dtypes
    ("exp of strings", lambda: ab.exp(ab.tensor(["a"])), TypeError, "exp: ufunc 'exp' not supported"),
    ("add a string", lambda: ab.add(_x(), "a"), TypeError, "(inputs: float64[2, 3], str 'a')"),
    ("add None", lambda: _x() + None, TypeError, "add: unsupported operand"),
    ("astype nonsense", lambda: _x().astype("nonsense"), TypeError, "astype: data type 'nonsense'"),
    ("in-place int / float", lambda: ab.tensor([1, 2]).div_(2), TypeError, "div_: tensor int64[2]"),
    # reductions of empty arrays without an identity
    ("max of empty", lambda: ab.max(ab.zeros((0,))), ValueError, "max: zero-size array"),
    # the engine
    (
        "backward non-scalar",
        lambda: (_x() * 2).backward(),
        RuntimeError,
        "backward: output tensor float64[2, 3] is not",
    ),
    ("backward gradient shape", lambda: (_x() * 2).backward(np.ones(3)), ValueError, "gradient shape (3,)"),
    ("backward without grad", lambda: ab.tensor([1.0]).sum().backward(), RuntimeError, "does not require grad"),
    ("grad of a float", lambda: ab.grad(3.0, [_x()]), TypeError, "grad: outputs must be Tensors, got float"),
    ("grad wrt an array", lambda: ab.grad((_x() * 2).sum(), [np.ones(3)]), ValueError, "grad: every input must be"),
    (
        "grad_outputs count",
        lambda: ab.grad([_x().sum()], [_x()], grad_outputs=[1.0, 2.0]),
        ValueError,
        "2 grad_outputs",
    ),
    (
        "grad unused input",
        lambda: ab.grad(_x().sum(), [ab.tensor([1.0], requires_grad=True)]),
        RuntimeError,
        "not used",
    ),
    ("gradcheck no grad", lambda: ab.gradcheck(lambda t: t, ab.tensor([1.0])), ValueError, "nothing to check"),
    ("gradcheck float output", lambda: ab.gradcheck(lambda t: 3.0, _x()), TypeError, "fn must return Tensors"),
    # conversions
    ("item of many", lambda: _x().item(), ValueError, "item: only one-element tensors"),
    ("float of many", lambda: float(_x()), ValueError, "item: only one-element tensors"),
    ("bool of many", lambda: bool(ab.tensor([1.0, 2.0])), ValueError, "bool(): the truth value of a tensor of shape"),
    ("len of 0-d", lambda: len(ab.tensor(1.0)), TypeError, "len() of a 0-d tensor"),
    ("iterate 0-d", lambda: list(ab.tensor(1.0)), TypeError, "iteration over a 0-d tensor"),
    # hooks, anomaly, functional transforms
    ("hook on a constant", lambda: ab.tensor([1.0]).register_hook(print), RuntimeError, "does not require grad"),
    ("hook not callable", lambda: _x().register_hook(3), TypeError, "hook must be callable"),
    ("vjp of an array", lambda: functional.vjp(lambda t: t, np.ones(2)), TypeError, "vjp: inputs must be a Tensor"),
    ("jacobian of ints", lambda: functional.jacobian(lambda t: t, ab.tensor([1])), TypeError, "jacobian: inputs[0]"),
    ("hessian non-scalar", lambda: functional.hessian(lambda t: t, _x()), ValueError, "hessian: func must return"),
]

# (call, numpy oracle): non-finite values follow numpy; empty, 0-d and strided inputs just work.
STRIDED = np.arange(12.0).reshape(3, 4)


def _grad_of(function: Callable[[ab.Tensor], ab.Tensor], data: Any) -> np.ndarray:
    x = ab.tensor(data, requires_grad=True)
    function(x).sum().backward()
    assert x.grad is not None
    return x.grad.data


RESULTS: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
    ("exp of nan and inf", lambda: ab.exp(ab.tensor([np.nan, np.inf, -np.inf])).data, lambda: [np.nan, np.inf, 0.0]),
    ("log at and below 0", lambda: ab.log(ab.tensor([-1.0, 0.0])).data, lambda: [np.nan, -np.inf]),
    ("divide by zero", lambda: (ab.tensor([1.0, 0.0]) / 0.0).data, lambda: [np.inf, np.nan]),
    ("sqrt gradient at 0", lambda: _grad_of(ab.sqrt, [0.0, 4.0]), lambda: [np.inf, 0.25]),
    ("mean of empty", lambda: ab.mean(ab.zeros((0,))).data, lambda: np.nan),
    ("logsumexp of empty", lambda: ab.logsumexp(ab.zeros((0,))).data, lambda: -np.inf),  # (PyTorch's, scipy's)
    ("prod of empty", lambda: ab.prod(ab.zeros((0,))).data, lambda: 1.0),
    ("sum of empty", lambda: ab.sum(ab.zeros((0, 3)), axis=0).data, lambda: np.zeros(3)),
    ("matmul of empty", lambda: ab.matmul(ab.zeros((0, 3)), ab.ones((3, 2))).data, lambda: np.zeros((0, 2))),
    ("gradient of empty", lambda: _grad_of(lambda t: t * 2.0, np.zeros((0, 3))), lambda: np.zeros((0, 3))),
    ("0-d arithmetic", lambda: (ab.tensor(2.0) * ab.tensor(3.0)).data, lambda: 6.0),
    ("0-d gradient", lambda: _grad_of(lambda t: t**3, 2.0), lambda: 12.0),
    ("0-d reshape", lambda: ab.reshape(ab.tensor(2.0), (1, 1)).data, lambda: [[2.0]]),
    ("0-d transpose", lambda: ab.transpose(ab.tensor(2.0)).data, lambda: 2.0),
    ("non-contiguous input", lambda: ab.tensor(STRIDED[:, ::2]).data, lambda: STRIDED[:, ::2]),
    ("negative-stride input", lambda: ab.exp(ab.tensor(STRIDED[::-1, ::-1])).data, lambda: np.exp(STRIDED[::-1, ::-1])),
    ("Fortran-order input", lambda: ab.sum(ab.tensor(np.asfortranarray(STRIDED)), axis=1).data, lambda: STRIDED.sum(1)),
    (
        "gradient via strided input",
        lambda: _grad_of(lambda t: t * t, STRIDED[::-1, ::2]),
        lambda: 2 * STRIDED[::-1, ::2],
    ),
    (
        "reversed view gradient",
        lambda: _grad_of(lambda t: t[::-1] * np.arange(3.0), [1.0, 2.0, 3.0]),
        lambda: [2.0, 1.0, 0.0],
    ),
    ("transposed matmul gradient", lambda: _grad_of(lambda t: t.T @ t, STRIDED), lambda: 2 * STRIDED @ np.ones((4, 4))),
    ("int mixed with float", lambda: (ab.tensor([1, 2]) * 0.5).data, lambda: [0.5, 1.0]),
    ("float32 stays float32", lambda: (ab.tensor([1.0], dtype="float32") * 2.0).data.dtype.name, lambda: "float32"),
]


@pytest.mark.parametrize(("name", "call", "error", "text"), ERRORS, ids=[row[0] for row in ERRORS])
def test_bad_input_raises_a_clear_error(name: str, call: Callable[[], Any], error: type, text: str) -> None:
    with pytest.raises(error) as info:
        call()
    assert text in str(info.value)


@pytest.mark.parametrize(("name", "call", "oracle"), RESULTS, ids=[row[0] for row in RESULTS])
def test_edge_input_gives_the_numpy_result(name: str, call: Callable[[], Any], oracle: Callable[[], Any]) -> None:
    result, expected = call(), oracle()
    if isinstance(expected, str):
        assert result == expected
    else:
        np.testing.assert_array_equal(np.asarray(result), np.asarray(expected, dtype=float))


def test_strided_inputs_are_copied_not_shared() -> None:
    """A view passed to ab.tensor is copied: later writes to the caller's array change nothing."""
    base = np.arange(6.0)
    x = ab.tensor(base[::-2], requires_grad=True)
    y = (x * x).sum()
    base[:] = 0.0
    y.backward()
    np.testing.assert_array_equal(x.grad.data, 2 * np.array([5.0, 3.0, 1.0]))
