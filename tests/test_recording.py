"""The eager path's shortcuts (graph.record, the engine's walk) against slow, obvious versions.

``record`` fills a Tensor's slots (a recorded op's output is its own node) itself instead of
calling ``Tensor._wrap``; the engine walks nodes in recording order (checked against a counting
walk), passes keywords to rules only when a node has some, casts a gradient's dtype only when it
differs, and switches modes by hand for each walk. Each test here tries to break one of these.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import numpy as np
import pytest

import autobp as ab
from autobp import engine, graph
from autobp.graph import Node
from autobp.tensor import TWO, Tensor, _Kept

# The slots of a recorded op's output that hold its node (``op`` is None on other tensors).
NODE_SLOTS = ("op", "_in0", "_in1", "_more", "out", "_rare", "_seq")


def _slots(cls: type) -> list[str]:
    return [name for name in cls.__slots__ if name != "__weakref__"]


@pytest.mark.parametrize(
    "make",
    [
        lambda x: x * 2.0,  # a Python constant
        lambda x: ab.sin(x),  # a ufunc forward
        lambda x: x.sum(),  # a reduction to a numpy scalar, which becomes a 0-d array
        lambda x: x.reshape(3, 1),  # a view of the input
        lambda x: x @ np.ones((3, 2)),  # a writeable numpy constant, copied
    ],
)
def test_a_recorded_tensor_and_node_have_every_slot_a_wrapped_one_has(make: Any) -> None:
    x = ab.tensor([1.0, 2.0, 3.0], requires_grad=True)
    out = make(x)
    plain = Tensor._wrap(out.data)
    assert set(NODE_SLOTS) < set(_slots(Tensor))
    for name in _slots(Tensor):  # a slot added to Tensor but not to record() fails here
        if name == "_in1" and out._more is not TWO:
            continue  # (an op of one input leaves it unset)
        if name in NODE_SLOTS:
            getattr(out, name)  # an unset slot would raise AttributeError
        elif name == "_vc" and out.data.base is not None:
            assert out._vc is x._vc  # a view shares its input's version counter
        elif name not in ("data", "_requires_grad"):
            assert getattr(out, name) == getattr(plain, name), name
    assert plain.op is None and x.op is None  # (the one node slot every tensor sets)
    assert type(out.data) is np.ndarray and not out.data.flags.writeable
    assert out.requires_grad and out.grad_fn is not None and out.grad_fn == out.grad_fn
    assert out.out is out.data and out._rare is None and out.versions is None
    assert out._inputs is not None and out._inputs[0] is x  # (the inputs in slots, read whole)
    (g,) = ab.grad(out.sum(), [x], retain_graph=True)
    (general,) = ab.grad(out.sum(), [x], create_graph=True)  # the general path, on Tensors
    np.testing.assert_array_equal(g.data, general.data)


def test_a_node_view_is_of_a_recorded_tensor_only() -> None:
    with pytest.raises(TypeError, match="leaves have no grad_fn"):
        Node(ab.tensor([1.0], requires_grad=True))
    y = ab.tensor([1.0], requires_grad=True) * 3.0
    node = y.grad_fn
    assert node is not None and node.output is y and node == y.grad_fn and hash(node) == hash(y.grad_fn)
    assert node.name == "mul" and node.out is y.data and node.versions is None and node != (y * 1.0).grad_fn


def test_rare_fields_read_none_and_cost_nothing_until_set() -> None:
    node = ab.tensor([1.0], requires_grad=True) * 3.0
    assert (node._kwarg_versions, node._node_hooks, node._retained, node._trace) == (None, None, None, None)
    node._node_hooks = None
    assert node._rare is None  # setting None keeps the usual node small
    node._node_hooks = []
    assert node._rare is not None and node._node_hooks == [] and node._trace is None


def test_versions_are_saved_only_after_a_write_and_still_caught() -> None:
    w = ab.tensor([1.0, 2.0], requires_grad=True)
    x = ab.tensor([3.0, 4.0])
    assert (w * x).grad_fn.versions is None  # type: ignore[union-attr]
    x.add_(1.0)  # version 1: nodes that read x now save the versions of all inputs
    y = w * x
    assert y.grad_fn.versions == (0, 1)  # type: ignore[union-attr]
    x.add_(1.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        y.sum().backward()
    assert w.grad is None


def test_a_keyword_tensor_is_version_checked() -> None:
    x = ab.tensor([1.0, 2.0, 3.0], requires_grad=True)
    index = ab.tensor(np.array([2, 0]))
    y = x[index]
    assert y.grad_fn is not None and y.grad_fn.kwarg_versions is not None
    index[0] = 1  # an in-place write moves the index's version
    with pytest.raises(RuntimeError, match="keywords"):
        y.sum().backward()


def _bump(tensor: Tensor, times: int, through_a_view: bool = False) -> None:
    with ab.no_grad():  # as an optimizer's step writes a parameter
        target = tensor[:, :1] if through_a_view else tensor  # a view shares the counter
        for _ in range(times):
            target.add_(0.0)  # an in-place write: the values stay, the version moves


@pytest.mark.parametrize("before", [0, 1, 2])  # writes before the op: versions saved or not
@pytest.mark.parametrize("after", [0, 1])  # writes between the op and backward
@pytest.mark.parametrize("which", ["w", "x", "view of x"])
@pytest.mark.parametrize("op", ["mul", "sin", "matmul", "mul by a constant"])
def test_the_inline_version_test_of_one_or_two_inputs_agrees_with_check_versions(
    before: int, after: int, which: str, op: str
) -> None:
    """The fast path (``_on_arrays``) tests versions inline for nodes of one or two inputs and calls
    ``check_versions`` only on a difference: it must raise exactly when ``check_versions`` (the
    general path's test) does, for every case."""
    w = ab.tensor(np.arange(1.0, 5.0).reshape(2, 2), requires_grad=True)
    x = ab.tensor(np.arange(2.0, 6.0).reshape(2, 2), requires_grad=True)
    written = w if which == "w" else x
    _bump(written, before)
    make = {
        "mul": lambda: w * x,
        "sin": lambda: ab.sin(x if which != "w" else w),
        "matmul": lambda: w @ x,
        "mul by a constant": lambda: (x if which != "w" else w) * np.float64(3.0),
    }[op]
    out = node = make()  # (a recorded op's output is its node)
    assert node.op is not None and node.op.plain_arrays and node._rare is None
    _bump(written, after, through_a_view=which == "view of x")
    try:
        engine.rule_paths.check_versions(node, node._inputs)  # type: ignore[arg-type]
        general_raises = False
    except RuntimeError:
        general_raises = True
    assert general_raises == bool(after)
    if general_raises:
        with pytest.raises(RuntimeError, match="modified in place"):
            ab.grad(out.sum(), [t for t in (w, x) if t.requires_grad])
    else:
        inputs = [t for t in (w, x) if t.requires_grad and any(t is v for v in node._inputs)]  # type: ignore[union-attr]
        fast = ab.grad(out.sum(), inputs, retain_graph=True)
        general = ab.grad(out.sum(), inputs, create_graph=True)  # the general path, check_versions
        for a, b in zip(fast, general, strict=True):
            np.testing.assert_array_equal(a.data, b.data)  # type: ignore[union-attr]


def _slow_gradients(outputs: list[Tensor]) -> dict[Any, np.ndarray | None]:
    """d(sum of outputs)/d(vertex) for every vertex (None: only zero contributions reached it), by
    the textbook walk: every one reachable from the outputs
    found by recursion, one count per edge into it, and a vertex run once all its counts arrived.
    Nothing here reads ``Tensor._seq``: it checks the engine's order by an independent one. A
    vertex is a Tensor: a recorded op's output (its node) or a leaf."""
    reached: list[Tensor] = []

    def visit(node: Tensor) -> None:
        if all(node is not n for n in reached):
            reached.append(node)
            for value in node._inputs or ():
                if isinstance(value, Tensor) and value.op is not None:
                    visit(value)

    for output in outputs:
        visit(output)
    waiting: dict[Any, int] = {}
    for node in reached:
        for value in node._inputs or ():
            if isinstance(value, Tensor) and value.requires_grad:
                waiting[value] = waiting.get(value, 0) + 1
    grads: dict[Any, np.ndarray] = {}
    for output in outputs:
        grads[output] = grads.get(output, 0) + np.ones_like(output.data)
    ready = [v for v in dict.fromkeys(outputs) if v not in waiting]
    totals: dict[Any, np.ndarray | None] = {}
    while ready:
        node = ready.pop()
        g = totals[node] = grads.pop(node)
        if g is None:  # only zeros arrived: its inputs get zeros too
            results: Any = [None] * len(node._inputs or ())
        else:
            with ab.no_grad():
                values = graph.node_inputs(node) or ()
                results = engine.rule_paths._run_rules(node, Tensor._wrap(g), Tensor._wrap(node.out), values)
        for value, contribution in zip(node._inputs or (), results, strict=True):
            if not (isinstance(value, Tensor) and value.requires_grad):
                continue
            vertex = value
            if contribution is None:  # a zero that the walk passes on without running rules or hooks
                grads.setdefault(vertex, None)
            else:
                c = contribution.data  # (every value of these graphs has one shape: nothing to sum back)
                so_far = grads.get(vertex)
                grads[vertex] = c if so_far is None else so_far + c
            waiting[vertex] -= 1
            if not waiting[vertex] and vertex.op is not None:
                ready.append(vertex)
    return {**totals, **grads}  # (what is left in grads: the leaves')


@pytest.mark.parametrize("seed", range(8))
def test_the_walk_in_recording_order_matches_a_counting_walk_on_random_graphs(seed: int) -> None:
    # Random DAGs with shared inputs, a tensor used twice by one op, outputs that feed other
    # outputs, and an op whose rule gives None (a zero contribution) for its second input;
    # recorded in an order that interleaves unrelated branches, so that the latest node is often
    # not the next one a depth-first walk would take.
    from tests.test_contributions import _halve_first

    rng = np.random.default_rng(seed)
    leaves = [ab.tensor(rng.standard_normal(2), requires_grad=True) for _ in range(3)]
    values: list[Tensor] = [*leaves, ab.tensor(rng.standard_normal(2))]
    for _ in range(30):
        a, b = (values[int(i)] for i in rng.integers(0, len(values), 2))
        kind = rng.random()
        values.append(ab.tanh(a * b) if kind < 0.4 else a + b if kind < 0.8 else _halve_first(a, b))
    recorded = [v for v in values if v.op is not None]
    outputs = [recorded[int(i)] for i in rng.choice(len(recorded), 3, replace=False)]
    for node in recorded:  # the order the walk relies on, as recorded
        for value in node._inputs or ():
            if isinstance(value, Tensor) and value.op is not None:
                assert value._seq < node._seq
    want = _slow_gradients(outputs)
    # Each node must run once, with its whole gradient: its hook sees what it is given. (Leaves'
    # gradients alone could not tell: a node run twice on two parts of its gradient sums to the
    # same leaves' gradients.)
    seen: dict[Any, list[np.ndarray]] = {}
    for value in recorded:
        value.register_hook(lambda g, node=value: seen.setdefault(node, []).append(g.data.copy()))
    ones = [ab.tensor(np.ones(2)) for _ in outputs]
    middle = recorded[int(rng.integers(0, len(recorded)))]  # an intermediate asked for, too
    asked = [*leaves, middle]
    general = ab.grad(outputs, asked, ones, allow_unused=True, create_graph=True)
    fast = ab.grad(outputs, asked, ones, allow_unused=True)  # frees the graph: a node run twice would raise
    for tensor, g, h in zip(asked, fast, general, strict=True):
        vertex = tensor
        assert (vertex in want) == (g is not None) == (h is not None)
        if g is not None and h is not None:
            expected = want[vertex]
            expected = np.zeros(2) if expected is None else expected
            np.testing.assert_allclose(g.data, expected, rtol=1e-12)
            np.testing.assert_allclose(h.data, expected, rtol=1e-12)
    # Hooks run on nodes that received a gradient (not only zeros); a*b in tanh(a*b) has none.
    assert set(seen) == {v for v in recorded if want.get(v) is not None}
    for node, gradients in seen.items():
        assert len(gradients) == 2, node  # once per walk
        for g in gradients:
            np.testing.assert_allclose(g, want[node], rtol=1e-12)


def test_an_input_set_by_hand_to_a_later_node_is_refused_not_walked() -> None:
    # The walk's order holds for every graph ops build; a node's inputs set by hand can break it,
    # and walking on would drop the later node's contribution without an error.
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    product = x * 2.0 * 3.0
    y = product.sum()  # its node reads `product`
    later = x * 5.0  # recorded after y's nodes
    product._inputs = (later, 3.0)
    with pytest.raises(RuntimeError, match="recorded after it"):
        y.backward()
    assert x.grad is None  # nothing written


def test_a_node_passing_zeros_on_checks_the_order_too() -> None:
    from tests.test_contributions import _halve_first

    x = ab.tensor([1.0, 2.0], requires_grad=True)
    e = x.exp()  # its only consumer passes it None: it passes zeros on, queueing its input
    out = _halve_first(x, e).sum()
    later = x * 5.0
    e._inputs = (later,)
    with pytest.raises(RuntimeError, match="recorded after it"):
        ab.grad(out, [x])


def test_rules_with_and_without_keywords_agree_with_the_general_path() -> None:
    x = ab.tensor(np.arange(6.0).reshape(2, 3) / 7, requires_grad=True)
    y = ab.tensor(np.linspace(-1, 1, 3), requires_grad=True)
    for loss in (
        lambda: (ab.sum(x * y, axis=0) ** 2).sum(),  # keywords on a one-input node
        lambda: ab.mean(x, axis=1, keepdims=True).sum() * ab.exp(y).sum(),
        lambda: (x - y).sum(),  # no keywords, two inputs
    ):
        fast = ab.grad(loss(), [x, y])
        general = ab.grad(loss(), [x, y], create_graph=True)
        for g, h in zip(fast, general, strict=True):
            np.testing.assert_allclose(g.data, h.data, rtol=1e-12)  # type: ignore[union-attr]


def test_a_gradient_is_cast_to_its_inputs_dtype_when_a_rule_promotes() -> None:
    x = ab.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    big_endian = ab.tensor(np.array([1.0, 2.0], ">f8"), requires_grad=True)  # equal to float64, not identical
    constant = np.array([0.5, 3.0])  # float64: the rule's product is float64
    (gx, gb) = ab.grad((x * constant).sum() + (big_endian * constant).sum(), [x, big_endian])
    assert gx.dtype == np.float32 and gb.dtype == big_endian.dtype  # type: ignore[union-attr]
    np.testing.assert_array_equal(gx.data, constant.astype(np.float32))  # type: ignore[union-attr]


def test_modes_come_back_after_a_walk_fails_and_inside_no_grad() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)

    def failing(grad: Tensor) -> Tensor:
        raise ValueError("hook says no")

    x.register_hook(failing)
    with pytest.raises(ValueError, match="hook says no"):
        (x * 2.0).sum().backward()
    assert ab.is_grad_enabled() and graph._local.modes.arrays is False
    w = ab.tensor([1.0, 2.0], requires_grad=True)
    y = (w * 3.0).sum()  # recorded before no_grad
    with ab.no_grad():
        y.backward()
        assert not ab.is_grad_enabled() and graph._local.modes.arrays is False
    assert ab.is_grad_enabled()
    np.testing.assert_array_equal(w.grad.data, [3.0, 3.0])  # type: ignore[union-attr]


def test_a_recorded_scalar_op_holds_the_bytes_performance_md_gives() -> None:
    # docs/performance.md (issue #17): a node of W4's chain holds 256 B (the 0-d output array, the
    # Tensor that is its own node and its number _seq). It held 284 B while its keywords, saved
    # versions and gradient had slots of their own (a node in pymalloc's 160-byte class, not 128),
    # 276 B before the slot for forward mode's tangents (which before lived in a table of the
    # level's that kept every intermediate alive). It held 380 B while the Node was an object of
    # its own with an inputs tuple, 368 B before the Node lost its rare slots, and 344 B before it
    # was numbered (then the walk counted consumers in a table instead, 52 B more per node while
    # it ran). (Measured 256-260 B: pymalloc's pools and arenas round it.)
    x = ab.tensor(0.5, requires_grad=True)
    held, _ = _scalar_chain_bytes(x, 1.0000001)
    assert held / 2000 <= 264, f"{held / 2000:.0f} B per recorded scalar op"


def _scalar_chain_bytes(x: ab.Tensor, factor: Any) -> tuple[int, ab.Tensor]:
    """The bytes W4's chain of 2,000 ops (``* factor``, ``+ 1e-9``) holds, and its result."""
    gc.collect()
    tracemalloc.start()
    try:
        y = x
        for i in range(2000):
            y = y * factor if i % 2 == 0 else y + 1e-9
        return tracemalloc.get_traced_memory()[0], y
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("dtype", ["int64", "int8", "uint8", "bool"])
def test_an_integer_or_boolean_result_is_on_no_graph_and_sends_no_gradient_back(dtype: str) -> None:
    # The cast's derivative is 0: recorded, its rule sent the upstream gradient back through it,
    # truncated (astype int64 times 3.7 added 3 to each element of x's gradient).
    x = ab.tensor([1.5, 2.5, 3.5], requires_grad=True)
    cast = x.astype(dtype)
    assert not cast.requires_grad and cast.grad_fn is None and cast.dtype == np.dtype(dtype)
    ((cast * 3.7).sum() + (x * x).sum()).backward()
    assert x.grad is not None and x.grad.tolist() == [3.0, 5.0, 7.0]
    view = ab.reshape(x, (3, 1)).astype(dtype)  # (a copy, on no graph either)
    assert not view.requires_grad


def test_a_custom_op_with_an_integer_result_records_no_node(scratch_ops: list[str]) -> None:
    from autobp.ops.registry import op

    scratch_ops.append("test_round_to_int")

    @op("test_round_to_int", elementwise=True)
    def round_to_int(x: Any) -> Any:
        return np.rint(x).astype(np.int64)

    round_to_int.defvjp(lambda grad, out, x: grad)  # (what a careless rule would say)
    x = ab.tensor([0.4, 1.6], requires_grad=True)
    rounded = round_to_int(x)
    assert not rounded.requires_grad and rounded.tolist() == [0, 2]
    (g,) = ab.grad((x * 2.0).sum() + (rounded * 1.0).sum(), [x])
    assert g.tolist() == [2.0, 2.0]


def test_a_recorded_output_whose_data_was_replaced_is_refused_where_its_rules_read_it_as_a_tensor() -> None:
    # A recorded op's output is its own node. First order, the rules read the array the op saved
    # (``out``); a differentiated gradient hands them the tensor itself, whose ``.data`` a user
    # may have replaced since (``t.data = ...``, an escape the version counter does not see): the
    # rules would compute with the new values, and the second derivative with them. Refused.
    x = ab.tensor([0.5, 1.0], requires_grad=True)
    y = ab.tanh(x)  # tanh's rule reads its output
    loss = y.sum()
    y.data = np.array([5.0, 6.0])
    (g,) = ab.grad(loss, [x], retain_graph=True)
    np.testing.assert_allclose(g.data, 1.0 - np.tanh(x.data) ** 2, rtol=1e-12)  # the saved output
    with pytest.raises(RuntimeError, match=r"made by op 'tanh', had its .data replaced"):
        ab.grad(loss, [x], create_graph=True)


def test_a_node_reading_a_stepped_parameter_holds_only_its_versions_more() -> None:
    # After an optimizer's first step every node reading a parameter saves its inputs' versions (an
    # RNN's h @ W at each step): the plain tuple of them, 56 B, is all it holds more than any node.
    # (With its inputs and versions in an object of their own, as nodes with keywords keep them,
    # such a chain held 338 B a node and ran 18% slower than with the versions in a slot.)
    w = ab.tensor(1.0000001, requires_grad=True)
    with ab.no_grad():
        w.mul_(1.0)
    x = ab.tensor(0.5, requires_grad=True)
    held, y = _scalar_chain_bytes(x, w)  # (every other node saves (0, 1))
    assert y._inputs[0].versions == (0, 1) and type(y._inputs[0]._more) is tuple
    assert held / 2000 <= 264 + 56 / 2, f"{held / 2000:.0f} B per recorded scalar op"
    (dx, dw) = ab.grad(y, [x, w])
    assert dx.item() == pytest.approx(1.0000001**1000) and dw.item() == pytest.approx(
        1000 * 0.5 * 1.0000001**999, rel=1e-6
    )


def test_a_node_keeps_its_keywords_and_versions_in_a_kept_part_and_none_without() -> None:
    # A node of one or two inputs with no keywords keeps them in its slots and ONE or TWO (no
    # object, no slot for keywords or versions: W4's bytes), or the plain tuple of its inputs'
    # versions where it saved any; any other keeps a _Kept. Every way of setting the inputs
    # (constants wrapped for a picture, another library's arrays copied) keeps both.
    w = ab.tensor([1.0, 2.0], requires_grad=True)
    x = ab.tensor([3.0, 4.0])
    plain, summed = w * x, w.sum(axis=0)
    assert plain._more is TWO and plain.kwargs == {} and plain.versions is None
    assert type(summed._more) is _Kept and dict(summed.kwargs) == {"axis": 0} and summed.versions is None
    assert Tensor.__basicsize__ <= 112  # (with the collector's header: pymalloc's 128-byte class)
    x.add_(1.0)
    v = ab.tensor([0.5, 0.25], requires_grad=True)
    with ab.no_grad():
        v.mul_(2.0)
    # the road's inline recording, record's (the general function), one input and two
    made = ((w * x, (0, 1)), (ab.mul.general(w, x), (0, 1)), (ab.sin(v), (1,)), (ab.sin.general(v), (1,)))
    for node, versions in made:  # (a plain tuple: the collector stops tracking it, a _Kept it would not)
        assert type(node._more) is tuple and node.versions == versions and node.kwargs == {}
        assert node._inputs == ((w, x) if len(versions) == 2 else (v,))
    node = w * x
    node._inputs = (x, w)  # (set whole: the versions stay)
    assert type(node._more) is tuple and node.versions == (0, 1) and node._inputs == (x, w)
    node._inputs = graph._Recorded((w, x))  # as node_inputs sets them (constants wrapped)
    assert type(node._more) is _Kept and node.versions == (0, 1) and node._inputs == (w, x)
    node.kwargs = {"note": 1}
    assert node._inputs == (w, x) and node.versions == (0, 1) and dict(node.kwargs) == {"note": 1}
    summed.versions = (3,)
    assert summed.versions == (3,) and dict(summed.kwargs) == {"axis": 0} and summed._inputs == (w,)
    x.add_(1.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        (node * 1.0).sum().backward()
    graph.release(node)
    assert node._inputs is None and node.kwargs == {} and node.versions is None
