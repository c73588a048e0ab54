"""The reverse walk's errors and warnings, each naming the op, the tensor and what to do."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from autobp import backends, graph
from autobp.tensor import Tensor

if TYPE_CHECKING:
    from autobp.ops.opdef import OpDef

__all__ = [
    "complex_gradient_error",
    "rebound_output_error",
    "raise_not_an_array",
    "describe_tensor",
    "freed_error",
    "modified_error",
    "wrong_shape_error",
    "warn_grad_cycle",
    "explain_rule_error",
    "variadic_count_error",
]


def describe_tensor(tensor: Tensor) -> str:
    return f"tensor {backends.describe(tensor)}"


def complex_gradient_error(node: Tensor, tensor: Tensor) -> TypeError:
    """A complex gradient from ``node``'s rule for ``tensor``, which is real (``engine.values.cast_like``)."""
    return TypeError(
        f"backward: op '{node.op.name}' gives {describe_tensor(tensor)}, which is real, a complex gradient: a "
        "complex value was computed from a tensor that requires grad (x * 1j, say), and autobp differentiates "
        "real functions only (its rules take no conjugates), so the derivative would be wrong. Compute the "
        "real and imaginary parts with real ops, or .detach() the tensor"
    )


def freed_error(node: Tensor) -> RuntimeError:
    return RuntimeError(
        f"backward through op '{node.op.name}' a second time: its saved values were freed after the "
        "first backward. Pass retain_graph=True to the first backward (or ab.grad) to keep them."
    )


def rebound_output_error(node: Tensor) -> RuntimeError:
    """A differentiated gradient through ``node`` whose ``.data`` was rebound after the op ran."""
    return RuntimeError(
        f"backward: {describe_tensor(node)}, made by op '{node.op.name}', had its .data replaced after the op "
        "ran; its rules read the values the op computed, and a differentiated gradient (create_graph, hvp) "
        "would pass through the replaced ones. Compute the new values out of place instead of assigning .data"
    )


def raise_not_an_array(node: Any, input_grads: Sequence[Any], error: AttributeError) -> None:
    """Raise a TypeError naming ``node``'s op where one of its rules gave a gradient that is not an
    array (a Python float, a list: the walk read its ``.shape``); return for any other error."""
    for index, value in enumerate(input_grads):
        if value is not None and not (hasattr(value, "shape") and hasattr(value, "dtype")):
            name = getattr(getattr(node, "op", None), "name", "backward")
            raise TypeError(
                f"{name}: its vjp rule for input {index} returned {backends.describe(value)}, not an array; "
                "a vjp rule returns an array (or a Tensor) of the input's shape, or None for a zero gradient"
            ) from error


def modified_error(what: str, node: Tensor, tensor: Tensor, saved: int) -> RuntimeError:
    return RuntimeError(
        f"{node.op.name}: {what} ({describe_tensor(tensor)}) was modified in place after the op ran "
        f"(saved at version {saved}, now version {tensor._version}), through it or a view of its storage, "
        "or had requires_grad turned on after the op used it; gradients through it would be wrong. Use an "
        "out-of-place op, or .clone() first; set requires_grad before computing with a tensor."
    )


def wrong_shape_error(grad: Any, tensor: Tensor, node: Any, inputs: Sequence[Any]) -> ValueError:
    """The error for a vjp rule whose gradient cannot be summed back to its input's shape."""
    name = getattr(getattr(node, "op", None), "name", "backward")
    index = next(i for i, value in enumerate(inputs) if value is tensor)
    return ValueError(
        f"{name}: the vjp rule for input {index} returned a gradient of shape {tuple(grad.shape)}, "
        f"which is not that input's shape {tuple(tensor.shape)} nor broadcast from it"
    )


def warn_grad_cycle() -> None:
    warnings.warn(
        "backward(create_graph=True) stored gradients that carry their own graph in .grad; that graph "
        "refers back to the leaves, a reference cycle that keeps it alive until the garbage collector "
        "runs. Prefer ab.grad(..., create_graph=True), which never writes .grad, or set .grad = None "
        "when done with it.",
        UserWarning,
        stacklevel=5,
    )


# The kinds of error an array library raises from a rule's arithmetic (torch's RuntimeError and
# NotImplementedError), re-raised naming the op; other kinds (a custom rule's own) pass as they are.
# (AttributeError: a rule reading .dtype or .ndim of a Python list an operator was given, `[2.0, 3.0] ** x`)
_LIBRARY_ERRORS = (TypeError, ValueError, IndexError, RuntimeError, NotImplementedError, AttributeError)


def explain_rule_error(node: Tensor, error: Exception) -> None:
    """Raise an error from ``node``'s rules again, naming the op and its inputs when it names
    neither (a library's own: array-api-strict's "float64 and int64 cannot be type promoted
    together"); in anomaly mode, one naming the op and its forward's line. Returns to re-raise."""
    if graph._anomaly_hook is not None:
        from autobp.anomaly import explain

        raise explain(node, error) from error
    name = node.op.name
    if type(error) in _LIBRARY_ERRORS and not str(error).startswith(f"{name}: "):
        shown = ", ".join(backends.describe(value) for value in node._inputs or ())
        listed = any([type(value) is list or type(value) is tuple for value in node._inputs or ()])
        hint = "; pass an array or a Tensor (ab.tensor([...])) instead of the list" if listed else ""
        raise type(error)(f"{name}: in its backward: {error} (inputs: {shown}){hint}") from error


def variadic_count_error(opdef: OpDef, grads: Any, inputs: int) -> TypeError:
    """A variadic vjp rule's result that is not one gradient (or None) per input: a list of
    another length, or an array (whose rows would have been read as gradients)."""
    got = f"{len(grads)} gradients" if isinstance(grads, (list, tuple)) else backends.describe(grads)
    return TypeError(
        f"{opdef.name}: its variadic vjp rule returned {got} for {inputs} inputs; it returns a list "
        "or tuple of one gradient (or None) per input (docs/custom-ops.md)"
    )
