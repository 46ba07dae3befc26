"""The conformance kit itself (``unlearnbench.testing``): each check fails on a component built to
break it, with a message naming the check, for every kind of component (unlearners, pruners,
scenarios, metrics, probes, executors); tags, expected failures and the pytest parametrization
work as documented."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch import nn

from unlearnbench import (Mask, Probe, Pruner, PruningTask, Scenario, TrialMetric, Unlearner, UnlearnerTags,
                          UnlearningTask, param)
from unlearnbench.evaluate.klom import KLoM
from unlearnbench.metric import Scored
from unlearnbench.run.config import prepare
from unlearnbench.run.executors import Executor, LocalExecutor
from unlearnbench.run.trial import load_data, run_trial
from unlearnbench.scenario import spec_error
from unlearnbench.testing import (ConformanceError, check_executor, check_metric, check_probe, check_pruner,
                                  check_scenario, check_unlearner, kit_task, metric_checks,
                                  parametrize_with_checks, pruner_checks, scenario_checks, unlearner_checks)
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



# -- scenarios, metrics, probes and executors: each kit passes a correct component and fails a
# -- component built to break one check, naming that check -------------------------------------
@dataclass(frozen=True)
class FirstN(Scenario):
    """A correct scenario: forget the first N examples of the training split."""

    n: int
    usage: ClassVar[str] = "first:N (a count)"

    @classmethod
    def parse(cls, kind, argument):
        if not argument.isdigit():
            raise spec_error(kind, argument, f"expected {cls.usage}")
        return cls(kind, int(argument))

    def argument(self):
        return str(self.n)

    def choose(self, labels, generator):
        return torch.arange(len(labels)) < self.n


@dataclass(frozen=True)
class KeepsItsSpelling(Scenario):
    """Two spellings of one forget set, two scenarios: "first:010" prints "first:10"."""

    written: str

    @classmethod
    def parse(cls, kind, argument):
        if not argument.isdigit():
            raise spec_error(kind, argument, "expected a count")
        return cls(kind, argument)

    def argument(self):
        return str(int(self.written))

    def choose(self, labels, generator):
        return torch.arange(len(labels)) < int(self.written)


@dataclass(frozen=True)
class AcceptsAnything(FirstN):
    @classmethod
    def parse(cls, kind, argument):
        return cls(kind, int(argument) if argument.isdigit() else 10)


@dataclass(frozen=True)
class RandomFirst(FirstN):
    def choose(self, labels, generator):
        return torch.randperm(len(labels)) < self.n  # the global random state, not ``generator``


@dataclass(frozen=True)
class PoisonsInPlace(FirstN):
    def poison(self, train, forget):
        train.labels[forget] = 0
        return train


def _failed_kit(run, *args, **kwargs) -> dict[str, str]:
    with pytest.raises(ConformanceError) as info:
        run(*args, **kwargs)
    return info.value.failures


def test_a_correct_scenario_passes_and_each_scenario_check_catches_its_wrong_scenario() -> None:
    check_scenario(FirstN, "first:10")
    check_scenario(FirstN("first", 10))
    assert list(_failed_kit(check_scenario, AcceptsAnything, "first:10")) == ["check_bad_argument_rejected"]
    assert list(_failed_kit(check_scenario, RandomFirst, "first:10")) == ["check_forget_set_seeded"]
    failures = _failed_kit(check_scenario, PoisonsInPlace, "first:10")
    assert list(failures) == ["check_poison_leaves_the_data"]
    assert failures["check_poison_leaves_the_data"].startswith(
        "PoisonsInPlace fails check_poison_leaves_the_data: poison modified the training data")
    with pytest.raises(ValueError, match="needs the text it parses"):
        check_scenario(FirstN)


def test_a_scenario_whose_text_is_not_canonical_fails_check_text_round_trips() -> None:
    failures = _failed_kit(check_scenario, KeepsItsSpelling, "first:010")
    assert list(failures) == ["check_text_round_trips"]
    assert "parsing 'first:10' gives" in failures["check_text_round_trips"]
    check = dict(scenario_checks(KeepsItsSpelling("first", "10")))["check_text_round_trips"]
    check(KeepsItsSpelling("first", "10"))  # the canonical spelling round-trips


class ForgetTop1(TrialMetric):
    """A correct metric: top-1 accuracy on the forget set."""

    label = "forget top-1"

    def compute(self, evaluation):
        if not len(evaluation.forget_labels):
            return None
        return 100.0 * (evaluation.forget_logits.argmax(1) == evaluation.forget_labels).double().mean().item()


class ScalesTheLogits(ForgetTop1):
    def compute(self, evaluation):
        evaluation.retain_logits.mul_(2)  # in place: the next metric would read other logits
        return super().compute(evaluation)


class FailsOnAnEmptySet(ForgetTop1):
    def compute(self, evaluation):
        return 100.0 * (evaluation.forget_logits.argmax(1) == evaluation.forget_labels).double().mean().item() \
            if len(evaluation.forget_labels) else 1 / 0


class SaysHigh(ForgetTop1):
    def compute(self, evaluation):
        return "high"


def test_a_correct_metric_passes_and_each_metric_check_catches_its_wrong_metric() -> None:
    check_metric(ForgetTop1)
    assert list(_failed_kit(check_metric, ScalesTheLogits)) == ["check_evaluation_untouched"]
    failures = _failed_kit(check_metric, FailsOnAnEmptySet)
    assert list(failures) == ["check_empty_forget_set"] and "raised ZeroDivisionError" in \
        failures["check_empty_forget_set"]
    assert sorted(_failed_kit(check_metric, SaysHigh)) == sorted(
        ["check_value_is_a_number_or_none", "check_metric_deterministic", "check_evaluation_untouched",
         "check_empty_forget_set"])


class ScoresNoRow(KLoM):
    def score(self, population):
        return Scored([], {})


def test_population_metrics_have_checks_of_their_own() -> None:
    names = [name for name, _ in metric_checks(KLoM)]
    assert "check_score_rows" in names and "check_value_is_a_number_or_none" not in names
    assert list(_failed_kit(check_metric, ScoresNoRow)) == ["check_score_rows"]


class WeightNorm(Probe):
    """A correct probe: the L2 norm of the weights."""

    def measure(self, model, context):
        return {"weight_norm": sum(float(p.detach().double().pow(2).sum()) for p in model.parameters()) ** 0.5}


class ZeroesTheFirstWeight(WeightNorm):
    def measure(self, model, context):
        with torch.no_grad():
            next(model.parameters()).zero_()
        return super().measure(model, context)


class NoisyNorm(WeightNorm):
    def measure(self, model, context):
        return {"weight_norm": super().measure(model, context)["weight_norm"] + torch.rand(1).item()}


def test_a_correct_probe_passes_and_each_probe_check_catches_its_wrong_probe() -> None:
    check_probe(WeightNorm)
    assert list(_failed_kit(check_probe, ZeroesTheFirstWeight)) == ["check_model_untouched"]
    assert list(_failed_kit(check_probe, NoisyNorm)) == ["check_probe_deterministic"]


class WritesItsRecords(LocalExecutor):
    def run(self, trials, *, on_done, on_failed, log):
        def done(index, record):
            record.save(Path(trials[index].config.output_dir) / f"{record.run_id}.json")
            on_done(index, record)
        super().run(trials, on_done=done, on_failed=on_failed, log=log)


class SwallowsFailures(Executor):
    """Runs each trial in this process; a failing one is reported nowhere."""

    def run(self, trials, *, on_done, on_failed, log):
        for index, trial in enumerate(trials):
            try:
                plan = prepare(trial.config)
                on_done(index, run_trial(plan, load_data(plan), trial.seed).record)
            except Exception:  # noqa: BLE001 - the mistake under test
                pass


def test_a_correct_executor_passes_and_each_executor_check_catches_its_wrong_executor() -> None:
    check_executor(LocalExecutor(cpus_per_trial=1))
    assert list(_failed_kit(check_executor, WritesItsRecords)) == ["check_reports_every_trial_once"]
    failures = _failed_kit(check_executor, SwallowsFailures)
    assert list(failures) == ["check_failure_reported"]
    assert "neither reported with on_failed nor raised" in failures["check_failure_reported"]


def test_parametrize_with_checks_takes_every_kind_of_component() -> None:
    mark = parametrize_with_checks([FirstN("first", 10), ForgetTop1(), WeightNorm(), LocalExecutor()])
    ids = {p.id for p in mark.args[1]}
    assert {"FirstN-check_text_round_trips", "ForgetTop1-check_empty_forget_set",
            "WeightNorm-check_model_untouched", "LocalExecutor-check_failure_reported"} <= ids
