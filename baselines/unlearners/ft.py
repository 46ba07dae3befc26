"""FT: fine-tune the original model on the retain set with cross-entropy.

Catastrophic forgetting as unlearning (Warnecke et al. 2021; Jia et al. 2023, Sec. 3).
Defaults from the reference settings in Jia et al. 2023: 10 epochs, constant lr 0.01, SGD
momentum 0.9, weight decay 5e-4. The batch size is the original model's recipe's (the scale's
own: 256 on full-scale CIFAR-10, the reference launcher's value; 32 at the main table's small
scale), so that the budget keeps the paper's passes over the data at any scale (the budget rule
of ``docs/budgets.md``: a method's epochs are the paper's, its batch the scale's).

Search space (``unlearnbench tune``): lr log-uniform in [0.01, 0.1], the paper's stated range
for FT over its 10 epochs (Jia et al. 2023, Appendix C.2).

The class is also the skeleton of every method that is "constant-lr SGD on one part of the
training set with some loss" (GA, sparse FT): a subclass overrides :meth:`FineTune.data`
and :meth:`FineTune.loss`, and nothing else of the loop.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from unlearnbench import (ImageData, LogUniform, TrainRecipe, Unlearner, UnlearningTask, cross_entropy,
                          param)


class FineTune(Unlearner):
    epochs: int = param(10, ge=1, help="passes over the retain set")
    lr: float = param(0.01, gt=0, help="constant SGD learning rate")
    momentum: float = param(0.9, ge=0, lt=1)
    weight_decay: float = param(5e-4, ge=0)
    batch_size: int | None = param(None, ge=1, help="examples per step (default: the original "
                                   "model's recipe's, i.e. the scale's)")

    search_space = {"lr": LogUniform(0.01, 0.1)}

    def batch(self, task: UnlearningTask) -> int:
        """Examples per step: this method's ``batch_size``, else the original's recipe's."""
        return self.batch_size or task.recipe.batch_size

    def train_recipe(self, task: UnlearningTask) -> TrainRecipe:
        """Constant-lr SGD, as in the reference's unlearning launcher."""
        return TrainRecipe(epochs=self.epochs, lr=self.lr, momentum=self.momentum,
                           weight_decay=self.weight_decay, batch_size=self.batch(task),
                           schedule="constant")

    def data(self, task: UnlearningTask) -> ImageData:
        """The examples this method trains on."""
        return task.retain

    def loss(self, model: nn.Module, batch: Any, progress: float) -> torch.Tensor:
        """The loss of one batch (``progress`` in [0, 1) lets a penalty follow a schedule)."""
        return cross_entropy(model, batch, progress)

    def unlearn(self, model: nn.Module, task: UnlearningTask) -> nn.Module:
        batches = task.loader(self.data(task), batch_size=self.batch(task))
        return task.fit(model, batches, self.train_recipe(task), loss=self.loss,
                        desc=type(self).__name__)
