"""Learning-rate schedules: ``StepLR`` and ``CosineAnnealingLR``; call ``step()`` once per epoch.

Each step changes a group's *current* ``lr`` (PyTorch's chainable form): two schedulers on one
optimizer compose (each scales what the other left), and an ``lr`` set by hand between steps is
where the schedule goes on from. Left alone, a schedule follows its closed form (``lr_at``).
"""

from __future__ import annotations

import math
from typing import Any

from autobp.optim.optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR"]


class LRScheduler:
    """Sets each group's ``lr`` once per epoch; ``last_epoch`` counts the steps taken.

    A subclass gives ``next_lr`` (the chainable step) and ``lr_at`` (the closed form from the
    group's ``initial_lr``); one that gives ``lr_at`` alone sets ``lr`` from it on every step.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = 0

    def lr_at(self, base_lr: float, epoch: int) -> float:
        """The learning rate at ``epoch`` for a group that started at ``base_lr``, nothing else changing it."""
        raise NotImplementedError

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        """The learning rate for ``epoch`` given the group's current ``lr`` (the closed form here)."""
        return self.lr_at(base_lr, epoch)

    def step(self) -> None:
        """Advance one epoch and set the new learning rates."""
        self.last_epoch += 1
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = self.next_lr(group["lr"], base, self.last_epoch)

    def get_last_lr(self) -> list[float]:
        """The current learning rate of each group."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """The epoch count, the base rates and the current ones (hyperparameters are restored by
        constructing it again)."""
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs), "last_lrs": self.get_last_lr()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from ``state_dict()``: the epoch count, and each group's ``lr`` as it was saved
        (the next step goes on from it; a state without it sets the closed form's)."""
        self.last_epoch = int(state["last_epoch"])
        self.base_lrs = [float(lr) for lr in state["base_lrs"]]
        saved = state.get("last_lrs")
        lrs = [self.lr_at(base, self.last_epoch) for base in self.base_lrs] if saved is None else saved
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = float(lr)


class StepLR(LRScheduler):
    """Multiplies ``lr`` by ``gamma`` every ``step_size`` epochs: left alone,
    ``lr = initial_lr * gamma ** (epoch // step_size)``.

    >>> import autobp as ab
    >>> opt = ab.optim.SGD([ab.zeros(1, requires_grad=True)], lr=1.0)
    >>> scheduler = StepLR(opt, step_size=2, gamma=0.5)
    >>> for _ in range(4):
    ...     scheduler.step()
    >>> scheduler.get_last_lr()
    [0.25]
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, gamma

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        return lr * self.gamma if epoch % self.step_size == 0 else lr


class CosineAnnealingLR(LRScheduler):
    """Follows half a cosine from ``lr`` down to ``eta_min`` over ``T_max`` epochs (and back up
    over the next ``T_max``): left alone, ``lr = eta_min + (initial_lr - eta_min) (1 + cos(pi epoch / T_max)) / 2``.

    Each step scales the distance to ``eta_min`` by the ratio of consecutive points of that curve,
    so another scheduler's change, or one by hand, carries on along it.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        super().__init__(optimizer)
        self.T_max, self.eta_min = T_max, eta_min

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2

    def next_lr(self, lr: float, base_lr: float, epoch: int) -> float:
        if (epoch - 1 - self.T_max) % (2 * self.T_max) == 0:
            # leaving the trough, where the curve is 0 and the ratio undefined: step up by the
            # curve's first rise, as from eta_min
            return lr + (base_lr - self.eta_min) * (1 - math.cos(math.pi / self.T_max)) / 2
        ratio = (1 + math.cos(math.pi * epoch / self.T_max)) / (1 + math.cos(math.pi * (epoch - 1) / self.T_max))
        return self.eta_min + ratio * (lr - self.eta_min)
