"""Models built from autobp Tensors: the seed's sigmoid ``Network``."""

from autobp.models.network import Network, one_hot, stack_examples, stack_labels

__all__ = ["Network", "one_hot", "stack_examples", "stack_labels"]
