"""The command line's help, listings and argument errors answer without importing torch, and
``import unlearnbench`` imports the public names only when they are used."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import unlearnbench

PROBE = """
import json, sys
from unlearnbench.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in ("torch", "timm", "torchvision", "numpy", "sklearn", "datasets")
               if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


def _probe(*argv: str) -> tuple[dict, str, str]:
    result = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                            timeout=120)
    *messages, last = result.stderr.strip().splitlines()
    return json.loads(last), result.stdout, "\n".join(messages)


@pytest.mark.parametrize("argv, code", [
    (["--help"], 0),
    (["run", "--help"], 0),
    (["ls", "unlearners"], 0),
    (["ls", "pruners", "o*"], 0),
    (["run"], 2),                                        # argparse: --method is required
    (["run", "--method", "ft", "--seeds", "0,a"], 2),    # our own check of a value
    (["run", "--method", "ft", "-p", "lr"], 2),
])
def test_help_listings_and_argument_errors_do_not_import_torch(argv: list[str], code: int) -> None:
    outcome, stdout, stderr = _probe(*argv)
    assert outcome == {"code": code, "heavy": []}, stderr
    assert "Traceback" not in stderr


def test_ls_lists_without_importing_a_component() -> None:
    outcome, stdout, _ = _probe("ls", "unlearners")
    assert outcome["heavy"] == []
    assert "ft" in stdout.split() and "unlearnbench_baselines.unlearners.ft:FineTune" in stdout


def test_the_probe_notices_torch_when_a_command_does_import_it() -> None:
    outcome, _, _ = _probe("ls", "models", "resnet1*")  # timm's names need timm, hence torch
    assert outcome["code"] == 0 and "torch" in outcome["heavy"]


def test_importing_the_package_imports_no_torch() -> None:
    code = "import sys, unlearnbench; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


def test_every_public_name_resolves_to_the_object_of_its_module() -> None:
    import importlib

    for name in unlearnbench.__all__:
        value = getattr(unlearnbench, name)
        module = importlib.import_module(unlearnbench._EXPORTS[name], "unlearnbench")
        assert value is getattr(module, name)
    assert set(dir(unlearnbench)) >= set(unlearnbench.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchName'"):
        unlearnbench.NoSuchName  # noqa: B018


@pytest.mark.parametrize("argv, imported", [(["ls"], False), (["ls", "metrics"], True)])
def test_only_ls_metrics_imports_the_metric_classes(argv: list[str], imported: bool) -> None:
    """``ls metrics`` reads each metric's declaration from its class; every other listing
    names the entry points only."""
    code = ("import sys; from unlearnbench.cli import main; code = main(sys.argv[1:]); "
            "print(code, 'unlearnbench.evaluate.metrics' in sys.modules, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                            timeout=120)
    assert result.stderr.strip().splitlines()[-1] == f"0 {imported}", result.stderr
    assert "unlearnbench.evaluate.metrics:UnlearningAccuracy" in result.stdout
    assert ("closer to Retrain" in result.stdout) is imported
