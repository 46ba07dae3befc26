"""Every registered component passes the public conformance checks (one pytest item per component
and check: ``-k "FineTune and check_data_untouched"`` selects one), and every unlearner keeps a
pruned model's mask through the real harness. Parametrized over the registries, so a new
component (built-in or plugin) is tested without touching this file; this is the only place the
built-ins run through the kit."""

from __future__ import annotations

from pathlib import Path

import pytest

from unlearnbench import PRUNERS, UNLEARNERS
from unlearnbench.run.config import RunConfig
from unlearnbench.run.api import run_trials
from unlearnbench.testing import parametrize_with_checks

# Parameters that keep a method short on the tiny tasks; methods without an entry run as declared.
# Retrain needs 5 epochs (batch 16) from scratch to fit the kit's retain set again.
QUICK_UNLEARNERS = {"retrain": {"epochs": 5}, "ft": {"epochs": 2}}
QUICK_PRUNERS = {"imp": {"retrain_epochs": 1}, "omp": {"retrain_epochs": 1},
                 "synflow": {"iterations": 20}}
# Checks a registered component is known to fail, with the reason: {name: {check: reason}}.
EXPECTED_FAILURES: dict[str, dict[str, str]] = {}

_NAMES = {cls: name for name, cls in ((n, UNLEARNERS.get(n)) for n in UNLEARNERS.names())}
_NAMES.update({PRUNERS.get(n): n for n in PRUNERS.names()})


def _expected(component: object) -> dict[str, str]:
    return EXPECTED_FAILURES.get(_NAMES[type(component)], {})


@parametrize_with_checks(
    [UNLEARNERS.get(n).from_params(QUICK_UNLEARNERS.get(n)) for n in UNLEARNERS.names()]
    + [PRUNERS.get(n).from_params(QUICK_PRUNERS.get(n)) for n in PRUNERS.names()],
    expected_failed_checks=_expected)
def test_conforms(component: object, check) -> None:
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
