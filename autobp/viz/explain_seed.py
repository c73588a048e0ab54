"""The book's equations BP1-BP4 in a recorded graph of the seed's sigmoid network, checked against the reference.

``match`` recognises the graph ``Network.cost`` records (``0.5 * sum((a^L - y)^2)`` with
``a^l = sigmoid(w^l a^{l-1} + b^l)``) from its ops alone, so a network written by hand with the
same ops is recognised too. ``annotate`` then tells each step of ``autobp.viz.explain`` which
equation it realises and puts the value the engine computed next to ``autobp.reference``'s.
Layers are numbered as in the book: ``w1``, ``b1``, ``z1``, ``a1`` for the first, ``x`` is ``a0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from autobp import reference
from autobp.graph import is_node, node_inputs
from autobp.ops import matmul, sigmoid, square
from autobp.ops import sum as ab_sum
from autobp.tensor import Tensor
from autobp.viz.explain_model import Check, Descent, Explanation, Note, Step
from autobp.viz.groups import vertex_of

__all__ = ["SeedGraph", "SeedLayer", "match", "names", "annotate", "descent"]


@dataclass
class SeedLayer:
    """One layer ``a = sigmoid(w a_prev + b)`` of the matched graph; ``number`` is the book's l (from 1)."""

    number: int
    weight: Tensor
    bias: Tensor
    product: Tensor  # w a_prev (the matmul's output)
    z: Tensor
    a: Tensor
    a_prev: Tensor


@dataclass
class SeedGraph:
    """The matched network: its layers (first to last), input ``x``, target ``y`` and the cost's tensors."""

    layers: list[SeedLayer]
    x: Tensor
    y: Tensor
    error: Tensor  # a^L - y
    squared: Tensor
    summed: Tensor
    cost: Tensor

    def reference_gradients(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """``reference.backprop_batch`` on the graph's own arrays: (nabla_b, nabla_w), layer by layer."""
        weights = [layer.weight.data for layer in self.layers]
        biases = [layer.bias.data for layer in self.layers]
        return reference.backprop_batch(weights, biases, self.x.data, self.y.data)


def _made_by(tensor: Any, op: str) -> Tensor | None:
    if is_node(tensor) and tensor.op.name == op and node_inputs(tensor) is not None:
        return tensor  # type: ignore[no-any-return]
    return None


def _leaf_param(tensor: Tensor) -> bool:
    return tensor.op is None and tensor.requires_grad


def match(loss: Tensor) -> SeedGraph | None:
    """The seed network behind ``loss``, or None when the graph is anything else."""
    scale = _made_by(loss, "mul")
    if scale is None or len(node_inputs(scale) or ()) != 2:
        return None
    first, second = node_inputs(scale) or ()
    summed, half = (first, second) if first.op is not None else (second, first)
    if half.requires_grad or half.size != 1 or float(half.data) != 0.5:
        return None
    total = _made_by(summed, "sum")
    if total is None or total.kwargs.get("axis") is not None:
        return None
    squared = (node_inputs(total) or ())[0]
    square = _made_by(squared, "square")
    error = (node_inputs(square) or ())[0] if square is not None else None
    difference = _made_by(error, "sub")
    if difference is None or error is None:
        return None
    a, y = node_inputs(difference) or ()
    if y.requires_grad:
        return None
    layers: list[SeedLayer] = []
    while True:
        activation, add = _made_by(a, "sigmoid"), None
        z = (node_inputs(activation) or ())[0] if activation is not None else None
        add = _made_by(z, "add")
        if add is None or z is None:
            return None
        product, bias = node_inputs(add) or ()
        product_node = _made_by(product, "matmul")
        if product_node is None or not _leaf_param(bias):
            return None
        weight, a_prev = node_inputs(product_node) or ()
        if not _leaf_param(weight) or weight.ndim != 2 or bias.shape != (weight.shape[0], 1) or a_prev.ndim != 2:
            return None
        layers.append(SeedLayer(0, weight, bias, product, z, a, a_prev))
        if a_prev.op is None:
            if a_prev.requires_grad:
                return None
            break
        a = a_prev
    layers.reverse()
    for number, layer in enumerate(layers, start=1):
        layer.number = number
    return SeedGraph(layers, layers[0].a_prev, y, error, squared, summed, loss)


def names(seed: SeedGraph) -> dict[int, str]:
    """Vertex id -> the book's name of every tensor of the matched graph."""
    named = {seed.x: "x", seed.y: "y", seed.error: "a{L}-y", seed.squared: "(a{L}-y)^2", seed.summed: "sum((a{L}-y)^2)"}
    named[seed.cost] = "C"
    for layer in seed.layers:
        n, previous = layer.number, "x" if layer.number == 1 else f"a{layer.number - 1}"
        named.update({layer.weight: f"w{n}", layer.bias: f"b{n}", layer.z: f"z{n}", layer.a: f"a{n}"})
        named[layer.product] = f"w{n}@{previous}"
    last = str(len(seed.layers))
    return {id(vertex_of(t)): name.replace("{L}", last) for t, name in named.items()}


def _note(step: Step, equation: str, latex: str, text: str) -> None:
    gloss = text.split(", ", 1)[1] if ", " in text else ""
    step.notes.append(Note(equation, latex, text, gloss))


def _check(
    step: Step, equation: str, what: str, index: int, reference_value: np.ndarray, source: str, delta: bool = False
) -> None:
    gradient = step.flows[index].gradient
    assert gradient is not None  # every input of a matched step needs a gradient but x's
    # One example: delta is a column and nabla_b is delta. A mini-batch: nabla_b sums delta's columns.
    value = gradient.sum(axis=1, keepdims=True) if delta else gradient
    step.checks.append(Check(equation, what, value, reference_value, source))


def annotate(explanation: Explanation, seed: SeedGraph, steps: dict[int, Step]) -> None:
    """Add to each step of a seed-network explanation its equation and its check against the reference."""
    explanation.seed = seed
    nabla_b, nabla_w = seed.reference_gradients()
    weights = [layer.weight.data for layer in seed.layers]
    biases = [layer.bias.data for layer in seed.layers]
    big_l = len(seed.layers)
    examples = seed.x.shape[1]
    backprop = "reference.backprop" if examples == 1 else "reference.backprop_batch"  # (backprop takes one column)
    cost_notes = (
        (seed.cost, r"C = \tfrac12 \textstyle\sum_j (a^L_j - y_j)^2", "cost: C = 1/2 * sum, so the sum receives 1/2"),
        (seed.summed, r"\partial C / \partial (a^L_j - y_j)^2 = \tfrac12", "cost: every (a^L_j - y_j)^2 receives 1/2"),
        (seed.squared, r"\partial C / \partial (a^L - y) = 2 \cdot \tfrac12 (a^L - y)", "cost: 2 * 1/2 * (a^L - y)"),
    )
    for tensor, latex, text in cost_notes:
        _note(steps[id(tensor)], "cost", latex, text)
    step = steps[id(seed.error)]
    _note(step, "BP1", r"\nabla_a C = a^L - y", f"BP1 first factor: grad_a C = a^{big_l} - y, for the quadratic cost")
    output = reference.feedforward(weights, biases, seed.x.data) - seed.y.data
    _check(step, "BP1", f"grad_a C = a{big_l} - y", 0, output, "reference.feedforward(...) - y")
    for layer in reversed(seed.layers):
        n, b_index = layer.number, layer.number - 1
        step = steps[id(layer.a)]
        if n == big_l:
            _note(
                step, "BP1", rf"\delta^{{{n}}} = \nabla_a C \odot \sigma'(z^{{{n}}})",
                f"BP1: delta^{n} = grad_a C * sigma'(z^{n}), the error of the output layer",
            )  # fmt: skip
        else:
            back = rf"\big((w^{{{n + 1}}})^{{\mathsf T}} \delta^{{{n + 1}}}\big)"
            _note(
                step, "BP2", rf"\delta^{{{n}}} = {back} \odot \sigma'(z^{{{n}}})",
                f"BP2: delta^{n} = ((w^{n + 1})^T delta^{n + 1}) * sigma'(z^{n}), the error moves back one layer",
            )  # fmt: skip
        # A mini-batch's delta has a column per example; the reference's nabla_b is their sum.
        if examples == 1:
            what, source = f"delta^{n} (sent to z{n})", f"{backprop} nabla_b[{b_index}] (= delta^{n} for one example)"
        else:
            what = f"delta^{n} summed over the {examples} examples (sent to z{n})"
            source = f"{backprop} nabla_b[{b_index}] (= delta^{n} summed over the examples)"
        _check(step, "BP1" if n == big_l else "BP2", what, 0, nabla_b[b_index], source, True)
        step = steps[id(layer.z)]
        if examples == 1:
            _note(
                step, "BP3", rf"\frac{{\partial C}}{{\partial b^{{{n}}}}} = \delta^{{{n}}}",
                f"BP3: dC/db^{n} = delta^{n}, an add passes its gradient on unchanged",
            )  # fmt: skip
        else:  # b^n was broadcast over the m columns: its gradient is delta^n's columns summed
            _note(
                step, "BP3", rf"\frac{{\partial C}}{{\partial b^{{{n}}}}} = \textstyle\sum_x \delta^{{{n}}}_x",
                f"BP3: dC/db^{n} = delta^{n} summed over the {examples} examples, b was broadcast over them",
            )  # fmt: skip
        _check(step, "BP3", f"dC/db{n}", 1, nabla_b[b_index], f"{backprop} nabla_b[{b_index}]")
        step = steps[id(layer.product)]
        previous = r"x" if n == 1 else f"a^{{{n - 1}}}"
        _note(
            step, "BP4", rf"\frac{{\partial C}}{{\partial w^{{{n}}}}} = \delta^{{{n}}} ({previous})^{{\mathsf T}}",
            f"BP4: dC/dw^{n} = delta^{n} ({'x' if n == 1 else f'a^{n - 1}'})^T",
        )  # fmt: skip
        _check(step, "BP4", f"dC/dw{n}", 0, nabla_w[b_index], f"{backprop} nabla_w[{b_index}]")
        if n > 1:
            _note(
                step, "BP2", rf"(w^{{{n}}})^{{\mathsf T}} \delta^{{{n}}}",
                f"BP2 first half: (w^{n})^T delta^{n}, sent back to a{n - 1}; the sigmoid below multiplies by sigma'",
            )  # fmt: skip


def descent(seed: SeedGraph, leaf_gradients: dict[int, np.ndarray], cost_before: float, eta: float) -> Descent:
    """One step ``w <- w - (eta / m) dC/dw`` (and b) with the walk's gradients; the cost before and after.

    Shapes: the parameters keep theirs; m is the number of examples (columns of x).
    """
    examples = seed.x.shape[1]
    step = eta / examples
    weights = [layer.weight.data - step * leaf_gradients[id(layer.weight)] for layer in seed.layers]
    biases = [layer.bias.data - step * leaf_gradients[id(layer.bias)] for layer in seed.layers]
    # The cost after the step, by autobp's ops on the new parameters (the forward of Network.cost).
    a: Any = Tensor(seed.x.data)
    for w, b in zip(weights, biases, strict=True):
        a = sigmoid(matmul(Tensor(w), a) + Tensor(b))
    cost_after = float((ab_sum(square(a - Tensor(seed.y.data))) * 0.5).data)
    old_w = [layer.weight.data for layer in seed.layers]
    old_b = [layer.bias.data for layer in seed.layers]
    ref_w, ref_b = reference.update_mini_batch(old_w, old_b, seed.x.data, seed.y.data, eta)
    ref_cost = float(0.5 * np.sum((reference.feedforward(ref_w, ref_b, seed.x.data) - seed.y.data) ** 2))
    diff = max(
        float(np.max(np.abs(ours - theirs))) for ours, theirs in zip(weights + biases, ref_w + ref_b, strict=True)
    )
    return Descent(eta, examples, cost_before, cost_after, ref_cost, diff)
