"""Layers: ``Linear``, ``Sequential``, activations, ``Dropout``, ``Flatten``, ``Conv2d``, ``MaxPool2d``."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from autobp.creation import as_generator
from autobp.nn import functional as F
from autobp.nn import init
from autobp.nn.module import Module, Parameter
from autobp.ops.nn import int_pair, pool_params
from autobp.tensor import Tensor

__all__ = [
    "Linear",
    "Sequential",
    "Identity",
    "Sigmoid",
    "ReLU",
    "Tanh",
    "Softmax",
    "Dropout",
    "Flatten",
    "Conv2d",
    "MaxPool2d",
]

Rng = int | np.random.Generator | None


def _default_init(weight: Parameter, bias: Parameter | None, rng: np.random.Generator) -> None:
    # PyTorch's default for Linear and Conv2d: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for both.
    init.kaiming_uniform_(weight, a=math.sqrt(5.0), rng=rng)
    if bias is not None:
        bound = 1.0 / math.sqrt(init.fans(weight)[0])
        init.uniform_(bias, -bound, bound, rng=rng)


def _positive_counts(layer: str, **counts: Any) -> None:
    """Checked where a layer is built, so a bad layer fails there, not at its first call."""
    for what, count in counts.items():
        if not isinstance(count, int | np.integer) or isinstance(count, bool) or count < 1:
            raise ValueError(f"{layer}: {what} must be a positive int, got {what}={count!r}")


class Linear(Module):
    """``y = x @ weight.T + bias``, weight initialized as PyTorch does (seeded by ``rng``).

    Shapes: x (..., in_features) -> (..., out_features); weight (out, in), bias (out,).

    >>> import autobp as ab
    >>> ab.nn.Linear(3, 2, rng=0)(ab.ones(4, 3)).shape
    (4, 2)
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, rng: Rng = None, dtype: Any = np.float64
    ) -> None:
        super().__init__()
        _positive_counts("Linear", in_features=in_features, out_features=out_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.zeros((out_features, in_features), dtype=dtype))
        self.register_parameter("bias", Parameter(np.zeros(out_features, dtype=dtype)) if bias else None)
        _default_init(self.weight, self.bias, as_generator(rng))

    bias: Parameter | None

    def forward(self, x: Any) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-D convolution layer with a per-channel bias.

    Shapes: x (N, in_channels, H, W) -> (N, out_channels, Ho, Wo); weight (out, in, kh, kw).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
        rng: Rng = None,
        dtype: Any = np.float64,
    ) -> None:
        super().__init__()
        _positive_counts("Conv2d", in_channels=in_channels, out_channels=out_channels)
        kh, kw = int_pair(kernel_size, "Conv2d", "kernel_size", 1)
        int_pair(stride, "Conv2d", "stride", 1)
        int_pair(padding, "Conv2d", "padding", 0)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = (kh, kw), stride, padding
        self.weight = Parameter(np.zeros((out_channels, in_channels, kh, kw), dtype=dtype))
        self.register_parameter("bias", Parameter(np.zeros(out_channels, dtype=dtype)) if bias else None)
        _default_init(self.weight, self.bias, as_generator(rng))

    bias: Parameter | None

    def forward(self, x: Any) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}"
        )


class MaxPool2d(Module):
    """Maximum over windows. Shapes: (N, C, H, W) -> (N, C, Ho, Wo)."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        super().__init__()
        pool_params("MaxPool2d", kernel_size, stride, padding)  # fail where the layer is built
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Any) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Sequential(Module):
    """Modules applied in order; sub-modules are named ``"0"``, ``"1"``, ...

    >>> import autobp as ab
    >>> model = ab.nn.Sequential(ab.nn.Linear(2, 3, rng=0), ab.nn.ReLU())
    >>> print(model)
    Sequential(
      (0): Linear(in_features=2, out_features=3, bias=True)
      (1): ReLU()
    )
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for index, module in enumerate(modules):
            self.add_module(str(index), module)

    def forward(self, x: Any) -> Any:
        for module in self._modules.values():
            x = module(x)
        return x

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


class Identity(Module):
    """Returns its input. Shapes: any -> same."""

    def forward(self, x: Any) -> Any:
        return x


class Sigmoid(Module):
    """Elementwise logistic function. Shapes: any -> same."""

    def forward(self, x: Any) -> Tensor:
        return F.sigmoid(x)


class ReLU(Module):
    """Elementwise ``max(x, 0)``. Shapes: any -> same."""

    def forward(self, x: Any) -> Tensor:
        return F.relu(x)


class Tanh(Module):
    """Elementwise hyperbolic tangent. Shapes: any -> same."""

    def forward(self, x: Any) -> Tensor:
        return F.tanh(x)


class Softmax(Module):
    """Softmax along ``axis``. Shapes: any -> same."""

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: Any) -> Tensor:
        return F.softmax(x, self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class Dropout(Module):
    """Zero elements with probability ``p`` while training; the identity in ``eval()`` mode.

    ``rng`` (a seed or a Generator) is drawn from on every call, so a seeded model repeats its
    masks run after run. Shapes: any -> same.
    """

    def __init__(self, p: float = 0.5, rng: Rng = None) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must lie in [0, 1], got {p}")
        self.p = p
        self.rng = as_generator(rng)

    def forward(self, x: Any) -> Tensor:
        return F.dropout(x, self.p, self.training, self.rng)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Flatten(Module):
    """Merge all axes after the first. Shapes: (N, ...) -> (N, prod(...))."""

    def forward(self, x: Any) -> Tensor:
        return F.flatten(x)
