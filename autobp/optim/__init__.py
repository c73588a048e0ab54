"""Optimizers (SGD, Adam, AdamW) and learning-rate schedules, with PyTorch's update formulas.

>>> import autobp as ab
>>> model = ab.nn.Linear(2, 1, rng=0)
>>> opt = ab.optim.Adam(model.parameters(), lr=1e-2)
>>> ab.nn.functional.mse_loss(model(ab.ones(4, 2)), ab.zeros(4, 1)).backward()
>>> opt.step(); opt.zero_grad()
"""

from autobp.optim import lr_scheduler
from autobp.optim.adam import Adam, AdamW
from autobp.optim.lr_scheduler import CosineAnnealingLR, StepLR
from autobp.optim.optimizer import Optimizer
from autobp.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "StepLR", "CosineAnnealingLR", "lr_scheduler"]
