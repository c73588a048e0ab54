"""The reverse-mode engine: ``backward`` and ``grad``.

The walk is iterative (no recursion: million-node graphs work). A first pass counts, for every
vertex (a ``Node``, or a leaf Tensor), how many gradient contributions it will receive; a
vertex runs once all of them arrived. Gradients live in the engine's dict, keyed by vertex,
and are popped as the walk goes, so memory is released early; only leaves accumulate into
``.grad``, and only once the whole walk succeeded.

A node's rules run one of two ways, held to the same results by ``tests/test_engine_paths.py``:

- ``_on_tensors``, the general path: the rules get Tensors and record their ops only with
  ``create_graph=True`` (then the gradients are differentiable);
- ``_on_arrays``, the first-order fast path, for rules declared ``plain_arrays=True``: they get
  plain arrays, and the autobp ops they call return plain arrays (array mode, see ``_modes``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from autobp import backends, graph
from autobp.graph import Node
from autobp.ops.shape import sum_to as _sum_to
from autobp.tensor import Tensor

__all__ = ["backward", "grad"]

Vertex = Node | Tensor

# Whether first-order walks take the fast path (``_on_arrays``) for nodes whose rules allow it.
# Tests turn it off to hold the fast path to the general path's results on the same graphs.
_fast_path = True


def describe_tensor(tensor: Tensor) -> str:
    return f"tensor {backends.describe(tensor)}"


def _freed_error(node: Node) -> RuntimeError:
    return RuntimeError(
        f"backward through op '{node.op.name}' a second time: its saved values were freed after the "
        "first backward. Pass retain_graph=True to the first backward (or ab.grad) to keep them."
    )


def _count_consumers(roots: Sequence[Vertex]) -> dict[Vertex, int]:
    """How many gradient contributions each vertex will receive, by an iterative DFS."""
    # Vertices key the dicts by identity: Tensor hashes by id and live objects never share one.
    consumers: dict[Vertex, int] = {}
    stack = [v for v in roots if type(v) is Node]
    started = set(stack)  # the roots, walked from the start
    while stack:
        node = stack.pop()
        inputs = node._inputs
        if inputs is None:
            raise _freed_error(node)
        for value in inputs:
            if not isinstance(value, Tensor) or not value.requires_grad:
                continue
            parent = value.grad_fn
            vertex: Vertex = parent or value
            count = consumers.get(vertex, 0)
            consumers[vertex] = count + 1
            # A node is walked when its first consumer is found: the counts double as the set of
            # nodes seen, so a million-node graph needs no second table (W4's bytes per node).
            if not count and parent is not None and parent not in started:
                stack.append(parent)
    return consumers


def _modified(what: str, node: Node, tensor: Tensor, saved: int) -> RuntimeError:
    return RuntimeError(
        f"{node.op.name}: {what} ({describe_tensor(tensor)}) was modified in place after the op ran "
        f"(saved at version {saved}, now version {tensor._version}), through it or a view of its storage; "
        "gradients through it would be wrong. Use an out-of-place op, or .clone() first."
    )


def _check_versions(node: Node, inputs: tuple[Any, ...]) -> None:
    """Raise if a tensor the node saved (an input, or a Tensor in its keywords) changed since."""
    rare = node._rare
    if rare is not None and rare.kwarg_versions is not None:
        for tensor, saved in rare.kwarg_versions:
            if tensor._version != saved:
                raise _modified("a tensor it read from its keywords (an index, say)", node, tensor, saved)
    versions = node.versions
    if versions is None and not any([isinstance(v, Tensor) and v._version for v in inputs]):
        return  # nothing was modified before or after the op: the usual case, checked quickly
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, Tensor):
            continue
        saved = versions[i] if versions is not None else 0
        if tensor._version != saved:
            raise _modified("an input it saved for backward", node, tensor, saved)


def _needs(value: Any) -> bool:
    """Whether a recorded input wants a gradient (constants never do)."""
    return isinstance(value, Tensor) and value.requires_grad


def _run_rules(node: Node, g: Any, out: Any, values: Sequence[Any]) -> Sequence[Any]:
    """The gradient of each input, from ``node``'s vjp rules applied to ``values`` (the inputs as
    arrays or as Tensors); a rule runs only for an input that needs a gradient, else None.

    A variadic rule is told which inputs need one (``needs``): ``values`` may be plain arrays,
    which carry no ``requires_grad`` to read.
    """
    opdef, kwargs = node.op, node.kwargs
    inputs = node._inputs or ()
    if opdef.variadic_rule is not None:
        return opdef.variadic_rule(g, out, *values, needs=tuple([_needs(x) for x in inputs]), **kwargs)
    return [rule(g, out, *values, **kwargs) if _needs(x) else None for rule, x in zip(opdef.rules, inputs, strict=True)]


def _on_arrays(node: Node, inputs: tuple[Any, ...], rules: Sequence[Any], g: Any) -> Sequence[Any]:
    """The first-order fast path, for ops whose rules take plain arrays (``defvjp(plain_arrays=True)``).

    The rules get the gradient, the output and the inputs as arrays, and the walk's array mode
    makes the autobp ops they call return arrays: a rule costs what the same numpy code costs.
    Nodes of one or two inputs (nearly all) are unrolled: loops, and calls with ``*``, would
    cost W2 (``benchmarks/instructions.py``) about half its backward. Guarded as the general path
    is: the saved versions are compared with the counters inline, and ``_check_versions``, the
    general path's test, runs on any difference or when the node read keyword Tensors.
    """
    out, kwargs = node.out, node.kwargs
    versions, rare = node.versions, node._rare
    try:
        count = len(inputs) if rules else 0  # (no rules: a variadic one, run below)
        if count == 1:
            x = inputs[0]  # the only input of a recorded node requires grad
            counter = x._vc
            if rare is not None or (
                (counter[0] if counter is not None else 0) != (versions[0] if versions is not None else 0)
            ):
                _check_versions(node, inputs)
            # (a call with `**` misses the interpreter's inlined call of a Python function: only when needed)
            return (rules[0](g, out, x.data, **kwargs) if kwargs else rules[0](g, out, x.data),)
        if count == 2:
            x, y = inputs
            x_is, y_is = isinstance(x, Tensor), isinstance(y, Tensor)
            if rare is not None or (
                (versions is not None or (x_is and x._vc is not None) or (y_is and y._vc is not None))
                and _changed(versions, x if x_is else None, y if y_is else None)
            ):
                _check_versions(node, inputs)
            xa, ya = (x.data if x_is else x), (y.data if y_is else y)
            if not kwargs:
                return (
                    rules[0](g, out, xa, ya) if x_is and x.requires_grad else None,
                    rules[1](g, out, xa, ya) if y_is and y.requires_grad else None,
                )
            return (
                rules[0](g, out, xa, ya, **kwargs) if x_is and x.requires_grad else None,
                rules[1](g, out, xa, ya, **kwargs) if y_is and y.requires_grad else None,
            )
        # Three inputs or more, or a variadic rule: the same steps, in loops.
        _check_versions(node, inputs)
        return _run_rules(node, g, out, [x.data if isinstance(x, Tensor) else x for x in inputs])
    except Exception as error:
        _explain_in_anomaly_mode(node, error)
        raise


def _changed(versions: tuple[int, ...] | None, x: Tensor | None, y: Tensor | None) -> bool:
    """Whether input Tensor ``x`` or ``y`` (None: not a Tensor) is off its saved version (0 if none saved).

    ``_check_versions``'s test for two inputs, without its loops: it runs for every node that reads a
    parameter an optimizer or ``Network`` has stepped (W1 eager); ``_check_versions`` then raises.
    """
    saved_x, saved_y = versions if versions is not None else (0, 0)
    return (x is not None and (x._vc[0] if x._vc is not None else 0) != saved_x) or (
        y is not None and (y._vc[0] if y._vc is not None else 0) != saved_y
    )


def _on_tensors(node: Node, g: Any, create_graph: bool) -> Sequence[Any]:
    """The general path: the rules run on Tensors, where every Tensor method works, and record
    their ops (a differentiable gradient) only with ``create_graph``. First order, ``g`` and the
    results the walk keeps are arrays (the walk unwraps them)."""
    try:
        _check_versions(node, node._inputs or ())
        if create_graph:  # `out` is the node's output, on the graph: second order flows through it
            grad, out = g, Tensor._wrap(node.out, True, node)
        else:
            grad, out = Tensor._wrap(g), Tensor._wrap(node.out)
        with _modes(None, arrays=False):  # autobp ops act on Tensors as they do anywhere
            return _run_rules(node, grad, out, node.inputs or ())
    except Exception as error:
        _explain_in_anomaly_mode(node, error)
        raise


def _explain_in_anomaly_mode(node: Node, error: Exception) -> None:
    """In anomaly mode, replace a backward error by one naming the op and its forward's line."""
    if graph._anomaly_hook is not None:
        from autobp.anomaly import explain

        raise explain(node, error) from error


class _modes:
    """While active, grad mode is ``enabled`` (None: as it was) and array mode ``arrays``.

    Array mode on (the first-order walk): autobp ops given no Tensor return plain arrays and record
    nothing, so rules on the fast path compute on arrays; ops given a Tensor act as usual. Sets and
    restores the thread's modes itself: ``set_grad_enabled`` keeps per-thread stacks for managers
    that user code shares, and every backward would pay for two (W1's fixed cost per step).
    """

    def __init__(self, enabled: bool | None, arrays: bool) -> None:
        self.enabled, self.arrays = enabled, arrays

    def __enter__(self) -> None:
        mode = graph._mode
        self.previous = mode.enabled, mode.arrays
        if self.enabled is not None:
            mode.enabled = self.enabled
        mode.arrays = self.arrays

    def __exit__(self, *exc: object) -> None:
        graph._mode.enabled, graph._mode.arrays = self.previous


def _walk(
    outputs: Sequence[Tensor],
    seeds: Sequence[Tensor],
    retain_graph: bool,
    create_graph: bool,
    wanted: set[Vertex] | None,
) -> dict[Vertex, Tensor]:
    """The reverse walk. Accumulates into leaves' ``.grad``, unless ``wanted`` names the vertices
    whose total gradient is returned instead (``ab.grad``).

    The walk keeps Tensors with ``create_graph`` and plain arrays otherwise; the user sees Tensors
    either way. Everything that depends on ``create_graph`` is chosen here, before the loop.
    """
    if not create_graph:  # its rules would compute on plain arrays, out of a tape's sight
        graph.refuse_while_tracing("a first-order backward or grad")
    plain = not create_graph  # the walk keeps plain arrays (first order) or Tensors (create_graph)
    fast = plain and _fast_path  # the fast path is first order only: it records nothing
    as_tensor: Any = Tensor._wrap if plain else _same  # a kept gradient as the user sees it
    from_array: Any = _same if plain else Tensor._wrap  # a fresh array (zeros) as the walk keeps it
    # A rule's gradient of the other kind (a Tensor from a rule on arrays that built one, an array
    # from a user's rule on Tensors) is converted: the walk keeps one kind.
    other_kind: Any = _data if plain else _array
    # First order, the gradients are arrays: sum_to's array forward itself (numpy's own for numpy
    # arrays), without the public function's checks for Tensors and modes (two calls per W1 step).
    # (one graph, one library: the seeds' tells which forward)
    numpy_seeds = type(seeds[0].data) is np.ndarray if seeds else True
    sum_to = (_sum_to.op.numpy_forward if numpy_seeds else _sum_to.op.forward) if plain else _sum_to
    roots: list[Vertex] = [t.grad_fn or t for t in outputs]
    consumers = _count_consumers(roots)
    grads: dict[Vertex, Any] = {}
    for vertex, seed in zip(roots, seeds, strict=True):
        g = seed.data if plain else seed
        grads[vertex] = grads[vertex] + g if vertex in grads else g
    ready = [v for v in dict.fromkeys(roots) if v not in consumers]
    found: dict[Vertex, Any] = {}
    leaves: list[tuple[Tensor, Any]] = []
    anomaly = graph._anomaly_hook is not None
    # Rules on plain arrays use numpy's operators, not the ops' quiet forwards: silence numpy's
    # floating-point warnings for the walk, so domain edges give inf/nan quietly either way.
    with _modes(create_graph, arrays=fast), np.errstate(all="ignore"):
        while ready:
            vertex = ready.pop()
            g = grads.pop(vertex, None)
            if g is None:
                # Every contribution was None (a symbolic zero): the gradient is zero. A leaf or a
                # wanted vertex receives zeros; a node's rules need not run, but its inputs must still
                # be counted down, or every gradient upstream of it would be lost.
                if isinstance(vertex, Node):
                    if wanted is not None and vertex in wanted:
                        found[vertex] = from_array(_zeros(vertex.out))
                    _skip(vertex, consumers, ready, retain_graph)
                    continue
                g = from_array(_zeros(vertex.data))
            if not isinstance(vertex, Node):
                if vertex._hooks:
                    g = _run_hooks(vertex._hooks.values(), g, create_graph)
                if wanted is None:
                    leaves.append((vertex, g))
                elif vertex in wanted:
                    found[vertex] = g
                continue
            if vertex._rare is not None:  # hooks or retain_grad, perhaps
                g = _run_node_hooks(vertex, g, create_graph, retain=wanted is None)
            if wanted is not None and vertex in wanted:
                found[vertex] = g
            inputs: tuple[Any, ...] = vertex._inputs or ()  # never None here: _count_consumers checked
            opdef = vertex.op
            if fast and opdef.plain_arrays:
                input_grads = _on_arrays(vertex, inputs, opdef.rules, g)
            else:
                input_grads = _on_tensors(vertex, g, create_graph)
            if not retain_graph:
                vertex.release()
            for tensor, input_grad in zip(inputs, input_grads, strict=True):
                if not (isinstance(tensor, Tensor) and tensor.requires_grad):
                    continue
                target = tensor.grad_fn or tensor
                if input_grad is not None:  # None: a zero contribution, counted below all the same
                    if isinstance(input_grad, Tensor) is plain:
                        input_grad = other_kind(input_grad)
                    # The engine, not each rule, sums a broadcast gradient back to the input's shape.
                    if input_grad.shape != tensor.data.shape:
                        try:
                            input_grad = sum_to(input_grad, tensor.data.shape)
                        except ValueError as error:
                            raise _wrong_shape(input_grad, tensor, vertex, inputs) from error
                    # (`is` first: numpy's builtin dtypes are singletons, and `!=` on dtypes is slow)
                    if input_grad.dtype is not tensor.data.dtype and input_grad.dtype != tensor.data.dtype:
                        input_grad = _cast(input_grad, tensor.data)
                    if anomaly:
                        from autobp.anomaly import check_backward

                        check_backward(vertex, as_tensor(input_grad))
                    grads[target] = grads[target] + input_grad if target in grads else input_grad
                remaining = consumers[target] - 1
                consumers[target] = remaining
                if not remaining:
                    ready.append(target)
    if leaves:  # (none for ab.grad, which W1 eager calls: no mode switch to pay for)
        with _modes(create_graph, arrays=False):
            # Leaves are written only once the whole walk succeeded: an error leaves every .grad as it was.
            for leaf, g in leaves:
                _accumulate(leaf, as_tensor(g))
            if create_graph and any(g.requires_grad for _, g in leaves):
                _warn_grad_cycle()
    return {vertex: as_tensor(g) for vertex, g in found.items()}


def _same(value: Any) -> Any:
    return value


def _data(tensor: Tensor) -> Any:
    return tensor.data


def _array(value: Any) -> Tensor:
    """A plain array (a user's rule on Tensors may return one) as a constant Tensor."""
    return Tensor._wrap(backends.as_array(value))


def _wrong_shape(grad: Any, tensor: Tensor, node: Any, inputs: Sequence[Any]) -> ValueError:
    """The error for a vjp rule whose gradient cannot be summed back to its input's shape."""
    name = getattr(getattr(node, "op", None), "name", "backward")
    index = next(i for i, value in enumerate(inputs) if value is tensor)
    return ValueError(
        f"{name}: the vjp rule for input {index} returned a gradient of shape {tuple(grad.shape)}, "
        f"which is not that input's shape {tuple(tensor.shape)} nor broadcast from it"
    )


def _cast(grad: Any, like: Any) -> Any:
    """``grad`` converted to ``like``'s dtype (a float32 input gets a float32 gradient)."""
    if type(grad) is np.ndarray or isinstance(grad, Tensor):
        return grad.astype(like.dtype)
    return backends.namespace(grad).astype(grad, like.dtype)


def _zeros(like: Any) -> Any:
    """A zero gradient: an array of ``like``'s shape and dtype."""
    if type(like) is np.ndarray:
        return np.zeros(like.shape, dtype=like.dtype)
    return backends.namespace(like).zeros_like(like)


def _skip(node: Node, consumers: dict[Vertex, int], ready: list[Vertex], retain_graph: bool) -> None:
    """Pass a node that received no gradient: each of its inputs gets a zero (uncounted) contribution."""
    for value in node._inputs or ():
        if isinstance(value, Tensor) and value.requires_grad:
            target = value.grad_fn or value
            remaining = consumers[target] - 1
            consumers[target] = remaining
            if not remaining:
                ready.append(target)
    if not retain_graph:
        node.release()


def _warn_grad_cycle() -> None:
    warnings.warn(
        "backward(create_graph=True) stored gradients that carry their own graph in .grad; that graph "
        "refers back to the leaves, a reference cycle that keeps it alive until the garbage collector "
        "runs. Prefer ab.grad(..., create_graph=True), which never writes .grad, or set .grad = None "
        "when done with it.",
        UserWarning,
        stacklevel=5,
    )


def _run_hooks(hooks: Any, g: Any, create_graph: bool) -> Any:
    """Run user hooks on a gradient. Hooks always see Tensors, with ops behaving as usual."""
    tensor = g if create_graph else Tensor._wrap(g)
    with _modes(None, arrays=False):
        for hook in hooks:
            replaced = hook(tensor)
            if replaced is not None:
                tensor = replaced
    return tensor if create_graph else tensor.data


def _run_node_hooks(node: Node, g: Any, create_graph: bool, retain: bool) -> Any:
    """Run a node's hooks; with ``retain`` (backward, never ``ab.grad``) keep ``.grad`` if retained."""
    if node.hooks:
        g = _run_hooks(node.hooks, g, create_graph)
    if retain and node.retained is not None:
        tensor = node.retained()
        if tensor is not None:
            kept = g if create_graph else Tensor._wrap(graph.copy_array(g))
            with _modes(None, arrays=False):
                tensor.grad = kept if tensor.grad is None else tensor.grad + kept
    return g


def _accumulate(leaf: Tensor, g: Tensor) -> None:
    if leaf.grad is None:
        # A graph-free gradient may be shared with other leaves (identity vjps): give each its own.
        leaf.grad = g if g.requires_grad else g.copy()
    else:
        leaf.grad = leaf.grad + g


def _seed_grads(outputs: Sequence[Tensor], grad_outputs: Sequence[Any] | None, what: str) -> list[Tensor]:
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"{what}: got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    seeds = []
    for out, g in zip(outputs, grad_outputs, strict=True):
        if not isinstance(out, Tensor):
            raise TypeError(f"{what}: outputs must be Tensors, got {type(out).__name__}")
        if not out.requires_grad:
            raise RuntimeError(
                f"{what}: output {describe_tensor(out)} does not require grad; did you forget "
                "requires_grad=True on an input, or compute it under ab.no_grad()?"
            )
        if g is None:
            if math.prod(out.data.shape) != 1:  # (a torch tensor's size is a method)
                raise RuntimeError(
                    f"{what}: output {describe_tensor(out)} is not a scalar; pass a gradient of its shape "
                    "(grad_outputs / gradient=) or reduce it first, e.g. out.sum().backward()"
                )
            if type(out.data) is np.ndarray:
                ones = np.empty(out.data.shape, out.data.dtype)  # np.ones without its Python frame
                ones.fill(1)
            else:
                ones = backends.namespace(out.data).ones_like(out.data)
            g = Tensor._wrap(ones)
        elif not isinstance(g, Tensor) or type(g.data) is not type(out.data):
            g = graph.as_gradient(g, out, what)  # in the output's library (another library's: an error)
        if g.data.shape != out.data.shape:  # (the arrays' shapes: no property calls)
            raise ValueError(f"{what}: gradient shape {g.shape} does not match output shape {out.shape}")
        seeds.append(g)
    return seeds


def backward(
    tensor: Tensor,
    gradient: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
) -> None:
    """Accumulate d(tensor)/d(leaf) into every leaf's ``.grad`` (``Tensor.backward``)."""
    seeds = _seed_grads([tensor], None if gradient is None else [gradient], "backward")
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
    are themselves differentiable (Hessian-vector products, higher derivatives).

    >>> import autobp as ab
    >>> x = ab.tensor([1.0, 2.0], requires_grad=True)
    >>> (g,) = ab.grad((x ** 3).sum(), [x], create_graph=True)
    >>> g.numpy().tolist(), ab.grad(g.sum(), [x])[0].numpy().tolist()
    ([3.0, 12.0], [6.0, 12.0])
    """
    # Anything but a list or tuple is one output (or input): a non-Tensor then fails by name below.
    outs: list[Tensor] = list(outputs) if isinstance(outputs, list | tuple) else [outputs]  # type: ignore[list-item]
    ins: list[Tensor] = list(inputs) if isinstance(inputs, list | tuple) else [inputs]  # type: ignore[list-item]
    if isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    seeds = _seed_grads(outs, grad_outputs, "grad")
    for t in ins:
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise ValueError(f"grad: every input must be a Tensor that requires grad, got {t!r}")
    wanted: set[Vertex] = {t.grad_fn or t for t in ins}
    keep = create_graph if retain_graph is None else retain_graph
    found = _walk(outs, seeds, keep, create_graph, wanted)
    results: list[Tensor | None] = []
    for t in ins:
        g = found.get(t.grad_fn or t)
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad: input {describe_tensor(t)} was not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
        results.append(g)  # first order: a fresh Tensor of _walk's, on no graph
    return tuple(results)
