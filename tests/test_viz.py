"""autobp.viz: the DOT source's structure, labels, NaN marks, truncation, and real renders with ``dot``."""

from __future__ import annotations

import doctest
import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autobp as ab
from autobp.viz import draw_graph, graph_text, module_blocks, save_graph

DOCS = Path(__file__).resolve().parent.parent / "docs"
NODE = re.compile(r"^\s*((?:t|op)\d+) \[(.*)\]$", re.MULTILINE)
NODE_OR_BLOCK = re.compile(r"^\s*((?:t|op|block)\d+) \[(.*)\]$", re.MULTILINE)
EDGE = re.compile(r"^\s*(\w+) -> (\w+)", re.MULTILINE)


def unwrapped(source: str) -> str:
    """The DOT source with the notes' line breaks (``\\l``) turned back into spaces."""
    return source.replace("\\l", " ")


def nodes(source: str) -> dict[str, str]:
    """Graph nodes (tensors and ops, not notes or the legend) of a DOT source: id -> attributes."""
    return dict(NODE.findall(source))


def mlp(batch: int = 8, hidden: int = 16) -> dict[str, ab.Tensor]:
    """A two-layer tanh MLP with a mean squared error, built from ops: 9 ops, 6 leaves."""
    x, y = ab.randn(batch, 4, rng=1), ab.randn(batch, 1, rng=2)
    w1, b1 = ab.randn(4, hidden, rng=3).requires_grad_(), ab.zeros(hidden).requires_grad_()
    w2, b2 = ab.randn(hidden, 1, rng=4).requires_grad_(), ab.zeros(1).requires_grad_()
    h = ab.tanh(x @ w1 + b1)
    out = h @ w2 + b2
    loss = ((out - y) ** 2).sum() * (1 / batch)  # matmul add tanh matmul add sub pow sum mul
    return {"x": x, "y": y, "W1": w1, "b1": b1, "W2": w2, "b2": b2, "h": h, "out": out, "loss": loss}


def count_graph(root: ab.Tensor) -> tuple[int, int]:
    """(ops, drawn tensors) by a walk independent of autobp.viz; scalar constants are drawn inline."""
    ops: set[int] = set()
    leaves: set[int] = set()
    stack = [root]
    while stack:
        tensor = stack.pop()
        if tensor.grad_fn is None:
            if tensor.requires_grad or tensor.size > 1 or tensor is root:
                leaves.add(id(tensor))
        elif id(tensor) not in ops:  # (a recorded op's output is its node)
            ops.add(id(tensor))
            stack.extend(tensor.grad_fn.inputs or ())
    return len(ops), len(ops) + len(leaves)


def test_mlp_node_and_edge_count_equal_the_graph() -> None:
    t = mlp()
    source = draw_graph(t["loss"], legend=False).source
    found = nodes(source)
    n_ops, n_tensors = count_graph(t["loss"])
    assert (n_ops, n_tensors) == (9, 15)
    assert sum(key.startswith("op") for key in found) == n_ops
    assert sum(key.startswith("t") for key in found) == n_tensors
    # one edge per tensor input (2+2+1+2+2+2+1+1+1: the 2 and 0.125 are printed inside pow and mul), one per output
    assert len(EDGE.findall(source)) == 14 + n_ops
    assert "(·, 2)" in source and "(·, 0.125)" in source


UNARY = [ab.tanh, ab.sigmoid, ab.exp, ab.sin, ab.relu]


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=25))
def test_random_graphs_draw_every_node(steps: list[tuple[int, int, int]]) -> None:
    a, b = ab.randn(3, rng=0).requires_grad_(), ab.randn(3, rng=1)
    pool = [a, b]
    for kind, i, j in steps:
        x, y = pool[i % len(pool)], pool[j % len(pool)]
        pool.append(UNARY[kind](x) if kind < 3 else x * y if kind == 3 else x + y * 0.5)
    root = ab.sum(pool[-1] + a)
    n_ops, n_tensors = count_graph(root)
    found = nodes(draw_graph(root).source)
    assert sum(key.startswith("op") for key in found) == n_ops
    assert sum(key.startswith("t") for key in found) == n_tensors
    assert len(graph_text(root).splitlines()) == 1 + n_tensors


def test_labels_carry_names_shapes_and_gradients() -> None:
    t = mlp()
    t["loss"].backward(retain_graph=True)
    names = {k: t[k] for k in ("x", "y", "W1", "b1", "W2", "b2")}
    source = draw_graph(t["loss"], names=names).source
    w1 = next(attrs for attrs in nodes(source).values() if "<B>W1</B>" in attrs)
    assert "float64[4, 16]" in w1
    g = t["W1"].grad.data
    assert f"grad [4, 16]  norm {np.linalg.norm(g):.3g}" in w1
    assert f"min {g.min():.3g}  max {g.max():.3g}" in w1
    assert "float64[8, 16]" in source  # an op output without a name
    text = graph_text(t["loss"], names=names)
    assert "t1 W1 " in text and f"grad [4, 16] norm {np.linalg.norm(g):.3g}" in text
    hidden = draw_graph(t["loss"], names=names, show_grads=False, show_shapes=False, legend=False).source
    assert "grad" not in hidden and "[4, 16]" not in hidden and "<B>W1</B>" in hidden


def test_values_and_names_from_tensor_attribute() -> None:
    w = ab.tensor([3.0, -4.0], requires_grad=True)
    w.name = "layers.0.weight"
    loss = (w * w).sum()
    source = draw_graph(loss, show_values=True).source
    assert "<B>layers.0.weight</B>" in source and "value  norm 5" in source and "min -4  max 3" in source
    assert "<B>renamed</B>" in draw_graph(loss, names=[("renamed", w)]).source  # names= wins over .name
    assert "value  25" in draw_graph(loss, show_values=True).source  # a scalar prints its value


def test_odd_names_and_index_arguments_are_escaped_and_readable() -> None:
    x = ab.randn(3, 4, rng=0).requires_grad_()
    picked = x[..., None, 1:3] * 2.0
    loss = picked.sum()
    graph = draw_graph(loss, names={"<b>x & co</b>": x}, collapse={"<block>": picked})
    assert "&lt;b&gt;x &amp; co&lt;/b&gt;" in graph.source and "index=[..., None, 1:3]" in graph.source
    assert "<svg" in graph.pipe(format="svg").decode()  # dot accepts the escaped labels
    assert "t0 <b>x & co</b>" in graph_text(loss, names={"<b>x & co</b>": x})


def test_retained_gradient_of_a_non_leaf_is_shown() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3.0
    h.retain_grad()
    loss = (h * h).sum()
    loss.backward(retain_graph=True)
    assert h.grad is not None
    source = draw_graph(loss, names={"h": h}).source
    h_label = next(attrs for attrs in nodes(source).values() if "<B>h</B>" in attrs)
    assert f"norm {np.linalg.norm(h.grad.data):.3g}" in h_label
    h.grad = None  # what the picture shows is the tensor's .grad, nothing else
    h_label = next(attrs for attrs in nodes(draw_graph(loss, names={"h": h}).source).values() if "<B>h</B>" in attrs)
    assert "grad" not in h_label


def test_nan_nodes_are_marked_and_the_first_op_producing_one() -> None:
    x = ab.tensor([1.0, -1.0, 2.0], requires_grad=True)
    with np.errstate(invalid="ignore"):
        y = ab.exp(x)  # finite
        z = ab.log(x - 1.5)  # the first NaN, and log(-0.5 + ...) stays NaN below
        loss = (ab.sqrt(z * y)).sum()
    source = draw_graph(loss, names={"x": x}).source
    found = nodes(source)
    first = [key for key, attrs in found.items() if "first NaN/Inf" in attrs]
    assert len(first) == 1 and "<B>log</B>" in found[first[0]] and "#dc2626" in found[first[0]]
    exp_node = next(attrs for attrs in found.values() if "<B>exp</B>" in attrs)
    assert "first" not in exp_node
    bad = [key for key, attrs in found.items() if key.startswith("t") and "has " in attrs and "NaN" in attrs]
    assert len(bad) == 4  # log, mul, sqrt, sum outputs
    assert "value or grad holds NaN/Inf" in source and "first op producing NaN/Inf" in source  # the legend
    folded = draw_graph(loss, collapse={"everything": loss}, fold=True).source
    assert "first NaN/Inf: op log" in folded and "NaN/Inf in 4 of 7 tensors" in folded  # 6 op outputs and x
    text = graph_text(loss)
    assert sum("!! value has" in line for line in text.splitlines()) == 4
    assert [line.split(" = ")[1].split("(")[0] for line in text.splitlines() if "first appears here" in line] == ["log"]


def test_anomaly_mode_adds_the_line_that_produced_the_first_nan() -> None:
    x = ab.tensor([-1.0, 4.0], requires_grad=True)
    with ab.detect_anomaly(check_nan=False), np.errstate(invalid="ignore"):
        root = ab.sqrt(x).sum()
    line = sys._getframe().f_lineno - 1  # the line of ab.sqrt above
    assert f"at test_viz.py:{line}" in draw_graph(root).source
    assert f"(forward at test_viz.py:{line})" in graph_text(root)


def test_first_nan_is_the_op_that_ran_first_not_the_first_argument() -> None:
    # A depth-first walk visits add's first argument (the log) first; the sqrt ran before it.
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    with ab.detect_anomaly(check_nan=False), np.errstate(all="ignore"):
        a = ab.sqrt(x - 5.0)
        b = ab.log(x - 5.0)
        loss = (b + a).sum()
    found = nodes(draw_graph(loss, names={"a": a, "b": b}).source)
    first = [attrs for attrs in found.values() if "first NaN/Inf" in attrs]
    assert len(first) == 1 and "<B>sqrt</B>" in first[0] and "#dc2626" in first[0]
    lines = graph_text(loss, names={"a": a, "b": b}).splitlines()
    (marked,) = [line for line in lines if "first appears here" in line]
    assert " a = sqrt(" in marked
    # The listing is in recording order: sqrt's line before log's, each sub before its user.
    ops = [line.split(" = ")[1].split("(")[0] for line in lines if " = " in line]
    assert ops == ["sub", "sqrt", "sub", "log", "add", "sum"]


def test_freed_graph_says_retain_graph_keeps_it() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    source = unwrapped(draw_graph(loss).source)
    assert "freed by backward()" in source and "retain_graph=True" in source
    assert "retain_graph=True" in graph_text(loss)
    kept = (x * x).sum()
    kept.backward(retain_graph=True)
    assert "freed" not in draw_graph(kept, legend=False).source


def test_huge_graph_is_truncated_with_a_note_and_no_recursion_error() -> None:
    x = ab.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    source = unwrapped(draw_graph(y, max_nodes=40).source)
    found = nodes(source)
    assert len(found) <= 40 and sum(key.startswith("op") for key in found) == 20
    assert "99,980 more ops and 1 more leaf not drawn" in source and "max_nodes=40" in source
    assert "note_omitted -> op" in source  # an arrow shows where the omitted part joins
    text = graph_text(y, max_nodes=6)
    assert "99,997 more ops" in text and "mul(…, 1)" in text


def test_nan_origin_outside_the_drawn_part_is_named_in_the_note() -> None:
    x = ab.tensor(-1.0, requires_grad=True)
    with np.errstate(invalid="ignore"):
        y = ab.sqrt(x)
        for _ in range(30):
            y = y + 1.0
    assert "NaN/Inf first appears in op 'sqrt', which is not drawn" in unwrapped(draw_graph(y, max_nodes=10).source)


def test_collapse_draws_blocks_as_clusters() -> None:
    t = mlp()
    blocks = {"layer 1": t["h"], "layer 2": t["out"]}
    source = draw_graph(t["loss"], names={"W1": t["W1"], "W2": t["W2"]}, collapse=blocks, legend=False).source
    found = re.findall(r"subgraph cluster_\d+ \{\n(.*?)\n\t\}", source, re.DOTALL)
    body = {re.findall(r'label="([^"]+)"', content)[0]: content for content in found}
    assert sorted(body) == ["layer 1", "layer 2"]
    assert "<B>W1</B>" in body["layer 1"] and "tanh" in body["layer 1"] and "<B>W2</B>" not in body["layer 1"]
    assert "<B>W2</B>" in body["layer 2"] and "<B>sub</B>" not in body["layer 2"]
    assert "[layer 2]" in graph_text(t["loss"], collapse=blocks)
    with pytest.raises(ValueError, match=r"collapse\['x'\] must be the non-leaf Tensor"):
        draw_graph(t["loss"], collapse={"x": t["x"]})


def test_fold_draws_a_block_as_one_summary_box() -> None:
    t = mlp()
    t["loss"].backward(retain_graph=True)
    blocks = {"layer 1": t["h"], "layer 2": t["out"]}
    names = {"W1": t["W1"], "b1": t["b1"]}
    full = nodes(draw_graph(t["loss"], names=names, collapse=blocks, legend=False).source)
    source = draw_graph(t["loss"], names=names, collapse=blocks, fold=["layer 1"], legend=False).source
    found = NODE_OR_BLOCK.findall(source)
    layer1, layer2 = 3 * 2 + 2, 2 * 2 + 2  # ops (matmul, add, tanh / matmul, add), their outputs, parameters
    assert len(found) == len(full) - layer1 + 1
    (block,) = [attrs for key, attrs in found if key.startswith("block")]
    assert "<B>layer 1</B>" in block and "3 ops: matmul, add, tanh" in block and "out float64[8, 16]" in block
    assert f"grad norm {np.linalg.norm(t['W1'].grad.data):.3g}" in block
    edges = EDGE.findall(source)
    assert len(edges) == len(set(edges)) and all(a != b for a, b in edges)
    assert sum(b.startswith("block") for _, b in edges) == 1 and sum(a.startswith("block") for a, _ in edges) == 1
    assert (
        len(NODE_OR_BLOCK.findall(draw_graph(t["loss"], collapse=blocks, fold=True).source))
        == len(full) - layer1 - layer2 + 2
    )
    with pytest.raises(ValueError, match=r"fold names blocks \['layer 3'\] that are not in collapse"):
        draw_graph(t["loss"], collapse=blocks, fold=["layer 3"])


def test_module_blocks_box_each_sub_module_and_restore_the_model() -> None:
    model = ab.nn.Sequential(ab.nn.Linear(4, 6), ab.nn.Tanh(), ab.nn.Linear(6, 1))
    x = ab.randn(5, 4, rng=0)
    with module_blocks(model) as blocks:
        loss = model(x).sum()
    assert list(blocks) == ["0: Linear", "1: Tanh", "2: Linear"]
    assert all("forward" not in child.__dict__ for child in model.children())
    source = draw_graph(loss, names=dict(model.named_parameters()), collapse=blocks, legend=False).source
    labels = re.findall(r'subgraph cluster_\d+ \{\n\t*[^\n]*label="([^"]+)"', source)
    assert labels == list(blocks)
    assert "<B>2.weight</B>" in source
    with pytest.raises(RuntimeError, match="boom"), module_blocks(model):
        raise RuntimeError("boom")
    assert all("forward" not in child.__dict__ for child in model.children())


def test_legend_can_be_turned_off_and_lists_only_what_is_drawn() -> None:
    loss = (ab.tensor([1.0], requires_grad=True) * 2.0).sum()
    with_legend = draw_graph(loss).source
    assert "cluster_legend" in with_legend and "NaN" not in with_legend
    assert "cluster_legend" not in draw_graph(loss, legend=False).source


def test_bad_arguments_are_named() -> None:
    with pytest.raises(TypeError, match="draw_graph: the root must be a Tensor"):
        draw_graph(np.ones(2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_nodes must be at least 1"):
        graph_text(ab.tensor(1.0), max_nodes=0)
    with pytest.raises(TypeError, match=r"names\['w'\] must be a Tensor"):
        draw_graph(ab.tensor(1.0), names={"w": 1.0})  # type: ignore[dict-item]


def test_graph_text_needs_no_graphviz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz now raises ImportError
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    assert "mul(t0, t0)" in graph_text((x * x).sum())
    with pytest.raises(ImportError, match=r'pip install "autobp\[viz\]"'):
        draw_graph((x * x).sum())


def test_render_svg_and_png_with_dot(tmp_path: Path) -> None:
    t = mlp()
    t["loss"].backward(retain_graph=True)
    graph = draw_graph(t["loss"], names={"W1": t["W1"]})
    svg = graph.pipe(format="svg").decode()
    assert "<svg" in svg and svg.count('class="node"') == len(nodes(graph.source)) + 1  # + the legend
    assert graph.pipe(format="png").startswith(b"\x89PNG")
    written = save_graph(graph, tmp_path / "mlp", formats=("svg", "png"))
    assert [p.name for p in written] == ["mlp.svg", "mlp.png"] and all(p.stat().st_size > 1000 for p in written)
    assert Path(graph.render(tmp_path / "rendered", format="svg")).read_text().count("<svg") == 1
    assert "image/svg+xml" in graph._repr_mimebundle_()  # what Jupyter displays inline


def test_save_graph_writes_dot_source_without_the_dot_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` on PATH
    graph = draw_graph((ab.tensor([1.0], requires_grad=True) * 2.0).sum())
    (written,) = save_graph(graph, tmp_path / "out" / "g", formats=("svg",))
    assert written.name == "g.dot" and written.read_text() == graph.source


def test_docs_page_runs_and_shows_what_the_picture_script_draws(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = (DOCS / "visualizing.md").read_text(encoding="utf-8")
    spec = importlib.util.spec_from_file_location("viz_pictures", DOCS / "scripts" / "viz_pictures.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.chdir(tmp_path)  # the page renders files into the working directory
    namespace: dict[str, object] = {}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    drawn = []
    for number, block in enumerate(re.findall(r"```python\n(.*?)```", page, re.DOTALL)):
        if ">>>" in block:
            test = doctest.DocTestParser().get_doctest(block, namespace, f"block {number}", "visualizing.md", 0)
            runner.run(test, clear_globs=False)
            namespace.update(test.globs)
        else:
            exec(block, namespace)
        drawn.append(getattr(namespace.get("dot"), "source", None))
    assert runner.summarize(verbose=False) == (0, runner.tries) and runner.tries > 20
    assert (tmp_path / "first_graph.svg").exists() and (tmp_path / "first_graph.png").exists()
    for draw in script.PICTURES.values():
        assert draw().source in drawn  # the page's code is the code of its pictures


def test_graph_text_counts_in_the_singular_for_one() -> None:
    v = ab.tensor([1.0, 2.0], requires_grad=True)
    one = ab.sum(v)
    assert ab.viz.graph_text(one).splitlines()[0] == "autobp graph: 1 op, 2 tensors"
    assert ab.viz.graph_text(one * 2.0).splitlines()[0] == "autobp graph: 2 ops, 3 tensors"


def test_zero_size_tensors_are_labelled_empty_not_all_zero() -> None:
    x = ab.tensor(np.zeros((0, 3)), requires_grad=True)
    w = ab.tensor(np.ones((3, 2)), requires_grad=True)
    loss = (x @ w).sum() + (w * w).sum()
    loss.backward(retain_graph=True)
    found = nodes(draw_graph(loss, show_values=True, names={"x": x}).source)
    label = next(attrs for attrs in found.values() if "<B>x</B>" in attrs)
    assert "value  empty" in label and "grad [0, 3]  empty" in label and "all 0" not in label
    product = next(attrs for attrs in found.values() if "float64[0, 2]" in attrs)
    assert "value  empty" in product and "all 0" not in product
    lines = graph_text(loss, show_values=True, names={"x": x}).splitlines()
    (x_line,) = [line for line in lines if " x " in line]
    assert x_line.endswith("value [0, 3] empty  grad [0, 3] empty")


def test_an_input_changed_after_the_forward_is_marked_not_paired_silently() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    c = ab.tensor([1.0, 2.0])
    y = (x * c).sum()  # 5, computed from c = [1, 2]
    c.add_(10.0)  # c is now [11, 12]; y still holds 5
    lines = graph_text(y, show_values=True, names={"x": x, "c": c}).splitlines()
    (c_line,) = [line for line in lines if " c " in line]
    assert c_line.endswith("!! changed since mul read it (version 0 -> 1)")
    assert not any("changed" in line for line in lines if line is not c_line)
    found = nodes(draw_graph(y, show_values=True, names={"x": x, "c": c}).source)
    label = next(attrs for attrs in found.values() if "<B>c</B>" in attrs)
    assert "changed since mul read it (version 0 -&gt; 1)" in label
    legend = draw_graph(y, show_values=True, names={"x": x, "c": c}).source.split("cluster_legend", 1)[1]
    assert "changed in place since an op read it" in legend  # the mark is explained, not only drawn
    assert "changed in place" not in draw_graph((x * x).sum()).source  # and only where a tensor has it
    w = ab.tensor([1.0, 2.0], requires_grad=True)  # an optimizer step moves a parameter the same way
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    with ab.no_grad():
        w -= 0.5 * w.grad
    assert "!! changed since mul read it (version 0 -> 1)" in graph_text(loss, names={"w": w})


def test_a_scalar_constant_changed_after_the_op_is_drawn_and_marked_not_printed_inside() -> None:
    # An unnamed one-element constant is printed inside its op (``mul(t0, 2)``); written in place
    # after the op read it, the picture printed the new value there as the one the op used.
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    for c in (ab.tensor(2.0), ab.tensor([2.0])):
        y = x * c
        c.fill_(5.0)
        text = graph_text(y, names={"x": x})
        assert "5" not in text.split("mul(", 1)[1].split(")", 1)[0]
        assert "!! changed since mul read it (version 0 -> 1)" in text
        assert "changed since mul read it" in draw_graph(y, names={"x": x}).source
    c = ab.tensor(2.0)
    assert "mul(t0, 2)" in graph_text(x * c, names={"x": x})  # unchanged: still printed inside


def test_a_norm_whose_squares_overflow_or_underflow_is_printed_right() -> None:
    # The labels summed plain squares: [1e200, 2e200] had "norm inf", [1e-200, 2e-200] "norm 0".
    from autobp.viz.explain_text import array_text

    for scale in (1e200, 1e-200):
        x = ab.tensor([1.0 * scale, 2.0 * scale], requires_grad=True)
        expected = f"norm {np.sqrt(5.0) * scale:.3g}"
        assert expected in graph_text(x * 1.0, show_values=True, names={"x": x})
        assert f"value  {expected}" in draw_graph(x * 1.0, show_values=True).source
        assert f"norm {np.sqrt(50.0) * scale:.4g}" in array_text(np.full(50, scale))
    big = ab.tensor([1e308, 1.5e308], requires_grad=True)
    assert "norm inf" in graph_text(big * 1.0, show_values=True)  # beyond float64: inf


def test_values_that_are_not_summarized_are_not_drawn_as_zeros() -> None:
    # Complex values are not summarized (no min or max); the box said "value  all 0".
    c = ab.tensor(np.array([1 + 2j, 3 - 1j]))
    source = draw_graph(c, show_values=True).source
    assert "complex128[2]" in source and "all 0" not in source
    assert "all 0" not in graph_text(c, show_values=True)


def test_an_index_tensor_changed_after_the_op_is_marked_in_the_label() -> None:
    # The op keeps an index Tensor as it is (its version is checked at backward): written in place
    # after the op, the label printed its new values, index=[[2, 1]] where getitem read [0, 1].
    x = ab.tensor([10.0, 20.0, 30.0], requires_grad=True)
    idx = ab.tensor(np.array([0, 1]))
    y, z = x[idx], x[idx, ...]
    assert "changed" not in graph_text([y, z], names={"x": x})
    idx[0] = 2
    text = graph_text([y, z], names={"x": x})
    assert text.count("(changed since getitem read it: version 0 -> 1)") == 2
    assert "changed since getitem read it: version 0 -&gt; 1" in draw_graph(y, names={"x": x}).source
