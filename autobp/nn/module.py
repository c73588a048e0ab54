"""``Module`` and ``Parameter``: models as trees of modules that own parameters.

Assigning a ``Parameter`` or a ``Module`` to an attribute registers it; ``named_parameters``
walks the tree and names each parameter by its dotted path (``"fc1.weight"``). The assignment
also sets each parameter's ``.name`` to that path, so graph pictures label its box.
``model.to("torch", device="cuda")`` moves every parameter to another array library or device.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from autobp import backends
from autobp.engine.hook_calls import clear_grad
from autobp.forward import carries_tangent
from autobp.tensor import Tensor

__all__ = ["Module", "Parameter"]


class Parameter(Tensor):
    """A leaf Tensor that a ``Module`` registers as trainable (``requires_grad=True`` by default).

    Shapes: any.

    >>> import autobp as ab
    >>> ab.nn.Parameter([1.0, 2.0])
    Parameter(tensor([1., 2.], requires_grad=True))
    """

    # The name a Module gave this parameter; a name the user set differs from it and is kept.
    __slots__ = ("_module_name",)

    def __init__(self, data: Any, requires_grad: bool = True, dtype: Any = None) -> None:
        if isinstance(data, Tensor) and data.requires_grad and not carries_tangent(data):
            # A Parameter is a new leaf by its name (``nn.Parameter(other.weight * 2)``, as PyTorch
            # takes it): its values are meant, not its graph, which ab.tensor(t) refuses to drop unsaid.
            data = data.detach()
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)
        self._module_name: str | None = None

    def __repr__(self) -> str:
        return f"Parameter({super().__repr__()})"


def _name(param: Parameter, name: str) -> None:
    """Give ``param`` the dotted ``name`` unless the user named it."""
    if param.name is None or param.name == getattr(param, "_module_name", None):
        param.name = param._module_name = name


def move_parameter(param: Tensor, target: backends.Namespace | None, device: Any) -> None:
    """Give ``param`` (and its gradient) copies of their arrays in ``target`` (None: its own library)
    on ``device``, in place: the parameter stays the same object."""
    source = backends.namespace(param.data)
    where = target if target is not None else source
    if where is source and (device is None or str(device) == source.device_name(param.data)):
        return  # already there: no copy, and graphs that saved it stay valid
    param.data = backends.move(param.data, where, device)
    if param.grad is not None:
        param.grad = Tensor(backends.move(param.grad.data, where, device))
    param._version += 1  # graphs that saved the old arrays must not mix them with the new ones


def _casts(source: Any, target: Any) -> bool:
    """Whether ``source``'s dtype casts to ``target``'s within its kind (floats to floats...)."""
    source_type, target_type = (np.dtype(backends.namespace(a).dtype_name(a.dtype)) for a in (source, target))
    return bool(np.can_cast(source_type, target_type, casting="same_kind"))


def _copy_into(param: Tensor, values: Any) -> None:
    """Write ``values`` (any library) into ``param``'s array, keeping its dtype, library and device."""
    data: Any = param.data
    if type(data) is np.ndarray:
        if type(values) is not np.ndarray:
            values = backends.namespace(values).to_numpy(values)
        np.copyto(data, values, casting="same_kind")
    else:
        xp = backends.namespace(data)
        if backends.library_of(values) is not xp or xp.device_name(values) != xp.device_name(data):
            values = xp.from_numpy(backends.namespace(values).to_numpy(values), xp.device(data))
        if xp.name == "torch":
            # Into the parameter's own tensor, as numpy's copyto above and PyTorch's
            # load_state_dict write: a view or detach() of the parameter (the memory an optimizer
            # step writes into) sees the loaded values. A new tensor in its place left them
            # holding the old values on torch alone.
            # (detached: a torch tensor that requires grad, a torch model's Parameter, would
            # make the parameter's array a node of torch's own graph, grown by every step)
            data.copy_(values.detach())
        else:
            # A new array in the parameter's place (array-api-strict has no writes into memory
            # that views may share; autobp writes in place into numpy and torch arrays only).
            param.data = xp.astype(values, data.dtype, copy=True)
    param._version += 1  # saved tensors of an earlier graph are now stale


class Module:
    """Base class of models: subclasses set parameters and sub-modules as attributes in
    ``__init__`` and compute in ``forward``; calling the module calls ``forward``.

    >>> import autobp as ab
    >>> class Affine(ab.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.scale = ab.nn.Parameter([2.0])
    ...     def forward(self, x):
    ...         return x * self.scale
    >>> [name for name, _ in Affine().named_parameters()]
    ['scale']
    >>> model = ab.nn.Sequential(ab.nn.Linear(2, 3), ab.nn.Tanh())
    >>> [p.name for p in model.parameters()]  # graph pictures show these names
    ['0.weight', '0.bias']
    """

    training: bool
    _parameters: dict[str, Parameter | None]
    _modules: dict[str, Module]

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        params: dict[str, Parameter | None] = self.__dict__["_parameters"]
        modules: dict[str, Module] = self.__dict__["_modules"]
        if value is not None and not isinstance(value, Parameter) and name in params:
            # Unregistered without a word, the slot's new value would not be trained, nor saved
            # (an empty slot too: Linear(bias=False), then .bias = a tensor); a numpy array or a
            # list too, which forward computes with as well. PyTorch refuses all of them.
            in_place = f", or change its values in place (with ab.no_grad(): module.{name}.copy_(t))"
            empty = params[name] is None
            what, advice = ("a parameter slot (None now)", "") if empty else ("a parameter", in_place)
            got = backends.describe(value) if isinstance(value, Tensor) else type(value).__name__
            raise TypeError(
                f"{type(self).__name__}.{name} is {what}: assign an nn.Parameter (nn.Parameter(t)){advice}; got {got}"
            )
        if isinstance(value, Parameter) or (value is None and name in params):
            # A slot keeps its place in parameters() (an optimizer's state is kept by position),
            # and None keeps the slot, as bias=False makes it.
            params[name] = value
            if value is not None:
                _name(value, name)
        else:
            params.pop(name, None)
        if isinstance(value, Module):
            modules[name] = value  # (a replaced sub-module keeps its place too)
            # Dotted names as named_parameters gives them, relative to the outermost module the
            # tree was last assigned into; a module built bottom-up ends with full paths.
            for path, param in value.named_parameters(name):
                _name(param, path)
        else:
            modules.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self.__dict__["_parameters"].pop(name, None)
        self.__dict__["_modules"].pop(name, None)
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` under ``name`` (None keeps the slot, as ``bias=False`` does)."""
        if param is not None and not isinstance(param, Parameter):
            # (set as a plain attribute, it was in no parameters() and no state_dict: never
            # trained, never saved, with no error; PyTorch refuses it)
            got = backends.describe(param) if isinstance(param, Tensor) else type(param).__name__
            raise TypeError(
                f"{type(self).__name__}.register_parameter({name!r}): expected an nn.Parameter or None, got {got}"
            )
        setattr(self, name, param)
        if param is None:
            self.__dict__["_parameters"][name] = None

    def add_module(self, name: str, module: Module) -> None:
        """Register a sub-module under ``name`` (names may be digits, as in ``Sequential``)."""
        setattr(self, name, module)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation; subclasses override it (call the module, not ``forward``)."""
        raise NotImplementedError(f"{type(self).__name__}: subclasses of Module must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # -- the tree ---------------------------------------------------------------------------------
    def children(self) -> Iterator[Module]:
        """The direct sub-modules, in registration order, each once (as PyTorch's)."""
        for _, child in self.named_children():
            yield child

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """The direct sub-modules with their attribute names; one registered under two names
        comes once, under the first."""
        seen: set[int] = set()
        for name, child in self._modules.items():
            if id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every descendant, with dotted names ("" for this one), each once even
        if shared (under its first name, as PyTorch's): a loop over ``modules()`` (a weight
        penalty, an init) visited a shared layer once per place, adding its term twice."""
        yield from self._named_modules(prefix, set())

    def _named_modules(self, prefix: str, seen: set[int]) -> Iterator[tuple[str, Module]]:
        if id(self) in seen:
            return
        seen.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            yield from child._named_modules(f"{prefix}.{name}" if prefix else name, seen)

    def modules(self) -> Iterator[Module]:
        """This module and every descendant, depth first, each once."""
        for _, module in self.named_modules():
            yield module

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Every parameter with its dotted name, each once even if shared."""
        seen: set[int] = set()
        for module_name, module in self.named_modules(prefix):
            for name, param in module._parameters.items():
                if param is None or id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self) -> Iterator[Parameter]:
        """Every parameter of the tree, each once (what an optimizer takes)."""
        for _, param in self.named_parameters():
            yield param

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's ``.grad`` (to None, or to zeros)."""
        for param in self.parameters():
            clear_grad(param, set_to_none)

    def train(self, mode: bool = True) -> Module:
        """Set training mode (dropout active) here and below; returns self."""
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        """Set evaluation mode (dropout off); returns self."""
        return self.train(False)

    def to(self, library: str | None = None, device: Any = None) -> Module:
        """Move every parameter (and its ``.grad``) to another array library or device, in place;
        returns this module. ``model.to("torch")``, ``model.to("torch", device="cuda")``,
        ``model.to(device="cuda:1")`` (same library), ``model.to("numpy")``.

        The parameters stay the same objects (names, ``requires_grad`` and an optimizer built on
        them remain valid); only their arrays are replaced by copies in the new place, so move the
        model before building an optimizer whose state should live there. A graph recorded before
        the move refuses to backpropagate (the parameters' versions change).

        >>> import autobp as ab
        >>> model = ab.nn.Linear(3, 2, rng=0).to("array_api_strict")
        >>> [(name, p.library) for name, p in model.named_parameters()]
        [('weight', 'array_api_strict'), ('bias', 'array_api_strict')]
        """
        target = backends.library(library) if library is not None else None
        for param in self.parameters():
            move_parameter(param, target, device)
        return self

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        """Copies of every parameter, by dotted name (detached, so safe to save or keep).

        Shapes: each entry has its parameter's shape.
        """
        return {name: Tensor(param.data) for name, param in self.named_parameters()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> tuple[list[str], list[str]]:
        """Copy values into the parameters, in place, matching by dotted name.

        With ``strict`` a missing or unexpected key is an error; a shape mismatch always is.
        Errors name every offending key. Returns ``(missing, unexpected)`` key lists.
        """
        own = dict(self.named_parameters())
        missing = [name for name in own if name not in state]
        unexpected = [name for name in state if name not in own]
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {unexpected}")
        arrays = {}
        for name, value in state.items():
            if name in own:
                array = value.data if isinstance(value, Tensor) else value
                if backends.library_of(array) is None:  # lists, scalars: numpy reads them
                    array = np.asarray(array)
                if tuple(array.shape) != own[name].shape:
                    problems.append(
                        f"shape mismatch for {name}: got {tuple(array.shape)}, the model has {own[name].shape}"
                    )
                elif not _casts(array, own[name].data):
                    problems.append(
                        f"dtype mismatch for {name}: {backends.describe(array)} cannot be cast to "
                        f"{backends.describe(own[name].data)}"
                    )
                arrays[name] = array
        if problems:
            raise ValueError(f"load_state_dict: {type(self).__name__}: " + "; ".join(problems))
        for name, array in arrays.items():
            _copy_into(own[name], array)
        return missing, unexpected

    # -- printing ---------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The arguments shown inside this module's ``repr`` line (empty by default)."""
        return ""

    def __repr__(self) -> str:
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._modules:
            return head + ")"
        lines = [head]
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"
