"""Public conformance checks for plugin authors, in the spirit of scikit-learn's
``check_estimator``. Everything runs on the CPU in seconds with a tiny model and synthetic data.

Each check is named (``check_data_untouched``, ``check_deterministic_for_a_seed``, ...) and
takes one component instance. Every kind of component has its kit: unlearners, pruners,
scenarios, metrics, probes and executors. Three ways to run them:

* ``check_unlearner(MyUnlearner)``, ``check_pruner``, ``check_scenario(FirstN, "first:10")``,
  ``check_metric``, ``check_probe`` and ``check_executor`` run every check of the kind and raise
  one ``AssertionError`` naming each check that failed;
* ``unlearner_checks(component)``, ``pruner_checks``, ``scenario_checks``, ``metric_checks``,
  ``probe_checks`` and ``executor_checks`` yield ``(name, check)`` pairs;
* ``@parametrize_with_checks([MyUnlearner(epochs=2), MyPruner()])`` makes one pytest item per
  component and check, with ids like ``MyUnlearner-check_data_untouched`` (``-k`` selects one);
  any kind of component (an instance, or a class built with its defaults) may be listed.

A check that is known to fail is declared with its reason, ``expected_failures={name: reason}``
(or ``expected_failed_checks=`` for the decorator, where it becomes a strict ``xfail``); a
declared check that passes is an error too, so declarations cannot go stale.

What a component declares about itself is read from its tags (:class:`~unlearnbench.UnlearnerTags`):
an identity baseline sets ``tags = UnlearnerTags(changes_model=False)`` and is not asked to
change the model.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import math
import pickle
import random
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from .components import PROBES, build_model
from .data.access import DataAccess
from .data.dataset import LoadedDataset
from .data.splits import ForgetSpec, make_split
from .data.tensors import ImageData
from .datasets.synthetic import Synthetic
from .errors import ConfigError
from .evaluate.metrics import accuracy, predict
from .identity import canonical, jsonable
from .metric import Design, Member, Metric, Population, PopulationMetric, Scored, TrialEvaluation, TrialMetric
from .probe import Probe, ProbeContext
from .pruner import Pruner, snapshots_needed
from .recipe import TrainRecipe
from .report.records import RunRecord
from .run.audit import AuditContext, AuditSpec, base_config
from .run.config import RunConfig
from .run.executors import Executor, LocalExecutor, Trial
from .scenario import Scenario
from .seeds import derive_seed
from .storage import CheckpointCache
from .train.loop import fit
from .train.masks import Mask, prunable_weights
from .train.runtime import Runtime
from .train.tasks import PruningTask, UnlearningTask
from .unlearner import Unlearner

TINY_RECIPE = TrainRecipe(epochs=4, lr=0.05, batch_size=32)
# The unlearner checks start from an original that fits its training split (100% on seed 0):
# an under-trained one (TINY_RECIPE predicts mostly one class) could not tell a method that
# keeps the retain set from one that destroys the model.
FITTED_RECIPE = TrainRecipe(epochs=20, lr=0.05, batch_size=16)


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
              recipe: TrainRecipe = TINY_RECIPE,
              on_epoch_end: Callable[[int, nn.Module], None] | None = None,
              ) -> tuple[nn.Module, UnlearningTask]:
    """A trained tiny model (pruned at random to ``sparsity`` if given) and its task;
    ``on_epoch_end(epoch, model)`` is called after each epoch of the model's training."""
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
    fit(model, task.loader(train, stream="original"), recipe, runtime, mask=mask, desc="tiny original",
        on_epoch_end=on_epoch_end)
    return model, task


def tiny_pruning_task(sparsity: float = 0.5, seed: int = 0,
                      recipe: TrainRecipe = TINY_RECIPE) -> PruningTask:
    """A pruning task on a tiny dense original, with the snapshots of every epoch of its
    training (a pruner gets those it declares: see :func:`for_pruner`)."""
    snapshots = {0: _clone_state(_new_model(tiny_data(), derive_seed(seed, "original/init")).state_dict())}
    model, task = tiny_task(seed=seed, recipe=recipe, on_epoch_end=lambda epoch, m: snapshots.update(
        {epoch: _clone_state(m.state_dict())}))
    return PruningTask(
        sparsity=sparsity, train=tiny_data().train, recipe=recipe, normalize=task.normalize,
        augment=task.augment, runtime=task.runtime, seed=seed, new_model=task.new_model,
        dense_state=_clone_state(model.state_dict()), snapshots=snapshots)


def for_pruner(pruner: Pruner, task: PruningTask) -> PruningTask:
    """``task`` with exactly the snapshots ``pruner`` declares (and epoch 0), as the harness
    gives them."""
    epochs = snapshots_needed(pruner, task.recipe)
    if missing := epochs - set(task.snapshots):
        raise AssertionError(f"snapshot_epochs asks for epochs {sorted(missing)}, which the task "
                             f"({task.recipe.epochs} epochs) does not have")
    return dataclasses.replace(task, snapshots={e: task.snapshots[e] for e in sorted(epochs)})


# -- the checks' shared fixtures: trained once per process, handed out as fresh copies ---------
@functools.lru_cache(maxsize=None)
def _trained(sparsity: float | None) -> tuple[nn.Module, UnlearningTask]:
    return tiny_task(sparsity=sparsity, recipe=FITTED_RECIPE)


def _copy_data(data: ImageData | None) -> ImageData | None:
    return None if data is None else ImageData(data.images.clone(), data.labels.clone())


def _copy_mask(mask: Mask | None) -> Mask | None:
    return None if mask is None else Mask({n: k.clone() for n, k in mask.keep.items()})


def kit_task(sparsity: float | None = None) -> tuple[nn.Module, UnlearningTask]:
    """A fresh copy of the checks' fitted tiny original and its class-wise task (class 0
    forgotten), pruned at random to ``sparsity`` if given: a method may modify both freely."""
    model, task = _trained(sparsity)
    return copy.deepcopy(model), dataclasses.replace(
        task, forget=_copy_data(task.forget), retain=_copy_data(task.retain),
        validation=_copy_data(task.validation), mask=_copy_mask(task.mask))


def _one_example_task() -> tuple[nn.Module, UnlearningTask]:
    """The kit's task with a forget set of one example (the others join the retain set)."""
    model, task = kit_task()
    moved = task.forget.subset(torch.arange(1, len(task.forget)))
    return model, dataclasses.replace(task, forget=task.forget.subset(torch.arange(1)),
                                      retain=ImageData.concat([task.retain, moved]))


@functools.lru_cache(maxsize=None)
def _pruning_task() -> PruningTask:
    return tiny_pruning_task()


def kit_pruning_task(sparsity: float = 0.5) -> PruningTask:
    """A fresh copy of the checks' pruning task (a tiny dense original, 4 epochs)."""
    task = _pruning_task()
    return dataclasses.replace(
        task, sparsity=sparsity, train=_copy_data(task.train), dense_state=_clone_state(task.dense_state),
        snapshots={epoch: _clone_state(s) for epoch, s in task.snapshots.items()})


# -- small tools --------------------------------------------------------------------------------
def _clone_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state.items()}


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return _clone_state(model.state_dict())


def _differing(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> list[str]:
    """Keys whose tensors differ (or that only one side has)."""
    return sorted(k for k in a.keys() | b.keys()
                  if k not in a or k not in b or a[k].shape != b[k].shape or not torch.equal(a[k], b[k]))


def _name(component: Any) -> str:
    return type(component).__name__


@contextlib.contextmanager
def _disturbed_global_random_state(salt: int) -> Iterator[None]:
    """Reseed torch's, Python's and NumPy's global generators with ``salt``; restore them after.

    A method whose result depends on the global state (instead of ``task.generator``) gives
    different models for two salts."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(salt)
        random.seed(salt)
        np.random.seed(salt)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def _unlearn(unlearner: Unlearner, model: nn.Module, task: UnlearningTask) -> nn.Module:
    out = unlearner.unlearn(model, task)
    if not isinstance(out, nn.Module):
        raise AssertionError(f"unlearn returned {type(out).__name__}, not an nn.Module")
    return out


def _prune(pruner: Pruner, task: PruningTask) -> tuple[nn.Module, Mask]:
    out = pruner.prune(for_pruner(pruner, task))
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], nn.Module)
            and isinstance(out[1], Mask)):
        raise AssertionError(f"prune returned {type(out).__name__}, not a (nn.Module, Mask) pair")
    return out


# -- checks shared by unlearners and pruners ----------------------------------------------------
def check_params_round_trip(component: Any) -> None:
    """``from_params(get_params())`` rebuilds an equal instance."""
    again = type(component).from_params(component.get_params())
    if again != component:
        raise AssertionError(f"from_params(get_params()) gives {again!r}, not {component!r}")


def check_unknown_param_rejected(component: Any) -> None:
    """An unknown parameter is a ``ConfigError`` that names it."""
    try:
        type(component).from_params({**component.get_params(), "no_such_parameter": 1})
    except ConfigError as exc:
        if "no_such_parameter" not in str(exc):
            raise AssertionError(f"the unknown-key error does not name the key: {exc}") from None
    else:
        raise AssertionError("accepted an unknown parameter 'no_such_parameter'")


def check_pickles(component: Any) -> None:
    """The instance survives ``pickle`` (parallel executors ship it to other processes)."""
    again = pickle.loads(pickle.dumps(component))
    if type(again) is not type(component) or again != component:
        raise AssertionError(f"pickle round trip gives {again!r}, not {component!r}")


def _check_params_not_overwritten(component: Any, call: Callable[[], Any]) -> None:
    before = copy.deepcopy(vars(component))
    call()
    after = vars(component)
    if added := sorted(after.keys() - before.keys()):
        raise AssertionError(f"the call stored state on the instance: new attribute(s) {added}")
    if changed := sorted(k for k in before if k not in after or before[k] != after[k]):
        raise AssertionError(f"the call overwrote {changed}: "
                             + ", ".join(f"{k}={before[k]!r} -> {after.get(k)!r}" for k in changed))


# -- unlearner checks -----------------------------------------------------------------------------
_REFERENCE_RUNS: dict[tuple[type, str], tuple[nn.Module, nn.Module]] = {}
_ONE_EXAMPLE_RUNS: dict[tuple[type, str], dict[str, torch.Tensor]] = {}


def _reference_run(unlearner: Unlearner) -> tuple[nn.Module, nn.Module, UnlearningTask]:
    """(original, result, untouched task) of one call of a fresh copy of ``unlearner`` on a
    fresh kit task, with the global random state seeded by salt 1; computed once per class and
    parameters and shared by the checks that only read it; the caller gets copies."""
    key = (type(unlearner), repr(unlearner))
    if key not in _REFERENCE_RUNS:
        model, task = kit_task()
        original = copy.deepcopy(model)
        with _disturbed_global_random_state(1):
            _REFERENCE_RUNS[key] = original, _unlearn(copy.deepcopy(unlearner), model, task)
    original, out = _REFERENCE_RUNS[key]
    return copy.deepcopy(original), copy.deepcopy(out), kit_task()[1]


def _non_finite(state: Mapping[str, torch.Tensor]) -> list[str]:
    return sorted(k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all())


def check_same_architecture(unlearner: Unlearner) -> None:
    """The result has the original's state-dict keys and shapes."""
    original, out, _ = _reference_run(unlearner)
    reference, result = _state(original), _state(out)
    if result.keys() != reference.keys() or any(result[k].shape != reference[k].shape for k in reference):
        raise AssertionError("the unlearned model's architecture (state-dict keys or shapes) differs")


def check_finite_weights(unlearner: Unlearner) -> None:
    """No NaN or infinity in the result."""
    if bad := _non_finite(_state(_reference_run(unlearner)[1])):
        raise AssertionError(f"non-finite values in {bad}")


def check_deterministic_for_a_seed(unlearner: Unlearner) -> None:
    """Two runs with the task's seed give the same model even when the global random state
    differs before each: randomness must come from ``task.generator``."""
    model, task = kit_task()
    with _disturbed_global_random_state(2):
        again = _state(_unlearn(copy.deepcopy(unlearner), model, task))
    if differ := _differing(_state(_reference_run(unlearner)[1]), again):
        raise AssertionError(f"two runs with the same task seed differ in {differ} "
                             f"(use task.generator, not the global random state)")


def check_data_untouched(unlearner: Unlearner) -> None:
    """The task's forget, retain and validation data and its mask are left as they were."""
    model, task = kit_task(sparsity=0.5)
    before = {part: _copy_data(getattr(task, part)) for part in ("forget", "retain", "validation")}
    keep = _copy_mask(task.mask)
    _unlearn(unlearner, model, task)
    changed = [f"{part}.{field}" for part, data in before.items() for field in ("images", "labels")
               if not torch.equal(getattr(data, field), getattr(getattr(task, part), field))]
    changed += [f"mask[{n!r}]" for n in keep.keep if not torch.equal(keep.keep[n], task.mask.keep[n])]
    if changed:
        raise AssertionError(f"unlearn modified the task's {', '.join(changed)}")


def check_model_changes(unlearner: Unlearner) -> None:
    """The result differs from the original (opt out with ``UnlearnerTags(changes_model=False)``)."""
    original, out, _ = _reference_run(unlearner)
    if not _differing(_state(original), _state(out)):
        raise AssertionError("the returned model equals the original: nothing was unlearned "
                             "(an identity baseline declares UnlearnerTags(changes_model=False))")


def check_keeps_the_retain_set(unlearner: Unlearner) -> None:
    """The result still classifies the retain set: at least half of the original's retain
    accuracy above the majority-class rate is kept (a destroyed model falls to that rate)."""
    original, out, task = _reference_run(unlearner)
    labels = task.retain.labels
    majority = 100.0 * torch.bincount(labels).max().item() / len(labels)
    before = accuracy(predict(original, task.retain, task.normalize, task.runtime), labels)
    after = accuracy(predict(out, task.retain, task.normalize, task.runtime), labels)
    floor = majority + 0.5 * (before - majority)
    if after < floor:
        raise AssertionError(f"retain accuracy fell from {before:.1f}% to {after:.1f}% "
                             f"(floor {floor:.1f}%, majority class {majority:.1f}%)")


def check_pruned_weights_stay_zero(unlearner: Unlearner) -> None:
    """On a pruned original, every pruned weight of the result is exactly zero."""
    model, task = kit_task(sparsity=0.5)
    out = _unlearn(unlearner, model, task)
    if bad := task.mask.violations(out):
        raise AssertionError(f"{bad} pruned weights became non-zero")


def _one_example_run(unlearner: Unlearner) -> dict[str, torch.Tensor]:
    """The result of a fresh copy of ``unlearner`` on the one-example task, with the global
    random state seeded by salt 0; computed once per class and parameters."""
    key = (type(unlearner), repr(unlearner))
    if key not in _ONE_EXAMPLE_RUNS:
        model, task = _one_example_task()
        with _disturbed_global_random_state(0):
            _ONE_EXAMPLE_RUNS[key] = _state(_unlearn(copy.deepcopy(unlearner), model, task))
    return _ONE_EXAMPLE_RUNS[key]


def check_one_example_forget_set(unlearner: Unlearner) -> None:
    """A forget set of a single example works and gives finite weights."""
    if bad := _non_finite(_one_example_run(unlearner)):
        raise AssertionError(f"with one forget example, non-finite values in {bad}")


def check_no_validation_set(unlearner: Unlearner) -> None:
    """A task without validation data (``validation=None``) works."""
    model, task = kit_task()
    _unlearn(unlearner, model, dataclasses.replace(task, validation=None))


def check_params_not_overwritten(unlearner: Unlearner) -> None:
    """``unlearn`` neither changes the hyperparameters nor stores attributes on the instance."""
    model, task = kit_task()
    _check_params_not_overwritten(unlearner, lambda: _unlearn(unlearner, model, task))


def check_no_state_across_calls(unlearner: Unlearner) -> None:
    """A call gives the same model whether or not the instance ran on another task before."""
    fresh = _one_example_run(unlearner)
    model, task = kit_task()
    _unlearn(unlearner, model, task)
    model, one = _one_example_task()
    with _disturbed_global_random_state(0):  # as the fresh run: only the instance can differ
        used = _state(_unlearn(unlearner, model, one))
    if differ := _differing(fresh, used):
        raise AssertionError(f"after a first call the result differs from a fresh instance's in {differ}")


# -- pruner checks --------------------------------------------------------------------------------
PRUNER_SPARSITY = 0.5


def check_returns_model_and_mask(pruner: Pruner) -> None:
    """A model with the task's architecture and finite weights, and a mask over exactly its
    prunable weights."""
    task = kit_pruning_task(PRUNER_SPARSITY)
    model, mask = _prune(pruner, task)
    reference, out = task.new_model().state_dict(), model.state_dict()
    if out.keys() != reference.keys() or any(out[k].shape != reference[k].shape for k in reference):
        raise AssertionError("the pruned model's architecture (state-dict keys or shapes) differs")
    if bad := _non_finite(out):
        raise AssertionError(f"non-finite values in {bad}")
    weights = prunable_weights(model)
    if weights.keys() != mask.keep.keys() or any(mask.keep[n].shape != w.shape for n, w in weights.items()):
        raise AssertionError(f"the mask covers {sorted(mask.keep)}, not the prunable weights "
                             f"{sorted(weights)} with their shapes")


def check_target_sparsity(pruner: Pruner) -> None:
    """The mask's sparsity is the target, to one weight."""
    _, mask = _prune(pruner, kit_pruning_task(PRUNER_SPARSITY))
    total = sum(m.numel() for m in mask.keep.values())
    if abs(mask.sparsity - PRUNER_SPARSITY) > 1.0 / total + 1e-9:
        raise AssertionError(f"mask sparsity {mask.sparsity:.4f} != target {PRUNER_SPARSITY}")


def check_pruned_weights_are_zero(pruner: Pruner) -> None:
    """Every weight the mask prunes is exactly zero in the returned model."""
    model, mask = _prune(pruner, kit_pruning_task(PRUNER_SPARSITY))
    if bad := mask.violations(model):
        raise AssertionError(f"{bad} pruned weights are non-zero")


def check_task_untouched(pruner: Pruner) -> None:
    """The task's training data, dense weights and snapshots are left as they were."""
    task = kit_pruning_task(PRUNER_SPARSITY)
    train, dense = _copy_data(task.train), _clone_state(task.dense_state)
    snapshots = {epoch: _clone_state(s) for epoch, s in task.snapshots.items()}
    _prune(pruner, task)
    changed = [f"train.{f}" for f in ("images", "labels")
               if not torch.equal(getattr(train, f), getattr(task.train, f))]
    changed += [f"dense_state[{k!r}]" for k in _differing(dense, task.dense_state)]
    changed += [f"snapshots[{e}][{k!r}]" for e, s in snapshots.items()
                for k in _differing(s, task.snapshots.get(e, {}))]
    if changed:
        raise AssertionError(f"prune modified the task's {', '.join(changed[:5])}"
                             + (f" and {len(changed) - 5} more" if len(changed) > 5 else ""))


def check_pruner_deterministic_for_a_seed(pruner: Pruner) -> None:
    """Two runs with the task's seed give the same model and mask even when the global random
    state differs before each."""
    results = []
    for salt in (1, 2):
        with _disturbed_global_random_state(salt):
            model, mask = _prune(copy.deepcopy(pruner), kit_pruning_task(PRUNER_SPARSITY))
        results.append((_state(model), mask.keep))
    if differ := _differing(results[0][1], results[1][1]):
        raise AssertionError(f"two runs with the same task seed give different masks for {differ}")
    if differ := _differing(results[0][0], results[1][0]):
        raise AssertionError(f"two runs with the same task seed differ in {differ} "
                             f"(use the task's seeded generators, not the global random state)")


def check_pruner_params_not_overwritten(pruner: Pruner) -> None:
    """``prune`` neither changes the hyperparameters nor stores attributes on the instance."""
    _check_params_not_overwritten(pruner, lambda: _prune(pruner, kit_pruning_task(PRUNER_SPARSITY)))


def check_pruner_no_state_across_calls(pruner: Pruner) -> None:
    """A call gives the same result whether or not the instance pruned another task before."""
    fresh = copy.deepcopy(pruner)
    _prune(pruner, kit_pruning_task(PRUNER_SPARSITY))
    results = []
    for instance in (pruner, fresh):
        with _disturbed_global_random_state(0):  # so that only the instance can differ
            results.append(_prune(instance, kit_pruning_task(0.75)))
    (m1, k1), (m2, k2) = results
    if differ := _differing(k1.keep, k2.keep) + _differing(_state(m1), _state(m2)):
        raise AssertionError(f"after a first call the result differs from a fresh instance's in {differ}")


# -- scenario checks ------------------------------------------------------------------------------
def _kit_split(scenario: Scenario, seed: int = 0):
    data = tiny_data()
    return make_split(data.train.labels, data.test.labels, scenario, num_classes=data.num_classes,
                      val_fraction=0.1, seed=seed)


def check_text_round_trips(scenario: Scenario) -> None:
    """Its text ``KIND:ARGUMENT`` parses back into an equal scenario that prints the same text
    (the text is part of a trial's identity, so it must be canonical)."""
    text = str(scenario)
    if text != f"{scenario.kind}:{scenario.argument()}":
        raise AssertionError(f"str() gives {text!r}, not KIND:ARGUMENT "
                             f"({scenario.kind}:{scenario.argument()})")
    again = type(scenario).parse(scenario.kind, scenario.argument())
    if again != scenario or str(again) != text:
        raise AssertionError(f"parsing {text!r} gives {again!r} ({str(again)!r}), not {scenario!r}")


def check_bad_argument_rejected(scenario: Scenario) -> None:
    """An argument that means nothing is a ``ConfigError`` naming the whole ``KIND:ARGUMENT``."""
    text = f"{scenario.kind}:@@@"
    try:
        type(scenario).parse(scenario.kind, "@@@")
    except ConfigError as exc:
        if text not in str(exc):
            raise AssertionError(f"the error does not name the spec {text!r}: {exc}") from None
    else:
        raise AssertionError(f"parsed {text!r} without an error")


def check_split_partitions_the_training_split(scenario: Scenario) -> None:
    """On the kit's data, ``choose`` (and ``keep_test``) give boolean masks the harness accepts:
    forget and retain split the training split, neither empty."""
    split = _kit_split(scenario)
    forget, retain = set(split.forget.tolist()), set(split.retain.tolist())
    if forget & retain or forget | retain != set(split.train.tolist()):
        raise AssertionError("forget and retain do not partition the training split")


def check_forget_set_seeded(scenario: Scenario) -> None:
    """The same trial seed gives the same forget set whatever the global random state: a random
    choice draws from the ``generator`` it is given."""
    sets = []
    for salt in (1, 2):
        with _disturbed_global_random_state(salt):
            sets.append(_kit_split(scenario, seed=3).forget)
    if not torch.equal(*sets):
        raise AssertionError("two splits with the same seed chose different forget sets (draw from "
                             "the generator choose() is given, not the global random state)")


def check_poison_leaves_the_data(scenario: Scenario) -> None:
    """``poison`` returns images and labels of the training data's shape and types and leaves
    the data it was given as it was."""
    train = tiny_data().train
    before = _copy_data(train)
    out = scenario.poison(train, _kit_split(scenario).forget)
    if not isinstance(out, ImageData):
        raise AssertionError(f"poison returned {type(out).__name__}, not ImageData")
    if (out.images.shape, out.images.dtype, out.labels.shape) != (before.images.shape, before.images.dtype,
                                                                  before.labels.shape):
        raise AssertionError(f"poison changed the data's shape: {tuple(before.images.shape)} -> "
                             f"{tuple(out.images.shape)}")
    if not (torch.equal(train.images, before.images) and torch.equal(train.labels, before.labels)):
        raise AssertionError("poison modified the training data it was given (return a changed copy)")


def check_probes_are_registered(scenario: Scenario) -> None:
    """Every probe the scenario asks for is registered and takes the parameters it is given."""
    for name, params in scenario.probes().items():
        PROBES.get(name).from_params(params)


def check_tuning_scenario_is_disjoint(scenario: Scenario) -> None:
    """The scenario tuning uses (if any) is of the same kind and forgets other examples."""
    tuning = scenario.tuning(tiny_data().num_classes)
    if tuning is None:
        return
    if not isinstance(tuning, Scenario) or tuning.kind != scenario.kind:
        raise AssertionError(f"tuning() returned {tuning!r}, not a scenario of kind {scenario.kind!r}")
    if shared := set(_kit_split(scenario).forget.tolist()) & set(_kit_split(tuning).forget.tolist()):
        raise AssertionError(f"the tuning scenario {tuning} forgets {len(shared)} of the same examples")


# -- metric checks --------------------------------------------------------------------------------
KIT_CLASSES = 10  # enough for a top-5 metric


def kit_evaluation(*, forget: bool = True) -> TrialEvaluation:
    """The trial evaluation the metric checks compute on: seeded random logits of 10 classes
    with the true class ahead, as a trained model's are (least on the forget set), for 20
    forget, 60 retain and 30 test examples (the held-out set is the test set), the MIA's 30
    members and 1.5 s of unlearning; ``forget=False``: the same with an empty forget set."""
    g = torch.Generator().manual_seed(0)

    def part(size: int, lead: float) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, KIT_CLASSES, (size,), generator=g)
        logits = torch.randn(size, KIT_CLASSES, generator=g)
        logits[torch.arange(size), labels] += lead
        return logits, labels

    (forget_logits, forget_labels), retain, test = part(20, 1.0), part(60, 3.0), part(30, 2.0)
    members = torch.randperm(len(retain[1]), generator=g)[:len(test[1])]
    kept = slice(None) if forget else slice(0)
    return TrialEvaluation(forget_logits[kept], forget_labels[kept], *retain, *test, members, rte=1.5,
                           heldout_logits=test[0].clone(), heldout_labels=test[1].clone())


def _value(metric: TrialMetric, evaluation: TrialEvaluation) -> float | None:
    value = metric.compute(evaluation)
    if getattr(value, "ndim", None) == 0:  # a numpy or torch scalar, as the harness accepts
        value = value.item()
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise AssertionError(f"compute returned {value!r}; expected a number or None")
    return value


def check_declaration(metric: Metric) -> None:
    """The class attributes make a valid declaration (a label, known units and kinds)."""
    type(metric).declaration()


def check_value_is_a_number_or_none(metric: TrialMetric) -> None:
    """``compute`` returns a number (NaN is recorded as undefined) or None."""
    _value(metric, kit_evaluation())


def check_metric_deterministic(metric: TrialMetric) -> None:
    """The same evaluation gives the same value twice."""
    first, second = (_value(copy.deepcopy(metric), kit_evaluation()) for _ in range(2))
    if first != second and not (first is not None and second is not None
                                and math.isnan(first) and math.isnan(second)):
        raise AssertionError(f"two computations on the same evaluation give {first} and {second}")


def check_evaluation_untouched(metric: TrialMetric) -> None:
    """``compute`` leaves the evaluation's tensors as they were (every metric reads the same)."""
    evaluation, reference = kit_evaluation(), kit_evaluation()
    _value(metric, evaluation)
    changed = [f.name for f in dataclasses.fields(evaluation)
               if isinstance(getattr(reference, f.name), torch.Tensor)
               and not torch.equal(getattr(evaluation, f.name), getattr(reference, f.name))]
    if changed:
        raise AssertionError(f"compute modified the evaluation's {', '.join(changed)}")


def check_empty_forget_set(metric: TrialMetric) -> None:
    """An empty forget set gives a number or None (undefined), not an exception."""
    _value(metric, kit_evaluation(forget=False))


def kit_audit_context() -> AuditContext:
    """An audit of the kit's data that a population metric designs its population in: 3 models,
    5% forgotten, one oracle and one method (names that are labels only), dense."""
    data = tiny_data()
    spec = AuditSpec(name="kit", description="the conformance kit's audit",
                     base={"dataset": "synthetic", "val_fraction": 0.1},
                     methods=({"method": "kit-method"},), prunings=({},), metrics={"kit": {}}, models=3,
                     forget=0.05, seed=0, oracle={"method": "kit-oracle"})
    return AuditContext(spec, base_config(spec), data.train.labels.clone(), data.test.labels.clone())


def _design(metric: PopulationMetric) -> Design:
    design = metric.design(kit_audit_context())
    if not isinstance(design, Design) or not design.members:
        raise AssertionError(f"design returned {design!r}; expected a Design with members")
    return design


def kit_population(design: Design, seed: int = 0) -> Population:
    """``design``'s members run: random margins on each member's scored examples and records
    whose trial metrics are fixed numbers."""
    rng = np.random.default_rng(seed)
    margins = [rng.normal(size=len(m.config.population.get("score", []))) for m in design.members]
    records = [SimpleNamespace(metrics={"UA": 1.0, "MIA": 2.0, "RA": 3.0, "TA": 4.0}, diverged=False)
               for _ in design.members]
    return Population(design, margins, records)


def check_design_members(metric: PopulationMetric) -> None:
    """``design`` returns members, each a trial of one seed of the audit's base configuration
    with its place in the population (its examples scored, its forget set) and a known role."""
    for member in _design(metric).members:
        if not isinstance(member, Member) or member.role not in ("oracle", "method"):
            raise AssertionError(f"{member!r} is not a Member with role 'oracle' or 'method'")
        config = member.config
        if not isinstance(config, RunConfig) or config.seeds != (member.seed,) or not config.population:
            raise AssertionError(f"member {member.method} seed {member.seed}: its configuration is no "
                                 f"population trial of exactly its seed (use context.member)")


def check_design_deterministic(metric: PopulationMetric) -> None:
    """The same audit gives the same design twice (the audit's choices are seeded)."""
    first, second = (_design(copy.deepcopy(metric)) for _ in range(2))
    if first.members != second.members:
        raise AssertionError("two designs of the same audit differ (draw from context.rng)")


def check_score_rows(metric: PopulationMetric) -> None:
    """``score`` returns a row per pruning and audited method, each naming its metric, pruning
    and method, with JSON values, and per-example arrays."""
    design = _design(metric)
    scored = metric.score(kit_population(design))
    if not isinstance(scored, Scored):
        raise AssertionError(f"score returned {type(scored).__name__}, not Scored")
    keys = {(m.pruning, m.method) for m in design.members if m.role == "method"}
    rows = {(r.get("pruning"), r.get("method")) for r in scored.rows if isinstance(r, dict)}
    if missing := sorted(keys - rows):
        raise AssertionError(f"no row for (pruning, method) {missing[0]}")
    if bad := [r for r in scored.rows if not isinstance(r, dict) or not r.get("metric")]:
        raise AssertionError(f"a row without its metric's name: {bad[0]!r}")
    canonical(jsonable(scored.rows))  # raises on a value with no JSON form
    if bad := [k for k, v in scored.arrays.items() if not isinstance(v, np.ndarray)]:
        raise AssertionError(f"arrays[{bad[0]!r}] is not a numpy array")


# -- probe checks ---------------------------------------------------------------------------------
@contextlib.contextmanager
def kit_probe_setting() -> Iterator[tuple[LoadedDataset, DataAccess, ProbeContext]]:
    """The kit's data, a data access with a throwaway cache (no data folder, no download) and
    the probe context of its test set on the CPU."""
    data = tiny_data()
    with tempfile.TemporaryDirectory(prefix="unlearnbench-kit-") as folder:
        access = DataAccess(None, False, CheckpointCache(Path(folder)))
        yield data, access, ProbeContext(data.test, data.normalize, Runtime.resolve("cpu", "fp32"))


def _measure(probe: Probe, model: nn.Module, context: ProbeContext) -> dict[str, float]:
    values = probe.measure(model, context)
    if not isinstance(values, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for k, v in values.items()):
        raise AssertionError(f"measure returned {values!r}; expected names mapped to finite numbers")
    return values


def check_resolved_is_json(probe: Probe) -> None:
    """``resolved`` (what the probe adds to a trial's identity) has a canonical JSON form."""
    with kit_probe_setting() as (_, access, _):
        canonical(probe.resolved(access))


def check_measures_named_numbers(probe: Probe) -> None:
    """After ``setup``, ``measure`` returns names mapped to finite numbers."""
    with kit_probe_setting() as (data, access, context):
        probe.setup(data, access)
        _measure(probe, kit_task()[0], context)


def check_model_untouched(probe: Probe) -> None:
    """``measure`` leaves the model's weights and its train/eval mode as they were."""
    with kit_probe_setting() as (data, access, context):
        probe.setup(data, access)
        model = kit_task()[0].train()
        before = _state(model)
        _measure(probe, model, context)
        if differ := _differing(before, _state(model)):
            raise AssertionError(f"measure changed the model's {differ[:3]}")
        if not model.training:
            raise AssertionError("measure left the model in eval mode; it was in train mode")


def check_probe_deterministic(probe: Probe) -> None:
    """The same model gives the same values twice, and ``identity`` (the key of the cached
    measurement before unlearning) is the same JSON both times."""
    with kit_probe_setting() as (data, access, context):
        probe.setup(data, access)
        model = kit_task()[0]
        first, key = _measure(probe, model, context), canonical(probe.identity())
        if (second := _measure(probe, model, context)) != first or canonical(probe.identity()) != key:
            raise AssertionError(f"two measurements of the same model differ: {first} and {second}")


# -- executor checks ------------------------------------------------------------------------------
KIT_METHOD = "none"  # unlearnbench's identity baseline: the kit's trials cost one tiny training each


def kit_trials(folder: Path, *, failing: bool = False) -> list[Trial]:
    """Two tiny trials (seeds 0 and 1 of the identity baseline on 4-class synthetic data) whose
    records go to ``folder / "records"``; ``failing``: the first forgets class 9 of 4, which
    fails inside the trial (after the configuration is accepted)."""
    config = RunConfig(method=KIT_METHOD, dataset="synthetic",
                       dataset_params={"train_per_class": 16, "test_per_class": 8},
                       train_params={"epochs": 1}, forget="class:1", seeds=(0, 1), device="cpu",
                       cache_dir=folder / "cache", output_dir=folder / "records")
    trials = [Trial(config, 0), Trial(config, 1)]
    if failing:
        trials[0] = Trial(dataclasses.replace(config, forget="class:9"), 0)
    return trials


def _run(executor: Executor, trials: list[Trial]) -> tuple[dict[int, list[Any]], BaseException | None]:
    """Each trial's reports (records, or ``("failed", error)``) and what the run raised."""
    reports: dict[int, list[Any]] = {i: [] for i in range(len(trials))}
    try:
        executor.run(trials, on_done=lambda i, record: reports[i].append(record),
                     on_failed=lambda i, error: reports[i].append(("failed", error)),
                     log=lambda message: None)
    except Exception as exc:  # noqa: BLE001 - the contract allows raising; the checks decide
        return reports, exc
    return reports, None


def _records_by_seed(executor: Executor, folder: Path) -> dict[int, RunRecord]:
    trials = kit_trials(folder)
    reports, raised = _run(executor, trials)
    if raised is not None:
        raise AssertionError(f"running the kit's trials raised {type(raised).__name__}: {raised}")
    for index, got in reports.items():
        if len(got) != 1 or not isinstance(got[0], RunRecord):
            raise AssertionError(f"trial {index} was reported {len(got)} times "
                                 f"({[type(r).__name__ for r in got]}); expected one record")
    return {trials[i].seed: got[0] for i, got in reports.items()}


def check_reports_every_trial_once(executor: Executor) -> None:
    """Every trial is reported exactly once, with its record (``on_done``), and the executor
    writes no record itself (the driver does)."""
    with tempfile.TemporaryDirectory(prefix="unlearnbench-kit-") as folder:
        _records_by_seed(executor, Path(folder))
        if written := sorted((Path(folder) / "records").glob("*.json")):
            raise AssertionError(f"the executor wrote {written[0].name}; records are written by the "
                                 f"driver (run_grid), not by the executor")


def check_records_match_local(executor: Executor) -> None:
    """A trial's record does not depend on the executor: the same identity and metrics as in
    this process (timings aside)."""
    with tempfile.TemporaryDirectory(prefix="unlearnbench-kit-") as folder:
        theirs = _records_by_seed(executor, Path(folder))
        ours = _records_by_seed(LocalExecutor(), Path(folder) / "local")
        for seed, record in theirs.items():
            if (record.identity, _untimed(record)) != (ours[seed].identity, _untimed(ours[seed])):
                raise AssertionError(f"seed {seed}: identity or metrics differ from the local "
                                     f"executor's ({_untimed(record)} vs {_untimed(ours[seed])})")


def _untimed(record: RunRecord) -> dict[str, float | None]:
    """The record's metrics but the timed ones (in seconds: they vary from run to run)."""
    return {name: value for name, value in record.metrics.items()
            if record.metric_declarations[name].unit != "s"}


def check_failure_reported(executor: Executor) -> None:
    """A failing trial is reported with ``on_failed`` (or the run raises), never as done; no
    trial is reported twice."""
    with tempfile.TemporaryDirectory(prefix="unlearnbench-kit-") as folder:
        reports, raised = _run(executor, kit_trials(Path(folder), failing=True))
    if any(isinstance(r, RunRecord) for r in reports[0]):
        raise AssertionError("the failing trial was reported as done")
    if raised is None and [r[0] for r in reports[0] if isinstance(r, tuple)] != ["failed"]:
        raise AssertionError("the failing trial was neither reported with on_failed nor raised")
    if twice := [i for i, got in reports.items() if len(got) > 1]:
        raise AssertionError(f"trial {twice[0]} was reported {len(reports[twice[0]])} times")


# -- collections of checks ------------------------------------------------------------------------
_SHARED = (check_params_round_trip, check_unknown_param_rejected, check_pickles)
_SCENARIO = (check_pickles, check_text_round_trips, check_bad_argument_rejected,
             check_split_partitions_the_training_split, check_forget_set_seeded,
             check_poison_leaves_the_data, check_probes_are_registered, check_tuning_scenario_is_disjoint)
_METRIC = (check_declaration,)
_TRIAL_METRIC = (check_value_is_a_number_or_none, check_metric_deterministic, check_evaluation_untouched,
                 check_empty_forget_set)
_POPULATION_METRIC = (check_design_members, check_design_deterministic, check_score_rows)
_PROBE = (check_resolved_is_json, check_measures_named_numbers, check_model_untouched,
          check_probe_deterministic)
_EXECUTOR = (check_reports_every_trial_once, check_records_match_local, check_failure_reported)
_UNLEARNER = (check_same_architecture, check_finite_weights, check_deterministic_for_a_seed,
              check_data_untouched, check_model_changes, check_keeps_the_retain_set,
              check_pruned_weights_stay_zero, check_one_example_forget_set, check_no_validation_set,
              check_params_not_overwritten, check_no_state_across_calls)
_PRUNER = (check_returns_model_and_mask, check_target_sparsity, check_pruned_weights_are_zero,
           check_task_untouched, check_pruner_deterministic_for_a_seed,
           check_pruner_params_not_overwritten, check_pruner_no_state_across_calls)


@dataclasses.dataclass(frozen=True)
class Check:
    """One named check; calling it on a component raises ``AssertionError`` naming the check
    and the component when it fails (an exception inside the component counts as a failure).
    Each call works on a copy of the component, so no check sees state another one left."""

    name: str
    function: Callable[[Any], None]

    def __call__(self, component: Any) -> None:
        try:
            self.function(copy.deepcopy(component))
        except Exception as exc:  # noqa: BLE001 - a crash is a failure of this check
            detail = str(exc) if isinstance(exc, AssertionError) else f"raised {type(exc).__name__}: {exc}"
            raise AssertionError(f"{_name(component)} fails {self.name}: {detail}") from exc

    def __repr__(self) -> str:
        return self.name


def _instance(component: Any, base: type, params: Mapping[str, Any] | None) -> Any:
    if isinstance(component, type):
        if not issubclass(component, base):
            raise AssertionError(f"{component!r} is not a subclass of unlearnbench.{base.__name__}")
        return component.from_params(params or {})
    if not isinstance(component, base):
        raise AssertionError(f"{component!r} is not a unlearnbench.{base.__name__} (class or instance)")
    if params:
        raise ValueError(f"params={dict(params)!r} given with an instance; pass the class, or set them "
                         f"on the instance")
    return component


def unlearner_checks(unlearner: Unlearner | type[Unlearner]) -> Iterator[tuple[str, Check]]:
    """``(name, check)`` for every check that applies to ``unlearner`` (per its tags)."""
    skipped = () if unlearner.tags.changes_model else (check_model_changes,)
    return _named(f for f in _SHARED + _UNLEARNER if f not in skipped)


def pruner_checks(pruner: Pruner | type[Pruner]) -> Iterator[tuple[str, Check]]:
    """``(name, check)`` for every pruner check."""
    return _named(_SHARED + _PRUNER)


def scenario_checks(scenario: Scenario) -> Iterator[tuple[str, Check]]:
    """``(name, check)`` for every scenario check."""
    return _named(_SCENARIO)


def metric_checks(metric: Metric | type[Metric]) -> Iterator[tuple[str, Check]]:
    """``(name, check)`` for every check of a trial metric, or of a population metric."""
    cls = metric if isinstance(metric, type) else type(metric)
    kind = _POPULATION_METRIC if issubclass(cls, PopulationMetric) else _TRIAL_METRIC
    return _named(_SHARED + _METRIC + kind)


def probe_checks(probe: Probe | type[Probe]) -> Iterator[tuple[str, Check]]:
    """``(name, check)`` for every probe check."""
    return _named(_SHARED + _PROBE)


def executor_checks(executor: Executor | type[Executor]) -> Iterator[tuple[str, Check]]:
    """``(name, check)`` for every executor check."""
    return _named(_SHARED + _EXECUTOR)


def _named(functions: Iterable[Callable[[Any], None]]) -> Iterator[tuple[str, Check]]:
    for function in functions:
        yield function.__name__, Check(function.__name__, function)


# each kind of component: its base class and its checks, in the order _checks_of tries them
_KINDS: tuple[tuple[type, Callable[[Any], Iterator[tuple[str, Check]]]], ...] = (
    (Unlearner, unlearner_checks), (Pruner, pruner_checks), (Scenario, scenario_checks),
    (Metric, metric_checks), (Probe, probe_checks), (Executor, executor_checks))


def _checks_of(component: Any) -> Iterator[tuple[str, Check]]:
    cls = component if isinstance(component, type) else type(component)
    for base, checks in _KINDS:
        if issubclass(cls, base):
            return checks(component)
    raise TypeError(f"{component!r} is neither an unlearnbench.Unlearner nor an unlearnbench.Pruner, "
                    f"Scenario, Metric, Probe or Executor")


def _validated_expectations(component: Any, names: Iterable[str],
                            expected: Mapping[str, str] | None) -> dict[str, str]:
    expected = dict(expected or {})
    names = list(names)
    if unknown := sorted(set(expected) - set(names)):
        raise ValueError(f"expected failure {unknown[0]!r} for {_name(component)} is not one of its "
                         f"checks: {', '.join(names)}")
    if blank := [n for n, reason in expected.items() if not (isinstance(reason, str) and reason.strip())]:
        raise ValueError(f"expected failure {blank[0]!r} for {_name(component)} needs a reason "
                         f"(a non-empty string)")
    return expected


class ConformanceError(AssertionError):
    """Raised by :func:`check_unlearner`, :func:`check_pruner` and the other ``check_*`` runners;
    ``failures`` maps each failed check's name to its message (and ``unexpected_passes`` lists
    declared failures that passed)."""

    def __init__(self, component: str, failures: Mapping[str, str], unexpected_passes: list[str]):
        self.failures, self.unexpected_passes = dict(failures), list(unexpected_passes)
        lines = [f"{component} fails {len(self.failures)} conformance check(s)"
                 + (f" and passes {len(self.unexpected_passes)} declared as expected failures"
                    if self.unexpected_passes else "") + ":"]
        lines += [f"  {message}" for message in self.failures.values()]
        lines += [f"  {name} passes but is declared as an expected failure; remove the declaration"
                  for name in self.unexpected_passes]
        super().__init__("\n".join(lines))


def _run_all(component: Any, checks: Iterable[tuple[str, Check]],
             expected_failures: Mapping[str, str] | None) -> None:
    checks = list(checks)
    expected = _validated_expectations(component, (n for n, _ in checks), expected_failures)
    failures, unexpected_passes = {}, []
    for name, check in checks:
        try:
            check(component)
        except AssertionError as exc:
            if name not in expected:
                failures[name] = str(exc)
        else:
            if name in expected:
                unexpected_passes.append(name)
    if failures or unexpected_passes:
        raise ConformanceError(_name(component), failures, unexpected_passes)


def check_unlearner(cls: type[Unlearner] | Unlearner, params: Mapping[str, Any] | None = None, *,
                    expected_failures: Mapping[str, str] | None = None) -> None:
    """Run every unlearner check on ``cls`` (built with ``params``) or on an instance.

    Raises :class:`ConformanceError` (an ``AssertionError``) naming every failed check.
    ``expected_failures`` maps check names to the reason they are known to fail; such a check
    must fail (a declared check that passes is reported too).
    """
    unlearner = _instance(cls, Unlearner, params)
    _run_all(unlearner, unlearner_checks(unlearner), expected_failures)


def check_pruner(cls: type[Pruner] | Pruner, params: Mapping[str, Any] | None = None, *,
                 expected_failures: Mapping[str, str] | None = None) -> None:
    """Run every pruner check on ``cls`` (built with ``params``) or on an instance; as
    :func:`check_unlearner`."""
    pruner = _instance(cls, Pruner, params)
    _run_all(pruner, pruner_checks(pruner), expected_failures)


def check_scenario(scenario: Scenario | type[Scenario], spec: str | None = None, *,
                   expected_failures: Mapping[str, str] | None = None) -> None:
    """Run every scenario check on a scenario: an instance, or a class with the text it parses,
    ``check_scenario(FirstN, "first:10")``; as :func:`check_unlearner`. The checks run on the
    kit's data (4 classes of 24 training and 8 test examples), so the forget set must fit it."""
    if isinstance(scenario, type):
        if not issubclass(scenario, Scenario):
            raise AssertionError(f"{scenario!r} is not a subclass of unlearnbench.Scenario")
        if spec is None:
            raise ValueError("a scenario class needs the text it parses, e.g. check_scenario(FirstN, "
                             "'first:10')")
        kind, _, argument = spec.partition(":")
        scenario = scenario.parse(kind, argument)
    elif not isinstance(scenario, Scenario):
        raise AssertionError(f"{scenario!r} is not a unlearnbench.Scenario (class or instance)")
    elif spec is not None:
        raise ValueError(f"spec={spec!r} given with an instance; pass the class, or the instance alone")
    _run_all(scenario, scenario_checks(scenario), expected_failures)


def check_metric(cls: type[Metric] | Metric, params: Mapping[str, Any] | None = None, *,
                 expected_failures: Mapping[str, str] | None = None) -> None:
    """Run every metric check (a trial metric's, or a population metric's) on ``cls`` (built
    with ``params``) or on an instance; as :func:`check_unlearner`."""
    metric = _instance(cls, Metric, params)
    _run_all(metric, metric_checks(metric), expected_failures)


def check_probe(cls: type[Probe] | Probe, params: Mapping[str, Any] | None = None, *,
                expected_failures: Mapping[str, str] | None = None) -> None:
    """Run every probe check on ``cls`` (built with ``params``) or on an instance, with the kit's
    data and model; as :func:`check_unlearner`."""
    probe = _instance(cls, Probe, params)
    _run_all(probe, probe_checks(probe), expected_failures)


def check_executor(cls: type[Executor] | Executor, params: Mapping[str, Any] | None = None, *,
                   expected_failures: Mapping[str, str] | None = None) -> None:
    """Run every executor check on ``cls`` (built with ``params``) or on an instance: it runs
    the kit's tiny trials (:func:`kit_trials`) and compares their records with this process's;
    as :func:`check_unlearner`."""
    executor = _instance(cls, Executor, params)
    _run_all(executor, executor_checks(executor), expected_failures)


def parametrize_with_checks(components: Iterable[Any], *,
                            expected_failed_checks: Callable[[Any], Mapping[str, str] | None] | None = None):
    """A ``pytest.mark.parametrize("component, check", ...)`` over every check of every
    component (instances, or classes built with their defaults), with ids
    ``ClassName-check_name``. ``expected_failed_checks(component)`` returns ``{name: reason}``;
    those items are marked ``xfail(strict=True, reason=...)``::

        @parametrize_with_checks([MyUnlearner(epochs=2), MyPruner()])
        def test_conformance(component, check):
            check(component)
    """
    import pytest  # not a dependency of unlearnbench: only a test suite that parametrizes needs it

    params = []
    for component in components:
        checks = list(_checks_of(component))
        if isinstance(component, type):
            component = component()
        expected = _validated_expectations(
            component, (n for n, _ in checks),
            expected_failed_checks(component) if expected_failed_checks else None)
        for name, check in checks:
            marks = [pytest.mark.xfail(strict=True, raises=AssertionError, reason=expected[name])] \
                if name in expected else []
            params.append(pytest.param(component, check, id=f"{_name(component)}-{name}", marks=marks))
    return pytest.mark.parametrize("component, check", params)
