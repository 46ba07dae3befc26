"""The documentation site (mkdocs.yml over docs/, with the API reference generated from the
docstrings by mkdocstrings) builds with --strict: no warning, e.g. no broken link between pages,
no page missing from the navigation's targets, no docstring that fails to render."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NEEDED = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


def _missing() -> list[str]:
    missing = []
    for name in NEEDED:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # the parent package of a dotted name is absent
            found = False
        if not found:
            missing.append(name)
    return missing


@pytest.mark.skipif(bool(_missing()), reason=f"the docs extra is not installed (missing: {', '.join(_missing())}); "
                                              "pip install -e '.[docs]'")
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "WARNING" not in result.stderr, result.stderr[-4000:]
    reference = (tmp_path / "site" / "api" / "contracts" / "index.html").read_text()
    for name in ("Unlearner", "PruningTask", "Scenario", "Probe", "TrialMetric", "check_unlearner"):
        assert name in reference, name  # rendered from the docstrings
    assert (tmp_path / "site" / "extending" / "pruner" / "index.html").is_file()
