"""Models built from autobp Tensors: the seed's sigmoid ``Network`` (``network.py``) and the data
layouts it takes (``layouts.py``)."""

from autobp.models.layouts import one_hot, stack_examples, stack_labels
from autobp.models.network import Network

__all__ = ["Network", "one_hot", "stack_examples", "stack_labels"]
