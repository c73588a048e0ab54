"""Gradient hooks: observe or replace a tensor's gradient during backward.

``Tensor.register_hook(fn)`` calls ``fn(grad)`` when the gradient of that tensor is complete
(every consumer has contributed); a returned Tensor replaces the gradient for everything
upstream. Hooks live on the tensor's rare part: a leaf's by handle key (``_hooks``), a non-leaf's,
the tensor being its op's node, as the node's (``_node_hooks``), where the engine runs them
(``engine.hook_calls.run_hooks`` / ``engine.hook_calls.run_node_hooks``).
``retain_grad`` keeps ``.grad`` on a non-leaf tensor after backward.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable

from autobp.backends import describe
from autobp.graph import as_gradient
from autobp.tensor import Tensor

__all__ = ["RemovableHandle", "register_hook", "retain_grad"]

Hook = Callable[[Tensor], "Tensor | None"]
_ids = itertools.count()
# Whether a leaf hook was ever registered in this process: a tape differentiates fresh leaves and
# runs none, so a caller that tapes its own parameters (models.Network) looks for hooks only then.
leaf_hooks_made = False


class RemovableHandle:
    """Returned by ``register_hook``; ``remove()`` unregisters the hook (calling it twice is harmless).

    Also a context manager: the hook is removed when the ``with`` block ends.
    """

    def __init__(self, remove: Callable[[], None]) -> None:
        self._remove: Callable[[], None] | None = remove

    def remove(self) -> None:
        """Unregister the hook."""
        if self._remove is not None:
            self._remove()
            self._remove = None

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _checked(tensor: Tensor, hook: Hook) -> Hook:
    """Wrap ``hook`` so that a bad replacement fails here, naming the hook, not deep in the engine."""
    shape, name = tensor.shape, getattr(hook, "__name__", repr(hook))

    def run(grad: Tensor) -> Tensor | None:
        replaced = hook(grad)
        if replaced is None:
            return None
        if not isinstance(replaced, Tensor) or type(replaced.data) is not type(grad.data):
            replaced = as_gradient(replaced, grad, f"hook {name}")  # the gradient's library (or an error)
        if replaced.shape != shape:
            raise RuntimeError(
                f"hook {name}: returned a gradient of shape {replaced.shape} for a tensor of shape {shape}; "
                "a hook must return None or a gradient of the tensor's shape"
            )
        if replaced.dtype != grad.dtype:  # (else the walk would go on in it: float16 rounds every input's gradient)
            raise RuntimeError(
                f"hook {name}: returned a gradient of dtype {replaced.dtype} for a gradient of dtype "
                f"{grad.dtype}; a hook must keep the gradient's dtype (cast inside it if needed)"
            )
        return replaced

    return run


def register_hook(tensor: Tensor, hook: Hook) -> RemovableHandle:
    """Call ``hook(grad)`` when ``tensor``'s gradient is computed; a returned Tensor replaces it.

    Shapes: ``grad`` and any replacement have ``tensor``'s shape.

    >>> import autobp as ab
    >>> x = ab.tensor([1.0, 2.0], requires_grad=True)
    >>> handle = x.register_hook(lambda g: g * 10)
    >>> (x * x).sum().backward()
    >>> x.grad.tolist()
    [20.0, 40.0]
    >>> handle.remove()
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"register_hook: expected a Tensor, got {type(tensor).__name__}")
    if not callable(hook):
        raise TypeError(f"register_hook: hook must be callable, got {type(hook).__name__}")
    if not tensor.requires_grad:
        raise RuntimeError(
            f"register_hook: tensor {describe(tensor)} does not require grad, so no gradient will ever reach the hook"
        )
    wrapped = _checked(tensor, hook)
    if tensor.op is None:
        global leaf_hooks_made
        leaf_hooks_made = True
        key = next(_ids)
        if tensor._hooks is None:
            tensor._hooks = {}
        tensor._hooks[key] = wrapped
        leaf_ref = weakref.ref(tensor)

        def remove_leaf_hook() -> None:
            leaf = leaf_ref()
            if leaf is not None and leaf._hooks is not None:
                leaf._hooks.pop(key, None)
                if not leaf._hooks:
                    leaf._hooks = None  # the engine skips hook work entirely when None

        return RemovableHandle(remove_leaf_hook)
    # A non-leaf's hooks are its node's (the tensor itself, graph._Rare): the engine runs them as
    # the walk reaches the node
    if tensor._node_hooks is None:
        tensor._node_hooks = []
    tensor._node_hooks.append(wrapped)
    node_ref = weakref.ref(tensor)

    def remove_node_hook() -> None:
        owner = node_ref()
        if owner is not None and owner._node_hooks is not None:
            owner._node_hooks = [h for h in owner._node_hooks if h is not wrapped] or None

    return RemovableHandle(remove_node_hook)


def retain_grad(tensor: Tensor) -> None:
    """Keep the gradient of a non-leaf ``tensor`` in its ``.grad`` after backward (a no-op on leaves).

    >>> import autobp as ab
    >>> x = ab.tensor([1.0, 2.0], requires_grad=True)
    >>> y = x * 3
    >>> y.retain_grad()
    >>> (y * y).sum().backward()
    >>> y.grad.tolist()
    [6.0, 12.0]
    """
    if not tensor.requires_grad:
        raise RuntimeError(
            f"retain_grad: tensor {describe(tensor)} does not require grad, so it has no gradient to keep"
        )
    if tensor.op is not None:
        tensor._retained = True  # (the tensor is its node: the engine writes its .grad)
