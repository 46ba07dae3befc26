"""SynFlow: data-free pruning at initialization by iterative synaptic flow conservation.

Tanaka, Kunin, Yamins & Ganguli 2020 ("Pruning neural networks without any data by
iteratively conserving synaptic flow", NeurIPS 2020), one of the pruners compared by Jia et
al. 2023 ("Model Sparsity Can Simplify Machine Unlearning", NeurIPS 2023), who find SynFlow
masks help unlearning about as much as OMP and more than IMP.

The network is linearized: every parameter and buffer is replaced by its absolute value, BN
runs in eval mode, and an all-ones input of the data's shape gives ``R = sum(f(1))``, the
total "synaptic flow". A weight's score is ``|dR/dw * w|``. Pruning is iterative: at
iteration ``k`` of ``n`` the globally lowest scores are removed down to sparsity
``1 - (1 - s)^(k/n)``, and the next scores are computed on the masked network, which is what
lets SynFlow avoid layer collapse. The scores are computed on a float64 copy (the authors
recommend double precision: ``R`` is a product over all layers and overflows float32 in
deep nets), so the model itself keeps its signs. Then the fresh initialization is trained
with the mask fixed, using the original model's recipe.

Only the shape of the training images is read, never their values.

Defaults and their sources:

- ``iterations=100``: Tanaka et al. 2020 (their default) and the reference of Jia et al.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from unlearnbench import Mask, Pruner, PruningTask, param, prunable_weights


def compounding_schedule(sparsity: float, iterations: int) -> list[float]:
    """Sparsity after each iteration: ``1 - (1 - sparsity)^(k / iterations)``, k = 1..n."""
    return [1 - (1 - sparsity) ** (k / iterations) for k in range(1, iterations + 1)]


def linearized(model: nn.Module) -> nn.Module:
    """A float64 eval-mode copy whose parameters and buffers are all non-negative."""
    probe = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for tensor in probe.state_dict().values():
            if tensor.is_floating_point():
                tensor.abs_()
    return probe


def synflow_scores(probe: nn.Module, input_shape: Sequence[int]) -> dict[str, torch.Tensor]:
    """``|dR/dw * w|`` of every prunable weight of a linearized network, R = sum of f(ones)."""
    weights = prunable_weights(probe)
    first = next(probe.parameters())
    ones = torch.ones((1, *input_shape), dtype=first.dtype, device=first.device)
    flow = probe(ones).sum()
    grads = torch.autograd.grad(flow, list(weights.values()))
    return {name: (grad * w).detach().abs() for (name, w), grad in zip(weights.items(), grads)}


def synflow_mask(model: nn.Module, input_shape: Sequence[int], sparsity: float,
                 iterations: int) -> Mask:
    """Iterative SynFlow pruning of ``model`` (left unchanged) to exactly ``sparsity``."""
    probe = linearized(model)
    mask = Mask.dense(probe)
    for target in compounding_schedule(sparsity, iterations):
        mask.apply(probe)
        scores = synflow_scores(probe, input_shape)
        # pruned entries score -1, below every flow, so masks stay nested despite ties at 0
        scores = {n: torch.where(mask.keep[n], s, -1.0) for n, s in scores.items()}
        mask = Mask.from_scores(scores, target)
    return mask


class SynFlow(Pruner):
    iterations: int = param(100, ge=1, help="pruning iterations of the compounding schedule")

    def prune(self, task: PruningTask) -> tuple[nn.Module, Mask]:
        model = task.new_model()
        mask = synflow_mask(model, tuple(task.train.images.shape[1:]), task.sparsity,
                            self.iterations)
        return task.train_masked(model, mask, desc="synflow train"), mask
