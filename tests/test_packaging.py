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


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _imported_top_level_modules() -> set[str]:
    """Every top-level module that the installed packages import (at any depth of the code)."""
    import ast

    names: set[str] = set()
    for folder in (ROOT / "unlearnbench", ROOT / "baselines"):
        for path in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"unlearnbench", "unlearnbench_baselines"}


def _requirement_name(requirement: str) -> str:
    import re
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_imported_distribution_is_declared_and_every_declared_one_is_imported() -> None:
    import importlib.metadata as md

    providers = md.packages_distributions()
    imported = {_requirement_name(dist) for module in _imported_top_level_modules()
                for dist in providers.get(module, [module])}
    declared = {_requirement_name(r) for r in _project()["dependencies"]}
    # imported only where an optional feature is used (pytest for the conformance kit's
    # parametrize_with_checks, ray for the ray executor): declared as an extra
    extras = {_requirement_name(r) for group in _project()["optional-dependencies"].values()
              for r in group}
    assert imported - declared - extras == set(), "imported but not declared"
    assert declared - imported == set(), "declared but never imported"


def test_tomli_is_declared_for_the_pythons_without_tomllib() -> None:
    [tomli] = [r for r in _project()["dependencies"] if _requirement_name(r) == "tomli"]
    assert "python_version < '3.11'" in tomli


def test_the_license_file_matches_the_metadata_and_the_package_is_typed() -> None:
    assert _project()["license"] == {"text": "MIT"}
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert (ROOT / "unlearnbench" / "py.typed").is_file()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["unlearnbench"]
