"""Draw the graph pictures of the backpropagation tutorial (docs/backprop.md) with autobp.viz.

Run by the docs build hook (docs/hooks/autobp_docs.py) before every build; also runnable alone:
``python docs/scripts/backprop_pictures.py``. Writes SVGs into docs/assets/backprop/ (not in git),
rewriting a file only when its content changed, so ``mkdocs serve`` does not rebuild in a loop.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import autobp as ab
from autobp.models import Network
from autobp.ops import sigmoid

OUT = Path(__file__).resolve().parent.parent / "assets" / "backprop"


def write_if_changed(path: Path, content: bytes) -> None:
    if not path.exists() or path.read_bytes() != content:
        path.write_bytes(content)


def neuron() -> object:
    """One sigmoid neuron and its quadratic cost, after backward: the chain rule in five boxes."""
    x = ab.tensor(1.5)
    y = ab.tensor(0.0)
    w = ab.tensor(0.8, requires_grad=True)
    b = ab.tensor(0.2, requires_grad=True)
    z = w * x + b
    a = sigmoid(z)
    cost = 0.5 * (a - y) ** 2
    z.retain_grad()
    a.retain_grad()
    cost.backward(retain_graph=True)  # keep the graph: it is drawn after backward
    names = {"x": x, "y": y, "w": w, "b": b, "z": z, "a": a, "C": cost}
    return ab.viz.draw_graph(cost, names=names, show_shapes=False, show_values=True, legend=False)


def network() -> object:
    """The seed's network with sizes [2, 3, 2] on one example, each layer in its own box."""
    net = Network([2, 3, 2], rng=0)
    x = ab.tensor(np.array([[0.5], [-1.0]]))
    y = ab.tensor(np.array([[1.0], [0.0]]))
    w1, w2 = net.weights
    b1, b2 = net.biases
    z1 = w1 @ x + b1
    a1 = sigmoid(z1)
    z2 = w2 @ a1 + b2
    a2 = sigmoid(z2)
    cost = ((a2 - y) ** 2).sum() * 0.5
    for t in (z1, z2):
        t.retain_grad()
    cost.backward(retain_graph=True)  # keep the graph: it is drawn after backward
    names = {"x": x, "y": y, "w1": w1, "b1": b1, "w2": w2, "b2": b2, "z1": z1, "a1": a1, "z2": z2, "a2": a2, "C": cost}
    collapse = {"layer 1": a1, "layer 2": a2, "cost": cost}
    return ab.viz.draw_graph(cost, names=names, collapse=collapse, rankdir="TB", legend=False)


def main(out: Path = OUT) -> int:
    out.mkdir(parents=True, exist_ok=True)
    for name, draw in {"neuron": neuron, "network": network}.items():
        write_if_changed(out / f"{name}.svg", draw().pipe(format="svg"))  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
