"""An op's two public roads, held to the same results.

An op of one or two inputs with a numpy fast forward has a shorter road in front of its general
public function (``autobp.ops.public_function.specialised``) for its commonest calls. Here every
such op is called both ways on its own hypothesis samples, each operand drawn as a Tensor that
requires grad, one carrying a forward-mode tangent too, a constant Tensor, a Tensor written in
place before the call, or a Python number; the two results must agree bit for bit (value, dtype,
shape), in whether they require grad, in the node they record (op, saved versions), in their
tangent and in the gradients a backward through them gives.
Errors must be the same error. Inside a first-order walk (array mode) the two must return the same
plain arrays.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autobp as ab
from autobp import forward_ad
from autobp.engine.mode_switch import modes
from autobp.ops.public_function import specialised
from autobp.ops.registry import REGISTRY, op
from autobp.testing.samples import samples_for

ROADS = sorted(name for name, opdef in REGISTRY.items() if hasattr(opdef.public, "general"))
KINDS = ("leaf", "constant", "written", "number", "dual", "array")


def test_the_ops_of_w2_and_w1_have_the_shorter_road() -> None:
    assert {"sin", "tanh", "mul", "add", "sub", "div", "exp", "sigmoid", "sigmoid_backward"} <= set(ROADS)
    for name in ROADS:
        assert REGISTRY[name].public.general is not REGISTRY[name].public, name


def _operand(array: np.ndarray, kind: str) -> Any:
    if kind == "number" and array.ndim == 0 and array.dtype == np.float64:
        return float(array)
    if kind == "array":  # a numpy array of the caller's (data): a constant, writeable
        return array
    if kind in ("leaf", "dual") and array.dtype.kind in "fc":
        leaf = ab.tensor(array, requires_grad=True)
        if kind == "dual":  # a leaf carrying a forward-mode tangent too
            return forward_ad.make_dual(leaf, np.linspace(0.5, -1.5, array.size).reshape(array.shape))
        return leaf
    tensor = ab.tensor(array)
    if kind == "written":
        tensor += 0  # its storage's version is 1 now: a node saving it keeps the versions
    return tensor


def _call(
    road: Callable[..., Any], arrays: list[np.ndarray], kwargs: dict[str, Any], kinds: tuple[str, ...]
) -> dict[str, Any]:
    """What one road gives for fresh operands: the result's account, or the error's. (With keywords
    the shorter road hands the call on: ops whose samples have none take it.)"""
    with forward_ad.dual_level():
        operands = [_operand(array.copy(), kind) for array, kind in zip(arrays, kinds, strict=True)]
        try:
            with np.errstate(all="ignore"):
                out = road(*operands, **kwargs)
        except Exception as error:  # the same error either way, not a result
            return {"error": (type(error), str(error))}
        tangent = forward_ad.unpack_dual(out).tangent
    for operand in operands:  # the caller changes its arrays: what the node saved must not change
        if type(operand) is np.ndarray and operand.dtype.kind == "f":
            operand *= 3.0
    node = out.grad_fn
    seen = {
        "value": out.data,
        "requires_grad": out.requires_grad,
        "op": None if node is None else node.name,
        "versions": None if node is None else node.versions,
        "tangent": None if tangent is None else tangent.data,
    }
    leaves = [x for x in operands if isinstance(x, ab.Tensor) and x.requires_grad]
    if out.requires_grad and leaves:
        with np.errstate(all="ignore"):
            seed = np.linspace(-1.0, 1.0, out.size).reshape(out.shape).astype(out.dtype)
            seen["grads"] = [g.data for g in ab.grad(out, leaves, grad_outputs=ab.tensor(seed), allow_unused=True)]
    return seen


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.mark.parametrize("name", ROADS)
@given(data=st.data())
def test_the_shorter_road_gives_what_the_general_function_gives(name: str, data: Any) -> None:
    opdef = REGISTRY[name]
    sample = data.draw(samples_for(opdef), label="sample")
    kinds = tuple(data.draw(st.sampled_from(KINDS), label=f"operand {k}") for k in range(len(sample.arrays)))
    shorter = _call(opdef.public, sample.arrays, sample.kwargs, kinds)
    general = _call(opdef.public.general, sample.arrays, sample.kwargs, kinds)
    assert shorter.keys() == general.keys(), (shorter, general)
    for key in shorter:
        assert _same(shorter[key], general[key]), (key, shorter[key], general[key])


@pytest.mark.parametrize("name", ROADS)
@given(data=st.data())
def test_in_a_walks_array_mode_both_roads_return_the_same_plain_array(name: str, data: Any) -> None:
    opdef = REGISTRY[name]
    sample = data.draw(samples_for(opdef), label="sample")
    with modes(None, arrays=True), np.errstate(all="ignore"):
        shorter = opdef.public(*sample.arrays, **sample.kwargs)
        general = opdef.public.general(*sample.arrays, **sample.kwargs)
    assert type(shorter) is type(general) and not isinstance(shorter, ab.Tensor)
    assert _same(shorter, general)


@pytest.mark.parametrize("name", [name for name in ROADS if REGISTRY[name].arity == 2 and REGISTRY[name].elementwise])
def test_a_shape_error_is_the_same_error_on_both_roads(name: str) -> None:
    x, y = ab.tensor(np.ones(2), requires_grad=True), ab.tensor(np.ones(3))
    errors = []
    for road in (REGISTRY[name].public, REGISTRY[name].public.general):
        with pytest.raises(ValueError, match=rf"^{name}: ") as caught:
            road(x, y)
        errors.append(str(caught.value))
    assert errors[0] == errors[1]


@pytest.mark.parametrize("name", ROADS)
def test_a_call_with_another_count_of_inputs_is_refused_naming_the_op(name: str) -> None:
    # The road of an op taking its inputs only is the public function itself, positional only:
    # Python's own errors name the op. An op taking keywords too keeps its general function's.
    opdef = REGISTRY[name]
    x = ab.tensor(np.ones((2, 2)))
    public = opdef.public
    for count in (opdef.arity - 1, opdef.arity + 4):
        with pytest.raises(TypeError, match=rf"\b{name}\b"):
            public(*[x] * count)
    with pytest.raises(TypeError, match=rf"\b{name}\b"):
        public(*[x] * opdef.arity, no_such_keyword=1)
    if not hasattr(public, "road"):  # (inputs only: none of them by name, as the general function refuses)
        refused = "(some positional-only arguments passed as keyword|an unexpected keyword argument)"
        with pytest.raises(TypeError, match=rf"^{name}\(\) got {refused}"):
            public(*[x] * (opdef.arity - 1), **{list(inspect.signature(public).parameters)[-1]: x})


def test_an_op_taking_keywords_too_takes_them_and_its_inputs_alike() -> None:
    x = ab.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert hasattr(ab.sum, "road")
    for total in (ab.sum(x), ab.sum(x, 0), ab.sum(x, axis=0), ab.sum(x, 1, True)):
        assert total.grad_fn is not None
    assert ab.sum(x, axis=0).tolist() == ab.sum(x, 0).tolist() == [4.0, 6.0]
    assert ab.sum(x, 1, True).shape == (2, 1)


@pytest.mark.parametrize("arity", [1, 2])
@pytest.mark.parametrize("requires_grad", [True, False])
def test_an_op_returning_its_input_gets_a_view_sharing_its_counter_on_both_roads(
    scratch_ops: list[str], arity: int, requires_grad: bool
) -> None:
    # No registered op's fast forward returns its input on the shorter road's calls today; a
    # scratch op whose fast forward does checks the guard all the same: the result is a new array
    # object on the input's memory (a node never saves the input's own array), one storage.
    scratch_ops.append(f"first_of_{arity}_for_test")

    @op(f"first_of_{arity}_for_test", arity=arity)
    def first(x: Any, *rest: Any) -> Any:
        """The first input. Shapes: any -> same."""
        return x

    first.defvjp(*[(lambda g, out, *inputs: g) for _ in range(arity)])
    first.op.numpy_forward = lambda x, *rest: x  # a fast forward returning its input, behind the road
    general = first.op.public
    shorter = specialised(first.op, general)
    assert shorter is not general and shorter.general is general
    for road in (shorter, general):
        x = ab.tensor([1.0, 2.0], requires_grad=requires_grad)
        out = road(x) if arity == 1 else road(x, 2.0)
        assert out.data is not x.data and out.data.base is x.data
        assert out.requires_grad is requires_grad
        with ab.no_grad():
            x[0] = 5.0  # a write through the input is one through the output: one storage
        assert out.data[0] == 5.0 and out._version == x._version == 1


@pytest.mark.parametrize("name", ["sin", "exp", "tanh", "mul", "add", "tanh_backward"])
def test_an_error_inside_a_walks_array_mode_names_the_op_on_both_roads(name: str) -> None:
    # A rule calling the op on arrays it cannot take: the error names the op and the inputs either way.
    opdef = REGISTRY[name]
    args = (np.array(["a", "b"]),) if opdef.arity == 1 else (np.ones(2), np.ones(3))
    errors = []
    for road in (opdef.public, opdef.public.general):
        with (
            modes(None, arrays=True),
            pytest.raises((TypeError, ValueError), match=rf"^{name}: .*\(inputs: ") as caught,
        ):
            road(*args)
        errors.append((type(caught.value), str(caught.value)))
    assert errors[0] == errors[1]


UFUNC_ROADS = [
    name
    for name in ROADS
    if REGISTRY[name].arity == 2 and isinstance(REGISTRY[name].numpy_forward, np.ufunc) and REGISTRY[name].elementwise
]
ZERO_D = [np.float64(0.75), np.float32(-1.5), np.float16(2.0), np.int64(-3), np.int8(7), np.bool_(True)]


@pytest.mark.parametrize("name", UFUNC_ROADS)
@pytest.mark.parametrize("value", ZERO_D, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("number", [1.0000001, -2, 3e38, 0], ids=repr)
def test_a_0d_tensor_and_a_number_give_what_numpy_gives_in_either_order(name: str, value: Any, number: Any) -> None:
    # The road asks an elementwise ufunc for its 0-d result as an array (``out=...``) where one
    # operand is a number and the other 0-d (W4): the value and dtype must be numpy's own
    # (promotion by the number's kind, NEP 50, overflow to inf), and the array frozen as any saved output.
    ufunc = REGISTRY[name].numpy_forward
    for operands in ((value, number), (number, value)):
        with np.errstate(all="ignore"):
            try:
                want = np.asarray(ufunc(*[np.asarray(v) if v is value else v for v in operands]))
            except (TypeError, OverflowError, ValueError) as error:  # numpy refuses: so does the op
                with pytest.raises(type(error)):
                    REGISTRY[name].public(*[ab.tensor(np.asarray(v)) if v is value else v for v in operands])
                continue
            for requires_grad in (False, True) if np.asarray(value).dtype.kind == "f" else (False,):
                tensor = ab.tensor(np.asarray(value), requires_grad=requires_grad)
                got = REGISTRY[name].public(*[tensor if v is value else v for v in operands])
                general = REGISTRY[name].public.general(*[tensor if v is value else v for v in operands])
                assert type(got.data) is np.ndarray and got.shape == ()
                assert got.dtype == want.dtype == general.dtype, (operands, got.dtype, want.dtype)
                assert np.array_equal(got.data, want, equal_nan=True), (operands, got.data, want)
                assert not got.data.flags.writeable or not got.requires_grad
                assert got.requires_grad == general.requires_grad


def test_a_number_and_an_array_of_more_dimensions_keep_their_shape_on_the_road() -> None:
    # (``out=...`` is asked for only where the other operand is 0-d; elsewhere the plain call)
    x = ab.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    for out in (2.0 * x, x * 2.0, ab.mul(2.0, np.arange(3.0)), ab.add(np.float64(1.0), 1.0)):
        assert type(out.data) is np.ndarray
    assert (2.0 * x).shape == (2, 3) and ab.mul(2.0, np.arange(3.0)).shape == (3,)
    assert ab.add(1.0, 2).shape == () and ab.add(1.0, 2).item() == 3.0
