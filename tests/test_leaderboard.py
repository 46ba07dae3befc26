"""Leaderboard numbers from hand-built records, checked against hand-computed values."""

from __future__ import annotations

import io
import re
import math
from pathlib import Path

import pandas as pd
import pytest

from unlearnbench import ConfigError
from unlearnbench.report.leaderboard import render, summarize
from unlearnbench.report.records import SCHEMA_VERSION, load_records

LEADERBOARD = Path(__file__).resolve().parents[1] / "leaderboard"

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


# -- columns follow the metrics' declarations ----------------------------------------------------
TOP5 = dict(label="UA top-5", in_disparity=True, order=45, description="100 - top-5 accuracy")
LOSS = dict(label="forget loss", unit="nats", decimals=3, description="forget-set cross-entropy")


@pytest.fixture
def plugin_records(records, add_metric):
    """RUNS with two plugin metrics: UA top-5 = UA / 2 (in Disparity), forget loss = RTE / 10."""
    return [add_metric(add_metric(r, "UA_top5", r.metrics["UA"] / 2, **TOP5),
                       "forget_loss", r.metrics["RTE"] / 10, **LOSS) for r in records]


def test_a_plugin_metric_is_a_column_and_enters_disparity_iff_it_declares_so(plugin_records) -> None:
    text = render(plugin_records, "markdown")
    header = [c.strip() for c in text.splitlines()[0].strip("|").split("|")]
    assert header[4:] == ["UA", "MIA-Efficacy", "RA", "TA", "UA top-5", "Disparity Ave.", "RTE (s)",
                          "forget loss (nats)", "sparsity"]
    ft_dense = next(line for line in text.splitlines() if "| dense " in line and "| ft " in line)
    cells = dict(zip(header, (c.strip() for c in ft_dense.strip("|").split("|"))))
    # ft: UA 20, 30, 40 -> top-5 10, 15, 20; retrain: 100, 98 -> 50, 49; gap |15 - 49.5| = 34.5
    assert cells["UA top-5"] == "15.00 ± 5.00 (34.50)"
    assert cells["Disparity Ave."] == "25.30"  # (69 + 18 + 1 + 4 + 34.5) / 5; not the loss
    assert cells["forget loss (nats)"] == "0.300 ± 0.100"  # RTE 2, 3, 4 s / 10; no gap
    assert "Disparity Ave. = mean of the five gaps." in text

    csv = pd.read_csv(io.StringIO(render(plugin_records, "csv")))
    ft = _row(csv, "ft", "dense")
    assert ft["UA_top5_gap"] == 34.5 and ft["forget_loss_mean"] == pytest.approx(0.3)
    assert "forget_loss_gap" not in csv.columns and ft["disparity"] == pytest.approx(25.3)


def test_records_without_a_metric_show_a_dash_and_no_disparity(records, add_metric) -> None:
    mixed = [add_metric(r, "UA_top5", 1.0, **TOP5) if r.method == "ft" else r for r in records]
    text = render(mixed)
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()[2:]
            if line.startswith("|")]
    retrain, ft = (next(r for r in rows if r[1] == "dense" and r[2] == m) for m in ("retrain", "ft"))
    assert retrain[8] == "—" and ft[8] == "1.00 ± 0.00"  # no Retrain value: no gap either
    assert ft[9] == "—"  # Disparity Ave. needs every gap


def test_without_disparity_metrics_there_is_no_disparity_column(make_record) -> None:
    from unlearnbench import METRICS
    rte = {"RTE": METRICS.get("RTE").declaration()}
    rows = [make_record(method=m, metrics={"RTE": 2.0}, metric_declarations=rte)
            for m in ("retrain", "ft")]
    text = render(rows)
    assert text.splitlines()[0].split("|")[5:8] == [" RTE (s)   ", " sparsity   ", ""]
    assert "Disparity" not in text and "Cells: mean ± std over seeds.\n" in text
    assert "disparity" not in summarize(rows).columns


def test_population_metrics_are_no_columns(records, add_metric) -> None:
    audited = [add_metric(r, "klom", 0.5, label="KLoM", needs="population") for r in records]
    assert render(audited) == render(records)


@pytest.mark.parametrize("folder", sorted(p.parent.name for p in LEADERBOARD.glob("*/table.md")
                                          if not (p.parent / "audit.json").is_file()))
def test_the_committed_tables_render_exactly_as_committed(folder: str) -> None:
    """Records of every schema, read as the current one, give the committed tables byte for byte
    (those of schemas 1 and 2 count no work and hold no `none` row: no steps column, no "vs none")."""
    records = load_records(LEADERBOARD / folder / "records")
    assert records and all(r.schema_version == SCHEMA_VERSION for r in records)
    assert (LEADERBOARD / folder / "table.md").read_text().endswith(render(records))
