"""End to end: a third-party metric package, built and installed by pip, measured by every run.

The package is docs/extending/metric.md's, exactly as printed there: pip builds it and installs
it into a throwaway folder that only the subprocesses' PYTHONPATH sees. Its two metrics show up
in ``unlearnbench ls metrics`` with their package, in the records of a run on digits, and as
columns of the leaderboard; the one that declares ``in_disparity`` enters Disparity Ave., the
other does not.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from doc_blocks import doc_block
from unlearnbench.report.records import SCHEMA_VERSION

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FAST = ("--dataset", "digits", "--train", "epochs=2", "-p", "epochs=2")


def _guide_block(language: str, first_line: str) -> str:
    block = doc_block("docs/extending/metric.md", "The package", language, first_line)
    assert block.startswith(first_line)
    return block


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The guide's metric package, built and installed with pip into a folder of its own; returns
    its project table and the environment of a Python that sees it."""
    root = tmp_path_factory.mktemp("metric-plugin")
    source = root / "my-metrics"
    source.mkdir()
    pyproject = _guide_block("toml", "# my-metrics/pyproject.toml")
    (source / "pyproject.toml").write_text(pyproject)
    (source / "my_metrics.py").write_text(_guide_block("python", "# my-metrics/my_metrics.py"))
    site = root / "site-packages"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(site), str(source)],
                   check=True, capture_output=True, text=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k != "UNLEARNBENCH_DISABLE_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
    env["UNLEARNBENCH_DEVICE_DIR"] = str(root / "devices")  # no waiting on other processes' RTE
    return {"project": tomllib.loads(pyproject)["project"], "env": env}


def _cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "unlearnbench.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_ls_metrics_shows_the_plugins_metrics_with_their_package_and_declaration(
        plugin: dict, tmp_path: Path) -> None:
    result = _cli(plugin["env"], tmp_path, "ls", "metrics")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[3:] if line.strip()}
    origin = f"{plugin['project']['name']} {plugin['project']['version']}"
    assert re.search(rf"{origin} +my_metrics:ForgetLoss +trial +forget loss +nats +higher +no",
                     rows["forget_loss"]), rows["forget_loss"]
    assert re.search(rf"{origin} +my_metrics:UATop5 +trial +UA top-5 +% +closer to Retrain +yes",
                     rows["UA_top5"]), rows["UA_top5"]
    assert re.search(r"unlearnbench \S+ +unlearnbench.evaluate.metrics:RunTimeEfficiency +trial +RTE "
                     r"+s +lower +no", rows["RTE"]), rows["RTE"]
    assert {"UA", "MIA", "RA", "TA", "klom", "ulira"} <= set(rows)


def test_a_run_records_the_plugins_metrics_and_the_leaderboard_shows_them(
        plugin: dict, shared_cache: Path, tmp_path: Path) -> None:
    output = tmp_path / "records"
    for method in ("retrain", "ft"):
        result = _cli(plugin["env"], tmp_path, "run", "--method", method, *FAST,
                      "--cache-dir", str(shared_cache), "--output", str(output))
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    records = {r["method"]: r for r in (json.loads(p.read_text()) for p in output.glob("*.json"))}
    ft = records["ft"]
    assert {"forget_loss", "UA_top5"} <= set(ft["metrics"]) and ft["schema_version"] == SCHEMA_VERSION
    assert ft["metric_declarations"]["UA_top5"]["in_disparity"] is True
    assert ft["metric_declarations"]["forget_loss"]["unit"] == "nats"
    assert ft["environment"]["packages"][plugin["project"]["name"]] == plugin["project"]["version"]
    assert f"UA top-5 {ft['metrics']['UA_top5']:.2f}" in result.stdout  # the run's summary line
    assert f"forget loss {ft['metrics']['forget_loss']:.3f} nats" in result.stdout

    result = _cli(plugin["env"], tmp_path, "leaderboard", str(output))
    assert result.returncode == 0, result.stderr
    header, _, *rows = [line for line in result.stdout.splitlines() if line.startswith("|")]
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[columns.index("TA"):] == ["TA", "UA top-5", "Disparity Ave.", "HA", "RTE (s)",
                                             "steps", "forget loss (nats)", "sparsity"]
    cells = dict(zip(columns, (c.strip() for c in next(r for r in rows if "| ft " in r).strip("|").split("|"))))
    retrain = records["retrain"]["metrics"]
    gaps = {m: abs(ft["metrics"][m] - retrain[m]) for m in ("UA", "MIA", "RA", "TA", "UA_top5")}
    assert cells["UA top-5"] == f"{ft['metrics']['UA_top5']:.2f} ({gaps['UA_top5']:.2f})"
    assert cells["forget loss (nats)"] == f"{ft['metrics']['forget_loss']:.3f}"  # no gap: not in Disparity
    assert cells["Disparity Ave."] == f"{sum(gaps.values()) / 5:.2f}"  # five gaps: not the loss
    assert "Disparity Ave. = mean of the five gaps." in result.stdout

    without = _cli({**plugin["env"], "PYTHONPATH": os.environ.get("PYTHONPATH", "")}, tmp_path,
                   "leaderboard", str(output))  # the records carry the declarations
    assert without.returncode == 0, without.stderr
    assert without.stdout == result.stdout


def test_the_guides_metrics_pass_the_conformance_checks(plugin: dict, tmp_path: Path) -> None:
    snippet = doc_block("docs/extending/metric.md", "Conformance checks", "python", "check_metric")
    result = subprocess.run([sys.executable, "-c", snippet + "\nprint('ok')"], env=plugin["env"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.stdout.strip().splitlines()[-1:] == ["ok"], result.stderr[-3000:]
