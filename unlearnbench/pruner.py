"""The pruner contract: turn the dense original into a sparse original and its mask."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .data.tensors import Augment, DeviceLoader, ImageData, Normalize
from .errors import ConfigError
from .train.masks import Mask
from .params import Configurable
from .train.runtime import Runtime, generator
from .train.loop import TrainRecipe, fit


@dataclass(frozen=True)
class PruningTask:
    """What a pruner may use. ``train`` is the original model's training split.

    ``dense_state`` is the trained dense original; ``snapshots`` maps epoch -> weights saved
    while training it, for weight rewinding: epoch 0 (the initialization) and exactly the
    epochs the pruner declares in :meth:`Pruner.snapshot_epochs` (epoch ``e``: the weights
    after ``e`` epochs of the original's recipe).
    """

    sparsity: float
    train: ImageData
    recipe: TrainRecipe
    normalize: Normalize
    augment: Augment
    runtime: Runtime
    seed: int
    new_model: Callable[[], nn.Module]
    dense_state: Mapping[str, torch.Tensor]
    snapshots: Mapping[int, Mapping[str, torch.Tensor]]

    def loader(self, *, stream: str = "prune") -> DeviceLoader:
        return DeviceLoader(self.train, normalize=self.normalize, batch_size=self.recipe.batch_size,
                            shuffle=True, augment=self.augment, generator=generator(self.seed, stream),
                            channels_last=self.runtime.channels_last)

    def train_masked(self, model: nn.Module, mask: Mask, *, recipe: TrainRecipe | None = None,
                     desc: str = "retrain sparse", start_epoch: int = 0) -> nn.Module:
        """Train with the original recipe (or ``recipe``) while holding ``mask`` fixed; from
        ``start_epoch`` on, with that epoch's learning rate, when resuming a rewound run."""
        return fit(model, self.loader(stream=f"prune/{desc}"), recipe or self.recipe,
                   self.runtime, mask=mask, desc=desc, start_epoch=start_epoch)


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
