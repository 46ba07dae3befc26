"""leaderboard/main-table-small/README.md, rebuilt from its records: every table and every
sentence with a number is recomputed here from the records (and the tuning study's), and must
appear in the README verbatim. ``python tests/test_main_table_small.py`` prints the blocks."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from unlearnbench.report.leaderboard import summarize
from unlearnbench.report.records import load_records
from unlearnbench.run.tuning import oracle_score

from board_verdicts import beyond_noise, paired

FOLDER = Path(__file__).resolve().parents[1] / "leaderboard" / "main-table-small"
SCENARIOS = {"class-wise": "class:0", "random": "random:0.1"}
PRUNINGS = ("dense", "omp 0.95")
METHODS = ("ft", "ga", "ff", "iu", "sparse_ft")
METRICS = ("UA", "MIA", "RA", "TA")
# the paper's main table (reference notes, paper.md): dense / 95% per scenario, method, metric
PAPER = {
    ("class-wise", "retrain"): ("100.00 / 100.00", "100.00 / 100.00", "100.00 / 99.99", "94.83 / 91.80"),
    ("class-wise", "ft"): ("22.53 / 73.64", "75.00 / 83.02", "99.87 / 99.87", "94.31 / 94.32"),
    ("class-wise", "ga"): ("93.08 / 98.09", "94.03 / 97.74", "92.60 / 87.74", "86.64 / 82.58"),
    ("class-wise", "ff"): ("79.93 / 94.83", "100.00 / 100.00", "99.45 / 99.48", "94.18 / 94.04"),
    ("class-wise", "iu"): ("87.82 / 99.47", "95.96 / 99.93", "97.98 / 97.24", "91.42 / 90.76"),
    ("random", "retrain"): ("5.41 / 6.77", "13.12 / 14.17", "100.00 / 100.00", "94.42 / 93.33"),
    ("random", "ft"): ("6.83 / 5.97", "14.97 / 13.36", "96.61 / 96.99", "90.13 / 90.29"),
    ("random", "ga"): ("7.54 / 5.62", "10.04 / 11.76", "93.31 / 95.44", "89.28 / 89.26"),
    ("random", "ff"): ("7.84 / 8.16", "9.52 / 10.80", "92.05 / 92.29", "88.10 / 87.79"),
    ("random", "iu"): ("2.03 / 6.51", "5.07 / 11.93", "98.26 / 94.94", "91.33 / 88.74"),
}


class Table:
    def __init__(self) -> None:
        self.records = load_records(FOLDER / "records")
        self.summary = summarize(self.records)
        self.study = json.loads((FOLDER / "tuning" / "study.json").read_text())

    def row(self, scenario: str, pruning: str, method: str):
        s = self.summary
        rows = s[(s["forget"] == SCENARIOS[scenario]) & (s["pruning"] == pruning) & (s["method"] == method)]
        return rows.iloc[0] if len(rows) == 1 else None

    def v(self, scenario: str, pruning: str, method: str, column: str) -> float:
        return float(self.row(scenario, pruning, method)[column])

    def pair(self, scenario: str, method: str, column: str, fmt: str = "{:.2f}") -> str:
        return " / ".join(fmt.format(self.v(scenario, p, method, column)) for p in PRUNINGS)

    def variants(self, method: str) -> list[str]:
        """The rows of a method: its oracle-tuned row, and the oracle-free one where it exists."""
        return [m for m in (method, f"{method}.oracle-free")
                if any(self.row(s, p, m) is not None for s in SCENARIOS for p in PRUNINGS)]


def paper_table(t: Table) -> str:
    lines = ["| scenario | method | UA ours | UA paper | MIA-Eff. ours | MIA-Eff. paper | RA ours | "
             "RA paper | TA ours | TA paper |", "|---|---|---|---|---|---|---|---|---|---|"]
    for scenario in SCENARIOS:
        for method in ("retrain", "none", *METHODS):
            paper = PAPER.get((scenario, method), ("—",) * 4)
            cells = [f"{t.pair(scenario, method, f'{m}_mean')} | {p}" for m, p in zip(METRICS, paper)]
            lines.append(f"| {scenario} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def disparity_table(t: Table) -> str:
    lines = ["| scenario | method | Disparity Ave. (dense / 95%) | vs none (dense / 95%) | "
             "steps (dense / 95%) |", "|---|---|---|---|---|"]
    inert = {"yes": "none-like", "no": "differs", "baseline": "baseline"}
    for scenario in SCENARIOS:
        for method in ("none", *[v for m in METHODS for v in t.variants(m)]):
            rows = [t.row(scenario, p, method) for p in PRUNINGS]
            if all(r is None for r in rows):
                continue  # an oracle-free row that chose the oracle's values everywhere
            same = "= oracle"  # the criteria chose the same values: no row of its own
            cell = lambda column, fmt: " / ".join(same if r is None else fmt.format(float(r[column]))
                                                  for r in rows)
            flags = " / ".join(same if r is None else inert.get(str(r["inert"]), "—") for r in rows)
            lines.append(f"| {scenario} | {method} | {cell('disparity', '{:.2f}')} | {flags} | "
                         f"{cell('work:steps_mean', '{:.0f}')} |")
    return "\n".join(lines)


def values_table(t: Table) -> str:
    lines = ["| cell | method | oracle | oracle-free |", "|---|---|---|---|"]
    for cell, entry in t.study["cells"].items():
        for method, tuned in entry["methods"].items():
            shown = [", ".join(f"{k}={v:.3g}" for k, v in tuned["chosen"][c]["params"].items()
                               if k in tuned["space"]) for c in ("oracle", "oracle-free")]
            lines.append(f"| {cell.replace('|', ', ')} | {method} | {shown[0]} | {shown[1]} |")
    return "\n".join(lines)


def tuning_cost(t: Table) -> str:
    tuning = load_records(FOLDER / "tuning" / "records")
    seconds = sum(r.timings.unlearn_s + r.timings.eval_s for r in tuning)
    p = t.study["protocol"]
    return (f"{len(tuning)} tuning trials ({p['trials']} candidates per method and cell, 5 methods, "
            f"4 cells, plus Retrain and none on each tuning split), {seconds / 60:.0f} minutes of "
            f"unlearning and evaluation in their records")


def budget_sentence() -> str:
    runs = {(r.config["method_params"]["epochs"], round(r.config["method_params"]["lr"], 4)): r
            for r in load_records(FOLDER / "budget" / "records")}
    study = Table().study["cells"]["dense|class:0"]
    tuning = {r.run_id: r for r in load_records(FOLDER / "tuning" / "records")}
    retrain = [tuning[i] for i in study["references"]["oracle"]["records"]]
    chosen = study["methods"]["ft"]["chosen"]["oracle"]
    ten = [tuning[i] for i in study["methods"]["ft"]["candidates"][chosen["number"]]["records"]]
    lr = chosen["params"]["lr"]
    three, top = runs[(3, round(lr, 4))], runs[(3, 0.1)]
    score = lambda rs: oracle_score(rs, retrain)
    return (f"FT at the oracle-chosen lr {lr:.3g}: 10 epochs ({ten[0].work.optimizer_steps} steps) "
            f"reach a Disparity Ave. of {score(ten):.2f} to Retrain on the tuning split, 3 epochs "
            f"({three.work.optimizer_steps} steps) {score([three]):.2f}, and 3 epochs at lr 0.1, the "
            f"top of the paper's range, {score([top]):.2f} (UA {ten[0].metrics['UA']:.2f}, "
            f"{three.metrics['UA']:.2f} and {top.metrics['UA']:.2f})")


BLOCKS = {"paper": paper_table, "disparity": disparity_table, "values": values_table,
          "cost": tuning_cost, "budget": lambda t: budget_sentence()}


def block(name: str) -> str:
    return BLOCKS[name](Table())


@pytest.fixture(scope="module")
def readme() -> str:
    path = FOLDER / "README.md"
    if not path.is_file():
        pytest.fail("leaderboard/main-table-small/README.md is missing")
    return " ".join(path.read_text().split())


@pytest.mark.parametrize("name", ["paper", "disparity", "values", "cost", "budget"])
def test_readme_block_is_the_records(readme: str, name: str) -> None:
    assert " ".join(block(name).split()) in readme, name




# -- the verdicts: each sentence's numbers, and the criterion its verdict word rests on --------

APPROXIMATE = ("ft", "ga", "ff", "iu")  # the methods of claim 1
PRUNERS = {"dense": None, "omp 0.95": "omp"}


def seed_disparities(t: Table, scenario: str, pruning: str, method: str) -> dict[int, float]:
    """Each seed's Disparity Ave. (mean |gap| of UA, MIA, RA and TA) to that seed's Retrain."""
    def key(r):
        return r.forget, r.pruner, r.seed
    oracle = {key(r): r for r in t.records if r.method == "retrain"}
    return {r.seed: sum(abs(r.metrics[m] - oracle[key(r)].metrics[m]) for m in ("UA", "MIA", "RA", "TA")) / 4
            for r in t.records if (r.label or r.method) == method and r.forget == SCENARIOS[scenario]
            and r.pruner == PRUNERS[pruning]}


def claim1(t: Table) -> tuple[str, str]:
    parts, moves = [], {}
    for s in SCENARIOS:
        for m in APPROXIMATE:
            mean, se = paired(seed_disparities(t, s, "dense", m), seed_disparities(t, s, "omp 0.95", m))
            moves[s, m] = beyond_noise(mean, se)
            parts.append(f"{s} {m} {t.v(s, 'dense', m, 'disparity'):.2f} -> "
                         f"{t.v(s, 'omp 0.95', m, 'disparity'):.2f} ({mean:+.2f} ± {se:.2f})")
    falls = [pair for pair, move in moves.items() if move > 0]
    rises = sum(move < 0 for move in moves.values())
    both = sorted({m for _, m in falls if all((s, m) in falls for s in SCENARIOS)})
    verdict = ("holds" if len(falls) >= 6 else
               f"holds for {', '.join(both).upper()} only" if both else "does not hold")
    text = (f"Disparity Ave. falls from dense to 95% sparse beyond seed noise for {len(falls)} of "
            f"{len(moves)} method-scenario pairs and rises beyond it for {rises} "
            f"(each pair: dense -> sparse, then the mean fall over seeds ± its standard error: "
            + "; ".join(parts) + ")")
    return text, verdict


def claim2(t: Table) -> tuple[str, str]:
    gaps = {s: paired(seed_disparities(t, s, "dense", "ft"), seed_disparities(t, s, "dense", "sparse_ft"))
            for s in SCENARIOS}
    v = lambda s, m, c="disparity": t.v(s, "dense", m, c)
    steps = v("class-wise", "sparse_ft", "work:steps_mean"), v("class-wise", "ft", "work:steps_mean")
    text = (f"On the dense model sparse_ft's Disparity Ave. is {v('class-wise', 'sparse_ft'):.2f} class-wise "
            f"(FT: {v('class-wise', 'ft'):.2f}; FT minus sparse_ft over seeds "
            f"{gaps['class-wise'][0]:+.2f} ± {gaps['class-wise'][1]:.2f}) and {v('random', 'sparse_ft'):.2f} "
            f"random (FT: {v('random', 'ft'):.2f}; {gaps['random'][0]:+.2f} ± {gaps['random'][1]:.2f}), "
            f"in the same {steps[0]:.0f} optimizer steps. Class-wise it forgets the whole class (UA "
            f"{v('class-wise', 'sparse_ft', 'UA_mean'):.2f}, FT {v('class-wise', 'ft', 'UA_mean'):.2f}) "
            f"but loses the retain set (RA {v('class-wise', 'sparse_ft', 'RA_mean'):.2f}, FT "
            f"{v('class-wise', 'ft', 'RA_mean'):.2f}; TA {v('class-wise', 'sparse_ft', 'TA_mean'):.2f}, "
            f"Retrain {v('class-wise', 'retrain', 'TA_mean'):.2f}). FT on the 95%-sparse model reaches "
            f"{t.v('class-wise', 'omp 0.95', 'ft', 'disparity'):.2f}")
    better = all(beyond_noise(*gaps[s]) > 0 for s in SCENARIOS) and steps[0] == steps[1]
    return text, "holds" if better else "does not hold"


def cost(t: Table) -> str:
    shares = {m: t.v("class-wise", "dense", m, "work:steps_of_retrain") for m in ("ft", "sparse_ft", "ga")}
    return (f"FT and sparse_ft take {100 * shares['ft']:.0f}% of Retrain's optimizer steps "
            f"({t.v('class-wise', 'dense', 'retrain', 'work:steps_mean'):.0f}), GA "
            f"{100 * shares['ga']:.1f}%; FF and IU take none")


def inert_rows(t: Table) -> str:
    s = t.summary
    flagged = s[s["inert"] == "yes"]
    names = sorted(f"{r.method} ({r.pruning}, {r.forget})" for r in flagged.itertuples())
    return (f"{len(flagged)} of {int((s['inert'].isin(['yes', 'no'])).sum())} judged rows show no "
            f"measurable unlearning" + (f": {', '.join(names)}" if names else ""))


def oracle_dependence(t: Table) -> str:
    parts, worst = [], (-math.inf, "")
    for method in METHODS:
        gaps = [t.v(s, p, f"{method}.oracle-free", "disparity") - t.v(s, p, method, "disparity")
                for s in SCENARIOS for p in PRUNINGS if t.row(s, p, f"{method}.oracle-free") is not None]
        same = 4 - len(gaps)
        mean = sum(gaps) / len(gaps) if gaps else 0.0
        parts.append(f"{method} {mean:+.2f} ({same} of 4 cells chose the same values)")
        worst = max(worst, (mean, method))
    return ("Oracle-free minus oracle Disparity Ave., mean over cells: " + ", ".join(parts)
            + f"; {worst[1]} loses the most without the oracle")


def random_regime(t: Table) -> str:
    ua, ta = t.v("random", "dense", "retrain", "UA_mean"), t.v("random", "dense", "retrain", "TA_mean")
    ha = t.v("random", "dense", "retrain", "HA_mean")
    return (f"Retrain's random-forgetting UA is {ua:.2f}, about 100 - TA ({100 - ta:.2f}); its forget "
            f"accuracy {100 - ua:.2f} matches HA {ha:.2f}")


def run_cost(t: Table) -> str:
    run = json.loads((FOLDER / "recipe-oracle-run.json").read_text())
    return (f"criteria = oracle: {run['runs']} runs, {run['ran']} of them in this run, in "
            f"{run['wall_clock_s']:.0f} s")


def free_run(t: Table) -> str:
    run = json.loads((FOLDER / "recipe.json").read_text())
    return (f"criteria = oracle and oracle-free: {run['runs']} runs in all, {run['ran']} of them run by "
            f"this rerun's three invocations in {run['wall_clock_s']:.0f} s of wall clock")


def tuning_wall(t: Table) -> str:
    return f"the study's wall clock, over its two invocations, was {t.study['wall_clock_s']:.0f} s"


def generalization(t: Table) -> str:
    return (f"it generalizes far worse (TA about {t.v('class-wise', 'dense', 'none', 'TA_mean'):.0f} "
            f"against 94)")


def unseen(t: Table) -> str:
    return (f"unseen examples are misclassified about "
            f"{100 - t.v('random', 'dense', 'retrain', 'TA_mean'):.0f}% of the time here")


SENTENCES = {"claim1": lambda t: claim1(t)[0], "claim2": lambda t: claim2(t)[0], "cost": cost,
             "inert": inert_rows, "oracle": oracle_dependence, "random": random_regime,
             "run": run_cost, "free_run": free_run, "tuning_wall": tuning_wall, "generalization": generalization,
             "unseen": unseen}
BLOCKS.update({f"sentence:{k}": f for k, f in SENTENCES.items()})


@pytest.mark.parametrize("name", sorted(SENTENCES))
def test_readme_sentence_is_the_records(readme: str, name: str) -> None:
    assert " ".join(SENTENCES[name](Table()).split()) in readme, name


def test_verdict_words_follow_their_criteria(readme: str) -> None:
    """Claim 1 holds where the fall beyond noise covers 6 of 8 pairs, or for the methods whose
    Disparity falls beyond noise in both scenarios; claim 2 where sparse_ft is below FT beyond
    noise in both scenarios at the same steps."""
    t = Table()
    for claim, (_, verdict) in (("Claim 1", claim1(t)), ("Claim 2", claim2(t))):
        assert f"**{claim}" in readme and f": {verdict}.**" in readme.split(f"**{claim}")[1][:200], claim


if __name__ == "__main__":
    for name in sys.argv[1:] or BLOCKS:
        print(f"--- {name}\n{block(name)}\n")
