"""The conformance kit itself (``unlearnbench.testing``): each check fails on a component built to
break it, with a message naming the check; tags, expected failures and the pytest
parametrization work as documented."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from unlearnbench import Mask, Pruner, PruningTask, Unlearner, UnlearnerTags, UnlearningTask, param
from unlearnbench.testing import (ConformanceError, check_pruner, check_unlearner, kit_task,
                                  parametrize_with_checks, pruner_checks, unlearner_checks)
from unlearnbench_baselines.pruners.random import RandomPruner


# -- unlearners, each wrong in one way (module level, so that the good ones pickle) -------------
class OneStep(Unlearner):
    """A correct minimal method: one epoch of fine-tuning on the retain set."""

    lr: float = param(0.01, gt=0)

    def unlearn(self, model: nn.Module, task: UnlearningTask) -> nn.Module:
        return task.fit(model, task.loader(task.retain), task.recipe.replace(epochs=1, lr=self.lr,
                                                                          schedule="constant"))


class DoesNothing(Unlearner):
    def unlearn(self, model: nn.Module, task: UnlearningTask) -> nn.Module:
        return model


class Identity(DoesNothing):
    """The same, declared as an identity baseline."""

    tags = UnlearnerTags(changes_model=False)


class ZeroesTheRetainData(OneStep):
    def unlearn(self, model: nn.Module, task: UnlearningTask) -> nn.Module:
        out = super().unlearn(model, task)
        task.retain.images.zero_()
        return out


class ZeroesEveryWeight(Unlearner):
    def unlearn(self, model: nn.Module, task: UnlearningTask) -> nn.Module:
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
        return model


class UsesTheGlobalRandomState(OneStep):
    def unlearn(self, model: nn.Module, task: UnlearningTask) -> nn.Module:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1e-3 * torch.randn(p.shape))  # not task.generator
        return super().unlearn(model, task)


class CountsItsCalls(OneStep):
    """Stores state on the instance, and its result depends on it."""

    def unlearn(self, model: nn.Module, task: UnlearningTask) -> nn.Module:
        self.calls = getattr(self, "calls", 0) + 1
        return task.fit(model, task.loader(task.retain),
                        task.recipe.replace(epochs=self.calls, lr=self.lr, schedule="constant"))


class HalvesItsLr(OneStep):
    def unlearn(self, model: nn.Module, task: UnlearningTask) -> nn.Module:
        self.lr = self.lr / 2
        return super().unlearn(model, task)


class BreaksTheMask(OneStep):
    def unlearn(self, model: nn.Module, task: UnlearningTask) -> nn.Module:
        out = super().unlearn(model, task)
        with torch.no_grad():
            for p in out.parameters():
                p.add_(1e-3)
        return out


class NeedsValidation(OneStep):
    def unlearn(self, model: nn.Module, task: UnlearningTask) -> nn.Module:
        len(task.validation)  # TypeError when there is none
        return super().unlearn(model, task)


class NeedsTwoForgetExamples(OneStep):
    def unlearn(self, model: nn.Module, task: UnlearningTask) -> nn.Module:
        if len(task.forget) < 2:
            raise ValueError("the forget set needs two examples")
        return super().unlearn(model, task)


def _failed(component: type, **kwargs) -> dict[str, str]:
    with pytest.raises(ConformanceError) as info:
        (check_pruner if issubclass(component, Pruner) else check_unlearner)(component, **kwargs)
    return info.value.failures


def test_a_correct_unlearner_passes_every_check() -> None:
    check_unlearner(OneStep)
    check_unlearner(OneStep, {"lr": 0.02})
    check_unlearner(OneStep(lr=0.02))


# The three wrong unlearners of the issue: each fails exactly the check that catches it, and
# the message names the check and the class.
@pytest.mark.parametrize(("cls", "check", "says"), [
    (DoesNothing, "check_model_changes", "equals the original"),
    (ZeroesTheRetainData, "check_data_untouched", "retain.images"),
    (ZeroesEveryWeight, "check_keeps_the_retain_set", "retain accuracy fell from 100.0%"),
])
def test_the_kit_fails_a_wrong_unlearner_naming_the_check(cls: type, check: str, says: str) -> None:
    with pytest.raises(ConformanceError, match=check) as info:
        check_unlearner(cls)
    assert list(info.value.failures) == [check]
    message = info.value.failures[check]
    assert message.startswith(f"{cls.__name__} fails {check}: ") and says in message
    assert f"{cls.__name__} fails 1 conformance check(s)" in str(info.value)


@pytest.mark.parametrize(("cls", "checks"), [
    (UsesTheGlobalRandomState, ["check_deterministic_for_a_seed"]),
    (CountsItsCalls, ["check_params_not_overwritten", "check_no_state_across_calls"]),
    (HalvesItsLr, ["check_params_not_overwritten", "check_no_state_across_calls"]),
    (BreaksTheMask, ["check_pruned_weights_stay_zero"]),
    (NeedsValidation, ["check_no_validation_set"]),
    (NeedsTwoForgetExamples, ["check_one_example_forget_set", "check_no_state_across_calls"]),
])
def test_each_check_catches_its_wrong_unlearner(cls: type, checks: list[str]) -> None:
    assert sorted(_failed(cls)) == sorted(checks)


def test_an_unpicklable_unlearner_fails_check_pickles() -> None:
    class Local(OneStep):  # a class defined in a function cannot be pickled by reference
        pass
    assert list(_failed(Local)) == ["check_pickles"]


def test_the_identity_tag_opts_out_of_check_model_changes() -> None:
    assert "check_model_changes" in dict(unlearner_checks(DoesNothing))
    assert "check_model_changes" not in dict(unlearner_checks(Identity))
    check_unlearner(Identity)


def test_a_declared_expected_failure_is_allowed_and_must_fail() -> None:
    check_unlearner(DoesNothing, expected_failures={"check_model_changes": "a no-op on purpose"})
    with pytest.raises(ConformanceError, match="check_data_untouched passes but is declared") as info:
        check_unlearner(OneStep, expected_failures={"check_data_untouched": "stale"})
    assert info.value.failures == {} and info.value.unexpected_passes == ["check_data_untouched"]


def test_expected_failures_must_name_a_check_and_give_a_reason() -> None:
    with pytest.raises(ValueError,
                       match="'check_model_change' .* is not one of its checks: .*check_model_changes"):
        check_unlearner(DoesNothing, expected_failures={"check_model_change": "typo"})
    with pytest.raises(ValueError, match="'check_model_changes' for DoesNothing needs a reason"):
        check_unlearner(DoesNothing, expected_failures={"check_model_changes": ""})


def test_not_a_component_is_named() -> None:
    with pytest.raises(AssertionError, match="is not a subclass of unlearnbench.Unlearner"):
        check_unlearner(nn.Linear)
    with pytest.raises(AssertionError, match="is not a subclass of unlearnbench.Pruner"):
        check_pruner(OneStep)
    with pytest.raises(TypeError, match="neither an unlearnbench.Unlearner nor an unlearnbench.Pruner"):
        parametrize_with_checks([nn.Linear(2, 2)])


def test_the_global_random_state_is_restored_after_the_checks() -> None:
    torch.manual_seed(123)
    random.seed(123)
    expected = torch.rand(1), random.random()
    torch.manual_seed(123)
    random.seed(123)
    check_unlearner(OneStep)
    assert (torch.rand(1), random.random()) == expected


def test_the_kit_task_is_fitted_and_handed_out_as_fresh_copies() -> None:
    model, task = kit_task()
    model.eval()
    with torch.no_grad():
        assert (model(task.normalize(task.retain.images)).argmax(1) == task.retain.labels).all()
    task.retain.images.zero_()
    next(model.parameters()).data.zero_()
    again, task2 = kit_task()
    assert task2.retain.images.any() and next(again.parameters()).any()


# -- pruners --------------------------------------------------------------------------------------
class KeepsEverything(Pruner):
    def prune(self, task: PruningTask) -> tuple[nn.Module, Mask]:
        model = task.new_model()
        model.load_state_dict(task.dense_state)
        return model, Mask.dense(model)


class ForgetsToZero(RandomPruner):
    def prune(self, task: PruningTask) -> tuple[nn.Module, Mask]:
        model, mask = super().prune(task)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        return model, mask


class GlobalRandomMask(Pruner):
    def prune(self, task: PruningTask) -> tuple[nn.Module, Mask]:
        model = task.new_model()
        from unlearnbench import prunable_weights
        scores = {n: torch.rand(w.shape) for n, w in prunable_weights(model).items()}
        mask = Mask.from_scores(scores, task.sparsity)
        mask.apply(model)
        return model, mask


class ScalesTheDenseState(RandomPruner):
    def prune(self, task: PruningTask) -> tuple[nn.Module, Mask]:
        for v in task.dense_state.values():
            if v.is_floating_point():
                v.mul_(2)
        return super().prune(task)


def test_a_correct_pruner_passes_every_check() -> None:
    check_pruner(RandomPruner)


@pytest.mark.parametrize(("cls", "checks"), [
    (KeepsEverything, ["check_target_sparsity"]),
    (ForgetsToZero, ["check_pruned_weights_are_zero"]),
    (GlobalRandomMask, ["check_pruner_deterministic_for_a_seed"]),
    (ScalesTheDenseState, ["check_task_untouched"]),
])
def test_each_pruner_check_catches_its_wrong_pruner(cls: type, checks: list[str]) -> None:
    failures = _failed(cls)
    assert sorted(failures) == sorted(checks)
    assert all(message.startswith(f"{cls.__name__} fails {name}: ") for name, message in failures.items())


def test_pruner_checks_are_named() -> None:
    names = [name for name, _ in pruner_checks(RandomPruner)]
    assert names[:3] == ["check_params_round_trip", "check_unknown_param_rejected", "check_pickles"]
    assert "check_target_sparsity" in names and len(set(names)) == len(names)


# -- the pytest parametrization -------------------------------------------------------------------
def test_parametrize_with_checks_makes_one_named_item_per_check_with_strict_xfails() -> None:
    mark = parametrize_with_checks(
        [OneStep(lr=0.02), DoesNothing, RandomPruner()],
        expected_failed_checks=lambda c: ({"check_model_changes": "a no-op"}
                                          if isinstance(c, DoesNothing) else {}))
    assert mark.args[0] == "component, check"
    params = {p.id: p for p in mark.args[1]}
    assert len(params) == len(mark.args[1])
    assert "OneStep-check_data_untouched" in params and "RandomPruner-check_target_sparsity" in params
    assert params["OneStep-check_data_untouched"].values[0] == OneStep(lr=0.02)
    xfailed = {i: p.marks[0] for i, p in params.items() if p.marks}
    assert list(xfailed) == ["DoesNothing-check_model_changes"]
    mark_ = xfailed["DoesNothing-check_model_changes"]
    assert mark_.name == "xfail" and mark_.kwargs["strict"] and mark_.kwargs["reason"] == "a no-op"
    with pytest.raises(ValueError, match="'check_nope' for OneStep is not one of its checks"):
        parametrize_with_checks([OneStep], expected_failed_checks=lambda c: {"check_nope": "x"})


@parametrize_with_checks([DoesNothing()],
                         expected_failed_checks=lambda c: {"check_model_changes": "a no-op on purpose"})
def test_parametrize_with_checks_in_a_plugin_test(component, check) -> None:
    check(component)


def test_a_failing_check_names_itself_and_the_component() -> None:
    check = dict(unlearner_checks(DoesNothing))["check_model_changes"]
    with pytest.raises(AssertionError, match="^DoesNothing fails check_model_changes: the returned model"):
        check(DoesNothing())
    check = dict(unlearner_checks(NeedsValidation))["check_no_validation_set"]
    with pytest.raises(AssertionError,
                       match="^NeedsValidation fails check_no_validation_set: raised TypeError"):
        check(NeedsValidation())

