"""Tensor's copy and pickle protocols: ``copy.copy``, ``copy.deepcopy`` and ``pickle``.

Each gives a tensor with its own copy of the data, as numpy's ``copy.copy`` of an array does,
and a fresh version counter. Python's default for a slotted class would share the data and not
the counter: an in-place write through the copy would then change values a graph saved for
backward without the graph noticing, and backward would return a wrong gradient with no error.

Only leaves are copied, and a copy is a new leaf: it shares no graph with ``t`` (``t.clone()`` is
the copy that does); a leaf carrying a forward-mode tangent (``make_dual``'s) is refused, as
``ab.tensor(t)`` refuses it, since the copy would carry none. A tensor made by an op
belongs to a graph, which a copy cannot take along: copying one raises, and says to detach it
first (PyTorch's ``deepcopy`` refuses these too). Gradient hooks are copied by ``copy.copy`` and
``copy.deepcopy`` (as the rest of the state: shared by the one, deep-copied by the other) and
left out of a pickle: they are functions of this process, often lambdas that pickle cannot
store.
"""

from __future__ import annotations

import copy
from typing import Any

from autobp import backends, graph
from autobp.forward import carries_tangent
from autobp.tensor import Tensor

TENSOR_METHODS = ("__copy__", "__deepcopy__", "__reduce_ex__")


def __copy__(self: Tensor) -> Tensor:
    """``copy.copy(t)``: a leaf with a copy of the data and of ``.grad``; the rest shared."""
    state = _state(self, "copy.copy")
    state["data"] = graph.copy_array(self.data)
    if self.grad is not None:
        state["grad"] = __copy__(self.grad)
    if self._hooks is not None:
        state["_hooks"] = dict(self._hooks)  # (hooks added to the copy are its own)
    return rebuild(type(self), state)


def __deepcopy__(self: Tensor, memo: dict[int, Any]) -> Tensor:
    """``copy.deepcopy(t)``: a leaf whose every part is deep-copied (the data, ``.grad``, hooks)."""
    state = _state(self, "copy.deepcopy")
    copied = _blank_leaf(type(self))
    memo[id(self)] = copied  # (before the parts: a hook may refer back to this tensor)
    for name, value in state.items():
        setattr(copied, name, copy.deepcopy(value, memo))
    return copied


def __reduce_ex__(self: Tensor, protocol: Any) -> tuple[Any, ...]:
    """``pickle``: the data, ``requires_grad``, ``.grad`` and ``name``; hooks are left out."""
    state = _state(self, "pickle")
    # A copy, pickled: with protocol 5 and out-of-band buffers the unpickled tensor shares the
    # pickled array's memory, which must then be no other tensor's.
    state["data"] = graph.copy_array(self.data)
    state["_hooks"] = None
    # The slot a leaf had before it was its own graph node's (rebuild skips it): a pickle made here
    # loads where autobp is older (78291f1 and before), as one made there loads here.
    state["grad_fn"] = None
    return rebuild, (type(self), state)


def rebuild(cls: type[Tensor], state: dict[str, Any]) -> Tensor:
    """A tensor of class ``cls`` whose slots are ``state`` (what the protocols above return)."""
    tensor = _blank_leaf(cls)
    for name, value in state.items():
        if name != "grad_fn":  # (a pickle made before a tensor was its own graph node holds grad_fn=None)
            setattr(tensor, name, value)
    return tensor


def _blank_leaf(cls: type[Tensor]) -> Tensor:
    """A tensor of class ``cls`` with no slot set but the three a leaf's state leaves out: ``op`` (a
    leaf: copies and pickles are of leaves only), its rare part, which the name and the hooks are
    then set through, and forward mode's tangents (none)."""
    tensor = object.__new__(cls)
    tensor.op = None  # type: ignore[assignment]
    tensor._rare = None
    tensor._dual = None  # (a copy carries no tangent: a dual tensor is refused, _state)
    return tensor


def _state(tensor: Tensor, how: str) -> dict[str, Any]:
    """The slots of a leaf ``tensor`` (its class's included) with a fresh version counter; a
    tensor made by an op is refused, naming ``how`` it was to be copied."""
    if tensor.op is not None:
        raise TypeError(
            f"{how}: {backends.describe(tensor)} was made by an op ({tensor.grad_fn!r}), and a copy cannot take its "
            "graph along; copy t.detach() for its values, or use t.clone() for a copy on the graph"
        )
    graph.note_read(tensor, how)  # a tape being traced: the copy's values are read out of the graph
    if carries_tangent(tensor):
        # (a dual leaf made by make_dual: its copy carried no tangent, and read as a constant)
        raise TypeError(
            f"{how}: {backends.describe(tensor)} carries a forward-mode tangent, which a copy cannot take "
            "along (the copy would be a constant: jvp would read zeros); use t.clone() for a copy that "
            "keeps it, or copy t.detach() for a constant on purpose"
        )
    state = {}
    for cls in type(tensor).__mro__:
        for name in vars(cls).get("__slots__", ()):
            # (no ``op``: a copy is a leaf, which rebuild makes it; a pickle then holds the slots it
            # held before a tensor was its own graph node, which older versions of autobp can load)
            if name not in ("__weakref__", "_rare", "_dual", "op") and hasattr(tensor, name):
                state[name] = getattr(tensor, name)
    # (the rare part holds the name, the hooks and the gradient: the copy gets its own, through
    # its properties; ``grad`` is the name an older pickle's slot had)
    state["grad"], state["name"], state["_hooks"] = tensor.grad, tensor.name, tensor._hooks
    state["_vc"] = None  # new memory: version 0, shared with no other tensor
    return state
