"""FT: fine-tune the original model on the retain set with cross-entropy.

Catastrophic forgetting as unlearning (Warnecke et al. 2021; Jia et al. 2023, Sec. 3).
Defaults from the reference settings in Jia et al. 2023: 10 epochs, constant lr 0.01, SGD
momentum 0.9, weight decay 5e-4; batch 256 (the reference launcher's).
"""

from __future__ import annotations

from torch import nn

from unlearnbench import TrainRecipe, Unlearner, UnlearningTask, param


class FineTune(Unlearner):
    epochs: int = param(10, ge=1, help="passes over the retain set")
    lr: float = param(0.01, gt=0, help="constant SGD learning rate")
    momentum: float = param(0.9, ge=0, lt=1)
    weight_decay: float = param(5e-4, ge=0)
    batch_size: int = param(256, ge=1)

    def unlearn(self, model: nn.Module, task: UnlearningTask) -> nn.Module:
        recipe = TrainRecipe(epochs=self.epochs, lr=self.lr, momentum=self.momentum,
                             weight_decay=self.weight_decay, batch_size=self.batch_size,
                             schedule="constant")
        return task.fit(model, task.loader(task.retain, batch_size=self.batch_size), recipe, desc="ft")
