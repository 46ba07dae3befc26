"""The tasks the harness hands to plugins: what an unlearner (:class:`UnlearningTask`) and a
pruner (:class:`PruningTask`) may use. The contracts (:mod:`unlearnbench.unlearner`,
:mod:`unlearnbench.pruner`) name them; they live here because they are made of the layers the
contracts sit below: the images on the device and their loaders (:mod:`unlearnbench.data`),
the shared training loop, masks and runtime (this package).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..data.tensors import Augment, DeviceLoader, ImageData, Normalize
from ..recipe import TrainRecipe
from ..seeds import generator
from .loop import LossFn, cross_entropy, fit, make_sgd
from .masks import Mask
from .runtime import Runtime


class CountingLoader(DeviceLoader):
    """A :class:`DeviceLoader` that reports the size of every batch it yields."""

    def __init__(self, data: ImageData, *, count: Callable[[int], None], **options: Any):
        super().__init__(data, **options)
        self.count = count

    def __iter__(self):
        for x, y in super().__iter__():
            self.count(len(y))
            yield x, y


@dataclass(frozen=True)
class UnlearningTask:
    """Everything an unlearner may use; all tensors are already on ``runtime.device``.

    ``forget`` and ``retain`` partition exactly the training split the original model saw.
    ``validation`` is the held-out part of the training set (never trained on), for
    hyperparameter searches; the test set is deliberately absent.
    """

    forget: ImageData
    retain: ImageData
    validation: ImageData | None
    num_classes: int
    recipe: TrainRecipe
    normalize: Normalize
    augment: Augment
    runtime: Runtime
    seed: int
    mask: Mask | None
    new_model: Callable[[], nn.Module]
    # Called by loader() with the data and the batch sizes the new loader yields, so that the
    # harness can pay one-time costs of new shapes outside RTE (unlearnbench.run.timing.WarmUp).
    warm_up: Callable[[ImageData, Iterable[int]], None] = lambda data, batch_sizes: None
    # Called with the data and the size of every batch a loader of loader() yields: the harness
    # counts the method's work (the record's ``work``, unlearnbench.run.timing).
    count_examples: Callable[[ImageData, int], None] = lambda data, examples: None

    def generator(self, stream: str):
        """A CPU ``torch.Generator`` for a named random stream of this trial."""
        return generator(self.seed, stream)

    def loader(self, data: ImageData, *, batch_size: int | None = None, shuffle: bool = True,
               augment: bool = True, stream: str = "loader") -> DeviceLoader:
        loader = CountingLoader(data, normalize=self.normalize,
                                batch_size=batch_size or self.recipe.batch_size, shuffle=shuffle,
                                augment=self.augment if augment else None,
                                generator=self.generator(stream),
                                channels_last=self.runtime.channels_last,
                                count=lambda examples: self.count_examples(data, examples))
        self.warm_up(data, loader.batch_sizes())
        return loader

    def fit(self, model: nn.Module, batches: Iterable[Any], recipe: TrainRecipe, *,
            loss: LossFn = cross_entropy, desc: str = "unlearn",
            optimizer: torch.optim.Optimizer | None = None) -> nn.Module:
        """The shared training loop, with this task's mask and runtime (a fresh optimizer per
        call unless ``optimizer``, from :meth:`optimizer`, carries one over from an earlier call)."""
        return fit(model, batches, recipe, self.runtime, loss=loss, mask=self.mask, desc=desc,
                   optimizer=optimizer)

    def optimizer(self, model: nn.Module, recipe: TrainRecipe) -> torch.optim.Optimizer:
        """The SGD optimizer :meth:`fit` would make, to share across several calls."""
        return make_sgd(model, recipe, self.runtime)


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
