"""Elementwise ops, by family: ``arithmetic`` (``+ - * / **``, copies, dtypes), ``elementary``
(exp, log, roots, sign, abs, trigonometry) and ``selection`` (clip, maximum, minimum, where,
comparisons, logic).

The registry lists the families in that order, the order of the imports below, which the op
tables and the generated tests follow. ``autobp.ops`` re-exports every op.
"""

from autobp.backends.numpy import quiet as quiet  # (activations and reductions import it from here)
from autobp.ops.elementwise.arithmetic import add, astype, copy, div, mul, neg, pow, sub
from autobp.ops.elementwise.elementary import abs, cos, exp, expm1, log, log1p, sign, sin, sqrt, square, tan
from autobp.ops.elementwise.selection import (
    clip,
    equal,
    greater,
    greater_equal,
    less,
    less_equal,
    logical_and,
    logical_not,
    logical_or,
    maximum,
    minimum,
    not_equal,
    where,
)

__all__ = [
    "abs",
    "add",
    "astype",
    "clip",
    "copy",
    "cos",
    "div",
    "equal",
    "exp",
    "expm1",
    "greater",
    "greater_equal",
    "less",
    "less_equal",
    "log",
    "log1p",
    "logical_and",
    "logical_not",
    "logical_or",
    "maximum",
    "minimum",
    "mul",
    "neg",
    "not_equal",
    "pow",
    "sign",
    "sin",
    "sqrt",
    "square",
    "sub",
    "tan",
    "where",
]
