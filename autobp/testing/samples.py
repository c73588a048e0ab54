"""Sample kinds: how to draw valid inputs for each op of the registry, from its plain-data hints.

A sample kind is a function ``(opdef) -> strategy of Sample``, registered under the name an op's
``Hints.shapes`` gives. The generated test suite draws from it for every op; a new op with an
existing kind needs no test code at all.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from autobp.ops.registry import OpDef
from autobp.testing import samples_nn  # noqa: F401  (registers the convolution and pooling kinds)
from autobp.testing.sample_parts import SAMPLE_KINDS, Sample, draw_array, draw_kwargs, sample_kind
from autobp.testing.strategies import (
    advanced_indices,
    arrays,
    basic_indices,
    broadcastable_shapes,
    shapes,
    valid_axes,
)

__all__ = ["Sample", "SAMPLE_KINDS", "draw_array", "sample_kind", "samples_for"]


def samples_for(opdef: OpDef) -> Any:
    """The strategy of samples for a registered op, from its hints."""
    if opdef.hints.shapes not in SAMPLE_KINDS:
        raise KeyError(f"{opdef.name}: no sample kind {opdef.hints.shapes!r}; add one to autobp.testing.samples")
    return SAMPLE_KINDS[opdef.hints.shapes](opdef)


# -- kinds ---------------------------------------------------------------------------------------------
@sample_kind("unary")
@st.composite
def unary(draw: Any, opdef: OpDef) -> Sample:
    """One input of any small shape (0-d included)."""
    shape = draw(shapes())
    return Sample([draw_array(draw, opdef.hints, 0, shape)], draw_kwargs(draw, opdef.hints))


@sample_kind("broadcast")
@st.composite
def broadcast(draw: Any, opdef: OpDef) -> Sample:
    """Inputs whose shapes broadcast together (as many as the op's arity)."""
    arity = opdef.arity or 2
    in_shapes = draw(broadcastable_shapes(num_shapes=arity))
    values = [draw_array(draw, opdef.hints, i, s) for i, s in enumerate(in_shapes)]
    if opdef.hints.distinct and arity == 2:
        # Ties between the two inputs (maximum, minimum) meet finite differences: keep them apart.
        gaps = np.abs(np.subtract(values[0], values[1]))
        assume(bool(np.all(gaps > opdef.hints.gap)))
    return Sample(values, draw_kwargs(draw, opdef.hints))


@sample_kind("where")
@st.composite
def where_sample(draw: Any, opdef: OpDef) -> Sample:
    """A boolean condition and two values, all mutually broadcastable."""
    cond_shape, x_shape, y_shape = draw(broadcastable_shapes(num_shapes=3))
    condition = draw(arrays(cond_shape, np.bool_, st.booleans()))
    x = draw_array(draw, opdef.hints, 1, x_shape)  # each from its own domain (0 is the condition's)
    y = draw_array(draw, opdef.hints, 2, y_shape)
    return Sample([condition, x, y])


@sample_kind("reduction")
@st.composite
def reduction(draw: Any, opdef: OpDef) -> Sample:
    """One input and an ``axis`` valid for it (None, int or tuple), plus the op's keywords."""
    shape = draw(shapes())
    x = draw_array(draw, opdef.hints, 0, shape)
    kwargs = {"axis": draw(valid_axes(len(shape))), **draw_kwargs(draw, opdef.hints)}
    return Sample([x], kwargs)


@sample_kind("reshape")
@st.composite
def reshape_sample(draw: Any, opdef: OpDef) -> Sample:
    """An input and a new shape of the same size (sometimes with a -1)."""
    shape = draw(shapes())
    size = int(np.prod(shape))
    factors = [d for d in range(1, size + 1) if size % d == 0]
    first = draw(st.sampled_from(factors))
    new_shape: tuple[int, ...] = (first, size // first)
    if draw(st.booleans()):
        new_shape = (-1, new_shape[1])
    return Sample([draw_array(draw, opdef.hints, 0, shape)], {"shape": new_shape})


@sample_kind("transpose")
@st.composite
def transpose_sample(draw: Any, opdef: OpDef) -> Sample:
    """An input and a permutation of its axes (or None)."""
    shape = draw(shapes())
    axes = draw(st.one_of(st.none(), st.permutations(range(len(shape))).map(tuple)))
    return Sample([draw_array(draw, opdef.hints, 0, shape)], {"axes": axes})


@sample_kind("swapaxes")
@st.composite
def swapaxes_sample(draw: Any, opdef: OpDef) -> Sample:
    """An input of at least one dimension and two of its axes."""
    shape = draw(shapes(min_dims=1))
    axis = st.integers(-len(shape), len(shape) - 1)
    return Sample([draw_array(draw, opdef.hints, 0, shape)], {"axis1": draw(axis), "axis2": draw(axis)})


@sample_kind("broadcast_to")
@st.composite
def broadcast_to_sample(draw: Any, opdef: OpDef) -> Sample:
    """An input and a larger shape it broadcasts to."""
    small, large = draw(broadcastable_shapes(num_shapes=2))
    target = np.broadcast_shapes(small, large)
    return Sample([draw_array(draw, opdef.hints, 0, small)], {"shape": target})


@sample_kind("sum_to")
@st.composite
def sum_to_sample(draw: Any, opdef: OpDef) -> Sample:
    """An input and a smaller shape that broadcasts to the input's shape."""
    small, large = draw(broadcastable_shapes(num_shapes=2))
    source = np.broadcast_shapes(small, large)
    return Sample([draw_array(draw, opdef.hints, 0, source)], {"shape": small})


@sample_kind("matmul")
@st.composite
def matmul_sample(draw: Any, opdef: OpDef) -> Sample:
    """Aligned operands: 1-D, 2-D, or batched with broadcasting batch axes."""
    m, k, n = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    batch_x, batch_y = draw(broadcastable_shapes(num_shapes=2, max_dims=2))
    x_shape = draw(st.sampled_from([(k,), (m, k), (*batch_x, m, k)]))
    y_shape = draw(st.sampled_from([(k,), (k, n), (*batch_y, k, n)]))
    return Sample([draw_array(draw, opdef.hints, 0, x_shape), draw_array(draw, opdef.hints, 1, y_shape)])


@sample_kind("matmul_transposed")
@st.composite
def matmul_transposed_sample(draw: Any, opdef: OpDef) -> Sample:
    """Operands of ``matmul_nt`` (``(m, k)``, ``(n, k)``) or ``matmul_tn`` (``(k, m)``, ``(k, n)``),
    2-D or batched with broadcasting batch axes."""
    m, k, n = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    batch_x, batch_y = (
        draw(st.sampled_from([((), ())]))
        if draw(st.booleans())
        else draw(broadcastable_shapes(num_shapes=2, max_dims=2))
    )
    x_core, y_core = ((m, k), (n, k)) if opdef.name == "matmul_nt" else ((k, m), (k, n))
    x = draw_array(draw, opdef.hints, 0, (*batch_x, *x_core))
    return Sample([x, draw_array(draw, opdef.hints, 1, (*batch_y, *y_core))])


# -- shape and indexing kinds ------------------------------------------------------------------------
@sample_kind("expand_dims")
@st.composite
def expand_dims_sample(draw: Any, opdef: OpDef) -> Sample:
    """An input and one or two new axis positions (an int or a tuple, negative ones included)."""
    shape = draw(shapes())
    count = draw(st.integers(1, 2))
    ndim = len(shape) + count
    positions = draw(st.lists(st.integers(0, ndim - 1), min_size=count, max_size=count, unique=True))
    axes = tuple(p - ndim if draw(st.booleans()) else p for p in positions)
    axis = axes[0] if count == 1 and draw(st.booleans()) else axes
    return Sample([draw_array(draw, opdef.hints, 0, shape)], {"axis": axis})


@sample_kind("squeeze")
@st.composite
def squeeze_sample(draw: Any, opdef: OpDef) -> Sample:
    """An input with some axes of size 1 and ``axis``: None, or some of those axes (int or tuple)."""
    shape = list(draw(shapes(max_dims=2)))
    for _ in range(draw(st.integers(0, 2))):
        shape.insert(draw(st.integers(0, len(shape))), 1)
    ones = [i for i, n in enumerate(shape) if n == 1]
    chosen = draw(st.lists(st.sampled_from(ones), unique=True)) if ones else []
    axis: Any = None if not chosen or draw(st.booleans()) else tuple(a - len(shape) for a in chosen)
    if axis is not None and len(axis) == 1 and draw(st.booleans()):
        axis = axis[0]
    return Sample([draw_array(draw, opdef.hints, 0, tuple(shape))], {"axis": axis})


@sample_kind("concatenate")
@st.composite
def concatenate_sample(draw: Any, opdef: OpDef) -> Sample:
    """One to three inputs that agree except along ``axis`` (or any shapes for ``axis=None``)."""
    count = draw(st.integers(1, 3))
    if draw(st.booleans()):
        in_shapes = [draw(shapes()) for _ in range(count)]
        return Sample([draw_array(draw, opdef.hints, i, s) for i, s in enumerate(in_shapes)], {"axis": None})
    shape = draw(shapes(min_dims=1))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    at = axis % len(shape)
    in_shapes = [(*shape[:at], draw(st.integers(0, 3)), *shape[at + 1 :]) for _ in range(count)]
    return Sample([draw_array(draw, opdef.hints, i, s) for i, s in enumerate(in_shapes)], {"axis": axis})


@sample_kind("stack")
@st.composite
def stack_sample(draw: Any, opdef: OpDef) -> Sample:
    """One to three inputs of one shape and a new axis position."""
    shape = draw(shapes())
    axis = draw(st.integers(-len(shape) - 1, len(shape)))
    values = [draw_array(draw, opdef.hints, i, shape) for i in range(draw(st.integers(1, 3)))]
    return Sample(values, {"axis": axis})


@sample_kind("split")
@st.composite
def split_sample(draw: Any, opdef: OpDef) -> Sample:
    """An input, an axis, and a number of equal sections or sorted split points (empty pieces too)."""
    shape = draw(shapes(min_dims=1))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    side = shape[axis]
    if draw(st.booleans()):
        where: Any = draw(st.sampled_from([d for d in range(1, side + 1) if side % d == 0]))
    else:
        where = sorted(draw(st.lists(st.integers(0, side), max_size=3)))
    return Sample([draw_array(draw, opdef.hints, 0, shape)], {"indices_or_sections": where, "axis": axis})


@sample_kind("pad")
@st.composite
def pad_sample(draw: Any, opdef: OpDef) -> Sample:
    """An input, widths (an int, one pair, or a pair per axis) and a mode with its constant."""
    shape = draw(shapes())
    width = st.integers(0, 2)
    pair = st.tuples(width, width)
    per_axis = st.tuples(*[pair] * len(shape)) if shape else pair
    pad_width = draw(st.one_of(width, pair, per_axis))
    mode = draw(st.sampled_from(["constant", "constant", "edge", "reflect", "symmetric", "wrap"]))
    kwargs: dict[str, Any] = {"pad_width": pad_width, "mode": mode}
    if mode == "constant":
        kwargs["constant_values"] = draw(st.sampled_from([0, 1.5]))
    return Sample([draw_array(draw, opdef.hints, 0, shape)], kwargs)


@st.composite
def _index_for(draw: Any, shape: tuple[int, ...]) -> Any:
    return draw(st.one_of(basic_indices(shape), advanced_indices(shape)))


@sample_kind("getitem")
@st.composite
def getitem_sample(draw: Any, opdef: OpDef) -> Sample:
    """An input and an index: basic (ints, slices with negative steps, None, ...) or advanced
    (integer arrays with repeats, boolean masks), mixed."""
    shape = draw(shapes())
    return Sample([draw_array(draw, opdef.hints, 0, shape)], {"index": draw(_index_for(shape))})


@sample_kind("scatter_add")
@st.composite
def scatter_add_sample(draw: Any, opdef: OpDef) -> Sample:
    """Values shaped like ``zeros(shape)[index]``, an index (as for getitem) and the target shape."""
    shape = draw(shapes())
    index = draw(_index_for(shape))
    selected = np.zeros(shape)[index].shape
    return Sample([draw_array(draw, opdef.hints, 0, selected)], {"index": index, "shape": shape})


@sample_kind("variance")
@st.composite
def variance_sample(draw: Any, opdef: OpDef) -> Sample:
    """As "reduction", with each output reducing more than ``ddof`` elements (else numpy warns)."""
    shape = draw(shapes())
    kwargs = {"axis": draw(valid_axes(len(shape))), **draw_kwargs(draw, opdef.hints)}
    axes = range(len(shape)) if kwargs["axis"] is None else np.atleast_1d(kwargs["axis"])
    assume(int(np.prod([shape[a] for a in axes])) > kwargs.get("ddof", 0))
    return Sample([draw_array(draw, opdef.hints, 0, shape)], kwargs)


@sample_kind("argreduction")
@st.composite
def argreduction_sample(draw: Any, opdef: OpDef) -> Sample:
    """One input and an int or None ``axis`` (argmax, argmin), plus the op's keywords."""
    shape = draw(shapes())
    axis = draw(valid_axes(len(shape), allow_tuple=False)) if shape else None
    return Sample([draw_array(draw, opdef.hints, 0, shape)], {"axis": axis, **draw_kwargs(draw, opdef.hints)})


# Subscripts for einsum: contractions, transposes, broadcasting ``...``, diagonals and traces.
EINSUM_SUBSCRIPTS = (
    "ij,jk->ik", "ij,jk", "i,i->", "i,j->ij", "ij->ji", "ij->", "ijk->kj", "ii->i", "ii", "iij->j",
    "bij,bjk->bik", "ij,ij->ij", "ij,jk,kl->il", "i,ij,j", "...ij,...jk->...ik", "i...->...", ",ij->ij",
)  # fmt: skip


@sample_kind("einsum")
@st.composite
def einsum_sample(draw: Any, opdef: OpDef) -> Sample:
    """Subscripts from ``EINSUM_SUBSCRIPTS``, each label a drawn size, each ``...`` drawn axes."""
    subscripts = draw(st.sampled_from(EINSUM_SUBSCRIPTS))
    sizes = {label: draw(st.integers(1, 3)) for label in sorted(set(subscripts) - set(".,->"))}
    batch = draw(shapes(max_dims=2, max_side=3))
    operands: list[np.ndarray] = []
    for term in subscripts.partition("->")[0].split(","):
        shape = tuple(sizes[c] for c in term.replace("...", ""))
        if "..." in term:
            shape = batch[draw(st.integers(0, len(batch))) :] + shape  # fewer leading axes broadcast
        operands.append(draw_array(draw, opdef.hints, len(operands), shape))
    return Sample(operands, {"subscripts": subscripts})


@sample_kind("dot")
@st.composite
def dot_sample(draw: Any, opdef: OpDef) -> Sample:
    """Aligned operands for numpy's ``dot``: 0-d, 1-D, 2-D and N-D on either side."""
    b, m, k, n = (draw(st.integers(1, 3)) for _ in range(4))
    pairs = [
        ((), (m, k)), ((k,), ()), ((k,), (k,)), ((m, k), (k,)), ((k,), (k, n)), ((m, k), (k, n)),
        ((b, m, k), (k,)), ((b, m, k), (k, n)), ((k,), (b, k, n)), ((m, k), (b, k, n)), ((b, m, k), (n, k, m)),
    ]  # fmt: skip
    x_shape, y_shape = draw(st.sampled_from(pairs))
    return Sample([draw_array(draw, opdef.hints, 0, x_shape), draw_array(draw, opdef.hints, 1, y_shape)])


@sample_kind("outer")
@st.composite
def outer_sample(draw: Any, opdef: OpDef) -> Sample:
    """Two inputs of any shapes: ``outer`` flattens them."""
    return Sample([draw_array(draw, opdef.hints, i, draw(shapes(max_dims=2))) for i in range(2)])
