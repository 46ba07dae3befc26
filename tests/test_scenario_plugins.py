"""Scenarios, probes and pruner snapshots as plugins: a third-party scenario and probe run end to
end, the command line asks for probes by name, and a pruner gets exactly the snapshots of the
original's training it declares (trained once, or added to a cached original)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

from unlearnbench import (PROBES, PRUNERS, SCENARIOS, ConfigError, Mask, Probe, Pruner, PruningTask,
                          Scenario, TrainRecipe, UnknownNameError, param, prunable_weights)
from unlearnbench.cli import build_parser, _probes
from unlearnbench.data.splits import ForgetSpec, make_split
from unlearnbench.errors import PluginError
from unlearnbench.run import artifacts
from unlearnbench.run.config import RunConfig, prepare
from unlearnbench.run.executors import LocalExecutor, Trial, run_grid
from unlearnbench.run.identity import planned_identity, resolved_config
from unlearnbench.run.api import run_trials
from unlearnbench.run.trial import load_data, run_trial, trial_models
from unlearnbench.scenario import spec_error


# -- a third-party scenario: forget the first N examples of the training split --------------------
@dataclass(frozen=True)
class FirstN(Scenario):
    n: int

    usage: ClassVar[str] = "first:N (a count)"

    @classmethod
    def parse(cls, kind: str, argument: str) -> FirstN:
        if not argument.isdigit():
            raise spec_error(kind, argument, f"expected {cls.usage}")
        return cls(kind, int(argument))

    def argument(self) -> str:
        return str(self.n)

    def choose(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.arange(len(labels)) < self.n


class WeightNorm(Probe):
    """The L2 norm of every parameter together, times ``scale``."""

    scale: float = param(1.0, gt=0)

    def measure(self, model: nn.Module, context) -> dict[str, float]:
        return {"weight_norm": self.scale * norm(model)}


def norm(model: nn.Module) -> float:
    return sum(float(p.detach().double().pow(2).sum()) for p in model.parameters()) ** 0.5


@pytest.fixture
def plugins() -> Iterator[None]:
    SCENARIOS.register("first", FirstN)
    PROBES.register("weight_norm", WeightNorm)
    yield
    SCENARIOS.unregister("first")
    PROBES.unregister("weight_norm")


def _digits(tmp_path: Path, cache: Path, **changes: Any) -> RunConfig:
    fields = dict(method="ft", method_params={"epochs": 1}, dataset="digits", train_params={"epochs": 2},
                  train_size=300, test_size=100, cache_dir=cache, output_dir=tmp_path / "o", device="cpu")
    return RunConfig(**{**fields, **changes})


def test_a_registered_scenario_runs_end_to_end_on_digits(plugins, tmp_path: Path, shared_cache: Path) -> None:
    config = _digits(tmp_path, shared_cache, forget="first:30")
    plan = prepare(config)
    data = load_data(plan)
    outcome = run_trial(plan, data, 0)
    record = outcome.record
    split = make_split(data.train.labels, data.test.labels, plan.forget, num_classes=10,
                       val_fraction=0.1, seed=0)
    # the forget set is the first 30 examples of the training split, the test set is whole
    assert torch.equal(outcome.forget.images.cpu(), data.train.subset(split.train[:30]).images)
    assert (record.split.forget, record.split.test) == (30, 100)
    assert (record.forget, record.scenario, record.probes) == ("first:30", "first", {})
    assert record.metrics["UA"] is not None
    assert planned_identity(plan, 0) != planned_identity(prepare(_digits(tmp_path, shared_cache,
                                                                         forget="first:31")), 0)


def test_a_registered_scenarios_bad_argument_and_bad_mask_are_named(plugins) -> None:
    with pytest.raises(ConfigError, match=r"forget spec 'first:x' is invalid: expected first:N \(a count\)"):
        ForgetSpec.parse("first:x")

    class Broken(FirstN):
        def choose(self, labels, generator):
            return torch.ones(3)

    SCENARIOS.register("broken_first", Broken)
    try:
        with pytest.raises(PluginError, match=r"scenario 'broken_first': choose\(\) returned a "
                                              r"torch.float32 tensor of shape \(3,\); expected a boolean"):
            make_split(torch.arange(10) % 2, torch.arange(4) % 2, ForgetSpec.parse("broken_first:2"),
                       num_classes=2, val_fraction=0.0, seed=0)
    finally:
        SCENARIOS.unregister("broken_first")


def test_a_registered_probe_is_measured_before_and_after(plugins, tmp_path: Path,
                                                        shared_cache: Path) -> None:
    config = _digits(tmp_path, shared_cache, forget="class:3", probes={"weight_norm": {"scale": "2"}})
    plan = prepare(config)
    data = load_data(plan)
    outcome = run_trial(plan, data, 0)
    given = trial_models(plan, data, 0).model  # the model handed to the unlearner (cached)
    values = outcome.record.probes["weight_norm"]
    assert values["before"] == pytest.approx(2 * norm(given), rel=1e-12)
    assert values["after"] == pytest.approx(2 * norm(outcome.model), rel=1e-12)
    assert values["before"] != values["after"]
    assert outcome.record.resolved["weight_norm"] == {"params": {"scale": 2.0}}
    other = prepare(dataclasses.replace(config, probes={"weight_norm": {"scale": 3.0}}))
    assert planned_identity(other, 0) != planned_identity(plan, 0)


def test_probes_come_by_name_with_clear_errors(plugins) -> None:
    base = RunConfig(method="ft", dataset="synthetic", device="cpu")
    with pytest.raises(UnknownNameError, match="Unknown probe 'weight_nrom'. Did you mean 'weight_norm'"):
        prepare(dataclasses.replace(base, probes={"weight_nrom": {}}))
    with pytest.raises(ConfigError, match="parameter of WeightNorm 'scael'"):
        prepare(dataclasses.replace(base, probes={"weight_norm": {"scael": 1}}))
    with pytest.raises(ConfigError, match="probe 'backdoor' is measured by the scenario backdoor:0.1"):
        prepare(dataclasses.replace(base, forget="backdoor:0.1", probes={"backdoor": {}}))
    PROBES.register("method", WeightNorm)
    try:
        with pytest.raises(ConfigError, match="probe 'method' has the name of a field"):
            resolved_config(prepare(dataclasses.replace(base, probes={"method": {}})))
    finally:
        PROBES.unregister("method")


@pytest.mark.parametrize("argv, expected", [
    (["--probe", "transfer:dataset=svhn,noise=3"], {"transfer": {"dataset": "svhn", "noise": "3"}}),
    (["--probe", "weight_norm", "--probe-param", "scale=2", "--probe", "transfer",
      "--probe-param", "dataset=svhn"], {"weight_norm": {"scale": "2"}, "transfer": {"dataset": "svhn"}}),
    (["--transfer", "svhn", "--transfer-param", "noise=3", "--transfer-root", "/d"],
     {"transfer": {"dataset": "svhn", "noise": "3", "root": "/d"}}),
])
def test_the_command_line_asks_for_probes_by_name(argv: list[str], expected: dict) -> None:
    args = build_parser().parse_args(["run", "--method", "ft", *argv])
    assert _probes(args) == expected


@pytest.mark.parametrize("argv, message", [
    (["--probe-param", "a=1"], "comes before any --probe"),
    (["--probe", "t:a=1", "--probe-param", "a=2"], "'a' is given twice"),
    (["--probe", "t", "--probe", "t"], "each probe once"),
    (["--transfer", "svhn", "--probe", "transfer:dataset=x"], "--transfer and --probe transfer"),
    (["--transfer-root", "/d"], "need --transfer DATASET"),
])
def test_bad_probe_flags_are_refused(argv: list[str], message: str) -> None:
    args = build_parser().parse_args(["run", "--method", "ft", *argv])
    with pytest.raises(ConfigError, match=message):
        _probes(args)


# -- pruner snapshots -------------------------------------------------------------------------------
SEEN: dict[str, Any] = {}


class KeepsEpoch3(Pruner):
    """Keeps the largest weights of the epoch-3 snapshot (no retraining); records what it got."""

    def snapshot_epochs(self, recipe: TrainRecipe) -> set[int]:
        return {3}

    def prune(self, task: PruningTask) -> tuple[nn.Module, Mask]:
        SEEN["snapshots"] = {e: dict(s) for e, s in task.snapshots.items()}
        SEEN["dense"] = dict(task.dense_state)
        model = task.new_model()
        model.load_state_dict(task.snapshots[3], strict=True)
        mask = Mask.from_scores({n: w.detach().abs() for n, w in prunable_weights(model).items()},
                                task.sparsity)
        mask.apply(model)
        return model, mask


@pytest.fixture
def epoch3() -> Iterator[None]:
    PRUNERS.register("keeps_epoch3", KeepsEpoch3)
    SEEN.clear()
    yield
    PRUNERS.unregister("keeps_epoch3")


def _synthetic(tmp_path: Path, cache: Path, epochs: int, **changes: Any) -> RunConfig:
    # a constant learning rate: the first 3 of 5 epochs are exactly a 3-epoch training
    fields = dict(method="ft", method_params={"epochs": 1}, dataset="synthetic",
                  train_params={"epochs": epochs, "schedule": "constant"}, cache_dir=cache,
                  output_dir=tmp_path / "o", device="cpu")
    return RunConfig(**{**fields, **changes})


def _states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_pruner_gets_exactly_the_snapshot_it_declares(epoch3, tmp_path: Path) -> None:
    pruned = dict(pruner="keeps_epoch3", sparsity=0.5)
    run_trials(_synthetic(tmp_path, tmp_path / "c", 5, **pruned))
    snapshots = SEEN["snapshots"]
    assert sorted(snapshots) == [0, 3]
    run_trials(_synthetic(tmp_path, tmp_path / "c", 3, **pruned))  # the known answer: 3 epochs, no more
    assert _states_equal(snapshots[3], SEEN["dense"])
    assert _states_equal(snapshots[0], SEEN["snapshots"][0])  # one initialization


def _payload(entry: Path) -> dict[str, Any]:
    return torch.load(entry, weights_only=True)["payload"]


def test_a_cached_original_gets_a_missing_snapshot_added(epoch3, tmp_path: Path) -> None:
    dense = _synthetic(tmp_path, tmp_path / "c", 5)
    run_trials(dense)
    entry, = (tmp_path / "c" / "originals").glob("*.pt")
    stored = _payload(entry)
    assert sorted(stored["snapshots"]) == [0]  # a dense run keeps only the initialization
    record, = run_trials(dataclasses.replace(dense, pruner="keeps_epoch3", sparsity=0.5))
    assert record.timings.original_cached
    extended = _payload(entry)
    assert sorted(extended["snapshots"]) == [0, 3] and extended["seconds"] == stored["seconds"]
    assert _states_equal(extended["state"], stored["state"])  # the weights earlier trials used
    fresh = SEEN["snapshots"][3]
    SEEN.clear()
    run_trials(_synthetic(tmp_path, tmp_path / "fresh", 5, pruner="keeps_epoch3", sparsity=0.5))
    assert _states_equal(fresh, SEEN["snapshots"][3])  # the replay is the first training's


def test_a_grid_trains_a_shared_original_once_with_the_union(epoch3, tmp_path: Path, monkeypatch) -> None:
    calls = {"train": 0, "replay": 0}
    train, replay = artifacts._train_original, artifacts._replay_original

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(artifacts, "_train_original", counted("train", train))
    monkeypatch.setattr(artifacts, "_replay_original", counted("replay", replay))
    dense = _synthetic(tmp_path, tmp_path / "c", 5)
    grid = [dense, dataclasses.replace(dense, pruner="keeps_epoch3", sparsity=0.5),
            dataclasses.replace(dense, pruner="omp", sparsity=0.5, pruner_params={"retrain_epochs": 1})]
    run_grid([Trial(c, 0) for c in grid], LocalExecutor(), progress=False)
    assert calls == {"train": 1, "replay": 0}
    entry, = (tmp_path / "c" / "originals").glob("*.pt")
    assert sorted(_payload(entry)["snapshots"]) == [0, 1, 3]  # OMP: epoch 1 of 5


def test_a_snapshot_past_the_recipe_is_refused_before_training(epoch3, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"KeepsEpoch3.snapshot_epochs returned \[3\]; expected "
                                          r"epochs in 0..2"):
        prepare(_synthetic(tmp_path, tmp_path / "c", 2, pruner="keeps_epoch3", sparsity=0.5))


def test_ls_lists_scenarios_and_probes_with_their_origin(capsys) -> None:
    from unlearnbench.cli import main

    assert main(["ls", "scenarios"]) == 0 and main(["ls", "probes"]) == 0
    out = capsys.readouterr().out
    for name, target in (("backdoor", "unlearnbench.scenarios.backdoor:Backdoor"),
                         ("class", "unlearnbench.scenarios.classwise:ClassWise"),
                         ("random", "unlearnbench.scenarios.random:RandomForget"),
                         ("transfer", "unlearnbench.evaluate.probes.transfer:TransferProbe")):
        assert any(line.split()[:1] == [name] and target in line and "unlearnbench" in line
                   for line in out.splitlines())
