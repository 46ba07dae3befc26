"""The leaderboard's work column (optimizer steps beside RTE, as a share of Retrain's) and its
"no measurable unlearning" flag (every Disparity metric within seed noise of ``none``), from
hand-built records with hand-computed means and standard errors, and end to end on digits."""

from __future__ import annotations

import dataclasses
import io
import math

import pandas as pd
import pytest

from unlearnbench import UNLEARNERS, Unlearner, UnlearnerTags
from unlearnbench.cli import main
from unlearnbench.report.leaderboard import INERT, render, summarize, within_noise
from unlearnbench.report.records import Work, load_records

METRICS = ("UA", "MIA", "RA", "TA")


def _runs(make_record, method: str, values: dict[str, tuple[float, ...]], **fields) -> list:
    """One record per seed; ``values`` maps a metric to its per-seed values (others constant)."""
    seeds = len(next(iter(values.values())))
    base = dict(UA=10.0, MIA=20.0, RA=99.0, TA=90.0)
    return [make_record(method=method, seed=s, **{**base, **{m: v[s] for m, v in values.items()}},
                        **fields) for s in range(seeds)]


def _table(text: str) -> list[dict[str, str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]


def _verdicts(records) -> dict[str, str | None]:
    table = summarize(records)
    return {m: (None if pd.isna(v) else v) for m, v in zip(table["method"], table["inert"])}


# -- the noise rule, by hand -------------------------------------------------------------------
# none: UA 46, 54 (mean 50, var 32, se^2 = 16); a row at UA 57, 63 (mean 60, var 18, se^2 = 9):
# the bound is 2 * sqrt(9 + 16) = 10, and |60 - 50| = 10 is not below it.
NONE_UA = (46.0, 54.0)


def test_the_rule_at_its_boundary_computed_by_hand() -> None:
    assert not within_noise(60.0, 18.0, 2, 50.0, 32.0, 2, 2)  # |d| = 10 = 2 * sqrt(9 + 16)
    assert within_noise(59.5, 18.0, 2, 50.0, 32.0, 2, 2)  # 9.5 < 10
    assert within_noise(40.5, 18.0, 2, 50.0, 32.0, 2, 2)  # either side
    assert not within_noise(40.0, 18.0, 2, 50.0, 32.0, 2, 2)
    # more seeds, smaller standard errors: 4 seeds of var 16 on both sides -> 2 * sqrt(4 + 4)
    bound = 2 * math.sqrt(8)
    assert within_noise(bound - 1e-9, 16.0, 4, 0.0, 16.0, 4, 2)
    assert not within_noise(bound + 1e-9, 16.0, 4, 0.0, 16.0, 4, 2)


def test_one_seed_on_either_side_counts_only_equality_as_displayed() -> None:
    # a large spread on the other side makes no noise estimate out of one seed
    assert not within_noise(50.01, 0.0, 1, 50.0, 1e6, 5, 2)
    assert not within_noise(50.0, 1e6, 5, 50.01, 0.0, 1, 2)
    assert within_noise(50.004, 0.0, 1, 50.0, 0.0, 1, 2)  # both read 50.00
    assert not within_noise(50.004, 0.0, 1, 50.0, 0.0, 1, 3)  # 50.004 vs 50.000
    # zero spread on both sides: equal as shown is within noise, a shown difference is not
    assert within_noise(100.0, 0.0, 3, 100.0, 0.0, 3, 2)
    assert not within_noise(99.99, 0.0, 3, 100.0, 0.0, 3, 2)


def test_rows_are_flagged_only_when_every_disparity_metric_is_within_noise(make_record) -> None:
    records = [
        *_runs(make_record, "none", {"UA": NONE_UA}),
        *_runs(make_record, "retrain", {"UA": (99.0, 100.0)}),  # clearly different
        *_runs(make_record, "boundary", {"UA": (57.0, 63.0)}),  # |d| = 10: not flagged
        *_runs(make_record, "inside", {"UA": (56.5, 62.5)}),  # |d| = 9.5: flagged
        # UA within noise, TA 2 points off with no spread on either side: not flagged
        *_runs(make_record, "ta_off", {"UA": (55.0, 45.0), "TA": (92.0, 92.0)}),
        # RTE is no Disparity metric: however far off, the row is flagged
        *_runs(make_record, "slow", {"UA": NONE_UA, "RTE": (500.0, 900.0)}),
    ]
    assert _verdicts(records) == {"retrain": "no", "boundary": "no", "inside": "yes",
                                  "none": "baseline", "slow": "yes", "ta_off": "no"}
    rows = {r["method"]: r for r in _table(render(records))}
    assert rows["inside"]["vs none"] == rows["slow"]["vs none"] == INERT == "no measurable unlearning"
    assert rows["none"]["vs none"] == "baseline"
    assert rows["retrain"]["vs none"] == rows["boundary"]["vs none"] == "differs"
    assert list(rows["none"])[:5] == ["forget", "pruning", "method", "seeds", "vs none"]


def test_one_seed_rows_are_judged_by_the_shown_decimals(make_record) -> None:
    records = [*_runs(make_record, "none", {"UA": (50.0,)}),
               *_runs(make_record, "same", {"UA": (50.004,)}),  # 50.00 as shown
               *_runs(make_record, "near", {"UA": (50.01,)}),
               *_runs(make_record, "two_seeds", {"UA": (50.0, 50.0)})]  # one seed on none's side
    assert _verdicts(records) == {"none": "baseline", "same": "yes", "near": "no", "two_seeds": "yes"}


def test_rows_without_none_at_their_setting_are_not_judged(make_record) -> None:
    records = [*_runs(make_record, "none", {"UA": NONE_UA}),
               *_runs(make_record, "inside", {"UA": (56.5, 62.5)}),
               *_runs(make_record, "inside", {"UA": (56.5, 62.5)}, pruner="omp", target_sparsity=0.5),
               *_runs(make_record, "inside", {"UA": (56.5, 62.5)}, forget="random:0.1")]
    table = summarize(records)
    assert sorted((p, f, v) for p, f, v in zip(table["pruning"], table["forget"], table["inert"])
                  if not pd.isna(v)) == [("dense", "class:0", "baseline"), ("dense", "class:0", "yes")]
    text = render(records)
    assert [r["vs none"] for r in _table(text)].count("—") == 2
    assert "vs none: \"no measurable unlearning\"" in text and "< 2 · sqrt(se² + se(none)²)" in text
    assert "with one seed on either side" in text


def test_a_diverged_row_is_not_judged(make_record) -> None:
    records = [*_runs(make_record, "none", {"UA": NONE_UA}),
               make_record(method="ga", status="diverged",
                           metrics={m: None for m in ("UA", "MIA", "RA", "TA", "RTE")})]
    assert _verdicts(records) == {"none": "baseline", "ga": None}


def test_csv_has_the_verdict_and_latex_a_footnote_mark(make_record) -> None:
    records = [*_runs(make_record, "none", {"UA": NONE_UA}),
               *_runs(make_record, "inside", {"UA": (56.5, 62.5)}),
               *_runs(make_record, "retrain", {"UA": (99.0, 100.0)})]
    csv = pd.read_csv(io.StringIO(render(records, "csv"))).set_index("method")
    assert csv["inert"].to_dict() == {"retrain": "no", "none": "baseline", "inside": "yes"}
    latex = render(records, "latex")
    assert "inside†" in latex and "none (baseline)" in latex and "vs none" not in latex.split("%")[0]
    assert "% vs none: \"no measurable unlearning\" (LaTeX: † after the method)" in latex


def test_without_none_there_is_no_verdict(make_record) -> None:
    records = [*_runs(make_record, "retrain", {"UA": (99.0, 100.0)}),
               *_runs(make_record, "ft", {"UA": NONE_UA})]
    assert "inert" not in summarize(records).columns
    assert "vs none" not in render(records) and "inert" not in render(records, "csv")


# -- optimizer steps beside RTE ------------------------------------------------------------------
def _worked(record, steps: int):
    examples = {"forget": steps * 8, "retain": steps * 56}
    return dataclasses.replace(record, work=Work(optimizer_steps=steps, examples=examples))


def test_steps_follow_rte_with_their_share_of_retrains(make_record) -> None:
    records = [_worked(make_record(method="retrain", seed=s), steps) for s, steps in ((0, 2900), (1, 2900))]
    records += [_worked(make_record(method="ft", seed=s), steps) for s, steps in ((0, 600), (1, 680))]
    records += [_worked(make_record(method="ga", seed=0), 10)]
    records += [make_record(method="iu", seed=0)]  # an older record: no work counted
    text = render(records)
    header = [c.strip() for c in text.splitlines()[0].strip("|").split("|")]
    assert header[header.index("RTE (s)") + 1] == "steps"
    rows = {r["method"]: r for r in _table(text)}
    # ft: mean 640 of Retrain's 2900 = 22.07%; ga: 10 / 2900 = 0.34%
    assert rows["ft"]["steps"] == "640 (22% of Retrain)"
    assert rows["ga"]["steps"] == "10 (0.34% of Retrain)"
    assert rows["retrain"]["steps"] == "2900" and rows["iu"]["steps"] == "—"
    assert "steps: mean optimizer steps of the unlearning call over seeds" in text
    assert "1 of 6 runs did not count their work" in text
    csv = pd.read_csv(io.StringIO(render(records, "csv"))).set_index("method")
    assert csv.loc["ft", "work:steps_mean"] == 640.0
    assert csv.loc["ft", "work:steps_std"] == pytest.approx(math.sqrt(3200), abs=1e-4)
    assert csv.loc["ft", "work:steps_of_retrain"] == pytest.approx(640 / 2900, abs=1e-4)
    assert csv.loc["retrain", "work:steps_of_retrain"] == 1.0
    assert pd.isna(csv.loc["iu", "work:steps_mean"])
    assert "640 (22\\% of Retrain)" in render(records, "latex")


def test_steps_without_retrain_show_no_share(make_record) -> None:
    text = render([_worked(make_record(method="ft"), 640)])
    assert _table(text)[0]["steps"] == "640"


def test_records_without_work_have_no_steps(make_record) -> None:
    records = [make_record(method="retrain"), make_record(method="ft")]
    assert "steps" not in render(records) and "work:" not in render(records, "csv")


# -- end to end on digits ------------------------------------------------------------------------
class DoNothing(Unlearner):
    """Returns the model it was given: an unlearner that forgets nothing."""

    tags = UnlearnerTags(changes_model=False)

    def unlearn(self, model, task):
        return model


@pytest.fixture
def do_nothing():
    UNLEARNERS.register("do_nothing", DoNothing)
    yield "do_nothing"
    UNLEARNERS.unregister("do_nothing")


def test_digits_flags_a_do_nothing_method_and_not_retrain(do_nothing, tmp_path, shared_cache,
                                                          monkeypatch, capsys) -> None:
    monkeypatch.setenv("UNLEARNBENCH_DEVICE_DIR", str(tmp_path / "devices"))  # no waiting on others
    out = tmp_path / "out"
    for method, params in (("none", []), (do_nothing, []), ("retrain", ["-p", "epochs=1"])):
        assert main(["run", "--method", method, *params, "--dataset", "digits", "--train", "epochs=1",
                     "--seeds", "0,1", "--cache-dir", str(shared_cache), "--output", str(out)]) == 0
    capsys.readouterr()
    assert main(["leaderboard", str(out)]) == 0
    rows = {r["method"]: r for r in _table(capsys.readouterr().out)}
    assert {m: r["vs none"] for m, r in rows.items()} == {
        "retrain": "differs", "none": "baseline", do_nothing: "no measurable unlearning"}
    assert _verdicts(load_records(out)) == {"retrain": "no", "none": "baseline", do_nothing: "yes"}
