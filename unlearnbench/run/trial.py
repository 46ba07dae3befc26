"""One trial, and the seeds of one configuration: original model (trained or loaded from the
cache) -> optional pruning (cached too) -> forget/retain split -> timed unlearning with the mask
held fixed -> UA, MIA-Efficacy, RA, TA (and the probes of the scenario, before and after
unlearning) -> one record, written atomically. Every component comes from a registry; nothing
here knows a method, pruner, dataset or architecture by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..data.dataset import LoadedDataset
from ..data.splits import make_split, subsample
from ..components import UNLEARNERS
from ..errors import CorruptFileError, NonFiniteError, UnlearnbenchError
from ..evaluate.metrics import Metrics, evaluate, non_finite_weights
from ..evaluate.probes import BackdoorProbe, Probe, ProbeContext, TransferProbe
from ..report.provenance import make_record
from ..report.records import RunRecord, Timings
from ..scenarios.backdoor import poison
from ..train.runtime import derive_seed, generator
from ..unlearner import UnlearningTask
from .artifacts import load_dataset, model_factory, original_model, probe_before, pruned_model
from .config import Plan, RunConfig, prepare
from .guard import call_plugin, check_same_architecture
from .timing import timed_unlearn

def run(config: RunConfig, *, log: Callable[[str], None] = lambda m: None) -> list[RunRecord]:
    """Run every seed of ``config``; returns the records (also written to ``output_dir``)."""
    plan = prepare(config)
    data = load_data(plan)
    probes = [_transfer_probe(plan, data)] if plan.transfer is not None else []
    return [run_trial(plan, data, seed, log=log, probes=probes) for seed in config.seeds]


def load_data(plan: Plan) -> LoadedDataset:
    """The dataset's tensors, cut to ``train_size``/``test_size`` when the config asks."""
    cfg = plan.config
    data = load_dataset(plan.dataset, cfg.dataset, cfg.data_root, cfg.download, plan.cache)
    check_labels(data, cfg.dataset)
    return subsample(data, cfg.train_size, cfg.test_size)


def check_labels(data: LoadedDataset, name: str) -> None:
    """Every label a class index: a bad one would otherwise surface deep in training."""
    for split, part in (("train", data.train), ("test", data.test)):
        labels = part.labels
        bad = torch.nonzero((labels < 0) | (labels >= data.num_classes)).flatten()
        if len(bad):
            raise CorruptFileError(f"dataset {name!r}: {split} example {int(bad[0])} has label "
                                   f"{int(labels[bad[0]])}; expected 0..{data.num_classes - 1} "
                                   f"({len(bad)} out of range)")


def _transfer_probe(plan: Plan, data: LoadedDataset) -> TransferProbe:
    cfg = plan.config
    downstream = load_dataset(plan.transfer, cfg.transfer, cfg.transfer_root or cfg.data_root,
                       cfg.download, plan.cache)
    probe = TransferProbe(cfg.transfer, subsample(downstream, cfg.train_size, cfg.test_size))
    probe.check(data.in_chans, data.image_size)
    return probe



def run_trial(plan: Plan, data: LoadedDataset, seed: int, *,
              log: Callable[[str], None] = lambda m: None, probes: Sequence[Probe] = ()) -> RunRecord:
    runtime = plan.runtime
    split = make_split(data.train.labels, data.test.labels, plan.forget,
                       num_classes=data.num_classes, val_fraction=plan.config.val_fraction, seed=seed)
    train_all = data.train.to(runtime.device)
    probes = list(probes)
    if plan.forget.poisons:  # the original model learns the backdoor from the forget set
        train_all = poison(train_all, split.forget, plan.forget.target)
        probes.insert(0, BackdoorProbe(plan.forget.target))
    new_model = model_factory(plan, data)

    log(f"[seed {seed}] original model ({plan.arch} on {plan.config.dataset})")
    original, original_s, original_cached, snapshots, model_key = original_model(
        plan, data, train_all.subset(split.train), split, seed, new_model)
    model, mask, prune_s, prune_cached = original, None, 0.0, True
    if plan.pruner is not None:
        log(f"[seed {seed}] pruning with {plan.config.pruner} to sparsity {plan.config.sparsity}")
        model, mask, prune_s, prune_cached, model_key = pruned_model(
            plan, data, train_all.subset(split.train), seed, new_model, original, snapshots, model_key)
    full_test = data.test.to(runtime.device)
    context = ProbeContext(full_test, data.normalize, runtime)
    before = {key: value for probe in probes
              for key, value in probe_before(plan, probe, model, context, model_key).items()}

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
    timed = call_plugin(UNLEARNERS, plan.config.method, lambda: timed_unlearn(plan.unlearner, model, task))
    unlearned, rte, warmup_s = timed.model, timed.rte, timed.warmup_s
    check_same_architecture(UNLEARNERS, plan.config.method, model, unlearned)
    if mask is not None and (bad := mask.violations(unlearned)):
        raise UnlearnbenchError(f"unlearner {plan.config.method!r} made {bad} pruned weights non-zero; "
                                f"the mask must stay fixed (train with task.fit, or call task.mask.apply)")

    log(f"[seed {seed}] evaluating")
    test = full_test.subset(split.test)
    shadow = torch.randperm(len(retain), generator=generator(seed, "mia-shadow"))[:len(test)]
    divergence = non_finite_weights(unlearned)
    with runtime.timer() as evaluation:
        try:
            if divergence is not None:
                raise NonFiniteError(divergence)
            metrics = evaluate(unlearned, forget=forget, retain=retain, test=test,
                               normalize=data.normalize, runtime=runtime, shadow_index=shadow)
            after = {key: value for probe in probes for key, value in probe.measure(unlearned, context).items()}
        except NonFiniteError as exc:  # recorded as diverged: a result about the method, not a crash
            divergence = str(exc)
            log(f"[seed {seed}] diverged: {divergence}")
            metrics = Metrics(UA=None, MIA=None, RA=None, TA=None)
            after = {key: None for key in before}

    record = make_record(plan, data, seed, split, unlearned, metrics, rte,
                     Timings(original_s, original_cached, prune_s, prune_cached, rte, evaluation.seconds, warmup_s),
                     {k: {"before": before[k], "after": after[k]} for k in after})
    if divergence is not None:
        record = dataclasses.replace(record, status="diverged",
                                     config={**record.config, "divergence": divergence})
    record.save(Path(plan.config.output_dir) / f"{record.run_id}.json")
    return record
