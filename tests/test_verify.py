"""``unlearnbench verify``: a fresh digits run re-executes bit for bit on the CPU; a tampered
metric, other data files or another code version are reported per record with exit status 1;
the web site marks what verified."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from unlearnbench.cli import main
from unlearnbench.identity import config_identity, trial_identity
from unlearnbench.report.records import VERIFIED_FILE, RunRecord, load_records

# the tiny digits setting: 300 training images, a 3-epoch original, one epoch of FT
DIGITS = ["--dataset", "digits", "--train-size", "300", "--test-size", "100", "--train", "epochs=3",
          "--cpus-per-trial", "1"]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the records of a fresh digits run (two seeds of FT)."""
    out = tmp_path_factory.mktemp("verify") / "records"
    assert main(["run", "--method", "ft", "-p", "epochs=1", *DIGITS, "--seeds", "0,1",
                 "--cache-dir", str(out.parent / "cache"), "--output", str(out)]) == 0
    return out


def _copy(fresh: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "records"
    shutil.copytree(fresh, copy, ignore=shutil.ignore_patterns(VERIFIED_FILE))
    return copy


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2, sort_keys=True))


def test_a_fresh_digits_run_verifies_bit_for_bit(fresh: Path, capsys) -> None:
    records = load_records(fresh)
    assert all(r.environment.threads == 1 for r in records)  # the record says its thread count
    assert main(["verify", str(fresh)]) == 0
    out = capsys.readouterr().out
    for r in records:
        assert f"verified  {r.run_id}: " in out and "bit-identical on cpu, 1 thread" in out
    assert "2 records verified" in out
    stored = json.loads((fresh / VERIFIED_FILE).read_text())
    assert {r.identity for r in records} == set(stored)
    assert all(v["verified"] and v["problems"] == [] and v["unlearnbench"] and v["date"]
               for v in stored.values())
    assert load_records(fresh) == records  # verified.json is no record, and nothing else changed


def test_a_tampered_metric_is_named_with_its_record(fresh: Path, tmp_path: Path, capsys) -> None:
    copy = _copy(fresh, tmp_path)
    first, second = sorted(copy.glob("*.json"))
    _edit(first, lambda d: d["metrics"].update(UA=d["metrics"]["UA"] + 0.01))
    code = main(["verify", str(copy), "--no-write"])
    captured = capsys.readouterr()
    assert code == 1
    run_id = first.stem
    [failed] = [line for line in captured.out.splitlines() if line.startswith("FAILED")]
    assert failed.startswith(f"FAILED    {run_id}: metric UA: recorded ")
    assert f"verified  {second.stem}: " in captured.out  # the untouched record still verifies
    assert f"1 of 2 records failed verification: {run_id}" in captured.err
    assert not (copy / VERIFIED_FILE).exists()  # --no-write


def test_other_data_files_and_another_code_version_are_reported(fresh: Path, tmp_path: Path,
                                                                capsys) -> None:
    copy = _copy(fresh, tmp_path)
    first, second = sorted(copy.glob("*.json"))

    def other_data(d: dict) -> None:  # a consistent record of the same trial on other files
        d["resolved"]["data"] = "0123456789abcdef"
        d["identity"] = trial_identity(d["resolved"], d["seed"])
        d["config_identity"] = config_identity(d["resolved"])

    _edit(first, other_data)
    _edit(second, lambda d: d["environment"].update(unlearnbench="0.0.1"))
    assert RunRecord.load(first).resolved["data"] == "0123456789abcdef"  # a valid record
    assert main(["verify", str(copy)]) == 1
    out = capsys.readouterr().out
    assert (f"FAILED    {first.stem}: data fingerprint differs: the record's 0123456789abcdef, "
            f"here none") in out
    assert f"FAILED    {second.stem}: code version differs: the record's unlearnbench 0.0.1" in out
    stored = json.loads((copy / VERIFIED_FILE).read_text())
    assert not any(v["verified"] for v in stored.values())


def test_the_site_marks_verified_rows_and_runs(fresh: Path, tmp_path: Path) -> None:
    from unlearnbench.report.site import build_site, build_table, load_verifications

    board = tmp_path / "board"
    shutil.copytree(fresh, board / "good" / "records", ignore=shutil.ignore_patterns(VERIFIED_FILE))
    shutil.copytree(fresh, board / "bad" / "records", ignore=shutil.ignore_patterns(VERIFIED_FILE))
    assert main(["verify", str(board / "good")]) == 0
    tampered = sorted((board / "bad" / "records").glob("*.json"))[0]
    _edit(tampered, lambda d: d["metrics"].update(TA=d["metrics"]["TA"] - 1))
    assert main(["verify", str(board / "bad")]) == 1

    good = load_records(board / "good")
    [row] = build_table(good, load_verifications(board / "good")).rows
    assert row.verified and set(row.checks.values()) == {"verified"}
    [row] = build_table(good).rows  # no verify run: nothing marked
    assert not row.verified and row.checks == {}

    build_site(board, tmp_path / "site", log=lambda m: None)
    good_page = (tmp_path / "site" / "good" / "index.html").read_text()
    bad_page = (tmp_path / "site" / "bad" / "index.html").read_text()
    assert 'class="verified"' in good_page and good_page.count("check verified") == 2
    assert 'class="verified"' not in bad_page and "check failed" in bad_page
    run_page = (tmp_path / "site" / "bad" / "runs" / f"{tampered.stem}.html").read_text()
    assert "Verification" in run_page and "FAILED: metric TA: recorded" in run_page


@pytest.mark.parametrize("args, message", [
    (["verify", "no-such-folder"], "no-such-folder does not exist"),
    (["verify", "."], "no run records"),
])
def test_bad_input_is_one_error_line_with_status_2(args, message, tmp_path: Path, monkeypatch,
                                                   capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("unlearnbench: error: ") and message in err and "Traceback" not in err


def test_the_documented_commands_are_ones_the_command_line_accepts() -> None:
    import shlex

    from doc_blocks import doc_block
    from unlearnbench.cli import build_parser

    block = doc_block("docs/reproducing.md", "Verifying records", "bash", "unlearnbench verify")
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]
    assert sum(c.startswith("unlearnbench verify") for c in commands) == 3
    parser = build_parser()
    for command in commands:
        parser.parse_args(shlex.split(command)[1:])  # an unknown flag exits with status 2


def test_a_record_from_before_identities_is_reported_not_re_executed(capsys) -> None:
    """A committed schema-1 record stores neither its data fingerprint nor the cache format: it
    cannot be checked, and says so without training anything."""
    from doc_blocks import ROOT

    [path] = (ROOT / "leaderboard" / "digits-main-grid" / "records").glob("*class_0-ft-dense-seed0.json")
    assert main(["verify", str(path), "--no-write"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"FAILED    {path.stem}: ")
    assert "the record does not store its data (an older record): it cannot be checked" in out
