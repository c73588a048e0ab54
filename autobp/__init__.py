"""autobp: reverse-mode automatic differentiation on numpy, with higher-order gradients.

>>> import autobp as ab
>>> x = ab.tensor([1.0, 2.0], requires_grad=True)
>>> (x * x).sum().backward()
>>> x.grad
tensor([2., 4.])
"""

# ab.forward_ad: dual tensors, PyTorch's names (dual_level, make_dual, unpack_dual)
from autobp import (
    backends,
    datasets,
    forward_ad,
    functional,
    models,
    nn,
    optim,
    reference,
    tape,
    viz,
)  # numpy-only until used
from autobp.anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from autobp.creation import (
    arange,
    eye,
    full,
    full_like,
    linspace,
    normal,
    ones,
    ones_like,
    rand,
    randn,
    uniform,
    zeros,
    zeros_like,
)
from autobp.engine import grad
from autobp.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from autobp.io import LoadError, load, save
from autobp.ops import *  # noqa: F403  (the op namespace is the public API: ab.exp, ab.sum, ...)
from autobp.ops import REGISTRY
from autobp.ops import __all__ as _op_names
from autobp.tensor import Tensor, tensor
from autobp.testing.gradcheck import GradcheckError, gradcheck, gradgradcheck

__version__ = "0.1.0"

__all__ = [
    "detect_anomaly",
    "set_detect_anomaly",
    "is_anomaly_enabled",
    "AnomalyError",
    "functional",
    "forward_ad",
    "backends",
    "tape",
    *_op_names,
    "Tensor",
    "tensor",
    "grad",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "gradcheck",
    "gradgradcheck",
    "GradcheckError",
    "REGISTRY",
    "arange",
    "eye",
    "full",
    "full_like",
    "linspace",
    "normal",
    "ones",
    "ones_like",
    "rand",
    "randn",
    "uniform",
    "zeros",
    "zeros_like",
    "save",
    "load",
    "LoadError",
    "nn",
    "optim",
    "viz",
    "datasets",
    "models",
    "reference",
]
