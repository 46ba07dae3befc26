"""Public conformance checks for plugin authors, in the spirit of scikit-learn's
``check_estimator``. Everything runs on the CPU in seconds with a tiny model and synthetic data.

Each check is named (``check_data_untouched``, ``check_deterministic_for_a_seed``, ...) and
takes one component instance. Three ways to run them:

* ``check_unlearner(MyUnlearner)`` / ``check_pruner(MyPruner)`` run every check and raise one
  ``AssertionError`` naming each check that failed;
* ``unlearner_checks(component)`` / ``pruner_checks(component)`` yield ``(name, check)`` pairs;
* ``@parametrize_with_checks([MyUnlearner(epochs=2), MyPruner()])`` makes one pytest item per
  component and check, with ids like ``MyUnlearner-check_data_untouched`` (``-k`` selects one).

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
import pickle
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from .components import build_model
from .data.dataset import LoadedDataset
from .data.splits import ForgetSpec, make_split
from .data.tensors import ImageData
from .datasets.synthetic import Synthetic
from .errors import ConfigError
from .evaluate.metrics import accuracy, predict
from .pruner import Pruner, snapshots_needed
from .recipe import TrainRecipe
from .seeds import derive_seed
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


# -- collections of checks ------------------------------------------------------------------------
_SHARED = (check_params_round_trip, check_unknown_param_rejected, check_pickles)
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
    tags = unlearner.tags
    for function in _SHARED + _UNLEARNER:
        if function is check_model_changes and not tags.changes_model:
            continue
        yield function.__name__, Check(function.__name__, function)


def pruner_checks(pruner: Pruner | type[Pruner]) -> Iterator[tuple[str, Check]]:
    """``(name, check)`` for every pruner check."""
    for function in _SHARED + _PRUNER:
        yield function.__name__, Check(function.__name__, function)


def _checks_of(component: Any) -> Iterator[tuple[str, Check]]:
    is_class = isinstance(component, type)
    if (issubclass(component, Unlearner) if is_class else isinstance(component, Unlearner)):
        return unlearner_checks(component)
    if (issubclass(component, Pruner) if is_class else isinstance(component, Pruner)):
        return pruner_checks(component)
    raise TypeError(f"{component!r} is neither an unlearnbench.Unlearner nor an unlearnbench.Pruner")


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
    """Raised by :func:`check_unlearner` / :func:`check_pruner`; ``failures`` maps each failed
    check's name to its message (and ``unexpected_passes`` lists declared failures that passed)."""

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
