"""What a wheel of unlearnbench installs: every package folder, and no ambiguous top-level name."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> tuple[list[str], dict[str, str]]:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return setuptools["packages"], setuptools["package-dir"]


def _on_disk(folder: Path, name: str) -> set[str]:
    return {".".join((name, *init.parent.relative_to(folder).parts)).rstrip(".")
            for init in folder.rglob("__init__.py") if "__pycache__" not in init.parts}


def test_every_package_folder_is_declared_and_nothing_else() -> None:
    packages, package_dir = _declared()
    expected = _on_disk(ROOT / "unlearnbench", "unlearnbench")
    for name, folder in package_dir.items():
        expected |= _on_disk(ROOT / folder, name)
    assert sorted(packages) == sorted(expected)


def test_the_reference_methods_install_under_a_distinct_name() -> None:
    packages, package_dir = _declared()
    assert package_dir == {"unlearnbench_baselines": "baselines"}
    assert all(p.startswith("unlearnbench") for p in packages)  # no top-level "baselines"


def test_the_reference_methods_import_under_that_name() -> None:
    import unlearnbench_baselines.unlearners.ft as ft
    assert Path(ft.__file__).resolve() == ROOT / "baselines" / "unlearners" / "ft.py"
