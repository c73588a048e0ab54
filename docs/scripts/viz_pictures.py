"""Draw the pictures of docs/visualizing.md with autobp.viz.

Run by the docs build hook before every build, and runnable alone:
``python docs/scripts/viz_pictures.py [--png]``. Writes SVGs (and PNGs with ``--png``, for checking
them by eye) into docs/images/, rewriting a file only when its content changed, so ``mkdocs serve``
does not rebuild in a loop. The code of each picture is the code shown on the docs page.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

import autobp as ab
from autobp.models import Network

OUT = Path(__file__).resolve().parent.parent / "images"


def mlp() -> Any:
    """A two-layer tanh MLP with a mean squared error, after backward, one box per layer."""
    x, y = ab.randn(8, 4, rng=1), ab.randn(8, 1, rng=2)
    w1, b1 = ab.randn(4, 16, rng=3).requires_grad_(), ab.zeros(16).requires_grad_()
    w2, b2 = ab.randn(16, 1, rng=4).requires_grad_(), ab.zeros(1).requires_grad_()
    h = ab.tanh(x @ w1 + b1)
    out = h @ w2 + b2
    loss = ((out - y) ** 2).mean()
    loss.backward(retain_graph=True)  # keep the graph: it is drawn after backward
    names = {"x": x, "y": y, "W1": w1, "b1": b1, "W2": w2, "b2": b2, "loss": loss}
    return ab.viz.draw_graph(loss, names=names, collapse={"layer 1": h, "layer 2": out}, rankdir="TB")


def seed_network() -> Any:
    """The seed's [784, 30, 10] sigmoid network on a mini-batch of 10 columns, with its quadratic cost."""
    net = Network([784, 30, 10], rng=0)
    rng = np.random.default_rng(0)
    x = ab.tensor(rng.uniform(0.0, 1.0, size=(784, 10)))  # ten 28x28 images, one per column
    y = ab.tensor(np.eye(10)[:, rng.integers(0, 10, size=10)])  # their one-hot labels
    a, layers = x, {}
    for i, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        a = ab.sigmoid(w @ a + b)  # the seed's feedforward: a' = sigmoid(w a + b)
        layers[f"layer {i + 1}"] = a
    cost = ab.sum((a - y) ** 2) * 0.5  # the seed's quadratic cost, as Network.cost computes it
    cost.backward(retain_graph=True)
    names = {"x": x, "y": y, "cost": cost}
    for i, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        names[f"weights[{i}]"], names[f"biases[{i}]"] = w, b
    return ab.viz.draw_graph(cost, names=names, collapse=layers, show_values=True, rankdir="TB")


def nan_graph() -> Any:
    """A hand-written binary cross-entropy whose sigmoid saturates: log(1 - p) = log(0) = -inf."""
    x = ab.tensor([[4.0, -2.0], [40.0, 1.0]])  # the second example is far out
    y = ab.tensor([[1.0], [1.0]])
    w = ab.tensor([[1.0], [0.5]], requires_grad=True)
    p = ab.sigmoid(x @ w)  # sigmoid(40.5) rounds to exactly 1.0 in float64
    with np.errstate(divide="ignore", invalid="ignore"):
        loss = -(y * ab.log(p) + (1 - y) * ab.log(1 - p)).mean()  # 0 * -inf = NaN
        loss.backward(retain_graph=True)
    return ab.viz.draw_graph(loss, names={"x": x, "y": y, "w": w, "loss": loss}, rankdir="TB")


def modules() -> Any:
    """An ab.nn model: module_blocks boxes each sub-module, named_parameters names the parameters."""
    model = ab.nn.Sequential(
        ab.nn.Linear(4, 16, rng=0), ab.nn.Tanh(), ab.nn.Linear(16, 16, rng=1), ab.nn.Tanh(), ab.nn.Linear(16, 1, rng=2)
    )
    x, y = ab.randn(8, 4, rng=1), ab.randn(8, 1, rng=2)
    with ab.viz.module_blocks(model) as blocks:
        loss = ((model(x) - y) ** 2).mean()
    loss.backward(retain_graph=True)
    names = {"x": x, "y": y, "loss": loss, **dict(model.named_parameters())}
    return ab.viz.draw_graph(loss, names=names, collapse=blocks, rankdir="TB")


def folded() -> Any:
    """An 8-layer tanh MLP: the first layer drawn in full, the other seven folded into one box each."""
    x = ab.randn(16, 8, rng=0)
    a, blocks, names = x, {}, {"x": x}
    for i in range(8):
        w, b = (ab.randn(8, 8, rng=i + 1) * 0.5).detach().requires_grad_(), ab.zeros(8).requires_grad_()
        a = ab.tanh(a @ w + b)
        blocks[f"layer {i + 1}"], names[f"layers.{i}.weight"], names[f"layers.{i}.bias"] = a, w, b
    loss = (a**2).mean()
    loss.backward(retain_graph=True)
    fold = [f"layer {i}" for i in range(2, 9)]
    return ab.viz.draw_graph(loss, names=names, collapse=blocks, fold=fold, rankdir="TB")


PICTURES = {"viz_mlp": mlp, "viz_seed": seed_network, "viz_nan": nan_graph, "viz_modules": modules, "viz_fold": folded}


def main(argv: list[str]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    formats = ["svg", "png"] if "--png" in argv else ["svg"]
    for stem, draw in PICTURES.items():
        graph = draw()
        for fmt in formats:
            path = OUT / f"{stem}.{fmt}"
            content = graph.pipe(format=fmt)
            if not path.exists() or path.read_bytes() != content:
                path.write_bytes(content)


if __name__ == "__main__":
    main(sys.argv[1:])
