"""Random pruning: a uniformly random global mask at the target sparsity, trained from init.

The control of the pruner comparison in Jia et al. 2023 ("Model Sparsity Can Simplify
Machine Unlearning", NeurIPS 2023): whatever OMP, IMP or SynFlow gain for unlearning beyond
this mask comes from *which* weights they keep, not from sparsity alone (random pruning at
initialization is the standard baseline of Frankle et al. 2021, "Pruning neural networks at
initialization: why are we missing the mark?"). Every prunable weight (conv/linear weights
outside the classifier head) is equally likely to be removed; the mask is drawn from the
trial seed's own random stream, so one seed gives one mask. A fresh initialization is then
trained with the mask fixed, using the original model's recipe. No hyperparameters.
"""

from __future__ import annotations

import torch
from torch import nn

from unlearnbench import Mask, Pruner, PruningTask, prunable_weights
from unlearnbench.seeds import generator


def random_mask(model: nn.Module, sparsity: float, seed: int) -> Mask:
    """Uniform random global mask; depends only on the shapes, ``sparsity`` and ``seed``."""
    g = generator(seed, "prune/random-mask")
    scores = {name: torch.rand(w.shape, generator=g) for name, w in prunable_weights(model).items()}
    return Mask.from_scores(scores, sparsity)


class RandomPruner(Pruner):
    def prune(self, task: PruningTask) -> tuple[nn.Module, Mask]:
        model = task.new_model()
        mask = random_mask(model, task.sparsity, task.seed)
        return task.train_masked(model, mask, desc="random-mask train"), mask
