"""Run records: a JSON round trip, and precise errors for damaged or foreign files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unlearnbench import CorruptFileError, DataNotFoundError
from unlearnbench.report.records import SCHEMA_VERSION, RunRecord, load_records


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
    assert RunRecord.from_dict(data).metrics.UA == 100


@pytest.mark.parametrize("version", [None, 0, 4, "1", True])
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
    (lambda d: d["metrics"].pop("UA"), "x.json:metrics: MetricValues lacks ['UA']"),
    (lambda d: d.update(colour="red"), "x.json: RunRecord has unknown fields ['colour']"),
    (lambda d: d["split"].update(extra=1), "x.json:split: SplitInfo has unknown fields ['extra']"),
    (lambda d: d.update(seed="0"), "x.json: field RunRecord.seed='0' is not"),
    (lambda d: d.update(seed=1.5), "x.json: field RunRecord.seed=1.5 is not"),
    (lambda d: d.update(seed=True), "x.json: field RunRecord.seed=True is not"),
    (lambda d: d["metrics"].update(RA="high"), "x.json:metrics: field MetricValues.RA='high' is not"),
    (lambda d: d["metrics"].update(RA=False), "x.json:metrics: field MetricValues.RA=False is not"),
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
    data = make_record().to_dict()
    data["schema_version"] = 1
    del data["probes"]
    record = RunRecord.from_dict(data)
    assert record.probes == {} and record.schema_version == SCHEMA_VERSION


def test_malformed_probe_is_refused(make_record) -> None:
    data = make_record().to_dict()
    data["probes"] = {"ASR": {"before": "high"}}
    with pytest.raises(CorruptFileError, match="probe 'ASR'"):
        RunRecord.from_dict(data, "x.json")
