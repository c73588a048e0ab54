"""Version counters belong to the storage: a base and all its views share one (docs/trust.md).

Every test writes in place into memory a graph saved, through some other Tensor than the one the
graph holds, and expects backward to refuse (``RuntimeError`` naming the op and the tensor) or,
where the saved value is a private copy (numpy constants, index arrays), the right gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autobp as ab
from autobp.ops.registry import REGISTRY, op

STALE = r"modified in place after the op ran"


def test_a_slice_of_a_saved_tensor_written_through_the_base() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    c = ab.tensor([1.0, 2.0, 3.0])
    y = (x * c[0:2]).sum()
    c[0] = 100.0
    with pytest.raises(RuntimeError, match=r"mul: .*float64\[2\].*version 0.*version 1"):
        y.backward()
    assert x.grad is None


def test_the_base_of_a_saved_slice_written_through_another_view() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    c = ab.tensor([1.0, 2.0, 3.0, 4.0])
    y = (x * c[:2]).sum()
    c[2:].mul_(2.0)  # another part of the same storage: refused, as PyTorch does (one counter per storage)
    with pytest.raises(RuntimeError, match=STALE):
        y.backward()


def test_copy_into_the_base_of_a_reshaped_batch() -> None:
    # The prefetch pattern: a buffer refilled in place while a graph still holds a view of it.
    buffer = ab.zeros(6)
    w = ab.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    batch = buffer.reshape(3, 2)
    buffer.copy_(ab.tensor(np.arange(6.0)))  # filled before the op: fine
    loss = (w @ batch).sum()
    buffer.copy_(ab.tensor(np.ones(6)))  # the next batch arrives before backward
    with pytest.raises(RuntimeError, match=r"matmul: .*float64\[3, 2\]"):
        loss.backward()


def test_detach_then_write_in_place() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    c = ab.tensor([3.0, 4.0])
    y = (x * c).sum()
    c.detach().mul_(10.0)
    with pytest.raises(RuntimeError, match=STALE):
        y.backward()
    # A tensor that requires grad detaches to a read-only view: the write is refused at once.
    z = (x * x).sum()
    with pytest.raises(RuntimeError, match="read-only"):
        x.detach().mul_(2.0)
    z.backward()
    np.testing.assert_array_equal(x.grad.data, [2.0, 4.0])


def test_a_slice_of_a_leaf_written_under_no_grad_after_it_was_saved() -> None:
    w = ab.tensor([1.0, 2.0, 3.0], requires_grad=True)
    loss = (w * w).sum()
    with ab.no_grad():
        w[0:2].mul_(0.5)  # the slice is a view of w's memory: w changed
    with pytest.raises(RuntimeError, match=STALE):
        loss.backward()
    assert w.grad is None


def test_transpose_views_share_the_counter() -> None:
    x = ab.tensor(np.ones((2, 2)), requires_grad=True)
    c = ab.tensor([[1.0, 2.0], [3.0, 4.0]])
    y = (x * c.T).sum()
    c.add_(1.0)
    with pytest.raises(RuntimeError, match=STALE):
        y.backward()
    y = (x * c).sum()
    c.T.add_(1.0)
    with pytest.raises(RuntimeError, match=STALE):
        y.backward()


def test_an_index_tensor_changed_after_getitem() -> None:
    x = ab.tensor([1.0, 2.0, 3.0], requires_grad=True)
    index = ab.tensor([0, 0])
    y = x[index].sum()
    index[1] = 2
    with pytest.raises(RuntimeError, match=r"getitem: .*keywords.*int64\[2\]"):
        y.backward()
    # Inside a tuple index too.
    m = ab.tensor(np.ones((2, 3)), requires_grad=True)
    rows = ab.tensor([0, 1])
    y = m[rows, 1:].sum()
    rows.fill_(1)
    with pytest.raises(RuntimeError, match="getitem"):
        y.backward()


@pytest.mark.parametrize("make", [lambda: np.array([0, 0]), lambda: [0, 0], lambda: [[0, 0]]])
def test_numpy_and_list_indices_are_copied_at_the_op(make: Callable[[], Any]) -> None:
    # A numpy array or a list has no version counter: the node keeps its own copy, so the gradient is
    # the one of the index as it was when the op ran.
    x = ab.tensor([1.0, 2.0, 3.0], requires_grad=True)
    index = make()
    y = x[index].sum()
    if isinstance(index, np.ndarray):
        index[1] = 2
    elif isinstance(index[0], list):
        index[0][1] = 2
    else:
        index[1] = 2
    y.backward()
    np.testing.assert_array_equal(x.grad.data, [2.0, 0.0, 0.0])


def test_numpy_constants_are_copied_at_the_op() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    c = np.array([3.0, 4.0])
    y = (x * c).sum()
    c[0] = 100.0
    y.backward()
    np.testing.assert_array_equal(x.grad.data, [3.0, 4.0])
    assert c[0] == 100.0  # the caller's array is theirs: never made read-only


@pytest.mark.parametrize(
    "view",
    [lambda b: ab.reshape(b, (4,)), lambda b: ab.expand_dims(b, 0), lambda b: ab.getitem(b, slice(0, 2))],
    ids=["reshape", "expand_dims", "getitem"],
)
def test_a_view_an_op_makes_of_a_numpy_buffer_is_a_copy(view: Callable[[np.ndarray], Any]) -> None:
    # The prefetch pattern on a numpy buffer: refilling it must not change a graph that holds a view.
    buffer = np.arange(4.0).reshape(2, 2)
    expected = np.asarray(view(buffer.copy()).data).reshape(-1)  # the values the graph read
    x = ab.tensor(np.ones(4), requires_grad=True)
    y = (x * view(buffer).reshape(4)).sum()
    buffer[...] = 100.0
    y.backward()
    np.testing.assert_array_equal(x.grad.data, expected)


def test_writes_to_unrelated_storage_are_not_errors() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    c = ab.tensor([3.0, 4.0])
    other = c.copy()  # a copy: its own storage
    y = (x * c).sum()
    other.mul_(2.0)
    c.reshape(2).copy()  # reading is fine
    y.backward()
    np.testing.assert_array_equal(x.grad.data, [3.0, 4.0])


def test_optimizer_updates_are_seen_through_views_of_parameters() -> None:
    w = ab.tensor([1.0, 2.0], requires_grad=True)
    view = w[0:1]  # recorded: a view of w's memory
    loss = (view * view).sum() + (w * 1.0).sum()
    opt = ab.optim.SGD([w], lr=0.1)
    loss.backward(retain_graph=True)
    opt.step()
    with pytest.raises(RuntimeError, match=STALE):
        loss.backward()


_VIEWS: dict[str, Callable[[ab.Tensor], ab.Tensor]] = {
    "slice": lambda t: t[1:],
    "step": lambda t: t[::2],
    "reshape": lambda t: t.reshape(-1),
    "transpose": lambda t: t.T,
    "detach": lambda t: t.detach(),
    "expand_dims": lambda t: t.expand_dims(0),
    "int": lambda t: t[0],
}


def _storage(member: ab.Tensor) -> np.ndarray:
    # numpy points every view (of a view) of an array at the array that owns the memory.
    return member.data if member.data.base is None else member.data.base


@given(
    chain=st.lists(st.sampled_from(sorted(_VIEWS)), min_size=0, max_size=4),
    saved_at=st.integers(0, 4),
    written_at=st.integers(0, 4),
)
def test_any_view_chain_shares_one_counter(chain: list[str], saved_at: int, written_at: int) -> None:
    # Build base -> view -> view ...; save one member in an op, write through another. Refused whenever
    # both live in one storage (a reshape that had to copy starts a storage of its own).
    base = ab.tensor(np.arange(1.0, 25.0).reshape(2, 3, 4))
    members = [base]
    for name in chain:
        if members[-1].ndim == 0 or members[-1].shape[0] == 0:
            break  # nothing left to view (an empty slice cannot be indexed by an int)
        members.append(_VIEWS[name](members[-1]))
    saved, written = members[saved_at % len(members)], members[written_at % len(members)]
    x = ab.tensor(np.ones(saved.shape), requires_grad=True)
    expected = saved.data.copy()
    y = (x * saved).sum()
    written.add_(1.0)
    if _storage(saved) is _storage(written):
        with pytest.raises(RuntimeError, match=STALE):
            y.backward()
        assert x.grad is None
    elif _owner(saved.data) is _owner(written.data) and saved.size * written.size == 0:
        try:
            y.backward()
        except RuntimeError as error:
            assert "modified in place" in str(error)
        else:
            np.testing.assert_array_equal(x.grad.data, expected)
    else:
        y.backward()
        np.testing.assert_array_equal(x.grad.data, expected)


def _owner(array: np.ndarray) -> Any:
    while isinstance(array.base, np.ndarray):  # numpy points a view (of a view) at the owner
        array = array.base
    return array


def test_a_tape_sees_a_closure_written_through_a_view() -> None:
    # The tape guards the versions of Tensors a function closes over; a write through a view of one
    # moves the shared counter, so the next call retraces instead of replaying a stale constant.
    scale = ab.tensor([1.0, 2.0, 3.0])
    func = lambda w: (w * scale).sum()  # noqa: E731
    taped = ab.tape.value_and_grad(func)
    w = np.array([1.0, 1.0, 1.0])
    for _ in range(3):
        value, g = taped(w)
        want, wanted = ab.functional.value_and_grad(func)(ab.tensor(w))
        np.testing.assert_array_equal(g.data, wanted.data)
        assert value.item() == want.item()
        scale[0:2].mul_(2.0)


@pytest.mark.parametrize("bound", [lambda v: ab.tensor(v), lambda v: np.array(v)], ids=["Tensor", "0-d array"])
def test_slice_bounds_changed_after_getitem_keep_the_gradient_of_the_slice_read(bound: Callable[[int], Any]) -> None:
    # x[i:j] read elements 1 and 2; moving the bounds afterwards must not move the gradient.
    x = ab.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    start, stop = bound(1), bound(3)
    expected = np.zeros(4)
    expected[1:3] = [1.0, 10.0]  # the slow obvious gradient of the slice as read
    y = (x[start:stop] * ab.tensor([1.0, 10.0])).sum()
    for b in (start, stop):
        b[...] = b[...] - 1  # both bounds move left: x[0:2] now
    y.backward()
    np.testing.assert_array_equal(x.grad.data, expected)


def test_functional_sees_func_writing_into_its_input_in_place() -> None:
    # functional's leaf shares x's memory, so it shares x's counter: the write is caught.
    x = ab.tensor([1.0, 2.0])

    def func(t: ab.Tensor) -> ab.Tensor:
        y = (t * t).sum()
        x.mul_(2.0)  # x is a constant to the caller: allowed, and the saved t changes with it
        return y

    with pytest.raises(RuntimeError, match=STALE):
        ab.functional.value_and_grad(func)(x)


def test_a_tape_guards_a_closure_read_through_detach() -> None:
    # c.detach() is a temporary Tensor; the tape must guard c itself, or the folded c * 2 goes stale.
    scale = ab.tensor([1.0, 2.0, 3.0])
    func = lambda w: (w * (scale.detach() * 2.0)).sum()  # noqa: E731
    taped = ab.tape.value_and_grad(func)
    for step in range(5):
        w = np.array([1.0, -1.0, 0.5]) + step
        value, g = taped(w)
        want, wanted = ab.functional.value_and_grad(func)(ab.tensor(w))
        assert value.item() == want.item()
        np.testing.assert_array_equal(g.data, wanted.data)
        if step == 2:
            scale.mul_(10.0)


@op("identity_for_test")
def _identity(x: np.ndarray) -> np.ndarray:
    """x itself, as a user's op may return it. Shapes: any -> same."""
    return x


_identity.defvjp(lambda grad, out, x: grad, plain_arrays=True)
del REGISTRY["identity_for_test"]  # a test-only op: keep the registry-driven suites to the library's ops


@pytest.mark.parametrize(
    "no_op_view",
    [
        lambda c: ab.squeeze(c),
        lambda c: ab.squeeze(c, axis=()),
        lambda c: ab.ops.sum_to(c, (2, 2)),
        lambda c: _identity(c),
    ],
    ids=["squeeze, no axis of size 1", "squeeze axis=()", "sum_to its own shape", "a custom op returning x"],
)
def test_an_op_that_changes_nothing_still_shares_the_counter(no_op_view: Callable[[ab.Tensor], Any]) -> None:
    # numpy hands such calls the input array itself; without a counter of its own storage the
    # result would let a write into c go unseen by a graph that saved the result.
    c = ab.tensor([[1.0, 2.0], [3.0, 4.0]])
    x = ab.tensor(np.ones((2, 2)), requires_grad=True)
    y = (x * no_op_view(c)).sum()
    c.mul_(10.0)
    with pytest.raises(RuntimeError, match=STALE):
        y.backward()


@pytest.mark.parametrize(
    "constant",
    [
        lambda a, x: x.detach().numpy(),  # a read-only view of a leaf's writeable memory
        lambda a, x: np.broadcast_to(a, (2, 3)),  # a read-only view of the caller's array
        lambda a, x: a[::-1].view(),  # a view of a view
    ],
    ids=["detach-numpy", "broadcast_to", "view-of-view"],
)
def test_a_read_only_view_of_changeable_memory_is_saved_as_a_copy(
    constant: Callable[[np.ndarray, ab.Tensor], np.ndarray],
) -> None:
    # Read-only is a property of the view, not of the memory: the base can still be written (and
    # a leaf under no_grad, as an optimizer does). The graph must keep the values it read.
    a = np.array([1.0, 2.0, 3.0])
    x = ab.tensor([1.0, 2.0, 3.0], requires_grad=True)
    saved = constant(a, x)
    saved.setflags(write=False)
    expected = saved.copy()
    w = ab.tensor(np.ones(saved.shape), requires_grad=True)
    loss = (w * saved).sum()
    a[:] = 100.0
    with ab.no_grad():
        x.mul_(10.0)
    loss.backward()
    np.testing.assert_array_equal(w.grad.data, expected)


def test_a_read_only_view_given_as_an_index_is_saved_as_a_copy() -> None:
    x = ab.tensor([1.0, 2.0, 3.0], requires_grad=True)
    index = np.array([0, 1])
    read_only = index.view()
    read_only.setflags(write=False)
    loss = (x[read_only] * ab.tensor([1.0, 2.0])).sum()
    index[:] = 2  # written through its base after the op
    loss.backward()
    np.testing.assert_array_equal(x.grad.data, [1.0, 2.0, 0.0])


@pytest.mark.parametrize("turn_on", [lambda t: t.requires_grad_(), lambda t: setattr(t, "requires_grad", True)])
def test_requires_grad_turned_on_after_use_is_refused_not_half_counted(turn_on: Callable[[ab.Tensor], Any]) -> None:
    # x was a constant when the graph was built: only the ops recorded for w's sake saved it.
    # Counting those would give x part of its gradient (here 3, 4 of the true 9, 20).
    x, w = ab.tensor([1.0, 2.0]), ab.tensor([3.0, 4.0], requires_grad=True)
    loss = (x * w).sum() + ((x * x) * w).sum()
    turn_on(x)
    with pytest.raises(RuntimeError, match=r"mul: .*requires_grad turned on after the op used it"):
        loss.backward()
    assert x.grad is None and w.grad is None
    # Turned on before use: the usual way, nothing refused.
    y = ab.tensor([1.0, 2.0])
    turn_on(y)
    (y * y * w).sum().backward()
    np.testing.assert_array_equal(y.grad.data, [6.0, 16.0])
