"""All ops, by family. Each public function here is a registry entry (see ``registry.py``).

Importing this package gives Tensor its operators and methods (``autobp.tensor.install_ops``).
"""

import sys

from autobp.ops.activations import relu, sigmoid, softplus, tanh
from autobp.ops.elementwise import (
    abs,
    add,
    astype,
    clip,
    copy,
    cos,
    div,
    equal,
    exp,
    expm1,
    greater,
    greater_equal,
    less,
    less_equal,
    log,
    log1p,
    logical_and,
    logical_not,
    logical_or,
    maximum,
    minimum,
    mul,
    neg,
    not_equal,
    pow,
    sign,
    sin,
    sqrt,
    square,
    sub,
    tan,
    where,
)
from autobp.ops.indexing import getitem, scatter_add
from autobp.ops.linalg import dot, einsum, matmul, outer
from autobp.ops.nn import conv2d, conv2d_weight, conv_transpose2d, max_pool2d
from autobp.ops.reduction import logsumexp, mean, prod, std, sum, var
from autobp.ops.reduction_extremes import argmax, argmin, max, min
from autobp.ops.registry import REGISTRY, Hints, OpDef, composite, op  # noqa: F401  (for writers of new ops)
from autobp.ops.shape import (
    broadcast_to,
    concatenate,
    expand_dims,
    flatten,
    pad,
    reshape,
    split,
    squeeze,
    stack,
    sum_to,
    swapaxes,
    transpose,
)
from autobp.tensor import install_ops

# numpy's spellings of the arithmetic ops
subtract, multiply, divide, true_divide, power, negative = sub, mul, div, div, pow, neg

# Ops that exist only to serve other ops' vjps, faster than the ops they stand for: registered and
# tested like every op (tests/test_ops.py), but not public (not here, nor in ``ab.`` or docs/api).
# They live in their family's module, e.g. ``autobp.ops.linalg.matmul_nt``.
INTERNAL = frozenset(
    {"matmul_nt", "matmul_tn", "sigmoid_backward", "tanh_backward", "max_pool2d_gather", "max_pool2d_scatter"}
)

__all__ = [  # the public op functions; tests/test_ops.py checks this list against the registry
    "abs",
    "add",
    "argmax",
    "argmin",
    "astype",
    "broadcast_to",
    "clip",
    "concatenate",
    "conv2d",
    "conv2d_weight",
    "conv_transpose2d",
    "copy",
    "cos",
    "div",
    "divide",
    "dot",
    "einsum",
    "equal",
    "exp",
    "expand_dims",
    "expm1",
    "flatten",
    "getitem",
    "greater",
    "greater_equal",
    "less",
    "less_equal",
    "log",
    "log1p",
    "logical_and",
    "logical_not",
    "logical_or",
    "logsumexp",
    "matmul",
    "max",
    "max_pool2d",
    "maximum",
    "mean",
    "min",
    "minimum",
    "mul",
    "multiply",
    "neg",
    "negative",
    "not_equal",
    "outer",
    "pad",
    "pow",
    "power",
    "prod",
    "relu",
    "reshape",
    "scatter_add",
    "sigmoid",
    "sign",
    "sin",
    "softplus",
    "split",
    "sqrt",
    "square",
    "squeeze",
    "stack",
    "std",
    "sub",
    "subtract",
    "sum",
    "sum_to",
    "swapaxes",
    "tan",
    "tanh",
    "transpose",
    "true_divide",
    "var",
    "where",
]

install_ops(sys.modules[__name__])  # every op is registered: Tensor's methods can be the ops
