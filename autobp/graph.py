"""The dynamic graph and the reverse-mode engine.

Every op applied to a Tensor that requires grad records a ``Node``: the op, its input Tensors,
its keyword arguments and its output array. ``backward`` walks the nodes in reverse
topological order without recursion: a node runs once all of its consumers have sent it their
gradient. Gradients live in the engine's dict, keyed by graph vertex (a node, or a leaf
Tensor), and are popped as the walk goes, so memory is released early; only leaves accumulate
into ``.grad``.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autobp.ops.registry import OpDef
    from autobp.tensor import Tensor

__all__ = [
    "Node",
    "backward",
    "grad",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
]


class _GradMode(threading.local):
    enabled = True


_mode = _GradMode()


def is_grad_enabled() -> bool:
    """Whether ops record the graph now."""
    return _mode.enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Turn graph recording on or off inside a ``with`` block or a decorated function."""

    def __init__(self, mode: bool) -> None:
        self.mode = mode
        self.previous: list[bool] = []

    def __enter__(self) -> None:
        self.previous.append(_mode.enabled)
        _mode.enabled = self.mode

    def __exit__(self, *exc: object) -> None:
        _mode.enabled = self.previous.pop()


class no_grad(set_grad_enabled):
    """Context manager and decorator: ops inside record no graph (inference, optimizer steps).

    >>> import autobp as ab
    >>> x = ab.tensor([1.0, 2.0], requires_grad=True)
    >>> with ab.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    def __init__(self) -> None:
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Context manager and decorator: record the graph again inside a ``no_grad`` region."""

    def __init__(self) -> None:
        super().__init__(True)


class Node:
    """One recorded op application: the ``grad_fn`` of the Tensor it produced.

    ``inputs`` holds the input Tensors (constants included, as the vjp rules need them);
    ``out`` the output array. ``release`` drops both once backward has used them.
    """

    __slots__ = ("op", "inputs", "kwargs", "out", "versions", "hooks", "retained", "trace", "__weakref__")

    def __init__(self, opdef: OpDef, inputs: tuple[Tensor, ...], kwargs: dict[str, Any], out: Any) -> None:
        self.op = opdef
        self.inputs: tuple[Tensor, ...] | None = inputs
        self.kwargs = kwargs
        self.out = out
        self.versions = tuple(t._version for t in inputs)
        self.hooks: list[Callable[[Tensor], Tensor | None]] | None = None
        self.retained: Any = None  # weakref to a non-leaf Tensor whose .grad is kept (retain_grad)
        self.trace: Any = None  # the forward's user stack, recorded in anomaly mode

    @property
    def name(self) -> str:
        """The registry name of the op, e.g. ``"mul"``."""
        return self.op.name

    def __repr__(self) -> str:
        return f"<{self.op.name} backward>"

    @property
    def next_functions(self) -> tuple[Node | Tensor, ...]:
        """The graph vertices feeding this node: the inputs' nodes, or the leaf Tensors."""
        return tuple(t.grad_fn or t for t in self.inputs or () if t.requires_grad)

    def release(self) -> None:
        self.inputs = None
        self.out = None
        self.kwargs = {}


def record(opdef: OpDef, result: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Tensor:
    """Wrap an op's result in a Tensor whose ``grad_fn`` remembers how it was made."""
    from autobp.tensor import Tensor

    inputs = tuple(a if isinstance(a, Tensor) else Tensor._wrap(a) for a in args)
    for value in inputs:
        if value.data is result:  # an op returned its input: freeze a view, never the input itself
            result = result.view()
    node = Node(opdef, inputs, kwargs, result)
    if _anomaly_hook is not None:
        _anomaly_hook(node)
    out = Tensor._wrap(result, requires_grad=True, grad_fn=node)
    # The output may be saved for backward: writes through `.data` must raise (docs/trust.md).
    out.data.setflags(write=False)  # (setflags: half the cost of `flags.writeable = False`)
    return out


# Set by autobp.anomaly while detect_anomaly() is active; None keeps recording free of its cost.
_anomaly_hook: Callable[[Node], None] | None = None


def _vertex(tensor: Tensor) -> Node | Tensor:
    return tensor.grad_fn if tensor.grad_fn is not None else tensor


def _freed_error(node: Node) -> RuntimeError:
    return RuntimeError(
        f"backward through op '{node.op.name}' a second time: its saved values were freed after the "
        "first backward. Pass retain_graph=True to the first backward (or ab.grad) to keep them."
    )


def _count_consumers(roots: Iterable[Node | Tensor]) -> dict[int, int]:
    """Number of gradient contributions each vertex will receive, by an iterative DFS."""
    consumers: dict[int, int] = {}
    stack = [v for v in roots if not _is_leaf(v)]
    seen = {id(v) for v in stack}
    while stack:
        node: Any = stack.pop()
        if node.inputs is None:
            raise _freed_error(node)
        for tensor in node.inputs:
            if not tensor.requires_grad:
                continue
            vertex = _vertex(tensor)
            key = id(vertex)
            consumers[key] = consumers.get(key, 0) + 1
            if key not in seen:
                seen.add(key)
                if vertex is not tensor:
                    stack.append(vertex)
    return consumers


def _is_leaf(vertex: Node | Tensor) -> bool:
    return not isinstance(vertex, Node)


def _check_grad(opdef_name: str, tensor: Tensor, g: Tensor) -> Tensor:
    from autobp.ops.shape import sum_to

    if g.shape != tensor.shape:
        g = sum_to(g, tensor.shape)
        if g.shape != tensor.shape:  # pragma: no cover - sum_to guarantees the shape
            raise RuntimeError(f"{opdef_name}: vjp gave shape {g.shape} for an input of shape {tensor.shape}")
    if g.dtype != tensor.dtype:
        g = g.astype(tensor.dtype)
    return g


def _run(
    outputs: Sequence[Tensor],
    grad_outputs: Sequence[Tensor],
    retain_graph: bool,
    create_graph: bool,
    wanted: dict[int, int] | None,
) -> dict[int, Tensor]:
    """The reverse walk. Accumulates into leaves' ``.grad`` unless ``wanted`` (vertex id -> slot)
    names the vertices whose total gradient is returned instead (``ab.grad``)."""
    roots = [_vertex(t) for t in outputs]
    consumers = _count_consumers(roots)
    grads: dict[int, Tensor] = {}
    vertices: dict[int, Node | Tensor] = {}
    for vertex, g in zip(roots, grad_outputs, strict=True):
        key = id(vertex)
        grads[key] = grads[key] + g if key in grads else g
        vertices[key] = vertex
    ready = [vertices[k] for k in dict.fromkeys(id(v) for v in roots) if consumers.get(k, 0) == 0]
    found: dict[int, Tensor] = {}
    leaves: list[tuple[Any, Tensor]] = []
    with set_grad_enabled(create_graph):
        while ready:
            vertex = ready.pop()
            key = id(vertex)
            g = grads.pop(key)
            del vertices[key]
            if isinstance(vertex, Node):
                g = _run_node_hooks(vertex, g)
                if wanted is not None and key in wanted:
                    found[key] = g
                _backward_node(vertex, g, grads, vertices, consumers, ready, create_graph, retain_graph)
            else:
                g = _run_leaf_hooks(vertex, g)
                if wanted is None:
                    leaves.append((vertex, g))
                elif key in wanted:
                    found[key] = g
        # Leaves are written only once the whole walk succeeded: an error leaves every .grad as it was.
        for leaf, g in leaves:
            _accumulate(leaf, g)
        if create_graph and any(g.requires_grad for _, g in leaves):
            _warn_grad_cycle()
    return found


def _warn_grad_cycle() -> None:
    warnings.warn(
        "backward(create_graph=True) stored gradients that carry their own graph in .grad; that graph "
        "refers back to the leaves, a reference cycle that keeps it alive until the garbage collector "
        "runs. Prefer ab.grad(..., create_graph=True), which never writes .grad, or set .grad = None "
        "when done with it.",
        UserWarning,
        stacklevel=5,
    )


def _backward_node(
    node: Node,
    g: Tensor,
    grads: dict[int, Tensor],
    vertices: dict[int, Node | Tensor],
    consumers: dict[int, int],
    ready: list[Node | Tensor],
    create_graph: bool,
    retain_graph: bool,
) -> None:
    from autobp.tensor import Tensor

    inputs = node.inputs
    assert inputs is not None  # checked by _count_consumers
    out = Tensor._wrap(node.out, requires_grad=create_graph, grad_fn=node if create_graph else None)
    opdef = node.op
    try:
        _check_versions(node, inputs)
        if opdef.variadic_rule is not None:
            input_grads: Sequence[Tensor | None] = opdef.variadic_rule(g, out, *inputs, **node.kwargs)
        else:
            input_grads = [
                rule(g, out, *inputs, **node.kwargs) if tensor.requires_grad else None
                for rule, tensor in zip(opdef.rules, inputs, strict=True)
            ]
    except Exception as error:
        if _anomaly_hook is not None:
            from autobp.anomaly import explain

            raise explain(node, error) from error
        raise
    if not retain_graph:
        node.release()
    for tensor, input_grad in zip(inputs, input_grads, strict=True):
        if input_grad is None or not tensor.requires_grad:
            continue
        input_grad = _check_grad(opdef.name, tensor, input_grad)
        if _anomaly_hook is not None:
            from autobp.anomaly import check_backward

            check_backward(node, input_grad)
        vertex = _vertex(tensor)
        key = id(vertex)
        grads[key] = grads[key] + input_grad if key in grads else input_grad
        vertices[key] = vertex
        consumers[key] -= 1
        if consumers[key] == 0:
            ready.append(vertex)


def _check_versions(node: Node, inputs: tuple[Tensor, ...]) -> None:
    for tensor, version in zip(inputs, node.versions, strict=True):
        if tensor._version != version:
            raise RuntimeError(
                f"{node.op.name}: an input it saved for backward ({describe_tensor(tensor)}) was modified "
                f"in place after the op ran (saved at version {version}, now version {tensor._version}); "
                "gradients through it would be wrong. Use an out-of-place op, or .clone() first."
            )


def describe_tensor(tensor: Tensor) -> str:
    return f"tensor {tensor.dtype}{list(tensor.shape)}"


def _run_node_hooks(node: Node, g: Tensor) -> Tensor:
    if node.hooks:
        for hook in node.hooks:
            replaced = hook(g)
            if replaced is not None:
                g = replaced
    if node.retained is not None:
        tensor = node.retained()
        if tensor is not None:
            tensor.grad = g if tensor.grad is None else tensor.grad + g
    return g


def _run_leaf_hooks(leaf: Tensor, g: Tensor) -> Tensor:
    if leaf._hooks:
        for hook in leaf._hooks.values():
            replaced = hook(g)
            if replaced is not None:
                g = replaced
    return g


def _accumulate(leaf: Tensor, g: Tensor) -> None:
    if leaf.grad is None:
        # A graph-free gradient may be shared with other leaves (identity vjps): give each its own.
        leaf.grad = g if g.requires_grad else g.copy()
    else:
        leaf.grad = leaf.grad + g


def _seed_grads(outputs: Sequence[Tensor], grad_outputs: Sequence[Any] | None, what: str) -> list[Tensor]:
    from autobp.creation import ones_like
    from autobp.tensor import Tensor

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
            if out.size != 1:
                raise RuntimeError(
                    f"{what}: output {describe_tensor(out)} is not a scalar; pass a gradient of its shape "
                    "(grad_outputs / gradient=) or reduce it first, e.g. out.sum().backward()"
                )
            g = ones_like(out)
        elif not isinstance(g, Tensor):
            g = Tensor(g, dtype=out.dtype)
        if g.shape != out.shape:
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
    _run([tensor], seeds, keep, create_graph, wanted=None)


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
    from autobp.tensor import Tensor

    # Anything but a list or tuple is one output (or input): a non-Tensor then fails by name below.
    outs: list[Tensor] = list(outputs) if isinstance(outputs, list | tuple) else [outputs]  # type: ignore[list-item]
    ins: list[Tensor] = list(inputs) if isinstance(inputs, list | tuple) else [inputs]  # type: ignore[list-item]
    if isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    seeds = _seed_grads(outs, grad_outputs, "grad")
    for t in ins:
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise ValueError(f"grad: every input must be a Tensor that requires grad, got {t!r}")
    wanted = {id(_vertex(t)): i for i, t in enumerate(ins)}
    keep = create_graph if retain_graph is None else retain_graph
    found = _run(outs, seeds, keep, create_graph, wanted)
    results: list[Tensor | None] = []
    for t in ins:
        g = found.get(id(_vertex(t)))
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad: input {describe_tensor(t)} was not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
        results.append(g if g is None or create_graph else g.detach())
    return tuple(results)
