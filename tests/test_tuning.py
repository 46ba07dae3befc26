"""The tuning protocol: a planted method's known best value is found by both criteria, the
test set is provably never read while selecting, tuning splits are disjoint from the evaluated
forget set, a study resumes, and recipes read the chosen values."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from unlearnbench import UNLEARNERS, ImageData, Uniform, Unlearner, param
from unlearnbench.cli import main
from unlearnbench.data.splits import ForgetSpec, make_split
from unlearnbench.errors import ConfigError
from unlearnbench.evaluate.heldout import expected_forget_accuracy
from unlearnbench.run import trial as trial_module
from unlearnbench.run.executors import LocalExecutor
from unlearnbench.run.recipes import load_recipe, recipe_cells, source_cell, with_tuned_values
from unlearnbench.run.tuning import (Candidates, Protocol, load_values, oracle_free_score,
                                     select_cells, setting_cells, tune)

# the pruners recipe as its first small run had it: the main table's values, borrowed
BORROWING = Path(__file__).resolve().parents[1] / "leaderboard" / "pruners-small-borrowed" / "pruners-borrowed.toml"
FAST = {"epochs": 3}  # digits' original model: enough to fit, quick


class Planted(Unlearner):
    """Forgets the forget set's classes (their logit pushed down) only at ``strength == target``;
    any other strength returns the original. Both criteria must pick the target."""

    strength: float = param(0.0, ge=0, le=1)
    scale: float = param(1.0, gt=0)  # how far the logit is pushed (in units of 1e4): a fixed parameter
    search_space = {"strength": Uniform(0.0, 1.0)}
    target = -1.0  # set by the test to one of the values the sampler proposes

    def unlearn(self, model: nn.Module, task) -> nn.Module:
        if self.strength == type(self).target:
            head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
            gone = sorted(set(task.forget.labels.tolist()) - set(task.retain.labels.tolist()))
            with torch.no_grad():
                head.bias[gone] -= 1e4 * self.scale
        return model


@pytest.fixture
def planted():
    UNLEARNERS.register("planted", Planted)
    yield Planted
    UNLEARNERS.unregister("planted")


def _study(tmp_path, cache, name: str, protocol: Protocol, forget: str = "class:0"):
    cells = setting_cells(["planted"], dict(dataset="digits", train_params=FAST, cache_dir=cache,
                                           forget=forget))
    out = tmp_path / name
    return tune(cells, protocol, out, executor=LocalExecutor(), values=out / "values.json",
                log=lambda m: None), out


def test_a_planted_best_value_is_found_by_both_criteria(planted, tmp_path, shared_cache) -> None:
    protocol = Protocol(trials=5, sampler="qmc", seed=0)
    proposed = [p["strength"] for p in Candidates("planted", protocol, {}).ask(5)]
    assert len(set(proposed)) == 5 and all(0 <= v <= 1 for v in proposed)
    planted.target = proposed[3]
    result, out = _study(tmp_path, shared_cache, "study", protocol)
    entry = result["cells"]["dense|class:0"]["methods"]["planted"]
    assert [c["params"]["strength"] for c in entry["candidates"]] == proposed  # seeded, replayed
    assert entry["chosen"]["oracle"]["number"] == 3
    assert entry["chosen"]["oracle-free"]["number"] == 3
    others = [c for c in entry["candidates"] if c["number"] != 3]
    assert all(c["metrics"]["UA"] < 5 for c in others)  # the others did nothing
    assert entry["candidates"][3]["metrics"]["UA"] == 100.0
    assert entry["candidates"][3]["oracle-free"] == 0.0  # forget accuracy 0 = HA 0 (class gone)
    values = load_values(out / "values.json")
    assert values["values"]["dense|class:0"]["planted"] == {"oracle": {"strength": proposed[3]},
                                                            "oracle-free": {"strength": proposed[3]}}
    # the tuning trials forget class 1 on validation data; the evaluated class 0 is never scored
    records = [json.loads(p.read_text()) for p in (out / "records").glob("*.json")]
    assert {r["forget"] for r in records} == {"class:1"}
    assert {r["config"]["holdout"] for r in records} == {"validation"}
    assert len(records) == 5 + 2  # the candidates, Retrain and none
    # a second run resumes: everything is recorded, nothing runs again (the study's count of
    # trials run, summed over its runs, stays 7), the same choice
    again, _ = _study(tmp_path, shared_cache, "study", protocol)
    assert result["ran"] == again["ran"] == 7 and again["cells"] == result["cells"]
    assert again["wall_clock_s"] >= result["wall_clock_s"]


def test_selection_never_reads_the_test_set(planted, tmp_path, shared_cache, monkeypatch) -> None:
    protocol = Protocol(trials=3, sampler="qmc", seed=1)
    planted.target = [p["strength"] for p in Candidates("planted", protocol, {}).ask(3)][1]
    clean, _ = _study(tmp_path, shared_cache, "clean", protocol)

    load = trial_module.load_data

    def scrambled(plan):  # the test split replaced by noise with random labels
        data = load(plan)
        g = torch.Generator().manual_seed(7)
        noise = torch.randint(0, 256, data.test.images.shape, generator=g, dtype=torch.uint8)
        labels = torch.randint(0, data.num_classes, data.test.labels.shape, generator=g)
        return dataclasses.replace(data, test=ImageData(noise.to(data.test.images.device),
                                                        labels.to(data.test.labels.device)))

    monkeypatch.setattr(trial_module, "load_data", scrambled)
    dirty, _ = _study(tmp_path, shared_cache, "dirty", protocol)
    timeless = lambda metrics: {k: v for k, v in metrics.items() if k != "RTE"}  # a wall clock
    strip = lambda cells: {k: {m: [(c["params"], timeless(c["metrics"]), c["oracle"], c["oracle-free"])
                                   for c in e["candidates"]] for m, e in v["methods"].items()}
                           for k, v in cells.items()}
    assert strip(dirty["cells"]) == strip(clean["cells"])
    assert dirty["cells"]["dense|class:0"]["methods"]["planted"]["chosen"] == \
        clean["cells"]["dense|class:0"]["methods"]["planted"]["chosen"]


def test_tuning_splits_are_disjoint_from_the_evaluated_forget_set() -> None:
    labels = torch.arange(600) % 10
    for text in ("class:0", "class:9", "random:0.1", "random:37", "random:0.2,draw=1"):
        spec = ForgetSpec.parse(text)
        tuning = spec.tuning(10)
        assert ForgetSpec.parse(str(tuning)) == tuning  # canonical text round-trips
        for seed in (0, 3):
            evaluated = make_split(labels, labels, spec, num_classes=10, val_fraction=0.1, seed=seed)
            tuned = make_split(labels, labels, tuning, num_classes=10, val_fraction=0.1, seed=seed)
            assert torch.equal(evaluated.train, tuned.train)  # the same original model
            assert not set(evaluated.forget.tolist()) & set(tuned.forget.tolist())
            assert len(evaluated.forget) == len(tuned.forget)
    # draw 0 is exactly the plain scenario's choice
    plain, zero = ForgetSpec.parse("random:0.1"), ForgetSpec.parse("random:0.1")
    assert torch.equal(make_split(labels, labels, plain, num_classes=10, val_fraction=0.1, seed=2).forget,
                       make_split(labels, labels, zero, num_classes=10, val_fraction=0.1, seed=2).forget)
    assert ForgetSpec.parse("backdoor:0.1").tuning(10) is None


def test_held_out_accuracy_expected_of_a_model_that_never_saw_the_forget_set() -> None:
    # held-out: class 0 -> 2 of 4 right, class 1 -> 3 of 3 right, class 2 -> 0 of 1
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2])
    predicted = torch.tensor([0, 0, 1, 2, 1, 1, 1, 0])
    logits = nn.functional.one_hot(predicted, 3).float()
    retain = torch.tensor([0, 1, 2])
    # forget mix 3 x class 0, 1 x class 1: (3 * 50 + 1 * 100) / 4 = 62.5
    assert expected_forget_accuracy(torch.tensor([0, 0, 0, 1]), retain, logits, labels) == 62.5
    # class-wise: the retain set lacks class 0, so a model without it scores 0 on it
    assert expected_forget_accuracy(torch.tensor([0, 0]), torch.tensor([1, 2]), logits, labels) == 0.0
    # a class with no held-out example is left out, the others renormalized
    assert expected_forget_accuracy(torch.tensor([1, 3]), torch.tensor([1, 3]), logits, labels) == 100.0


def test_oracle_free_constraint_ranks_a_broken_model_after_every_kept_one(make_record, add_metric) -> None:
    def runs(UA, TA, HA):
        return [add_metric(make_record(UA=UA, TA=TA), "HA", HA, label="HA")]
    base = runs(0.0, 90.0, 0.0)
    assert oracle_free_score(runs(100.0, 88.0, 0.0), base, 5.0) == (0.0, True)
    kept = oracle_free_score(runs(50.0, 89.0, 0.0), base, 5.0)
    broken = oracle_free_score(runs(100.0, 80.0, 0.0), base, 5.0)  # TA 10 points down
    assert kept == (50.0, True) and broken == (105.0, False) and broken[0] > kept[0]


def test_protocol_and_command_line_errors_are_one_line(tmp_path, capsys) -> None:
    with pytest.raises(ConfigError, match="--trials 0"):
        Protocol(trials=0)
    with pytest.raises(ConfigError, match="--sampler 'grids'"):
        Protocol(sampler="grids")
    with pytest.raises(ConfigError, match=r"--trials 5 is invalid for a grid over lr, gamma: .* 1, 4, 9, 16"):
        Candidates("sparse_ft", Protocol(trials=5, sampler="grid"), {})
    assert main(["tune", "sparse_ft", "--sampler", "grid", "--trials", "3", "--dry-run",
                 "--output", str(tmp_path)]) == 2
    assert "unlearnbench: error: --trials 3 is invalid for a grid" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="declares no search space"):
        setting_cells(["retrain"], {})
    assert main(["tune", "scrub", "--dry-run", "--output", str(tmp_path)]) == 2
    assert "unlearnbench: error: method 'scrub' declares no search space" in capsys.readouterr().err
    assert main(["tune", "ft", "--forget", "backdoor:0.1", "--dry-run", "--output", str(tmp_path)]) == 2
    assert "declares no tuning split" in capsys.readouterr().err


def test_recipes_run_each_criterions_values_once() -> None:
    recipe = load_recipe("main-table")
    configs = recipe.configs(scale="small", tuned=False)
    ft = [c for c in configs if c.method == "ft"]
    classwise = [c for c in ft if c.forget == "class:0"]
    values = {"dense|class:0": {"ft": {"oracle": {"lr": 0.05}, "oracle-free": {"lr": 0.02}}},
              "omp:0.95|class:0": {"ft": {"oracle": {"lr": 0.03}, "oracle-free": {"lr": 0.03}}}}
    out = with_tuned_values(classwise, values, ["oracle", "oracle-free"])
    by = {(c.pruner, c.forget, c.label): c.method_params.get("lr") for c in out}
    assert by[(None, "class:0", None)] == 0.05 and by[(None, "class:0", "ft.oracle-free")] == 0.02
    assert by[("omp", "class:0", None)] == 0.03 and ("omp", "class:0", "ft.oracle-free") not in by
    with pytest.raises(ConfigError, match=r"hold none for ft at dense\|random:0.1"):  # a cell without values
        with_tuned_values([c for c in ft if c.forget == "random:0.1"], values, ["oracle"])
    retrain = [c for c in configs if c.method == "retrain"]
    assert with_tuned_values(retrain, values, ["oracle"]) == retrain  # no search space: as written


def test_a_recipe_borrows_the_tuned_cells_it_declares(tmp_path) -> None:
    """A cell the file holds runs with its own values; any other with the first matching
    pattern's cell; a borrowing recipe's study never writes the file it borrows."""
    recipe = load_recipe(str(BORROWING))
    ft = [c for c in recipe.configs(scale="small", tuned=False) if c.method == "ft"]
    values = {"dense|class:0": {"ft": {"oracle": {"lr": 0.05}}},
              "omp:0.95|class:0": {"ft": {"oracle": {"lr": 0.03}}},
              "imp:0.9|class:0": {"ft": {"oracle": {"lr": 0.07}}}}
    borrow = {"synflow:*|class:0": "dense|class:0", "*|class:0": "omp:0.95|class:0"}
    out = with_tuned_values(ft, values, ["oracle"], borrow=borrow)
    lr = {(c.pruner, c.sparsity): c.method_params["lr"] for c in out}
    assert lr[(None, None)] == 0.05 and lr[("imp", 0.9)] == 0.07  # held by the file itself
    assert lr[("synflow", 0.5)] == lr[("synflow", 0.9)] == 0.05  # the first pattern that matches
    assert lr[("omp", 0.5)] == lr[("random", 0.9)] == lr[("imp", 0.5)] == 0.03
    assert source_cell("omp:0.5|random:0.1", values, borrow) == "omp:0.5|random:0.1"  # no match: itself
    with pytest.raises(ConfigError, match="borrow"):
        load_recipe_text(tmp_path, "tuning = {values = 'x.json', borrow = {'*' = 'no-bar'}}")
    assert recipe.tuning["small"]["borrow"] and recipe_cells(str(BORROWING), "small", execution={})[1] is None
    tuned = recipe.configs(scale="small")  # the bundled values, borrowed by the same rule
    file = load_values(recipe.values_path("small"))["values"]
    assert all(c.method_params == file["omp:0.95|class:0"][c.method]["oracle"]
               for c in tuned if c.method in ("ft", "sparse_ft") and c.pruner)


def load_recipe_text(folder, tuning: str):
    """A one-cell digits recipe whose small scale declares ``tuning``."""
    (folder / "r.toml").write_text(f"""[run]\ndataset = "digits"\n[grid]\nmethod = ["ft"]\npruning = ["dense"]
forget = ["class:0"]\n[scales.small]\n{tuning}\n""")
    return load_recipe(str(folder / "r.toml"))


def test_a_study_can_be_limited_to_the_cells_it_names(tmp_path, capsys) -> None:
    """``--cell`` keeps the named cells of a recipe's study in the study's order; a key the study
    lacks, or ``--cell`` without a recipe or an audit, is one line listing what is expected."""
    (tmp_path / "r.toml").write_text('[run]\ndataset = "digits"\n[grid]\nmethod = ["ft", "ga"]\n'
                                     'pruning = ["dense", "omp:0.5", "omp:0.9"]\nforget = ["class:0"]\n')
    recipe = str(tmp_path / "r.toml")
    cells = recipe_cells(recipe, "full", execution={})[0]
    assert [c.key for c in cells] == ["dense|class:0", "omp:0.5|class:0", "omp:0.9|class:0"]
    chosen = select_cells(cells, ["omp:0.9|class:0", "dense|class:0"])
    assert [c.key for c in chosen] == ["dense|class:0", "omp:0.9|class:0"] and chosen[0] is cells[0]
    capsys.readouterr()
    assert main(["tune", "--recipe", recipe, "--trials", "2", "--dry-run", "--cell", "omp:0.5|class:0",
                 "--output", str(tmp_path / "study")]) == 0
    assert "tuning study: 1 cell(s), 2 method-cell pair(s) x 2 candidates" in capsys.readouterr().err  # the log goes to stderr
    assert main(["tune", "--recipe", recipe, "--dry-run", "--cell", "omp:0.95|class:0"]) == 2
    assert capsys.readouterr().err == ("unlearnbench: error: no cell 'omp:0.95|class:0' in this study; its "
                                       "cells: dense|class:0, omp:0.5|class:0, omp:0.9|class:0\n")
    assert main(["tune", "ft", "--dry-run", "--cell", "dense|class:0"]) == 2
    assert "--cell names cells of a recipe or an audit" in capsys.readouterr().err
    assert not (tmp_path / "study").exists()  # a dry run writes nothing


def test_labelled_variants_of_a_method_are_tuned_as_rows_of_their_own(planted, tmp_path, shared_cache) -> None:
    """Two variants of one method (a recipe's labelled entries) each get the full budget, every
    candidate holding its variant's fixed parameter, and their values are keyed by label."""
    cells, _, _ = recipe_cells("gamma-schedules", "small", execution={})
    rows = cells[0].methods
    assert rows == ("ft", "sparse_ft-constant", "sparse_ft-linear_increase", "sparse_ft-linear_decay")
    assert cells[0].variant("sparse_ft-constant") == ("sparse_ft", {"scheduler": "constant"})
    assert cells[0].variant("ft") == ("ft", {})
    base = setting_cells(["planted"], dict(dataset="digits", train_params=FAST, cache_dir=shared_cache,
                                           forget="class:0"))[0]
    cell = dataclasses.replace(base, methods=("planted-1", "planted-2"),
                               variants={"planted-1": ("planted", {"scale": 1.0}),
                                         "planted-2": ("planted", {"scale": 2.0})})
    out = tmp_path / "variants"
    result = tune([cell], Protocol(trials=2), out, executor=LocalExecutor(), values=out / "values.json",
                  log=lambda m: None)
    methods = result["cells"]["dense|class:0"]["methods"]
    assert set(methods) == {"planted-1", "planted-2"}
    for row, scale in (("planted-1", 1.0), ("planted-2", 2.0)):
        assert len(methods[row]["candidates"]) == 2
        assert all(c["params"]["scale"] == scale for c in methods[row]["candidates"])
    values = load_values(out / "values.json")["values"]["dense|class:0"]
    assert values["planted-2"]["oracle"]["scale"] == 2.0


def test_the_grid_sampler_proposes_every_point_of_the_axes_once() -> None:
    """Log ranges are spaced by equal factors, both ends included; two ranges make a square."""
    lrs = sorted(p["lr"] for p in Candidates("ft", Protocol(trials=3, sampler="grid"), {}).ask(3))
    assert lrs == pytest.approx([0.01, 0.1 ** 1.5, 0.1])
    pairs = Candidates("sparse_ft", Protocol(trials=9, sampler="grid", seed=3), {}).ask(9)
    assert {(round(p["lr"], 6), round(p["gamma"], 8)) for p in pairs} == {
        (round(lr, 6), round(g, 8)) for lr in (0.01, 0.1 ** 1.5, 0.1) for g in (1e-5, 10 ** -3.5, 1e-2)}
    assert all(0.01 <= p["lr"] <= 0.1 and 1e-5 <= p["gamma"] <= 1e-2 for p in pairs)
