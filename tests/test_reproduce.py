"""Recipes: the bundled ones are valid at every scale; a recipe runs, renders and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unlearnbench import ConfigError, UnlearnbenchError
from unlearnbench.cli import main
from unlearnbench.report.records import load_records
from unlearnbench.run.recipes import bundled_recipes, load_recipe, reproduce

TINY = """
description = "a tiny grid on synthetic data"
paper = "none"

[run]
dataset = "synthetic"
arch = "tiny_cnn"
train = { epochs = 3 }

[grid]
method = ["retrain", { method = "ft", label = "ft-1epoch", params = { epochs = 1 } }]
pruning = ["dense", "omp:0.5"]
forget = ["class:1"]

[scales.small]
train_size = 128
test_size = 64
grid = { pruning = ["dense"] }
"""


@pytest.mark.parametrize("recipe", bundled_recipes(), ids=lambda r: r.name)
def test_bundled_recipes_are_valid_at_every_scale(recipe) -> None:
    assert recipe.description and recipe.paper
    assert "small" in recipe.scale_names  # every experiment has a CPU-sized version
    for scale in recipe.scale_names:
        configs = recipe.configs(scale=scale, seeds=(0, 1))  # validates every component
        assert configs and all(c.seeds == (0, 1) for c in configs)
        if scale == "small":
            assert all(c.train_size and c.arch.startswith("mini_vgg") for c in configs)  # CPU-sized


def test_main_table_recipe_is_the_papers_grid() -> None:
    configs = load_recipe("main-table").configs()
    cells = {(c.method, c.pruner, c.sparsity, c.forget) for c in configs}
    assert len(cells) == len(configs) == 28
    assert {c[0] for c in cells} == {"retrain", "none", "ft", "ga", "ff", "iu", "sparse_ft"}
    assert {(c[1], c[2]) for c in cells} == {(None, None), ("omp", 0.95)}
    assert {c[3] for c in cells} == {"class:0", "random:0.1"}
    assert {(c.dataset, c.arch) for c in configs} == {("cifar10", "resnet18")}


def test_unknown_recipe_gets_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'main-table'"):
        load_recipe("main-tabel")


@pytest.mark.parametrize("change, message", [
    (("[run]\n", "[run]\nepochs = 3\n"), "unknown key 'epochs'"),
    (('pruning = ["dense", "omp:0.5"]', 'pruning = ["dense", "omp"]'), "pruning entry 'omp' is invalid"),
    (('forget = ["class:1"]', 'forget = []'), "needs non-empty lists"),
    (('forget = ["class:1"]', 'forget = ["class:one"]'), "forget spec 'class:one' is invalid"),
    (('"retrain"', '"retrian"'), "Did you mean 'retrain'"),
    (("[grid]", "[grid"), "not valid TOML"),
])
def test_bad_recipes_are_refused_before_running(tmp_path: Path, change, message) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(TINY.replace(*change))
    with pytest.raises(UnlearnbenchError, match=message):
        load_recipe(path).configs()


def test_scale_must_exist(tmp_path: Path) -> None:
    (tmp_path / "tiny.toml").write_text(TINY)
    with pytest.raises(ConfigError, match="--scale 'big' is invalid .* expected one of full, small"):
        load_recipe(tmp_path / "tiny.toml").configs(scale="big")


def test_recipe_runs_renders_and_resumes(tmp_path: Path, shared_cache: Path) -> None:
    (tmp_path / "tiny.toml").write_text(TINY)
    recipe, out = load_recipe(tmp_path / "tiny.toml"), tmp_path / "out"
    summary = reproduce(recipe, output=out, seeds=(0, 1), cache_dir=shared_cache, device="cpu",
                        log=lambda m: None, plots=True)
    records = load_records(out / "records")
    assert summary["runs"] == summary["ran"] == len(records) == 8  # 2 methods x 2 prunings x 2 seeds
    assert {r.label or r.method for r in records} == {"retrain", "ft-1epoch"}
    assert "ft-1epoch" in (out / "table.md").read_text()
    assert json.loads((out / "recipe.json").read_text())["runs"] == 8
    assert any(p.suffix == ".png" for p in (out / "plots").iterdir())

    stamps = {p: p.stat().st_mtime_ns for p in (out / "records").iterdir()}
    lost = sorted(stamps)[0]
    lost.unlink()  # as if interrupted before that run
    again = reproduce(recipe, output=out, seeds=(0, 1), cache_dir=shared_cache, device="cpu",
                      log=lambda m: None, plots=False)
    assert again["ran"] == 1 and lost.is_file()
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p != lost)


def test_small_scale_applies_subset_and_grid(tmp_path: Path, shared_cache: Path) -> None:
    (tmp_path / "tiny.toml").write_text(TINY)
    out = tmp_path / "small"
    reproduce(load_recipe(tmp_path / "tiny.toml"), output=out, scale="small", cache_dir=shared_cache,
              device="cpu", log=lambda m: None, plots=False)
    records = load_records(out / "records")
    assert len(records) == 2 and all(r.pruner is None for r in records)
    assert all(r.config["train_size"] == 128 and "n128t64" in r.run_id for r in records)


def test_cli_lists_and_dry_runs(tmp_path: Path, capsys) -> None:
    assert main(["reproduce", "--list"]) == 0
    assert "main-table" in capsys.readouterr().out
    assert main(["reproduce", "main-table", "--scale", "small", "--num-seeds", "3", "--dry-run",
                 "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    settings = len(load_recipe("main-table").configs(scale="small"))  # with its tuned variants
    assert f"{settings} settings x 3 seeds" in out and out.count("seeds to run: 0,1,2") == settings
    assert not any(tmp_path.iterdir())
