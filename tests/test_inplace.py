"""In-place safety: version counters, refused in-place changes, frozen saved arrays."""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import autobp as ab

# (method call, the same change in numpy)
INPLACE: list[tuple[str, Callable[[ab.Tensor], Any], Callable[[np.ndarray], Any]]] = [
    ("add_", lambda t: t.add_(ab.tensor([1.0, 2.0, 3.0])), lambda a: a + np.array([1.0, 2.0, 3.0])),
    ("sub_", lambda t: t.sub_(2.0), lambda a: a - 2.0),
    ("mul_", lambda t: t.mul_(ab.tensor(3.0)), lambda a: a * 3.0),
    ("div_", lambda t: t.div_(np.array([2.0, 4.0, 8.0])), lambda a: a / [2.0, 4.0, 8.0]),
    ("zero_", lambda t: t.zero_(), lambda a: np.zeros_like(a)),
    ("fill_", lambda t: t.fill_(7.0), lambda a: np.full_like(a, 7.0)),
    ("copy_", lambda t: t.copy_([9.0, 8.0, 7.0]), lambda a: np.array([9.0, 8.0, 7.0])),
    ("clamp_", lambda t: t.clamp_(min=0.0, max=1.5), lambda a: np.clip(a, 0.0, 1.5)),
    ("setitem", lambda t: t.__setitem__(1, 5.0), lambda a: np.where(np.arange(3) == 1, 5.0, a)),
    ("+=", lambda t: t.__iadd__(1.0), lambda a: a + 1.0),
    ("-=", lambda t: t.__isub__(1.0), lambda a: a - 1.0),
    ("*=", lambda t: t.__imul__(2.0), lambda a: a * 2.0),
    ("/=", lambda t: t.__itruediv__(2.0), lambda a: a / 2.0),
]
IDS = [name for name, _, _ in INPLACE]


def _values() -> np.ndarray:
    return np.array([-1.0, 0.5, 2.0])


@pytest.mark.parametrize(("name", "change", "expected"), INPLACE, ids=IDS)
def test_inplace_changes_values_keeps_identity_and_bumps_version(name: str, change: Any, expected: Any) -> None:
    t = ab.tensor(_values())
    result = change(t)
    assert result is None or result is t  # in place: the same object (setitem returns None)
    np.testing.assert_allclose(t.data, expected(_values()))
    assert t._version == 1


@pytest.mark.parametrize(("name", "change", "expected"), INPLACE, ids=IDS)
def test_mutated_saved_tensor_raises_instead_of_a_wrong_gradient(name: str, change: Any, expected: Any) -> None:
    x = ab.tensor([1.0, 2.0, 3.0], requires_grad=True)
    c = ab.tensor(_values())
    y = (x * c).sum()  # mul saves c: d/dx = c
    change(c)
    with pytest.raises(RuntimeError) as info:
        y.backward()
    message = str(info.value)
    for part in ("mul", "float64[3]", "version 0", "version 1"):
        assert part in message
    assert x.grad is None  # nothing written: an error leaves every .grad as it was


@pytest.mark.parametrize(("name", "change", "expected"), INPLACE, ids=IDS)
def test_inplace_on_a_leaf_that_requires_grad(name: str, change: Any, expected: Any) -> None:
    x = ab.tensor(_values(), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"leaf that requires grad.*no_grad"):
        change(x)
    assert x._version == 0 and np.array_equal(x.data, _values())
    with ab.no_grad():  # the optimizer path
        change(x)
    np.testing.assert_allclose(x.data, expected(_values()))
    assert x._version == 1 and x.requires_grad and x.is_leaf


NO_GRAD_VIEW = r"shares the memory of tensor float64\[2, 3\], which requires grad: it is a view made off the graph"


@pytest.mark.parametrize(("name", "change", "expected"), INPLACE, ids=IDS)
def test_a_view_made_under_no_grad_of_a_leaf_is_refused_a_write_with_grad_on(
    name: str, change: Any, expected: Any
) -> None:
    # w itself refuses the write with grad on (the test above); a view of it made under no_grad
    # (a leaf that does not require grad) took it: w's values changed where grad mode is on,
    # unseen by the graph (PyTorch: "A view was created in no_grad mode and is being modified
    # inplace with grad mode enabled").
    w = ab.tensor(np.stack([_values(), _values()]), requires_grad=True)
    with ab.no_grad():
        row, view_of_view = w[0], w.T[:, 1]
    for view in (row, view_of_view):
        with pytest.raises(RuntimeError, match=f"{re.escape(name)}: tensor float64\\[3\\] {NO_GRAD_VIEW}"):
            change(view)
    assert w._version == 0 and np.array_equal(w.data, np.stack([_values(), _values()]))
    with ab.no_grad():  # the view and the write both under no_grad: an optimizer's write, as before
        change(row)
    np.testing.assert_allclose(w.data[0], expected(_values()))
    assert w._version == 1 and w.is_leaf and w.requires_grad


def test_no_grad_views_follow_the_base_requiring_grad_now() -> None:
    w = ab.tensor(np.ones((2, 3)))
    with ab.no_grad():
        row = w[0]
    row += 1.0  # w does not require grad: a plain write, as before
    w.requires_grad_()  # turned on after the view was made: the view knows
    with pytest.raises(RuntimeError, match=NO_GRAD_VIEW):
        row.mul_(2.0)
    w.requires_grad_(False)  # and turned off again
    row.mul_(2.0)
    assert w.tolist() == [[4.0, 4.0, 4.0], [1.0, 1.0, 1.0]]
    x = ab.tensor([1.0, 2.0])
    ab.functional.value_and_grad(lambda t: (t[0:1] * 2.0).sum())(x)  # its leaf, on x's storage, requires grad
    with ab.no_grad():
        head = x[0:1]
    x.requires_grad_()  # the one on the storage that requires grad now: x, not the transform's leaf
    with pytest.raises(RuntimeError, match=r"shares the memory of tensor float64\[2\], which requires grad"):
        head += 1.0
    # a dual made under no_grad of a leaf that requires grad is such a view too
    w.requires_grad_()
    with ab.forward_ad.dual_level():
        with ab.no_grad():
            dual = ab.forward_ad.make_dual(w, ab.zeros_like(w))
        with pytest.raises(RuntimeError, match=NO_GRAD_VIEW):
            dual[0, 0] = 5.0
    # views made with grad on are on the graph, which refuses writes as before; the leaf's
    # gradient after every refusal is the one of its unchanged values
    with pytest.raises(RuntimeError, match="made by op 'getitem'"):
        w[0].add_(1.0)
    (w * w).sum().backward()
    assert w.grad.tolist() == [[8.0, 8.0, 8.0], [2.0, 2.0, 2.0]]


def test_a_no_grad_view_of_a_torch_leaf_is_refused_a_write_with_grad_on() -> None:
    torch = pytest.importorskip("torch")
    w = ab.tensor(torch.ones((2, 3), dtype=torch.float64), requires_grad=True)
    with ab.no_grad():
        row = w[0]
    with pytest.raises(RuntimeError, match=r"add_: tensor torch float64\[3\] shares the memory of tensor torch"):
        row.add_(1.0)
    with pytest.raises(RuntimeError, match="shares the memory of tensor torch"):
        w.detach().add_(1.0)  # torch has no read-only flag: detach()'s view is refused alike
    with ab.no_grad():
        row.add_(1.0)
    assert w.tolist() == [[2.0, 2.0, 2.0], [1.0, 1.0, 1.0]]


@pytest.mark.parametrize(("name", "change", "expected"), INPLACE[:9], ids=IDS[:9])
def test_inplace_method_on_a_graph_tensor_is_refused(name: str, change: Any, expected: Any) -> None:
    x = ab.tensor(_values(), requires_grad=True)
    y = ab.exp(x)
    for mode in (ab.enable_grad, ab.no_grad):
        with mode(), pytest.raises(RuntimeError, match=f"{name}: .*made by op 'exp'"):
            change(y)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, np.exp(_values()))


def test_optimizer_step_between_backward_passes_is_caught() -> None:
    w = ab.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    v = w.T  # a view of w's memory, sharing its version counter; mul saves the view, transpose saves w
    loss = (v * v).sum()
    loss.backward(retain_graph=True)
    first = w.grad.data.copy()
    with ab.no_grad():
        w.sub_(0.1 * w.grad)
    # mul runs first in the backward walk: the view it saved changed with w.
    with pytest.raises(RuntimeError, match=r"mul: .*float64\[2, 2\].*version 0.*version 1"):
        loss.backward()
    np.testing.assert_array_equal(w.grad.data, first)


def test_writes_through_data_of_saved_arrays_raise() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    y = ab.exp(x)  # exp's vjp reads its output
    z = y.reshape(2, 1)
    for array in (y.data, z.data, y.detach().data, x.detach().data, y.numpy()):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 100.0
    with pytest.raises(RuntimeError, match="read-only"):
        x.detach().add_(1.0)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, np.exp([1.0, 2.0]))


def test_leaf_arrays_stay_writeable_for_optimizers() -> None:
    x = ab.tensor([[1.0, 2.0]], requires_grad=True)
    # Ops that may hand back their input array (or a view of it) must not freeze the leaf.
    outputs = [ab.sum_to(x, x.shape), ab.reshape(x, x.shape), x.astype("float64"), ab.transpose(x), x[0]]
    assert all(not o.data.flags.writeable for o in outputs)
    assert x.data.flags.writeable
    sum(o.sum() for o in outputs).backward()
    optimizer = ab.optim.SGD([x], lr=0.5)
    optimizer.step()
    np.testing.assert_allclose(x.data, [[1.0 - 2.5, 2.0 - 2.5]])


def test_augmented_assignment_on_graph_tensors_rebinds() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3.0
    before = weakref.ref(y)  # (a weak reference: another name would make the rebind refuse)
    y += x  # a graph tensor cannot change in place: y becomes a new tensor, as without __iadd__
    y *= 2.0
    old = before()
    assert old is not None and y is not old and np.array_equal(old.data, [3.0, 6.0])
    del old
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, [8.0, 8.0])

    total = ab.tensor(0.0)  # a constant accumulating graph tensors: rebinds, the gradient flows
    for _ in range(3):
        total += (x * x).sum()
    x.grad = None
    total.backward()
    np.testing.assert_allclose(x.grad.data, [6.0, 12.0])


def test_a_held_grad_fn_does_not_stop_a_rebind_but_another_name_still_does() -> None:
    # grad_fn is a view holding the tensor (the tensor is its own node): it stands for the op that
    # made the old values, as the node object did before, and is no alias of the name rebound
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2.0
    node = h.grad_fn
    h += 1.0
    assert node is not None and node.name == "mul" and node.output.tolist() == [2.0, 4.0]
    (h * h).sum().backward()
    np.testing.assert_allclose(x.grad.data, [12.0, 20.0])
    g = x * 2.0
    node, alias = g.grad_fn, g
    with pytest.raises(RuntimeError, match="held by more than this name"):
        g += 1.0
    assert alias is g and node.output is g


def test_inplace_write_of_a_grad_operand_into_a_constant_is_refused() -> None:
    c = ab.tensor([0.0, 0.0])
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="drop the operand's gradient"):
        c.add_(x)
    with ab.no_grad():
        c.add_(x)
    assert np.array_equal(c.data, [1.0, 2.0])


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda t: t.add_(np.ones((2, 3))), ValueError, r"add_: tensor float64\[3\]: operand of shape \(2, 3\)"),
        (lambda t: t.mul_(np.ones(2)), ValueError, "does not broadcast to the tensor's shape"),
        (lambda t: t.copy_(np.ones(4)), ValueError, r"copy_: .*\(4,\)"),
        (lambda t: t.fill_([1.0, 2.0]), ValueError, "fill_: value must be a scalar"),
        (lambda t: t.clamp_(), ValueError, "clamp_: give at least one"),
        (lambda t: t.__setitem__(7, 1.0), IndexError, r"setitem: tensor float64\[3\], operand float 1\.0: index 7"),
        (lambda t: t.__setitem__(slice(None), np.ones(5)), ValueError, "setitem: .*broadcast"),
        (lambda t: ab.tensor([1, 2, 3]).div_(2), TypeError, r"div_: tensor int64\[3\], operand int 2: .*cast"),
        (lambda t: ab.tensor([1, 2, 3]).copy_([0.5] * 3), TypeError, r"copy_: tensor int64\[3\], operand float64\[3\]"),
        (lambda t: ab.broadcast_to(ab.tensor(1.0), (3,)).add_(1.0), RuntimeError, "read-only"),
        # numpy's OverflowError once came bare: "cannot convert float infinity to integer", no method, no tensor
        (
            lambda t: ab.tensor([1, 2, 3]).__setitem__(0, float("inf")),
            OverflowError,
            r"setitem: tensor int64\[3\], operand float inf: cannot convert float infinity",
        ),
        (lambda t: ab.tensor([1, 2, 3]).fill_(1e30), OverflowError, r"fill_: tensor int64\[3\], operand float 1e\+30"),
    ],
)
def test_bad_inplace_calls_fail_clearly_and_change_nothing(change: Any, error: type, message: str) -> None:
    t = ab.tensor(_values())
    with pytest.raises(error, match=message):
        change(t)
    assert np.array_equal(t.data, _values()) and t._version == 0


def test_setitem_accepts_tensor_indices_and_values() -> None:
    t = ab.zeros(4)
    t[ab.tensor([0, 2])] = ab.tensor([5.0, 6.0])
    t[ab.tensor([False, True, False, False])] = 1.0
    assert t.tolist() == [5.0, 1.0, 6.0, 0.0] and t._version == 2


def test_inplace_division_by_zero_follows_numpy_without_warnings() -> None:
    t = ab.tensor([1.0, -1.0, 0.0])
    t.div_(0.0)
    assert np.isinf(t.data[:2]).all() and np.isnan(t.data[2])


def _graph_tensor() -> ab.Tensor:
    return ab.tensor([1.0, 2.0, 3.0], requires_grad=True) * 2.0


def _view_of_a_graph_tensor(base: list[ab.Tensor]) -> ab.Tensor:
    base.append(_graph_tensor())
    return base[0][0:2]


def _transpose_of_a_graph_tensor(base: list[ab.Tensor]) -> ab.Tensor:
    base.append(ab.reshape(_graph_tensor(), (3, 1)))
    return base[0].T


def _a_loop_row(base: list[ab.Tensor]) -> ab.Tensor:
    base.append(ab.reshape(_graph_tensor(), (3, 1)))
    return next(iter(base[0]))


def _base_of_a_live_view(base: list[ab.Tensor]) -> ab.Tensor:
    tensor = _graph_tensor()
    base.append(tensor[0:2])  # (the view, which a write into tensor would change)
    return tensor


def _tensor_with_a_live_detach(base: list[ab.Tensor]) -> ab.Tensor:
    tensor = _graph_tensor()
    base.append(tensor.detach())
    return tensor


def _view_of_a_constant(base: list[ab.Tensor]) -> ab.Tensor:
    base.append(ab.tensor([1.0, 2.0, 3.0]))
    return base[0][0:2]


@pytest.mark.parametrize(
    "make",
    [
        _view_of_a_graph_tensor,
        _transpose_of_a_graph_tensor,
        _a_loop_row,
        _base_of_a_live_view,
        _tensor_with_a_live_detach,
        _view_of_a_constant,
    ],
)
@pytest.mark.parametrize("assign", ["+=", "-=", "*=", "/="])
def test_augmented_assignment_is_refused_where_another_tensor_shares_the_memory(make: Any, assign: str) -> None:
    # A rebind leaves the other tensor unchanged where a write in place (PyTorch's) changes it:
    # `v = h[0:2]; v += 1; (h * h).sum()` gave loss 56 and x.grad [8, 16, 24]; torch 70, [12, 20, 24].
    others: list[ab.Tensor] = []
    tensor = make(others)
    operand = ab.tensor(1.0, requires_grad=True)  # (a constant tensor rebinds only for such an operand)
    before = [np.array(t.data) for t in (tensor, *others)]
    method = {"+=": "__iadd__", "-=": "__isub__", "*=": "__imul__", "/=": "__itruediv__"}[assign]
    with pytest.raises(RuntimeError, match=rf"{re.escape(assign)}: tensor float64\[.*shares its memory"):
        getattr(tensor, method)(operand)
    assert all(np.array_equal(t.data, b) for t, b in zip((tensor, *others), before, strict=True))


def test_augmented_assignment_that_would_change_the_shape_or_dtype_is_refused() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2.0
    with pytest.raises(ValueError, match=r"\+=: tensor float64\[2\], operand float64\[3, 2\]: .*shape \(3, 2\)"):
        y += ab.zeros((3, 2))  # made y (3, 2); an in-place result keeps the tensor's shape
    assert y.shape == (2,)
    single = ab.tensor([1.0, 2.0], dtype="float32", requires_grad=True) * 2.0
    single *= ab.tensor([1.0, 2.0], dtype="float64")  # made it float64; numpy and torch keep float32
    assert single.dtype == np.float32
    single += 1.0  # a Python number keeps the dtype: the rebind stays
    assert single.dtype == np.float32
    counts = ab.tensor([1, 2]) * 1
    with pytest.raises(TypeError, match=r"\+=: tensor int64\[2\], operand float64\[2\]: .*dtype float64"):
        counts += ab.tensor([0.5, 0.5], requires_grad=True)  # float into int: not numpy's same kind


def test_augmented_assignment_into_a_leaf_that_requires_grad_is_refused_with_any_operand() -> None:
    w = ab.tensor([1.0, 2.0], requires_grad=True)
    x = ab.tensor([3.0, 4.0], requires_grad=True)
    for operand in (1.0, x):  # `w += x` rebound w to a non-leaf: an optimizer kept stepping the old w
        with pytest.raises(RuntimeError, match=r"\+=: tensor float64\[2\] is a leaf that requires grad"):
            w += operand
        assert w.grad_fn is None and np.array_equal(w.data, [1.0, 2.0])
    with ab.no_grad():
        w += x  # (an optimizer's step: written in place)
    assert w.grad_fn is None and np.array_equal(w.data, [4.0, 6.0]) and w._version == 1


def test_augmented_assignment_rebinds_once_a_temporary_view_is_gone() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2.0
    first = y[0]
    del first  # no tensor shares y's memory any more: the rebind is exact again
    y += 1.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, [2.0, 2.0])


def _leaf_and_product() -> tuple[ab.Tensor, ab.Tensor]:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    return x, x * 2.0


def test_augmented_assignment_is_refused_where_another_name_holds_the_tensor() -> None:
    # The rebind reaches this name only: g = h; g *= 3 left h as it was (PyTorch writes into both)
    x, h = _leaf_and_product()
    g = h
    with pytest.raises(RuntimeError, match=r"\*=: tensor float64\[2\] is held by more than this name"):
        g *= 3.0

    def add_bias_(t: ab.Tensor, b: float) -> None:
        t += b  # the caller's tensor would not change

    with pytest.raises(RuntimeError, match="held by more than this name"):
        add_bias_(h, 1.0)
    del g
    hs = [x * 3.0]
    hs[0] += 1.0  # a list entry is rebound where it stands: the list sees the new tensor
    np.testing.assert_array_equal(hs[0].data, [4.0, 7.0])
    h += 1.0  # the one name left: rebound
    (h * hs[0]).sum().backward()
    np.testing.assert_array_equal(x.grad.data, 2.0 * hs[0].data + 3.0 * h.data)


def test_augmented_assignment_rebinds_once_a_view_or_detach_is_gone() -> None:
    # (the storage's counter list, made for the view, stays: only live sharers count)
    _, h = _leaf_and_product()
    y = h.reshape(2, 1)
    del y
    str(h.detach())
    h += 1.0
    np.testing.assert_array_equal(h.data, [3.0, 5.0])


def test_augmented_assignment_of_a_graph_tensor_under_no_grad_is_refused() -> None:
    # rebinding took h off its graph (x.grad [2, 4]); PyTorch writes into h and keeps it on (x.grad [8, 10])
    _, h = _leaf_and_product()
    with ab.no_grad(), pytest.raises(RuntimeError, match=r"\+=: .* is on a graph and grad is off"):
        h += ab.tensor([3.0, 3.0])


def test_every_augmented_operator_takes_the_checks() -> None:
    # Without __ipow__ (and @=, &=, |=) Python ran v = v ** 2 with no check at all
    _, h = _leaf_and_product()
    v = h[0:2]
    with pytest.raises(RuntimeError, match=r"\*\*=: .*shares its memory"):
        v **= 2.0
    w = ab.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError):
        w **= 2.0  # a leaf that requires grad, as w += 1.0
    del v
    with pytest.raises(ValueError, match=r"\*\*=: .*cannot change the shape. Write y = y \*\* other"):
        h **= ab.tensor([[1.0], [2.0]])
    m = ab.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True) * 1.0
    m @= ab.tensor([[0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_array_equal(m.data, [[2.0, 1.0], [4.0, 3.0]])
    flags = ab.tensor([True, False, True])
    flags &= ab.tensor([True, True, False])
    flags |= ab.tensor([False, True, False])
    np.testing.assert_array_equal(flags.data, [True, True, False])
    counts = ab.tensor([4, 5])
    with pytest.raises(TypeError, match=r"&=: operand int64\[2\] is not boolean"):
        counts &= ab.tensor([2, 3])


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_every_augmented_operator_writes_a_constant_in_place_on_every_library(library: str) -> None:
    # On torch, **=, @=, &= and |= of a constant failed inside autobp (KeyError: '**='), and on
    # both libraries m @= a square operand of another size was refused as "does not broadcast",
    # where numpy writes the product ((2, 3) @= (3, 3) is (2, 3)).
    if library == "torch":
        torch = pytest.importorskip("torch")

        def make(values: Any) -> ab.Tensor:
            return ab.tensor(torch.from_numpy(np.array(values)))
    else:

        def make(values: Any) -> ab.Tensor:
            return ab.tensor(np.array(values))

    v = make([1.0, -2.0, 3.0])
    v **= 2.0
    np.testing.assert_array_equal(v.numpy(), [1.0, 4.0, 9.0])
    m = make(np.arange(6.0).reshape(2, 3))
    alias = m
    m @= make(np.diag([1.0, 10.0, 100.0]))
    assert m is alias  # written in place, not rebound
    np.testing.assert_array_equal(m.numpy(), [[0.0, 10.0, 200.0], [3.0, 40.0, 500.0]])
    m @= make(np.eye(3, dtype=np.float32))  # float32 into float64, as numpy computes it
    np.testing.assert_array_equal(m.numpy(), [[0.0, 10.0, 200.0], [3.0, 40.0, 500.0]])
    with pytest.raises(ValueError, match=r"^@=: "):
        m @= make(np.ones((3, 1)))  # a (2, 1) product: numpy refuses it, torch's copy_ would broadcast it
    with pytest.raises(TypeError, match=r"^@=: "):
        counts = make(np.ones((2, 2), dtype=np.int64))
        counts @= make(np.eye(2))  # float64 into int64: numpy's same_kind rule
    flags = make([True, False, True])
    flags &= make([True, True, False])
    flags |= True
    np.testing.assert_array_equal(flags.numpy(), [True, True, True])
    flags &= np.False_
    np.testing.assert_array_equal(flags.numpy(), [False, False, False])


def test_a_write_from_the_tensors_own_memory_on_torch_is_numpys() -> None:
    # numpy writes as if it had copied an overlapping operand first (t[1:] = t[:-1] shifts the
    # values); torch refuses a partial overlap ("unsupported operation: some elements of the input
    # tensor and the written-to tensor refer to a single memory location").
    torch = pytest.importorskip("torch")
    writes: list[Callable[[Any], Any]] = [
        lambda t: t.__setitem__(slice(1, None), t[:-1]),
        lambda t: t.__setitem__(slice(None, -1), t[1:]),
        lambda t: t[1:].copy_(t[:-1]),
        lambda t: t[1:].add_(t[:-1]),
        lambda t: t[1:].__iadd__(t[:-1]),
        lambda t: t[1:].clamp_(t[:-1], None),
        lambda t: t.mul_(t),
    ]
    for write in writes:
        expected = ab.tensor(np.arange(10.0))
        write(expected)
        target = ab.tensor(torch.arange(10.0, dtype=torch.float64))
        write(target)
        np.testing.assert_array_equal(target.numpy(), expected.numpy())


def test_augmented_assignment_keeps_the_tensors_dtype_as_a_write_in_place_does() -> None:
    # float32 += a float64 0-d tensor: numpy's and PyTorch's in-place add keep float32 (same kind)
    x = ab.tensor([1.0, 2.0], dtype="float32", requires_grad=True)
    h = x * 2.0
    h += ab.tensor(0.5)
    assert h.dtype == np.float32
    np.testing.assert_array_equal(h.data, np.array([2.5, 4.5], dtype=np.float32))
    h.sum().backward()
    assert x.grad.dtype == np.float32 and np.array_equal(x.grad.data, [2.0, 2.0])
    ints = ab.tensor([1, 2]) * 1
    with pytest.raises(TypeError):
        ints += ab.tensor([0.5, 0.5], requires_grad=True)  # float into int: not the same kind


def test_augmented_assignment_counts_its_own_operand_and_handed_out_arrays() -> None:
    x, h = _leaf_and_product()
    h += h  # its own operand: not another holder (was refused)
    np.testing.assert_array_equal(h.data, [4.0, 8.0])
    held = h.numpy()  # the array itself: a rebind would leave it with the old values
    with pytest.raises(RuntimeError, match="shares its memory with an array handed out"):
        h += 1.0
    del held
    h += 1.0
    retained = x * 3.0
    retained.retain_grad()
    retained += 1.0  # the new tensor keeps the retained .grad (None before)
    (retained * retained).sum().backward()
    np.testing.assert_array_equal(retained.grad.data, 2.0 * (3.0 * x.data + 1.0))


def test_the_unaliased_count_is_measured_with_tracing_off(monkeypatch: pytest.MonkeyPatch) -> None:
    # A tracer reading the frame's locals while the count was first measured made it one too
    # high for good: every later alias got through (g = h; g *= 3 left h unchanged)
    import importlib
    import sys

    inplace = importlib.import_module("autobp.tensor.inplace")
    monkeypatch.setattr(inplace, "_UNALIASED", None)
    frames: list[Any] = []

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        frame.f_locals  # noqa: B018  (what a debugger does: the locals dict holds a reference)
        frames.append(frame)
        return tracer

    previous = sys.gettrace()  # (coverage's tracer, under pytest-cov: put back, or the rest goes unmeasured)
    sys.settrace(tracer)
    try:
        inplace._unaliased(False)  # the first measure, as the first rebind takes it, under the tracer
    finally:
        sys.settrace(previous)
    frames.clear()
    _, h = _leaf_and_product()
    g = h
    with pytest.raises(RuntimeError, match="held by more than this name"):
        g *= 3.0
