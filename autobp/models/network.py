"""The seed's layered sigmoid network, built from autobp Tensors and trained with autobp's autograd.

Same layout, names and update rule as the seed (Nielsen's ``network.py``): ``weights[l]`` is
(n_out, n_in), ``biases[l]`` is (n_out, 1), every layer is a sigmoid, and the cost of one example
is ``0.5 * ||a - y||^2``. ``backprop`` differs only in *how* the gradients are found: by autobp's
reverse-mode engine rather than by hand (``autobp.reference`` holds the hand-written version, and
the tests hold the two equal). A mini-batch is one (n_in, m) matrix, never a Python loop.
``net.to("torch", device="cuda")`` trains and evaluates with another array library: the data stay
numpy arrays on the host and are moved there once per ``SGD`` call.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from autobp import backends, hooks
from autobp.creation import as_generator
from autobp.engine import grad
from autobp.grad_mode import no_grad
from autobp.models.layouts import stack_examples, stack_labels
from autobp.nn.module import move_parameter
from autobp.ops import matmul, sigmoid, square, sub
from autobp.ops import sum as ab_sum
from autobp.tape import value_and_grad
from autobp.tensor import Tensor

__all__ = ["Network"]

Progress = Callable[[Iterable[int], int], Iterable[int]]


def _feedforward(weights: Sequence[Any], biases: Sequence[Any], a: Any) -> Tensor:
    for w, b in zip(weights, biases, strict=True):
        a = sigmoid(matmul(w, a) + b)
    return a  # type: ignore[no-any-return]


def _cost(weights: Sequence[Any], biases: Sequence[Any], x: Any, y: Any) -> Tensor:
    return ab_sum(square(sub(_feedforward(weights, biases, x), y))) * 0.5


class Network:
    """The seed's fully connected sigmoid network.

    Shapes: ``weights[l]`` (sizes[l+1], sizes[l]), ``biases[l]`` (sizes[l+1], 1); inputs are columns
    (n_in, m). ``rng`` (an int seed or a Generator) draws the initial weights and the shuffling, so a
    seed makes a run reproducible. ``init="book"`` draws every weight from N(0, 1) as the seed does;
    ``init="scaled"`` draws weights from N(0, 1/n_in) (the book's chapter-3 improvement).
    ``taped=True`` (the default) replays each mini-batch's ops from a tape (``autobp.tape``),
    which gives the eager engine's gradients bit for bit at a third of its cost; ``taped=False``
    builds the graph anew for every mini-batch.

    >>> net = Network([2, 3, 1], rng=0)
    >>> [w.shape for w in net.weights], [b.shape for b in net.biases]
    ([(3, 2), (1, 3)], [(3, 1), (1, 1)])
    >>> net.feedforward(np.zeros((2, 4))).shape
    (1, 4)
    """

    def __init__(
        self,
        sizes: Sequence[int],
        rng: int | np.random.Generator | None = None,
        init: str = "book",
        taped: bool = True,
    ) -> None:
        sizes = [int(n) for n in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"Network: sizes must list at least two positive layer sizes, got {sizes}")
        if init not in ("book", "scaled"):
            raise ValueError(f"Network: init must be 'book' or 'scaled', got {init!r}")
        self.sizes = sizes
        self.num_layers = len(sizes)
        self.rng = as_generator(rng)
        # Biases first, then weights: the order the seed draws them in.
        biases = [self.rng.standard_normal((n, 1)) for n in sizes[1:]]
        weights = [self.rng.standard_normal((n_out, n_in)) for n_in, n_out in itertools.pairwise(sizes)]
        if init == "scaled":
            weights = [w / np.sqrt(w.shape[1]) for w in weights]
        self.biases = [Tensor(b, requires_grad=True) for b in biases]
        self.weights = [Tensor(w, requires_grad=True) for w in weights]
        # Every mini-batch runs the same ops on arrays of the same shapes: a tape records them
        # once and replays them (autobp.tape), bit for bit what the eager engine computes.
        n = len(self.biases)
        cost = value_and_grad(self._cost_of_parameters, tuple(range(2 * n))) if taped else None
        self._taped_cost = cost

    def __repr__(self) -> str:
        return f"Network({self.sizes})"

    def to(self, library: str | None = None, device: Any = None) -> Network:
        """Move the weights and biases to another array library or device, in place; returns self.

        >>> net = Network([2, 3, 1], rng=0).to("array_api_strict")
        >>> net.weights[0].library
        'array_api_strict'
        """
        target = backends.library(library) if library is not None else None
        for param in self.parameters():
            move_parameter(param, target, device)
        return self

    def _library(self) -> backends.Namespace:
        return backends.namespace(self.weights[0].data)

    def _here(self, array: Any) -> Any:
        """``array`` (host data: numpy, lists) as float64 in the parameters' library and device; an
        array of that library as it is. Another library's array is an error (no silent host copy)."""
        xp, lib = self._library(), backends.library_of(array)
        if lib is xp and xp.name != "numpy":
            return array
        if lib is not None and lib.name != "numpy":
            raise backends.MixedArraysError(
                f"Network: got {backends.describe(array)} for a network in {xp.name}; "
                f"move one first: net.to({lib.name!r}) or pass numpy data"
            )
        host = np.asarray(array, dtype=np.float64)
        return host if xp.name == "numpy" else xp.from_numpy(host, xp.device(self.weights[0].data))

    def feedforward(self, a: Any) -> Tensor:
        """The output activations. Shapes: a (n_in, m) -> (n_out, m). Records a graph when grad is on."""
        return _feedforward(self.weights, self.biases, a)

    def cost(self, x: Any, y: Any) -> Tensor:
        """The quadratic cost summed over the mini-batch, ``sum_j 0.5 * ||a_j - y_j||^2`` (a scalar).

        Shapes: x (n_in, m), y (n_out, m) -> ().
        """
        return _cost(self.weights, self.biases, x, y)

    def _cost_of_parameters(self, *args: Any) -> Tensor:
        """``cost`` as a function of (biases..., weights..., x, y), the form a tape differentiates."""
        n = len(self.biases)
        return _cost(args[n : 2 * n], args[:n], args[-2], args[-1])

    def backprop(self, x: Any, y: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Gradients of the cost with respect to every bias and weight, by autograd (summed over columns).

        Shapes: x (n_in, m), y (n_out, m) -> (nabla_b, nabla_w), numpy arrays shaped like the
        biases and the weights. With one column this is the seed's ``backprop(x, y)``.
        """
        gradients, _ = self._gradients(self._here(x), self._here(y))
        n = len(self.biases)
        return gradients[:n], gradients[n:]

    def _gradients(self, x: Any, y: Any) -> tuple[list[Any], float]:
        n_in, n_out = self.sizes[0], self.sizes[-1]
        if x.ndim != 2 or y.ndim != 2 or x.shape[0] != n_in or y.shape[0] != n_out or x.shape[1] != y.shape[1]:
            raise ValueError(
                f"Network.backprop: x must be ({n_in}, m) and y ({n_out}, m) with the same m; "
                f"got x {backends.describe(x)} and y {backends.describe(y)}"
            )
        # A tape differentiates fresh leaves, as autobp.functional does, so a hook the user put on a
        # parameter (``w.register_hook(clip)``) never ran: the eager walk runs it, as ab.grad does.
        # (looked for only once a leaf hook was ever made: a training step pays one flag's read)
        if self._taped_cost is not None and not (hooks.leaf_hooks_made and self._hooked()):
            cost, gradients = self._taped_cost.arrays(*self.biases, *self.weights, x, y)
            return gradients, float(cost)
        # Wrapped, not copied: no user code runs between this forward and its backward, so the
        # arrays cannot change in between (an op copies a bare numpy constant it saves).
        loss = self.cost(Tensor._wrap(x), Tensor._wrap(y))
        return [g.data for g in grad(loss, [*self.biases, *self.weights]) if g is not None], float(loss.data)

    def _hooked(self) -> bool:
        return any(p._hooks for p in self.weights) or any(p._hooks for p in self.biases)

    def update_mini_batch(self, mini_batch: Any, eta: float) -> float:
        """One gradient-descent step on a mini-batch: ``w <- w - (eta / m) * nabla_w`` (same for b).

        ``mini_batch`` is a list of (x, y) pairs or a tuple (x (n_in, m), y (n_out, m)). Returns the
        mini-batch's summed cost before the step.
        """
        x, y = stack_examples(mini_batch, self.sizes[-1])
        if type(self.weights[0].data) is not np.ndarray:
            x, y = self._here(x), self._here(y)
        return self._step(x, y, eta)

    def _step(self, x: Any, y: Any, eta: float) -> float:
        gradients, cost = self._gradients(x, y)
        step = eta / x.shape[1]
        for param, g in zip(self.biases + self.weights, gradients, strict=True):
            # Straight into the arrays: Tensor.sub_ would add its guards to every step (~9% of a
            # [784, 30, 10] step, measured). The version bump still lets a graph that saved these
            # parameters notice the change, as an optimizer's step does.
            param.data -= step * g
            counter = param._vc  # `param._version += 1` without the property's two calls
            if counter is None:
                param._vc = [1]
            else:
                counter[0] += 1
        return cost

    def SGD(  # the seed's name, capitals included
        self,
        training_data: Any,
        epochs: int,
        mini_batch_size: int,
        eta: float,
        test_data: Any = None,
        *,
        callback: Callable[[dict[str, Any]], None] | None = None,
        progress: Progress | None = None,
    ) -> list[dict[str, Any]]:
        """Mini-batch stochastic gradient descent, the seed's training loop.

        Each epoch shuffles the examples with ``self.rng`` and steps on consecutive mini-batches.
        Returns one record per epoch: ``epoch``, ``loss`` (mean cost per example, summed during
        the epoch before each step), and with ``test_data`` also ``correct`` and ``total``.
        ``callback(record)`` runs after each epoch; ``progress(batch_starts, total)`` may wrap the
        loop over mini-batches (e.g. a tqdm bar). Shapes: see ``stack_examples``, ``stack_labels``.
        """
        if epochs < 0 or mini_batch_size < 1:
            raise ValueError(f"Network.SGD: need epochs >= 0 and mini_batch_size >= 1, got {epochs}, {mini_batch_size}")
        x, y = stack_examples(training_data, self.sizes[-1])
        # Rows of a C-ordered array gather fast; each gathered block is used transposed, (n_in, m).
        rows_x, rows_y = np.ascontiguousarray(x.T), np.ascontiguousarray(y.T)
        n = rows_x.shape[0]
        test = stack_labels(test_data) if test_data is not None else None
        xp = self._library()
        on_numpy = xp.name == "numpy"
        if not on_numpy:  # the data moved once, the batches gathered where they live
            rows_x, rows_y = self._here(rows_x), self._here(rows_y)
        history = []
        for epoch in range(epochs):
            order = self.rng.permutation(n)  # drawn on the host: the same order on every library
            starts: Iterable[int] = range(0, n, mini_batch_size)
            if progress is not None:
                starts = progress(starts, len(range(0, n, mini_batch_size)))
            total_cost = 0.0
            if not on_numpy:
                order = xp.from_numpy(order, xp.device(rows_x))
            for start in starts:
                batch = order[start : start + mini_batch_size]
                if on_numpy:
                    total_cost += self._step(rows_x[batch].T, rows_y[batch].T, eta)
                else:
                    total_cost += self._step(xp.take(rows_x, batch, axis=0).T, xp.take(rows_y, batch, axis=0).T, eta)
            record: dict[str, Any] = {"epoch": epoch, "loss": total_cost / n}
            if test is not None:
                record["correct"], record["total"] = self.evaluate(test), test[0].shape[1]
            history.append(record)
            if callback is not None:
                callback(record)
        return history

    def predict(self, x: Any) -> np.ndarray:
        """The argmax class of each column. Shapes: x (n_in, m) -> (m,) ints."""
        with no_grad():
            out = self.feedforward(self._here(x)).data
        xp = backends.namespace(out)
        return xp.to_numpy(xp.argmax(out, axis=0))

    def evaluate(self, test_data: Any) -> int:
        """How many test inputs the network classifies correctly (argmax of the output layer).

        ``test_data``: a list of (x (n_in, 1), int label) pairs, or a tuple (x (n_in, n), labels (n,)).
        """
        x, labels = stack_labels(test_data)
        return int((self.predict(x) == labels).sum())

    def parameters(self) -> Iterator[Tensor]:
        """The biases, then the weights (the order ``backprop`` returns their gradients in)."""
        yield from self.biases
        yield from self.weights
