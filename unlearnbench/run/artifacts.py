"""Cached artifacts shared by trials: original and pruned models, and the probes of a model
before unlearning (decoded datasets: :mod:`unlearnbench.data.access`). Each is keyed by a
description of everything that determines it (``CACHE_FORMAT`` included) and stored in the
:class:`~unlearnbench.storage.CheckpointCache`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from ..components import PRUNERS, build_model
from ..data.dataset import LoadedDataset
from ..data.splits import Split
from ..data.tensors import DeviceLoader, ImageData, tensor_hash
from ..errors import NonFiniteError, UnlearnbenchError
from ..evaluate.metrics import check_finite
from ..guard import call_plugin, check_same_architecture
from ..probe import Probe, ProbeContext
from ..seeds import derive_seed, generator
from ..storage import CACHE_FORMAT
from ..train.loop import fit
from ..train.masks import Mask
from ..train.tasks import PruningTask
from .config import Plan


def probe_before(plan: Plan, probe: Probe, model: nn.Module, context: ProbeContext,
                  model_key: Mapping[str, Any]) -> dict[str, float]:
    """A probe of the model before unlearning; shared by every method run on that model."""
    description = {"format": CACHE_FORMAT, "kind": "probe", "model": model_key,
                   "probe": probe.identity(), "test": len(context.test)}
    with plan.cache.lock("probes", description):
        cached = plan.cache.load("probes", description)
        if cached is not None:
            return cached["values"]
        values = probe.measure(model, context)
        plan.cache.save("probes", description, {"values": values})
        return values


# -- the original model ------------------------------------------------------------------
def model_factory(plan: Plan, data: LoadedDataset) -> Callable[[int], nn.Module]:
    def new_model(init_seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            model = build_model(plan.arch, num_classes=data.num_classes, in_chans=data.in_chans,
                                image_size=data.image_size)
        model = model.to(plan.runtime.device)
        return model.to(memory_format=torch.channels_last) if plan.runtime.channels_last else model
    return new_model


def original_model(plan: Plan, data: LoadedDataset, train: ImageData, split: Split, seed: int,
              new_model: Callable[[int], nn.Module]):
    """The original model, trained or loaded from the cache, with the snapshots of its training
    the plan needs (:attr:`Plan.snapshot_epochs`).

    The cache key says nothing of the snapshots, so one entry serves every pruner (and the
    entries of earlier versions stay valid). An entry that lacks a snapshot a pruner needs is
    extended: the training is replayed from the same initialization on the same batches up to
    the last missing epoch, and the missing snapshots are added; the cached weights, which
    earlier trials used, stay as they are. (A replay on a device whose training is not
    deterministic gives the snapshots of an equally seeded run, not of the first one.)
    """
    description = {
        "format": CACHE_FORMAT, "kind": "original", "dataset": plan.config.dataset,
        "dataset_params": plan.dataset.get_params(), "arch": plan.arch,
        "recipe": plan.recipe.get_params(), "seed": seed, "train_split": split.train_hash,
        "data": data.content_hash,
        "precision": plan.runtime.precision,
    }
    if plan.forget.poisons:  # same indices, different images: the scenario is part of the key
        description["poison"] = {"spec": str(plan.forget), "forget": tensor_hash(split.forget)}
    model = new_model(derive_seed(seed, "original/init"))
    needed = plan.snapshot_epochs
    with plan.cache.lock("originals", description):  # trained by one process, loaded by the others
        cached = plan.cache.load("originals", description)
        if cached is not None:
            model.load_state_dict(cached["state"], strict=True)
            snapshots = cached["snapshots"]
            if missing := needed - set(snapshots):
                snapshots = {**snapshots, **_replay_original(plan, data, train, seed, new_model, missing)}
                plan.cache.save("originals", description, {**cached, "snapshots": snapshots})
            return model, cached["seconds"], True, _only(snapshots, needed), description
        seconds, snapshots = _train_original(plan, data, train, seed, model, needed)
        plan.cache.save("originals", description,
                        {"state": cpu_state(model), "snapshots": snapshots, "seconds": seconds})
    return model, seconds, False, _only(snapshots, needed), description


def _train_original(plan: Plan, data: LoadedDataset, train: ImageData, seed: int, model: nn.Module,
                    keep: frozenset[int]):
    snapshots = {0: cpu_state(model)}
    loader = train_loader(plan, data, train, seed, "original/batches")
    with plan.runtime.timer() as watch:
        fit(model, loader, plan.recipe, plan.runtime, desc="train original",
            on_epoch_end=_keeping(snapshots, keep))
    _refuse_diverged(model, plan, data, train, f"the original model ({plan.arch}, lr {plan.recipe.lr:g})",
                     "lower the learning rate (--train lr=...)")
    return watch.seconds, snapshots


def _replay_original(plan: Plan, data: LoadedDataset, train: ImageData, seed: int,
                     new_model: Callable[[int], nn.Module], epochs: set[int]) -> dict[int, Any]:
    """The weights at ``epochs`` of the original's training, replayed from its initialization
    on its batches (the same seeds as :func:`_train_original`), stopped after the last one."""
    model = new_model(derive_seed(seed, "original/init"))
    snapshots = {0: cpu_state(model)} if 0 in epochs else {}
    loader = train_loader(plan, data, train, seed, "original/batches")
    fit(model, loader, plan.recipe, plan.runtime, desc="replay original for snapshots",
        on_epoch_end=_keeping(snapshots, frozenset(epochs)), stop_epoch=max(epochs))
    return snapshots


def _keeping(snapshots: dict[int, Any], epochs: frozenset[int]) -> Callable[[int, nn.Module], None]:
    """An ``on_epoch_end`` that stores the weights after each of ``epochs`` in ``snapshots``."""
    def snapshot(epoch: int, model: nn.Module) -> None:
        if epoch in epochs:
            snapshots[epoch] = cpu_state(model)
    return snapshot


def _only(snapshots: Mapping[int, Any], epochs: frozenset[int]) -> dict[int, Any]:
    """Exactly the snapshots of ``epochs``: a pruner sees what it declared, whatever the cache holds."""
    return {epoch: snapshots[epoch] for epoch in sorted(epochs)}


def pruned_model(plan: Plan, data: LoadedDataset, train: ImageData, seed: int,
            new_model: Callable[[int], nn.Module], original: nn.Module,
            snapshots: Mapping[int, Any], original_key: Mapping[str, Any]):
    description = {"format": CACHE_FORMAT, "kind": "pruned", "original": original_key,
                   "pruner": plan.config.pruner, "pruner_params": plan.pruner.get_params(),
                   "sparsity": plan.config.sparsity}
    model = new_model(derive_seed(seed, "pruned/init"))
    with plan.cache.lock("pruned", description):
        cached = plan.cache.load("pruned", description)
        if cached is not None:
            mask = Mask(cached["mask"])
            model.load_state_dict(cached["state"], strict=True)
            mask.check_model(model)
            return model, mask, cached["seconds"], True, description
        model, mask, seconds = _prune(plan, data, train, seed, new_model, original, snapshots)
        plan.cache.save("pruned", description,
                        {"state": cpu_state(model), "mask": mask.state_dict(), "seconds": seconds})
    return model, mask, seconds, False, description


def _prune(plan: Plan, data: LoadedDataset, train: ImageData, seed: int,
           new_model: Callable[[int], nn.Module], original: nn.Module, snapshots: Mapping[int, Any]):
    task = PruningTask(
        sparsity=plan.config.sparsity, train=train, recipe=plan.recipe, normalize=data.normalize,
        augment=data.augment, runtime=plan.runtime, seed=seed,
        new_model=lambda: new_model(derive_seed(seed, "pruned/new-model")),
        dense_state=cpu_state(original), snapshots=snapshots)
    torch.manual_seed(derive_seed(seed, "prune"))
    with plan.runtime.timer() as watch:
        model, mask = call_plugin(PRUNERS, plan.config.pruner, lambda: plan.pruner.prune(task))
    check_same_architecture(PRUNERS, plan.config.pruner, original, model)
    _refuse_diverged(model, plan, data, train, f"the model pruned by {plan.config.pruner!r}",
                     "lower the learning rate (--train lr=...)")
    if mask.violations(model):
        raise UnlearnbenchError(f"pruner {plan.config.pruner!r} returned a model whose pruned "
                                f"weights are not zero")
    return model, mask, watch.seconds


def _refuse_diverged(model: nn.Module, plan: Plan, data: LoadedDataset, train: ImageData, what: str,
                     advice: str) -> None:
    """A model with non-finite weights or logits is never cached: a one-line error instead."""
    try:
        check_finite(model, train, data.normalize, plan.runtime, what)
    except NonFiniteError as exc:
        raise NonFiniteError(f"{exc}; it was not cached: {advice}") from None


def train_loader(plan: Plan, data: LoadedDataset, train: ImageData, seed: int, stream: str):
    return DeviceLoader(train, normalize=data.normalize, batch_size=plan.recipe.batch_size,
                        shuffle=True, augment=data.augment, generator=generator(seed, stream),
                        channels_last=plan.runtime.channels_last)


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
