"""The record names the git commit of the checkout unlearnbench runs from, and only then."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from unlearnbench.run.provenance import checkout_commit

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_CONFIG_NOSYSTEM": "1"}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout.strip()


def _checkout(root: Path) -> Path:
    """A repository holding a package folder at its top, with one commit."""
    package = root / "unlearnbench"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "first")
    return package


def test_a_clean_checkout_gives_its_head_and_a_changed_one_is_dirty(tmp_path: Path) -> None:
    package = _checkout(tmp_path)
    head = _git(tmp_path, "rev-parse", "HEAD")
    assert re.fullmatch(r"[0-9a-f]{40}", head)
    assert checkout_commit(package) == head
    (package / "new_untracked.py").write_text("")  # untracked files do not count, as in git describe
    assert checkout_commit(package) == head
    (package / "__init__.py").write_text("x = 1\n")
    assert checkout_commit(package) == head + "-dirty"
    _git(tmp_path, "commit", "-qam", "second")
    assert checkout_commit(package) == _git(tmp_path, "rev-parse", "HEAD") != head


def test_a_package_that_is_not_in_a_checkout_has_no_commit(tmp_path: Path) -> None:
    package = tmp_path / "site-packages" / "unlearnbench"
    package.mkdir(parents=True)
    assert checkout_commit(package) is None


def test_a_package_installed_inside_another_repository_has_no_commit(tmp_path: Path) -> None:
    _checkout(tmp_path)
    installed = tmp_path / ".venv" / "lib" / "site-packages" / "unlearnbench"
    installed.mkdir(parents=True)
    assert checkout_commit(installed) is None


def test_without_git_there_is_no_commit_and_no_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = _checkout(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "no-binaries-here"))
    assert checkout_commit(package) is None


def test_this_checkout_records_its_own_commit() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not run from a git checkout")
    commit = checkout_commit()
    assert commit is not None and commit.split("-")[0] == _git(ROOT, "rev-parse", "HEAD")
