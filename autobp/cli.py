"""The ``autobp`` command: ``autobp demo`` trains the seed's network on MNIST; ``autobp graph`` draws its loss graph.

``autobp demo`` is the project's main job: it trains the seed's sigmoid network on the MNIST subset
bundled with autobp (or on full MNIST with ``--data``), checks autograd's gradients against the
hand-written backprop in ``autobp.reference``, and writes a picture of one mini-batch's graph and a
plot of accuracy and loss per epoch. It needs the ``demo`` extra (tqdm, matplotlib, graphviz).
``--library torch`` (with ``--device``) trains with another array library; the check and the
picture are made on numpy first.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autobp import cli_explain
from autobp.commandline import Progress, add_data_flags, layer_sizes, load_data, plural, positive, seed_number

__all__ = ["main", "build_parser"]

INSTALL_DOT = "install Graphviz to render it (Debian/Ubuntu: apt install graphviz; macOS: brew install graphviz)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``autobp`` command (subcommands ``demo`` and ``graph``)."""
    parser = argparse.ArgumentParser(prog="autobp", description="autobp: reverse-mode autograd on numpy.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{demo,graph,explain}")
    demo = commands.add_parser("demo", help="train the seed's sigmoid network on MNIST (bundled subset by default)")
    add_data_flags(demo)
    sizes = layer_sizes("784,30,10")
    demo.add_argument("--sizes", type=sizes, default=[784, 30, 10], help="layer sizes (default 784,30,10)")
    demo.add_argument("--epochs", type=positive(int), default=10, help="training epochs (default 10)")
    demo.add_argument("--batch", type=positive(int), default=10, help="mini-batch size (default 10)")
    demo.add_argument("--eta", type=positive(float), default=3.0, help="learning rate (default 3.0)")
    demo.add_argument(
        "--seed", type=seed_number, default=0, help="seed of the initial weights and the shuffling (default 0)"
    )
    demo.add_argument(
        "--init", choices=["book", "scaled"], default="book", help="weights N(0,1) or N(0,1/n_in) (default book)"
    )
    demo.add_argument("--limit", type=positive(int), help="train on the first LIMIT images only (default: all)")
    demo.add_argument("--out", type=Path, default=Path("autobp-demo"), help="output directory (default ./autobp-demo)")
    demo.add_argument(
        "--library",
        choices=["numpy", "torch", "cupy", "array_api_strict"],
        default="numpy",
        help="the array library to train with (default numpy)",
    )
    demo.add_argument("--device", help="the library's device, e.g. cuda (default: the library's default, cpu)")
    graph = commands.add_parser("graph", help="draw the seed network's loss graph for one small mini-batch")
    graph.add_argument("--sizes", type=sizes, default=[784, 30, 10], help="layer sizes (default 784,30,10)")
    graph.add_argument("--batch", type=positive(int), default=4, help="mini-batch size (default 4)")
    graph.add_argument(
        "--seed", type=seed_number, default=0, help="seed of the weights and the random mini-batch (default 0)"
    )
    graph.add_argument("--format", choices=["svg", "png", "pdf"], default="svg", help="picture format (default svg)")
    graph.add_argument(
        "--out", type=Path, default=Path("autobp-graph"), help="output directory (default ./autobp-graph)"
    )
    cli_explain.add_parser(commands)
    return parser


def _require(packages: Sequence[str], command: str) -> None:
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(f"autobp {command}: needs {', '.join(missing)}; install the extra: pip install 'autobp[demo]'")


def write_graph(digraph: Any, out: Path, stem: str, fmt: str = "svg") -> list[Path]:
    """Write the graph's DOT source and, when Graphviz's ``dot`` program exists, the rendered picture."""
    out.mkdir(parents=True, exist_ok=True)
    source = out / f"{stem}.dot"
    source.write_text(digraph.source, encoding="utf-8")
    if shutil.which("dot") is None:
        print(f"graph: wrote the DOT source {source}; the 'dot' program is missing: {INSTALL_DOT}, then run")
        print(f"       dot -T{fmt} {source} -o {out / f'{stem}.{fmt}'}")
        return [source]
    picture = Path(digraph.render(outfile=out / f"{stem}.{fmt}", cleanup=True))
    print(f"graph: wrote {picture} (DOT source {source})")
    return [source, picture]


def layer_names(loss: Any) -> dict[str, Any]:
    """Name the seed network's intermediate tensors in ``loss``'s graph as the docs' figures do.

    Walks the graph from ``loss``: the sigmoid outputs are the activations ``a1 .. aL`` (layer 1
    is the one nearest the input) and each sigmoid's input is the weighted input ``z1 .. zL``.
    """
    activations = []
    stack, seen = [loss], {id(loss)}
    while stack:  # depth first from the root: a chain's sigmoids come out last layer first
        tensor = stack.pop()
        node = tensor.grad_fn
        if node is None:
            continue
        if node.op.name == "sigmoid":
            activations.append(tensor)
        for parent in node.inputs or ():
            if id(parent) not in seen:
                seen.add(id(parent))
                stack.append(parent)
    names = {}
    for layer, a in enumerate(reversed(activations), start=1):
        names[f"a{layer}"] = a
        names[f"z{layer}"] = a.grad_fn.inputs[0]
    return names


def _loss_graph(net: Any, x: np.ndarray, y: np.ndarray, out: Path, fmt: str) -> list[Path]:
    """Draw one mini-batch's cost with the gradients backward gave every parameter, top to bottom."""
    import autobp as ab
    from autobp.viz import draw_graph

    x_t, y_t = ab.tensor(x), ab.tensor(y)
    loss = net.cost(x_t, y_t)
    loss.backward(retain_graph=True)
    names = {"x": x_t, "y": y_t, "cost": loss, **layer_names(loss)}
    for layer, (w, b) in enumerate(zip(net.weights, net.biases, strict=True), start=1):
        names[f"w{layer}"], names[f"b{layer}"] = w, b  # the book's w^l, b^l
    try:
        # Top to bottom: a chain of a few dozen nodes drawn left to right is many times wider than tall.
        return write_graph(draw_graph(loss, names=names, rankdir="TB"), out, "loss_graph", fmt)
    finally:
        for param in net.parameters():  # the picture needed .grad; training does not use it
            param.grad = None


def gradient_check(net: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Largest absolute difference between autograd's and the reference's gradients on (x, y)."""
    from autobp import reference

    weights = [w.data for w in net.weights]
    biases = [b.data for b in net.biases]
    ref_b, ref_w = reference.backprop_batch(weights, biases, x, y)
    auto_b, auto_w = net.backprop(x, y)
    return max(float(np.max(np.abs(a - r))) for a, r in zip(auto_b + auto_w, ref_b + ref_w, strict=True))


def _plot(history: list[dict[str, Any]], path: Path) -> Any:
    """Plot test accuracy and training cost per epoch into ``path``; returns the matplotlib Figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in history]
    figure = Figure(figsize=(9, 3.5), layout="constrained")
    FigureCanvasAgg(figure)
    accuracy, loss = figure.subplots(1, 2)
    accuracy.plot(epochs, [100 * r["correct"] / r["total"] for r in history], marker="o")
    accuracy.set(xlabel="epoch", ylabel="test accuracy (%)", title="Test accuracy")
    loss.plot(epochs, [r["loss"] for r in history], marker="o", color="tab:orange")
    loss.set(xlabel="epoch", ylabel="mean 0.5 ||a - y||^2", title="Training cost per example")
    for axes in (accuracy, loss):
        axes.grid(alpha=0.3)
        # Epochs are whole numbers: no 0.96 ... 1.04 ticks around a single epoch.
        if len(epochs) <= 12:
            axes.set_xticks(epochs)
        else:
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.savefig(path, dpi=110)
    return figure


def demo(args: argparse.Namespace) -> int:
    """Train, check gradients, draw the graph and plot; see the module docstring."""
    _require(["matplotlib", "graphviz"], "demo")  # tqdm is optional: without it, a line per epoch
    from autobp.datasets import to_columns
    from autobp.models import Network, one_hot

    started = time.perf_counter()
    data, where = load_data(args, "autobp demo")
    images, labels = data.train_images, data.train_labels
    if args.data is not None:  # the book trains on the first 50,000 images and holds out the last 10,000
        images, labels = images[:50_000], labels[:50_000]
    train, test = to_columns(images, labels, args.limit), to_columns(data.test_images, data.test_labels)
    print(
        f"autobp demo: training {args.sizes} on {train[0].shape[1]:,} images of {where}; "
        f"testing on {test[0].shape[1]:,}"
    )
    print(f"  epochs {args.epochs}, mini-batch {args.batch}, eta {args.eta}, seed {args.seed}, init {args.init}")
    net = Network(args.sizes, rng=args.seed, init=args.init)
    x, y = train[0][:, : args.batch], one_hot(train[1][: args.batch], 10)
    difference = gradient_check(net, x, y)
    print(f"gradient check: max |autograd - reference| = {difference:.3e} on one mini-batch of {x.shape[1]}")
    args.out.mkdir(parents=True, exist_ok=True)
    _loss_graph(net, x, y, args.out, "svg")
    if args.library != "numpy" or args.device is not None:
        net.to(args.library, args.device)  # after the check and the picture, which read numpy arrays

    history: list[dict[str, Any]] = []
    steps = len(range(0, train[0].shape[1], args.batch))
    with Progress(args.epochs * steps, "training", unit="batch") as progress:
        for epoch in range(1, args.epochs + 1):
            (record,) = net.SGD(
                train, 1, args.batch, args.eta, test, progress=lambda starts, _: progress.iterate(starts)
            )
            record["epoch"] = epoch  # counted from 1, as the lines below and the plot count
            history.append(record)
            accuracy = 100 * record["correct"] / record["total"]
            progress.postfix(f"epoch {epoch}/{args.epochs}, test accuracy {accuracy:.2f}%")
            progress.line(
                f"epoch {epoch}/{args.epochs}: training cost {record['loss']:.4f}, "
                f"test accuracy {record['correct']}/{record['total']} = {accuracy:.2f}%"
            )
    _plot(history, args.out / "training.png")
    (args.out / "history.json").write_text(json.dumps(history, indent=1), encoding="utf-8")
    print(f"plot: wrote {args.out / 'training.png'} (and history.json)")
    final = 100 * history[-1]["correct"] / history[-1]["total"]
    print(
        f"final test accuracy: {final:.2f}% after {plural(args.epochs, 'epoch')} "
        f"({time.perf_counter() - started:.1f} s)"
    )
    return 0


def graph(args: argparse.Namespace) -> int:
    """Draw the seed network's cost graph for one random mini-batch of ``--batch`` columns."""
    _require(["graphviz"], "graph")
    from autobp.models import Network, one_hot

    net = Network(args.sizes, rng=args.seed)
    x = net.rng.random((args.sizes[0], args.batch))
    y = one_hot(net.rng.integers(0, args.sizes[-1], args.batch), args.sizes[-1])
    _loss_graph(net, x, y, args.out, args.format)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``autobp`` command; returns the exit status: 1 after a one-line error (missing data, say);
    argparse exits 2 on bad flags."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo" and (args.sizes[0] != 784 or args.sizes[-1] != 10):
        parser.error(f"argument --sizes: the demo's network reads 784 pixels and outputs 10 digits, got {args.sizes}")
    if args.command == "explain":
        return cli_explain.run(args)
    if args.command == "demo" and args.library != "numpy":
        from autobp import backends

        try:
            backends.library(args.library)
        except ImportError as error:
            parser.error(f"argument --library: {error}")
    try:
        return demo(args) if args.command == "demo" else graph(args)
    except SystemExit as error:  # a problem the command explains in one line: no traceback, exit status 1
        if not isinstance(error.code, str):
            raise
        print(error.code, file=sys.stderr)
        return 1
    except MemoryError as error:  # (numpy's names the shape it could not allocate)
        print(f"autobp {args.command}: out of memory: {error}; try a smaller --batch or --sizes", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
