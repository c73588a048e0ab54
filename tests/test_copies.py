"""copy.copy, copy.deepcopy and pickle of tensors: own data, a fresh version counter, leaves only."""

from __future__ import annotations

import copy
import importlib.util
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import autobp as ab

COPIES: dict[str, Callable[[Any], Any]] = {
    "copy.copy": copy.copy,
    "copy.deepcopy": copy.deepcopy,
    "pickle": lambda value: pickle.loads(pickle.dumps(value)),
}
HOW = list(COPIES)
TORCH = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")


@pytest.mark.parametrize("how", HOW)
def test_writing_into_a_copy_leaves_a_saved_tensor_and_its_gradient_alone(how: str) -> None:
    # Python's default copy of a slotted object shared the array and not the version counter: a
    # write through the copy changed what the graph saved, and backward returned [4, 5], no error.
    w = ab.tensor([1.0, 2.0], requires_grad=True)
    a = ab.tensor([3.0, 4.0])
    loss = (w * a).sum()
    duplicate = COPIES[how](a)
    duplicate.add_(1.0)
    duplicate[0] = 10.0
    loss.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, 4.0])
    np.testing.assert_array_equal(a.numpy(), [3.0, 4.0])
    np.testing.assert_array_equal(duplicate.numpy(), [10.0, 5.0])


@pytest.mark.parametrize("how", HOW)
def test_a_copy_keeps_values_dtype_flags_gradient_and_name_in_memory_of_its_own(how: str) -> None:
    x = ab.tensor(np.array([1.5, -2.0], np.float32), requires_grad=True)
    x.name = "x"
    (x * x).sum().backward()
    duplicate = COPIES[how](x)
    assert type(duplicate) is ab.Tensor
    assert duplicate.requires_grad and duplicate.is_leaf and duplicate.name == "x"
    assert duplicate.dtype == np.float32 and duplicate.grad.dtype == np.float32
    np.testing.assert_array_equal(duplicate.numpy(), x.numpy())
    np.testing.assert_array_equal(duplicate.grad.numpy(), [3.0, -4.0])
    assert not np.shares_memory(duplicate.data, x.data)
    assert not np.shares_memory(duplicate.grad.data, x.grad.data)
    assert duplicate._version == 0 and duplicate.data.flags.writeable
    # The copy trains on its own: its backward accumulates into its .grad only.
    (duplicate * 2.0).sum().backward()
    np.testing.assert_array_equal(duplicate.grad.numpy(), [5.0, -2.0])
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, -4.0])


@given(
    how=st.sampled_from(HOW),
    dtype=st.sampled_from([np.float64, np.float32, np.int64, np.bool_]),
    data=st.data(),
)
def test_any_leaf_comes_back_equal_and_independent(how: str, dtype: Any, data: st.DataObject) -> None:
    values = data.draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)))
    original = ab.tensor(values, requires_grad=np.dtype(dtype).kind == "f")
    duplicate = COPIES[how](original)
    assert duplicate.shape == original.shape and duplicate.dtype == original.dtype
    assert duplicate.requires_grad == original.requires_grad
    np.testing.assert_array_equal(duplicate.numpy(), values)
    assert not np.shares_memory(duplicate.data, original.data)
    assert duplicate._vc is None and duplicate.grad_fn is None


@pytest.mark.parametrize("how", HOW)
def test_a_copy_of_a_detached_view_has_a_counter_of_its_own(how: str) -> None:
    w = ab.tensor([1.0, 2.0], requires_grad=True)
    y = w * 3.0
    view = y.detach()
    loss = (y * y).sum()
    duplicate = COPIES[how](view)
    assert duplicate.data.flags.writeable  # the view was read-only; the copy's memory is its own
    duplicate.mul_(0.0)
    loss.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [18.0, 36.0])
    assert view._version == 0


@pytest.mark.parametrize("how", HOW)
def test_a_tensor_made_by_an_op_is_refused_naming_the_op_and_the_way_out(how: str) -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2.0).sum()
    with pytest.raises(TypeError, match=rf"{how}: float64\[\] was made by an op \(<sum backward>\).*detach\(\)"):
        COPIES[how](y)
    y.backward()  # the graph is untouched by the refused copy
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])
    # What the message suggests works: the values, detached, copy as a leaf.
    np.testing.assert_array_equal(COPIES[how](y.detach()).numpy(), 6.0)


def test_a_pickle_with_out_of_band_buffers_shares_no_memory_with_the_original() -> None:
    a = ab.tensor([3.0, 4.0])
    buffers: list[pickle.PickleBuffer] = []
    duplicate = pickle.loads(pickle.dumps(a, protocol=5, buffer_callback=buffers.append), buffers=buffers)
    assert buffers  # the array did travel out of band
    assert not np.shares_memory(duplicate.data, a.data)


@pytest.mark.parametrize("how", HOW)
def test_a_parameter_stays_a_parameter_with_its_module_name(how: str) -> None:
    layer = ab.nn.Linear(3, 2, rng=0)
    weight = layer.weight
    duplicate = COPIES[how](weight)
    assert type(duplicate) is ab.nn.Parameter
    assert duplicate.name == weight.name == duplicate._module_name
    np.testing.assert_array_equal(duplicate.numpy(), weight.numpy())


def test_hooks_are_kept_by_the_copy_module_and_left_out_of_a_pickle() -> None:
    calls: list[str] = []
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda g: calls.append("hook"))
    for how in ("copy.copy", "copy.deepcopy"):
        (COPIES[how](x) * 1.0).sum().backward()
    assert calls == ["hook", "hook"]
    duplicate = COPIES["pickle"](x)  # a lambda cannot be pickled: the hooks stay in this process
    (duplicate * 1.0).sum().backward()
    assert calls == ["hook", "hook"]
    # A hook added to a shallow copy is the copy's own.
    shallow = copy.copy(x)
    shallow.register_hook(lambda g: calls.append("copy's"))
    (x * 1.0).sum().backward()
    assert calls == ["hook", "hook", "hook"]


def test_deepcopy_of_a_module_gives_parameters_of_its_own() -> None:
    model = ab.nn.Sequential(ab.nn.Linear(3, 4, rng=1), ab.nn.Tanh(), ab.nn.Linear(4, 1, rng=2))
    twin = copy.deepcopy(model)
    before = [p.numpy().copy() for p in model.parameters()]
    optimizer = ab.optim.SGD(twin.parameters(), lr=0.5)
    twin(ab.tensor(np.ones((5, 3)))).sum().backward()
    optimizer.step()
    for original, kept, trained in zip(model.parameters(), before, twin.parameters(), strict=True):
        np.testing.assert_array_equal(original.numpy(), kept)
        assert not np.array_equal(trained.numpy(), kept)
        assert original.grad is None


def test_a_taped_function_that_copies_its_input_runs_eagerly_and_stays_right() -> None:
    def loss(w: ab.Tensor) -> ab.Tensor:
        return (copy.copy(w) * w).sum()  # the copy is a constant: d/dw = the copy's values

    taped = ab.tape.value_and_grad(loss)
    for values in ([1.0, 2.0], [3.0, -1.0]):
        value, grad = taped(ab.tensor(values, requires_grad=True))
        np.testing.assert_allclose(value.numpy(), np.dot(values, values))
        np.testing.assert_array_equal(grad.numpy(), values)


@TORCH
@pytest.mark.parametrize("how", HOW)
def test_a_torch_tensors_copy_has_memory_of_its_own_too(how: str) -> None:
    torch = ab.backends.library("torch")
    w = ab.tensor(torch.from_numpy(np.array([1.0, 2.0])), requires_grad=True)
    a = ab.tensor(torch.from_numpy(np.array([3.0, 4.0])))
    loss = (w * a).sum()
    duplicate = COPIES[how](a)
    assert duplicate.library == "torch"
    duplicate.add_(1.0)
    loss.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, 4.0])
    np.testing.assert_array_equal(duplicate.numpy(), [4.0, 5.0])


def test_a_pickle_holds_the_slots_an_older_autobp_sets_and_loads_one_made_there() -> None:
    # Before a recorded op's output was its own node (78291f1), a Tensor had the slots grad_fn, name
    # and _hooks, and no op: pickles cross between versions both ways.
    from autobp.tensor.copies import rebuild

    x = ab.tensor([1.0, 2.0], requires_grad=True)
    x.name = "w"
    function, (cls, state) = x.__reduce_ex__(2)
    assert function is rebuild and cls is ab.Tensor
    assert "op" not in state and state["grad_fn"] is None and state["name"] == "w" and state["_hooks"] is None
    assert "grad" in state and state["grad"] is None  # (a slot then, a property over the rare part now)
    assert not any(name.startswith("_in") or name in ("_rare", "out", "_seq") for name in state)

    class Older:  # a pickle as that autobp wrote it
        def __reduce__(self) -> tuple[Any, ...]:
            old = {"data": np.array([3.0, 4.0]), "_requires_grad": True, "grad": None, "grad_fn": None}
            return rebuild, (ab.Tensor, {**old, "name": "v", "_vc": None, "_hooks": None})

    loaded = pickle.loads(pickle.dumps(Older()))
    assert loaded.is_leaf and loaded.grad_fn is None and loaded.name == "v" and loaded.requires_grad
    (loaded * loaded).sum().backward()
    np.testing.assert_array_equal(loaded.grad.numpy(), [6.0, 8.0])
