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


def _same_storage(a: ab.Tensor, b: ab.Tensor) -> bool:
    # numpy points every view (of a view) of an array at the array that owns the memory.
    return (a.data.base if a.data.base is not None else a.data) is (b.data.base if b.data.base is not None else b.data)


@given(
    chain=st.lists(st.sampled_from(sorted(_VIEWS)), min_size=0, max_size=4),
    saved_at=st.integers(0, 4),
    written_at=st.integers(0, 4),
)
def test_any_view_chain_shares_one_counter(chain: list[str], saved_at: int, written_at: int) -> None:
    # Build base -> view -> view ...; save one member in an op, write through another. Refused whenever
    # both live in one storage: the base's, or a copy's (a reshape that had to copy, or an int index of a
    # 1-d member, starts a storage of its own, shared by the views made from it).
    base = ab.tensor(np.arange(1.0, 25.0).reshape(2, 3, 4))
    members = [base]
    for name in chain:
        if members[-1].ndim == 0 or members[-1].shape[0] == 0:  # nothing left to index or view
            break
        members.append(_VIEWS[name](members[-1]))
    saved, written = members[saved_at % len(members)], members[written_at % len(members)]
    x = ab.tensor(np.ones(saved.shape), requires_grad=True)
    expected = saved.data.copy()
    y = (x * saved).sum()
    written.add_(1.0)
    if _same_storage(saved, written):
        with pytest.raises(RuntimeError, match=STALE):
            y.backward()
        assert x.grad is None
    else:
        y.backward()
        np.testing.assert_array_equal(x.grad.data, expected)


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
