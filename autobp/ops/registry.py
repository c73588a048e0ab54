"""The op registry: one entry per op, its forward and its vjp side by side, plus test hints.

An op is declared once, in the file of its family::

    @op("mul", arity=2, hints=Hints(shapes="broadcast"))
    def mul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return x * y

    mul.defvjp(
        lambda grad, out, x, y: grad * y,  # d(xy)/dx = y
        lambda grad, out, x, y: grad * x,  # d(xy)/dy = x
    )

``@op`` turns the array function into the public function (``ab.mul``) that takes Tensors,
records the graph and names ``grad_fn``. Each vjp rule takes ``(grad, out, *inputs, **kwargs)``
as Tensors and returns the gradient for one input; rules are written with autobp ops, so the
gradient is itself differentiable. The engine sums each returned gradient back to its input's
shape, so rules never un-broadcast by hand.

Forward mode (``autobp.forward``) reads each op's jvp rules, set beside the vjp rules::

    mul.defjvp(
        lambda tangent, out, x, y: tangent * y,  # d(xy) = dx y
        lambda tangent, out, x, y: tangent * x,  # ... + x dy
    )

A jvp rule takes the tangent of one input and returns its contribution to the output's tangent;
forward mode adds the contributions and broadcasts them to the output's shape. An op declared
``linear=True`` needs none: its jvp is the op applied to the tangents. For an elementwise op,
whose Jacobian is diagonal, ``@op(..., elementwise=True)`` makes its vjp rules its jvp rules
too (the tangent takes the gradient's place).

The registry is the declarative table of the API: the docs list it and the test suite is
generated from it (``tests/test_ops.py``, ``tests/test_ops_jvp.py``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy import ndarray

from autobp import graph
from autobp.backends import describe
from autobp.backends import numpy as numpy_backend
from autobp.forward import linear_jvp, propagate
from autobp.tensor import Tensor

__all__ = ["Hints", "OpDef", "REGISTRY", "op", "composite", "describe"]


@dataclass(frozen=True)
class Hints:
    """Plain-data test hints; ``autobp.testing.samples`` turns them into hypothesis strategies.

    Attributes:
        shapes: the sample kind that draws inputs and shape-dependent keywords
            (a key of ``autobp.testing.samples.SAMPLE_KINDS``), e.g. ``"unary"``, ``"broadcast"``,
            ``"reduction"``, ``"matmul"``.
        domain: ``(low, high)`` for every input, or one such pair per input.
        kwargs: keyword choices, each drawn independently, e.g. ``{"keepdims": (False, True)}``.
        avoid: values where the op is not differentiable (``abs`` at 0); samples keep ``gap`` away.
        distinct: elements (and, for binary ops, the two inputs) are kept ``gap`` apart, so that
            ties (``max``, ``maximum``) do not meet finite differences.
        gap: the distance kept from ``avoid`` points and between ``distinct`` elements.
        second_order: whether gradgradcheck applies (false for ops whose vjp is not smooth).
        fd_atol: absolute tolerance for finite-difference checks, for ops with large curvature.
    """

    shapes: str = "unary"
    domain: tuple[float, float] | tuple[tuple[float, float], ...] = (-2.0, 2.0)
    kwargs: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    avoid: tuple[float, ...] = ()
    distinct: bool = False
    gap: float = 1e-2
    second_order: bool = True
    fd_atol: float = 1e-5


VjpRule = Callable[..., Any]
JvpRule = Callable[..., Any]


class OpFunction(Protocol):
    """The public function of a registered op, e.g. ``ab.exp``: takes Tensors, returns a Tensor."""

    op: OpDef

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

    def defvjp(self, *rules: VjpRule, plain_arrays: bool = True) -> None: ...

    def defvjp_variadic(self, rule: Callable[..., Sequence[Any]], plain_arrays: bool = False) -> None: ...

    def defjvp(self, *rules: JvpRule | None, plain_arrays: bool = True) -> None: ...

    def defjvp_variadic(self, rule: Callable[..., Any], plain_arrays: bool = False) -> None: ...


class OpDef:
    """A registry entry: name, array forward, vjp rules, arity and test hints.

    ``forward`` computes the op on arrays; ``declared`` is the function as written in the op's
    file, whose signature and docstring the public function shows. They are one function,
    except for ops declared with ``ufunc=``, whose forward is the numpy ufunc itself.
    """

    __slots__ = (
        "name",
        "forward",
        "numpy_forward",
        "arity",
        "rules",
        "variadic_rule",
        "hints",
        "differentiable",
        "composite",
        "public",
        "plain_arrays",
        "jvp_rules",
        "jvp_variadic_rule",
        "jvp_plain_arrays",
        "linear",
        "elementwise",
        "declared",
        "explain",
        "_kwarg_names",
    )

    def __init__(
        self,
        name: str,
        forward: Callable[..., Any],
        arity: int | None,
        hints: Hints,
        differentiable: bool,
        composite: bool,
        declared: Callable[..., Any] | None = None,
        explain: Callable[..., None] | None = None,
        linear: bool = False,
        elementwise: bool = False,
    ) -> None:
        self.name = name
        self.forward = forward
        # numpy's fast forward (backends/numpy.py), for calls whose arrays are all numpy arrays.
        self.numpy_forward = numpy_backend.FORWARDS.get(name, forward)
        self.declared = declared or forward
        self.explain = explain  # raises a clearer error than the forward's, given the same inputs
        self.arity = arity  # number of leading tensor arguments; None: all positionals are tensors
        self.rules: tuple[VjpRule, ...] = ()
        self.variadic_rule: Callable[..., Sequence[Any]] | None = None
        self.hints = hints
        self.differentiable = differentiable
        self.composite = composite
        self.public: Callable[..., Any] = forward
        self.plain_arrays = False  # whether the rules also run on plain arrays (see defvjp)
        # Forward mode: one jvp rule per tensor input (None: that input's tangent contributes
        # nothing), or one rule for all inputs; ``linear``: the op applied to the tangents is the jvp.
        self.jvp_rules: tuple[JvpRule | None, ...] = ()
        self.jvp_variadic_rule: Callable[..., Any] | None = None
        self.jvp_plain_arrays = False
        self.linear = linear
        self.elementwise = elementwise  # a diagonal Jacobian: the vjp rules are the jvp rules
        params = list(inspect.signature(self.declared).parameters.values())
        positional = [p for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
        start = arity if arity is not None else len(positional)
        self._kwarg_names = tuple(p.name for p in positional[start:])

    def __repr__(self) -> str:
        return f"<op {self.name}>"

    def defvjp(self, *rules: VjpRule, plain_arrays: bool = False) -> None:
        """Set one vjp rule per tensor input: ``rule(grad, out, *inputs, **kwargs) -> Tensor``.

        With ``plain_arrays=True`` a first-order backward (no ``create_graph``) runs the rules on
        plain numpy arrays: autobp ops then act as numpy functions and operators are numpy's
        own, so the rules cost what hand-written numpy costs. Only rules that use nothing but
        autobp ops, operators and attributes numpy arrays share (``.shape``, ``.T``, ``.sum``)
        may opt in; the default runs them on Tensors, where every Tensor method works.

        For an op declared ``elementwise=True`` the rules are its jvp rules too.
        """
        if self.arity is None or len(rules) != self.arity:
            raise TypeError(f"{self.name}: defvjp needs {self.arity} rules, got {len(rules)}")
        self.rules = rules
        self.plain_arrays = plain_arrays
        if self.elementwise:
            self.defjvp(*rules, plain_arrays=plain_arrays)

    def defvjp_variadic(self, rule: Callable[..., Sequence[Any]], plain_arrays: bool = False) -> None:
        """Set one rule returning the gradients of all inputs, for ops with any number of inputs:
        ``rule(grad, out, *inputs, needs, **kwargs) -> [gradient or None per input]``.

        ``needs`` (keyword-only) holds one bool per input, True where the input needs a gradient:
        the rule returns None for the others without computing them, and never reads
        ``.requires_grad`` (on the fast path its inputs are plain arrays, which have none).
        Every caller (the engine's two paths, ``autobp.viz.explain``) passes it. A rule that
        declares no ``needs`` keyword (written before it existed) is called
        without one and must compute every input's gradient; the engine drops those not needed.
        A rule taking ``needs`` positionally, or an op with an argument of that name, is refused.
        ``plain_arrays`` as in ``defvjp``.
        """
        if "needs" in inspect.signature(self.declared).parameters:
            raise TypeError(
                f"{self.name}: the op has an argument named 'needs', the keyword the engine passes its "
                "variadic vjp rule (which inputs need a gradient); rename the op's argument"
            )
        try:
            parameter = inspect.signature(rule).parameters.get("needs")
        except (TypeError, ValueError):  # a callable whose signature Python cannot read: no `needs`
            parameter = None
        if parameter is None:
            declared = rule

            @functools.wraps(declared)
            def without_needs(grad: Any, out: Any, *inputs: Any, needs: Any = None, **kwargs: Any) -> Sequence[Any]:
                return declared(grad, out, *inputs, **kwargs)  # (the engine passes `needs` to every rule)

            rule = without_needs
        elif parameter.kind is not parameter.KEYWORD_ONLY:
            raise TypeError(
                f"{self.name}: defvjp_variadic's rule takes 'needs' as a {parameter.kind.description} "
                "parameter; declare it keyword-only, after the inputs: rule(grad, out, *inputs, needs, **kwargs)"
            )
        self.variadic_rule = rule
        self.plain_arrays = plain_arrays

    def defjvp(self, *rules: JvpRule | None, plain_arrays: bool = False) -> None:
        """Set one jvp rule per tensor input: ``rule(tangent, out, *inputs, **kwargs) -> Tensor``.

        A rule gives the part of the output's tangent that the input's ``tangent`` makes (the
        Jacobian of that input applied to it); forward mode sums the parts of the inputs that
        carry tangents and broadcasts the sum to the output's shape. ``None`` marks an input whose
        tangent contributes nothing (piecewise-constant dependence). Rules are written in autobp
        ops, so tangents are differentiable again; ``plain_arrays`` as in ``defvjp``.
        """
        if self.arity is None or len(rules) != self.arity:
            raise TypeError(f"{self.name}: defjvp needs {self.arity} rules, got {len(rules)}")
        self.jvp_rules = rules
        self.jvp_plain_arrays = plain_arrays

    def defjvp_variadic(self, rule: Callable[..., Any], plain_arrays: bool = False) -> None:
        """Set one jvp rule for ops with any number of inputs: ``rule(tangents, out, *inputs, **kwargs)``.

        ``tangents`` holds one entry per input, None where the input carries no tangent.
        """
        self.jvp_variadic_rule = rule
        self.jvp_plain_arrays = plain_arrays

    @property
    def has_jvp(self) -> bool:
        """Whether forward mode can go through this op (a jvp rule, or linear)."""
        return self.linear or bool(self.jvp_rules) or self.jvp_variadic_rule is not None

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Split a call into tensor arguments and keywords (extra positionals become keywords)."""
        if self.arity is None or len(args) <= self.arity:
            return args, kwargs
        extra = args[self.arity :]
        if len(extra) > len(self._kwarg_names):
            raise TypeError(f"{self.name}: takes at most {self.arity + len(self._kwarg_names)} positional arguments")
        named = dict(zip(self._kwarg_names, extra, strict=False))
        if kwargs:
            clash = named.keys() & kwargs.keys()
            if clash:
                raise TypeError(f"{self.name}: got multiple values for {sorted(clash)}")
            named.update(kwargs)
        return args[: self.arity], named


REGISTRY: dict[str, OpDef] = {}


# PyTorch's keyword -> numpy's, which autobp uses: named when a call fails on the former.
_TORCH_SPELLINGS = {"dim": "axis", "keepdim": "keepdims"}


def _raise_with_context(opdef: OpDef, error: Exception, inputs: Sequence[Any]) -> None:
    if opdef.explain is not None and isinstance(error, ValueError):  # the op's own account of bad shapes
        opdef.explain(*[value.data if isinstance(value, Tensor) else value for value in inputs])
    if str(error).startswith(f"{opdef.name}: "):  # the forward named itself already
        raise error
    shown = ", ".join(describe(x) for x in inputs)
    message = f"{opdef.name}: {error} (inputs: {shown})"
    if isinstance(error, TypeError):  # PyTorch's dim=/keepdim=: say numpy's spelling, which autobp uses
        spellings = _TORCH_SPELLINGS.items()
        wrong = [f"{numpy}= instead of {torch}=" for torch, numpy in spellings if f"'{torch}'" in message]
        if wrong:
            message += "; autobp uses numpy's keywords: write " + ", ".join(wrong)
    try:
        new = type(error)(message)
    except Exception:  # types with unusual constructors (numpy's UFuncTypeError): keep the builtin kind
        kinds = (TypeError, IndexError, ValueError, RuntimeError)
        new = next(kind for kind in kinds if isinstance(error, kind))(message)
    raise new from error


# Arguments that a numpy fast forward takes as numpy would: the arrays are checked by type.
_NUMPY_LIKE = (float, ndarray, int, np.generic, complex, list, tuple, type(None))  # (common first)


def _all_numpy(args: tuple[Any, ...]) -> bool:
    for value in args:  # noqa: SIM110  (a loop, not all() over a generator: one frame fewer per call)
        if type(value) is not ndarray and not isinstance(value, _NUMPY_LIKE):
            return False
    return True


def _make_public(opdef: OpDef) -> Callable[..., Tensor]:
    """The function users call: unwrap Tensors, run the forward, record a node when needed.

    This is the hottest path of the library, so the op's fields are bound as closure variables.
    """
    forward, arity, differentiable, mode = opdef.forward, opdef.arity, opdef.differentiable, graph._mode
    record, wrap, share_storage = graph.record, Tensor._wrap, graph.share_storage
    is_foreign_view = graph.is_foreign_view
    # numpy's fast forward (backends/numpy.py), taken when every array argument is a numpy array.
    fast = opdef.numpy_forward
    special = fast is not forward

    @functools.wraps(opdef.declared)
    def public(*args: Any, **kwargs: Any) -> Tensor:
        if len(args) != arity:
            args, kwargs = opdef.bind(args, kwargs)
        if mode.arrays:  # a first-order backward's rules: an op given no Tensor returns a plain array
            try:
                # (one or two arguments checked inline: a call per op costs W2 2%, benchmarks/instructions.py)
                if special and (
                    ((arity == 1 or (arity == 2 and isinstance(args[1], _NUMPY_LIKE))) and type(args[0]) is ndarray)
                    or _all_numpy(args)
                ):
                    return fast(*args, **kwargs)
                for value in args:
                    # (`type() is` first: a rule's arguments are arrays, and isinstance walks their MRO)
                    if type(value) is not ndarray and isinstance(value, Tensor):
                        break  # a Tensor (a rule built one): the op acts as anywhere, returning a Tensor
                else:
                    return forward(*args, **kwargs)
            except (ValueError, TypeError, IndexError) as error:
                _raise_with_context(opdef, error, args)
        arrays = []
        needs_grad = False
        numpy_only = True
        for value in args:
            if isinstance(value, Tensor):
                data = value.data
                arrays.append(data)
                if value.requires_grad:
                    needs_grad = True
                if type(data) is not ndarray:
                    numpy_only = False
            else:
                arrays.append(value)
                if numpy_only and not isinstance(value, _NUMPY_LIKE):
                    numpy_only = False
        try:
            result = (fast if numpy_only else forward)(*arrays, **kwargs)  # (fast is forward if none)
        except (ValueError, TypeError, IndexError) as error:
            _raise_with_context(opdef, error, args)
        except RuntimeError as error:  # torch reports shape errors as RuntimeError: name the op there too
            if numpy_only:
                raise
            _raise_with_context(opdef, error, args)
        if needs_grad and differentiable and mode.enabled:
            out = record(opdef, result, args, kwargs)  # (views of inputs: handled there, as below)
        else:
            for array in arrays:
                if array is result:  # an op returned its input (squeeze, sum_to): a view, to share its counter
                    result = graph.new_view(result)
                    break
            out = wrap(result)
            data = out.data
            if data.base is not None if type(data) is ndarray else not numpy_only and is_foreign_view(data):
                share_storage(out, args)  # a view of an input's memory: one storage, one version counter
        if mode.tape is not None:  # a taped function is being traced (autobp.tape); before the
            mode.tape.record(opdef, args, kwargs, out)  # tangent's ops, which read out's slot
        if mode.forward is not None:  # forward mode is on (autobp.forward): carry the tangents
            propagate(opdef, args, kwargs, out)
        return out

    return public


def op(
    name: str,
    *,
    arity: int | None = 1,
    hints: Hints | None = None,
    differentiable: bool = True,
    ufunc: np.ufunc | None = None,
    explain: Callable[..., None] | None = None,
    linear: bool = False,
    elementwise: bool = False,
) -> Callable[[Callable[..., Any]], OpFunction]:
    """Register an array function as an autobp op and return its public Tensor function.

    Args:
        name: the registry name, also the name ``grad_fn`` shows.
        arity: how many leading positional arguments are tensors (``None``: all of them).
        hints: test hints (plain data) for the generated test suite.
        differentiable: False for ops with integer or boolean results (comparisons, argmax).
        ufunc: a numpy ufunc that is the whole forward (``np.add`` for ``add``); the decorated
            function then only declares the signature and the docstring. Calls then skip a
            Python frame, which elementwise chains and taped replays feel.
        explain: called with the input arrays when the forward raised; it raises a clearer
            error than the forward's (numpy's messages name neither the op nor the fix).
        linear: the op is linear in its tensor inputs taken together (``reshape``, ``sum``,
            ``concatenate``): its jvp is the op applied to the tangents (zeros for inputs
            without one), so it needs no jvp rule.
        elementwise: the op is elementwise (each input's Jacobian is diagonal once inputs
            broadcast): its vjp rules, given a tangent in the gradient's place, are its jvp
            rules, which ``defvjp`` then sets too.
    """

    def register(declared: Callable[..., Any]) -> OpFunction:
        if name in REGISTRY:
            raise ValueError(f"op {name!r} is registered twice")
        if ufunc is not None and ufunc.nin != (arity or 0):
            raise TypeError(f"{name}: ufunc {ufunc.__name__} takes {ufunc.nin} inputs, but arity is {arity}")
        forward = declared if ufunc is None else ufunc
        opdef = OpDef(
            name,
            forward,
            arity,
            hints or Hints(),
            differentiable,
            composite=False,
            declared=declared,
            explain=explain,
            linear=linear,
            elementwise=elementwise,
        )

        public = _make_public(opdef)
        public.op = opdef  # type: ignore[attr-defined]
        public.defvjp = opdef.defvjp  # type: ignore[attr-defined]
        public.defvjp_variadic = opdef.defvjp_variadic  # type: ignore[attr-defined]
        public.defjvp = opdef.defjvp  # type: ignore[attr-defined]
        public.defjvp_variadic = opdef.defjvp_variadic  # type: ignore[attr-defined]
        opdef.public = public
        if linear:
            linear_jvp(opdef)
        REGISTRY[name] = opdef
        return public  # type: ignore[return-value]

    return register


def composite(name: str, *, hints: Hints | None = None) -> Callable[[Callable[..., Any]], Any]:
    """Register a public function built from other ops: it needs no vjp, but is tested like one."""

    def register(function: Callable[..., Any]) -> Any:
        if name in REGISTRY:
            raise ValueError(f"op {name!r} is registered twice")
        opdef = OpDef(name, function, None, hints or Hints(), True, composite=True)
        function.op = opdef  # type: ignore[attr-defined]
        REGISTRY[name] = opdef
        return function

    return register
