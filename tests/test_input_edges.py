"""Reliability at the edges: seeds, recipe and audit files of the wrong types, damaged records,
environment variables, a full cache disk, provenance of plugins, device sharing across
unrelated processes and images of the wrong size. Each is one error line before any training
(or, after it, one line that says where things are)."""

from __future__ import annotations

import errno
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from unlearnbench.cli import main
from unlearnbench.errors import ConfigError, CorruptFileError
from unlearnbench.report.records import RunRecord

FAST = ["--train", "epochs=2"]


def _error_line(capsys: pytest.CaptureFixture, argv: list[str], code: int = 2) -> str:
    """Run the CLI in-process: it must exit with ``code`` and end in one clean error line."""
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("unlearnbench: error: ")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    return errors[0].removeprefix("unlearnbench: error: ")


def _run_args(tmp_path: Path, *args: str, cache: Path | None = None) -> list[str]:
    return ["run", "--dataset", "synthetic", "--cache-dir", str(cache or tmp_path / "cache"),
            "--output", str(tmp_path / "out"), *args]


def _nothing_trained(tmp_path: Path) -> None:
    assert not (tmp_path / "cache" / "originals").exists()
    assert not list((tmp_path / "out").glob("*.json"))


# -- seeds -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, problem", [
    ("1,,2", "expected comma-separated integers"),
    ("0,", "expected comma-separated integers"),
    ("-1", "seed -1 is out of range; expected integers 0 to 2147483647"),
    ("99999999999999999999", "seed 99999999999999999999 is out of range; expected integers 0 to 2147483647"),
    ("2147483648", "seed 2147483648 is out of range"),
])
def test_bad_seeds_are_refused_before_training(capsys, tmp_path: Path, text: str, problem: str) -> None:
    message = _error_line(capsys, _run_args(tmp_path, "--method", "ft", f"--seeds={text}"))
    assert message.startswith(f"--seeds {text!r} is invalid: ") and problem in message
    _nothing_trained(tmp_path)


def test_the_largest_seed_is_accepted_and_tuning_seeds_name_their_flag() -> None:
    from unlearnbench.cli import _seeds

    assert _seeds("0, 2147483647") == (0, 2147483647)
    with pytest.raises(ConfigError, match=r"^--seeds is empty: expected at least one seed"):
        _seeds(" , ")
    with pytest.raises(ConfigError, match=r"^--tuning-seeds '0,' is invalid"):
        _seeds("0,", "--tuning-seeds")


# -- recipe and audit files of the wrong types -------------------------------------------------

RECIPE = """
description = "tiny"
paper = "none"

[run]
dataset = "synthetic"
arch = "tiny_cnn"
{run}

[grid]
method = ["retrain"]
pruning = ["dense"]
forget = {forget}
"""


@pytest.mark.parametrize("line, shown", [
    ('train_size = "many"', 'train_size = "many" is invalid: expected a positive number of images'),
    ('val_fraction = "lots"', 'val_fraction = "lots" is invalid: expected a number in [0, 1)'),
    ("val_fraction = 1.5", "val_fraction = 1.5 is invalid: expected a number in [0, 1)"),
    ("test_size = 0", "test_size = 0 is invalid"),
    ("train_size = true", "train_size = true is invalid"),
    ('dataset_params = "x"', 'dataset_params = "x" is invalid: expected a table'),
    ("probes = 3", "probes = 3 is invalid: expected a table of probe names"),
    ("probes = { fake = 1 }", "is invalid: expected a table of probe names"),
    ("train = [3]", "train = [3] is invalid: expected a table"),
    ("pruner_params = 2", "pruner_params = 2 is invalid"),
])
def test_a_recipe_field_of_the_wrong_type_is_one_line(capsys, tmp_path: Path, line: str, shown: str) -> None:
    (tmp_path / "my.toml").write_text(RECIPE.format(run=line, forget='["class:0"]'))
    message = _error_line(capsys, ["reproduce", str(tmp_path / "my.toml"), "--dry-run",
                                   "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")])
    assert message.startswith("recipe 'my' [run]: ") and shown in message


@pytest.mark.parametrize("field, value", [("arch", "5"), ("dataset", "7")])
def test_a_name_that_is_a_number_is_one_line(capsys, tmp_path: Path, field: str, value: str) -> None:
    text = RECIPE.format(run="", forget='["class:0"]').replace(f'{field} = "', f'{field} = {value} # "')
    (tmp_path / "my.toml").write_text(text)
    message = _error_line(capsys, ["reproduce", str(tmp_path / "my.toml"), "--dry-run",
                                   "--output", str(tmp_path / "out")])
    assert message == f"recipe 'my' [run]: {field} = {value} is invalid: expected " \
                      f"{'an architecture' if field == 'arch' else 'a dataset'} name"


@pytest.mark.parametrize("grid, shown", [
    ('forget = [0]', "forget entry 0 is invalid: expected a forget spec"),
    ('method = [5]', "grid method entry 5 is invalid"),
    ('method = [{method = 5}]', "grid method entry {'method': 5} is invalid"),
    ('method = [{method = "ft", params = 3}]', "is invalid"),
    ('pruning = [0.5]', "pruning entry 0.5 is invalid"),
])
def test_a_grid_entry_of_the_wrong_type_is_one_line(capsys, tmp_path: Path, grid: str, shown: str) -> None:
    key = grid.split(" = ")[0]
    text = RECIPE.format(run="", forget='["class:0"]')
    text = "\n".join(grid if line.startswith(f"{key} = ") else line for line in text.splitlines())
    (tmp_path / "my.toml").write_text(text)
    message = _error_line(capsys, ["reproduce", str(tmp_path / "my.toml"), "--dry-run",
                                   "--output", str(tmp_path / "out")])
    assert shown in message


def test_run_config_fields_are_checked_by_prepare(tmp_path: Path) -> None:
    from unlearnbench.run.config import RunConfig, prepare

    base = dict(method="ft", dataset="synthetic", output_dir=tmp_path / "out", cache_dir=tmp_path / "c")
    for field, value, expected in (("val_fraction", "lots", "a number in [0, 1)"),
                                   ("val_fraction", float("nan"), "a number in [0, 1)"),
                                   ("train_size", 2.5, "a positive number of images"),
                                   ("seeds", (-1,), "integers 0 to 2147483647"),
                                   ("forget", 0, "a string"),
                                   ("train_params", [3], "a table"),
                                   ("probes", {"x": 1}, "a table of probe names")):
        with pytest.raises(ConfigError, match="^" + field) as caught:
            prepare(RunConfig(**{**base, field: value}))
        assert expected in str(caught.value)


AUDIT = """
description = "tiny"
[run]
dataset = "synthetic"
arch = "tiny_cnn"
{run}
[audit]
metrics = ["klom"]
method = ["ft"]
models = 2
{audit}
"""


@pytest.mark.parametrize("run, audit, shown", [
    ('train_size = "many"', "", "[run]: train_size = \"many\" is invalid"),
    ('val_fraction = "lots"', "", "[run]: val_fraction = \"lots\" is invalid"),
    ("", 'seed = "s"', "[audit]: seed = \"s\" is invalid"),
    ("", "seed = -1", "[audit]: seed = -1 is invalid"),
    ("", 'forget = "x"', "[audit]: forget = \"x\" is invalid"),
    ("", "oracle = 3", "[audit]: oracle = 3 is invalid"),
    ("", 'pruning = "dense"', "[audit]: pruning = \"dense\" is invalid"),
])
def test_an_audit_field_of_the_wrong_type_is_one_line(capsys, tmp_path: Path, run: str, audit: str,
                                                       shown: str) -> None:
    text = AUDIT.format(run=run, audit=audit)
    (tmp_path / "my.toml").write_text(text)
    message = _error_line(capsys, ["audit", str(tmp_path / "my.toml"), "--dry-run",
                                   "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c")])
    assert message.startswith("audit 'my' ") and shown in message


def test_an_audit_models_count_of_the_wrong_type(capsys, tmp_path: Path) -> None:
    (tmp_path / "my.toml").write_text(AUDIT.format(run="", audit="").replace("models = 2", 'models = "x"'))
    message = _error_line(capsys, ["audit", str(tmp_path / "my.toml"), "--dry-run",
                                   "--output", str(tmp_path / "out")])
    assert message == "audit 'my' [audit]: models = \"x\" is invalid: expected a whole number of models >= 2"


# -- records -----------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_a_record_with_a_non_finite_metric_is_corrupt(tmp_path: Path, make_record, value: float) -> None:
    data = make_record().to_dict()
    data["metrics"]["UA"] = value
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))  # Infinity / NaN, as Python's json writes them
    with pytest.raises(CorruptFileError, match=rf"^{path}: metric 'UA'=.* is not finite"):
        RunRecord.load(path)


def test_a_record_with_a_non_finite_probe_is_corrupt(make_record) -> None:
    data = make_record(probes={"ASR": {"before": 99.0, "after": 1.0}}).to_dict()
    data["probes"]["ASR"]["after"] = float("inf")
    with pytest.raises(CorruptFileError, match="probe 'ASR'"):
        RunRecord.from_dict(data, "r.json")


@pytest.mark.parametrize("created", ["yesterday", "2024-01-01", "2024-01-01T00:00:00", "2024-13-01T00:00:00+00:00"])
def test_a_record_created_at_no_timestamp_is_corrupt(make_record, created: str) -> None:
    data = make_record().to_dict()
    data["created"] = created
    with pytest.raises(CorruptFileError, match=rf"^r.json: created '{re.escape(created)}' is invalid: expected an "
                                               r"ISO-8601 timestamp with its UTC offset"):
        RunRecord.from_dict(data, "r.json")
    data["created"] = "2024-01-01T12:00:00Z"
    assert RunRecord.from_dict(data, "r.json").created == "2024-01-01T12:00:00Z"


# -- the progress interval ---------------------------------------------------------------------

@pytest.mark.parametrize("value", ["soon", "-5", "nan"])
def test_an_invalid_progress_interval_is_one_line_before_training(capsys, tmp_path: Path, value: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNLEARNBENCH_PROGRESS_INTERVAL", value)
    message = _error_line(capsys, _run_args(tmp_path, "--method", "ft"))
    assert message == f"UNLEARNBENCH_PROGRESS_INTERVAL={value!r} is invalid: expected a number of seconds >= 0"
    _nothing_trained(tmp_path)


def test_progress_interval_values() -> None:
    from unlearnbench.train.progress import interval_s

    with pytest.MonkeyPatch.context() as patch:
        for text, seconds in (("", 30.0), (" 5 ", 5.0), ("0", 0.0), ("inf", float("inf"))):
            patch.setenv("UNLEARNBENCH_PROGRESS_INTERVAL", text)
            assert interval_s() == seconds


# -- a full cache disk -------------------------------------------------------------------------

def test_a_full_cache_disk_names_the_cache_and_leaves_no_lock(capsys, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from unlearnbench import storage

    cache = tmp_path / "cache"
    fsync = os.fsync

    def full_cache(fd: int) -> None:  # as a full disk answers a write: an error naming no file
        if Path(os.readlink(f"/proc/self/fd/{fd}")).is_relative_to(cache):
            raise OSError(errno.ENOSPC, "No space left on device")
        fsync(fd)

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to tell the cache's files")
    monkeypatch.setattr(storage.os, "fsync", full_cache)
    message = _error_line(capsys, _run_args(tmp_path, "--method", "ft", "-p", "epochs=1", *FAST))
    assert message.startswith(f"No space left on device: {cache}/")
    assert f"(in the cache folder --cache-dir {cache}); the finished records are in {tmp_path / 'out'}/" in message
    assert not list(cache.rglob("*.lock"))


def test_the_cache_lock_stays_when_the_entry_was_written(tmp_path: Path) -> None:
    from unlearnbench.storage import CheckpointCache

    cache = CheckpointCache(tmp_path)
    with cache.lock("originals", {"a": 1}):
        cache.save("originals", {"a": 1}, {"x": 1})
    with pytest.raises(OSError):
        with cache.lock("originals", {"a": 2}):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert [p.name for p in tmp_path.rglob("*.lock")] == [cache.path("originals", {"a": 1}).with_suffix(".lock").name]


# -- provenance of plugins ---------------------------------------------------------------------

def test_a_record_names_its_scenario_and_probes_packages(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from torch import nn

    from unlearnbench.run.provenance import make_record
    from unlearnbench.report.records import Timings
    from unlearnbench.run.config import RunConfig, prepare

    plan = prepare(RunConfig(method="ft", dataset="synthetic", forget="backdoor:20",
                             output_dir=tmp_path / "out", cache_dir=tmp_path / "cache"))
    data = SimpleNamespace(class_names=("a", "b", "c", "d"), content_hash="0" * 16)
    split = SimpleNamespace(hash="0" * 16, train=[0], validation=[], forget=[0], retain=[], test=[0])
    record = make_record(plan, data, 0, split, nn.Linear(2, 2), {}, {}, Timings(0, True, 0, True, 0, 0, 0), {})
    assert record.components["scenario"].startswith("backdoor (unlearnbench ")
    assert [role for role in record.components if role.startswith("probe:")] == \
        [f"probe:{name}" for name in plan.probes] and plan.probes
    assert "unlearnbench" in record.environment.packages


# -- images of the wrong size ------------------------------------------------------------------

def _cifar_parquet(root: Path, labels: dict[str, list[int]], size: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, values in labels.items():
        cells = []
        for _ in values:
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, "PNG")
            cells.append({"bytes": buffer.getvalue(), "path": "x.png"})
        root.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"img": cells, "label": values}), root / f"{split}-00000-of-00001.parquet")


def test_cifar_images_of_another_size_are_refused_before_training(capsys, tmp_path: Path) -> None:
    root = tmp_path / "cifar"
    _cifar_parquet(root, {"train": [0, 1, 2, 3], "test": [0, 1]}, size=16)
    message = _error_line(capsys, ["run", "--method", "ft", "--dataset", "cifar10", "--data-root", str(root),
                                   "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "out")])
    assert message == (f"Cifar10: the train images under {root} are 16x16 with 3 channels; expected "
                       f"32x32 RGB (3 channels), CIFAR's size")
    _nothing_trained(tmp_path)


# -- found by the property tests (tests/test_property_inputs.py) --------------------------------

def test_a_subset_of_all_but_a_few_images_keeps_every_class() -> None:
    import torch

    from unlearnbench.data.splits import stratified_subset

    labels = torch.arange(128) % 4
    chosen = stratified_subset(labels, 125, "test_size")  # scikit-learn refused: 3 left out < 4 classes
    assert len(chosen) == 125 and len(set(chosen.tolist())) == 125
    assert torch.bincount(labels[chosen]).tolist() == [31, 31, 31, 32]
    with pytest.raises(ConfigError, match=r"^train_size=5 is invalid: the images cannot be subsampled"):
        stratified_subset(torch.tensor([0] * 10 + [1]), 5, "train_size")


def test_a_key_given_twice_with_a_line_break_is_one_line() -> None:
    from unlearnbench.cli import _key_values

    with pytest.raises(ConfigError) as caught:
        _key_values(["a=x\ny", "a=2"], "-p")
    assert str(caught.value) == "-p 'a' is given twice ('a=x\\ny' and a=2); expected each key once"
