"""The step OMP and IMP share: prune by global weight magnitude, rewind, retrain with the mask.

Magnitude pruning with weight rewinding follows Frankle et al. 2019/2020 ("Stabilizing the
lottery ticket hypothesis", "Linear mode connectivity and the lottery ticket hypothesis") as
used by Jia et al. 2023: scores are ``|w|`` over all prunable weights at once (global,
unstructured; conv/linear weights outside the classifier head), the survivors are reset to
their values at an early epoch of the dense run, and the sparse network is retrained with the
mask held fixed. As in the reference, the learning-rate schedule is rewound with the weights:
rewound to epoch ``r`` of an ``E``-epoch recipe, retraining runs the recipe's epochs ``r .. E-1``
(the reference's 182-epoch recipe, rewound to epoch 8, retrains 174 epochs and decays the
learning rate at its epochs 83 and 128). Rewound to the initialization, or not rewound, the
sparse network retrains with the whole recipe; an explicit ``retrain_epochs`` is a fresh
schedule of that length.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from torch import nn

from unlearnbench import ConfigError, Mask, PruningTask, TrainRecipe, prunable_weights

Rewind = Literal["early", "init", "none"]
REWIND_EPOCH, REFERENCE_EPOCHS = 8, 182  # the reference rewinds to epoch 8 of its 182-epoch recipe


def rewind_epoch(recipe: TrainRecipe) -> int:
    """The "early" rewind point: epoch 8 of the reference's 182, scaled to the recipe's length
    (at least 1; 0 for a recipe of no epochs)."""
    return max(1, round(REWIND_EPOCH * recipe.epochs / REFERENCE_EPOCHS)) if recipe.epochs else 0


def rewind_snapshots(rewind: Rewind, recipe: TrainRecipe) -> set[int]:
    """The snapshots of the dense run that rewinding needs besides the initialization."""
    return {rewind_epoch(recipe)} if rewind == "early" else set()


def load_dense(task: PruningTask) -> nn.Module:
    """A fresh model holding the trained dense original (strict: no silent key mismatch)."""
    model = task.new_model()
    model.load_state_dict(task.dense_state, strict=True)
    return model


def rewind_point(snapshots: Mapping[int, Mapping[str, torch.Tensor]], rewind: Rewind,
                 recipe: TrainRecipe) -> tuple[int, Mapping[str, torch.Tensor]] | None:
    """The epoch and weights to rewind to: the early snapshot (:func:`rewind_epoch`), the
    initialization (epoch 0), or None (keep the trained weights)."""
    if rewind == "none":
        return None
    if rewind == "init":
        return 0, snapshots[0]
    early = rewind_epoch(recipe)
    if early == 0 or early not in snapshots:
        raise ConfigError(f"rewind='early' needs the dense run's snapshot of epoch {early} (after "
                          f"epoch 0), but it saved epochs {sorted(snapshots)}; use rewind=init or "
                          f"rewind=none")
    return early, snapshots[early]


def magnitude_mask(model: nn.Module, sparsity: float, previous: Mask | None = None) -> Mask:
    """Prune the globally smallest ``|w|`` to ``sparsity``, never reviving a pruned weight.

    Entries ``previous`` already pruned score -1 (below every magnitude), so successive
    masks are nested even when a kept weight is exactly zero.
    """
    scores = {}
    for name, weight in prunable_weights(model).items():
        score = weight.detach().abs()
        if previous is not None:
            score = torch.where(previous.keep[name].to(score.device), score, -1.0)
        scores[name] = score
    return Mask.from_scores(scores, sparsity)


def prune_rewind_retrain(model: nn.Module, task: PruningTask, sparsity: float, *,
                         rewind: Rewind, retrain_epochs: int | None,
                         previous: Mask | None = None,
                         desc: str = "retrain sparse") -> tuple[nn.Module, Mask]:
    """One magnitude round on a trained ``model`` (modified in place): mask, rewind, retrain."""
    mask = magnitude_mask(model, sparsity, previous)
    point = rewind_point(task.snapshots, rewind, task.recipe)
    start_epoch = 0
    if point is not None:
        start_epoch, state = point
        model.load_state_dict(state, strict=True)
    if retrain_epochs is not None:
        recipe, start_epoch = task.recipe.replace(epochs=retrain_epochs), 0
    else:
        recipe = task.recipe
    return task.train_masked(model, mask, recipe=recipe, desc=desc, start_epoch=start_epoch), mask
