"""Extras written in the array API standard alone, for the libraries with nothing faster of their
own (cupy, torch, array-api-strict); numpy's module has its own (``np.add.reduce``, strided views).

``written_in_the_standard(standard)`` returns the functions for one library, given how its module
reaches its standard namespace (imported on first use, so that importing autobp imports no library).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["written_in_the_standard"]

Function = Callable[..., Any]


def written_in_the_standard(standard: Callable[[], Any]) -> tuple[Function, Function, Function]:
    """``(sum_kept, matmul_nt, matmul_tn)`` computed with ``standard()``'s functions."""

    def sum_kept(x: Any, axes: tuple[int, ...]) -> Any:
        """``x`` summed over ``axes``, kept with size 1."""
        return standard().sum(x, axis=axes, keepdims=True)

    def matmul_nt(x: Any, y: Any) -> Any:
        """``x @ y^T`` over the last two axes."""
        xp = standard()
        return xp.matmul(x, xp.matrix_transpose(y))

    def matmul_tn(x: Any, y: Any) -> Any:
        """``x^T @ y`` over the last two axes."""
        xp = standard()
        return xp.matmul(xp.matrix_transpose(x), y)

    return sum_kept, matmul_nt, matmul_tn
