"""The pruner contract: turn the dense original into a sparse original and its mask.

The task a pruner receives (:class:`~unlearnbench.train.tasks.PruningTask`: the training split,
the original's recipe and weights, training with a mask held fixed) is built by the harness.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING

from .errors import ConfigError
from .params import Configurable

if TYPE_CHECKING:
    from torch import nn

    from .recipe import TrainRecipe
    from .train.masks import Mask
    from .train.tasks import PruningTask


class Pruner(Configurable, abc.ABC):
    """Base class of every pruning method."""

    def snapshot_epochs(self, recipe: TrainRecipe) -> set[int]:
        """The epochs of the original's training (with ``recipe``) whose weights this pruner
        needs in ``task.snapshots``, e.g. a rewind point; the initialization (epoch 0) is
        always there. Default: none besides it."""
        return set()

    @abc.abstractmethod
    def prune(self, task: PruningTask) -> tuple[nn.Module, Mask]:
        """Return the trained sparse model and its mask, at ``task.sparsity``."""


def snapshots_needed(pruner: Pruner | None, recipe: TrainRecipe) -> frozenset[int]:
    """Epoch 0 and the epochs ``pruner`` declares, checked: whole numbers in 0..recipe.epochs."""
    declared = pruner.snapshot_epochs(recipe) if pruner is not None else set()
    epochs = set(declared) | {0}
    if not all(isinstance(e, int) and not isinstance(e, bool) and 0 <= e <= recipe.epochs
               for e in epochs):
        raise ConfigError(f"{type(pruner).__name__}.snapshot_epochs returned {sorted(declared, key=str)}; "
                          f"expected epochs in 0..{recipe.epochs} of the original's recipe "
                          f"({recipe.epochs} epochs)")
    return frozenset(epochs)
