"""Every registered component passes the public conformance checks, and every unlearner keeps a
pruned model's mask through the real harness. Parametrized over the registries, so a new
component (built-in or plugin) is tested without touching this file."""

from __future__ import annotations

from pathlib import Path

import pytest

from unlearnbench import PRUNERS, UNLEARNERS
from unlearnbench.run.config import RunConfig
from unlearnbench.run.trial import run
from unlearnbench.testing import check_pruner, check_unlearner

# Parameters that keep a method short on the tiny tasks; methods without an entry run as declared.
QUICK_UNLEARNERS = {"retrain": {"epochs": 1}, "ft": {"epochs": 2}}
QUICK_PRUNERS = {"imp": {"retrain_epochs": 1}, "omp": {"retrain_epochs": 1},
                 "synflow": {"iterations": 20}}


@pytest.mark.parametrize("name", UNLEARNERS.names())
def test_unlearner_conforms(name: str) -> None:
    check_unlearner(UNLEARNERS.get(name), QUICK_UNLEARNERS.get(name))


@pytest.mark.parametrize("name", PRUNERS.names())
def test_pruner_conforms(name: str) -> None:
    check_pruner(PRUNERS.get(name), QUICK_PRUNERS.get(name))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by every method below: the original and the pruned model are built once."""
    return tmp_path_factory.mktemp("cache")


@pytest.mark.parametrize("name", UNLEARNERS.names())
def test_unlearner_keeps_the_mask_of_a_pruned_model(name: str, cache_dir: Path, tmp_path: Path) -> None:
    config = RunConfig(method=name, method_params=QUICK_UNLEARNERS.get(name, {}),
                       dataset="synthetic", pruner="random", sparsity=0.5,
                       train_params={"epochs": 2}, cache_dir=cache_dir, output_dir=tmp_path)
    record, = run(config)  # raises if a pruned weight became non-zero
    assert record.pruner == "random" and record.target_sparsity == 0.5
    assert record.sparsity >= 0.5
    assert all(0 <= getattr(record.metrics, m) <= 100 for m in ("UA", "MIA", "RA", "TA"))
