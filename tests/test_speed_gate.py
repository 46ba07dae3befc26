"""The speed gate's rules (benchmarks/conftest.py), checked on busy loops of known CPU cost."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

GATED = '''
import time
import pytest

def busy(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass

@pytest.mark.gate(max_ratio=0.6, reference="a loop twice as long")
def test_half_the_reference(gate):
    ours, reference = gate.compare(lambda: busy(0.004) or "ours", lambda: busy(0.008) or "ref", rounds=5)
    assert (ours, reference) == ("ours", "ref")

@pytest.mark.gate(max_ratio=0.6, reference="a loop as long")
def test_as_slow_as_the_reference(gate):
    gate.compare(lambda: busy(0.004), lambda: busy(0.004), rounds=5)

@pytest.mark.gate(max_ratio=1.0, reference="never timed")
def test_never_compares(gate):
    pass
'''

UNGATED = '''
def test_plain_benchmark(benchmark):
    benchmark(lambda: None)
'''


def _pytest(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, str(folder)],
                          cwd=folder, capture_output=True, text=True, env={**os.environ, **env}, timeout=300)


def _suite(tmp_path: Path, source: str) -> Path:
    shutil.copy(BENCHMARKS / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_suite.py").write_text(source)
    return tmp_path


def test_a_gated_benchmark_fails_over_its_limit_and_without_a_ratio(tmp_path: Path) -> None:
    result = _pytest(_suite(tmp_path, GATED), "--benchmark-only", "-rA")
    out = result.stdout
    assert "PASSED test_suite.py::test_half_the_reference" in out, out
    assert "FAILED test_suite.py::test_as_slow_as_the_reference" in out, out
    assert "regressed: ours takes" in out and "more than the limit 0.6" in out, out
    assert "ERROR test_suite.py::test_never_compares" in out and "never measured its ratio" in out, out
    assert result.returncode == 1


def test_the_self_test_slowdown_makes_the_gate_fail(tmp_path: Path) -> None:
    """Ours at 0.5x the reference passes a limit of 0.6; made 1.5x slower (0.75x), it fails."""
    result = _pytest(_suite(tmp_path, GATED), "--benchmark-only", "-rA", "-k", "half", GATE_SLOWDOWN="1.5")
    assert "FAILED test_suite.py::test_half_the_reference" in result.stdout, result.stdout
    assert result.returncode == 1


def test_with_timing_off_only_the_checks_run(tmp_path: Path) -> None:
    result = _pytest(_suite(tmp_path, GATED), "--benchmark-disable", "-k", "not never")
    assert result.returncode == 0, result.stdout


def test_a_benchmark_without_a_limit_is_refused(tmp_path: Path) -> None:
    result = _pytest(_suite(tmp_path, UNGATED), "--benchmark-only")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert "benchmarks without a gate limit: test_suite.py::test_plain_benchmark" in result.stderr, result.stderr


def test_every_hot_path_benchmark_has_a_limit() -> None:
    """Each test of the hot-path file is gated and timed through the gate (read from its
    source; running the gate applies the same rule at collection)."""
    tree = ast.parse((BENCHMARKS / "test_bench_hotpaths.py").read_text())
    tests = [f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name.startswith("test_")]
    assert len(tests) == 7
    for test in tests:
        marks = [ast.unparse(d) for d in test.decorator_list]
        assert any(m.startswith("pytest.mark.gate(max_ratio=") for m in marks), f"{test.name}: {marks}"
        assert "gate" in [a.arg for a in test.args.args], f"{test.name} does not time itself through the gate"
        assert "gate.compare(" in ast.unparse(test), f"{test.name} never compares with its reference"
