"""The two ways a node's vjp rules run, held to the same results by ``tests/test_engine_paths.py``.

``_on_tensors``, the general path, hands the rules Tensors; ``_on_arrays``, the first-order fast
path, hands them plain arrays. The walk (``autobp.engine``) picks one per node.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autobp import graph
from autobp.engine.errors import explain_rule_error, rebound_output_error, variadic_count_error
from autobp.engine.mode_switch import modes
from autobp.engine.versions import changed, check_versions
from autobp.graph import node_inputs
from autobp.tensor import NO_KWARGS, ONE, TWO, Tensor, _Kept

__all__ = ["_on_arrays", "_on_tensors", "_run_rules"]

_local = graph._local  # the per-thread modes (read per node: a global of this module, not graph's)


def _needs(value: Any) -> bool:
    """Whether a recorded input wants a gradient (constants never do)."""
    return isinstance(value, Tensor) and value._requires_grad


def _run_rules(
    node: Tensor, g: Any, out: Any, values: Sequence[Any], inputs: tuple[Any, ...] | None = None
) -> Sequence[Any]:
    """The gradient of each input, from ``node``'s vjp rules applied to ``values`` (the inputs as
    arrays or as Tensors); a rule runs only for an input that needs a gradient, else None.

    A variadic rule is told which inputs need one (``needs``): ``values`` may be plain arrays,
    which carry no ``requires_grad`` to read.
    """
    opdef, more = node.op, node._more
    kwargs = more.kwargs if type(more) is _Kept else NO_KWARGS  # (Tensor.kwargs, inline)
    if inputs is None:  # (the walk passes them: the _inputs property's frame per node, saved)
        inputs = node._inputs or ()
    if opdef.variadic_rule is not None:
        grads = opdef.variadic_rule(g, out, *values, needs=tuple([_needs(x) for x in inputs]), **kwargs)
        # (checked here, where a user's rule gives the count: the walk pairs gradients with inputs unchecked)
        if not isinstance(grads, (list, tuple)) or len(grads) != len(inputs):
            raise variadic_count_error(opdef, grads, len(inputs))
        return grads
    rules = opdef.rules
    # One and two inputs (nearly every node) unrolled: a list comprehension with a call per input
    # cost the general path (create_graph, forward-over-reverse: W5) a tenth of its rule dispatch.
    if len(rules) == 1:
        x = inputs[0]
        return (rules[0](g, out, *values, **kwargs) if isinstance(x, Tensor) and x._requires_grad else None,)
    if len(rules) == 2:
        x, y = inputs
        return (
            rules[0](g, out, *values, **kwargs) if isinstance(x, Tensor) and x._requires_grad else None,
            rules[1](g, out, *values, **kwargs) if isinstance(y, Tensor) and y._requires_grad else None,
        )
    if not rules:  # (defvjp checks the count, so only an op given no vjp rule at all gets here)
        raise NotImplementedError(
            f"{opdef.name}: reverse mode (backward, grad, vjp) reached this op, but it has no vjp rule; "
            f"give it one with {opdef.name}.defvjp(...) or defvjp_variadic(...) (see docs/custom-ops.md)"
        )
    return [rule(g, out, *values, **kwargs) if _needs(x) else None for rule, x in zip(opdef.rules, inputs, strict=True)]


def _on_arrays(node: Tensor, inputs: tuple[Any, ...], rules: Sequence[Any], g: Any) -> Sequence[Any]:
    """The first-order fast path, for ops whose rules take plain arrays (``defvjp(plain_arrays=True)``).

    The rules get the gradient, the output and the inputs as arrays, and the walk's array mode
    makes the autobp ops they call return arrays: a rule costs what the same numpy code costs.
    Nodes of one or two inputs (nearly all) are unrolled: loops, and calls with ``*``, would
    cost W2 (``benchmarks/instructions.py``) about half its backward. Guarded as the general path
    is: the saved versions are compared with the counters inline, and ``check_versions``, the
    general path's test, runs on any difference or when the node read keyword Tensors. The walk
    runs this function's commonest nodes (one or two inputs, no keywords, no saved versions, no
    rare part) inline, as written here for them: a frame per node was W2's ~5%.
    """
    out, more, rare = node.out, node._more, node._rare
    # (Tensor.kwargs and .versions, inline: the usual node keeps neither, a versioned one the tuple)
    if more is TWO or more is ONE:
        kwargs, versions = NO_KWARGS, None
    elif type(more) is tuple:
        kwargs, versions = NO_KWARGS, more
    else:
        kwargs, versions = more.kwargs, more.versions
    try:
        count = len(inputs) if rules else 0  # (no rules: a variadic one, run below)
        if count == 1:
            x = inputs[0]  # the only input of a recorded node requires grad
            counter = x._vc
            if rare is not None or (
                (counter[0] if counter is not None else 0) != (versions[0] if versions is not None else 0)
            ):
                check_versions(node, inputs)
            # (a call with `**` misses the interpreter's inlined call of a Python function: only when needed)
            return (rules[0](g, out, x.data, **kwargs) if kwargs else rules[0](g, out, x.data),)
        if count == 2:
            x, y = inputs
            x_is, y_is = isinstance(x, Tensor), isinstance(y, Tensor)
            if rare is not None or (
                (versions is not None or (x_is and x._vc is not None) or (y_is and y._vc is not None))
                and changed(versions, x if x_is else None, y if y_is else None)
            ):
                check_versions(node, inputs)
            xa, ya = (x.data if x_is else x), (y.data if y_is else y)
            if not kwargs:
                return (
                    rules[0](g, out, xa, ya) if x_is and x._requires_grad else None,
                    rules[1](g, out, xa, ya) if y_is and y._requires_grad else None,
                )
            return (
                rules[0](g, out, xa, ya, **kwargs) if x_is and x._requires_grad else None,
                rules[1](g, out, xa, ya, **kwargs) if y_is and y._requires_grad else None,
            )
        # Three inputs or more, or a variadic rule: the same steps, in loops.
        check_versions(node, inputs)
        return _run_rules(node, g, out, [x.data if isinstance(x, Tensor) else x for x in inputs], inputs)
    except Exception as error:
        explain_rule_error(node, error)
        raise


def _on_tensors(node: Tensor, inputs: tuple[Any, ...], g: Any, kept_tensors: bool) -> Sequence[Any]:
    """The general path: the rules run on Tensors, where every Tensor method works, and record
    their ops (a differentiable gradient) only with ``create_graph``. First order, ``g`` and the
    results the walk keeps are arrays (the walk unwraps them); with ``kept_tensors`` (``create_graph``,
    or a walk for forward-over-reverse) they are Tensors."""
    try:
        # The versions guard, tested as ``_on_arrays`` tests it: ``check_versions`` (which raises)
        # runs only when the node saved versions or keyword Tensors, or an input was written since.
        if node.versions is not None or node._rare is not None:
            check_versions(node, inputs)
        else:
            for value in inputs:
                if isinstance(value, Tensor) and value._vc is not None and value._vc[0]:
                    check_versions(node, inputs)
                    break
        values = inputs
        for value in inputs:
            if not isinstance(value, Tensor):  # a constant: the rules get it wrapped (graph.node_inputs)
                values = node_inputs(node) or ()
                break
        if kept_tensors:  # `out` is the node's output, on the graph: second order (and tangents) flow through it
            if node.data is not node.out:  # (`t.data = ...` since: the rules must read what the op made)
                raise rebound_output_error(node)
            grad, out = g, node
        else:
            grad, out = Tensor._wrap(g), Tensor._wrap(node.out)
        if not _local.modes.arrays:  # (a walk on Tensors throughout: nothing to switch)
            return _run_rules(node, grad, out, values, inputs)
        with modes(None, arrays=False):  # autobp ops act on Tensors as they do anywhere
            return _run_rules(node, grad, out, values, inputs)
    except Exception as error:
        explain_rule_error(node, error)
        raise
