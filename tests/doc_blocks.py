"""Reading the documentation's fenced code blocks by page and section.

Tests that check what README.md and docs/ print read them through :func:`doc_block` or
:func:`doc_section`, always with literal arguments: ``tests/test_doc_blocks.py`` finds those calls
in the test sources, and a runnable block that no test reads (and that is not marked
``<!-- not run: REASON -->``) fails it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\S*)\s*$")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(\S.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    page: str        # relative to the repository root, e.g. "docs/trial.md"
    section: str     # the text of the nearest heading above the block
    language: str
    text: str
    line: int        # of the opening fence, 1-based
    not_run: str | None  # the reason given in a "<!-- not run: ... -->" line just above it


def blocks(page: str) -> list[Block]:
    """Every fenced block of ``page``, with its section (headings inside blocks do not count)."""
    found: list[Block] = []
    section, language, start, body, previous = "", None, 0, [], ""
    for number, line in enumerate((ROOT / page).read_text().splitlines(), start=1):
        if language is None:
            if fence := FENCE.match(line):
                language, start, body = fence.group(1), number, []
                marker = NOT_RUN.match(previous)
                reason = marker.group(1) if marker else None
            elif heading := HEADING.match(line):
                section = heading.group(2)
            if line.strip():
                previous = line
        elif line.startswith("```"):
            found.append(Block(page, section, language, "\n".join(body) + "\n", start, reason))
            language, previous = None, line
        else:
            body.append(line)
    return found


def doc_section(page: str, section: str) -> str:
    """The text of ``page``'s section ``section`` (up to the next heading of any level)."""
    lines, inside, fenced = [], False, False
    for line in (ROOT / page).read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        heading = None if fenced else HEADING.match(line)
        if heading:
            if inside:
                break
            inside = heading.group(2) == section
            continue
        if inside:
            lines.append(line)
    if not inside and not lines:
        raise LookupError(f"{page} has no section {section!r}")
    return "\n".join(lines) + "\n"


def doc_block(page: str, section: str, language: str, containing: str = "") -> str:
    """The one ``language`` block of ``page``'s ``section`` that contains ``containing``."""
    matching = [b.text for b in blocks(page)
                if b.section == section and b.language == language and containing in b.text]
    if len(matching) != 1:
        raise LookupError(f"{len(matching)} {language} blocks in {page}, section {section!r}, "
                          f"contain {containing!r}; expected exactly one")
    return matching[0]
