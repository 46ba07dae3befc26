"""Every number the leaderboard READMEs state is recomputed here from their records.

A README sentence is checked by rebuilding it from the records and finding it verbatim; the
side-by-side tables are parsed and compared cell by cell. A README edited without its
records (or records replaced without the README) fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from unlearnbench.report.leaderboard import summarize
from unlearnbench.report.records import load_records
from unlearnbench.run.recipes import records_setting

BOARD = Path(__file__).resolve().parents[1] / "leaderboard"
METRICS = ("UA", "MIA", "RA", "TA")


class Board:
    def __init__(self, name: str):
        self.folder = BOARD / name
        self.records = load_records(self.folder / "records")
        self.summary = summarize(self.records)
        self.readme = (self.folder / "README.md").read_text()

    def value(self, forget: str, pruning: str, method: str, column: str) -> float:
        s = self.summary
        rows = s[(s["forget"] == forget) & (s["pruning"] == pruning) & (s["method"] == method)]
        assert len(rows) == 1, (forget, pruning, method)
        return float(rows.iloc[0][column])

    def says(self, sentence: str) -> None:
        assert " ".join(sentence.split()) in " ".join(self.readme.split()), sentence


@pytest.fixture(scope="module")
def main() -> Board:
    return Board("main-table-small-untuned")


SCENARIOS = {"class-wise": "class:0", "random": "random:0.1"}
PRUNINGS = ("dense", "omp 0.95")


def test_main_table_side_by_side_cells_are_the_records_means(main: Board) -> None:
    rows = [line for line in main.readme.splitlines()
            if re.match(r"\| (class-wise|random) \| \w+ \| [\d.]+ / [\d.]+ \| ", line)]
    assert len(rows) == 12
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        forget, method = SCENARIOS[cells[0]], cells[1]
        ours = [cells[2], cells[4], cells[6], cells[8]]  # UA, MIA, RA, TA: ours, paper alternate
        for metric, cell in zip(METRICS, ours):
            stated = [float(x) for x in cell.split(" / ")]
            actual = [round(main.value(forget, p, method, f"{metric}_mean"), 2) for p in PRUNINGS]
            assert stated == actual, (forget, method, metric)


def test_main_table_disparity_cells_are_the_records(main: Board) -> None:
    rows = [line for line in main.readme.splitlines()
            if re.match(r"\| (class-wise|random) \| \w+ \| [\d.]+ / [\d.]+ \|$", line)]
    assert len(rows) == 10
    for line in rows:
        scenario, method, cell = [c.strip() for c in line.strip("|").split("|")]
        stated = [float(x) for x in cell.split(" / ")]
        actual = [round(main.value(SCENARIOS[scenario], p, method, "disparity"), 2) for p in PRUNINGS]
        assert stated == actual, (scenario, method)


def test_main_table_sentences(main: Board) -> None:
    v = main.value
    # the regime: every Retrain fits its retain set
    ra = {(s, p): v(f, p, "retrain", "RA_mean") for s, f in SCENARIOS.items() for p in PRUNINGS}
    assert min(ra.values()) >= 99
    main.says(f"Retrain's RA is {ra['class-wise', 'dense']:.2f} / {ra['class-wise', 'omp 0.95']:.2f} "
              f"(dense / 95%) class-wise and {ra['random', 'dense']:.2f} / {ra['random', 'omp 0.95']:.2f} random")
    # claim 1: Disparity falls for 9 of 10 pairs, FF class-wise grows; FT/GA barely forget more
    disparity = {(s, m): [v(f, p, m, "disparity") for p in PRUNINGS]
                 for s, f in SCENARIOS.items() for m in ("ft", "ga", "ff", "iu", "sparse_ft")}
    falls = [key for key, d in disparity.items() if d[1] < d[0]]
    assert len(falls) == 9 and ("class-wise", "ff") not in falls
    main.says(f"FF's Disparity Ave. grows ({disparity['class-wise', 'ff'][0]:.2f} -> "
              f"{disparity['class-wise', 'ff'][1]:.2f})")
    ua = {m: [v("class:0", p, m, "UA_mean") for p in PRUNINGS] for m in ("ft", "ga")}
    main.says(f"FT's UA goes from {ua['ft'][0]:.2f} to {ua['ft'][1]:.2f}")
    main.says(f"GA's from {ua['ga'][0]:.2f} to {ua['ga'][1]:.2f}")
    gap = {m: [v("random:0.1", p, "ft", f"{m}_gap") for p in PRUNINGS] for m in ("UA", "MIA")}
    assert gap["UA"][1] > gap["UA"][0] and gap["MIA"][1] < gap["MIA"][0]
    main.says(f"FT's UA gap grows ({gap['UA'][0]:.2f} -> {gap['UA'][1]:.2f}) while its MIA-Efficacy "
              f"gap shrinks ({gap['MIA'][0]:.2f} -> {gap['MIA'][1]:.2f})")
    mia = [v("random:0.1", p, "retrain", "MIA_mean") for p in PRUNINGS]
    main.says(f"Retrain's MIA-Efficacy is lower ({mia[0]:.2f} -> {mia[1]:.2f})")
    assert max(disparity, key=lambda k: disparity[k][0] - disparity[k][1]) == ("random", "iu")
    main.says(f"(random {disparity['random', 'iu'][0]:.2f} -> {disparity['random', 'iu'][1]:.2f})")
    main.says(f"({v('class:0', 'dense', 'iu', 'RA_mean'):.2f} -> {v('class:0', 'omp 0.95', 'iu', 'RA_mean'):.2f})")
    # claim 2: sparse_ft is FT
    main.says(f"sparse_ft's class-wise Disparity Ave. is {v('class:0', 'dense', 'sparse_ft', 'disparity'):.2f} "
              f"(UA {v('class:0', 'dense', 'sparse_ft', 'UA_mean'):.2f} against Retrain's "
              f"{v('class:0', 'dense', 'retrain', 'UA_mean'):.2f})")
    gaps = [abs(v(f, p, "sparse_ft", f"{m}_mean") - v(f, p, "ft", f"{m}_mean"))
            for f in SCENARIOS.values() for p in PRUNINGS for m in METRICS]
    assert max(gaps) <= 0.07
    main.says("at most 0.07 points in any metric")
    # costs (class-wise, dense)
    rte = {m: v("class:0", "dense", m, "RTE_mean") for m in ("ga", "retrain", "ft")}
    main.says(f"GA: {rte['ga']:.1f} s against Retrain's {rte['retrain']:.0f} s (class-wise, dense); "
              f"FT: {rte['ft']:.0f} s")
    # random forgetting: Retrain's UA is about 100 - TA
    ta = v("random:0.1", "dense", "retrain", "TA_mean")
    main.says(f"Retrain's UA ({v('random:0.1', 'dense', 'retrain', 'UA_mean'):.2f}) is about 100 - TA "
              f"({100 - ta:.2f})")
    main.says(f"Retrain's MIA-Efficacy ({mia[0]:.2f}, paper 13.12)")
    assert len(main.records) == 72
    main.says("72 runs")


@pytest.mark.parametrize("name", ["main-table-small", "main-table-small-untuned", "pruners-small", "gamma-schedules-small",
                                  "backdoor-small"])
def test_table_captions_name_what_the_records_ran(name: str) -> None:
    folder = BOARD / name
    assert records_setting(load_records(folder / "records")) in (folder / "table.md").read_text()


def test_audit_sentences() -> None:
    """The audit README's numbers, recomputed from its audit.json."""
    import json

    from scipy.stats import spearmanr

    folder = BOARD / "audit-random-forgetting-small"
    summary = json.loads((folder / "audit.json").read_text())
    readme = " ".join((folder / "README.md").read_text().split())

    def says(sentence: str) -> None:
        assert " ".join(sentence.split()) in readme, sentence

    def row(metric: str, pruning: str, method: str) -> dict:
        [found] = [r for r in summary["rows"] if (r["metric"], r["pruning"], r["method"]) == (metric, pruning, method)]
        return found

    methods = ["none", "ft", "ga", "sparse_ft", "iu"]
    cost = summary["cost"]
    says(f"{cost['originals']} original models and {cost['pruned']} pruned models, {cost['unlearning']} "
         f"unlearning runs ({cost['retrainings']} of them retrain from scratch)")
    says(f"Wall clock: {summary['wall_clock_s']:,.0f} s")
    assert len(list((folder / "records").glob("*.json"))) == cost["unlearning"] == 208
    for pruning, label in (("dense", "dense"), ("omp:0.95", "OMP 95%")):
        gap = {m: abs(row("klom", pruning, m)["MIA"] - row("klom", pruning, "retrain")["MIA"]) for m in methods}
        measures = {"klom": {m: row("klom", pruning, m)["forget"] for m in methods},
                    "gauss": {m: row("klom", pruning, m)["forget_gaussian"] for m in methods},
                    "ulira": {m: abs(row("ulira", pruning, m)["accuracy"] - 50) for m in methods}}
        rho = [spearmanr([gap[m] for m in methods], [d[m] for m in methods]).statistic
               for d in measures.values()]
        says(f"| {label} | " + " | ".join(f"{r:.2f}" for r in rho) + " |")
        if pruning == "dense":
            for d in [gap, *measures.values()]:
                assert sorted(d, key=d.get)[:2] == ["iu", "ga"]
    u = {(p, m): row("ulira", p, m) for p in ("dense", "omp:0.95") for m in methods + ["retrain"]}
    says(f"with {u['dense', 'ft']['accuracy']:.1f}% accuracy (AUC {u['dense', 'ft']['auc']:.3f})")
    says(f"`none` ({u['dense', 'none']['accuracy']:.1f}%, AUC {u['dense', 'none']['auc']:.3f}); "
         f"Retrain scores {u['dense', 'retrain']['accuracy']:.1f}%")
    says(f"U-LiRA's null here is {u['dense', 'retrain']['accuracy']:.1f}% (dense) and "
         f"{u['omp:0.95', 'retrain']['accuracy']:.1f}% (95%)")
    says(f"(± {u['dense', 'retrain']['accuracy_std']:.1f} and ± {u['omp:0.95', 'retrain']['accuracy_std']:.1f} points)")
    # U-LiRA's σ: shared by U and O, the per-side variant beside it; the null's simulated spread
    assert {r["variance"] for r in summary["rows"] if r["metric"] == "ulira"} == {"shared"}
    assert {r["variant"] for r in summary["rows"] if r["metric"] == "ulira"} == {"per_side"}
    says(f"GA on the 95% model: {u['omp:0.95', 'ga']['variant_accuracy']:.1f}% with per-side σ, "
         f"{u['omp:0.95', 'ga']['accuracy']:.1f}% with the shared one")
    simulated = u["dense", "retrain"]
    assert all(u[p, "retrain"]["null_simulated_accuracy_sd"] == simulated["null_simulated_accuracy_sd"]
               for p in ("dense", "omp:0.95"))  # one design for both prunings
    assert 5 < simulated["null_simulated_accuracy_sd"] < 7.5  # as test_audit_estimators' design of this size
    says(f"{simulated['null_simulations']:,} simulated audits of this design with Gaussian margins")
    says(f"a mean accuracy of {simulated['null_simulated_accuracy']:.1f}% with a standard deviation of "
         f"{simulated['null_simulated_accuracy_sd']:.1f} points")
    z = [(u[p, "retrain"]["accuracy"] - 50) / simulated["null_simulated_accuracy_sd"] for p in ("dense", "omp:0.95")]
    assert all(0 < d < 2 for d in z)  # noise
    says(f"the Retrain rows lie {z[0]:.1f} and {z[1]:.1f} standard deviations above 50%")
    says(f"within about one simulated null standard deviation ({simulated['null_simulated_accuracy_sd']:.1f} points)")
    k = {(p, m): row("klom", p, m) for p in ("dense", "omp:0.95") for m in methods + ["retrain"]}
    says(f"(FT {k['dense', 'ft']['MIA']:.2f} against Retrain's {k['dense', 'retrain']['MIA']:.2f})")
    null = k["dense", "retrain"]["forget"]
    says(f"its null is {null:.2f} nats (dense)")
    spread = max(abs(k["dense", m]["forget"] - null) for m in methods)
    assert spread <= 1.2
    says("every method lies within 1.2 nats of it")
    says(f"IU's {k['dense', 'iu']['forget']:.2f} is even below")
    says(f"{k['dense', 'ft']['forget_gaussian']:.2f} for FT against a null of {k['dense', 'retrain']['forget_gaussian']:.2f}")
    for method, name in (("ft", "FT"), ("sparse_ft", "sparse_ft"), ("ga", "GA"), ("iu", "IU")):
        says(f"{name} {u['dense', method]['accuracy']:.1f}% -> {u['omp:0.95', method]['accuracy']:.1f}%")
        rise = u["omp:0.95", method]["accuracy"] - u["dense", method]["accuracy"]
        assert 0 < rise < simulated["null_simulated_accuracy_sd"]
    says(f"(the null: {u['dense', 'retrain']['accuracy']:.1f}% -> {u['omp:0.95', 'retrain']['accuracy']:.1f}%)")
    for method, name in (("ft", "FT"), ("ga", "GA")):
        says(f"{name} {k['dense', method]['forget_gaussian']:.2f} -> {k['omp:0.95', method]['forget_gaussian']:.2f}")
        assert k["omp:0.95", method]["forget_gaussian"] > k["dense", method]["forget_gaussian"]
    says(f"(the null: {k['dense', 'retrain']['forget_gaussian']:.2f} -> {k['omp:0.95', 'retrain']['forget_gaussian']:.2f})")
    ft_gap = [abs(k[p, "ft"]["MIA"] - k[p, "retrain"]["MIA"]) for p in ("dense", "omp:0.95")]
    says(f"(FT {ft_gap[0]:.2f} -> {ft_gap[1]:.2f})")
    assert k["dense", "ft"]["MIA"] == k["omp:0.95", "ft"]["MIA"] == 0


def test_untuned_main_table_states_the_steps_its_methods_took() -> None:
    """Its records predate the work count: the steps follow from their epochs, batch and sizes."""
    import math

    board = Board("main-table-small-untuned")

    def steps(method: str, part: str) -> set[int]:
        return {r.config["method_params"]["epochs"]
                * math.ceil(getattr(r.split, part) / r.config["method_params"]["batch_size"])
                for r in board.records if r.method == method}
    assert steps("ft", "retain") == steps("sparse_ft", "retain") == {80}
    assert steps("ga", "forget") == {5}
    board.says("FT and sparse_ft took 80 optimizer steps (the paper's: about 1,590) and GA 5")


UNTUNED = {  # board -> the optimizer steps its records' FT-family methods and GA took
    "audit-random-forgetting-small": ("FT and sparse_ft took 40 optimizer steps and GA 5",
                                      {"ft": 40, "sparse_ft": 40, "ga": 5}),
}


@pytest.mark.parametrize("name", sorted(UNTUNED))
def test_untuned_boards_state_the_steps_their_methods_took(name: str) -> None:
    """Boards not yet rerun under the budget rule say so, with steps recomputed from their records
    (which predate the work count: epochs x batches over the part each method trains on)."""
    import math

    sentence, expected = UNTUNED[name]
    board = Board(name)
    for method, steps in expected.items():
        part = "forget" if method == "ga" else "retain"
        taken = {r.config["method_params"]["epochs"]
                 * math.ceil(getattr(r.split, part) / r.config["method_params"]["batch_size"])
                 for r in board.records if r.method == method}
        assert taken == {steps}, (method, taken)
    board.says("**Untuned, at the reference's absolute budgets.** " + sentence)
