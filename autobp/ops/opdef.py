"""A registry entry's data: ``OpDef`` (an op's forward, vjp and jvp rules, arity) and ``Hints``.

``OpDef`` is what ``autobp.ops.registry.REGISTRY`` maps names to; ``@op`` (in ``registry.py``)
builds one and the public function (``public_function.py``) reads its fields. ``Hints`` is plain
data that the generated test suite turns into hypothesis strategies.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from autobp.backends import numpy as numpy_backend

__all__ = ["Hints", "OpDef", "OpFunction", "VjpRule", "JvpRule"]


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

    def defvjp(self, *rules: VjpRule, plain_arrays: bool = False) -> None: ...

    def defvjp_variadic(self, rule: Callable[..., Sequence[Any]], plain_arrays: bool = False) -> None: ...

    def defjvp(self, *rules: JvpRule | None, plain_arrays: bool = False) -> None: ...

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
        "jvp_explicit",
        "linear",
        "elementwise",
        "integer_results",
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
        integer_results: bool = False,
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
        # Whether the jvp rules were set by defjvp or defjvp_variadic, not taken from an
        # elementwise op's vjp rules: a later defvjp then leaves them as they are.
        self.jvp_explicit = False
        self.linear = linear
        self.elementwise = elementwise  # a diagonal Jacobian: the vjp rules are the jvp rules
        # Whether the result may be integer or boolean for floating inputs (astype, and any op
        # registered outside autobp, whose forward is the user's): recording such a result then
        # gives it on no graph. autobp's other ops give floats (tests/test_ops.py holds them to it).
        self.integer_results = integer_results or not self.declared.__module__.startswith("autobp.")
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

        For an op declared ``elementwise=True`` the rules are its jvp rules too, unless jvp rules
        were given with ``defjvp`` or ``defjvp_variadic`` (before or after: the order of the calls
        does not matter).
        """
        if self.arity is None or len(rules) != self.arity:
            raise TypeError(f"{self.name}: defvjp needs {self.arity} rules, got {len(rules)}")
        self.rules = rules
        self.plain_arrays = plain_arrays
        # (an explicit jvp rule is never replaced by derived ones: a div-like op's variadic
        # (dx - out dy) / y, set first, was silently replaced, and its tangent at y = 0 became nan)
        if self.elementwise and not self.jvp_explicit:
            self.jvp_rules = rules
            self.jvp_variadic_rule = None
            self.jvp_plain_arrays = plain_arrays

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
        self.jvp_variadic_rule = None  # (one kind of jvp rule at a time: the last one set)
        self.jvp_plain_arrays = plain_arrays
        self.jvp_explicit = True

    def defjvp_variadic(self, rule: Callable[..., Any], plain_arrays: bool = False) -> None:
        """Set one jvp rule for all inputs: ``rule(tangents, out, *inputs, **kwargs)``.

        ``tangents`` holds one entry per input, None where the input carries no tangent. For ops
        with any number of inputs, and for an op whose tangent is better computed from all its
        inputs' tangents at once than as a sum of parts (``div``: ``(dx - out dy) / y``, where the
        parts ``dx / y`` and ``out dy / y`` can be inf - inf). It replaces per-input rules, also
        those ``elementwise=True`` takes from the vjp rules, whether ``defvjp`` came before or after.
        """
        self.jvp_variadic_rule = rule
        self.jvp_rules = ()
        self.jvp_plain_arrays = plain_arrays
        self.jvp_explicit = True

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
