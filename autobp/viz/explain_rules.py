"""The vjp rules of the registry written as formulas, for ``autobp.viz.explain``: one entry per op name.

Each entry restates, per tensor input, the rule that ``autobp/ops`` registers with ``defvjp``, in
the rule's own names: ``grad`` is the gradient arriving at the op's output (dC/d out), ``out`` the
output the forward saved, ``x`` and ``y`` the inputs. ``reads`` names the saved values the rule
reads. The explainer computes nothing from these strings: the numbers come from the registry's
own rules, run on the recorded graph. Ops missing here are shown with a generic formula.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RuleFormula", "FORMULAS", "formula_for"]


@dataclass(frozen=True)
class RuleFormula:
    """The vjp of one input: LaTeX for the page, plain text for the terminal, the saved values it reads."""

    latex: str
    text: str
    reads: tuple[str, ...] = ()


_SUMMED = "then summed to the input's shape where broadcast"


def _same(latex: str, text: str, *reads: str) -> RuleFormula:
    return RuleFormula(latex, text, reads)


# op name -> one RuleFormula per tensor input, in the order of the op's arguments.
FORMULAS: dict[str, tuple[RuleFormula, ...]] = {
    "add": (
        _same(r"\bar{x} = \mathrm{grad}", f"dx = grad  ({_SUMMED})"),
        _same(r"\bar{y} = \mathrm{grad}", f"dy = grad  ({_SUMMED})"),
    ),
    "sub": (
        _same(r"\bar{x} = \mathrm{grad}", f"dx = grad  ({_SUMMED})"),
        _same(r"\bar{y} = -\,\mathrm{grad}", f"dy = -grad  ({_SUMMED})"),
    ),
    "mul": (
        _same(r"\bar{x} = \mathrm{grad} \odot y", "dx = grad * y", "y"),
        _same(r"\bar{y} = \mathrm{grad} \odot x", "dy = grad * x", "x"),
    ),
    "div": (
        _same(r"\bar{x} = \mathrm{grad} \,/\, y", "dx = grad / y", "y"),
        _same(r"\bar{y} = -\,\mathrm{grad} \odot \mathrm{out} \,/\, y", "dy = -grad * out / y", "out", "y"),
    ),
    "pow": (
        _same(r"\bar{x} = \mathrm{grad} \odot y\, x^{y - 1}", "dx = grad * y * x^(y - 1)", "x", "y"),
        _same(r"\bar{y} = \mathrm{grad} \odot \mathrm{out} \odot \log x", "dy = grad * out * log(x)", "out", "x"),
    ),
    "neg": (_same(r"\bar{x} = -\,\mathrm{grad}", "dx = -grad"),),
    "square": (_same(r"\bar{x} = 2\,\mathrm{grad} \odot x", "dx = 2 * grad * x", "x"),),
    "exp": (_same(r"\bar{x} = \mathrm{grad} \odot \mathrm{out}", "dx = grad * out", "out"),),
    "log": (_same(r"\bar{x} = \mathrm{grad} \,/\, x", "dx = grad / x", "x"),),
    "sqrt": (_same(r"\bar{x} = \mathrm{grad} \,/\, (2\,\mathrm{out})", "dx = grad / (2 * out)", "out"),),
    "sigmoid": (
        _same(
            r"\bar{x} = \mathrm{grad} \odot \mathrm{out} \odot (1 - \mathrm{out})",
            "dx = grad * out * (1 - out)   (sigma'(x) = out (1 - out))",
            "out",
        ),
    ),
    "tanh": (_same(r"\bar{x} = \mathrm{grad} \odot (1 - \mathrm{out}^2)", "dx = grad * (1 - out^2)", "out"),),
    "relu": (_same(r"\bar{x} = \mathrm{grad} \odot [x > 0]", "dx = grad * (x > 0)   (at a nan x: grad)", "x"),),
    "sum": (
        _same(
            r"\bar{x} = \mathrm{grad}\ \text{copied to every element summed (the shape of } x)",
            "dx = grad copied to every element that was summed (x's shape)",
            "x.shape",
        ),
    ),
    "mean": (
        _same(
            r"\bar{x} = \mathrm{grad} \,/\, n\ \text{copied to the } n \text{ elements averaged}",
            "dx = grad / n copied to the n elements averaged (x's shape)",
            "x.shape",
        ),
    ),
    "matmul": (
        _same(r"\bar{x} = \mathrm{grad}\; y^{\mathsf T}", "dx = grad @ y.T", "y"),
        _same(r"\bar{y} = x^{\mathsf T}\, \mathrm{grad}", "dy = x.T @ grad", "x"),
    ),
    "transpose": (_same(r"\bar{x} = \mathrm{grad}^{\mathsf T}", "dx = grad transposed back"),),
    "reshape": (
        _same(r"\bar{x} = \mathrm{grad}\ \text{reshaped to } x", "dx = grad reshaped to x's shape", "x.shape"),
    ),
}


def formula_for(op: str, index: int, arity: int) -> RuleFormula:
    """The formula of input ``index``'s vjp for ``op``; a generic one for ops not in ``FORMULAS``.

    >>> formula_for("mul", 1, 2).text
    'dy = grad * x'
    >>> formula_for("erf_like", 0, 1).reads
    ('out', 'inputs')
    """
    rules = FORMULAS.get(op)
    if rules is not None and index < len(rules) and len(rules) == arity:
        return rules[index]
    return RuleFormula(
        rf"\bar{{x}}_{{{index}}} = \mathrm{{vjp}}_{{{index}}}(\mathrm{{grad}}, \mathrm{{out}}, \dots)",
        f"d(input {index}) = the registry's vjp rule {index} of '{op}' (grad, out, inputs)",
        ("out", "inputs"),
    )
