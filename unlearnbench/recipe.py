"""How a model trains: the training recipe (SGD with momentum, a learning-rate schedule, epochs
and batch size).

Every contract speaks of it: a dataset declares its default recipe, a pruner and an unlearner
receive the original's recipe in their task, and :func:`unlearnbench.train.loop.fit` follows
one. It is plain data, so it sits beside the contracts, below the loop that runs it.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from .params import Configurable, param


class TrainRecipe(Configurable):
    """SGD with momentum and a learning-rate schedule over a number of epochs."""

    epochs: int = param(10, ge=0, help="passes over the data")
    lr: float = param(0.1, gt=0, help="peak learning rate")
    momentum: float = param(0.9, ge=0, lt=1, help="SGD momentum")
    weight_decay: float = param(5e-4, ge=0, help="L2 weight decay")
    batch_size: int = param(256, ge=1, help="examples per step")
    schedule: Literal["step", "constant", "cosine"] = param("step", help="learning-rate schedule")
    milestones: tuple[float, ...] = param((0.5, 0.75), help="'step': fractions of training where lr decays")
    lr_decay: float = param(0.1, gt=0, le=1, help="'step': factor at each milestone")

    def lr_at(self, progress: float) -> float:
        if self.schedule == "constant":
            return self.lr
        if self.schedule == "cosine":
            return 0.5 * self.lr * (1 + math.cos(math.pi * progress))
        epoch = progress * self.epochs
        passed = sum(1 for m in self.milestones if epoch >= int(m * self.epochs))
        return self.lr * self.lr_decay ** passed

    def replace(self, **changes: Any) -> TrainRecipe:
        return type(self).from_params({**self.get_params(), **changes})
