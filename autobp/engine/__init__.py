"""The reverse-mode engine: ``backward`` and ``grad``.

The walk is iterative (no recursion: million-node graphs work). It takes nodes in reverse
recording order from a heap (``engine.order``): a node runs once every contribution to it has
arrived, and leaves run last. Gradients live in the engine's dict, keyed by vertex (a Tensor: a
recorded op's output, which is its node, or a leaf), and are popped as the walk goes, so memory is
released early; only leaves accumulate into ``.grad``, and only once the whole walk succeeded.

A node's rules run one of two ways (``engine.rule_paths``), held to the same results by
``tests/test_engine_paths.py``:

- ``_on_tensors``, the general path: the rules get Tensors and record their ops only with
  ``create_graph=True`` (then the gradients are differentiable);
- ``_on_arrays``, the first-order fast path, for rules declared ``plain_arrays=True``: they get
  plain arrays, and the autobp ops they call return plain arrays (array mode, see ``engine.mode_switch.modes``).
  Its commonest nodes (one or two inputs, no keywords, no saved versions) run inline in the walk.
"""

from __future__ import annotations

from collections.abc import Sequence
from heapq import heappop, heappush
from typing import Any

import numpy as np

from autobp import graph
from autobp.engine.errors import (
    complex_gradient_error,
    describe_tensor,
    explain_rule_error,
    freed_error,
    raise_not_an_array,
    warn_grad_cycle,
    wrong_shape_error,
)
from autobp.engine.hook_calls import (
    accumulate,
    check_accumulable,
    keep_retained,
    leaf_hooks,
    run_hooks,
    run_node_hooks,
)
from autobp.engine.mode_switch import modes
from autobp.engine.order import Vertex, leads_to, out_of_order, queue_seeds
from autobp.engine.rule_paths import _on_arrays, _on_tensors
from autobp.engine.seeds import seed_grads
from autobp.engine.values import ComplexGradient, cast_like, unchanged, unwrap, wrap_array, zeros_like
from autobp.engine.versions import changed, check_versions
from autobp.ops.elementwise import copy as _tangent_carrying_copy
from autobp.ops.shape import sum_to as _sum_to
from autobp.storage import unaliased
from autobp.tensor import ONE, TWO, Tensor

__all__ = ["backward", "grad"]

# Whether first-order walks take the fast path (``_on_arrays``) for nodes whose rules allow it.
# Tests turn it off to hold the fast path to the general path's results on the same graphs.
_fast_path = True


def _walk(
    outputs: Sequence[Tensor],
    seeds: Sequence[Tensor],
    retain_graph: bool,
    create_graph: bool,
    wanted: set[Vertex] | None,
    tensors: bool = False,
) -> dict[Vertex, Tensor]:
    """The reverse walk. Accumulates into leaves' ``.grad``, unless ``wanted`` names the vertices
    whose total gradient is returned instead (``ab.grad``).

    The walk keeps Tensors with ``create_graph`` or ``tensors`` and plain arrays otherwise; the
    user sees Tensors either way. ``tensors`` without ``create_graph`` runs every rule on Tensors
    with recording off: the ops carry forward-mode tangents (``grad_carrying_tangents``) and build
    no graph. Everything that depends on these is chosen here, before the loop.
    """
    plain = not (create_graph or tensors)  # the walk keeps plain arrays (first order) or Tensors
    if plain:  # its rules would compute on plain arrays, out of a tape's sight
        graph.refuse_while_tracing("a first-order backward or grad")
    fast = plain and _fast_path  # the fast path is first order only: it records nothing
    as_tensor: Any = Tensor._wrap if plain else unchanged  # a kept gradient as the user sees it
    from_array: Any = unchanged if plain else Tensor._wrap  # a fresh array (zeros) as the walk keeps it
    # A rule's gradient of the other kind (a Tensor from a rule on arrays that built one, an array
    # from a user's rule on Tensors) is converted: the walk keeps one kind.
    other_kind: Any = unwrap if plain else wrap_array
    array_type = np.ndarray  # (a local: the per-input test below reads no global)
    # First order, the gradients are arrays: sum_to's array forward itself (numpy's own for numpy
    # arrays), without the public function's checks for Tensors and modes (two calls per W1 step).
    # (one graph, one library: the seeds' tells which forward)
    numpy_seeds = type(seeds[0].data) is np.ndarray if seeds else True
    sum_to = (_sum_to.op.numpy_forward if numpy_seeds else _sum_to.op.forward) if plain else _sum_to
    # Gradients received so far, by vertex (None: only zero contributions yet). A vertex enters when
    # its first contribution arrives: a node goes on the heap as (-_seq, node), a leaf in leaf_queue.
    grads: dict[Vertex, Any] = {}
    heap: list[tuple[int, Tensor]] = []
    leaf_queue: list[Tensor] = []
    queue_seeds(outputs, seeds, plain, grads, heap, leaf_queue)
    found: dict[Vertex, Any] = {}
    leaves: list[tuple[Tensor, Any]] = []
    # retain_grad's gradients (backward only), written with the leaves' once the walk succeeded
    retained: list[tuple[Tensor, Tensor]] | None = [] if wanted is None else None
    anomaly = graph._anomaly_hook is not None
    # Rules on plain arrays use numpy's operators, not the ops' quiet forwards: silence numpy's
    # floating-point warnings for the walk, so domain edges give inf/nan quietly either way.
    # (`quiet`: forward mode's rules, which only a walk on Tensors can reach, need no errstate of their own)
    with modes(create_graph, arrays=fast, quiet=None if plain else True, silenced=True):
        # The node queued last waits in `pending`, off the heap, and runs next unless the heap holds a
        # later one: in a chain (most of a graph) each node queues exactly one, which then never
        # touches the heap (a tuple and two heap calls fewer per node: W2 1-7% faster, W1 eager ~2%).
        # Its gradient waits beside it in `pending_grad`, out of `grads` (two dict operations fewer
        # per node: W2 ~2%), until it goes on the heap; a contribution to it meanwhile can only come
        # from the node that queued it (an input twice, `x * x`), which adds it there.
        vertex: Any = None
        pending_grad: Any = None
        input_grads: Sequence[Any] = ()
        try:
            pending: Tensor | None = None
            # Wanted vertices not reached yet (ab.grad): once none is left, as when every wanted tensor
            # is a non-leaf, the walk stops there, as PyTorch's does: what lies upstream is neither
            # needed nor run (its hooks too), and may have been freed by an earlier backward.
            unfound = len(wanted) if wanted is not None else -1
            # The wanted vertices a node can be (None: ab.grad of leaves alone, as W1's and W2's, looks
            # none up per node)
            wanted_nodes = wanted if wanted is not None and any(v.op is not None for v in wanted) else None
            leads: dict[Vertex, bool] = {}  # which hooked nodes lead to a wanted vertex (``leads_to``)
            while heap or pending is not None:  # the latest node first (autobp.engine.order): its gradient is complete
                if pending is not None and not (heap and heap[0][0] < -pending._seq):
                    vertex, pending, g = pending, None, pending_grad
                else:
                    if pending is not None:
                        grads[pending] = pending_grad
                        heappush(heap, (-pending._seq, pending))
                        pending = None
                    vertex = heappop(heap)[1]
                    g = grads.pop(vertex)
                # (the _inputs property's work, inline: a frame per node)
                more = vertex._more
                inputs: tuple[Any, ...] | None
                if more is TWO:
                    inputs = (vertex._in0, vertex._in1)
                elif more is ONE:
                    inputs = (vertex._in0,)
                elif type(more) is tuple:  # (the saved versions of the one or two inputs in the slots)
                    inputs = (vertex._in0, vertex._in1) if len(more) == 2 else (vertex._in0,)
                else:  # (a _Kept: keywords, another count of inputs; None once freed)
                    inputs = None if more is None else more.inputs
                if g is None:
                    if inputs is None:
                        raise freed_error(vertex)
                    # Every contribution was None (a symbolic zero): the gradient is zero. A wanted vertex
                    # receives zeros; the rules need not run, but each input still gets a zero (None) below,
                    # which queues it: else every gradient upstream of this node would be lost.
                    if wanted_nodes is not None and vertex in wanted_nodes:
                        found[vertex] = from_array(zeros_like(vertex.out))
                        unfound -= 1
                        if not unfound:
                            break
                    input_grads = (None,) * len(inputs)
                else:
                    if vertex._rare is not None:  # hooks or retain_grad, perhaps
                        if wanted is not None and not leads_to(vertex, wanted, leads):
                            # ab.grad: no wanted gradient passes here. As in PyTorch, the node does not
                            # run (nor its hooks), and it is not freed: a later grad through it works.
                            continue
                        g = run_node_hooks(vertex, g, not plain, retained)
                    if wanted_nodes is not None and vertex in wanted_nodes:
                        found[vertex] = g
                        unfound -= 1
                        if not unfound:  # every wanted gradient is complete: nothing upstream is needed
                            break
                    if inputs is None:
                        raise freed_error(vertex)
                    opdef = vertex.op
                    if fast and opdef.plain_arrays:
                        rules = opdef.rules
                        # _on_arrays' commonest nodes (one or two inputs, no keywords, no saved
                        # versions), inline: its frame was W2's ~5% (tests/test_engine_paths.py
                        # holds both to the general path). An input written since: check_versions raises.
                        if more is ONE and rules and vertex._rare is None:
                            try:
                                x = vertex._in0
                                counter = x._vc
                                if counter is not None and counter[0] != 0:
                                    check_versions(vertex, inputs)
                                input_grads = (rules[0](g, vertex.out, x.data),)
                            except Exception as error:
                                explain_rule_error(vertex, error)
                                raise
                        elif more is TWO and rules and vertex._rare is None:
                            try:
                                x, y = vertex._in0, vertex._in1
                                x_is, y_is = isinstance(x, Tensor), isinstance(y, Tensor)
                                if ((x_is and x._vc is not None) or (y_is and y._vc is not None)) and changed(
                                    None, x if x_is else None, y if y_is else None
                                ):
                                    check_versions(vertex, inputs)
                                out, xa, ya = vertex.out, (x.data if x_is else x), (y.data if y_is else y)
                                input_grads = (
                                    rules[0](g, out, xa, ya) if x_is and x._requires_grad else None,
                                    rules[1](g, out, xa, ya) if y_is and y._requires_grad else None,
                                )
                            except Exception as error:
                                explain_rule_error(vertex, error)
                                raise
                        else:
                            input_grads = _on_arrays(vertex, inputs, rules, g)
                    else:
                        input_grads = _on_tensors(vertex, inputs, g, not plain)
                if not retain_graph:  # graph.release's store, without its call (a frame per node: W1, W4)
                    vertex._in0 = vertex._in1 = vertex._more = None
                # One gradient per input, by construction (_run_rules checks a variadic rule's count), read
                # by index: zip made an iterator object per node (W2 ~3%; strict=True, a keyword call, 3% more)
                count, k = len(inputs), 0
                while k < count:
                    tensor, input_grad = inputs[k], input_grads[k]
                    k += 1
                    if not (isinstance(tensor, Tensor) and tensor._requires_grad):
                        continue
                    if input_grad is not None:  # None: a zero contribution, which queues the target all the same
                        # (`type() is` first: a first-order walk's gradients are arrays, isinstance walks their MRO)
                        if type(input_grad) is not array_type and isinstance(input_grad, Tensor) is plain:
                            input_grad = other_kind(input_grad)
                        # The engine, not each rule, sums a broadcast gradient back to the input's shape.
                        if input_grad.shape != tensor.data.shape:
                            try:
                                input_grad = sum_to(input_grad, tensor.data.shape)
                            except ValueError as error:
                                raise wrong_shape_error(input_grad, tensor, vertex, inputs) from error
                        # (`is` first: numpy's builtin dtypes are singletons, and `!=` on dtypes is slow)
                        if input_grad.dtype is not tensor.data.dtype and input_grad.dtype != tensor.data.dtype:
                            try:
                                input_grad = cast_like(input_grad, tensor.data)
                            except ComplexGradient:
                                raise complex_gradient_error(vertex, tensor) from None
                        if anomaly:
                            from autobp.anomaly import check_backward

                            check_backward(vertex, as_tensor(input_grad))
                    # (the tensor is its own vertex: a leaf, or the node of the op that made it)
                    if tensor is pending:
                        if input_grad is not None:
                            pending_grad = input_grad if pending_grad is None else pending_grad + input_grad
                    elif tensor in grads:
                        if input_grad is not None:
                            so_far = grads[tensor]
                            grads[tensor] = input_grad if so_far is None else so_far + input_grad
                    elif tensor.op is None:
                        grads[tensor] = input_grad
                        leaf_queue.append(tensor)
                    else:
                        if tensor._seq >= vertex._seq:  # the order's guard: never walk past a contribution
                            raise out_of_order(tensor, vertex)
                        if pending is None:
                            pending, pending_grad = tensor, input_grad
                        else:
                            grads[tensor] = input_grad
                            heappush(heap, (-tensor._seq, tensor))
        except AttributeError as error:  # (a try around the loop: nothing per node)
            raise_not_an_array(vertex, input_grads, error)
            raise
        # Leaves last: every node has run, so their gradients are complete. (A walk that stopped at
        # its last wanted vertex has no leaf to give: their gradients are partial, and unwanted.)
        for leaf in leaf_queue if unfound else ():
            g = grads.pop(leaf)
            if wanted is not None and leaf not in wanted:
                continue  # (ab.grad returns no gradient of it: its hooks are not run, as in PyTorch)
            if g is None:
                g = from_array(zeros_like(leaf.data))
            rare = leaf._rare  # (Tensor._hooks's read, inline)
            if rare is not None and rare.leaf_hooks:
                g = run_hooks(leaf_hooks(leaf), g, not plain)
            if wanted is None:
                leaves.append((leaf, g))
            else:
                found[leaf] = g
    if leaves or retained:  # (none for ab.grad, which W1 eager calls: no mode switch to pay for)
        with modes(create_graph, arrays=False):
            # Leaves (and retained tensors) are written only once the whole walk succeeded: an error
            # leaves every .grad as it was.
            for leaf, g in leaves:
                check_accumulable(leaf, g)
            if retained:
                keep_retained(retained)
            for leaf, g in leaves:  # (backward, whose walk never has `tensors` alone)
                accumulate(leaf, as_tensor(g))
            if create_graph and any(g.requires_grad for _, g in leaves):
                warn_grad_cycle()
    return {vertex: as_tensor(g) for vertex, g in found.items()}


def backward(
    tensor: Tensor,
    gradient: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
) -> None:
    """Accumulate d(tensor)/d(leaf) into every leaf's ``.grad`` (``Tensor.backward``)."""
    seeds = seed_grads([tensor], None if gradient is None else [gradient], "backward")
    keep = create_graph if retain_graph is None else retain_graph
    _walk([tensor], seeds, keep, create_graph, wanted=None)


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple[Tensor | None, ...]:
    """Gradients of ``outputs`` with respect to ``inputs``, returned and never written to ``.grad``.

    Shapes: each returned gradient has its input's shape. With ``create_graph=True`` the gradients
    are themselves differentiable (Hessian-vector products, higher derivatives). ``allow_unused``
    gives None for an input the outputs do not depend on, and lets an output be on no graph (a
    first-order gradient that does not vary with the input, as relu's, whose derivative is zero).

    >>> import autobp as ab
    >>> x = ab.tensor([1.0, 2.0], requires_grad=True)
    >>> (g,) = ab.grad((x ** 3).sum(), [x], create_graph=True)
    >>> g.numpy().tolist(), ab.grad(g.sum(), [x])[0].numpy().tolist()
    ([3.0, 12.0], [6.0, 12.0])
    """
    # Inside a forward-mode level (jvp, make_dual) a gradient carries the tangent of what it was
    # computed from: the rules then run on Tensors, as hvp's do. On arrays (the fast path) it
    # would carry none, and jvp would read that as a zero.
    modes = graph._local.modes
    carry_tangents = not create_graph and modes.forward is not None
    # Inside a function a transform differentiates (jacobian(lambda z: ab.grad(f(z), [z])[0], x)),
    # a first-order gradient would be on no graph, which the transform reads as a zero derivative.
    if modes.transforms and modes.tape is None:  # (a tape being traced refuses first-order grads itself)
        create_graph, carry_tangents = True, False
    return _grad(outputs, inputs, grad_outputs, retain_graph, create_graph, allow_unused, tensors=carry_tangents)


def grad_carrying_tangents(
    outputs: Sequence[Tensor], inputs: Sequence[Tensor], grad_outputs: Any
) -> tuple[Tensor | None, ...]:
    """``grad`` (first order, unused inputs give None) with every vjp rule run on Tensors and
    recording off: inside a forward-mode level the rules' ops carry tangents, so each gradient's
    tangent is a Hessian-vector product (``functional.hvp`` without ``create_graph``), and no
    backward graph is built. The graph is freed as it is walked, as a first-order ``grad`` frees it."""
    return _grad(outputs, inputs, grad_outputs, None, False, True, tensors=True)


def _check_inputs(ins: list[Tensor]) -> set[Vertex]:
    """The inputs' vertices (a leaf is its own), once each is checked to be a Tensor that requires grad."""
    wanted = set()
    for t in ins:
        if not isinstance(t, Tensor) or not t._requires_grad:
            raise ValueError(f"grad: every input must be a Tensor that requires grad, got {t!r}")
        wanted.add(t)
    return wanted


def _grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Any,
    retain_graph: bool | None,
    create_graph: bool,
    allow_unused: bool,
    tensors: bool,
) -> tuple[Tensor | None, ...]:
    # Anything but a list or tuple is one output (or input): a non-Tensor then fails by name below.
    # (a tuple of types, not `list | tuple`: the union is a new object on every call)
    outs: list[Tensor] = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]  # type: ignore[list-item]
    ins: list[Tensor] = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]  # type: ignore[list-item]
    if isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    if allow_unused and not all([isinstance(o, Tensor) and o._requires_grad for o in outs]):
        # An output on no graph is a constant (a first-order gradient that does not vary with x,
        # as relu's): its derivative is zero, which allow_unused spells None. (grad_outputs are
        # still checked against their outputs.)
        if grad_outputs is not None:
            seed_grads(outs, grad_outputs, "grad", constants=True)
        on_graph = [i for i, o in enumerate(outs) if isinstance(o, Tensor) and o._requires_grad]
        outs = [outs[i] for i in on_graph]
        if grad_outputs is not None:
            grad_outputs = [grad_outputs[i] for i in on_graph]
        if not outs:
            _check_inputs(ins)
            return (None,) * len(ins)
    seeds = seed_grads(outs, grad_outputs, "grad")
    wanted = _check_inputs(ins)
    keep = create_graph if retain_graph is None else retain_graph
    found = _walk(outs, seeds, keep, create_graph, wanted, tensors)
    results: list[Tensor | None] = []
    for t in ins:
        g = found.get(t)
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad: input {describe_tensor(t)} was not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
        results.append(g)  # first order: a fresh Tensor of _walk's, on no graph
    if not create_graph:  # arrays of their own: not a seed the caller gave, nor each other's
        # (a gradient carrying tangents is copied by an op, which carries them along)
        copy = _tangent_carrying_copy if tensors else None
        unaliased(results, [] if grad_outputs is None else [s.data for s in seeds], copy)
    return tuple(results)
