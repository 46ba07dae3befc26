"""The packages of the extension guides in docs/extending/ (pruner, scenario, probe, executor),
exactly as printed there: pip builds and installs them into a throwaway folder that only the
subprocesses' PYTHONPATH sees, and one run on synthetic data uses all four at once. (The
unlearner's package is tests/test_plugin_cli.py's, the metric's tests/test_metric_plugin.py's.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from doc_blocks import doc_block


def _package(folder: str, module: str, pyproject: str, source: str) -> tuple[str, str, dict]:
    assert pyproject.startswith(f"# {folder}/pyproject.toml") and source.startswith(f"# {folder}/{module}.py")
    return folder, module, {"pyproject.toml": pyproject, f"{module}.py": source}


# Each guide's two files, read literally by page and section (tests/test_doc_blocks.py counts them).
PACKAGES = [
    _package("my-pruner", "my_pruner",
             doc_block("docs/extending/pruner.md", "The package", "toml", "# my-pruner/pyproject.toml"),
             doc_block("docs/extending/pruner.md", "The package", "python", "# my-pruner/my_pruner.py")),
    _package("my-scenario", "my_scenario",
             doc_block("docs/extending/scenario.md", "The package", "toml", "# my-scenario/pyproject.toml"),
             doc_block("docs/extending/scenario.md", "The package", "python", "# my-scenario/my_scenario.py")),
    _package("my-probe", "my_probe",
             doc_block("docs/extending/probe.md", "The package", "toml", "# my-probe/pyproject.toml"),
             doc_block("docs/extending/probe.md", "The package", "python", "# my-probe/my_probe.py")),
    _package("my-executor", "my_executor",
             doc_block("docs/extending/executor.md", "The package", "toml", "# my-executor/pyproject.toml"),
             doc_block("docs/extending/executor.md", "The package", "python", "# my-executor/my_executor.py")),
]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("guide-plugins")
    sources = []
    for folder, _, files in PACKAGES:
        source = root / folder
        source.mkdir()
        for name, text in files.items():
            (source / name).write_text(text)
        sources.append(str(source))
    site = root / "site-packages"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(site), *sources],
                   check=True, capture_output=True, text=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k != "UNLEARNBENCH_DISABLE_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
    env["UNLEARNBENCH_DEVICE_DIR"] = str(root / "devices")  # no waiting on other processes' RTE
    return env


def _cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "unlearnbench.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_the_guides_packages_are_listed_with_their_origin(env: dict[str, str], tmp_path: Path) -> None:
    for kind, name, package in [("pruners", "magnitude_ft", "my-pruner"), ("scenarios", "first", "my-scenario"),
                                ("probes", "weight_norm", "my-probe"), ("executors", "keep_going", "my-executor")]:
        result = _cli(env, tmp_path, "ls", kind)
        assert result.returncode == 0, result.stderr
        [line] = [line for line in result.stdout.splitlines() if line.split()[:1] == [name]]
        assert f"{package} 0.1.0" in line, line


def test_one_grid_runs_with_the_guides_pruner_scenario_probe_and_executor(
        env: dict[str, str], shared_cache: Path, tmp_path: Path) -> None:
    output = tmp_path / "records"
    result = _cli(env, tmp_path, "run", "--method", "ft", "-p", "epochs=1", "--dataset", "synthetic",
                  "--train", "epochs=2", "--pruner", "magnitude_ft", "--pruner-param", "epochs=1", "--sparsity", "0.5",
                  "--forget", "first:20", "--probe", "weight_norm:scale=2", "--seeds", "0,1",
                  "--executor", "keep_going", "--executor-param", "reverse=true",
                  "--cache-dir", str(shared_cache), "--output", str(output))
    assert result.returncode == 0, result.stderr
    records = [json.loads(path.read_text()) for path in sorted(output.glob("*.json"))]
    assert sorted(r["seed"] for r in records) == [0, 1]
    for record in records:
        assert record["components"]["pruner"] == "magnitude_ft (my-pruner 0.1.0)"
        assert record["components"]["scenario"] == "first (my-scenario 0.1.0)"
        assert record["forget"] == "first:20" and record["split"]["forget"] == 20
        assert record["sparsity"] >= 0.5
        norms = record["probes"]["weight_norm"]
        assert norms["before"] > 0 and norms["after"] > 0 and norms["before"] != norms["after"]


def test_the_guides_pruner_passes_the_conformance_check(env: dict[str, str]) -> None:
    check = ("from my_pruner import MagnitudeFineTune; from unlearnbench.testing import check_pruner; "
             "check_pruner(MagnitudeFineTune, {'epochs': 1}); print('ok')")
    result = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=300)
    assert result.stdout.strip() == "ok", result.stderr


# Each guide's conformance snippet, read literally by page and section.
CONFORMANCE = {
    "scenario": doc_block("docs/extending/scenario.md", "Conformance checks", "python", "check_scenario"),
    "probe": doc_block("docs/extending/probe.md", "Conformance checks", "python", "check_probe"),
    "executor": doc_block("docs/extending/executor.md", "Conformance checks", "python", "check_executor"),
}


@pytest.mark.parametrize("kind", sorted(CONFORMANCE))
def test_the_guides_conformance_snippets_pass(env: dict[str, str], kind: str, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", CONFORMANCE[kind] + "\nprint('ok')"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.stdout.strip().splitlines()[-1:] == ["ok"], result.stderr[-3000:]
