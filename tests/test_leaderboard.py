"""Leaderboard numbers from hand-built records, checked against hand-computed values."""

from __future__ import annotations

import io
import re
import math

import pandas as pd
import pytest

from unlearnbench import ConfigError
from unlearnbench.report.leaderboard import render, summarize

# (method, pruning, seed) -> UA, MIA, RA, TA, RTE
RUNS = {
    ("retrain", None, 0): (100.0, 100.0, 99.0, 90.0, 40.0),
    ("retrain", None, 1): (98.0, 96.0, 97.0, 88.0, 44.0),
    ("ft", None, 0): (20.0, 70.0, 99.0, 92.0, 2.0),
    ("ft", None, 1): (30.0, 80.0, 99.0, 93.0, 3.0),
    ("ft", None, 2): (40.0, 90.0, 99.0, 94.0, 4.0),
    ("retrain", "omp", 0): (100.0, 100.0, 100.0, 91.0, 41.0),
    ("ft", "omp", 0): (70.0, 85.0, 99.5, 92.0, 2.5),
}


@pytest.fixture
def records(make_record):
    return [make_record(method=m, pruner=p, target_sparsity=0.95 if p else None, seed=s,
                        UA=ua, MIA=mia, RA=ra, TA=ta, RTE=rte)
            for (m, p, s), (ua, mia, ra, ta, rte) in RUNS.items()]


def _row(table: pd.DataFrame, method: str, pruning: str) -> pd.Series:
    [index] = table.index[(table["method"] == method) & (table["pruning"] == pruning)]
    return table.loc[index]


def test_means_and_sample_standard_deviations(records) -> None:
    table = summarize(records)
    retrain, ft = _row(table, "retrain", "dense"), _row(table, "ft", "dense")
    assert (retrain["UA_mean"], retrain["MIA_mean"], retrain["RA_mean"], retrain["TA_mean"]) == \
        (99.0, 98.0, 98.0, 89.0)
    assert retrain["UA_std"] == pytest.approx(math.sqrt(2))  # ddof=1 of (100, 98)
    assert retrain["MIA_std"] == pytest.approx(math.sqrt(8))
    assert (ft["UA_mean"], ft["MIA_mean"], ft["RA_mean"], ft["TA_mean"], ft["RTE_mean"]) == \
        (30.0, 80.0, 99.0, 93.0, 3.0)
    assert (ft["UA_std"], ft["MIA_std"], ft["RA_std"], ft["TA_std"]) == pytest.approx((10, 10, 0, 1))
    assert ft["n"] == 3 and retrain["n"] == 2
    assert _row(table, "ft", "omp 0.95")["UA_std"] == 0.0  # one seed: no spread, not NaN


def test_gaps_and_disparity_compare_with_retrain_at_the_same_pruning(records) -> None:
    table = summarize(records)
    ft = _row(table, "ft", "dense")
    # |30-99|, |80-98|, |99-98|, |93-89|
    assert [ft[f"{m}_gap"] for m in ("UA", "MIA", "RA", "TA")] == pytest.approx([69, 18, 1, 4])
    assert ft["disparity"] == pytest.approx(23.0)
    sparse = _row(table, "ft", "omp 0.95")
    # |70-100|, |85-100|, |99.5-100|, |92-91|
    assert [sparse[f"{m}_gap"] for m in ("UA", "MIA", "RA", "TA")] == pytest.approx([30, 15, 0.5, 1])
    assert sparse["disparity"] == pytest.approx(11.625)
    assert _row(table, "retrain", "dense")["disparity"] == 0.0


def test_rows_are_ordered_dense_first_and_retrain_first(records) -> None:
    table = summarize(records)
    assert list(zip(table["pruning"], table["method"])) == [
        ("dense", "retrain"), ("dense", "ft"), ("omp 0.95", "retrain"), ("omp 0.95", "ft")]


def test_without_retrain_the_gaps_are_missing_not_invented(make_record) -> None:
    table = summarize([make_record(method="ft", forget="random:0.1")])
    assert table["UA_gap"].isna().all() and table["disparity"].isna().all()
    text = render([make_record(method="ft", forget="random:0.1")])
    assert "—" in text


def test_scenarios_are_compared_separately(make_record) -> None:
    rows = [make_record(method="retrain", UA=100.0), make_record(method="ft", UA=20.0),
            make_record(method="retrain", UA=5.0, forget="random:0.1"),
            make_record(method="ft", UA=7.0, forget="random:0.1")]
    table = summarize(rows)
    assert _row(table[table["forget"] == "class:0"], "ft", "dense")["UA_gap"] == 80.0
    assert _row(table[table["forget"] == "random:0.1"], "ft", "dense")["UA_gap"] == 2.0


def test_markdown_shows_cells_gaps_and_notes(records) -> None:
    text = render(records, "markdown")
    ft_dense = next(line for line in text.splitlines() if "| dense " in line and "| ft " in line)
    cells = [c.strip() for c in ft_dense.strip("|").split("|")]
    assert cells[:4] == ["class:0", "dense", "ft", "3"]
    assert cells[4:9] == ["30.00 ± 10.00 (69.00)", "80.00 ± 10.00 (18.00)", "99.00 ± 0.00 (1.00)",
                          "93.00 ± 1.00 (4.00)", "23.00"]
    assert cells[9] == "3.00 ± 1.00"
    header = text.splitlines()[0]
    for column in ("MIA-Efficacy", "Disparity Ave.", "RTE (s)", "sparsity"):
        assert column in header
    assert "dataset" not in header  # constant columns move out of the table
    assert "RTE measured on cpu (test)." in text
    assert "different devices" not in text


def test_csv_has_the_raw_numbers(records) -> None:
    frame = pd.read_csv(io.StringIO(render(records, "csv")))
    ft = _row(frame, "ft", "dense")
    assert ft["UA_mean"] == 30.0 and ft["UA_std"] == 10.0 and ft["disparity"] == 23.0
    assert len(frame) == 4


def test_latex_is_a_booktabs_table_with_comment_notes(records) -> None:
    text = render(records, "latex")
    assert "\\toprule" in text and "\\bottomrule" in text
    assert "30.00 ± 10.00 (69.00)" in text
    assert all(line.startswith("%") for line in text.strip().splitlines()[-2:])


def test_a_warning_line_when_devices_differ(make_record) -> None:
    rows = [make_record(method="retrain", device_name="NVIDIA H100"),
            make_record(method="ft", device_name="cpu (x86_64)")]
    text = render(rows)
    assert "RTE was measured on different devices (NVIDIA H100; cpu (x86_64)): " \
           "do not compare RTE across them." in text
    assert "different devices" in render(rows, "latex")


def test_bad_format_and_no_records_are_config_errors(records) -> None:
    with pytest.raises(ConfigError, match="--format 'html' is invalid"):
        render(records, "html")
    with pytest.raises(ConfigError, match="no run records"):
        render([])


def test_one_device_whose_name_has_a_comma_is_one_device(make_record) -> None:
    name = "Intel64 Family 6 Model 85 Stepping 7, GenuineIntel"  # platform.processor() on Windows
    text = render([make_record(method="retrain", device_name=name), make_record(device_name=name)])
    assert f"RTE measured on {name}." in text and "different devices" not in text


def test_forgotten_class_is_named_when_any_record_knows_it(make_record) -> None:
    named = {**make_record().config, "forget_class_name": "airplane"}
    records = [make_record(method="retrain", config=named), make_record(method="ft", seed=0),
               make_record(method="ft", seed=1, config=named)]
    table = render(records)
    assert table.count("class:0 (airplane)") == 2 and not re.search(r"\| class:0 +\|", table)
    assert summarize(records)["n"].tolist() == [1, 2]  # old records without the name share the row


def test_probes_show_before_and_after_means(make_record) -> None:
    records = [make_record(method="ft", seed=s, forget="backdoor:0.1", scenario="backdoor",
                           probes={"ASR": {"before": 100.0, "after": a}}) for s, a in ((0, 40.0), (1, 60.0))]
    table = render(records)
    assert "ASR (before → after)" in table and "100.00 → 50.00" in table
