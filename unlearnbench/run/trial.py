"""One trial: the benchmark's protocol, read top to bottom in :func:`run_trial`.

1. the starting models: the trial's split, the original model (trained, or loaded from the
   cache) and, with a pruner, the pruned original (cached too);
2. the probes of the scenario and of the configuration on the model before unlearning;
3. the task the unlearner receives: the forget and retain sets, the validation hold-out, the
   recipe, the mask and the trial's seed;
4. the timed unlearning call (RTE), one timed call per device at a time;
5. the checks of what came back: the architecture it was given, and every pruned weight still
   zero (the mask held fixed);
6. the evaluation: every registered trial metric on the unlearned model's logits, the probes
   again, and a population's margins; an unlearned model with non-finite weights or logits is
   recorded as diverged, a result about the method rather than a crash;
7. the record (written by the caller, an executor's driver), and the unlearned model when the
   configuration asks for it.

What every seed of a configuration shares (its data, its probes) is set up once, before the
first trial (:func:`load_data`, :func:`setup_trials`). Every component comes from a registry;
nothing here knows a method, pruner, dataset, architecture, metric, scenario or probe by name.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..components import UNLEARNERS, build_model
from ..data.access import load_dataset
from ..data.dataset import LoadedDataset
from ..data.population import Membership, population_split
from ..data.splits import Split, make_split, subsample
from ..data.tensors import ImageData, Normalize
from ..errors import CorruptFileError, NonFiniteError, UnlearnbenchError
from ..evaluate.margins import margins as margin_of
from ..evaluate.measure import declarations, measure, trial_evaluation, trial_metrics
from ..evaluate.metrics import non_finite_weights, predict
from ..guard import call_plugin, check_same_architecture
from ..metric import TrialMetric
from ..probe import Probe, ProbeContext
from ..report.records import RunRecord, Timings, Work
from ..seeds import derive_seed, generator
from ..storage import atomic_write_bytes
from ..train.masks import Mask
from ..train.tasks import UnlearningTask
from .artifacts import model_factory, original_model, probe_before, pruned_model
from .config import Plan
from .provenance import make_record
from .sharing import TimedSlot, on_device
from .timing import timed_unlearn

Log = Callable[[str], None]


def _silent(message: str) -> None:
    pass


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


def run_trial(plan: Plan, data: LoadedDataset, seed: int, *, log: Log = _silent,
              probes: Sequence[Probe] | None = None) -> TrialOutcome:
    """One trial of ``plan`` with ``seed`` (the protocol of the module docstring), announced on
    its device while it runs. Returns its record, not written yet (an executor's driver writes
    it), with what its metrics were measured on. ``probes``: those :func:`setup_trials` returned
    (None: set them up here)."""
    probes = setup_trials(plan, data) if probes is None else probes
    with on_device(plan.runtime.device):
        metrics = trial_metrics()  # loaded before any training
        models = trial_models(plan, data, seed, log=log)
        heldout = _heldout_data(plan, data, models.train_all, models.split)
        context = ProbeContext(heldout, data.normalize, plan.runtime)
        before = _merged([probe_before(plan, probe, models.model, context, models.model_key)
                          for probe in probes])
        task = _unlearning_task(plan, data, seed, models)
        log(f"[seed {seed}] unlearning with {plan.config.method}")
        unlearned = _timed_unlearning(plan, models.model, task)
        _check_unlearned(plan, models, unlearned.model)
        log(f"[seed {seed}] evaluating")
        sets = _evaluation_sets(plan, task, heldout, models.split, seed)
        measured = _evaluation(plan, metrics, probes, context, unlearned.model, sets, models, before,
                               rte=unlearned.rte, log=lambda m: log(f"[seed {seed}] {m}"))
        record = _trial_record_of(plan, data, seed, models, metrics, unlearned, measured)
        if plan.config.save_model is not None:
            _save_model(Path(plan.config.save_model).expanduser() / f"{record.run_id}.pt",
                        unlearned.model, models.mask, data, models.split, sets.mia_members, record)
        return TrialOutcome(record, unlearned.model.eval(), models.mask, sets.forget, sets.retain,
                            sets.test, sets.mia_members, data.normalize)


def trial_record(plan: Plan, data: LoadedDataset, seed: int, *, log: Log = _silent,
                 probes: Sequence[Probe] | None = None) -> RunRecord:
    """Deprecated: ``run_trial(...).record``; kept for executors written against it (the
    built-in ``local`` and ``ray`` ones call it too)."""
    return run_trial(plan, data, seed, log=log, probes=probes).record


# -- 1. the starting models ------------------------------------------------------------------
@dataclass
class TrialModels:
    """What a trial starts from: its split and training images, and the model given to the
    unlearner (the original, or the pruned original) with its mask and cache key."""

    split: Split
    train_all: ImageData
    new_model: Callable[[int], nn.Module]
    model: nn.Module
    mask: Mask | None
    model_key: dict
    original_s: float
    original_cached: bool
    prune_s: float = 0.0
    prune_cached: bool = True


def trial_models(plan: Plan, data: LoadedDataset, seed: int, *, log: Log = _silent) -> TrialModels:
    """The split, then the original model and (with a pruner) the pruned one, each trained or
    loaded from ``plan.cache``."""
    split = _trial_split(plan, data, seed)
    # what the original trains on: the scenario may change it (a backdoor poisons the forget set)
    train_all = plan.forget.poison(data.train.to(plan.runtime.device), split.forget)
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


def _trial_split(plan: Plan, data: LoadedDataset, seed: int) -> Split:
    """The seeded split of an ordinary trial, or the fixed split of a population's trial."""
    member = _membership(plan)
    if member is not None:
        return population_split(data.train.labels.cpu(), data.test.labels.cpu(), member,
                                val_fraction=plan.config.val_fraction)
    return make_split(data.train.labels, data.test.labels, plan.forget,
                      num_classes=data.num_classes, val_fraction=plan.config.val_fraction, seed=seed)


def _membership(plan: Plan) -> Membership | None:
    """The trial's place in a population (an audit), or None for an ordinary trial."""
    return Membership.from_mapping(plan.config.population) if plan.config.population else None


# -- 2. the probes before unlearning ---------------------------------------------------------
def _heldout_data(plan: Plan, data: LoadedDataset, train_all: ImageData, split: Split) -> ImageData:
    """What the trial measures held-out behaviour on (TA, the MIA's non-members, the probes,
    whole: a scenario's ``keep_test`` applies to TA only): the test set, or for a tuning trial
    the validation hold-out, so that selecting hyperparameters never reads the test set."""
    if plan.config.holdout == "test":
        return data.test.to(plan.runtime.device)
    return train_all.subset(split.validation.to(train_all.labels.device))


def _merged(measurements: Sequence[dict[str, float]]) -> dict[str, float]:
    """The values of several probes in one mapping; two probes may not name the same value."""
    values: dict[str, float] = {}
    for measured in measurements:
        if twice := sorted(set(values) & set(measured)):
            raise UnlearnbenchError(f"two probes of this run measure {twice[0]!r}; expected each "
                                    f"value from one probe")
        values.update(measured)
    return values


# -- 3. the task -----------------------------------------------------------------------------
def _unlearning_task(plan: Plan, data: LoadedDataset, seed: int, models: TrialModels) -> UnlearningTask:
    """What the unlearner may use: the forget and retain sets (which partition the training split
    the original saw), the validation hold-out, the recipe, the mask on the run device and the
    seed of the unlearning run (a population's replicate gets one of its own)."""
    split, train_all, runtime = models.split, models.train_all, plan.runtime
    member = _membership(plan)
    unlearn_seed = member.unlearning_seed(seed) if member is not None else seed
    return UnlearningTask(
        forget=train_all.subset(split.forget), retain=train_all.subset(split.retain),
        validation=train_all.subset(split.validation) if len(split.validation) else None,
        num_classes=data.num_classes, recipe=plan.recipe, normalize=data.normalize,
        augment=data.augment, runtime=runtime, seed=unlearn_seed,
        mask=models.mask.to(runtime.device) if models.mask is not None else None,
        new_model=lambda: models.new_model(derive_seed(unlearn_seed, "unlearn/new-model")))


# -- 4. the timed unlearning call ------------------------------------------------------------
@dataclass(frozen=True)
class _Unlearned:
    """What the timed unlearning call returned, and what the harness measured of it."""

    model: nn.Module
    rte: float  # seconds of the call, one-time warm-up left out
    warmup_s: float
    work: Work
    shared_by: int  # other trials on the device while it was timed


def _timed_unlearning(plan: Plan, model: nn.Module, task: UnlearningTask) -> _Unlearned:
    """The unlearner's ``unlearn(model, task)``, seeded and timed, at most one timed call per
    device at a time (:mod:`unlearnbench.run.sharing`); a failure names the plugin."""
    torch.manual_seed(derive_seed(task.seed, "unlearn"))
    with TimedSlot(plan.runtime.device) as slot:
        timed = call_plugin(UNLEARNERS, plan.config.method,
                            lambda: timed_unlearn(plan.unlearner, model, task))
    return _Unlearned(timed.model, timed.rte, timed.warmup_s, timed.work, slot.shared_by)


# -- 5. the checks of what came back ---------------------------------------------------------
def _check_unlearned(plan: Plan, models: TrialModels, unlearned: nn.Module) -> None:
    """The unlearned model has the architecture it was given, and the mask held: every weight
    the pruner removed is still zero."""
    method = plan.config.method
    check_same_architecture(UNLEARNERS, method, models.model, unlearned)
    if models.mask is not None and (bad := models.mask.violations(unlearned)):
        raise UnlearnbenchError(f"unlearner {method!r} made {bad} pruned weights non-zero; the "
                                f"mask must stay fixed (train with task.fit, or call task.mask.apply)")


# -- 6. the evaluation -----------------------------------------------------------------------
@dataclass(frozen=True)
class _EvaluationSets:
    """The data the metrics read: UA's forget set, RA's retain set, TA's test set (the held-out
    set without what the scenario leaves out of TA), the whole held-out set, and the MIA's
    members (indices into the retain set)."""

    forget: ImageData
    retain: ImageData
    test: ImageData
    heldout: ImageData
    mia_members: torch.Tensor


def _evaluation_sets(plan: Plan, task: UnlearningTask, heldout: ImageData, split: Split,
                     seed: int) -> _EvaluationSets:
    test = heldout.subset(split.test if plan.config.holdout == "test" else _kept_heldout(plan, heldout))
    return _EvaluationSets(task.forget, task.retain, test, heldout,
                           mia_members(len(task.retain), len(test), seed))


def _kept_heldout(plan: Plan, heldout: ImageData) -> torch.Tensor:
    """The examples of the validation hold-out that TA is measured on (the scenario's
    ``keep_test``, e.g. without a forgotten class)."""
    keep = plan.forget.keep_test(heldout.labels.cpu())
    return torch.arange(len(heldout)) if keep is None else torch.nonzero(keep).flatten()


def mia_members(num_retain: int, num_test: int, seed: int) -> torch.Tensor:
    """Indices into the retain set of the MIA's member examples: a seeded random subset of the
    retain set with as many examples as the test set (the attack's non-members)."""
    return torch.randperm(num_retain, generator=generator(seed, "mia-shadow"))[:num_test]


@dataclass(frozen=True)
class _Measured:
    """What the evaluation found: each metric's value, each probe's value before and after
    unlearning, a population's margins, and what diverged (None: nothing)."""

    values: dict[str, float | None]
    probes: dict[str, dict[str, float | None]]
    margins: dict[str, list[float]] | None
    divergence: str | None
    seconds: float = 0.0


def _evaluation(plan: Plan, metrics: Mapping[str, TrialMetric], probes: Sequence[Probe],
                context: ProbeContext, unlearned: nn.Module, sets: _EvaluationSets,
                models: TrialModels, before: Mapping[str, float], *, rte: float, log: Log) -> _Measured:
    """Every metric, the probes after unlearning and a population's margins, timed; a model
    with non-finite weights or logits is recorded as diverged (:func:`_diverged`)."""
    divergence = non_finite_weights(unlearned)
    with plan.runtime.timer() as watch:
        try:
            if divergence is not None:
                raise NonFiniteError(divergence)
            measured = _measure_unlearned(plan, metrics, probes, context, unlearned, sets, models,
                                          before, rte=rte)
        except NonFiniteError as exc:  # a result about the method, not a crash
            log(f"diverged: {exc}")
            measured = _diverged(str(exc), metrics, before)
    return dataclasses.replace(measured, seconds=watch.seconds)


def _measure_unlearned(plan: Plan, metrics: Mapping[str, TrialMetric], probes: Sequence[Probe],
                       context: ProbeContext, unlearned: nn.Module, sets: _EvaluationSets,
                       models: TrialModels, before: Mapping[str, float], *, rte: float) -> _Measured:
    """The metrics on the unlearned model's logits, its probes and its margins; raises
    :class:`NonFiniteError` when a logit is not finite."""
    values = measure(metrics, trial_evaluation(
        unlearned, forget=sets.forget, retain=sets.retain, test=sets.test, normalize=context.normalize,
        runtime=plan.runtime, mia_members=sets.mia_members, rte=rte, heldout=sets.heldout))
    after = _merged([probe.measure(unlearned, context) for probe in probes])
    margins = _scored_margins(unlearned, _membership(plan), models.train_all, sets.heldout,
                              context.normalize, plan.runtime)
    return _Measured(values, {k: {"before": before[k], "after": after[k]} for k in after}, margins, None)


def _diverged(divergence: str, metrics: Mapping[str, TrialMetric], before: Mapping[str, float]) -> _Measured:
    """A diverged trial's measurements: no metric, no probe after unlearning, no margins."""
    return _Measured({name: None for name in metrics},
                     {k: {"before": before[k], "after": None} for k in before}, None, divergence)


def _scored_margins(model: nn.Module, member: Membership | None, train_all: ImageData, test: ImageData,
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


# -- 7. the record ---------------------------------------------------------------------------
def _trial_record_of(plan: Plan, data: LoadedDataset, seed: int, models: TrialModels,
                     metrics: Mapping[str, TrialMetric], unlearned: _Unlearned,
                     measured: _Measured) -> RunRecord:
    """The trial's record (:func:`unlearnbench.run.provenance.make_record`), marked diverged
    with what diverged when it did."""
    timings = Timings(models.original_s, models.original_cached, models.prune_s, models.prune_cached,
                      unlearned.rte, measured.seconds, unlearned.warmup_s, unlearned.shared_by)
    record = make_record(plan, data, seed, models.split, unlearned.model, measured.values,
                         declarations(metrics), timings, measured.probes, margins=measured.margins,
                         work=unlearned.work)
    if measured.divergence is None:
        return record
    return dataclasses.replace(record, status="diverged",
                               config={**record.config, "divergence": measured.divergence})


def _save_model(path: Path, model: nn.Module, mask: Mask | None, data: LoadedDataset, split: Split,
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


# -- what every seed of a configuration shares -----------------------------------------------
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
