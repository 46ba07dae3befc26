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
    return Board("main-table-small")


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
    ra = {s: v(f, "dense", "retrain", "RA_mean") for s, f in SCENARIOS.items()}
    ta = {s: v(f, "dense", "retrain", "TA_mean") for s, f in SCENARIOS.items()}
    main.says(f"The dense Retrain's retain accuracy (RA) is {ra['class-wise']:.2f} class-wise and "
              f"{ra['random']:.2f} random, only {ra['class-wise'] - ta['class-wise']:.2f} and "
              f"{ra['random'] - ta['random']:.2f} points above its test accuracy")
    # random forgetting: which Disparity Ave. grows at 95% and which falls
    disparity = {m: [v("random:0.1", p, m, "disparity") for p in PRUNINGS]
                 for m in ("ft", "ga", "ff", "sparse_ft", "iu")}
    assert all(d[1] > d[0] for m, d in disparity.items() if m != "iu")
    assert disparity["iu"][1] < disparity["iu"][0]
    main.says(f"(FT {disparity['ft'][0]:.2f} -> {disparity['ft'][1]:.2f})")
    main.says(f"IU's falls a little ({disparity['iu'][0]:.2f} -> {disparity['iu'][1]:.2f})")
    main.says(f"retain accuracy ({v('random:0.1', 'dense', 'retrain', 'RA_mean'):.2f} -> "
              f"{v('random:0.1', 'omp 0.95', 'retrain', 'RA_mean'):.2f})")
    # sparse_ft and FT differ by at most 0.3 points in every metric
    gaps = [abs(v(f, p, "sparse_ft", f"{m}_mean") - v(f, p, "ft", f"{m}_mean"))
            for f in SCENARIOS.values() for p in PRUNINGS for m in METRICS]
    assert max(gaps) <= 0.3
    # random Retrain's UA is about 100 - TA
    main.says(f"Retrain's UA ({v('random:0.1', 'dense', 'retrain', 'UA_mean'):.2f}) is about "
              f"100 - TA ({100 - ta['random']:.2f})")
    # costs (class-wise, dense)
    rte = {m: v("class:0", "dense", m, "RTE_mean") for m in ("ga", "retrain", "iu", "ff")}
    main.says(f"GA: {rte['ga']:.1f} s against Retrain's {rte['retrain']:.0f} s")
    main.says(f"IU: {rte['iu']:.1f} s")
    main.says(f"FF: {rte['ff']:.0f} s")
    main.says(f"FT's {v('class:0', 'dense', 'ft', 'RTE_mean'):.1f} s against sparse_ft's "
              f"{v('class:0', 'dense', 'sparse_ft', 'RTE_mean'):.1f} s")
    assert len(main.records) == 72
    main.says("72 runs")


def test_backdoor_sentences_and_table() -> None:
    board = Board("backdoor-small")
    v = board.value
    prunings = ["dense", "omp 0.5", "omp 0.75", "omp 0.9", "omp 0.95"]
    before = [v("backdoor:0.1", p, "ft", "probe:ASR:before_mean") for p in prunings]
    retrain = [v("backdoor:0.1", p, "retrain", "probe:ASR:after_mean") for p in prunings]
    ft = [v("backdoor:0.1", p, "ft", "probe:ASR:after_mean") for p in prunings]
    board.says(f"(ASR {min(before):.0f}-{max(before):.0f}%)")
    board.says(f"has an ASR of {min(retrain):.1f}-{max(retrain):.1f}%")
    board.says(f"FT lowers the ASR from {before[0]:.0f}% to {ft[0]:.0f}% on the dense model")
    board.says(f"on the sparse ones ({min(ft[1:]):.0f}-{max(ft[1:]):.0f}%)")
    for p, b, r, f in zip(prunings, before, retrain, ft):
        label = "dense" if p == "dense" else p.replace("omp", "OMP")
        assert re.search(rf"\| {label} \| {b:.2f} \| {r:.2f} \| {f:.2f}", board.readme), p
    columns = ["probe:ASR:after_mean", "UA_mean", "RA_mean", "TA_mean"]
    gaps = [abs(v("backdoor:0.1", p, "sparse_ft", c) - v("backdoor:0.1", p, "ft", c))
            for p in prunings for c in columns]
    assert max(gaps) <= 0.35
    board.says("within 0.35 points")
    mia = max(abs(v("backdoor:0.1", p, "sparse_ft", "MIA_mean") - v("backdoor:0.1", p, "ft", "MIA_mean"))
              for p in prunings)
    board.says(f"differs by up to {mia:.1f} points")
    assert len(board.records) == 30
    board.says("30 runs")


def test_gamma_schedule_sentences() -> None:
    board = Board("gamma-schedules-small")
    methods = ["ft", "sparse_ft-constant", "sparse_ft-linear_decay", "sparse_ft-linear_increase"]

    def spread(metric: str) -> float:
        return max(max(vals) - min(vals) for vals in (
            [board.value(f, "dense", m, f"{metric}_mean") for m in methods]
            for f in SCENARIOS.values()))
    assert spread("UA") <= 0.15 and spread("MIA") <= 0.3
    assert spread("RA") <= 0.2 and spread("TA") <= 0.2
    board.says("at most 0.15 point in UA, 0.3 in MIA-Efficacy and 0.2 in RA/TA")
    assert len(board.records) == 30
    board.says("30 runs")


def test_pruners_sentences() -> None:
    board = Board("pruners-small")
    for mask, name in (("omp", "OMP"), ("imp", "IMP"), ("synflow", "SynFlow"), ("random", "random")):
        cells = [f"{board.value('class:0', f'{mask} {s}', 'ft', 'disparity'):.2f}" for s in (0.5, 0.9)]
        board.says(f"| {name} | {cells[0]} | {cells[1]} |")
    board.says(f"(dense: {board.value('class:0', 'dense', 'ft', 'disparity'):.2f})")
    board.says(f"has UA {board.value('class:0', 'imp 0.9', 'ft', 'UA_mean'):.2f} against Retrain's "
               f"{board.value('class:0', 'imp 0.9', 'retrain', 'UA_mean'):.0f}")
    assert len(board.records) == 18
    board.says("18 runs")


@pytest.mark.parametrize("name", ["main-table-small", "pruners-small", "gamma-schedules-small",
                                  "backdoor-small"])
def test_table_captions_name_what_the_records_ran(name: str) -> None:
    folder = BOARD / name
    assert records_setting(load_records(folder / "records")) in (folder / "table.md").read_text()
