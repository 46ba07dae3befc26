"""One trial, and the seeds of one configuration: original model (trained or loaded from the
cache) -> optional pruning (cached too) -> forget/retain split -> timed unlearning with the mask
held fixed -> every registered trial metric (and the probes of the scenario and of the
configuration, before and after unlearning) -> one record, written atomically. Every component
comes from a registry; nothing here knows a method, pruner, dataset, architecture, metric,
scenario or probe by name.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..components import UNLEARNERS, build_model
from ..data.access import load_dataset
from ..data.dataset import LoadedDataset
from ..data.population import Membership, population_split
from ..data.splits import make_split, subsample
from ..data.tensors import ImageData, Normalize
from ..errors import CorruptFileError, NonFiniteError, UnlearnbenchError
from ..evaluate.margins import margins as margin_of
from ..evaluate.measure import declarations, measure, trial_evaluation, trial_metrics
from ..evaluate.metrics import non_finite_weights, predict
from ..guard import call_plugin, check_same_architecture
from ..probe import Probe, ProbeContext
from ..report.records import RunRecord, Timings
from ..seeds import derive_seed, generator
from ..storage import atomic_write_bytes
from ..train.masks import Mask
from ..train.tasks import UnlearningTask
from .artifacts import model_factory, original_model, probe_before, pruned_model
from .config import Plan
from .provenance import make_record
from .sharing import TimedSlot, on_device
from .timing import timed_unlearn


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


def setup_trials(plan: Plan, data: LoadedDataset) -> list[Probe]:
    """What every seed of ``plan`` shares, set up before its first trial: an architecture that
    cannot take these images, or a probe whose data does not fit them, fails here, before any
    training; returns the probes every seed measures (the scenario's first)."""
    model_factory(plan, data)(0)
    for probe in plan.probes.values():
        probe.setup(data, plan.data_access)
    return list(plan.probes.values())


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


def membership(plan: Plan) -> Membership | None:
    """The trial's place in a population (an audit), or None for an ordinary trial."""
    return Membership.from_mapping(plan.config.population) if plan.config.population else None


def trial_split(plan: Plan, data: LoadedDataset, seed: int):
    """The seeded split of an ordinary trial, or the fixed split of a population's trial."""
    member = membership(plan)
    if member is not None:
        return population_split(data.train.labels.cpu(), data.test.labels.cpu(), member,
                                val_fraction=plan.config.val_fraction)
    return make_split(data.train.labels, data.test.labels, plan.forget,
                      num_classes=data.num_classes, val_fraction=plan.config.val_fraction, seed=seed)


def trial_models(plan: Plan, data: LoadedDataset, seed: int, *,
                 log: Callable[[str], None] = lambda m: None) -> TrialModels:
    """The split, then the original model and (with a pruner) the pruned one, each trained or
    loaded from ``plan.cache``."""
    runtime = plan.runtime
    split = trial_split(plan, data, seed)
    # what the original trains on: the scenario may change it (a backdoor poisons the forget set)
    train_all = plan.forget.poison(data.train.to(runtime.device), split.forget)
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


@dataclass(frozen=True)
class TrialOutcome:
    """A trial's record and what its metrics were measured on, to check a number independently.

    ``model`` is the unlearned model (eval mode, on the run device); ``forget``, ``retain`` and
    ``test`` are the data of UA, RA and TA (uint8 images; ``normalize`` turns them into the
    model's input); the MIA's members are ``retain.subset(mia_members)``: a seeded random
    subset of the retain set, of the test set's size, its non-members the test set.
    """

    record: RunRecord
    model: nn.Module
    mask: Mask | None
    forget: ImageData
    retain: ImageData
    test: ImageData
    mia_members: torch.Tensor
    normalize: Normalize


def mia_members(num_retain: int, num_test: int, seed: int) -> torch.Tensor:
    """Indices into the retain set of the MIA's member examples: a seeded random subset of the
    retain set with as many examples as the test set (the attack's non-members)."""
    return torch.randperm(num_retain, generator=generator(seed, "mia-shadow"))[:num_test]


def run_trial_outcome(plan: Plan, data: LoadedDataset, seed: int, *,
                      log: Callable[[str], None] = lambda m: None,
                      probes: Sequence[Probe] | None = None) -> TrialOutcome:
    """One trial (see the module docstring): writes its record (and, when the configuration
    has ``save_model``, the unlearned model beside it); returns both with the evaluation data."""
    outcome = trial_outcome(plan, data, seed, log=log, probes=probes)
    outcome.record.save(Path(plan.config.output_dir) / f"{outcome.record.run_id}.json")
    return outcome


def trial_record(plan: Plan, data: LoadedDataset, seed: int, *,
                 log: Callable[[str], None] = lambda m: None,
                 probes: Sequence[Probe] | None = None) -> RunRecord:
    """One trial, announced on its device while it runs; returns its record (written by the caller)."""
    return trial_outcome(plan, data, seed, log=log, probes=probes).record


def trial_outcome(plan: Plan, data: LoadedDataset, seed: int, *,
                  log: Callable[[str], None] = lambda m: None,
                  probes: Sequence[Probe] | None = None) -> TrialOutcome:
    """One trial, announced on its device while it runs; the record is not written here.
    ``probes``: those :func:`setup_trials` returned (None: set them up here)."""
    if probes is None:
        probes = setup_trials(plan, data)
    with on_device(plan.runtime.device):
        return _trial(plan, data, seed, log, probes)


def _trial(plan: Plan, data: LoadedDataset, seed: int, log: Callable[[str], None],
           probes: Sequence[Probe]) -> TrialOutcome:
    runtime = plan.runtime
    metrics = trial_metrics()  # loaded before any training
    models = trial_models(plan, data, seed, log=log)
    split, train_all, new_model, model, mask = (models.split, models.train_all, models.new_model,
                                                models.model, models.mask)
    full_test = heldout_data(plan, data, train_all, split)
    context = ProbeContext(full_test, data.normalize, runtime)
    before = merged([probe_before(plan, probe, model, context, models.model_key) for probe in probes])

    forget, retain = train_all.subset(split.forget), train_all.subset(split.retain)
    member = membership(plan)
    unlearn_seed = member.unlearning_seed(seed) if member is not None else seed
    task = UnlearningTask(
        forget=forget, retain=retain,
        validation=train_all.subset(split.validation) if len(split.validation) else None,
        num_classes=data.num_classes, recipe=plan.recipe, normalize=data.normalize,
        augment=data.augment, runtime=runtime, seed=unlearn_seed,
        mask=mask.to(runtime.device) if mask is not None else None,
        new_model=lambda: new_model(derive_seed(unlearn_seed, "unlearn/new-model")))

    log(f"[seed {seed}] unlearning with {plan.config.method}")
    torch.manual_seed(derive_seed(unlearn_seed, "unlearn"))
    with TimedSlot(runtime.device) as slot:  # one timed call per device at a time (sharing.py)
        timed = call_plugin(UNLEARNERS, plan.config.method,
                            lambda: timed_unlearn(plan.unlearner, model, task))
    unlearned, rte, warmup_s, work = timed.model, timed.rte, timed.warmup_s, timed.work
    check_same_architecture(UNLEARNERS, plan.config.method, model, unlearned)
    if mask is not None and (bad := mask.violations(unlearned)):
        raise UnlearnbenchError(f"unlearner {plan.config.method!r} made {bad} pruned weights non-zero; "
                                f"the mask must stay fixed (train with task.fit, or call task.mask.apply)")

    log(f"[seed {seed}] evaluating")
    test = full_test.subset(split.test if plan.config.holdout == "test"
                            else kept_heldout(plan, full_test))
    shadow = mia_members(len(retain), len(test), seed)
    divergence = non_finite_weights(unlearned)
    with runtime.timer() as evaluation:
        try:
            if divergence is not None:
                raise NonFiniteError(divergence)
            values = measure(metrics, trial_evaluation(
                unlearned, forget=forget, retain=retain, test=test, normalize=data.normalize,
                runtime=runtime, mia_members=shadow, rte=rte, heldout=full_test))
            after = merged([probe.measure(unlearned, context) for probe in probes])
            margins = scored_margins(unlearned, member, train_all, full_test, data.normalize, runtime)
        except NonFiniteError as exc:  # recorded as diverged: a result about the method, not a crash
            divergence = str(exc)
            log(f"[seed {seed}] diverged: {divergence}")
            values = {name: None for name in metrics}
            after = {key: None for key in before}
            margins = None

    record = make_record(plan, data, seed, split, unlearned, values, declarations(metrics),
                     Timings(models.original_s, models.original_cached, models.prune_s,
                             models.prune_cached, rte, evaluation.seconds, warmup_s, slot.shared_by),
                     {k: {"before": before[k], "after": after[k]} for k in after}, margins=margins,
                     work=work)
    if divergence is not None:
        record = dataclasses.replace(record, status="diverged",
                                     config={**record.config, "divergence": divergence})
    if plan.config.save_model is not None:
        save_model(Path(plan.config.save_model).expanduser() / f"{record.run_id}.pt", unlearned, mask,
                   data, split, shadow, record)
    return TrialOutcome(record, unlearned.eval(), mask, forget, retain, test, shadow, data.normalize)


def heldout_data(plan: Plan, data: LoadedDataset, train_all: ImageData, split) -> ImageData:
    """What the trial measures held-out behaviour on (TA, the MIA's non-members, the probes,
    whole: a scenario's ``keep_test`` applies to TA only): the test set, or for a tuning trial
    the validation hold-out, so that selecting hyperparameters never reads the test set."""
    if plan.config.holdout == "test":
        return data.test.to(plan.runtime.device)
    return train_all.subset(split.validation.to(train_all.labels.device))


def kept_heldout(plan: Plan, heldout: ImageData) -> torch.Tensor:
    """The examples of the validation hold-out that TA is measured on (the scenario's
    ``keep_test``, e.g. without a forgotten class)."""
    keep = plan.forget.keep_test(heldout.labels.cpu())
    return torch.arange(len(heldout)) if keep is None else torch.nonzero(keep).flatten()


def scored_margins(model: nn.Module, member: Membership | None, train_all: ImageData, test: ImageData,
                   normalize: Normalize, runtime) -> dict[str, list[float]] | None:
    """A population's trial keeps the margins (``unlearnbench.evaluate.margins``) of its
    scored examples: ``{"train": [...], "test": [...]}`` in the order the population lists them."""
    if member is None or not (member.score or member.score_test):
        return None
    out = {}
    for part, data, index in (("train", train_all, member.score), ("test", test, member.score_test)):
        if index:
            subset = data.subset(torch.tensor(index, device=data.labels.device))
            logits = predict(model, subset, normalize, runtime)
            out[part] = [float(v) for v in margin_of(logits, subset.labels.cpu())]
    return out


def merged(measurements: Sequence[dict[str, float]]) -> dict[str, float]:
    """The values of several probes in one mapping; two probes may not name the same value."""
    values: dict[str, float] = {}
    for measured in measurements:
        if twice := sorted(set(values) & set(measured)):
            raise UnlearnbenchError(f"two probes of this run measure {twice[0]!r}; expected each "
                                    f"value from one probe")
        values.update(measured)
    return values


def save_model(path: Path, model: nn.Module, mask: Mask | None, data: LoadedDataset, split,
               members: torch.Tensor, record: RunRecord) -> None:
    """The unlearned weights, the mask, and the indices of the evaluation data, written
    atomically; :func:`load_model` reads them back."""
    buffer = io.BytesIO()
    torch.save({
        "run_id": record.run_id, "arch": record.arch, "num_classes": data.num_classes,
        "in_chans": data.in_chans, "image_size": data.image_size,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "mask": {k: v.cpu() for k, v in mask.keep.items()} if mask is not None else None,
        # forget/retain index the dataset's training split, test its test split; mia_members
        # indexes the retain set
        "split": {"forget": split.forget.cpu(), "retain": split.retain.cpu(),
                  "test": split.test.cpu(), "mia_members": members.cpu()},
    }, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_model(path: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """A model written by ``--save-model`` (rebuilt from its architecture, weights loaded with
    ``strict=True``, eval mode), and the saved payload (mask, split indices, run id)."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    model = build_model(payload["arch"], num_classes=payload["num_classes"],
                        in_chans=payload["in_chans"], image_size=payload["image_size"])
    model.load_state_dict(payload["state_dict"], strict=True)
    return model.to(device).eval(), payload
