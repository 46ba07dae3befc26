"""No runnable block of the documentation goes unchecked, and its links lead somewhere.

Every ```python and ```bash block of README.md and docs/ is either read by a test (a call
``doc_block(PAGE, SECTION, ...)`` or ``doc_section(PAGE, SECTION)`` with literal arguments in
tests/, see tests/doc_blocks.py) or marked ``<!-- not run: REASON -->`` on the line above it.
Reading the page and section is what counts; the reading test decides how much to run.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest

from doc_blocks import ROOT, blocks, doc_block
from unlearnbench.cli import build_parser

RUNNABLE = {"python", "bash"}
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))]
# Linked before it exists: the folder's README comes with the rerun of the main table.
AWAITED: set[str] = set()  # files a page may link to before they are committed (none now)


def read_sections() -> set[tuple[str, str]]:
    """(page, section) of every doc_block/doc_section call with literal arguments in tests/."""
    read = set()
    for source in (ROOT / "tests").glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in {"doc_block", "doc_section"} and len(node.args) >= 2):
                page, section = node.args[:2]
                if isinstance(page, ast.Constant) and isinstance(section, ast.Constant):
                    read.add((page.value, section.value))
                elif isinstance(page, ast.Name) and isinstance(section, ast.Constant):
                    read.add((_module_constant(source, page.id), section.value))
    return read


def _module_constant(source: Path, name: str) -> str | None:
    """The string a module-level ``NAME = "..."`` of ``source`` binds (e.g. a guide's path)."""
    for node in ast.parse(source.read_text()).body:
        if (isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == [name]
                and isinstance(node.value, ast.Constant)):
            return node.value.value
    return None


def test_every_runnable_block_is_read_by_a_test_or_marked_not_run() -> None:
    read = read_sections()
    unchecked = [f"{b.page}:{b.line} ({b.language}, section {b.section!r})"
                 for page in PAGES for b in blocks(page)
                 if b.language in RUNNABLE and b.not_run is None and (b.page, b.section) not in read]
    assert not unchecked, ("blocks that no test reads; read them with doc_block in a test, or put "
                           "'<!-- not run: REASON -->' above them:\n" + "\n".join(unchecked))


def test_the_checker_sees_the_blocks_and_the_tests_that_read_them() -> None:
    read = read_sections()
    assert ("docs/extending/unlearner.md", "The package") in read  # tests/test_plugin_cli.py
    assert ("docs/extending/unlearner.md", "Gradients without `task.fit`") in read  # via GUIDE
    assert any(b.not_run for b in blocks("docs/trial.md"))
    assert not (ROOT / "docs" / "nothing.md").exists()


def test_readmes_quick_start_commands_are_ones_the_command_line_accepts() -> None:
    block = doc_block("README.md", "Quick start", "bash", "unlearnbench run")
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]
    assert len(commands) >= 5
    parser = build_parser()
    for command in commands:
        args = shlex.split(command)
        assert args[0] == "unlearnbench", command
        parser.parse_args(args[1:])  # an unknown flag or command exits with status 2


LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES)
def test_every_relative_link_leads_to_a_file_of_the_repository(page: str) -> None:
    text = re.sub(r"```.*?```", "", (ROOT / page).read_text(), flags=re.S)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:|#", target):
            continue
        path = ((ROOT / page).parent / target.split("#", 1)[0]).resolve()
        relative = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
        if not path.exists() and relative not in AWAITED:
            broken.append(target)
    assert not broken, f"{page} links to missing files: {broken}"
