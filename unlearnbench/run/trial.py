"""One trial, and the seeds of one configuration: original model (trained or loaded from the
cache) -> optional pruning (cached too) -> forget/retain split -> timed unlearning with the mask
held fixed -> UA, MIA-Efficacy, RA, TA (and the probes of the scenario, before and after
unlearning) -> one record, written atomically. Every component comes from a registry; nothing
here knows a method, pruner, dataset or architecture by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..data.dataset import LoadedDataset
from ..data.tensors import ImageData
from ..data.splits import make_split, subsample
from ..errors import UnlearnbenchError
from ..evaluate.metrics import evaluate
from ..evaluate.probes import BackdoorProbe, Probe, ProbeContext, TransferProbe
from ..report.provenance import make_record
from ..report.records import RunRecord, Timings
from ..scenarios.backdoor import poison
from ..train.masks import Mask
from ..train.runtime import derive_seed, generator
from ..unlearner import UnlearningTask
from .artifacts import load_dataset, model_factory, original_model, probe_before, pruned_model
from .config import Plan, RunConfig, prepare
from .sharing import TimedSlot, on_device
from .timing import timed_unlearn

if TYPE_CHECKING:
    from .executors import Executor

def run(config: RunConfig, *, log: Callable[[str], None] = lambda m: None,
        executor: Executor | None = None) -> list[RunRecord]:
    """Run every seed of ``config`` (on ``executor``, default in-process); returns the records
    in seed order (also written to ``output_dir``)."""
    from .executors import LocalExecutor, Trial, run_grid
    prepare(config)  # a bad configuration fails here, before any executor starts
    trials = [Trial(config, seed) for seed in config.seeds]
    return run_grid(trials, executor or LocalExecutor(), log=log, progress=executor is not None)


def load_data(plan: Plan) -> LoadedDataset:
    """The dataset's tensors, cut to ``train_size``/``test_size`` when the config asks."""
    cfg = plan.config
    data = load_dataset(plan.dataset, cfg.dataset, cfg.data_root, cfg.download, plan.cache)
    return subsample(data, cfg.train_size, cfg.test_size)


def _transfer_probe(plan: Plan, data: LoadedDataset) -> TransferProbe:
    cfg = plan.config
    downstream = load_dataset(plan.transfer, cfg.transfer, cfg.transfer_root or cfg.data_root,
                       cfg.download, plan.cache)
    probe = TransferProbe(cfg.transfer, subsample(downstream, cfg.train_size, cfg.test_size))
    probe.check(data.in_chans, data.image_size)
    return probe



def trial_probes(plan: Plan, data: LoadedDataset) -> list[Probe]:
    """The probes every seed of ``plan`` measures besides the scenario's own."""
    return [_transfer_probe(plan, data)] if plan.transfer is not None else []


@dataclass
class TrialModels:
    """What a trial starts from: its split and training images, and the model given to the
    unlearner (the original, or the pruned original) with its mask and cache key."""

    split: Any
    train_all: ImageData
    new_model: Callable[[int], nn.Module]
    model: nn.Module
    mask: Mask | None
    model_key: dict
    original_s: float
    original_cached: bool
    prune_s: float = 0.0
    prune_cached: bool = True


def trial_models(plan: Plan, data: LoadedDataset, seed: int, *,
                 log: Callable[[str], None] = lambda m: None) -> TrialModels:
    """The split, then the original model and (with a pruner) the pruned one, each trained or
    loaded from ``plan.cache``."""
    runtime = plan.runtime
    split = make_split(data.train.labels, data.test.labels, plan.forget,
                       num_classes=data.num_classes, val_fraction=plan.config.val_fraction, seed=seed)
    train_all = data.train.to(runtime.device)
    if plan.forget.poisons:  # the original model learns the backdoor from the forget set
        train_all = poison(train_all, split.forget, plan.forget.target)
    new_model = model_factory(plan, data)

    log(f"[seed {seed}] original model ({plan.arch} on {plan.config.dataset})")
    original, original_s, original_cached, snapshots, model_key = original_model(
        plan, data, train_all.subset(split.train), split, seed, new_model)
    models = TrialModels(split, train_all, new_model, original, None, model_key, original_s,
                         original_cached)
    if plan.pruner is not None:
        log(f"[seed {seed}] pruning with {plan.config.pruner} to sparsity {plan.config.sparsity}")
        models.model, models.mask, models.prune_s, models.prune_cached, models.model_key = pruned_model(
            plan, data, train_all.subset(split.train), seed, new_model, original, snapshots, model_key)
    return models


def run_trial(plan: Plan, data: LoadedDataset, seed: int, *,
              log: Callable[[str], None] = lambda m: None, probes: Sequence[Probe] = ()) -> RunRecord:
    """One trial; its record is written to ``output_dir`` and returned."""
    record = trial_record(plan, data, seed, log=log, probes=probes)
    record.save(Path(plan.config.output_dir) / f"{record.run_id}.json")
    return record


def trial_record(plan: Plan, data: LoadedDataset, seed: int, *,
                 log: Callable[[str], None] = lambda m: None, probes: Sequence[Probe] = ()) -> RunRecord:
    """One trial, announced on its device while it runs; returns its record (written by the caller)."""
    with on_device(plan.runtime.device):
        return _trial(plan, data, seed, log, probes)


def _trial(plan: Plan, data: LoadedDataset, seed: int, log: Callable[[str], None],
           probes: Sequence[Probe]) -> RunRecord:
    runtime = plan.runtime
    models = trial_models(plan, data, seed, log=log)
    split, train_all, new_model, model, mask = (models.split, models.train_all, models.new_model,
                                                models.model, models.mask)
    probes = list(probes)
    if plan.forget.poisons:
        probes.insert(0, BackdoorProbe(plan.forget.target))
    full_test = data.test.to(runtime.device)
    context = ProbeContext(full_test, data.normalize, runtime)
    before = {key: value for probe in probes
              for key, value in probe_before(plan, probe, model, context, models.model_key).items()}

    forget, retain = train_all.subset(split.forget), train_all.subset(split.retain)
    task = UnlearningTask(
        forget=forget, retain=retain,
        validation=train_all.subset(split.validation) if len(split.validation) else None,
        num_classes=data.num_classes, recipe=plan.recipe, normalize=data.normalize,
        augment=data.augment, runtime=runtime, seed=seed,
        mask=mask.to(runtime.device) if mask is not None else None,
        new_model=lambda: new_model(derive_seed(seed, "unlearn/new-model")))

    log(f"[seed {seed}] unlearning with {plan.config.method}")
    torch.manual_seed(derive_seed(seed, "unlearn"))
    with TimedSlot(runtime.device) as slot:  # one timed call per device at a time (sharing.py)
        timed = timed_unlearn(plan.unlearner, model, task)
    unlearned, rte, warmup_s = timed.model, timed.rte, timed.warmup_s
    if not isinstance(unlearned, nn.Module):
        raise UnlearnbenchError(f"unlearner {plan.config.method!r} returned {type(unlearned).__name__}, "
                                f"expected the unlearned torch.nn.Module")
    if mask is not None and (bad := mask.violations(unlearned)):
        raise UnlearnbenchError(f"unlearner {plan.config.method!r} made {bad} pruned weights non-zero; "
                                f"the mask must stay fixed (train with task.fit, or call task.mask.apply)")

    log(f"[seed {seed}] evaluating")
    test = full_test.subset(split.test)
    shadow = torch.randperm(len(retain), generator=generator(seed, "mia-shadow"))[:len(test)]
    with runtime.timer() as evaluation:
        metrics = evaluate(unlearned, forget=forget, retain=retain, test=test,
                           normalize=data.normalize, runtime=runtime, shadow_index=shadow)
        after = {key: value for probe in probes for key, value in probe.measure(unlearned, context).items()}

    record = make_record(plan, data, seed, split, unlearned, metrics, rte,
                     Timings(models.original_s, models.original_cached, models.prune_s,
                             models.prune_cached, rte, evaluation.seconds, warmup_s, slot.shared_by),
                     {k: {"before": before[k], "after": after[k]} for k in after})
    return record
