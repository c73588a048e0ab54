"""What ``autobp.viz.explain`` finds: the steps of one backward pass and their checks, as plain data.

The text and HTML forms (``explain_text``, ``explain_html``) only format these; every number in
them was computed by ``autobp.viz.explain`` from the recorded graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autobp.tensor import Tensor
from autobp.viz.explain_rules import RuleFormula

__all__ = ["Check", "Descent", "Explanation", "Flow", "Note", "Step"]


@dataclass
class Flow:
    """One input of a step: its label, its vjp formula, and the gradient the rule sends it (None: not needed)."""

    label: str
    formula: RuleFormula
    gradient: np.ndarray | None


@dataclass
class Check:
    """A value of the walk next to the hand-written reference's, e.g. delta^2 against reference.backprop.

    Shapes: ``value`` and ``reference`` alike.
    """

    equation: str  # "BP1".."BP4", or "cost"
    what: str  # what is compared, e.g. "delta^2 (the gradient sent to z2)"
    value: np.ndarray
    reference: np.ndarray
    source: str  # where the reference number comes from, e.g. "reference.backprop nabla_b[1]"

    @property
    def max_diff(self) -> float:
        """The largest absolute difference between the two."""
        return float(np.max(np.abs(self.value - self.reference))) if self.value.size else 0.0

    @property
    def tolerance(self) -> float:
        """The largest difference still called equal: rounding of the coarser of the two dtypes.

        The two sum in different orders, so they differ by rounding: 1e-12 relative in float64
        (about 4,500 machine epsilons), the same number of epsilons in float32 (about 5e-4), whose
        rounding is 2**29 times coarser; a fixed 1e-12 would call every float32 network a mismatch.
        """
        eps = max(_epsilon(self.value.dtype), _epsilon(self.reference.dtype))
        scale = 1.0 + float(np.max(np.abs(self.reference))) if self.reference.size else 1.0
        return 1e-12 * (eps / _epsilon(np.dtype(np.float64))) * scale

    @property
    def ok(self) -> bool:
        """Equal up to rounding in the arrays' dtype (``tolerance``)."""
        return self.value.shape == self.reference.shape and self.max_diff <= self.tolerance


def _epsilon(dtype: np.dtype) -> float:
    # Integer or other non-float arrays compare as the float64 they are computed in.
    return float(np.finfo(dtype).eps) if dtype.kind in "fc" else float(np.finfo(np.float64).eps)


@dataclass
class Note:
    """What a step means in the book's terms: an equation label with LaTeX and plain-text forms."""

    equation: str
    latex: str
    text: str
    gloss: str = ""  # the words of ``text`` without its formula, shown after the typeset one


@dataclass
class Step:
    """One node of the backward pass, in the engine's order. Shapes: each array is its tensor's."""

    number: int
    op: str
    output: str  # label of the tensor the node produced
    kwargs: str
    incoming: np.ndarray  # dC/d(output): what arrived at the node
    saved: list[tuple[str, Any]]  # (name, value) the rule reads: "out", "x", "y", "x.shape"
    flows: list[Flow]
    notes: list[Note] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    # "hook": a gradient hook on the output changed ``incoming``; "below": a hooked gradient reached it
    # from a later op. Either way its numbers are what the engine passed, not dC/d of the cost.
    hooked: str = ""


@dataclass
class Descent:
    """One gradient-descent step with the walk's gradients, and the cost before and after."""

    eta: float
    examples: int
    cost_before: float
    cost_after: float
    reference_cost_after: float  # the same step by autobp.reference.update_mini_batch
    max_parameter_diff: float  # between autobp's stepped parameters and the reference's


@dataclass
class Explanation:
    """The steps of one backward pass; ``str()`` is the text form, ``_repr_html_`` shows it in Jupyter."""

    title: str
    loss: float
    steps: list[Step]
    leaves: list[tuple[str, np.ndarray]]  # every leaf that requires grad and its gradient
    engine_max_diff: float  # rules rerun here vs the gradients the engine delivered
    root: Tensor
    labels: list[tuple[str, Tensor]]  # every drawn tensor and its label, for the graph picture
    seed: Any = None  # the matched seed network (explain_seed.SeedGraph), or None
    descent: Descent | None = None
    hooks: list[str] = field(default_factory=list)  # labels of the tensors with gradient hooks
    hooked_leaves: list[str] = field(default_factory=list)  # leaves whose gradient a hook changed

    @property
    def checks(self) -> list[Check]:
        """Every comparison with ``autobp.reference``, in step order."""
        return [check for step in self.steps for check in step.checks]

    def __str__(self) -> str:
        from autobp.viz.explain_text import explanation_text  # (it formats this class: imported on use)

        return explanation_text(self)

    def _repr_html_(self) -> str:
        from autobp.viz.explain_html import explanation_fragment

        return explanation_fragment(self)

    def save_html(self, directory: str | Path) -> Path:
        """Write the self-contained page ``directory/index.html`` (KaTeX inlined, no network); return it."""
        from autobp.viz.explain_html import write_page

        return write_page(self, Path(directory))
