"""The one training loop every method shares.

Methods differ only where they really differ: the data they iterate and the loss of a batch
(``loss(model, batch, progress)``, with ``progress`` the fraction of training done, so a
penalty can follow a schedule). The optimizer (SGD), the learning-rate schedule, mixed
precision and the pruning mask are handled here once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sized
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..recipe import TrainRecipe
from .masks import Mask
from .progress import progress as report_progress
from .runtime import Runtime

LossFn = Callable[[nn.Module, Any, float], torch.Tensor]


def cross_entropy(model: nn.Module, batch: Any, progress: float) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(model(x), y)


def make_sgd(model: nn.Module, recipe: TrainRecipe, runtime: Runtime) -> torch.optim.SGD:
    fused = runtime.device.type == "cuda"
    return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                           weight_decay=recipe.weight_decay, fused=fused or None)


def fit(model: nn.Module, batches: Iterable[Any], recipe: TrainRecipe, runtime: Runtime, *,
        loss: LossFn = cross_entropy, mask: Mask | None = None, desc: str = "train",
        on_epoch_end: Callable[[int, nn.Module], None] | None = None,
        optimizer: torch.optim.Optimizer | None = None, start_epoch: int = 0,
        stop_epoch: int | None = None) -> nn.Module:
    """Train ``model`` in place for ``recipe.epochs`` passes over ``batches``; returns it.

    ``start_epoch`` resumes the recipe there: only epochs ``start_epoch .. epochs - 1`` run,
    with the learning rate the full schedule has at each of them (weight rewinding restarts
    the schedule at the rewind epoch, not at 0). ``stop_epoch`` ends it early, after that many
    epochs of the recipe (the schedule is still the whole recipe's).

    A fresh SGD optimizer (:func:`make_sgd`) is made per call unless ``optimizer`` is given:
    passing the same one to consecutive calls keeps its momentum across them, as a method that
    alternates phases with one optimizer does. The learning rate always follows ``recipe``.
    """
    if optimizer is None:
        optimizer = make_sgd(model, recipe, runtime)
    steps = len(batches) if isinstance(batches, Sized) else None
    apply_mask = mask.bind(model) if mask is not None else (lambda: None)
    apply_mask()
    net = runtime.compiled(model)
    model.train()
    end = recipe.epochs if stop_epoch is None else min(stop_epoch, recipe.epochs)
    for epoch in report_progress(range(start_epoch, end), desc, "epoch"):
        for i, batch in enumerate(batches):
            progress = (epoch + (i / steps if steps else 0.0)) / max(recipe.epochs, 1)
            for group in optimizer.param_groups:
                group["lr"] = recipe.lr_at(progress)
            optimizer.zero_grad(set_to_none=True)
            with runtime.autocast():
                value = loss(net, batch, progress)
            value.backward()
            optimizer.step()
            apply_mask()
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, model)
    return model
