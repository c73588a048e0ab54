"""Sample kinds for the convolution and pooling ops (``autobp/ops/nn.py``): valid geometries
of input size, kernel, stride and padding, drawn so that every op has an output."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from autobp.ops.registry import OpDef
from autobp.testing.sample_parts import Sample, draw_array, sample_kind


def _pairs(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


@st.composite
def _conv_geometry(draw: Any) -> dict[str, Any]:
    """N, C, O, H, W, kernel, stride, padding such that the convolution has an output."""
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, padding = draw(st.sampled_from([1, 2, (2, 1)])), draw(st.sampled_from([0, 1, (0, 1)]))
    (sh, sw), (ph, pw) = _pairs(stride), _pairs(padding)
    h = draw(st.integers(max(1, kh - 2 * ph), 6))
    w = draw(st.integers(max(1, kw - 2 * pw), 6))
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    return dict(
        n=n, c=c, o=o, h=h, w=w, kh=kh, kw=kw, stride=stride, padding=padding, ho=ho, wo=wo, sh=sh, sw=sw, ph=ph, pw=pw
    )


@sample_kind("conv2d")
@st.composite
def conv2d_sample(draw: Any, opdef: OpDef) -> Sample:
    """x (N, C, H, W), w (O, C, kh, kw); stride in {1, 2, (2, 1)}, padding in {0, 1, (0, 1)}."""
    g = draw(_conv_geometry())
    x = draw_array(draw, opdef.hints, 0, (g["n"], g["c"], g["h"], g["w"]))
    w = draw_array(draw, opdef.hints, 1, (g["o"], g["c"], g["kh"], g["kw"]))
    return Sample([x, w], {"stride": g["stride"], "padding": g["padding"]})


@sample_kind("conv_transpose2d")
@st.composite
def conv_transpose2d_sample(draw: Any, opdef: OpDef) -> Sample:
    """x (N, O, Ho, Wo), w (O, C, kh, kw); output_padding < stride restores any H of conv2d."""
    g = draw(_conv_geometry())
    extra = ((g["h"] + 2 * g["ph"] - g["kh"]) % g["sh"], (g["w"] + 2 * g["pw"] - g["kw"]) % g["sw"])
    x = draw_array(draw, opdef.hints, 0, (g["n"], g["o"], g["ho"], g["wo"]))
    w = draw_array(draw, opdef.hints, 1, (g["o"], g["c"], g["kh"], g["kw"]))
    return Sample([x, w], {"stride": g["stride"], "padding": g["padding"], "output_padding": extra})


@sample_kind("conv2d_weight")
@st.composite
def conv2d_weight_sample(draw: Any, opdef: OpDef) -> Sample:
    """x (N, C, H, W), grad (N, O, Ho, Wo) for kernel_size (kh, kw)."""
    g = draw(_conv_geometry())
    x = draw_array(draw, opdef.hints, 0, (g["n"], g["c"], g["h"], g["w"]))
    grad = draw_array(draw, opdef.hints, 1, (g["n"], g["o"], g["ho"], g["wo"]))
    return Sample([x, grad], {"kernel_size": (g["kh"], g["kw"]), "stride": g["stride"], "padding": g["padding"]})


@st.composite
def _pool_geometry(draw: Any) -> dict[str, Any]:
    k = draw(st.sampled_from([1, 2, 3, (2, 3)]))
    kh, kw = _pairs(k)
    stride = draw(st.sampled_from([None, 1, 2]))
    padding = draw(st.sampled_from([p for p in (0, 1) if 2 * p <= min(kh, kw)]))
    sh, sw = (kh, kw) if stride is None else _pairs(stride)
    h, w = draw(st.integers(max(1, kh - 2 * padding), 5)), draw(st.integers(max(1, kw - 2 * padding), 5))
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ho, wo = (h + 2 * padding - kh) // sh + 1, (w + 2 * padding - kw) // sw + 1
    return dict(n=n, c=c, h=h, w=w, ho=ho, wo=wo, kwargs={"kernel_size": k, "stride": stride, "padding": padding})


@sample_kind("pool2d")
@st.composite
def pool2d_sample(draw: Any, opdef: OpDef) -> Sample:
    """x (N, C, H, W) with distinct values; kernel in {1, 2, 3, (2, 3)}, stride None|1|2, padding <= kernel/2."""
    g = draw(_pool_geometry())
    return Sample([draw_array(draw, opdef.hints, 0, (g["n"], g["c"], g["h"], g["w"]))], g["kwargs"])


@sample_kind("pool2d_scatter")
@st.composite
def pool2d_scatter_sample(draw: Any, opdef: OpDef) -> Sample:
    """grad (N, C, Ho, Wo), x (N, C, H, W) distinct: the pooling geometry of pool2d."""
    g = draw(_pool_geometry())
    grad = draw_array(draw, opdef.hints, 0, (g["n"], g["c"], g["ho"], g["wo"]))
    return Sample([grad, draw_array(draw, opdef.hints, 1, (g["n"], g["c"], g["h"], g["w"]))], g["kwargs"])


@sample_kind("pool2d_gather")
@st.composite
def pool2d_gather_sample(draw: Any, opdef: OpDef) -> Sample:
    """values (N, C, H, W), x (N, C, H, W) distinct."""
    g = draw(_pool_geometry())
    shape = (g["n"], g["c"], g["h"], g["w"])
    return Sample([draw_array(draw, opdef.hints, 0, shape), draw_array(draw, opdef.hints, 1, shape)], g["kwargs"])
