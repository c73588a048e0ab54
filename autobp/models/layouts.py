"""The data layouts the seed's network takes: (x, y) pairs or matrices, one example per column.

``Network.SGD``, ``update_mini_batch`` and ``evaluate`` accept what the seed's ``mnist_loader``
gives (a list of ``(x (n_in, 1), y)`` pairs) and its vectorized form (a tuple of matrices);
these functions turn either into the matrices the network computes with.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["one_hot", "stack_examples", "stack_labels"]


def stack_examples(data: Any, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Training data in either accepted layout, as (x, y) matrices with one example per column.

    Shapes: a list of ``(x (n_in, 1), y (n_out, 1))`` pairs, or a tuple of arrays
    ``(x (n_in, n), y (n_out, n) or labels (n,))`` -> x (n_in, n), y (n_out, n) one-hot.
    """
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], np.ndarray):
        x, y = np.asarray(data[0], dtype=np.float64), np.asarray(data[1])
        if y.ndim == 1:
            y = one_hot(y, n_out)
    else:
        pairs = list(data)
        if not pairs:
            raise ValueError("Network: training data is empty")
        x = np.hstack([np.asarray(p[0], dtype=np.float64) for p in pairs])
        y = np.hstack([np.asarray(p[1], dtype=np.float64) for p in pairs])
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or y.shape[0] != n_out:
        raise ValueError(
            f"Network: training data must give x (n_in, n) and y ({n_out}, n), got x {list(x.shape)}, y {list(y.shape)}"
        )
    return x, y.astype(np.float64, copy=False)


def stack_labels(data: Any) -> tuple[np.ndarray, np.ndarray]:
    """Test data as (x, labels). Shapes: pairs ``(x (n_in, 1), int)`` or ``(x (n_in, n), labels (n,))``
    -> x (n_in, n), labels (n,) ints. One-hot ``y`` columns are turned into labels by argmax."""
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], np.ndarray):
        x, labels = np.asarray(data[0], dtype=np.float64), np.asarray(data[1])
    else:
        pairs = list(data)
        x = np.hstack([np.asarray(p[0], dtype=np.float64) for p in pairs])
        labels = np.array([_pair_label(p[1]) for p in pairs])
    if labels.ndim == 2:
        # One-hot columns only: argmax of anything else (a (1, n) row of labels, scores) would
        # turn it into wrong labels without a word.
        if labels.shape[0] < 2 or not (np.isin(labels, (0, 1)).all() and (labels.sum(axis=0) == 1).all()):
            raise ValueError(
                f"Network: 2-D labels must be one-hot columns (n_out, n), got shape {labels.shape}; "
                "give class indices as a 1-D array (n,)"
            )
        labels = labels.argmax(axis=0)
    if x.ndim != 2 or labels.shape != (x.shape[1],):
        raise ValueError(
            f"Network: test data must give x (n_in, n) and labels (n,), got {list(x.shape)}, {labels.shape}"
        )
    if labels.dtype.kind not in "iub" and not (labels.dtype.kind == "f" and (labels == np.round(labels)).all()):
        raise ValueError(f"Network: labels must be class indices (integers), got {labels.dtype} values")
    return x, labels.astype(np.int64)


def _pair_label(y: Any) -> Any:
    """A pair's label: an int (or a one-element array holding it), or a one-hot column, whose
    argmax it is. Argmax of a one-element array is 0 whatever it holds: ``np.array([2])`` was
    counted as class 0; of anything but a one-hot column (scores), a label without a word."""
    y = np.asarray(y)
    if y.size == 1:
        return y.reshape(()).item() if y.dtype.kind != "b" else int(y.reshape(()).item())
    if not (np.isin(y, (0, 1)).all() and y.sum() == 1):
        raise ValueError(
            f"Network: a pair's label must be a class index or a one-hot column, "
            f"got {y.dtype} values of shape {y.shape}"
        )
    return int(np.argmax(y))


def one_hot(labels: np.ndarray, n_out: int) -> np.ndarray:
    """Int labels as one-hot columns. Shapes: (n,) -> (n_out, n).

    >>> one_hot(np.array([2, 0]), 3).tolist()
    [[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]]
    """
    labels = np.asarray(labels)
    if labels.dtype.kind == "b":  # classes 0 and 1: numpy would read a bool array as a mask
        labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= n_out):
        raise ValueError(f"one_hot: labels must lie in [0, {n_out}), got range [{labels.min()}, {labels.max()}]")
    out = np.zeros((n_out, labels.shape[0]))
    out[labels, np.arange(labels.shape[0])] = 1.0
    return out
