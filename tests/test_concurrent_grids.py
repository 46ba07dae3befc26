"""Concurrent grids share work: N processes on one output folder and cache run each trial once
(its identity is its lock, unlearnbench.run.claims), and each ends with every record."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from tiny_grids import DIGITS_RECIPE
from unlearnbench.report.records import load_records
from unlearnbench.run.config import RunConfig
from unlearnbench.run.executors import LocalExecutor, Trial, run_grid

RAN = re.compile(r"^\[\d+/\d+\] (\S+): UA ", re.MULTILINE)
ELSEWHERE = re.compile(r"^\[\d+/\d+\] (\S+): recorded by another process", re.MULTILINE)


def _together(commands: list[list[str]], cwd: Path, env: dict[str, str]) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen([sys.executable, "-m", "unlearnbench.cli", *command], cwd=cwd, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for command in commands]
    results = []
    for proc, command in zip(procs, commands):
        out, err = proc.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(command, proc.returncode, out, err))
    return results


def _each_ran_once(results: list[subprocess.CompletedProcess], run_ids: set[str]) -> Counter:
    ran = Counter(run_id for r in results for run_id in RAN.findall(r.stderr))
    assert set(ran) == run_ids and set(ran.values()) == {1}, ran  # every trial, each in one process
    for r in results:  # and each process saw every trial: run there or recorded by another
        assert set(RAN.findall(r.stderr)) | set(ELSEWHERE.findall(r.stderr)) == run_ids, r.stderr
    return ran


@pytest.mark.parametrize("command", ["reproduce", "run"])
def test_three_processes_on_one_output_run_each_trial_once(command: str, tmp_path: Path) -> None:
    (tmp_path / "digits.toml").write_text(DIGITS_RECIPE)
    env = {**os.environ, "UNLEARNBENCH_DEVICE_DIR": str(tmp_path / "devices")}
    common = ["--cache-dir", str(tmp_path / "cache"), "--cpus-per-trial", "1"]
    if command == "reproduce":
        args = ["reproduce", "digits.toml", "--num-seeds", "2", "--no-plots", "--output", "out", *common]
        records_dir, trials = tmp_path / "out" / "records", 6
    else:
        args = ["run", "--method", "ft", "-p", "epochs=2", "--dataset", "digits", "--train", "epochs=4",
                "--train-size", "300", "--test-size", "100", "--seeds", "0,1,2,3,4,5",
                "--output", "out", *common]
        records_dir, trials = tmp_path / "out", 6
    results = _together([args] * 3, tmp_path, env)
    for r in results:
        assert r.returncode == 0, r.stderr[-3000:]
        if command == "reproduce":
            assert f"{trials} runs, {trials} to do" in r.stderr  # all three started before any record
    records = load_records(records_dir)
    assert len(records) == trials == len(list(records_dir.glob("*.json")))  # one file per trial
    _each_ran_once(results, {r.run_id for r in records})
    for r in results:  # every process ends with the whole table
        table = (tmp_path / "out" / "table.md").read_text() if command == "reproduce" else r.stdout
        assert all(method in table for method in (["| ft", "| ga", "| none"] if command == "reproduce" else ["| ft"]))
    assert not list((tmp_path / "cache" / "trials").glob("*.lock"))  # removed once recorded


TINY = dict(dataset="synthetic", arch="tiny_cnn", train_params={"epochs": 2})


def test_an_older_record_is_replaced_unless_resuming(tmp_path: Path, shared_cache: Path) -> None:
    """``run`` measures a trial again when run again (its record is replaced); a grid that
    resumes (``reproduce``) takes an existing record as done; so does any grid for a record that
    a concurrent process wrote while it ran."""
    config = RunConfig(method="ft", **TINY, seeds=(0,), cache_dir=shared_cache, output_dir=tmp_path / "out")
    [first] = run_grid([Trial(config, 0)], LocalExecutor())
    path = tmp_path / "out" / f"{first.run_id}.json"
    stamp = path.stat().st_mtime_ns
    os.utime(path, ns=(stamp - 10**9, stamp - 10**9))
    stamp = path.stat().st_mtime_ns
    lines: list[str] = []
    [again] = run_grid([Trial(config, 0)], LocalExecutor(), log=lines.append)
    assert path.stat().st_mtime_ns != stamp and not any("another process" in line for line in lines)
    stamp = path.stat().st_mtime_ns
    [resumed] = run_grid([Trial(config, 0)], LocalExecutor(), log=lines.append, resume=True)
    assert path.stat().st_mtime_ns == stamp and resumed.created == again.created
    assert "recorded by another process" in lines[-1]


def test_a_trial_held_by_another_process_waits_and_runs_when_it_left_no_record(
        tmp_path: Path, shared_cache: Path) -> None:
    """The holder of a trial's lock died (or failed) without a record: the waiting grid runs the
    trial itself once the lock is free."""
    from unlearnbench.run.claims import Claims

    config = RunConfig(method="ft", **TINY, seeds=(0,), cache_dir=shared_cache, output_dir=tmp_path / "out")
    lock = Claims([Trial(config, 0)], resume=True, recorded=lambda i, r: None).lock_path(0)
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from filelock import FileLock
        with FileLock({str(lock)!r}):
            print("held", flush=True)
            time.sleep(3)
        """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    [record] = run_grid([Trial(config, 0)], LocalExecutor(), resume=True)
    holder.wait(timeout=60)
    assert (tmp_path / "out" / f"{record.run_id}.json").is_file()
