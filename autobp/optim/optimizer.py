"""The ``Optimizer`` base: parameter groups, per-parameter state, and saving both.

An update writes each parameter's array in place (references to the parameter stay valid) and
bumps its ``_version``, so a graph that saved the old value refuses to backpropagate through it.
Updates compute with the parameters' own array library (numpy, torch, cupy...) and keep the
state there too: move a model (``model.to(...)``) before building its optimizer.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from autobp import backends, storage
from autobp.engine.hook_calls import clear_grad
from autobp.grad_mode import enable_grad, no_grad
from autobp.inplace import live_copy_error
from autobp.tensor import Tensor

__all__ = ["Optimizer"]


class Optimizer:
    """Holds ``param_groups`` (dicts of ``params`` plus hyperparameters) and per-parameter ``state``.

    Subclasses implement ``update(param, grad, state, group)`` on arrays of any library, with the
    functions of ``autobp.backends.namespace(param)`` and arithmetic operators, writing ``param`` in
    place (``param -= ...``, which every library has); ``step`` runs it for every parameter that has
    a gradient (its gradient and state in the parameter's library), without recording the graph.
    """

    takes_complex = True  # whether update() is right for complex parameters (as numbers, per part)

    def __init__(self, params: Iterable[Any], defaults: Mapping[str, Any]) -> None:
        self.defaults = {key: _plain(value) for key, value in defaults.items()}
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[int, dict[str, Any]] = {}  # keyed by id(param): Tensor == is elementwise
        if callable(getattr(params, "parameters", None)):  # a Module or Network, as PyTorch users may pass
            name = type(self).__name__
            raise TypeError(
                f"{name}: got the model ({type(params).__name__}) itself; pass its parameters: "
                f"{name}(model.parameters(), ...)"
            )
        _ordered(params, type(self).__name__)
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: Mapping[str, Any]) -> None:
        """Add a group of parameters; hyperparameters it does not set come from the defaults."""
        name = type(self).__name__
        params = group["params"]
        _ordered(params, name)
        params = [params] if isinstance(params, Tensor) else list(params)
        for param in params:
            # A frozen parameter (requires_grad=False, as in fine-tuning) is taken, as PyTorch takes it:
            # it has no gradient, so step leaves it, until it is unfrozen.
            if not isinstance(param, Tensor) or not param.is_leaf:
                got = (
                    f"a tensor made by op '{param.grad_fn.op.name}'"
                    if isinstance(param, Tensor) and param.grad_fn is not None
                    else type(param).__name__
                )
                raise TypeError(f"{name}: can only optimize leaf Tensors (a model's parameters), got {got}")
            if not backends.holds_floats(param.data):
                raise TypeError(
                    f"{name}: can only optimize floating-point tensors, got {backends.describe(param.data)}"
                )
            if not self.takes_complex and _complex(param.data):
                # (Adam's g * g, sqrt and division of a complex number are not the per-part ones
                # PyTorch takes: [1 + 1j] with .grad [1j] moved its real part, not its imaginary)
                raise TypeError(
                    f"{name}: cannot optimize a complex tensor ({backends.describe(param.data)}): its "
                    "update is not per real and imaginary part; optimize the two parts as real tensors"
                )
        if len({id(p) for p in params}) != len(params):
            # (stepped once per appearance: SGD([w, w]) took every step twice)
            raise ValueError(f"{name}: a parameter appears twice in one group")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError(f"{name}: a parameter appears in more than one group")
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise TypeError(f"{name}: unknown hyperparameters {sorted(unknown)}")
        given = {key: _plain(value) for key, value in group.items() if key != "params"}
        self.param_groups.append({**self.defaults, **given, "params": params})

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient: to None (default), or to zeros."""
        for group in self.param_groups:
            for param in group["params"]:
                clear_grad(param, set_to_none)

    @no_grad()  # a fresh manager per call: threads stepping their own optimizers keep their own mode
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; ``closure`` re-evaluates the loss first."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                data, grad = param.data, param.grad.data
                state = self.state.setdefault(id(param), {})
                try:
                    xp = backends.namespace(data, grad, *state.values())
                except backends.MixedArraysError as error:
                    raise backends.MixedArraysError(
                        f"{type(self).__name__}.step: a parameter {backends.describe(data)}, its gradient or "
                        f"its state are in different places ({error}); build the optimizer after model.to(...)"
                    ) from None
                if tuple(grad.shape) != tuple(data.shape):  # (a .grad set by hand: the update would broadcast it)
                    raise ValueError(
                        f"{type(self).__name__}.step: a parameter {backends.describe(data)} has a gradient "
                        f"{backends.describe(grad)}; its .grad must have the parameter's shape"
                    )
                if grad.dtype != data.dtype:
                    if not backends.holds_floats(grad):
                        raise TypeError(
                            f"{type(self).__name__}.step: a parameter {backends.describe(data)} has a gradient "
                            f"{backends.describe(grad)}; a gradient is floating-point (an integer or bool .grad "
                            "was set by hand: it would be cast and stepped as numbers)"
                        )
                    if _complex(grad) and not _complex(data):
                        raise TypeError(
                            f"{type(self).__name__}.step: a real parameter {backends.describe(data)} has a complex "
                            f"gradient {backends.describe(grad)} (set by hand); the cast would drop its imaginary part"
                        )
                    grad = xp.astype(grad, data.dtype)
                if type(data) is not np.ndarray:  # (torch: a copy standing for numpy's view would miss it)
                    read = storage.live_copy(data)
                    if read is not None:
                        raise RuntimeError(
                            live_copy_error(f"{type(self).__name__}.step: a parameter {backends.describe(data)}", read)
                        )
                self.update(data, grad, state, group)
                param._version += 1
        return loss

    def update(self, param: Any, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Change ``param`` in place from ``grad``, the per-parameter ``state`` and the ``group``'s settings."""
        raise NotImplementedError(f"{type(self).__name__}: optimizers must define update()")

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Copies of the state, by parameter index (in group order), and the hyperparameters.

        ``{"state": {index: {name: array or int}}, "param_groups": [{..., "params": [indices]}]}``
        """
        index = 0
        groups = []
        state: dict[int, dict[str, Any]] = {}
        for group in self.param_groups:
            indices = []
            for param in group["params"]:
                if id(param) in self.state:
                    state[index] = copy.deepcopy(self.state[id(param)])
                indices.append(index)
                index += 1
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": indices})
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore state and hyperparameters saved by ``state_dict`` (for the same parameters)."""
        name = type(self).__name__
        groups = list(state_dict["param_groups"])
        if len(groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: {len(groups)} saved groups, {len(self.param_groups)} here")
        params = []
        for saved, group in zip(groups, self.param_groups, strict=True):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: a saved group has {len(saved['params'])} parameters, "
                    f"this one {len(group['params'])}"
                )
            params.extend(group["params"])
        new_state: dict[int, dict[str, Any]] = {}
        for key, entry in state_dict["state"].items():
            index = int(key)
            if not 0 <= index < len(params):
                raise ValueError(f"{name}.load_state_dict: state for parameter {index}, but there are {len(params)}")
            new_state[id(params[index])] = {
                k: _restore(v, params[index], f"state.{index}.{k}", name) for k, v in entry.items()
            }
        for saved, group in zip(groups, self.param_groups, strict=True):
            group.update({k: _scalar(v) for k, v in saved.items() if k != "params"})
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"  group {i}: " + ", ".join(f"{k}={v}" for k, v in group.items() if k != "params"))
        return "\n".join([*lines, ")"])


def _complex(array: Any) -> bool:
    """Whether ``array`` (of any library) holds complex numbers."""
    return bool(backends.namespace(array).isdtype(array.dtype, "complex floating"))


def _ordered(params: Any, name: str) -> None:
    """Refuse a set: ``state_dict`` numbers the parameters in their order, and a set's order
    follows ids, which change from run to run (moments would load into another parameter)."""
    if isinstance(params, set | frozenset):
        raise TypeError(
            f"{name}: parameters in a set have no fixed order (state_dict numbers them by position); "
            f"pass a list, or model.parameters()"
        )


def _plain(value: Any) -> Any:
    """A hyperparameter as a Python value: a numpy scalar or 0-d array (``np.float64(0.1)`` from
    ``np.logspace``) becomes its Python number, inside tuples too (``betas``). The updates compute
    with it on every library (array-api-strict refuses numpy scalars, torch 0-d numpy arrays)."""
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray | Tensor) and value.ndim == 0):
        return value.item()  # (a 0-d Tensor too, as PyTorch takes a tensor lr)
    if isinstance(value, tuple | list):
        return tuple(_plain(item) for item in value)
    return value


def _scalar(value: Any) -> Any:
    """Hyperparameters read back from a file arrive as arrays or Tensors: make them Python values
    (``_plain``'s), a 1-d array (``betas``) a tuple."""
    data = value.data if isinstance(value, Tensor) else value
    if isinstance(data, np.ndarray) and data.ndim:
        return tuple(data.tolist())
    return _plain(data)


def _restore(value: Any, param: Tensor, key: str, name: str) -> Any:
    """A saved state entry for ``param``: arrays copied into its dtype, library and device."""
    data = value.data if isinstance(value, Tensor) else value
    lib = backends.library_of(data)
    # An array of the parameter's shape is a buffer (momentum, Adam's moments), also for a 0-d
    # parameter, whose buffers are 0-d float arrays: made Python floats, the update's in-place
    # `buf *= m` rebound a local and the state stopped moving. Integer scalars (`step`) are values.
    if lib is not None and (data.ndim > 0 or (param.ndim == 0 and lib.float_dtype(data.dtype))):
        if tuple(data.shape) != param.shape:
            raise ValueError(
                f"{name}.load_state_dict: {key} has shape {tuple(data.shape)}, its parameter {param.shape}"
            )
        own = backends.namespace(param.data)
        if own.name == "numpy":
            return np.array(lib.to_numpy(data), dtype=param.dtype)
        moved = backends.move(data, own, own.device(param.data))
        return own.astype(moved, param.data.dtype)
    if lib is not None and lib.name != "numpy":
        data = lib.to_numpy(data)  # a 0-d array: its Python value
    return _scalar(data)
