"""README's first command runs as written and prints the table README shows (RTE aside)."""

from __future__ import annotations

import re
import shlex
from doc_blocks import doc_section
from unlearnbench.cli import main

README = doc_section("README.md", "unlearnbench")  # the first screen, above the first section


def _rows(text: str) -> dict[str, dict[str, str]]:
    lines = [line for line in text.splitlines() if line.startswith("|") and "---" not in line]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[1:]]
    return {row["method"]: row for row in rows}


def test_the_first_command_prints_what_readme_shows(tmp_path, shared_cache, capsys, monkeypatch) -> None:
    block = re.search(r"```bash\n(.*?)\n```", README, re.S).group(1)
    command = block.split("&&", 1)[1].strip()
    args = shlex.split(command)
    assert args[0] == "unlearnbench"
    monkeypatch.chdir(tmp_path)  # its records go to ./results, as a newcomer's do
    assert main([*args[1:], "--cache-dir", str(shared_cache)]) == 0
    printed = _rows(capsys.readouterr().out)
    shown = _rows(re.search(r"table of the three.*?```\n(.*?)```", README, re.S).group(1))
    assert set(shown) == {"sparse_ft", "retrain", "none"} and set(shown) <= set(printed)
    for method, row in shown.items():
        for column, cell in row.items():
            if cell != "...":  # RTE is a wall clock
                assert printed[method][column] == cell, (method, column)
    assert printed["sparse_ft"]["vs none"] == "differs" and float(printed["sparse_ft"]["UA"].split()[0]) == 100
