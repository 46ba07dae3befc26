"""NegGrad+: descend on the retain loss while ascending on the forget loss, in one objective.

Kurmanji et al. 2023, "Towards Unbounded Machine Unlearning" (NeurIPS 2023), the NegGrad+
baseline they introduce next to SCRUB. Every step takes one retain batch and one forget batch
and minimizes

    loss = alpha * CE(retain batch) - (1 - alpha) * CE(forget batch).

alpha = 1 is FT, alpha = 0 is GA; in between the retain term keeps the model useful while the
forget term pushes the forget examples away from their labels. An epoch is one pass over the
retain set; the forget batches are cycled alongside (re-shuffled at every pass, see
``_common.Paired``).

Defaults: alpha 0.9999, 5 epochs, constant lr 0.01, plain SGD (momentum 0, weight decay 0),
batch 256 for the retain and the forget batches. Only the optimizer settings come from the
authors' code; alpha 0.9999 and 5 epochs are this suite's setting for CIFAR-scale forget
sets, not a setting found there. The authors' ``negative_grad`` function (in their
``small_scale_unlearning.ipynb``, the one later benchmarks reuse) runs alpha 0.95 for 10
epochs at lr 0.01 without weight decay; set ``-p alpha=0.95 -p epochs=10`` for that. The
reference's loaders vary by experiment.

Because the forget term's weight is ``1 - alpha``, alpha must be tuned per data set: with
0.9999 the forget term is negligible on a small forget set such as the bundled ``digits``
class (~130 images). The tests use alpha 0.8, momentum 0.9 and batch 16 on their tiny task.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from unlearnbench import UnlearningTask, cross_entropy, param

from ._common import Paired
from .ft import FineTune


class NegGradPlus(FineTune):
    alpha: float = param(0.9999, ge=0, le=1,
                         help="weight of the retain loss; 1 - alpha weighs the forget loss")
    epochs: int = param(5, ge=1, help="passes over the retain set (forget batches cycled alongside)")
    lr: float = param(0.01, gt=0, help="constant SGD learning rate")
    momentum: float = param(0.0, ge=0, lt=1, help="SGD momentum (the reference: plain SGD)")
    weight_decay: float = param(0.0, ge=0, help="L2 weight decay (the reference: none)")
    batch_size: int | None = param(None, ge=1, help="examples per retain batch and per forget batch "
                                   "(default: the original model's recipe's, as every FT-family method)")

    def loss(self, model: nn.Module, batch: Any, progress: float) -> torch.Tensor:
        retain, forget = batch
        return (self.alpha * cross_entropy(model, retain, progress)
                - (1.0 - self.alpha) * cross_entropy(model, forget, progress))

    def unlearn(self, model: nn.Module, task: UnlearningTask) -> nn.Module:
        batches = Paired(task.loader(task.retain, batch_size=self.batch(task), stream="neggrad+/retain"),
                         task.loader(task.forget, batch_size=self.batch(task), stream="neggrad+/forget"))
        return task.fit(model, batches, self.train_recipe(task), loss=self.loss, desc="NegGradPlus")
