"""Sparse FT ("l1-sparse"): fine-tune on the retain set with an L1 penalty on all parameters.

Jia et al. 2023 ("l1-sparse" unlearning): minimize ``CE(D_r) + gamma_t * ||theta||_1``
starting from the original model. The penalty pushes the model towards sparsity during
unlearning, which the paper shows closes most of FT's gap to Retrain; a linearly *decaying*
``gamma_t`` works best there, so it is the default scheduler.

Defaults: the FT recipe (10 epochs, constant lr 0.01, SGD momentum 0.9, weight decay 5e-4,
batch 256, see ``ft.py``) and ``gamma = 1e-4``, the reference launcher's value. The L1 norm
covers every parameter (weights, biases, BN affine), as in the reference code.

Schedule (:meth:`SparseFineTune.gamma_at`), with ``progress`` in [0, 1) the fraction of
training done, updated every step:
``constant``: gamma; ``linear_decay``: gamma * (1 - progress), i.e. gamma at the start and 0
at the end; ``linear_increase``: gamma * progress, 0 at the start and gamma at the end.
The reference updates gamma once per epoch (``gamma * (1 - epoch / epochs)``) and has an
optional tail of epochs without L1; a per-step ramp is the same schedule without the steps.

The shrinkage a weight receives grows with ``lr * gamma * steps``, and the retain loss needs
steps to repair what the penalty breaks: the reference's CIFAR-10 retain set (45k images,
batch 256) gives ~1,760 steps, the bundled ``digits`` retain set (~1,160 images) 50 at batch
256. There, no gamma forgets selectively (seeds 0, 1 at batch 256: UA 0 up to gamma 1e-2,
UA 23 with RA 83 at 1.5e-2, UA 100 with RA 39 at 2e-2). With digits' own recipe batch 64
(190 steps) the penalty works as the paper describes. A grid search on digits (the suite's first
search tool, since replaced by ``unlearnbench tune``) class-wise forgetting (the smallest worse-
of-|UA - UA_retrain|-and-|RA - RA_retrain| among candidates whose mean RA stays within 5 points
of Retrain's; forget and retain sets only, never the test set; means over seeds 0, 1, 2)::

    retrain: UA 100.00  RA 100.00; eligible: RA >= 95.00
      gamma      UA      RA    score  eligible
    -------  ------  ------  -------  ----------  -------
       1e-4    0.00  100.00   100.00  yes
       1e-3    0.00  100.00   100.00  yes
       3e-3    0.00  100.00   100.00  yes
       5e-3   83.07   98.54    17.73  yes
       1e-2  100.00   98.91     1.09  yes         <- best
       2e-2  100.00   95.46     4.54  yes

FT with batch 64 gives UA 0.00 on each of these seeds. The default stays at the reference's
1e-4 (documented by its launcher, meant for CIFAR-scale step counts); on digits use
``-p batch_size=64 -p gamma=1e-2`` (the tests do).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from unlearnbench import LogUniform, param

from .ft import FineTune

Scheduler = Literal["constant", "linear_increase", "linear_decay"]


def l1_norm(model: nn.Module) -> torch.Tensor:
    """Sum of |theta| over every parameter of ``model``."""
    return sum(p.abs().sum() for p in model.parameters())


class SparseFineTune(FineTune):
    gamma: float = param(1e-4, ge=0, help="L1 strength gamma (peak of the schedule)")
    scheduler: Scheduler = param("linear_decay", help="how gamma_t follows training progress")

    # lr: the paper's FT range, which it also uses for l1-sparse (Appendix C.2). gamma: log-
    # uniform from a decade below the reference launcher's 1e-4 to 1e-2, two decades above it,
    # where the shrinkage lr * gamma * steps starts to matter at small scales (digits: 1e-2).
    search_space = {"lr": LogUniform(0.01, 0.1), "gamma": LogUniform(1e-5, 1e-2)}

    def gamma_at(self, progress: float) -> float:
        """gamma_t at ``progress`` in [0, 1] (see the module docstring)."""
        if self.scheduler == "constant":
            return self.gamma
        if self.scheduler == "linear_decay":
            return self.gamma * (1.0 - progress)
        return self.gamma * progress

    def loss(self, model: nn.Module, batch: Any, progress: float) -> torch.Tensor:
        return super().loss(model, batch, progress) + self.gamma_at(progress) * l1_norm(model)
