"""Retrain: exact unlearning by training from scratch on the retain set only.

The gold standard every approximate method is compared with (Jia et al. 2023, Sec. 3). On a
pruned model, a fresh initialization is trained under the same fixed mask. It reuses the
original model's recipe (CIFAR-10: 182 epochs, lr 0.1, x0.1 at 50% and 75%); ``epochs``
overrides the length only. The reference's launcher retrains for 160 epochs at lr 0.1 with
its default decays at epochs 91 and 136 (57% and 85% of 160, the milestones of its
182-epoch original recipe), so its Retrain is a little shorter than its original model.
"""

from __future__ import annotations

from torch import nn

from unlearnbench import Unlearner, UnlearningTask, param


class Retrain(Unlearner):
    epochs: int | None = param(None, help="override the original recipe's epochs (default: same)")

    def validate(self) -> None:
        if self.epochs is not None and self.epochs < 1:
            from unlearnbench import ConfigError
            raise ConfigError(f"Retrain.epochs={self.epochs} is invalid: expected None or >= 1")

    def unlearn(self, model: nn.Module, task: UnlearningTask) -> nn.Module:
        recipe = task.recipe if self.epochs is None else task.recipe.replace(epochs=self.epochs)
        fresh = task.new_model()
        return task.fit(fresh, task.loader(task.retain, batch_size=recipe.batch_size), recipe,
                        desc="retrain")
