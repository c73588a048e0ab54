"""The plain-text form of an explanation (``str(ab.viz.explain(loss))``, ``autobp explain --text``)."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

import numpy as np

from autobp.viz.summary import l2_norm, number_text

if TYPE_CHECKING:
    from autobp.viz.explain_model import Check, Explanation, Step

__all__ = ["array_text", "engine_text", "explanation_text", "hooks_text", "SHOWN_ELEMENTS"]

SHOWN_ELEMENTS = 40  # arrays up to this size are printed in full; larger ones are summarised


def array_text(value: Any, indent: str = "") -> str:
    """An array as a terminal shows it: every number up to ``SHOWN_ELEMENTS``, else a summary.

    Shapes: any. A column (n, 1) prints as a transposed row, to keep the page short.

    >>> array_text(np.array([[1.0], [2.5]]))
    '[1  2.5]^T  (2, 1)'
    >>> array_text(np.zeros((30, 784)))
    '(30, 784)  norm 0  min 0  max 0  first [0  0  0  0  0 ...]'
    """
    if isinstance(value, tuple):
        return str(value)
    array = np.asarray(value, dtype=np.float64)
    if array.size == 0:  # no numbers to print (and no rows to reshape into)
        return f"empty {array.shape}"
    if array.size == 1:
        return number_text(float(array.reshape(())))
    if array.size > SHOWN_ELEMENTS:
        first = "  ".join(number_text(v) for v in array.ravel()[:5])
        stats = f"norm {number_text(l2_norm(array))}  min {number_text(array.min())}  max {number_text(array.max())}"
        return f"{array.shape}  {stats}  first [{first} ...]"
    if array.ndim <= 1 or (array.ndim == 2 and array.shape[1] == 1):
        numbers = [number_text(v) for v in array.ravel()]
        # Ten numbers a line: a 30-neuron layer's column stays within a terminal's width.
        lines = ["  ".join(numbers[i : i + 10]) for i in range(0, len(numbers), 10)]
        transposed = "^T" if array.ndim == 2 else ""
        return "[" + f"\n{indent}   ".join(lines) + f"]{transposed}  {array.shape}"
    rows = ["[" + "  ".join(f"{number_text(v):>9}" for v in row) + "]" for row in array.reshape(array.shape[0], -1)]
    return f"{array.shape}\n" + "\n".join(indent + "  " + row for row in rows)


def check_text(check: Check) -> str:
    """``BP3 dC/db2: max |autobp - reference| = 0 <= tolerance 3.1e-12 (reference.backprop nabla_b[1]) ok``."""
    verdict = "ok" if check.ok else "MISMATCH"
    bound = f"{'<=' if check.max_diff <= check.tolerance else '>'} tolerance {check.tolerance:.2g}"
    return (
        f"{check.equation} {check.what}: max |autobp - reference| = {check.max_diff:.3g} {bound} "
        f"({check.source}) {verdict}"
    )


def hooks_text(explanation: Explanation) -> str:
    """Which tensors have gradient hooks, and what that means for the numbers shown."""
    return (
        f"Gradient hooks on {', '.join(explanation.hooks)} change the gradient the engine passes back there: "
        "at those tensors and below them the numbers are what the engine passed, not dC/d of the cost."
    )


def engine_text(explanation: Explanation) -> str:
    """The closing comparison of the rules' gradients with the engine's, true whichever way it went."""
    diff = explanation.engine_max_diff
    if diff == 0.0:
        return "Every gradient above, summed per tensor, equals what the engine delivered there: max |diff| = 0"
    cause = f": the hooks on {', '.join(explanation.hooks)} changed them" if explanation.hooks else ""
    return (
        "The gradients above, summed per tensor, differ from what the engine delivered there by "
        f"max |diff| = {diff:.3g}{cause}"
    )


def _step_text(step: Step, total: int) -> list[str]:
    pad = "    "
    head = f"Step {step.number}/{total}  {step.op}" + (f" ({step.kwargs})" if step.kwargs else "")
    lines = [head + f"  ->  {step.output}"]
    for note in step.notes:
        lines.append(f"  {note.text}")
    for index, flow in enumerate(step.flows):
        param = "xy"[index] if len(step.flows) <= 2 else f"input {index}"  # the rule's name for the input
        if flow.gradient is not None:
            lines.append(f"  rule for {flow.label} ({param}): {flow.formula.text}")
    if step.hooked == "hook":
        lines.append(f"  grad (arriving at {step.output}, changed by its hook) = {array_text(step.incoming, pad)}")
    elif step.hooked == "below":
        lines.append(f"  grad (arriving at {step.output}, from a hooked gradient) = {array_text(step.incoming, pad)}")
    else:
        lines.append(f"  grad (dC/d {step.output}) = {array_text(step.incoming, pad)}")
    for name, value in step.saved:
        lines.append(f"  saved {name} = {array_text(value, pad)}")
    for flow in step.flows:
        if flow.gradient is None:
            lines.append(f"  sends nothing to {flow.label} (needs no gradient)")
        else:
            what = f"to {flow.label} (from a hooked gradient)" if step.hooked else f"dC/d {flow.label}"
            lines.append(f"  sends {what} = {array_text(flow.gradient, pad)}")
    for check in step.checks:
        lines.append("  check " + check_text(check))
    return lines


def explanation_text(explanation: Explanation) -> str:
    """Every step of the explanation as plain text, then the leaves' gradients and the descent step."""
    steps = explanation.steps
    lines = [
        f"autobp explain: the backward pass of {explanation.title}, step by step",
        f"cost C = {number_text(explanation.loss)}; {len(steps)} steps, in the order autobp's engine ran them.",
        "grad is the gradient arriving at a node's output (dC/d out); each rule is the op's vjp in the",
        "registry, applied to the values the forward pass saved.",
        "",
    ]
    if explanation.hooks:
        lines += [*textwrap.wrap(hooks_text(explanation), 96), ""]
    for step in steps:
        lines.extend(_step_text(step, len(steps)))
        lines.append("")
    lines.append("Gradients of the leaves:")
    for label, g in explanation.leaves:
        what = f"grad of {label} (from a hooked gradient)" if label in explanation.hooked_leaves else f"dC/d {label}"
        lines.append(f"  {what} = {array_text(g, '    ')}")
    lines.append(engine_text(explanation))
    checks = explanation.checks
    if checks:
        bad = [c for c in checks if not c.ok]
        worst = max(c.max_diff for c in checks)
        verdict = "all equal" if not bad else f"{len(bad)} MISMATCH"
        lines.append(f"BP1-BP4 against autobp.reference: {len(checks)} checks, {verdict} (max |diff| {worst:.3g})")
    descent = explanation.descent
    if descent is not None:
        lines += [
            "",
            f"One gradient-descent step, eta = {descent.eta:g}, over {descent.examples} example(s):",
            "  w <- w - (eta/m) dC/dw and b <- b - (eta/m) dC/db, with the gradients above",
            f"  cost before {descent.cost_before:.6g}, after {descent.cost_after:.6g}",
            f"  autobp.reference.update_mini_batch: cost after {descent.reference_cost_after:.6g}, "
            f"parameters max |diff| {descent.max_parameter_diff:.3g}",
        ]
    return "\n".join(lines)
