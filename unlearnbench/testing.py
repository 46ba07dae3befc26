"""Public conformance checks for plugin authors, in the spirit of scikit-learn's
``check_estimator``: run ``check_unlearner(MyUnlearner)`` or ``check_pruner(MyPruner)`` in
your own CI. Everything runs on the CPU in seconds with a tiny model and synthetic data.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .components import build_model
from .data.dataset import LoadedDataset
from .datasets.synthetic import Synthetic
from .errors import ConfigError
from .train.masks import Mask, prunable_weights
from .pruner import Pruner, PruningTask
from .train.runtime import Runtime, derive_seed
from .data.splits import ForgetSpec, make_split
from .train.loop import TrainRecipe, fit
from .unlearner import Unlearner, UnlearningTask

TINY_RECIPE = TrainRecipe(epochs=4, lr=0.05, batch_size=32)


def tiny_data() -> LoadedDataset:
    return Synthetic(num_classes=4, train_per_class=24, test_per_class=8, image_size=8).load()


def _new_model(data: LoadedDataset, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model("tiny_cnn", num_classes=data.num_classes, in_chans=data.in_chans,
                           image_size=data.image_size)


def random_mask(model: nn.Module, sparsity: float, seed: int = 0) -> Mask:
    g = torch.Generator().manual_seed(seed)
    scores = {n: torch.rand(w.shape, generator=g) for n, w in prunable_weights(model).items()}
    return Mask.from_scores(scores, sparsity)


def tiny_task(*, seed: int = 0, forget: str = "class:0", sparsity: float | None = None,
              recipe: TrainRecipe = TINY_RECIPE) -> tuple[nn.Module, UnlearningTask]:
    """A trained tiny model (pruned at random to ``sparsity`` if given) and its task."""
    data = tiny_data()
    runtime = Runtime.resolve("cpu", "fp32")
    split = make_split(data.train.labels, data.test.labels, ForgetSpec.parse(forget),
                       num_classes=data.num_classes, val_fraction=0.1, seed=seed)
    model = _new_model(data, derive_seed(seed, "original/init"))
    mask = random_mask(model, sparsity, seed) if sparsity is not None else None
    train = data.train.subset(split.train)
    task = UnlearningTask(
        forget=data.train.subset(split.forget), retain=data.train.subset(split.retain),
        validation=data.train.subset(split.validation), num_classes=data.num_classes, recipe=recipe,
        normalize=data.normalize, augment=data.augment, runtime=runtime, seed=seed, mask=mask,
        new_model=lambda: _new_model(data, derive_seed(seed, "unlearn/new-model")))
    fit(model, task.loader(train, stream="original"), recipe, runtime, mask=mask, desc="tiny original")
    return model, task


def tiny_pruning_task(sparsity: float = 0.5, seed: int = 0,
                      recipe: TrainRecipe = TINY_RECIPE) -> PruningTask:
    model, task = tiny_task(seed=seed, recipe=recipe)
    init = _new_model(tiny_data(), derive_seed(seed, "original/init"))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return PruningTask(
        sparsity=sparsity, train=tiny_data().train, recipe=recipe, normalize=task.normalize,
        augment=task.augment, runtime=task.runtime, seed=seed, new_model=task.new_model,
        dense_state=state, snapshots={0: init.state_dict(), 1: state})


def _check_params(cls: type, params: Mapping[str, Any] | None) -> Any:
    instance = cls.from_params(params or {})
    again = cls.from_params(instance.get_params())
    if again != instance:
        raise AssertionError(f"{cls.__name__}: from_params(get_params()) does not round-trip")
    try:
        cls.from_params({**(params or {}), "no_such_parameter": 1})
    except ConfigError as exc:
        if "no_such_parameter" not in str(exc):
            raise AssertionError(f"{cls.__name__}: unknown-key error does not name the key: {exc}")
    else:
        raise AssertionError(f"{cls.__name__}: accepted an unknown parameter")
    return instance


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def check_unlearner(cls: type[Unlearner], params: Mapping[str, Any] | None = None) -> None:
    """Raise ``AssertionError`` unless ``cls`` honours the unlearner contract.

    Checked: typed parameters that round-trip and reject unknown keys; the result is a model
    of the same architecture with finite weights; the run is deterministic for a seed; the
    task's data is not modified; on a pruned model every pruned weight stays exactly zero.
    """
    if not (isinstance(cls, type) and issubclass(cls, Unlearner)):
        raise AssertionError(f"{cls!r} is not a subclass of unlearnbench.Unlearner")
    unlearner = _check_params(cls, params)
    for sparsity in (None, 0.5):
        model, task = tiny_task(sparsity=sparsity)
        forget_before = task.forget.images.clone(), task.forget.labels.clone()
        results = []
        for _ in range(2):
            torch.manual_seed(derive_seed(task.seed, "unlearn"))
            out = unlearner.unlearn(copy.deepcopy(model), task)
            if not isinstance(out, nn.Module):
                raise AssertionError(f"{cls.__name__}.unlearn returned {type(out).__name__}, not a Module")
            results.append(_state(out))
        reference = _state(model)
        if results[0].keys() != reference.keys() or any(
                results[0][k].shape != reference[k].shape for k in reference):
            raise AssertionError(f"{cls.__name__}: the unlearned model's architecture differs")
        for k, v in results[0].items():
            if v.is_floating_point() and not torch.isfinite(v).all():
                raise AssertionError(f"{cls.__name__}: non-finite values in {k}")
            if not torch.equal(v, results[1][k]):
                raise AssertionError(f"{cls.__name__}: two runs with the same seed differ in {k}")
        if not (torch.equal(forget_before[0], task.forget.images)
                and torch.equal(forget_before[1], task.forget.labels)):
            raise AssertionError(f"{cls.__name__}: unlearn modified the task's forget data")
        if task.mask is not None:
            probe = copy.deepcopy(model)
            probe.load_state_dict(results[0])
            if bad := task.mask.violations(probe):
                raise AssertionError(f"{cls.__name__}: {bad} pruned weights became non-zero")


def check_pruner(cls: type[Pruner], params: Mapping[str, Any] | None = None,
                 sparsity: float = 0.5) -> None:
    """Raise ``AssertionError`` unless ``cls`` honours the pruner contract: parameters as for
    unlearners; the returned mask reaches the target sparsity (to one weight) and the returned
    model's pruned weights are exactly zero."""
    if not (isinstance(cls, type) and issubclass(cls, Pruner)):
        raise AssertionError(f"{cls!r} is not a subclass of unlearnbench.Pruner")
    pruner = _check_params(cls, params)
    task = tiny_pruning_task(sparsity)
    model, mask = pruner.prune(task)
    total = sum(m.numel() for m in mask.keep.values())
    if abs(mask.sparsity - sparsity) > 1.0 / total + 1e-9:
        raise AssertionError(f"{cls.__name__}: mask sparsity {mask.sparsity:.4f} != target {sparsity}")
    if bad := mask.violations(model):
        raise AssertionError(f"{cls.__name__}: {bad} pruned weights are non-zero")
