"""The engine's guard against in-place changes: a node's saved inputs must be at the versions it saved.

A tensor modified in place after an op read it would give a wrong gradient; the walk checks each
node's inputs (and Tensors in its keywords) before its rules run, and raises instead.
"""

from __future__ import annotations

from typing import Any

from autobp.engine.errors import modified_error
from autobp.tensor import Tensor

__all__ = ["check_versions", "changed"]


def check_versions(node: Tensor, inputs: tuple[Any, ...]) -> None:
    """Raise if a tensor the node saved (an input, or a Tensor in its keywords) changed since."""
    rare = node._rare
    if rare is not None and rare.kwarg_versions is not None:  # (the property also checks torch's saved arrays)
        for tensor, saved in rare.kwarg_versions:
            if tensor._version != saved:
                raise modified_error("a tensor it read from its keywords (an index, say)", node, tensor, saved)
    versions = node.versions
    # (the counters read directly, not through the ``_version`` property: a frame per input)
    if versions is None and not any([isinstance(v, Tensor) and v._vc is not None and v._vc[0] for v in inputs]):
        return  # nothing was modified before or after the op: the usual case, checked quickly
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, Tensor):
            continue
        saved = versions[i] if versions is not None else 0
        if (tensor._vc[0] if tensor._vc is not None else 0) != saved:
            raise modified_error("an input it saved for backward", node, tensor, saved)


def changed(versions: tuple[int, ...] | None, x: Tensor | None, y: Tensor | None) -> bool:
    """Whether input Tensor ``x`` or ``y`` (None: not a Tensor) is off its saved version (0 if none saved).

    ``check_versions``'s test for two inputs, without its loops: it runs for every node that reads a
    parameter an optimizer or ``Network`` has stepped (W1 eager); ``check_versions`` then raises.
    """
    saved_x, saved_y = versions if versions is not None else (0, 0)
    return (x is not None and (x._vc[0] if x._vc is not None else 0) != saved_x) or (
        y is not None and (y._vc[0] if y._vc is not None else 0) != saved_y
    )
