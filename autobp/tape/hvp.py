"""``TapedHvp``: a Hessian-vector product on a tape, traced forward-over-reverse.

The trace runs what ``autobp.functional.hvp`` runs (``strategy="forward-over-reverse"``): the
differentiated arguments carry the directions as tangents at a forward-mode level, ``func``
runs, and its gradient is computed with ``create_graph=True`` inside that level, so that the
tangent of each gradient is ``H v``. Every op of the three (the forward, its backward, and the
tangents' ops that ``autobp.forward`` runs on Tensors while a tape traces) goes on the tape;
the directions are tape inputs like the arguments. Everything else is ``Taped``'s: signatures,
guards, closures' versions, fresh results, and the eager comparison of the first replays,
here against ``functional.hvp``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from autobp import engine, functional, grad_mode, graph
from autobp.forward_ad import attach, dual_level, tangent_of
from autobp.functional_args import filled
from autobp.graph import TapeError
from autobp.ops.registry import describe
from autobp.tape.arguments import as_tensors, is_array, wanted_leaves
from autobp.tape.compile import Tape, compiled
from autobp.tape.taped import Taped, _fresh, loss_of
from autobp.tape.trace import Recorder, trace_inputs
from autobp.tensor import Tensor

__all__ = ["TapedHvp"]


class TapedHvp(Taped):
    """A taped ``hvp`` (made by ``autobp.tape.hvp``): called with ``func``'s arguments and then
    the direction ``v``, it returns ``(func(*args), H v)``.

    Shapes: ``v`` is one array of the shape of ``args[argnums]`` for an int ``argnums``, else a
    tuple with one such array per entry; ``H v`` has the same shapes.
    """

    _result_name = "Hessian-vector product"
    _eager_name = "hvp"

    def __init__(self, func: Callable[..., Tensor], argnums: int | tuple[int, ...] = 0) -> None:
        super().__init__(func, argnums)
        self._directions = len(self._positions)
        self._many = not isinstance(argnums, int)  # v is a tuple of directions, one per argnum
        if len(set(self._positions)) != len(self._positions):
            raise ValueError(f"tape.hvp: argnums {argnums} names an argument twice; name each once")

    def __repr__(self) -> str:
        return f"<taped hvp of {getattr(self.func, '__qualname__', self.func)}>"

    def arrays(self, *args: Any) -> tuple[np.ndarray, list[np.ndarray]]:
        """A call with numpy arrays for results: the value, and a list of the products (fresh arrays)."""
        # The usual call, as _expanded makes it (checks and all), in fewer steps.
        v = args[-1] if args else None
        if type(v) is tuple and len(v) == self._directions and self._many and graph._local.modes.forward is None:
            return self._arrays(args[:-1] + v)
        return self._arrays(self._expanded(args))

    def source(self, *args: Any) -> str:
        """The program a call with these arguments (``v`` last) replays; see ``Taped.source``."""
        return super().source(*self._expanded(args))

    def _expanded(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """``(*func's arguments, *directions)``: the directions become tape inputs at the end."""
        if graph._local.modes.forward is not None:  # its level's tangents would go on this tape as constants
            raise TapeError("tape.hvp: called inside a forward-mode level; use autobp.functional.hvp there")
        if not args:
            raise TypeError("tape.hvp: call it with func's arguments followed by the direction v")
        *given, v = args
        vectors = (v,) if isinstance(self.argnums, int) else v
        if not isinstance(vectors, tuple | list) or len(vectors) != len(self._positions):
            raise TypeError(
                f"tape.hvp: v must be {'one array' if isinstance(self.argnums, int) else 'a tuple of arrays'}, one "
                f"per entry of argnums {self.argnums}, given as the last argument; got {describe(v)}"
            )
        return (*given, *vectors)

    def _checked(self, args: tuple[Any, ...]) -> None:
        """Each direction an array of its argument's shape. (A call whose signature has a checked
        tape has the same arrays and shapes as one that passed: it is not checked again.)"""
        n = self._split(args)
        given, vectors = args[:n], args[n:]
        for p, vector in zip(self._positions, vectors, strict=True):
            if not is_array(vector) or not -len(given) <= p < len(given) or not is_array(given[p]):
                raise TypeError(
                    f"tape.hvp: argnums {self.argnums} must name array arguments and v hold arrays; "
                    f"got argument {describe(given[p]) if -len(given) <= p < len(given) else 'missing'}, "
                    f"direction {describe(vector)}"
                )
            if np.shape(vector) != np.shape(given[p]):
                raise ValueError(
                    f"tape.hvp: the direction for argument {p} has shape {np.shape(vector)}, but the argument "
                    f"has shape {np.shape(given[p])}; they must match"
                )

    def _split(self, args: tuple[Any, ...]) -> int:
        """How many of ``args`` are ``func``'s (the rest are the directions)."""
        return len(args) - len(self._positions)

    def _trace(self, args: tuple[Any, ...], arrays: list[np.ndarray]) -> tuple[Tape | None, str | None]:
        """Run ``func``, its create_graph backward and their tangents while recording."""
        n = self._split(args)
        wanted = wanted_leaves(self._positions, args[:n], self.argnums, "tape.hvp")
        inputs = trace_inputs(arrays)
        call_args = as_tensors(args, inputs, wanted)
        leaves: list[Tensor] = [arg for arg in call_args[:n] if isinstance(arg, Tensor)]
        directions = call_args[n:]
        recorder = Recorder(inputs, [*leaves, *[None] * len(directions)], arrays)  # func never sees the directions
        recorder.forward_mode = True
        mode = graph._local.modes
        with dual_level(differentiable=False) as level:  # entered before the tape: its own level
            mode.tape = recorder
            try:
                with grad_mode.enable_grad():
                    for k, direction in zip(wanted, directions, strict=True):  # as functional.hvp attaches
                        x = leaves[k]
                        attach(level, x, direction if direction.dtype == x.dtype else direction.astype(x.dtype))
                    loss = loss_of(self.func(*call_args[:n]), "tape.hvp")
                    seed = [filled(loss, 1)]
                    found = (
                        engine.grad([loss], [leaves[k] for k in wanted], seed, create_graph=True, allow_unused=True)
                        if loss.requires_grad
                        else [None] * len(wanted)
                    )
                    products = [_product(level, g, leaves[k]) for g, k in zip(found, wanted, strict=True)]
            finally:
                mode.tape = None
            if recorder.untapeable is not None:
                return None, recorder.untapeable
            tape, unlike = compiled(recorder, [recorder.slot(loss), *(recorder.slot(p) for p in products)])
            if tape is None:
                return None, unlike
        del recorder, loss, found, products, call_args, leaves, directions, seed, inputs
        tape.settle()
        return tape, None

    def _eager(self, args: tuple[Any, ...], arrays: list[np.ndarray]) -> tuple[Any, list[Any]]:
        """``functional.hvp`` of ``func`` in the differentiated arguments, the others held fixed."""
        n = self._split(args)
        tensors = as_tensors(args, arrays, [])
        positions = [p % n for p in self._positions]

        def of_differentiated(*xs: Tensor) -> Any:
            call = list(tensors[:n])
            for p, x in zip(positions, xs, strict=True):
                call[p] = x
            return self.func(*call)

        xs = tuple([tensors[p] for p in positions])
        value, products = functional.hvp(of_differentiated, xs, tuple(tensors[n:]))
        results = _fresh([value.data, *(product.data for product in products)], arrays)
        return results[0], results[1:]


def _product(level: dual_level, gradient: Tensor | None, x: Tensor) -> Tensor:
    """The tangent of ``gradient`` (``H v``), or zeros (constant) where there is none."""
    tangent = tangent_of(level, gradient) if gradient is not None else None
    return filled(x, 0) if tangent is None else tangent
