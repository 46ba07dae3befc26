"""Every registered component passes the public conformance checks (one pytest item per component
and check: ``-k "FineTune and check_data_untouched"`` selects one): unlearners, pruners, scenarios,
metrics, probes and executors; and every unlearner keeps a pruned model's mask through the real
harness. Parametrized over the registries, so a new component (built-in or plugin) is tested
without touching this file (a scenario needs an example spec below); this is the only place the
built-ins run through the kit."""

from __future__ import annotations

from pathlib import Path

import pytest

from unlearnbench import METRICS, PROBES, PRUNERS, SCENARIOS, UNLEARNERS
from unlearnbench.components import EXECUTORS
from unlearnbench.data.splits import ForgetSpec
from unlearnbench.run.api import run_trials
from unlearnbench.run.config import RunConfig
from unlearnbench.testing import parametrize_with_checks

# Parameters that keep a method short on the tiny tasks; methods without an entry run as declared.
# Retrain needs 5 epochs (batch 16) from scratch to fit the kit's retain set again.
QUICK_UNLEARNERS = {"retrain": {"epochs": 5}, "ft": {"epochs": 2}}
QUICK_PRUNERS = {"imp": {"retrain_epochs": 1}, "omp": {"retrain_epochs": 1},
                 "synflow": {"iterations": 20}}
# A spec of each registered scenario that fits the kit's data (4 classes, 86 training examples).
EXAMPLE_SPECS = {"class": "class:1", "random": "random:0.1", "backdoor": "backdoor:0.1,target=2"}
QUICK_METRICS = {"ulira": {"null_simulations": 20}}
# A probe that needs parameters gets them here (the transfer probe: a downstream dataset of the
# kit's image shape).
PROBE_PARAMS = {"transfer": {"dataset": "synthetic", "num_classes": 3, "train_per_class": 16,
                             "test_per_class": 8}}
# Executors the kit does not run in this process, with the reason.
NOT_RUN_HERE = {"ray": "starts Ray; tests/test_executors.py runs it on a loopback-only network "
                       "and compares its records with the local executor's"}
# Checks a registered component is known to fail, with the reason: {name: {check: reason}}.
EXPECTED_FAILURES: dict[str, dict[str, str]] = {}

_NAMES = {cls: name for registry in (UNLEARNERS, PRUNERS, METRICS, PROBES, EXECUTORS)
          for name, cls in ((n, registry.get(n)) for n in registry.names() if n not in NOT_RUN_HERE)}
_NAMES.update({SCENARIOS.get(n): n for n in SCENARIOS.names()})


def _expected(component: object) -> dict[str, str]:
    return EXPECTED_FAILURES.get(_NAMES[type(component)], {})


@parametrize_with_checks(
    [UNLEARNERS.get(n).from_params(QUICK_UNLEARNERS.get(n)) for n in UNLEARNERS.names()]
    + [PRUNERS.get(n).from_params(QUICK_PRUNERS.get(n)) for n in PRUNERS.names()],
    expected_failed_checks=_expected)
def test_conforms(component: object, check) -> None:
    check(component)


def test_every_registered_scenario_has_an_example_spec() -> None:
    assert set(SCENARIOS.names()) <= set(EXAMPLE_SPECS), (
        f"add an example spec of {sorted(set(SCENARIOS.names()) - set(EXAMPLE_SPECS))} to EXAMPLE_SPECS")
    assert set(NOT_RUN_HERE) <= set(EXECUTORS.names())


@parametrize_with_checks(
    [ForgetSpec.parse(EXAMPLE_SPECS[n]) for n in SCENARIOS.names() if n in EXAMPLE_SPECS]
    + [METRICS.get(n).from_params(QUICK_METRICS.get(n)) for n in METRICS.names()]
    + [PROBES.get(n).from_params(PROBE_PARAMS.get(n)) for n in PROBES.names()]
    + [EXECUTORS.get(n)() for n in EXECUTORS.names() if n not in NOT_RUN_HERE],
    expected_failed_checks=_expected)
def test_scenarios_metrics_probes_and_executors_conform(component: object, check) -> None:
    check(component)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by every method below: the original and the pruned model are built once."""
    return tmp_path_factory.mktemp("cache")


@pytest.mark.parametrize("name", UNLEARNERS.names())
def test_unlearner_keeps_the_mask_of_a_pruned_model(name: str, cache_dir: Path, tmp_path: Path) -> None:
    config = RunConfig(method=name, method_params=QUICK_UNLEARNERS.get(name, {}),
                       dataset="synthetic", pruner="random", sparsity=0.5,
                       train_params={"epochs": 2}, cache_dir=cache_dir, output_dir=tmp_path)
    record, = run_trials(config)  # raises if a pruned weight became non-zero
    assert record.pruner == "random" and record.target_sparsity == 0.5
    assert record.sparsity >= 0.5
    assert all(0 <= record.metrics[m] <= 100 for m in ("UA", "MIA", "RA", "TA"))
