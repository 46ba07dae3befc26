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


@pytest.mark.parametrize("name", ["main-table-small", "main-table-small-untuned", "pruners-small", "pruners-small-borrowed", "gamma-schedules-small",
                                  "backdoor-small"])
def test_table_captions_name_what_the_records_ran(name: str) -> None:
    folder = BOARD / name
    assert records_setting(load_records(folder / "records")) in (folder / "table.md").read_text()


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
