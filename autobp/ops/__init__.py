"""All ops, by family. Each public function here is a registry entry (see ``registry.py``)."""

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
    relu,
    sigmoid,
    sign,
    sin,
    softplus,
    sqrt,
    square,
    sub,
    tan,
    tanh,
    where,
)
from autobp.ops.indexing import getitem, scatter_add
from autobp.ops.linalg import dot, einsum, matmul, outer
from autobp.ops.nn import conv2d, conv2d_weight, conv_transpose2d, max_pool2d, max_pool2d_gather, max_pool2d_scatter
from autobp.ops.reduction import argmax, argmin, logsumexp, max, mean, min, prod, std, sum, var
from autobp.ops.registry import REGISTRY, Hints, OpDef, composite, op
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

# numpy's spellings of the arithmetic ops
subtract, multiply, divide, true_divide, power, negative = sub, mul, div, div, pow, neg

__all__ = [
    name
    for name, value in list(globals().items())
    if not name.startswith("_") and hasattr(value, "op")  # the public op functions only
]
