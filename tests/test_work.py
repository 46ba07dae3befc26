"""The work a record says the unlearner did, against the count the recipe implies, and the
budget rule: an FT-family method takes the original's recipe's batch size unless it sets one."""

from __future__ import annotations

import math

import pytest

from unlearnbench.run.config import RunConfig
from unlearnbench.run.api import run_trials

FAST = {"epochs": 3}


def _one(tmp_path, cache, method, **params):
    config = RunConfig(method=method, method_params=params, train_params=FAST, cache_dir=cache,
                       output_dir=tmp_path / method)
    return run_trials(config)[0]


@pytest.mark.parametrize("method, params, part, epochs", [
    ("ft", {"epochs": 2, "batch_size": 50}, "retain", 2),
    ("ga", {"epochs": 3, "batch_size": 16}, "forget", 3),
    ("sparse_ft", {"epochs": 1}, "retain", 1),  # batch: the recipe's
])
def test_steps_and_examples_match_the_recipe(tmp_path, shared_cache, method, params, part, epochs) -> None:
    record = _one(tmp_path, shared_cache, method, **params)
    size = getattr(record.split, part)
    batch = params.get("batch_size", record.config["recipe"]["batch_size"])
    assert record.config["method_params"]["batch_size"] == params.get("batch_size")
    assert record.work.optimizer_steps == epochs * math.ceil(size / batch)
    assert record.work.examples == {part: epochs * size}
    assert record.work.passes(part, size) == epochs


def test_retrain_and_none(tmp_path, shared_cache) -> None:
    retrain = _one(tmp_path, shared_cache, "retrain")
    batch = retrain.config["recipe"]["batch_size"]
    assert retrain.work.optimizer_steps == FAST["epochs"] * math.ceil(retrain.split.retain / batch)
    nothing = _one(tmp_path, shared_cache, "none")
    assert nothing.work.optimizer_steps == 0 and nothing.work.examples == {}


def test_iu_and_ff_take_no_optimizer_step_but_read_their_data(tmp_path, shared_cache) -> None:
    iu = _one(tmp_path, shared_cache, "iu", fisher_samples=64)
    assert iu.work.optimizer_steps == 0
    assert iu.work.examples["forget"] == iu.split.forget  # the mean forget gradient: one pass
    assert iu.work.examples["retain"] >= iu.split.retain
