"""A real multi-node Ray cluster on this machine, under faults (benchmarks/cluster.py).

Two network namespaces joined through a bridge on 10.77.0.0/24, a subnet that exists only inside
them; a Ray head in one and a worker node in the other, with Ray 2.60's token authentication on;
the driver runs in the head's namespace, so nothing listens in the machine's own. A small digits
grid runs through ``--executor ray --ray-address 10.77.0.1:6379`` while a fault strikes:

1. the worker node's raylet is SIGKILLed mid-grid: the node is lost, Ray retries its tasks on
   the head, the grid ends with exactly one record per trial, and the driver's console says so
   in one line, with none of Ray's raw log lines;
2. a worker process running a task on the worker node is SIGKILLed: the task is retried, one
   line says so, and again one record per trial;
3. the driver is SIGKILLed mid-grid: the finished records stay, and the same command again runs
   only the missing trials.

Skipped, with the reason, where network namespaces cannot be made (not root, no ``ip``, no veth)
or Ray is not installed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tiny_grids import DIGITS_RECIPE
from unlearnbench.report.records import load_records

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("ub_cluster", ROOT / "benchmarks" / "cluster.py")
cluster_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cluster_module)

pytestmark = pytest.mark.cluster

# the tiny digits setting: 300 training images, a 4-epoch original (a few seconds per trial)
DIGITS = ["--dataset", "digits", "--train-size", "300", "--test-size", "100", "--train", "epochs=4"]
RAY = ["--executor", "ray", "--ray-address", "10.77.0.1:6379", "--cpus-per-trial", "1"]
RAW = ("node_manager.cc", "retryable_grpc_client.cc", "(raylet)", "[state-dump]", "core_worker.cc")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    if reason := cluster_module.unavailable():
        pytest.skip(f"no multi-node cluster here: {reason}")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with cluster_module.NamespaceCluster(nodes=2, cpus=1, env=env) as made:
        yield made


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "unlearnbench.cli", *args]


def _start(cluster, args: list[str], log: Path) -> subprocess.Popen:
    return cluster.driver(_cli(*args), stdout=open(log.with_suffix(".out"), "w"), stderr=open(log, "w"),
                          cwd=log.parent)


def _wait(condition, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the grid ended before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout:g} s"
        time.sleep(0.1)


def _console(log: Path) -> str:
    return log.read_text() + log.with_suffix(".out").read_text()


def _one_record_per_trial(folder: Path, trials: int) -> list:
    records = load_records(folder)
    files = list(folder.glob("*.json"))
    assert len(records) == len(files) == trials == len({r.identity for r in records})
    return records


def test_a_lost_node_and_a_lost_worker_cost_no_record(cluster, tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    # 1. the worker node's raylet, SIGKILLed while a task of the grid runs on that node
    log = tmp_path / "node.log"
    proc = _start(cluster, ["run", "--method", "ft", "-p", "epochs=2", *DIGITS, "--seeds", "0,1,2,3",
                            *RAY, "--cache-dir", cache, "--output", str(tmp_path / "node")], log)
    _wait(lambda: cluster.processes(2, "ray::_"), proc, "task on the worker node")
    os.kill(cluster.raylet(2), signal.SIGKILL)
    assert proc.wait(timeout=300) == 0, _console(log)[-3000:]
    _one_record_per_trial(tmp_path / "node", 4)
    console = _console(log)
    assert len(re.findall(r"^ray: lost node 10\.77\.0\.2 ", console, re.MULTILINE)) == 1, console
    assert not [raw for raw in RAW if raw in console], console
    assert "ray: grid done in " in console and "utilization" in console

    # 2. a worker process of the (restarted) worker node, SIGKILLed while it runs a task
    cluster.wait_for_nodes(1)  # the lost node marked dead: it is not lost again in the next grid
    cluster.start_node(2)
    cluster.wait_for_nodes(2)
    log = tmp_path / "worker.log"
    proc = _start(cluster, ["run", "--method", "ga", "-p", "epochs=1", *DIGITS, "--seeds", "0,1,2,3",
                            *RAY, "--cache-dir", cache + "-2", "--output", str(tmp_path / "worker")], log)
    _wait(lambda: cluster.processes(2, "ray::_"), proc, "task on the worker node")
    os.kill(cluster.processes(2, "ray::_")[0], signal.SIGKILL)
    assert proc.wait(timeout=300) == 0, _console(log)[-3000:]
    _one_record_per_trial(tmp_path / "worker", 4)
    console = _console(log)
    assert re.search(r"^ray: task _\w+_task lost its worker process; retrying it \(\d retries left\)$",
                     console, re.MULTILINE), console
    assert "lost node" not in console and not [raw for raw in RAW if raw in console], console


def test_a_killed_driver_resumes_with_only_the_missing_trials(cluster, tmp_path: Path) -> None:
    (tmp_path / "digits.toml").write_text(DIGITS_RECIPE)
    args = ["reproduce", "digits.toml", "--num-seeds", "2", "--no-plots", "--output", "out", *RAY,
            "--cache-dir", str(tmp_path / "cache")]
    records = tmp_path / "out" / "records"
    log = tmp_path / "killed.log"
    proc = _start(cluster, args, log)
    _wait(lambda: records.is_dir() and list(records.glob("*.json")), proc, "record")
    proc.send_signal(signal.SIGKILL)  # the driver process itself: `ip netns exec` execs it
    proc.wait(timeout=60)
    done = {p.name: p.stat().st_mtime_ns for p in records.glob("*.json")}
    assert 1 <= len(done) < 6 and len(load_records(records)) == len(done)  # whole records only
    # a record being written when the SIGKILL came is at most a hidden temporary file, never read
    assert all(p.name.startswith(".") and p.suffix == ".tmp" for p in records.iterdir() if p.suffix != ".json")

    log = tmp_path / "resumed.log"
    proc = _start(cluster, args, log)
    assert proc.wait(timeout=300) == 0, _console(log)[-3000:]
    console = _console(log)
    assert f"6 runs, {6 - len(done)} to do" in console
    assert len(re.findall(r"^\[\d+/\d+\] \S+: UA ", console, re.MULTILINE)) == 6 - len(done)
    _one_record_per_trial(records, 6)
    assert {p: (records / p).stat().st_mtime_ns for p in done} == done  # finished ones not re-run
