"""GA: gradient ascent on the forget set, i.e. SGD that minimizes ``-CE`` on D_f.

Thudi et al. 2022 ("Unrolling SGD"); the GA baseline of Jia et al. 2023, Sec. 3. Defaults are
the reference settings of Jia et al. 2023 (see the reference notes, paper.md): 5 epochs,
constant lr 1e-4, SGD momentum 0.9, weight decay 5e-4, batch 256. An earlier launcher of the
reference code used lr 1e-3.

The lr is tied to the number of steps: the reference's CIFAR-10 class-wise forget set (5,000
images, batch 256) gives 100 steps, while the bundled ``digits`` forget class (~130 images)
gives 5, so on ``digits`` the default barely moves the model. The tests pass ``lr=0.01`` there.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from unlearnbench import ImageData, UnlearningTask, cross_entropy, param

from .ft import FineTune


class GradientAscent(FineTune):
    epochs: int = param(5, ge=1, help="passes over the forget set")
    lr: float = param(1e-4, gt=0, help="constant SGD learning rate (an earlier reference launcher: 1e-3)")

    def data(self, task: UnlearningTask) -> ImageData:
        return task.forget

    def loss(self, model: nn.Module, batch: Any, progress: float) -> torch.Tensor:
        # Ascent on CE through the shared descent loop: descend on its negation.
        return -cross_entropy(model, batch, progress)
