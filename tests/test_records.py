"""Run records: a JSON round trip, and precise errors for damaged or foreign files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unlearnbench import CorruptFileError, DataNotFoundError
from unlearnbench.report.records import LEGACY_DECLARATIONS, SCHEMA_VERSION, RunRecord, load_records


def as_schema_3(data: dict) -> dict:
    """A schema 4 record's data as a schema 3 record held it: the five built-in metrics as
    fixed fields, no declarations."""
    data = {**data, "schema_version": 3, "metrics": dict(data["metrics"])}
    del data["metric_declarations"]
    return data


def test_round_trip_through_json(make_record, tmp_path: Path) -> None:
    record = make_record(pruner="omp", target_sparsity=0.95)
    assert RunRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    path = tmp_path / "r.json"
    record.save(path)
    assert RunRecord.load(path) == record
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_optional_fields_may_be_absent_or_null(make_record) -> None:
    data = make_record().to_dict()
    del data["components"]  # has a default
    del data["timings"]["warmup_s"]
    del data["environment"]["compile"]
    record = RunRecord.from_dict(data)
    assert record.components == {} and record.timings.warmup_s == 0.0
    assert record.pruner is None and record.environment.cuda is None


def test_integers_are_accepted_where_floats_are_expected(make_record) -> None:
    data = make_record().to_dict()
    data["metrics"]["UA"] = 100  # json.dumps(100.0) is "100.0", but other writers may drop ".0"
    assert RunRecord.from_dict(data).metrics["UA"] == 100


@pytest.mark.parametrize("version", [None, 0, 7, "1", True])
def test_wrong_schema_version_is_refused(make_record, version) -> None:
    data = make_record().to_dict()
    data["schema_version"] = version
    with pytest.raises(CorruptFileError) as info:
        RunRecord.from_dict(data, "results/x.json")
    assert str(info.value).startswith("results/x.json: ")
    assert "schema_version" in str(info.value)


def test_missing_schema_version_is_refused(make_record) -> None:
    data = make_record().to_dict()
    del data["schema_version"]
    with pytest.raises(CorruptFileError, match="x.json: schema_version None is not supported"):
        RunRecord.from_dict(data, "x.json")


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("dataset"), "x.json: RunRecord lacks ['dataset']"),
    (lambda d: d["metrics"].pop("UA"), "x.json:metric_declarations:UA: declares a metric the record "
                                       "has no value of"),
    (lambda d: d["metric_declarations"].pop("UA"), "x.json: metric 'UA' has no entry in metric_declarations"),
    (lambda d: d.pop("metric_declarations"), "x.json: RunRecord lacks ['metric_declarations']"),
    (lambda d: d.update(colour="red"), "x.json: RunRecord has unknown fields ['colour']"),
    (lambda d: d["split"].update(extra=1), "x.json:split: SplitInfo has unknown fields ['extra']"),
    (lambda d: d.update(seed="0"), "x.json: field RunRecord.seed='0' is not"),
    (lambda d: d.update(seed=1.5), "x.json: field RunRecord.seed=1.5 is not"),
    (lambda d: d.update(seed=True), "x.json: field RunRecord.seed=True is not"),
    (lambda d: d["metrics"].update(RA="high"), "x.json: metric 'RA'='high' is not a number or null"),
    (lambda d: d["metrics"].update(RA=False), "x.json: metric 'RA'=False is not a number or null"),
    (lambda d: d["metric_declarations"]["RA"].update(unit=3),
     "x.json:metric_declarations:RA: field MetricDeclaration.unit=3 is not"),
    (lambda d: d["metric_declarations"]["RA"].pop("label"),
     "x.json:metric_declarations:RA: MetricDeclaration lacks ['label']"),
    (lambda d: d["metric_declarations"]["RA"].update(needs="daily"),
     "x.json:metric_declarations:RA: needs='daily' is invalid: expected one of trial, population"),
    (lambda d: d["metric_declarations"]["RA"].update(colour="red"),
     "x.json:metric_declarations:RA: MetricDeclaration has unknown fields ['colour']"),
    (lambda d: (d["metrics"].update({"a b": 1.0}), d["metric_declarations"].update({"a b": {"label": "x"}})),
     "x.json:metric_declarations:a b: metric name 'a b' is invalid"),
    (lambda d: (d["metrics"].update(sparsity=1.0), d["metric_declarations"].update(sparsity={"label": "x"})),
     "x.json:metric_declarations:sparsity: metric name 'sparsity' is taken by a column of the tables"),
    (lambda d: d["timings"].update(original_cached="yes"), "field Timings.original_cached='yes'"),
    (lambda d: d.update(pruner=3), "field RunRecord.pruner=3 is not"),
    (lambda d: d.update(config=[]), "field RunRecord.config=[] is not"),
    (lambda d: d.update(environment="cpu"), "x.json:environment: expected an object for Environment"),
])
def test_damaged_fields_are_named(make_record, edit, message: str) -> None:
    data = make_record().to_dict()
    edit(data)
    with pytest.raises(CorruptFileError) as info:
        RunRecord.from_dict(data, "x.json")
    assert message in str(info.value)


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"schema_version": 1, "run_id": ')  # a write cut short
    with pytest.raises(CorruptFileError, match="broken.json: not a readable JSON record"):
        RunRecord.load(path)
    path.write_text("[1, 2]")
    with pytest.raises(CorruptFileError, match="broken.json: schema_version None"):
        RunRecord.load(path)


def test_load_records_reads_a_folder_recursively_sorted_by_run_id(make_record, tmp_path: Path) -> None:
    records = [make_record(seed=2), make_record(seed=0, method="retrain"), make_record(seed=1)]
    for i, r in enumerate(records):
        r.save(tmp_path / f"batch{i % 2}" / f"{r.run_id}.json")
    (tmp_path / "notes.txt").write_text("not a record")
    loaded = load_records(tmp_path)
    assert [r.run_id for r in loaded] == sorted(r.run_id for r in records)
    assert all(r in records for r in loaded)
    assert {(r.method, r.seed) for r in loaded} == {("ft", 2), ("retrain", 0), ("ft", 1)}
    assert load_records(tmp_path / "batch0") and len(load_records(tmp_path / "batch0")) == 2


def test_load_records_names_a_bad_file_and_a_missing_folder(make_record, tmp_path: Path) -> None:
    make_record().save(tmp_path / "good.json")
    (tmp_path / "bad.json").write_text('{"schema_version": 2}')  # claims to be a record
    with pytest.raises(CorruptFileError, match="bad.json"):
        load_records(tmp_path)
    with pytest.raises(DataNotFoundError, match="results folder .*nowhere does not exist"):
        load_records(tmp_path / "nowhere")


def test_version_1_records_read_as_having_no_probes(make_record) -> None:
    data = as_schema_3(make_record().to_dict())
    data["schema_version"] = 1
    del data["probes"]
    record = RunRecord.from_dict(data)
    assert record.probes == {} and record.schema_version == SCHEMA_VERSION


def test_malformed_probe_is_refused(make_record) -> None:
    data = make_record().to_dict()
    data["probes"] = {"ASR": {"before": "high"}}
    with pytest.raises(CorruptFileError, match="probe 'ASR'"):
        RunRecord.from_dict(data, "x.json")


# -- schema 4: metrics by name, with their declarations; older schemas convert ----------------------
def test_a_record_holds_any_metric_with_its_declaration(make_record) -> None:
    data = make_record().to_dict()
    data["metrics"]["forget_loss"] = 0.25
    data["metric_declarations"]["forget_loss"] = {"label": "forget loss", "unit": "nats",
                                                  "higher_is_better": True}
    record = RunRecord.from_dict(data)
    assert record.metrics["forget_loss"] == 0.25
    declared = record.metric_declarations["forget_loss"]
    assert (declared.label, declared.unit, declared.in_disparity, declared.order) == ("forget loss", "nats", False, 100)
    assert RunRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record


def test_schema_3_records_read_as_the_five_metrics_with_their_declarations(make_record) -> None:
    record = make_record(UA=12.5, RTE=3.0)
    old = RunRecord.from_dict(as_schema_3(record.to_dict()))
    assert old.metrics == {"UA": 12.5, "MIA": 20.0, "RA": 99.0, "TA": 90.0, "RTE": 3.0}
    assert old.metric_declarations == LEGACY_DECLARATIONS
    assert old.schema_version == SCHEMA_VERSION and old.identity == record.identity
    assert old == record  # the built-ins declare what schema 3 records meant


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["metrics"].pop("UA"), "x.json:metrics: LegacyMetricValues lacks ['UA']"),
    (lambda d: d["metrics"].update(extra=1.0), "x.json:metrics: LegacyMetricValues has unknown fields ['extra']"),
    (lambda d: d["metrics"].update(RTE=None), "x.json:metrics: field LegacyMetricValues.RTE=None is not"),
    (lambda d: d.update(metric_declarations={}), "x.json: a schema 3 record has no metric_declarations"),
])
def test_damaged_schema_3_metrics_are_named(make_record, edit, message: str) -> None:
    data = as_schema_3(make_record().to_dict())
    edit(data)
    with pytest.raises(CorruptFileError) as info:
        RunRecord.from_dict(data, "x.json")
    assert message in str(info.value)


def test_the_metric_summary_follows_the_declarations(make_record) -> None:
    record = make_record(UA=12.345, MIA=20.0, RA=99.0, TA=90.5, RTE=1.5)
    assert record.metric_summary() == "UA 12.35  MIA-Efficacy 20.00  RA 99.00  TA 90.50  RTE 1.50s"
    diverged = make_record(status="diverged", metrics={k: None for k in record.metrics})
    assert diverged.metric_summary() == "DIVERGED  unlearning took 1.50s"
