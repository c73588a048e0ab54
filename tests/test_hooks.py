"""Gradient hooks and retain_grad."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import numpy as np
import pytest

import autobp as ab
from autobp.hooks import RemovableHandle


def test_leaf_hook_sees_the_total_gradient_once_and_may_replace_it() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    seen: list[np.ndarray] = []
    x.register_hook(lambda g: seen.append(g.data.copy()))  # observes (returns None)
    x.register_hook(lambda g: g * 10.0)  # replaces
    (x * x + 3.0 * x).sum().backward()  # x is used three times
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], [5.0, 7.0])
    np.testing.assert_allclose(x.grad.data, [50.0, 70.0])


def test_non_leaf_hook_changes_what_flows_upstream() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3.0
    y.register_hook(lambda g: g * 0.0 + 1.0)
    (y * y).sum().backward()  # dL/dy = 2y, replaced by ones
    np.testing.assert_allclose(x.grad.data, [3.0, 3.0])


def test_hooks_run_in_registration_order() -> None:
    x = ab.tensor([1.0], requires_grad=True)
    y = x * 1.0
    for target in (x, y):
        target.register_hook(lambda g: g + 1.0)
        target.register_hook(lambda g: g * 2.0)
    y.sum().backward()  # y: (1 + 1) * 2 = 4; x: (4 + 1) * 2 = 10
    np.testing.assert_allclose(x.grad.data, [10.0])


def test_remove_handle_unregisters_and_is_idempotent() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2.0
    calls: list[str] = []
    handles = [x.register_hook(lambda g: calls.append("x")), y.register_hook(lambda g: calls.append("y"))]
    for handle in handles:
        assert isinstance(handle, RemovableHandle)
        handle.remove()
        handle.remove()
    assert x._hooks is None and y.grad_fn.hooks is None  # the engine's fast path is back
    y.sum().backward()
    assert calls == []
    with x.register_hook(lambda g: calls.append("x")):
        (x * 1.0).sum().backward()
    (x * 1.0).sum().backward()
    assert calls == ["x"]


def test_hooks_also_run_for_ab_grad() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda g: g * 2.0)
    (g,) = ab.grad((x * x).sum(), [x])
    np.testing.assert_allclose(g.data, [4.0, 8.0])
    assert x.grad is None


def test_retain_grad_keeps_intermediate_gradients() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3.0
    z = ab.exp(y)
    y.retain_grad()
    z.retain_grad()
    x.retain_grad()  # a no-op on leaves
    z.sum().backward()
    np.testing.assert_allclose(z.grad.data, [1.0, 1.0])
    np.testing.assert_allclose(y.grad.data, np.exp([3.0, 6.0]))
    np.testing.assert_allclose(x.grad.data, 3.0 * np.exp([3.0, 6.0]))
    w = x * 2.0
    (w * w).sum().backward()
    assert w.grad is None  # not retained


def test_retain_grad_does_not_keep_the_tensor_alive() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3.0
    y.retain_grad()
    out = (y * y).sum()
    reference = weakref.ref(y)
    node = y.grad_fn
    del y
    gc.collect()
    assert reference() is not None  # still an input of the mul node
    out.backward()  # the graph is released...
    del node
    assert reference() is None  # ...and nothing else held y


@pytest.mark.parametrize("target", ["leaf", "non-leaf"])
def test_bad_hooks_fail_clearly(target: str) -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    t = x if target == "leaf" else x * 2.0

    def wrong_shape(g: ab.Tensor) -> ab.Tensor:
        return g.sum()

    t.register_hook(wrong_shape)
    with pytest.raises(
        RuntimeError, match=r"hook wrong_shape: returned a gradient of shape \(\) for a tensor of shape \(2,\)"
    ):
        (t * t).sum().backward()
    assert x.grad is None


def test_hook_may_return_an_array() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda g: np.array([5.0, 6.0]))
    x.sum().backward()
    np.testing.assert_allclose(x.grad.data, [5.0, 6.0])


def test_hooks_need_a_tensor_that_requires_grad() -> None:
    c = ab.tensor([1.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        c.register_hook(lambda g: g)
    with pytest.raises(RuntimeError, match="does not require grad"):
        c.retain_grad()
    with pytest.raises(TypeError, match="hook must be callable"):
        ab.tensor([1.0], requires_grad=True).register_hook(3)  # type: ignore[arg-type]


def test_grad_never_writes_retained_grads() -> None:
    # ab.grad returns gradients and writes no .grad, retain_grad() included (docs/trust.md).
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3.0
    y.retain_grad()
    (gx,) = ab.grad((y * y).sum(), [x], retain_graph=True)
    np.testing.assert_array_equal(gx.data, 18.0 * x.data)
    assert y.grad is None and x.grad is None
    (y * y).sum().backward()
    np.testing.assert_array_equal(y.grad.data, 2.0 * y.data)


def test_a_hook_that_changes_the_dtype_is_refused() -> None:
    # Else the walk goes on in the hook's dtype: float16 would round every gradient upstream.
    x = ab.tensor([1.0], requires_grad=True)
    y = x * 1.0
    y.register_hook(lambda g: g.astype(np.float16))
    with pytest.raises(RuntimeError, match=r"hook <lambda>: returned a gradient of dtype float16 .* float64"):
        (y * 3.3).sum().backward()
    assert x.grad is None


def test_a_leaf_hook_may_remove_itself_or_another_during_backward() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    handles = []

    def once(g: ab.Tensor) -> ab.Tensor:
        handles[0].remove()
        handles[1].remove()  # the other hook: it has not run yet, and does not run now
        return g * 3.0

    handles.append(x.register_hook(once))
    handles.append(x.register_hook(lambda g: g * 100.0))
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [6.0, 12.0])
    assert x._hooks is None


def test_grad_returns_a_hooked_tensors_gradient_after_its_hooks_whatever_else_is_asked() -> None:
    # What ab.grad returns for a hooked non-leaf y is what y.grad would hold (retain_grad): after the
    # hook, whether or not the walk goes on to x. (PyTorch 2.13 returns it before the hook when x is
    # asked for too, after the hook when y alone is: one tensor, two answers.)
    def run(wanted: str) -> list[list[float]]:
        x = ab.tensor([1.0, 2.0], requires_grad=True)
        y = x * 3.0
        y.register_hook(lambda g: g * 10.0)
        inputs = [y, x] if wanted == "both" else [y]
        return [g.numpy().tolist() for g in ab.grad((y * y).sum(), inputs)]  # type: ignore[union-attr]

    assert run("y") == [[60.0, 120.0]]
    assert run("both") == [[60.0, 120.0], [180.0, 360.0]]


def test_pytorch_gives_a_hooked_tensors_gradient_before_its_hook_when_an_input_below_is_asked_too() -> None:
    # trust.md's account of PyTorch 2.13, which autobp does not follow (the test above).
    torch = pytest.importorskip("torch")

    def run(wanted: str) -> list[list[float]]:
        x = torch.tensor([1.0, 2.0], requires_grad=True)
        y = x * 3.0
        y.register_hook(lambda g: g * 10.0)
        inputs = [y, x] if wanted == "both" else [y]
        return [g.tolist() for g in torch.autograd.grad((y * y).sum(), inputs)]

    assert run("y") == [[60.0, 120.0]]  # after the hook
    assert run("both") == [[6.0, 12.0], [180.0, 360.0]]  # before it


def test_grad_runs_no_hook_of_a_branch_that_leads_to_no_input() -> None:
    """``ab.grad(y, [x])`` runs the hooks of what lies between y and x only, as PyTorch does:
    a hook on w's branch (an intermediate or the leaf w) would see a gradient nobody asked for."""
    x, w = ab.tensor([1.0, 2.0], requires_grad=True), ab.tensor([3.0, 4.0], requires_grad=True)
    calls: list[str] = []
    u, v = w * 2.0, x * 2.0
    u.register_hook(lambda g: calls.append("u"))
    w.register_hook(lambda g: calls.append("w"))
    v.register_hook(lambda g: calls.append("v") or g * 10.0)  # between y and x: runs, and counts
    shared = (u * v).sum()  # w's branch and x's meet here: u leads to no input, v does
    (gx,) = ab.grad((x * 3.0 + u + v).sum() + shared, [x])
    np.testing.assert_array_equal(gx.data, 3.0 + 2.0 * 10.0 * (1.0 + 2.0 * w.data))
    assert calls == ["v"]
    (gw,) = ab.grad((x * u).sum(), [w])  # asked for w: its hooks run
    np.testing.assert_array_equal(gw.data, 2.0 * x.data)
    assert calls == ["v", "u", "w"]


def test_grad_skips_a_hooked_branch_and_leaves_it_for_a_later_grad() -> None:
    # Two hooked nodes on the unneeded branch, the second reading the first: answered once each.
    x, w = ab.tensor(1.0, requires_grad=True), ab.tensor(2.0, requires_grad=True)
    calls: list[str] = []
    a = w * 3.0
    b = a * a
    for t, name in ((a, "a"), (b, "b")):
        t.register_hook(lambda g, name=name: calls.append(name))
    y = x * 5.0 + b
    assert ab.grad(y, [x])[0].item() == 5.0 and calls == []
    with pytest.raises(RuntimeError, match=r"freed|retain_graph"):
        y.backward()  # (the walk freed what it ran)
    assert ab.grad(b, [w])[0].item() == 2 * 6.0 * 3.0 and calls == ["b", "a"]  # not run, so not freed


@pytest.mark.parametrize("create_graph", [False, True])
def test_a_hook_changing_its_gradient_in_place_changes_no_other(create_graph: bool) -> None:
    # x + z hands one gradient to both inputs: a hook on z that doubles it in place doubled x's too
    def double_in_place(g: ab.Tensor) -> None:
        with ab.no_grad():
            g.mul_(2.0)

    x, z = ab.tensor([1.0, 2.0], requires_grad=True), ab.tensor([3.0, 4.0], requires_grad=True)
    z.register_hook(double_in_place)
    ((x + z) * ab.tensor([1.0, 3.0])).sum().backward(create_graph=create_graph)
    np.testing.assert_array_equal(x.grad.data, [1.0, 3.0])
    np.testing.assert_array_equal(z.grad.data, [2.0, 6.0])  # (the hook's change is z's gradient)
    hidden = x * 1.0
    hidden.register_hook(double_in_place)
    gx, gz = ab.grad(((hidden + z) * ab.tensor([1.0, 3.0])).sum(), [x, z], create_graph=create_graph)
    np.testing.assert_array_equal(gx.data, [2.0, 6.0])
    np.testing.assert_array_equal(gz.data, [2.0, 6.0])  # z's hook ran too, on its own copy


@pytest.mark.parametrize("wrong", [np.ones(1), np.ones(()), np.ones(2, dtype=np.float32), "array"])
def test_a_grad_set_by_hand_to_another_shape_or_dtype_is_refused_and_nothing_written(wrong: Any) -> None:
    # A (1,) .grad on a (2,) leaf was broadcast by the next backward ([7, 9]); a float32 one promoted
    x, w = ab.tensor([1.0, 2.0], requires_grad=True), ab.tensor([3.0, 4.0], requires_grad=True)
    x.grad = ab.tensor(np.ones(2)) if isinstance(wrong, str) else ab.tensor(wrong)
    w.grad = np.ones(2) if isinstance(wrong, str) else ab.tensor([5.0, 5.0])  # (an array, not a Tensor)
    with pytest.raises(TypeError, match=r"\.grad of float64\[2\] holds .* a \.grad set by hand must be"):
        (x * w).sum().backward()
    assert x.grad is not None and w.grad is not None
    before = (np.asarray(x.grad.data).copy(), np.asarray(getattr(w.grad, "data", w.grad)).copy())
    with pytest.raises(TypeError):
        (x * w).sum().backward()
    np.testing.assert_array_equal(np.asarray(x.grad.data), before[0])  # nothing written, either leaf
    np.testing.assert_array_equal(np.asarray(getattr(w.grad, "data", w.grad)), before[1])


def test_an_optimizer_refuses_a_grad_of_another_shape() -> None:
    w = ab.tensor([1.0, 2.0], requires_grad=True)
    w.grad = ab.tensor(0.5)  # 0-d: the update subtracted it from every element
    with pytest.raises(ValueError, match=r"SGD.step: a parameter float64\[2\] has a gradient float64\[\]"):
        ab.optim.SGD([w], lr=1.0).step()
    np.testing.assert_array_equal(w.data, [1.0, 2.0])


def test_grad_accumulates_in_place_as_pytorchs_does() -> None:
    # A reference to .grad taken before a second backward held the first gradient alone
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    first = x.grad
    (x * x).sum().backward()
    assert x.grad is first
    np.testing.assert_array_equal(first.data, [4.0, 8.0])
    # a graph that read .grad sees the write as any in-place write: its backward refuses
    w = ab.tensor([1.0, 1.0], requires_grad=True)
    stale = (w * x.grad).sum()
    (x * x).sum().backward()
    with pytest.raises(RuntimeError, match="was modified in place after the op ran"):
        stale.backward()
    # a .grad carrying a graph (create_graph) still adds out of place, recording the sum
    y = ab.tensor([3.0], requires_grad=True)
    with pytest.warns(UserWarning, match="reference cycle"):
        (y * y).sum().backward(create_graph=True)
    held = y.grad
    (y * y).sum().backward()
    assert y.grad is not held and held.item() == 6.0 and y.grad.item() == 12.0


def test_grad_through_a_hooked_node_freed_by_an_earlier_backward_raises() -> None:
    # The freed node's inputs read as none, so it seemed to lead to no input and was skipped:
    # grad gave [5, 5] (the other path alone) where PyTorch says the graph was freed
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    a = x * x
    a.register_hook(lambda g: g)
    (a * 2.0).sum().backward()
    with pytest.raises(RuntimeError, match="a second time"):
        ab.grad((a * 3.0).sum() + (x * 5.0).sum(), [x])


@pytest.mark.parametrize("dtype", ["int64", "bool"])
def test_an_optimizer_refuses_a_grad_that_is_not_floating_point(dtype: str) -> None:
    # cast and stepped as numbers: True became 1.0 (backward refuses such a .grad too)
    w = ab.tensor([1.0, 2.0], requires_grad=True)
    w.grad = ab.tensor(np.ones(2, dtype=dtype))
    with pytest.raises(TypeError, match=rf"SGD.step: .* has a gradient {dtype}\[2\]; a gradient is floating-point"):
        ab.optim.SGD([w], lr=1.0).step()
    np.testing.assert_array_equal(w.data, [1.0, 2.0])


def test_zero_grad_to_zeros_writes_into_grad_and_a_retained_grad_adds_out_of_place() -> None:
    # zero_grad(set_to_none=False) made a new tensor: a reference kept before it held the old
    # gradient; PyTorch zeroes .grad itself. A retained non-leaf .grad adds out of place, as PyTorch's.
    w = ab.tensor([[1.0, 2.0]], requires_grad=True)
    model = ab.nn.Linear(2, 1, bias=False)
    model.weight = ab.nn.Parameter(w.detach())
    opt = ab.optim.SGD(model.parameters(), lr=0.1)
    model(ab.tensor([[1.0, 2.0]])).sum().backward()
    kept = model.weight.grad
    opt.zero_grad(set_to_none=False)
    model.zero_grad(set_to_none=False)
    model(ab.tensor([[3.0, 6.0]])).sum().backward()
    assert model.weight.grad is kept
    np.testing.assert_array_equal(kept.data, [[3.0, 6.0]])
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2.0
    h.retain_grad()
    (h * 1.0).sum().backward(retain_graph=True)
    first = h.grad
    (h * 1.0).sum().backward()
    np.testing.assert_array_equal(first.data, [1.0, 1.0])
    np.testing.assert_array_equal(h.grad.data, [2.0, 2.0])


@pytest.mark.parametrize("create_graph", [False, True])
def test_an_error_in_backward_leaves_every_grad_as_it_was_retained_ones_too(create_graph: bool) -> None:
    """design.md: ``.grad`` is written only once the whole walk succeeded, "an error leaves every
    .grad as it was". A retained tensor's ``.grad`` was written as its node ran, before the walk
    reached a stale input further upstream (or a leaf's ``.grad`` set by hand to another shape)."""
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    w = ab.tensor([1.0, 2.0], requires_grad=True)
    scale = ab.tensor([3.0, 4.0])
    h = (x * scale) * 2.0 + w  # mul saves `scale`; h's node runs before mul's
    h.retain_grad()
    h.sum().backward(retain_graph=True)
    first = h.grad
    assert first is not None
    np.testing.assert_array_equal(first.numpy(), [1.0, 1.0])
    scale.mul_(10.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        (h * 5.0).sum().backward(create_graph=create_graph)
    assert h.grad is first  # not [6, 6]
    np.testing.assert_array_equal(first.numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 1.0])

    y = ab.tensor([1.0, 2.0], requires_grad=True)
    k = y * 3.0
    k.retain_grad()
    y.grad = ab.tensor([1.0])  # another shape: refused before anything is written
    with pytest.raises(TypeError):
        (k * k).sum().backward(create_graph=create_graph)
    assert k.grad is None
