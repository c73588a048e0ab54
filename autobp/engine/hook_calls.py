"""Where the reverse walk meets user code: tensor and node hooks, ``retain_grad``, and ``.grad``.

Hooks see Tensors with ops behaving as usual, whichever path the walk takes; leaves' ``.grad``
(and retained tensors') is written (accumulated) only once the whole walk succeeded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from autobp import backends, graph
from autobp.backends import describe
from autobp.engine.mode_switch import modes
from autobp.ops.elementwise import copy as _differentiable_copy
from autobp.tensor import Tensor

__all__ = [
    "run_hooks",
    "run_node_hooks",
    "keep_retained",
    "leaf_hooks",
    "accumulate",
    "check_accumulable",
    "clear_grad",
]


def run_hooks(hooks: Any, g: Any, create_graph: bool) -> Any:
    """Run user hooks on a gradient. Hooks always see Tensors, with ops behaving as usual.

    A hook sees a gradient of its own: identity vjps (``x + y``) hand one array to several
    tensors, and a hook that changes its argument in place (``g.mul_(2)``) changed the other's
    gradient too (``x.grad`` doubled by a hook on ``z``)."""
    with modes(None, arrays=False, quiet=False):  # (the hook's own np.errstate, if any, holds for its ops)
        tensor = (
            (_differentiable_copy(g) if g.requires_grad else g.copy())
            if create_graph
            else Tensor._wrap(graph.copy_array(g))
        )
        for hook in hooks:
            replaced = hook(tensor)
            if replaced is not None:
                tensor = replaced
    return tensor if create_graph else tensor.data


def leaf_hooks(leaf: Tensor) -> Iterator[Any]:
    """A leaf's hooks in registration order, each as it runs: a hook may remove itself or one not
    run yet (its handle's ``remove``), which then does not run, and the dict is not iterated while
    it changes."""
    for key in list(leaf._hooks or ()):
        hooks = leaf._hooks
        if hooks is not None and key in hooks:
            yield hooks[key]


def run_node_hooks(node: Tensor, g: Any, create_graph: bool, retained: list[tuple[Tensor, Tensor]] | None) -> Any:
    """Run a node's hooks; with ``retained`` (backward, never ``ab.grad``) note the gradient of a
    tensor that keeps ``.grad`` (``retain_grad``) there, for ``keep_retained`` to write once the
    whole walk succeeded, as leaves' ``.grad`` is: an error leaves every ``.grad`` as it was."""
    hooks = node._node_hooks
    if hooks:
        g = run_hooks(hooks, g, create_graph)
    if retained is not None and node._retained:
        with modes(None, arrays=False):
            retained.append((node, _own(g) if create_graph else Tensor._wrap(graph.copy_array(g))))
    return g


def keep_retained(retained: list[tuple[Tensor, Tensor]]) -> None:
    """Write the retained tensors' ``.grad`` (``run_node_hooks`` noted them), out of place, as
    PyTorch's retain_grad adds: a reference taken after the first backward keeps what it held then."""
    for tensor, kept in retained:
        tensor.grad = kept if tensor.grad is None else _sum(tensor.grad, kept, in_place=False)


def accumulate(leaf: Tensor, g: Tensor) -> None:
    leaf.grad = _own(g) if leaf.grad is None else _sum(leaf.grad, g)


def check_accumulable(leaf: Tensor, g: Any) -> None:
    """Refuse a ``.grad`` set by hand to another shape or dtype than the gradient's (the leaf's),
    as PyTorch refuses it when set: the sum would broadcast it (a (1,) ``.grad`` on a (2,) leaf)
    or promote it, silently. Checked for every leaf before any is written."""
    so_far = leaf.grad
    if so_far is not None and (
        not isinstance(so_far, Tensor) or so_far.shape != tuple(g.shape) or so_far.dtype != g.dtype
    ):
        raise TypeError(
            f"backward: the .grad of {describe(leaf)} holds {describe(so_far)}, not a Tensor of its shape "
            "and dtype; a .grad set by hand must be one (or None)"
        )


def _sum(so_far: Tensor, g: Tensor, in_place: bool = True) -> Tensor:
    """``so_far + g`` for ``.grad``. A ``.grad`` that carries a graph (from ``create_graph``) keeps
    it when a first-order backward adds to it, as in PyTorch: the sum is recorded.

    Otherwise the sum goes into ``so_far``'s own numpy array, as PyTorch accumulates in place: a
    reference to ``x.grad`` taken before a second backward sees the total (it kept the first
    gradient alone), and a graph that read ``x.grad`` notices the write (its version moves)."""
    if so_far.requires_grad and not graph._local.modes.enabled:
        with modes(True, arrays=False):
            return so_far + g
    if in_place and not g.requires_grad and _writable_own(so_far):
        data = so_far.data
        if type(data) is np.ndarray:
            np.add(data, g.data, out=data)
        else:  # (torch, array-api-strict: the standard's in-place operator writes into data)
            data += g.data
        so_far._version += 1  # (the .grad's own counter: views of it see the write too)
        return so_far
    return so_far + g


def _writable_own(grad: Tensor) -> bool:
    """Whether ``grad`` (a ``.grad``) is off any graph and holds a writeable array of its own
    memory, of any library: one that backward adds into and ``zero_grad`` zeroes in place. (On
    torch and array-api-strict, ``.grad`` was rebound to a new Tensor, so a reference taken
    before, ``g = w.grad``, kept the first gradient where numpy's and PyTorch's see the total.)"""
    data = grad.data
    if grad.requires_grad:
        return False
    if type(data) is np.ndarray:
        return data.base is None and data.flags.writeable
    # Other libraries have no read-only flag to keep a graph's arrays from being written: a .grad
    # set by hand to the memory of a tensor that requires grad (``w.grad = y.detach()``, y on a
    # graph, whose node saved y) shares its counter, which notes that tensor (``mark_requiring_grad``),
    # and is not written into (exp's saved output was). Views of .grad itself are written with it.
    counter = grad._vc
    if counter is not None and len(counter) > 1:
        return False
    lib = backends.library_of(data)
    return lib is not None and bool(lib.owns_memory(data))


def _own(g: Tensor) -> Tensor:
    """``g`` as a ``.grad`` of its own. Identity vjps (``x + y``) hand one gradient to several
    tensors, and with ``create_graph`` it may be the seed the user passed: an array each, so that
    an in-place change to one ``.grad`` reaches no other, nor the seed. A gradient made by an op
    (it has a ``grad_fn``) refuses in-place changes and is kept; a leaf that requires grad (the
    seed) is copied by an op, so that the copy stays differentiable with respect to it."""
    if not g.requires_grad:
        return g.copy()
    if g.op is None:
        return _differentiable_copy(g)  # type: ignore[no-any-return]
    return g


def clear_grad(param: Tensor, set_to_none: bool) -> None:
    """``zero_grad``'s work on one parameter: ``.grad`` to None, or to zeros, written into
    ``.grad``'s own array where it has one (as PyTorch zeroes it), so that a reference to ``.grad``
    sees the zeros as it sees what backward adds (``_sum``)."""
    grad = param.grad
    if set_to_none or grad is None:
        param.grad = None
        return
    if _writable_own(grad):
        data = grad.data
        if type(data) is np.ndarray:
            data.fill(0)
        else:
            data[...] = 0  # (torch, array-api-strict: in place, the standard's item assignment)
        grad._version += 1
    else:
        param.grad = Tensor(backends.namespace(param.data).zeros_like(param.data))
