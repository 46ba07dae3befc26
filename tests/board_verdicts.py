"""What the leaderboard READMEs' verdicts rest on, shared by their tests: a board's records and
summary, each seed's Disparity Ave. to the same seed's Retrain, and the noise rule (a paired
difference over seeds counts when its mean exceeds two standard errors)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from unlearnbench.report.leaderboard import summarize
from unlearnbench.report.records import load_records

LEADERBOARD = Path(__file__).resolve().parents[1] / "leaderboard"
DISPARITY = ("UA", "MIA", "RA", "TA")  # the paper's Disparity Ave. averages their gaps to Retrain


class Board:
    """One leaderboard folder: its records, their summary (one row per cell and method)."""

    def __init__(self, name: str):
        self.folder = LEADERBOARD / name
        self.records = load_records(self.folder / "records")
        self.summary = summarize(self.records)

    def row(self, forget: str, pruning: str, method: str):
        s = self.summary
        rows = s[(s["forget"] == forget) & (s["pruning"] == pruning) & (s["method"] == method)]
        return rows.iloc[0] if len(rows) == 1 else None

    def v(self, forget: str, pruning: str, method: str, column: str) -> float:
        row = self.row(forget, pruning, method)
        assert row is not None, (self.folder.name, forget, pruning, method)
        return float(row[column])

    def readme(self) -> str:
        """The README with its whitespace collapsed (a sentence may wrap anywhere)."""
        return " ".join((self.folder / "README.md").read_text().split())

    def per_seed(self, forget: str, pruning: str, method: str,
                 value: Callable[[object, object], float] | None = None) -> dict[int, float]:
        """Each seed's value for a row: by default its Disparity Ave. to that seed's Retrain
        under the same pruning; ``value(record, retrain_record)`` for another measure."""
        value = value or (lambda r, o: sum(abs(r.metrics[m] - o.metrics[m]) for m in DISPARITY) / 4)
        def cell(r) -> tuple:
            return r.forget, pruning_of(r), r.seed
        oracle = {cell(r): r for r in self.records if r.method == "retrain"}
        return {r.seed: value(r, oracle[cell(r)]) for r in self.records
                if (r.label or r.method) == method and r.forget == forget and pruning_of(r) == pruning}


def pruning_of(record) -> str:
    """A record's pruning as the summary names it: "dense" or "PRUNER SPARSITY"."""
    return "dense" if not record.pruner else f"{record.pruner} {record.target_sparsity:g}"


def paired(a: dict[int, float], b: dict[int, float]) -> tuple[float, float]:
    """Mean of a - b over the seeds both have, and its standard error (sample sd / sqrt(n))."""
    diffs = [a[s] - b[s] for s in sorted(a) if s in b]
    mean = sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
    return mean, sd / math.sqrt(len(diffs))


def beyond_noise(mean: float, se: float) -> int:
    """+1 / -1 when the paired difference exceeds two standard errors, else 0."""
    return 0 if abs(mean) <= 2 * se else (1 if mean > 0 else -1)


def says(readme: str, sentence: str) -> None:
    assert " ".join(sentence.split()) in readme, sentence


def verdict(favour: int, against: int, total: int) -> str:
    """The declared rule: holds when at least three quarters of the comparisons favour the claim
    beyond noise and none goes against it beyond noise; is reversed when as many go against it
    and none favours it; does not hold when none favours it; otherwise it holds in part."""
    if favour >= 0.75 * total and against == 0:
        return "holds"
    if against >= 0.75 * total and favour == 0:
        return "is reversed"
    return "does not hold" if favour == 0 else "holds in part"
