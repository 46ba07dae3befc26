"""The Python entry points the package exports: its version, a configuration run from Python and
its records read back, the registries (executors included), all without importing torch on
``import unlearnbench``."""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path

import unlearnbench
from doc_blocks import doc_block


def test_the_version_is_the_installed_distributions() -> None:
    assert unlearnbench.__version__ == md.version("unlearnbench")


def test_the_python_entry_points_are_exported() -> None:
    from unlearnbench.components import EXECUTORS, REGISTRIES
    from unlearnbench.report.records import RunRecord, load_records
    from unlearnbench.run.api import run_trials
    from unlearnbench.run.config import RunConfig

    assert (unlearnbench.RunConfig, unlearnbench.run_trials, unlearnbench.load_records) == (
        RunConfig, run_trials, load_records)
    assert unlearnbench.RunRecord is RunRecord and unlearnbench.EXECUTORS is EXECUTORS
    assert unlearnbench.REGISTRIES["executors"] is unlearnbench.EXECUTORS
    assert {"local", "ray"} <= set(unlearnbench.EXECUTORS.names())


def test_the_documented_python_snippet_runs(tmp_path: Path, shared_cache: Path, capsys) -> None:
    snippet = doc_block("docs/trial.md", "From Python", "python", "ub.run_trials(config)")
    original = 'ub.RunConfig(method="ft", dataset="digits", forget="class:0", seeds=(0, 1))'
    assert original in snippet
    tiny = (f'ub.RunConfig(method="ft", dataset="synthetic", forget="class:0", seeds=(0, 1), '
            f'method_params={{"epochs": 1}}, train_params={{"epochs": 2}}, '
            f'cache_dir={str(shared_cache)!r}, output_dir={str(tmp_path)!r})')
    exec(snippet.replace(original, tiny), {})
    first, second = capsys.readouterr().out.splitlines()[:2]
    version, ua = first.split(" ", 1)
    assert version == unlearnbench.__version__ and len(eval(ua)) == 2 and second == "True True"
    assert len(list(tmp_path.glob("*.json"))) == 2
