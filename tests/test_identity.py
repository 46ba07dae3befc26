"""A trial's identity: what changes it and what does not; records, resume and leaderboard rows
follow it, and records written before identities existed still load with a derived one."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from unlearnbench import DATASETS, UNLEARNERS, ConfigError, CorruptFileError, Unlearner, param
from unlearnbench.cli import main
from unlearnbench.datasets.synthetic import Synthetic
from unlearnbench.report import records as records_module
from unlearnbench.report.leaderboard import render, summarize
from unlearnbench.run.provenance import planned_run_id
from unlearnbench.report.records import DuplicateRecordWarning, RunRecord, load_records
from unlearnbench.run import identity as identity_module
from unlearnbench.run.config import RunConfig, prepare
from unlearnbench.identity import config_identity, trial_identity
from unlearnbench.run.identity import planned_identity, recorded, resolved_config
from unlearnbench.run.recipes import load_recipe, pending, reproduce
from unlearnbench.run.api import run_trials

LEADERBOARD = Path(__file__).resolve().parent.parent / "leaderboard"


class FileBacked(Synthetic):
    """Synthetic data that claims to read the ``*.bin`` files under its root."""

    def data_files(self, root: Path) -> list[Path]:
        return sorted(root.glob("*.bin"))


class Knob(Unlearner):
    strength: float = param(0.5, ge=0)

    def unlearn(self, model, task):
        return model


class KnobNewDefault(Knob):
    strength: float = param(0.7, ge=0)  # a release that changed the default


@pytest.fixture
def components():
    DATASETS.register("identity_files", FileBacked)
    UNLEARNERS.register("identity_knob", Knob)
    yield
    DATASETS.unregister("identity_files")
    UNLEARNERS.unregister("identity_knob")


BASE = dict(method="ft", dataset="synthetic", arch="tiny_cnn", device="cpu")


def _ids(**changes) -> tuple[str, str]:
    """(trial identity of seed 0, config identity) of BASE with ``changes``."""
    seed = changes.pop("seed", 0)
    resolved = resolved_config(prepare(RunConfig(**{**BASE, **changes})))
    return trial_identity(resolved, seed), config_identity(resolved)


@pytest.mark.parametrize("changes", [
    {"method_params": {"lr": 0.05}},
    {"method_params": {"epochs": 3}},
    {"method": "ga"},
    {"dataset_params": {"noise": 40.0}},
    {"arch": "small_cnn"},
    {"train_params": {"epochs": 2}},
    {"forget": "class:1"},
    {"forget": "random:0.1"},
    {"val_fraction": 0.2},
    {"train_size": 100},
    {"test_size": 50},
    {"pruner": "omp", "sparsity": 0.5},
    {"precision": "bf16"},
    {"compile": "default"},
    {"probes": {"transfer": {"dataset": "synthetic"}}},
], ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_what_can_change_a_metric_changes_the_identity(changes) -> None:
    trial, config = _ids()
    changed_trial, changed_config = _ids(**changes)
    assert changed_trial != trial and changed_config != config


def test_pruner_parameters_sparsity_and_transfer_parameters_are_in_it() -> None:
    omp = dict(pruner="omp", sparsity=0.5)
    assert len({_ids(**omp), _ids(**omp, pruner_params={"rewind": "none"}),
                _ids(pruner="omp", sparsity=0.6)}) == 3
    transfer = {"dataset": "synthetic"}
    assert _ids(probes={"transfer": transfer}) != _ids(probes={"transfer": {**transfer, "noise": 10.0}})


def test_the_seed_changes_the_trial_but_not_the_configuration() -> None:
    (trial0, config0), (trial1, config1) = _ids(seed=0), _ids(seed=1)
    assert trial0 != trial1 and config0 == config1


def test_code_formats_are_in_it_but_not_the_record_layout(monkeypatch) -> None:
    before = _ids()
    monkeypatch.setattr(records_module, "SCHEMA_VERSION", 99)  # a new layout of the same measurements
    assert _ids() == before
    monkeypatch.setattr(identity_module, "CACHE_FORMAT", 99)
    cache_bumped = _ids()
    monkeypatch.setattr(identity_module, "MEASUREMENT_FORMAT", 99)
    assert len({before, cache_bumped, _ids()}) == 3


def test_defaults_are_part_of_it(components) -> None:
    spelled_out = _ids(method="identity_knob", method_params={"strength": 0.5})
    assert _ids(method="identity_knob") == spelled_out  # the default, written or not: one trial
    assert _ids(method="identity_knob", method_params={"strength": "0.5"}) == spelled_out  # -p form
    UNLEARNERS.unregister("identity_knob")
    UNLEARNERS.register("identity_knob", KnobNewDefault)
    assert _ids(method="identity_knob") != spelled_out


def test_what_cannot_change_a_metric_leaves_it(tmp_path: Path) -> None:
    same = _ids()
    assert _ids(output_dir=tmp_path / "elsewhere", cache_dir=tmp_path / "cache") == same
    assert _ids(label="ft-variant") == same  # a display name
    assert _ids(download=True, data_root=tmp_path) == same  # no files read: the root is no data
    assert _ids(train_params={"epochs": 15}) == same  # synthetic's recipe: 15 epochs already
    assert _ids(method_params={"lr": 0.01}) == same  # ft's default
    assert _ids(precision="fp32") == same  # what "auto" resolves to on the CPU
    if not torch.cuda.is_available():
        assert _ids(device="auto") == same


def test_the_data_files_are_in_it_but_not_where_they_are(tmp_path: Path, components) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "train.bin").write_bytes(b"x" * 100)

    def ids(where: Path) -> tuple[str, str]:
        return _ids(dataset="identity_files", data_root=where)

    first = ids(root)
    os.utime(root / "train.bin", ns=(1, 1))  # touched, or copied without its times
    shutil.copytree(root, tmp_path / "copy")
    assert ids(root) == ids(tmp_path / "copy") == first
    (root / "train.bin").write_bytes(b"x" * 101)
    assert ids(root) != first
    (root / "train.bin").write_bytes(b"x" * 100)
    (root / "test.bin").write_bytes(b"y")
    assert ids(root) != first


def test_the_file_name_is_a_readable_prefix_and_a_short_hash() -> None:
    plan = prepare(RunConfig(**BASE, label="ft-fast", train_size=100))
    identity = planned_identity(plan, 3)
    assert planned_run_id(plan, 3) == f"synthetic-tiny_cnn-class_0-ft-fast-dense-n100-seed3-{identity[:12]}"
    other = prepare(RunConfig(**BASE, label="ft-fast", train_size=100, method_params={"lr": 0.05}))
    assert planned_run_id(other, 3) != planned_run_id(plan, 3)


# -- records ---------------------------------------------------------------------------------
def test_a_hand_edited_record_is_refused_and_does_not_count_as_done(make_record, tmp_path) -> None:
    record = make_record()
    path = tmp_path / f"{record.run_id}-{record.identity[:12]}.json"
    record.save(path)
    assert RunRecord.load(path) == record and recorded(tmp_path, record.identity)
    data = json.loads(path.read_text())
    data["resolved"]["method_params"]["lr"] = 0.5
    path.write_text(json.dumps(data))
    with pytest.raises(CorruptFileError, match="does not match the record's configuration"):
        RunRecord.load(path)
    assert not recorded(tmp_path, record.identity)
    renamed = tmp_path / "renamed.json"
    record.save(renamed)
    path.unlink()
    assert not recorded(tmp_path, record.identity)  # the name must carry the hash


@pytest.mark.parametrize("schema", [3, 4])
def test_a_record_without_its_identity_is_refused(make_record, schema) -> None:
    data = make_record().to_dict()
    data["schema_version"] = schema
    del data["identity"]
    with pytest.raises(CorruptFileError, match=f"x.json: a schema {schema} record needs identity"):
        RunRecord.from_dict(data, "x.json")


def test_a_schema_3_record_of_the_same_trial_counts_as_done(tmp_path, shared_cache) -> None:
    """Schema 4 changed how records hold metrics, not what a trial measures: a finished trial
    recorded by the previous release is not run again."""
    config = RunConfig(**BASE, method_params={"epochs": 1}, train_params={"epochs": 2},
                       cache_dir=shared_cache, output_dir=tmp_path)
    [record] = run_trials(config)
    path = tmp_path / f"{record.run_id}.json"
    data = json.loads(path.read_text())
    assert data["schema_version"] == 6 and {"UA", "MIA", "RA", "TA", "RTE"} <= set(data["metrics"])
    data["schema_version"] = 3  # what the previous release wrote: the same fields, no declarations
    del data["metric_declarations"], data["work"]  # nor the work counts of schema 5
    data["metrics"] = {k: data["metrics"][k] for k in ("UA", "MIA", "RA", "TA", "RTE")}
    path.write_text(json.dumps(data))
    [old] = load_records(tmp_path)
    assert old.identity == record.identity == planned_identity(prepare(config), 0)
    assert old.resolved["record_schema"] == identity_module.MEASUREMENT_FORMAT == 4
    assert recorded(tmp_path, record.identity) and pending([config], tmp_path)[0].seeds == ()


# records as earlier releases wrote them: a committed board's, or (schema 2, whose board has been
# rerun since) the FT records of the first gamma-schedules board, kept under tests/legacy/
LEGACY = Path(__file__).resolve().parent / "legacy"


@pytest.mark.parametrize("folder, schema", [(LEGACY / "schema-2", 2), (LEADERBOARD / "digits-main-grid", 1)])
def test_legacy_records_load_with_an_identity_derived_from_their_config(folder, schema) -> None:
    paths = sorted((folder / "records").glob("*-ft-dense*.json"))
    assert paths, f"the committed {folder} records are missing"
    stored = json.loads(paths[0].read_text())
    assert stored["schema_version"] == schema and "identity" not in stored
    records = [RunRecord.load(p) for p in paths]
    first = records[0]
    assert first.resolved["record_schema"] == schema and first.resolved["data"] == "?"
    assert first.resolved["method_params"] == stored["config"]["method_params"]
    assert first.identity == trial_identity(first.resolved, first.seed)
    assert first.config_identity == config_identity(first.resolved)
    same_config = [r for r in records if r.forget == first.forget]
    assert len({r.config_identity for r in same_config}) == 1 < len({r.identity for r in same_config})
    assert RunRecord.from_dict(json.loads(json.dumps(first.to_dict()))) == first  # as schema 4


def test_the_same_trial_twice_in_a_folder_keeps_the_newer_and_says_so(make_record, tmp_path,
                                                                       capsys) -> None:
    old = make_record(created="2024-01-01T00:00:00+00:00", UA=10.0)
    new = dataclasses.replace(old, created="2024-02-01T00:00:00+00:00", metrics={**old.metrics, "UA": 30.0})
    old.save(tmp_path / "a" / "old.json")
    new.save(tmp_path / "b" / "new.json")
    with pytest.warns(DuplicateRecordWarning, match=r"recorded twice: using .*new.json .*ignoring "
                                                     r".*old.json"):
        [kept] = load_records(tmp_path)
    assert kept.metrics["UA"] == 30.0
    assert main(["leaderboard", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("unlearnbench: warning: trial ") and "recorded twice" in err


# -- leaderboard -----------------------------------------------------------------------------
def test_configurations_of_one_method_are_rows_labelled_by_what_differs(make_record) -> None:
    """The issue's example: ft with epochs 1/10/10 and fp32/bf16 is three rows, not "3 seeds"."""
    def ft(epochs: int, precision: str, seed: int = 0, **metrics):
        record = make_record(method="ft", seed=seed, **metrics)
        return make_record(method="ft", seed=seed, config={**record.config, "method_params": {
            "epochs": epochs, "lr": 0.01}}, environment=dataclasses.replace(
                record.environment, precision=precision), **metrics)

    records = [make_record(method="retrain", UA=100.0), ft(1, "fp32", UA=20.0), ft(10, "fp32", UA=40.0),
               ft(10, "bf16", UA=60.0), ft(10, "bf16", seed=1, UA=80.0)]
    table = summarize(records)
    rows = dict(zip(table["method"], zip(table["n"], table["UA_mean"], table["UA_gap"])))
    assert set(rows) == {"retrain", "ft (epochs=1, precision=fp32)", "ft (epochs=10, precision=fp32)",
                         "ft (epochs=10, precision=bf16)"}
    assert rows["ft (epochs=1, precision=fp32)"][:2] == (1, 20.0)
    assert rows["ft (epochs=10, precision=bf16)"][:2] == (2, 70.0)
    assert rows["ft (epochs=10, precision=fp32)"][2] == 60.0  # Retrain ran in fp32
    assert pd_isna(rows["ft (epochs=10, precision=bf16)"][2])  # no Retrain in bf16: no gap
    assert "| ft (epochs=10, precision=bf16) " in render(records)


def pd_isna(value) -> bool:
    return value != value


def test_records_of_other_decoded_data_or_other_code_are_never_averaged_silently(make_record) -> None:
    a, b = make_record(seed=0, UA=10.0), make_record(seed=1, UA=30.0)
    assert summarize([a, b])["n"].tolist() == [2]
    other_data = dataclasses.replace(b, data_hash="feedfacefeedface")
    labels = summarize([dataclasses.replace(a, data_hash="0123456789abcdef"), other_data])["method"]
    assert sorted(labels) == ["ft (data_hash=01234567)", "ft (data_hash=feedface)"]
    newer = dataclasses.replace(b, environment=dataclasses.replace(b.environment, unlearnbench="0.2.0"))
    text = render([a, newer])
    assert "ft (dense, class:0) averages records made by different code: unlearnbench 0.1.0 / " \
           "unlearnbench 0.2.0." in text


# -- the command line and recipes ------------------------------------------------------------
def test_two_learning_rates_give_two_records_and_two_rows(capsys, shared_cache, tmp_path) -> None:
    out = tmp_path / "out"
    for lr in ("0.01", "0.05"):
        assert main(["run", "--method", "ft", "-p", f"lr={lr}", "-p", "epochs=1", "--dataset",
                     "synthetic", "--train", "epochs=2", "--cache-dir", str(shared_cache),
                     "--output", str(out), "--device", "cpu"]) == 0
    table = capsys.readouterr().out.split("records in")[-1]
    records = load_records(out)
    assert len(list(out.glob("*.json"))) == len(records) == 2
    assert sorted(r.config["method_params"]["lr"] for r in records) == [0.01, 0.05]
    rows = [line for line in table.splitlines() if "| ft" in line]
    assert len(rows) == 2 and "| ft (lr=0.01) " in rows[0] and "| ft (lr=0.05) " in rows[1]


GRID = """
description = "one Retrain and one FT cell"
paper = "none"

[run]
dataset = "synthetic"
arch = "tiny_cnn"
train = { epochs = 3 }

[grid]
method = ["retrain", { method = "ft", label = "ft-short", params = { epochs = EPOCHS } }]
pruning = ["dense"]
forget = ["class:1"]
"""


def test_a_changed_recipe_reruns_exactly_its_changed_cells(tmp_path, shared_cache) -> None:
    def run(epochs: int) -> dict:
        path = tmp_path / "grid.toml"
        path.write_text(GRID.replace("EPOCHS", str(epochs)))
        return reproduce(load_recipe(path), output=tmp_path / "out", seeds=(0, 1),
                         cache_dir=shared_cache, device="cpu", log=lambda m: None, plots=False)

    assert run(1)["ran"] == 4
    folder = tmp_path / "out" / "records"
    stamps = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert run(1)["ran"] == 0  # nothing changed: nothing runs
    assert run(2)["ran"] == 2  # the FT cell, both seeds; Retrain is untouched
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    records = load_records(folder)
    assert len(records) == 6
    assert {r.label or r.method for r in records} == {"retrain", "ft-short"}
    table = (tmp_path / "out" / "table.md").read_text()
    assert "| ft-short (epochs=1) " in table and "| ft-short (epochs=2) " in table

    configs = load_recipe(tmp_path / "grid.toml").configs(seeds=(0, 1, 2), cache_dir=shared_cache,
                                                         device="cpu")
    assert [c.seeds for c in pending(configs, folder)] == [(2,), (2,)]


def test_records_from_an_earlier_version_never_count_as_done(tmp_path, shared_cache) -> None:
    config = RunConfig(**BASE, cache_dir=shared_cache)
    resolved = resolved_config(prepare(config))
    legacy = json.loads(next((LEADERBOARD / "digits-main-grid" / "records").glob("*.json")).read_text())
    for name in ("method", "dataset", "arch", "forget"):
        legacy[name] = getattr(config, name)
    legacy.update(seed=0, pruner=None, target_sparsity=None,
                  run_id=planned_run_id(prepare(config), 0))
    legacy["config"].update(method_params=resolved["method_params"], recipe=resolved["recipe"])
    (tmp_path / f"{legacy['run_id']}.json").write_text(json.dumps(legacy))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        [loaded] = load_records(tmp_path)
    assert loaded.identity != trial_identity(resolved, 0)
    assert pending([config], tmp_path)[0].seeds == (0,)


def test_a_recipe_with_two_labels_for_one_configuration_is_refused(tmp_path) -> None:
    path = tmp_path / "twins.toml"
    path.write_text(GRID.replace("EPOCHS", "10").replace('"retrain", ', '"ft", '))  # 10: ft's default
    with pytest.raises(ConfigError, match="grid entries 'ft dense class:1' and 'ft-short dense "
                                          "class:1' are the same configuration"):
        load_recipe(path).configs()
