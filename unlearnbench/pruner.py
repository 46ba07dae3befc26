"""The pruner contract: turn the dense original into a sparse original and its mask."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .data.tensors import Augment, DeviceLoader, ImageData, Normalize
from .train.masks import Mask
from .params import Configurable
from .train.runtime import Runtime, generator
from .train.loop import TrainRecipe, fit


@dataclass(frozen=True)
class PruningTask:
    """What a pruner may use. ``train`` is the original model's training split.

    ``dense_state`` is the trained dense original; ``snapshots`` maps epoch -> weights saved
    while training it (epoch 0 is the initialization), for weight rewinding.
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

    @abc.abstractmethod
    def prune(self, task: PruningTask) -> tuple[nn.Module, Mask]:
        """Return the trained sparse model and its mask, at ``task.sparsity``."""
