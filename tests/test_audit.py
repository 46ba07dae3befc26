"""Population audits (KLoM, U-LiRA) end to end on tiny models, against known answers.

The data are pure noise with random labels (the synthetic dataset at a huge pixel noise), so a
model can fit its training set only by memorizing it: a model that still holds the forget set
(``none``, no unlearning) is far from models that never saw it, while Retrain is one of them.
So KLoM on forget examples must be large for ``none`` and near the null for Retrain, and the
U-LiRA attack must beat 50% clearly on ``none`` and not on Retrain (evaluation.md, checks 3, 4).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from unlearnbench import ConfigError, UnknownNameError
from unlearnbench.cli import main
from unlearnbench.data.population import Membership, population_split
from unlearnbench.report.audit import PICTURE_CAPTIONS, recorded_total
from unlearnbench.report.records import load_records
from unlearnbench.report.site import benchmark_folders
from unlearnbench.run import audit as audit_module
from unlearnbench.run.audit import AuditContext, AuditSpec, base_config, load_audit, run_audit
from unlearnbench.run.tuning import load_values

NOISE = {"num_classes": 4, "train_per_class": 24, "test_per_class": 8, "noise": 2000.0,
         "image_size": 6}


def spec(tmp_path: Path, cache: Path, *, models: int = 4, methods=("none", "retrain"),
         metrics=None) -> AuditSpec:
    return AuditSpec(
        name="tiny", description="memorizing noise",
        base={"dataset": "synthetic", "dataset_params": NOISE, "arch": "tiny_cnn",
              "train_params": {"epochs": 30, "lr": 0.05, "batch_size": 16}, "val_fraction": 0.1,
              "cache_dir": cache},
        methods=tuple({"method": m} for m in methods), prunings=({},),
        metrics=metrics or {"klom": {"points": 20}, "ulira": {"runs_per_shadow": 2}},
        models=models, forget=6)


def test_population_split_is_fixed_and_checked() -> None:
    labels = torch.arange(4).repeat(10)
    member = Membership(split_seed=3, forget=(0, 1), exclude=(5,), score=(0, 1, 2))
    one = population_split(labels, torch.arange(4), member, val_fraction=0.1)
    two = population_split(labels, torch.arange(4), member, val_fraction=0.1)
    assert one.hash == two.hash
    assert one.forget.tolist() == [0, 1] and 5 not in one.train.tolist()
    assert set(one.retain.tolist()) == set(one.train.tolist()) - {0, 1}
    validation = one.validation.tolist()[0]
    with pytest.raises(ConfigError, match="not in this trial's training set"):
        population_split(labels, torch.arange(4), Membership(3, forget=(validation,)), val_fraction=0.1)
    with pytest.raises(ConfigError, match="out of range"):
        population_split(labels, torch.arange(4), Membership(3, forget=(400,)), val_fraction=0.1)
    with pytest.raises(ConfigError, match="unknown keys"):
        Membership.from_mapping({"split_seed": 0, "forget": [1], "forgot": [2]})


def test_audit_known_answers_and_resume(tmp_path: Path, capsys) -> None:
    cache = tmp_path / "cache"
    out = tmp_path / "audit"
    summary = run_audit(spec(tmp_path, cache), output=out, log=print, plots=True)
    rows = {(r["metric"], r["method"]): r for r in summary["rows"]}
    none, retrain = rows[("klom", "none")], rows[("klom", "retrain")]
    assert retrain["is_null"] and retrain["forget"] == retrain["null_forget"]
    # no unlearning: the forget examples are far from the oracles; Retrain is at the null
    assert none["forget"] > retrain["forget"]  # the histogram's null is near its ceiling at N = 4
    assert none["forget_gaussian"] > 10 * max(retrain["forget_gaussian"], 0.1)
    assert none["UA"] < 20 and retrain["UA"] > 40  # memorized vs never seen
    attack_none, attack_retrain = rows[("ulira", "none")], rows[("ulira", "retrain")]
    assert attack_none["accuracy"] > 75 and attack_none["auc"] > 0.8
    assert 30 < attack_retrain["accuracy"] < 70
    # the shared σ (4 shadows < 64), the per-side σ beside it, and the null's simulated spread
    assert (attack_none["variance"], attack_none["variant"]) == ("shared", "per_side")
    assert attack_none["variant_accuracy"] > 75 and attack_none["variant_null_accuracy"] < 75
    targets = attack_none["targets"]  # the std has ddof 0, the s.e. std (ddof 1) / √targets
    assert attack_none["accuracy_se"] == pytest.approx(attack_none["accuracy_std"] / (targets - 1) ** 0.5)
    assert attack_none["null_simulations"] == 1000
    assert 0 < attack_none["null_simulated_accuracy_sd"] < 30
    assert abs(attack_none["null_simulated_accuracy"] - 50) < 5
    # what was written: the record, per-example arrays, the table and the pictures
    stored = json.loads((out / "audit.json").read_text())
    assert stored["rows"] == json.loads(json.dumps(summary["rows"]))
    records = load_records(out / "records")  # the trials' own time, which an interruption cannot lose
    assert len(records) == summary["cost"]["unlearning"]
    assert stored["trial_seconds"]["unlearn"] == pytest.approx(sum(r.timings.unlearn_s for r in records), abs=0.1)
    assert set(stored["trial_seconds"]) == {"train", "prune", "unlearn", "eval"}
    trained = {r.timings.original_s for r in records if not r.timings.original_cached}  # each model once
    assert len(trained) == summary["cost"]["originals"]
    assert stored["trial_seconds"]["train"] == pytest.approx(sum(trained), abs=0.1)
    arrays = np.load(out / "per_example.npz")
    assert arrays["klom/dense/none/forget"].shape == (6,)  # forget=6 examples
    assert (out / "plots" / "klom-per-example.png").is_file()
    table = (out / "table.md").read_text()
    assert "KLoM" in table and "acc. % (σ shared), mean ± std" in table
    assert f"the trials recorded {math.fsum(stored['trial_seconds'].values()):,.0f} s (train " in table
    assert "U-LiRA with σ per_side (a labelled variant)" in table
    assert "not an uncertainty of the mean" in table and "1000 audits of this design" in table
    printed = capsys.readouterr().out
    assert "original models" in printed and "unlearning runs" in printed
    # resumed: nothing left to run, the same numbers
    again = run_audit(spec(tmp_path, cache), output=out, log=print, plots=False)
    assert again["cost"]["to_do"] == 0
    assert again["rows"] == summary["rows"]


def test_audit_shares_models_across_methods(tmp_path: Path) -> None:
    """One more method adds only its own unlearning runs: originals and oracles are recorded."""
    cache, out = tmp_path / "cache", tmp_path / "audit"
    metrics = {"klom": {"points": 5}}
    run_audit(spec(tmp_path, cache, models=3, methods=("retrain",), metrics=metrics), output=out,
              log=print, plots=False)
    more = run_audit(spec(tmp_path, cache, models=3, methods=("retrain", "none"), metrics=metrics),
                     output=out, log=print, plots=False, dry_run=True)
    assert more["cost"]["to_do"] == 3  # the three `none` runs
    assert more["cost"]["originals"] == 3


TINY_AUDIT = """
description = "noise"
[run]
dataset = "synthetic"
arch = "tiny_cnn"
dataset_params = { num_classes = 4, train_per_class = 24, test_per_class = 8, noise = 2000.0, image_size = 6 }
[audit]
method = ["none", "retrain", "ft"]
pruning = ["dense", "omp:0.5"]
models = 5
forget = 6
"""


def test_cli_audit_dry_run_prints_the_cost(tmp_path: Path, capsys) -> None:
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY_AUDIT)
    code = main(["audit", str(recipe), "--models", "3", "--dry-run", "--output", str(tmp_path / "out"),
                 "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    err = capsys.readouterr().err
    # KLoM: 3 originals, 3 x 2 pruned; 3 oracles + 3 x 3 methods per pruning (retrain's runs are
    # the null); U-LiRA: 3 shadows (2 runs each) x 3 methods x 2 prunings
    assert "6 original models and 6 pruned models" in err
    assert f"{2 * (3 + 3 * 3) + 3 * 2 * 3 * 2} unlearning runs" in err
    assert not (tmp_path / "out" / "records").exists()  # nothing ran


def test_bundled_audit_recipe_is_valid() -> None:
    audit = load_audit("random-forgetting", scale="small")
    assert audit.models >= 8 and audit.forget <= 0.01
    assert {"retrain", "ft", "ga", "sparse_ft"} <= {m["method"] for m in audit.methods}
    assert [p.get("pruner") for p in audit.prunings] == [None, "omp"]
    assert set(audit.metrics) == {"klom", "ulira"}
    assert load_audit("random-forgetting", scale="small", models=16).models == 16


def test_an_audit_runs_its_methods_with_the_tuned_values_it_declares(tmp_path: Path) -> None:
    """The bundled small audit runs with the values of its own study, the dense cell's on the
    dense model, the 95%-sparse cell's on the pruned one; Retrain and `none` (no search space)
    run as written; a file without a row's values is one error."""
    audit = load_audit("random-forgetting", scale="small")
    values = load_values(Path(audit_module.__file__).parent / "recipes" / "tuned" / "audit-random-forgetting-small.json")
    assert audit.tuning["cells"] == {"dense|random:0.01": "dense|random:0.01",
                                     "omp:0.95|random:0.01": "omp:0.95|random:0.01"}
    assert audit_module.audit_cells("random-forgetting", "small", execution={})[1] == \
        (Path(audit_module.__file__).parent / "recipes" / "tuned" / "audit-random-forgetting-small.json").resolve()
    context = AuditContext(audit, base_config(audit), torch.arange(10).repeat(10), torch.arange(10))
    member = Membership(split_seed=0, forget=(0, 1))
    for pruning, cell in (({}, "dense|random:0.01"), ({"pruner": "omp", "sparsity": 0.95}, "omp:0.95|random:0.01")):
        for method in audit.methods:
            config = context.member("method", method, pruning, 0, member).config
            expected = values["values"][cell].get(method["method"], {}).get("oracle", {})
            assert config.method_params == expected
            assert bool(expected) == (method["method"] not in ("none", "retrain"))
    recipe = tmp_path / "tuned.toml"
    (tmp_path / "v.json").write_text(json.dumps({"values": {"dense|random:6": {"ga": {"oracle": {"lr": 1e-4}}}}}))
    recipe.write_text(TINY_AUDIT + 'tuning = { values = "v.json" }\n')
    with pytest.raises(ConfigError, match=r"holds no oracle values for ft at dense\|random:6"):
        load_audit(str(recipe))
    recipe.write_text(TINY_AUDIT + 'tuning = { values = "v.json", criterion = "best" }\n')
    with pytest.raises(ConfigError, match="criterion = \"best\" is invalid"):
        load_audit(str(recipe))


def test_an_audit_is_tuned_on_its_own_setting(tmp_path: Path, capsys) -> None:
    """`unlearnbench tune --audit FILE`: one cell per audited pruning, forgetting the audit's share
    (moved to the scenario's tuning draw), its tunable rows only; the values land in the file its
    tuning entry names, and the audit then runs each row with its pruning's values."""
    recipe = tmp_path / "tiny.toml"
    audit = TINY_AUDIT.replace("forget = 6", "forget = 0.1")
    recipe.write_text(audit + 'tuning = { values = "tuned.json" }\n')
    cells, values, output = audit_module.audit_cells(str(recipe), "full", execution={})
    assert [c.key for c in cells] == ["dense|random:0.1", "omp:0.5|random:0.1"]
    assert all(c.methods == ("ft",) for c in cells)  # none and retrain have nothing to tune
    assert values == tmp_path / "tuned.json" and output == Path("leaderboard/audit-tiny/tuning")
    with pytest.raises(ConfigError, match=r"holds no oracle values|not a readable JSON"):
        load_audit(str(recipe))  # nothing tuned yet
    code = main(["tune", "--audit", str(recipe), "--trials", "2", "--output", str(tmp_path / "study"),
                 "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    tuned = load_values(tmp_path / "tuned.json")["values"]
    assert set(tuned) == {"dense|random:0.1", "omp:0.5|random:0.1"}
    spec_ = load_audit(str(recipe))
    assert spec_.tuned == {p: {"ft": tuned[f"{p}|random:0.1"]["ft"]["oracle"]} for p in ("dense", "omp:0.5")}
    # a count is not a share of a tuning split; a borrowing audit's study writes no values file
    recipe.write_text(TINY_AUDIT)
    with pytest.raises(ConfigError, match="forget = 6 is a count"):
        audit_module.audit_cells(str(recipe), "full", execution={})
    recipe.write_text(audit + 'tuning = { values = "tuned.json", borrow = { "*" = "dense|random:0.1" } }\n')
    assert audit_module.audit_cells(str(recipe), "full", execution={})[1] is None
    assert main(["tune", "ft", "--audit", str(recipe), "--dry-run"]) == 2
    assert "METHOD..., --recipe NAME or --audit NAME (one of them)" in capsys.readouterr().err


def test_audit_refuses_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        spec(tmp_path, tmp_path, models=1)
    with pytest.raises(UnknownNameError, match="Did you mean 'klom'"):
        run_audit(spec(tmp_path, tmp_path, metrics={"klomm": {}}), output=tmp_path / "o", log=print)
    with pytest.raises(ConfigError, match="per-trial metric"):
        run_audit(spec(tmp_path, tmp_path, metrics={"UA": {}}), output=tmp_path / "o", log=print)
    with pytest.raises(ConfigError, match="suggest|Did you mean|recipe|audit"):
        load_audit("random-forgeting")


def test_the_recorded_total_is_the_same_whatever_the_order_of_its_phases() -> None:
    """``audit.json`` sorts its keys and the summary in memory does not: with these phases a plain
    sum reads 5.499999999999999 in one order and 5.5 in another, one second apart once rounded."""
    seconds = {"train": 1.8, "prune": 2.0, "unlearn": 1.4, "eval": 0.3}
    assert len({sum(dict(p).values()) for p in itertools.permutations(seconds.items())}) > 1
    totals = {recorded_total(dict(p)) for p in itertools.permutations(seconds.items())}
    assert totals == {5.5}


def test_leaderboard_renders_an_audit_folder_by_its_table(tmp_path: Path, capsys) -> None:
    out = tmp_path / "audit"
    run_audit(spec(tmp_path, tmp_path / "cache", models=3, metrics={"klom": {"points": 5}}),
              output=out, log=print, plots=False)
    capsys.readouterr()
    assert main(["leaderboard", str(out)]) == 0
    assert capsys.readouterr().out == (out / "table.md").read_text()
    (tmp_path / "board").mkdir()
    out.rename(tmp_path / "board" / "audit")
    with pytest.raises(Exception, match="no run records"):  # an audit is no leaderboard folder
        benchmark_folders(tmp_path / "board")
    # ... but the web site gives it a page of its own: its tables, cost and per-example pictures
    summary = json.loads((tmp_path / "board" / "audit" / "audit.json").read_text())
    assert main(["leaderboard", str(tmp_path / "board"), "--format", "html", "--output", str(tmp_path / "site")]) == 0
    index = (tmp_path / "site" / "index.html").read_text()
    assert 'href="audit/index.html"' in index and "Population audits" in index
    page = (tmp_path / "site" / "audit" / "index.html").read_text()
    rows = [r for r in summary["rows"] if r["metric"] == "klom"]
    assert page.count("<table>") == 1 and "<h2>KLoM" in page
    recorded = f"{math.fsum(summary['trial_seconds'].values()):,.0f} s"  # the cost an interruption keeps
    assert re.search(rf"recorded trial time</\w+>\s*<\w+[^>]*>{recorded}<", page), recorded
    for r in rows:  # every row of the audit's table is on the page, with its numbers
        method = re.escape(r["method"] + (" (= null)" if r.get("is_null") else ""))
        assert re.search(rf"<td>\s*{method}\s*</td>", page) and re.search(rf"<td>\s*{r['forget']:.2f}\s*</td>", page)
    pictures = sorted(p.name for p in (tmp_path / "site" / "audit").glob("*.svg"))
    assert pictures == ["klom-per-example.svg"]
    assert f'<img src="klom-per-example.svg" alt="{PICTURE_CAPTIONS["klom"][:40]}' in page
    assert "<svg" in (tmp_path / "site" / "audit" / "klom-per-example.svg").read_text()[:500]
    # redrawn from the same record, the site is byte-identical (no date, fixed ids)
    assert main(["leaderboard", str(tmp_path / "board"), "--format", "html", "--output", str(tmp_path / "again")]) == 0
    for name in ("index.html", "klom-per-example.svg"):
        assert (tmp_path / "again" / "audit" / name).read_bytes() == (tmp_path / "site" / "audit" / name).read_bytes()


@pytest.mark.parametrize("name", ["audit-random-forgetting-small", "audit-random-forgetting-small-borrowed"])
def test_the_committed_audit_table_renders_from_its_record(name: str) -> None:
    """leaderboard/'s audits: each table.md is exactly what its audit.json renders to."""
    from unlearnbench.report.audit import render_audit
    folder = Path(__file__).resolve().parents[1] / "leaderboard" / name
    summary = json.loads((folder / "audit.json").read_text())
    assert (folder / "table.md").read_text() == render_audit(summary)
    arrays = np.load(folder / "per_example.npz")
    assert {f"klom/{p}/{m}/forget" for p in ("dense", "omp:0.95")
            for m in ("none", "retrain", "ft", "ga", "sparse_ft", "iu")} <= set(arrays.files)
