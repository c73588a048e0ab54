"""Adam and AdamW (decoupled weight decay), with PyTorch's update formulas."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from autobp.backends import namespace
from autobp.optim.optimizer import Optimizer

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam, per parameter ``p`` with gradient ``g`` at step ``t``::

        g = g + weight_decay * p                      (L2 penalty; AdamW decays p instead)
        m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2   (v_max = max(v_max, v) with amsgrad)
        p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    >>> import autobp as ab
    >>> w = ab.tensor([1.0], requires_grad=True)
    >>> opt = ab.optim.Adam([w], lr=0.1)
    >>> (w * w).sum().backward(); opt.step()
    >>> round(w.item(), 6)
    0.9
    """

    decoupled = False
    takes_complex = False  # (g * g, sqrt and the division would not be per part, as PyTorch's are)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(
                f"{type(self).__name__}: need lr, eps, weight_decay >= 0 and betas in [0, 1), got "
                f"lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}"
            )
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay, "amsgrad": amsgrad}
        super().__init__(params, defaults)

    def update(self, param: Any, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        xp = namespace(param)
        lr, (beta1, beta2), decay = group["lr"], group["betas"], group["weight_decay"]
        if not state:
            state.update(step=0, exp_avg=xp.zeros_like(param), exp_avg_sq=xp.zeros_like(param))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(param)
        state["step"] += 1
        step = state["step"]
        if decay and self.decoupled:
            param *= 1 - lr * decay
        elif decay:
            grad = grad + decay * param
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg *= beta1
        exp_avg += (1 - beta1) * grad
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad
        if group["amsgrad"]:
            exp_avg_sq = state["max_exp_avg_sq"] = xp.maximum(state["max_exp_avg_sq"], exp_avg_sq)
        # Python floats for the corrections: a float32 parameter is updated in float32 on every library.
        denom = xp.sqrt(exp_avg_sq) / math.sqrt(1 - beta2**step) + group["eps"]
        param -= lr / (1 - beta1**step) * exp_avg / denom


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p = p (1 - lr weight_decay)`` before the Adam step."""

    decoupled = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
