"""Bad input and faults: each gets one error line and a non-zero exit, no traceback, and loses
nothing (checked before the first model trains where it can be)."""

from __future__ import annotations

import io
import json
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from torch import nn

from unlearnbench import PRUNERS, UNLEARNERS, Pruner, Unlearner
from unlearnbench.cli import main
from unlearnbench.run.recipes import load_recipe
from unlearnbench.data.splits import ForgetSpec
from unlearnbench.errors import ConfigError, CorruptFileError
from unlearnbench.report.leaderboard import render, summarize
from unlearnbench.report.records import RunRecord, load_records
from unlearnbench.run.recipes import write_provenance

REPO = Path(__file__).resolve().parents[1]
FAST = ["--train", "epochs=2"]


def _run_args(tmp_path: Path, *args: str, cache: Path | None = None) -> list[str]:
    return ["run", "--dataset", "synthetic", "--cache-dir", str(cache or tmp_path / "cache"),
            "--output", str(tmp_path / "out"), *args]


def _error_line(capsys: pytest.CaptureFixture, argv: list[str], code: int = 2) -> str:
    """Run the CLI in-process: it must exit with ``code`` and end in one clean error line."""
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("unlearnbench: error: ")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    return errors[0].removeprefix("unlearnbench: error: ")


def _nothing_trained(tmp_path: Path) -> None:
    assert not (tmp_path / "cache" / "originals").exists()
    assert not list((tmp_path / "out").glob("*.json"))  # an absent folder globs to nothing


# -- the leaderboard and plots read records only --------------------------------------------------

def test_leaderboard_of_a_reproduced_recipe_skips_its_recipe_json(capsys) -> None:
    folder = REPO / "leaderboard" / "main-table-small"
    assert (folder / "recipe.json").is_file()
    assert main(["leaderboard", str(folder)]) == 0
    captured = capsys.readouterr()
    assert f"skipped {folder / 'recipe.json'}: not a run record (no schema_version)" in captured.err
    assert "| retrain" in captured.out and "Traceback" not in captured.err


def test_plot_skips_files_that_are_no_records(capsys, tmp_path: Path, make_record) -> None:
    make_record().save(tmp_path / "r" / "a.json")
    (tmp_path / "r" / "recipe.json").write_text('{"recipe": "x"}')
    (tmp_path / "r" / "broken.json").write_text("{not json")
    assert main(["plot", str(tmp_path / "r"), "--output", str(tmp_path / "plots")]) == 0
    err = capsys.readouterr().err
    assert "skipped" in err and "recipe.json: not a run record" in err
    assert "broken.json: not readable JSON" in err


def test_a_record_that_claims_to_be_one_but_is_damaged_stays_an_error(capsys, tmp_path, make_record) -> None:
    make_record().save(tmp_path / "a.json")
    (tmp_path / "b.json").write_text('{"schema_version": 3, "run_id": "x"}')
    assert "b.json" in _error_line(capsys, ["leaderboard", str(tmp_path)])
    (tmp_path / "b.json").write_text('{"schema_version": 3, "run_id": ')  # a write cut short
    assert "b.json" in _error_line(capsys, ["leaderboard", str(tmp_path)])


def test_leaderboard_of_one_record_file(capsys, tmp_path: Path, make_record) -> None:
    record = make_record()
    record.save(tmp_path / "one.json")
    assert main(["leaderboard", str(tmp_path / "one.json")]) == 0
    assert "| ft " in capsys.readouterr().out


def test_a_stray_json_file_in_run_output_does_not_fail_the_run(capsys, tmp_path, shared_cache) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.json").write_text('{"comment": "mine"}')
    assert main(_run_args(tmp_path, "--method", "ft", "-p", "epochs=1", *FAST, cache=shared_cache)) == 0
    captured = capsys.readouterr()
    assert "skipped" in captured.err and "notes.json: not a run record" in captured.err
    assert "| ft " in captured.out


# -- filesystem problems, found before the compute ---------------------------------------------

def test_output_that_is_a_file(capsys, tmp_path: Path) -> None:
    (tmp_path / "out").write_text("a file")
    message = _error_line(capsys, _run_args(tmp_path, "--method", "ft"))
    assert message == f"--output {tmp_path / 'out'} is a file; expected a folder"
    assert not (tmp_path / "cache").exists()


def test_cache_dir_that_is_a_file(capsys, tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("a file")
    message = _error_line(capsys, _run_args(tmp_path, "--method", "ft"))
    assert message == f"--cache-dir {tmp_path / 'cache'} is a file; expected a folder"
    assert not (tmp_path / "out").exists()


def test_output_inside_a_file(capsys, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("a file")
    args = ["run", "--dataset", "synthetic", "--method", "ft", "--cache-dir", str(tmp_path / "cache"),
            "--output", str(tmp_path / "f" / "out")]
    assert "cannot be created" in _error_line(capsys, args)


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch):
    """Folders under the returned set refuse new files, as on a read-only mount (tests run as
    root, for whom permission bits do not stop a write)."""
    import unlearnbench.storage as storage

    refused: set[Path] = set()
    original = storage._probe_write

    def probe(folder: Path) -> None:
        if any(folder == r or r in folder.parents for r in refused):
            raise PermissionError(13, "Read-only file system", str(folder))
        original(folder)

    monkeypatch.setattr(storage, "_probe_write", probe)
    return refused


def test_read_only_output_and_cache(capsys, tmp_path: Path, read_only) -> None:
    (tmp_path / "locked").mkdir()
    read_only.add(tmp_path / "locked")
    args = ["run", "--dataset", "synthetic", "--method", "ft"]
    message = _error_line(capsys, [*args, "--output", str(tmp_path / "locked" / "o"),
                                   "--cache-dir", str(tmp_path / "cache")])
    assert message.startswith(f"--output {tmp_path / 'locked' / 'o'} is not writable: Read-only file system")
    message = _error_line(capsys, [*args, "--output", str(tmp_path / "o"),
                                   "--cache-dir", str(tmp_path / "locked")])
    assert message.startswith(f"--cache-dir {tmp_path / 'locked'} is not writable")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "o").exists()


def test_a_label_too_long_for_a_file_name(capsys, tmp_path: Path) -> None:
    message = _error_line(capsys, _run_args(tmp_path, "--method", "ft", "--label", "x" * 300))
    assert message.startswith("--label 'xxxx") and "expected at most 241 (shorten it)" in message
    _nothing_trained(tmp_path)


def test_leaderboard_output_that_is_a_folder(capsys, tmp_path: Path, make_record) -> None:
    make_record().save(tmp_path / "r" / "a.json")
    message = _error_line(capsys, ["leaderboard", str(tmp_path / "r"), "--output", str(tmp_path)])
    assert message == f"--output {tmp_path} is a folder; expected a file name"


def test_plot_output_read_only(capsys, tmp_path: Path, make_record, read_only) -> None:
    make_record().save(tmp_path / "r" / "a.json")
    read_only.add(tmp_path / "plots")
    (tmp_path / "plots").mkdir()
    message = _error_line(capsys, ["plot", str(tmp_path / "r"), "--output", str(tmp_path / "plots")])
    assert message.startswith(f"--output {tmp_path / 'plots'} is not writable")


def test_a_write_failing_after_the_compute_says_where_the_finished_records_are(
        capsys, tmp_path: Path, shared_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save = RunRecord.save

    def full_disk(self, path):
        if self.seed == 1:
            raise OSError(28, "No space left on device", str(path))
        save(self, path)

    monkeypatch.setattr(RunRecord, "save", full_disk)
    message = _error_line(capsys, _run_args(tmp_path, "--method", "ft", "-p", "epochs=1", "--seeds", "0,1",
                                            *FAST, cache=shared_cache))
    assert message.startswith("No space left on device: ")
    assert message.endswith(f"; the finished records are in {tmp_path / 'out'}/ (1 JSON file there)")
    assert len(list((tmp_path / "out").glob("*.json"))) == 1


# -- divergence --------------------------------------------------------------------------------

def test_a_diverged_unlearning_run_is_recorded_as_diverged(capsys, tmp_path: Path, shared_cache) -> None:
    message = _error_line(capsys, _run_args(tmp_path, "--method", "ga", "-p", "lr=1e6", *FAST,
                                            cache=shared_cache), code=1)
    assert message.startswith("1 of 1 runs diverged") and str(tmp_path / "out") in message
    [path] = (tmp_path / "out").glob("*.json")
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()  # valid JSON
    record = RunRecord.load(path)
    assert record.status == "diverged" and record.diverged
    assert record.metrics and all(value is None for value in record.metrics.values())
    assert record.timings.unlearn_s > 0
    assert "non-finite" in record.config["divergence"]
    assert main(["leaderboard", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "0 + 1 diverged" in out and "| diverged " in out


def test_a_diverged_original_model_is_never_cached(capsys, tmp_path: Path) -> None:
    message = _error_line(capsys, _run_args(tmp_path, "--method", "ft", "--train", "lr=1e10",
                                            "--train", "epochs=2"))
    assert message.startswith("the original model (tiny_cnn, lr 1e+10) diverged: ")
    assert "it was not cached" in message
    assert not list((tmp_path / "cache").rglob("originals/*.pt"))
    assert not (tmp_path / "out").exists()


def test_the_leaderboard_never_averages_a_diverged_run(make_record) -> None:
    ok = [make_record(seed=0, UA=10.0), make_record(seed=1, UA=20.0)]
    diverged = make_record(seed=2, status="diverged", RTE=9.0,
                           metrics=dict.fromkeys(["UA", "MIA", "RA", "TA", "RTE"]))
    row = summarize([*ok, diverged]).iloc[0]
    assert row["n"] == 2 and row["diverged"] == 1
    assert row["UA_mean"] == pytest.approx(15.0) and row["RTE_mean"] == pytest.approx(1.5)
    table = render([*ok, diverged])
    assert "2 + 1 diverged" in table and "15.00 ± 7.07" in table and "diverged: 1 run" in table
    alone = render([diverged])
    assert "0 + 1 diverged" in alone and "| diverged " in alone


def test_a_diverged_record_round_trips(make_record, tmp_path: Path) -> None:
    record = make_record(status="diverged", probes={"ASR": {"before": 99.0, "after": None}},
                         metrics=dict.fromkeys(["UA", "MIA", "RA", "TA", "RTE"]))
    record.save(tmp_path / "d.json")
    assert RunRecord.load(tmp_path / "d.json") == record
    data = json.loads((tmp_path / "d.json").read_text())
    data["status"] = "exploded"
    with pytest.raises(CorruptFileError, match="status 'exploded' is invalid"):
        RunRecord.from_dict(data, "x.json")


def test_old_records_read_as_ok(make_record) -> None:
    data = make_record().to_dict()
    data["schema_version"] = 2
    del data["status"], data["metric_declarations"]
    assert RunRecord.from_dict(data).status == "ok"


# -- bad data ----------------------------------------------------------------------------------

def _cifar_parquet(root: Path, labels: dict[str, list[int]], names: list[str] | None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, values in labels.items():
        cells = []
        for _ in values:
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, "PNG")
            cells.append({"bytes": buffer.getvalue(), "path": "x.png"})
        table = pa.table({"img": cells, "label": values})
        if names:
            meta = {"info": {"features": {"label": {"names": names, "_type": "ClassLabel"}}}}
            table = table.replace_schema_metadata({"huggingface": json.dumps(meta)})
        root.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / f"{split}-00000-of-00001.parquet")


def test_a_label_outside_the_class_range_names_the_file_and_row(capsys, tmp_path: Path) -> None:
    root = tmp_path / "cifar"
    _cifar_parquet(root, {"train": [0, 1, 2, 3, 10, 1], "test": [0, 1, 2, 3]},
                   names=[f"c{k}" for k in range(10)])
    message = _error_line(capsys, ["run", "--method", "ft", "--dataset", "cifar10", "--data-root", str(root),
                                   "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "out")])
    assert message == (f"Cifar10: {root / 'train-00000-of-00001.parquet'} row 4 has label 10; "
                       f"expected 0..9 (1 rows out of range)")
    _nothing_trained(tmp_path)


def test_a_negative_label_names_the_file_and_row(capsys, tmp_path: Path) -> None:
    root = tmp_path / "cifar"
    _cifar_parquet(root, {"train": [0, 1, 1, 0], "test": [0, -1, 1]}, names=None)
    message = _error_line(capsys, ["run", "--method", "ft", "--dataset", "cifar10", "--data-root", str(root),
                                   "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "out")])
    assert f"{root / 'test-00000-of-00001.parquet'} row 1 has label -1 (an unlabelled split?)" in message


def test_labels_of_any_dataset_are_checked_before_training(tmp_path: Path) -> None:
    from unlearnbench.data.dataset import LoadedDataset
    from unlearnbench.data.tensors import Augment, ImageData, Normalize
    from unlearnbench.errors import CorruptFileError
    from unlearnbench.run.trial import check_labels
    import torch

    part = ImageData(torch.zeros(3, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1, 7]))
    data = LoadedDataset(part, part, ("a", "b"), Normalize((0.5,), (0.3,)), Augment())
    with pytest.raises(CorruptFileError, match="train example 2 has label 7; expected 0..1"):
        check_labels(data, "plugin")


def test_download_without_a_network(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    message = _error_line(capsys, ["run", "--method", "ft", "--dataset", "cifar10", "--download",
                                   "--data-root", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "cache"),
                                   "--output", str(tmp_path / "out")])
    assert message.startswith(f"Cifar10: downloading to {tmp_path / 'data'} failed (URLError: ")
    assert "Temporary failure in name resolution" in message and "--data-root" in message


# -- parameters --------------------------------------------------------------------------------

def test_an_integer_too_large_is_refused_before_training(capsys, tmp_path: Path) -> None:
    message = _error_line(capsys, _run_args(tmp_path, "--method", "ft", "-p", "epochs=99999999999999999999999"))
    assert message == ("FineTune.epochs=99999999999999999999999 is invalid: expected an integer that "
                       "fits in 64 bits (|value| < 2**63)")
    _nothing_trained(tmp_path)


@pytest.mark.parametrize("flag", ["-p", "--train", "--dataset-param"])
def test_the_same_key_twice_is_an_error(capsys, tmp_path: Path, flag: str) -> None:
    key = {"-p": "epochs", "--train": "epochs", "--dataset-param": "noise"}[flag]
    message = _error_line(capsys, _run_args(tmp_path, "--method", "ft", flag, f"{key}=1", flag, f"{key}=2"))
    assert message.endswith(f"{key!r} is given twice ({key}=1 and {key}=2); expected each key once")
    _nothing_trained(tmp_path)


# -- forget specs: a decimal point makes a fraction -------------------------------------------

def test_random_one_point_zero_is_a_fraction_out_of_range(capsys, tmp_path: Path) -> None:
    message = _error_line(capsys, _run_args(tmp_path, "--method", "ft", "--forget", "random:1.0"))
    assert message.startswith("forget spec 'random:1.0': expected a fraction in (0, 1) or a whole count")
    assert "is a fraction" in message


@pytest.mark.parametrize("text, count, value, shown", [
    ("random:1", True, 1, "random:1"), ("random:0.5", False, 0.5, "random:0.5"),
    ("backdoor:25", True, 25, "backdoor:25"), ("backdoor:0.1,target=3", False, 0.1, "backdoor:0.1,target=3"),
    ("backdoor:25,target=3", True, 25, "backdoor:25,target=3")])
def test_forget_counts_and_fractions(text: str, count: bool, value: float, shown: str) -> None:
    spec = ForgetSpec.parse(text)
    assert (spec.count, spec.value, str(spec)) == (count, value, shown)


@pytest.mark.parametrize("text", ["random:1e0", "backdoor:2.0", "random:1.5"])
def test_fractions_outside_zero_one(text: str) -> None:
    with pytest.raises(ConfigError, match="is a fraction"):
        ForgetSpec.parse(text)


def test_a_backdoor_count_forgets_that_many(tmp_path: Path, shared_cache: Path) -> None:
    from unlearnbench.data.splits import make_split
    import torch

    labels = torch.arange(4).repeat_interleave(25)
    split = make_split(labels, labels, ForgetSpec.parse("backdoor:7"), num_classes=4, val_fraction=0.0, seed=0)
    assert len(split.forget) == 7


def test_run_help_documents_counts() -> None:
    from unlearnbench.cli import build_parser

    text = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    assert "backdoor:COUNT" in " ".join(text.split())


# -- seeds: one meaning everywhere -------------------------------------------------------------

def test_seeds_are_the_seeds_for_run_and_reproduce(capsys, tmp_path: Path) -> None:
    for argv, shown in ((["--seeds", "3"], "seeds to run: 3"), (["--num-seeds", "3"], "seeds to run: 0,1,2")):
        assert main(["reproduce", "main-table", "--scale", "small", *argv, "--dry-run",
                     "--output", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        assert out.count(shown) == len(load_recipe("main-table").configs(scale="small"))
    from unlearnbench.cli import _seed_flags, build_parser

    parser = build_parser()
    assert _seed_flags(parser.parse_args(["run", "--method", "ft", "--seeds", "3"])) == (3,)
    assert _seed_flags(parser.parse_args(["run", "--method", "ft", "--num-seeds", "3"])) == (0, 1, 2)
    assert _seed_flags(parser.parse_args(["run", "--method", "ft"])) == (0,)


@pytest.mark.parametrize("command", ["run", "reproduce"])
def test_seeds_and_num_seeds_together_are_refused(capsys, tmp_path: Path, command: str) -> None:
    head = _run_args(tmp_path, "--method", "ft") if command == "run" else [
        "reproduce", "main-table", "--scale", "small", "--dry-run", "--output", str(tmp_path / "out")]
    message = _error_line(capsys, [*head, "--seeds", "0,1", "--num-seeds", "2"])
    assert message == "--seeds 0,1 and --num-seeds 2 both given; expected one of them"


@pytest.mark.parametrize("value", ["0", "-1", "99999999"])
def test_num_seeds_out_of_range(capsys, tmp_path: Path, value: str) -> None:
    message = _error_line(capsys, _run_args(tmp_path, "--method", "ft", "--num-seeds", value))
    assert message == f"--num-seeds {value} is invalid: expected 1 to 10000"


# -- recipes -----------------------------------------------------------------------------------

TINY = """
description = "tiny"
paper = "none"

[run]
dataset = "synthetic"
arch = "tiny_cnn"
train = { epochs = 2 }

[grid]
method = ["retrain"]
pruning = ["dense"]
forget = ["class:0", "class:99"]
"""


def test_a_recipe_checks_every_cell_before_the_first_run(capsys, tmp_path: Path) -> None:
    (tmp_path / "tiny.toml").write_text(TINY)
    message = _error_line(capsys, ["reproduce", str(tmp_path / "tiny.toml"), "--output", str(tmp_path / "out"),
                                   "--cache-dir", str(tmp_path / "cache")])
    assert message == "forget spec class:99: class 99 does not exist; expected 0..3"
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache" / "originals").exists()


def test_reproduce_with_a_missing_data_root_changes_nothing(capsys, tmp_path: Path) -> None:
    committed = REPO / "leaderboard" / "backdoor-small"
    copy = tmp_path / "backdoor-small"
    shutil.copytree(committed, copy)
    before = (copy / "recipe.json").read_text()
    message = _error_line(capsys, ["reproduce", "backdoor", "--scale", "small", "--data-root", "/nonexistent",
                                   "--output", str(copy), "--cache-dir", str(tmp_path / "cache")])
    assert message == "--data-root /nonexistent does not exist; expected the folder holding the dataset"
    assert (copy / "recipe.json").read_text() == before


def test_recipe_json_never_holds_less_than_before(tmp_path: Path) -> None:
    path = tmp_path / "recipe.json"
    first = {"recipe": "r", "scale": "small", "seeds": [0, 1], "runs": 4, "ran": 4, "wall_clock_s": 100.0,
             "configs": [{"method": "ft", "method_params": {"lr": 0.05}, "seeds": [0, 1]}]}
    write_provenance(path, first, log=lambda m: None)
    logged: list[str] = []
    write_provenance(path, {**first, "ran": 0, "wall_clock_s": 0.2}, log=logged.append)
    assert json.loads(path.read_text()) == first and "kept as it was" in logged[0]
    write_provenance(path, {**first, "seeds": [2], "runs": 6, "ran": 2, "wall_clock_s": 50.0},
                     log=lambda m: None)
    assert json.loads(path.read_text()) == {**first, "seeds": [0, 1, 2], "runs": 6, "ran": 6,
                                            "wall_clock_s": 150.0}
    # a grid extended by new configurations (here: another lr) adds to the counts
    grown = {**first, "configs": [*first["configs"], {"method": "ft", "method_params": {"lr": 0.01}, "seeds": [0]}],
             "seeds": [0], "runs": 8, "ran": 2, "wall_clock_s": 20.0}
    write_provenance(path, grown, log=lambda m: None)
    assert json.loads(path.read_text()) == {**grown, "seeds": [0, 1, 2], "ran": 8, "wall_clock_s": 170.0}
    # a rerun of a changed grid (here: a tuned lr) counts only itself
    tuned = {**first, "configs": [{"method": "ft", "method_params": {"lr": 0.07}, "seeds": [0, 1]}],
             "ran": 3, "wall_clock_s": 30.0}
    write_provenance(path, tuned, log=lambda m: None)
    assert json.loads(path.read_text()) == tuned


# -- progress off a terminal -------------------------------------------------------------------

def test_long_phases_log_lines_off_a_terminal(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    from unlearnbench.train.progress import progress

    monkeypatch.setenv("UNLEARNBENCH_PROGRESS_INTERVAL", "0")
    assert list(progress(range(3), "train original", "epoch")) == [0, 1, 2]
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "train original: epoch 1/3", "train original: epoch 2/3", "train original: 3 epochs done in 0 s"]
    monkeypatch.setenv("UNLEARNBENCH_PROGRESS_INTERVAL", "3600")
    assert list(progress(range(3), "quick", "epoch")) == [0, 1, 2]
    assert capsys.readouterr().err == ""  # short phases stay quiet


# -- plugins that fail -------------------------------------------------------------------------

class Explodes(Unlearner):
    def unlearn(self, model, task):
        raise RuntimeError("CUDA error: an illegal memory access\nwas encountered")


class SwapsArchitecture(Unlearner):
    def unlearn(self, model, task):
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(task.num_classes))


class Resizes(Unlearner):
    def unlearn(self, model, task):
        first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        first.weight = nn.Parameter(first.weight[:, :, :1, :1].clone())
        return model


@pytest.fixture
def bad_plugins():
    names = {"explodes": Explodes, "swaps": SwapsArchitecture, "resizes": Resizes}
    for name, cls in names.items():
        UNLEARNERS.register(name, cls)
    yield
    for name in names:
        UNLEARNERS.unregister(name)


def test_a_plugin_that_raises_is_one_line_naming_it(capsys, tmp_path: Path, shared_cache, bad_plugins) -> None:
    message = _error_line(capsys, _run_args(tmp_path, "--method", "explodes", *FAST, cache=shared_cache))
    assert message.startswith(f"unlearner 'explodes' (from in-process ({__name__})) failed: "
                              "RuntimeError: CUDA error: an illegal memory access was encountered")
    assert "--debug" in message
    assert main(["--debug", *_run_args(tmp_path, "--method", "explodes", *FAST, cache=shared_cache)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "in unlearn" in err
    assert err.rstrip().splitlines()[-1].startswith("unlearnbench: error: unlearner 'explodes'")


@pytest.mark.parametrize("name, expected", [
    ("swaps", "returned a Sequential; expected the architecture it was given (SmallCNN)"),
    ("resizes", "whose tensors differ from the one it was given")])
def test_a_plugin_that_returns_another_architecture(capsys, tmp_path: Path, shared_cache, bad_plugins,
                                                    name: str, expected: str) -> None:
    message = _error_line(capsys, _run_args(tmp_path, "--method", name, *FAST, cache=shared_cache))
    assert message.startswith(f"unlearner {name!r} (from in-process ({__name__}))")
    assert expected in message
    assert not list((tmp_path / "out").glob("*.json"))


class PrunerExplodes(Pruner):
    def prune(self, task):
        raise ValueError("no weights to score")


def test_a_pruner_that_raises_is_one_line_naming_it(capsys, tmp_path: Path, shared_cache) -> None:
    PRUNERS.register("explodes", PrunerExplodes)
    try:
        args = _run_args(tmp_path, "--method", "ft", "--pruner", "explodes", "--sparsity", "0.5", *FAST,
                         cache=shared_cache)
        message = _error_line(capsys, args)
        assert message.startswith(f"pruner 'explodes' (from in-process ({__name__})) failed: "
                                  f"ValueError: no weights to score")
        assert main([*args, "--debug"]) == 2
        assert "Traceback" in capsys.readouterr().err
    finally:
        PRUNERS.unregister("explodes")
