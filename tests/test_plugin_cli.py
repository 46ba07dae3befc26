"""End to end: a third-party distribution's unlearner runs through the real command line.

The plugin below is installed the way pip installs one (a package plus a ``.dist-info`` with
``entry_points.txt``) into a throwaway folder that only the subprocess's PYTHONPATH sees.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN_MODULE = '''
    """A plugin method: one epoch of fine-tuning on the retain set."""
    from unlearnbench import TrainRecipe, Unlearner, param


    class OneEpochFineTune(Unlearner):
        epochs: int = param(1, ge=1)
        lr: float = param(0.01, gt=0)

        def unlearn(self, model, task):
            recipe = TrainRecipe(epochs=self.epochs, lr=self.lr, batch_size=32, schedule="constant")
            return task.fit(model, task.loader(task.retain, batch_size=32), recipe, desc="plugin")
'''


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of a Python that sees two installed plugin distributions: one adds
    ``one_epoch_ft``, the other claims the built-in name ``ft``."""
    import textwrap

    site = tmp_path_factory.mktemp("site-packages")
    (site / "ub_plugin_demo").mkdir()
    (site / "ub_plugin_demo" / "__init__.py").write_text("")
    (site / "ub_plugin_demo" / "methods.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    _dist_info(site, "ub-plugin-demo", "1.2.3",
               {"one_epoch_ft": "ub_plugin_demo.methods:OneEpochFineTune"})
    (site / "ub_clash.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    _dist_info(site, "ub-clash", "0.3", {"ft": "ub_clash:OneEpochFineTune"})

    env = {k: v for k, v in os.environ.items() if k != "UNLEARNBENCH_DISABLE_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _dist_info(site: Path, name: str, version: str, unlearners: dict[str, str]) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    info.joinpath("METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    info.joinpath("entry_points.txt").write_text(
        "[unlearnbench.unlearners]\n" + "".join(f"{k} = {v}\n" for k, v in unlearners.items()))


def _cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "unlearnbench.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_a_plugin_method_runs_and_is_recorded_with_its_package(
        plugin_env: dict[str, str], shared_cache: Path, tmp_path: Path) -> None:
    output = tmp_path / "records"
    result = _cli(plugin_env, tmp_path, "run", "--method", "one_epoch_ft", "--dataset", "synthetic",
                  "--train", "epochs=2", "-p", "lr=0.02", "--cache-dir", str(shared_cache),
                  "--output", str(output))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    [path] = output.glob("*.json")
    record = json.loads(path.read_text())
    assert record["method"] == "one_epoch_ft"
    assert record["environment"]["packages"] == {"ub-plugin-demo": "1.2.3",
                                                 "unlearnbench": record["environment"]["unlearnbench"]}
    assert record["components"]["unlearner"] == "one_epoch_ft (ub-plugin-demo 1.2.3)"
    from unlearnbench.run.provenance import checkout_commit
    assert record["environment"]["unlearnbench_commit"] == checkout_commit()  # None outside a checkout
    assert record["config"]["method_params"] == {"epochs": 1, "lr": 0.02}
    assert record["config"]["recipe"]["epochs"] == 2
    assert "one_epoch_ft" in result.stdout  # the printed leaderboard


def test_ls_shows_the_plugin_with_its_package_and_the_clash(
        plugin_env: dict[str, str], tmp_path: Path) -> None:
    result = _cli(plugin_env, tmp_path, "ls", "unlearners")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "ub-plugin-demo 1.2.3" in rows["one_epoch_ft"]
    assert "ub_plugin_demo.methods:OneEpochFineTune" in rows["one_epoch_ft"]
    assert "CONFLICT" in rows["ft"] and "ub-clash 0.3" in rows["ft"] and "unlearnbench" in rows["ft"]
    assert "CONFLICT" not in rows["retrain"]


def test_a_duplicate_name_fails_cleanly_naming_both_packages(
        plugin_env: dict[str, str], tmp_path: Path) -> None:
    output = tmp_path / "records"
    result = _cli(plugin_env, tmp_path, "run", "--method", "ft", "--dataset", "synthetic",
                  "--cache-dir", str(tmp_path / "cache"), "--output", str(output))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("unlearnbench: error: unlearner 'ft' is registered by both")
    assert "ub-clash 0.3" in line and f"unlearnbench {md.version('unlearnbench')}" in line
    assert not output.exists()  # nothing ran


def test_the_documented_plugin_installs_runs_and_passes_the_conformance_check(
        shared_cache: Path, tmp_path: Path) -> None:
    """The two files of docs/extending/unlearner.md's package, exactly as printed there."""
    from doc_blocks import doc_block
    import sys as _sys
    if _sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    project = tomllib.loads(doc_block("docs/extending/unlearner.md", "The package", "toml",
                                        "# my-unlearner/pyproject.toml"))["project"]
    unlearners = project["entry-points"]["unlearnbench.unlearners"]
    module = doc_block("docs/extending/unlearner.md", "The package", "python", "# my-unlearner/my_unlearner.py")
    site = tmp_path / "site-packages"
    site.mkdir()
    (site / "my_unlearner.py").write_text(module)
    _dist_info(site, project["name"], project["version"], unlearners)
    env = {k: v for k, v in os.environ.items() if k != "UNLEARNBENCH_DISABLE_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])

    [(name, target)] = unlearners.items()
    output = tmp_path / "records"
    result = _cli(env, tmp_path, "run", "--method", name, "-p", "forget_weight=0.05", "-p", "epochs=1",
                  "--dataset", "synthetic", "--train", "epochs=2", "--cache-dir", str(shared_cache),
                  "--output", str(output))
    assert result.returncode == 0, result.stderr
    [path] = output.glob("*.json")
    record = json.loads(path.read_text())
    assert record["components"]["unlearner"] == f"{name} ({project['name']} {project['version']})"
    assert record["config"]["method_params"] == {"epochs": 1, "lr": 0.01, "forget_weight": 0.05}

    check = ("import sys; sys.path.insert(0, sys.argv[1]); from my_unlearner import RetainThenForget; "
             "from unlearnbench.testing import check_unlearner; check_unlearner(RetainThenForget, {'epochs': 1}); print('ok')")
    result = subprocess.run([sys.executable, "-c", check, str(site)], capture_output=True, text=True,
                            timeout=300)
    assert result.stdout.strip() == "ok", result.stderr
    assert target == "my_unlearner:RetainThenForget"
