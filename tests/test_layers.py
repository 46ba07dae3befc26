"""The package's layers import only downward, and an import inside a function says why.

The layers, lowest first (docs/architecture.md draws them): the shared ground; the contracts a
plugin implements, with the registries and the training recipe they speak of; the data, the
built-in datasets, scenarios and models; training; evaluation; reporting (which reads records and
never runs anything); running; and on top the command line, the conformance kit and the
package's lazy exports. Every module of ``unlearnbench`` is walked with ``ast``; an import of a
module of a higher layer fails, naming the file, the line and both layers, whether it is made at
module level or inside a function.

Imports under ``if TYPE_CHECKING:`` are not arrows: they run nowhere, and annotations may name
a type of any layer (a contract's ``unlearn(model, task: UnlearningTask)``). An import inside a
function is allowed only to keep an import light (the command line's help and listings without
torch, an optional or heavy library) or to load a plugin, with a ``#`` comment saying so on its
line, or on the line above it (which may be another such import of the same block).
"""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "unlearnbench"

# lowest first; a module belongs to the layer that names its top-level module or folder
LAYERS: tuple[tuple[str, frozenset[str]], ...] = tuple((name, frozenset(members)) for name, members in (
    ("ground", {"errors", "params", "registry", "space", "storage", "identity", "seeds", "cpus"}),
    ("contracts", {"unlearner", "pruner", "scenario", "probe", "metric", "recipe", "components",
                   "guard"}),
    ("data", {"data", "datasets", "scenarios", "models"}),
    ("train", {"train"}),
    ("evaluate", {"evaluate"}),
    ("report", {"report"}),
    ("run", {"run"}),
    ("top", {"cli", "testing", "__init__"}),
))


@dataclass(frozen=True)
class Import:
    file: str  # relative to the repository
    line: int
    source: str  # the importing module
    target: str  # the imported module (of unlearnbench) or library
    in_function: bool
    type_only: bool
    reason: bool  # a comment on its line or the line above (function-level imports)


def layer_of(module: str) -> int | None:
    """The layer index of a module of the package (``unlearnbench.run.trial`` -> run's)."""
    parts = module.split(".")
    if parts[0] != "unlearnbench":
        return None
    head = parts[1] if len(parts) > 1 else "__init__"
    for index, (_, members) in enumerate(LAYERS):
        if head in members:
            return index
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in {Path(__file__).name}")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, root: Path) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not node.level:
        return [node.module or ""]
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    package = ".".join(base + ([node.module] if node.module else []))
    # `from . import name`: a submodule when there is one, else a name of the package
    submodules = [f"{package}.{alias.name}" for alias in node.names
                  if _module_file(f"{package}.{alias.name}", root) is not None]
    return submodules or [package]


def _module_file(module: str, root: Path) -> Path | None:
    relative = Path(*module.split(".")[1:])
    for candidate in (root / relative.with_suffix(".py"), root / relative / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _comment_lines(source: str) -> set[int]:
    return {token.start[0] for token in tokenize.generate_tokens(io.StringIO(source).readline)
            if token.type == tokenize.COMMENT}


def scan(root: Path = PACKAGE) -> list[Import]:
    """Every import statement of every module under ``root`` (a copy of the package)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        source = path.read_text()
        tree = ast.parse(source, str(path))
        module, comments = module_name(path, root), _comment_lines(source)
        lines = source.splitlines()
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        reasoned: set[int] = set()  # end lines of function-level imports that carry a reason
        nodes = sorted((n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))),
                       key=lambda n: n.lineno)
        for node in nodes:
            in_function = type_only = False
            ancestor = node
            while ancestor in parents:
                ancestor = parents[ancestor]
                in_function |= isinstance(ancestor, (ast.FunctionDef, ast.AsyncFunctionDef))
                type_only |= isinstance(ancestor, ast.If) and "TYPE_CHECKING" in ast.unparse(ancestor.test)
            above = node.lineno - 1
            reason = (any(line in comments for line in range(node.lineno, node.end_lineno + 1))
                      or (above in comments and lines[above - 1].strip().startswith("#"))
                      or above in reasoned)
            if in_function and reason:
                reasoned.add(node.end_lineno)
            for target in _targets(node, module, path.name == "__init__.py", root):
                found.append(Import(str(path.relative_to(root.parent)), node.lineno, module, target,
                                    in_function, type_only, reason))
    return found


def upward(imports: list[Import]) -> list[Import]:
    """The imports that run and point to a higher layer."""
    return [i for i in imports if not i.type_only and layer_of(i.target) is not None
            and layer_of(i.target) > layer_of(i.source)]


def unexplained(imports: list[Import]) -> list[Import]:
    """Function-level import statements without a reason comment (one per statement)."""
    seen, out = set(), []
    for i in imports:
        if i.in_function and not i.reason and (i.file, i.line) not in seen:
            seen.add((i.file, i.line))
            out.append(i)
    return out


def _layer_name(module: str) -> str:
    return LAYERS[layer_of(module)][0]


def test_every_module_belongs_to_a_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        layer_of(module_name(path, PACKAGE))  # raises for a module of no layer
    named = {name for _, members in LAYERS for name in members} - {"__init__"}
    on_disk = {p.stem for p in PACKAGE.glob("*.py")} | {p.name for p in PACKAGE.iterdir()
                                                         if (p / "__init__.py").is_file()}
    assert named <= on_disk, f"LAYERS names modules that do not exist: {sorted(named - on_disk)}"


def test_no_import_points_to_a_higher_layer() -> None:
    problems = [f"{i.file}:{i.line}: {_layer_name(i.source)} imports {i.target}, in "
                f"{_layer_name(i.target)}" + (" (inside a function)" if i.in_function else "")
                for i in upward(scan())]
    assert not problems, "imports that point upward:\n" + "\n".join(problems)


def test_an_import_inside_a_function_says_why() -> None:
    problems = [f"{i.file}:{i.line}: `import {i.target}` inside a function without a reason "
                f"comment (on its line or the line above)" for i in unexplained(scan())]
    assert not problems, "\n".join(problems)


# -- the scanner itself ---------------------------------------------------------------------
@pytest.fixture
def fake_package(tmp_path: Path) -> Path:
    root = tmp_path / "unlearnbench"
    for folder in ("run", "report", "data"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "errors.py").write_text("")
    (root / "run" / "config.py").write_text("")
    (root / "report" / "records.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from ..errors import X\n"                       # down: fine
        "from ..run.config import RunConfig\n"           # up, module level
        "if TYPE_CHECKING:\n"
        "    from ..run import config\n"                 # type only: no arrow
        "def f():\n"
        "    from ..run import config\n"                 # up, inside a function, no reason
        "    # pandas is heavy\n"
        "    import pandas\n"
        "    import numpy\n"                             # same block: the reason above covers it
        "\n"
        "    import json\n")                             # a new block: no reason
    return root


def test_the_scanner_finds_upward_arrows_and_unexplained_imports(fake_package: Path) -> None:
    imports = scan(fake_package)
    arrows = [(i.line, i.target, i.in_function) for i in upward(imports)]
    assert arrows == [(3, "unlearnbench.run.config", False), (7, "unlearnbench.run.config", True)]
    assert [(i.line, i.target) for i in unexplained(imports)] == [
        (7, "unlearnbench.run.config"), (12, "json")]
