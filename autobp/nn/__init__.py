"""Models in the PyTorch style: ``Module`` trees of layers with ``Parameter``s, and their losses.

>>> import autobp as ab
>>> model = ab.nn.Sequential(ab.nn.Linear(4, 8, rng=0), ab.nn.ReLU(), ab.nn.Linear(8, 3, rng=1))
>>> [name for name, _ in model.named_parameters()]
['0.weight', '0.bias', '2.weight', '2.bias']
"""

from autobp.nn import functional, init
from autobp.nn.layers import (
    Conv2d,
    Dropout,
    Flatten,
    Identity,
    Linear,
    MaxPool2d,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from autobp.nn.module import Module, Parameter

__all__ = [
    "Module",
    "Parameter",
    "Linear",
    "Conv2d",
    "MaxPool2d",
    "Sequential",
    "Identity",
    "Sigmoid",
    "ReLU",
    "Tanh",
    "Softmax",
    "Dropout",
    "Flatten",
    "functional",
    "init",
]
