"""The READMEs of the small-scale reruns with tuned values (pruners-small, gamma-schedules-small,
backdoor-small), rebuilt from their records: every table and every sentence with a number is
recomputed here and must appear in its README verbatim, and each verdict word follows its
stated criterion. ``python tests/test_reruns_small.py BOARD [BLOCK]`` prints the blocks."""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable

import pytest

from unlearnbench import UNLEARNERS
from unlearnbench.run.config import prepare
from unlearnbench.run.recipes import load_recipe, recipe_cells
from unlearnbench.run.tuning import load_values

from board_verdicts import LEADERBOARD, Board, beyond_noise, paired, pruning_of, says, verdict

MASKS = {"omp": "OMP", "imp": "IMP", "synflow": "SynFlow", "random": "random"}
LEVELS = (0.5, 0.9, 0.95)
FLAG = {"yes": "none-like", "no": "differs", "baseline": "baseline"}


@functools.cache
def board(name: str) -> Board:
    """A board's records and summary, read once however many blocks and tests ask for them."""
    return Board(name)


def _n(value: float, fmt: str = "{:.2f}") -> str:
    return fmt.format(value)


def run_cost(board: Board) -> str:
    run = json.loads((board.folder / "recipe.json").read_text())
    return (f"{run['runs']} runs, {run['ran']} of them run by this rerun in {run['wall_clock_s']:,.0f} s of "
            f"wall clock on a 2-core CPU")


def retrain_fit(board: Board, forget: str) -> str:
    s = board.summary
    ra = s[(s["method"] == "retrain") & (s["forget"] == forget)]["RA_mean"]
    return f"every Retrain fits its retain set (RA at least {ra.min():.2f})"


def steps(board: Board, forget: str, methods: tuple[str, ...]) -> str:
    s = board.summary
    rows = s[s["method"].isin(methods) & (s["forget"] == forget)]
    taken = sorted(set(rows["work:steps_mean"].round().astype(int)))
    share = sorted(set((100 * rows["work:steps_of_retrain"]).round().astype(int)))
    retrain = sorted(set(s[(s["method"] == "retrain") & (s["forget"] == forget)]["work:steps_mean"]
                         .round().astype(int)))
    assert len(taken) == len(share) == len(retrain) == 1, (taken, share, retrain)
    names = ", ".join(methods[:-1]) + " and " + methods[-1]
    return (f"{names} took {taken[0]:,} optimizer steps in every cell, "
            f"{share[0]}% of Retrain's {retrain[0]:,}")


def inert(board: Board) -> str:
    s = board.summary
    judged = s[s["inert"].isin(["yes", "no"])]
    flagged = judged[judged["inert"] == "yes"]
    names = sorted(f"{r.method} ({r.pruning}, {r.forget})" for r in flagged.itertuples())
    return (f"{len(flagged)} of {len(judged)} judged rows show no measurable unlearning against none"
            + (f": {', '.join(names)}" if names else ""))


def params_text(params: dict) -> str:
    return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in params.items())


# -- pruners-small ------------------------------------------------------------------------------

PRUNERS = "pruners-small"
PRUNERS_BORROWED = "pruners-small-borrowed"  # the main table's values, borrowed (superseded)


def pruners_table(b: Board) -> str:
    levels = " / ".join(f"{s:g}" for s in LEVELS)
    lines = ["| method | mask | " + " | ".join(f"Disparity {s:g}" for s in LEVELS)
             + f" | UA {levels} | MIA-Eff. {levels} | RA {levels} | vs none {levels} |",
             "|---|---|" + "---|" * (len(LEVELS) + 4)]
    for method in ("ft", "sparse_ft"):
        for mask, name in MASKS.items():
            rows = [b.row("class:0", f"{mask} {s:g}", method) for s in LEVELS]
            joined = lambda c: " / ".join(f"{float(r[c]):.2f}" for r in rows)  # noqa: E731
            lines.append(f"| {method} | {name} | " + " | ".join(f"{float(r['disparity']):.2f}" for r in rows)
                         + f" | {joined('UA_mean')} | {joined('MIA_mean')} | {joined('RA_mean')} | "
                         f"{' / '.join(FLAG[str(r['inert'])] for r in rows)} |")
        dense = b.row("class:0", "dense", method)
        lines.append(f"| {method} | (dense) | {float(dense['disparity']):.2f} |" + " |" * (len(LEVELS) - 1)
                     + f" {float(dense['UA_mean']):.2f} | {float(dense['MIA_mean']):.2f} | "
                     f"{float(dense['RA_mean']):.2f} | {FLAG[str(dense['inert'])]} |")
    return "\n".join(lines)


def pruners_claim3(b: Board) -> tuple[str, str]:
    """IMP's Disparity minus OMP's and minus SynFlow's, per seed, at each sparsity, for FT and
    sparse_ft: positive favours the claim."""
    parts, words, counts = [], {}, []
    for method in ("ft", "sparse_ft"):
        favour = against = 0
        for level in LEVELS:
            imp = b.per_seed("class:0", f"imp {level:g}", method)
            for mask in ("omp", "synflow"):
                mean, se = paired(imp, b.per_seed("class:0", f"{mask} {level:g}", method))
                move = beyond_noise(mean, se)
                favour, against = favour + (move > 0), against + (move < 0)
                parts.append(f"{method} {MASKS[mask]} {level:g}: {mean:+.2f} ± {se:.2f}")
        words[method] = verdict(favour, against, 2 * len(LEVELS))
        counts.append(f"{method} {favour} of {2 * len(LEVELS)} in favour, {against} against")
    text = (f"IMP's Disparity Ave. minus OMP's and minus SynFlow's, per seed (positive: the mask "
            f"IMP is compared with is closer to Retrain), mean ± standard error over seeds: "
            + "; ".join(parts) + f". Beyond noise: {'; '.join(counts)}")
    word = words["ft"] if words["ft"] == words["sparse_ft"] else \
        f"{words['ft']} for FT, {words['sparse_ft']} for sparse_ft"
    return text, word


def pruners_claim1(b: Board) -> tuple[str, str]:
    """Pruning first narrows the gap: dense minus pruned Disparity per seed at the highest
    sparsity (the main table's 95%), each mask."""
    parts, favour, against = [], 0, 0
    top = LEVELS[-1]
    for method in ("ft", "sparse_ft"):
        dense = b.per_seed("class:0", "dense", method)
        for mask, name in MASKS.items():
            mean, se = paired(dense, b.per_seed("class:0", f"{mask} {top:g}", method))
            move = beyond_noise(mean, se)
            favour, against = favour + (move > 0), against + (move < 0)
            parts.append(f"{method} {name} {mean:+.2f} ± {se:.2f}")
    text = (f"Dense minus {100 * top:g}%-sparse Disparity Ave., per seed: " + "; ".join(parts)
            + f". Narrower beyond noise: {favour} of 8; wider: {against}")
    return text, verdict(favour, against, 8)


def method_params(b: Board) -> dict[tuple[str, str], str]:
    """The parameters FT and sparse_ft ran with, on the dense model and under any mask: one
    set each (asserted)."""
    params: dict[tuple[str, str], set[str]] = {}
    for r in b.records:
        if r.method in ("ft", "sparse_ft"):
            key = (r.method, "dense" if not r.pruner else "pruned")
            params.setdefault(key, set()).add(json.dumps(r.config["method_params"], sort_keys=True))
    assert all(len(v) == 1 for v in params.values()), params
    return {k: params_text({p: x for p, x in json.loads(next(iter(v))).items()
                            if p in UNLEARNERS.get(k[0]).search_space}) for k, v in params.items()}


def pruners_values(b: Board) -> str:
    show = method_params(b)
    return (f"FT runs with {show['ft', 'dense']} on the dense model and {show['ft', 'pruned']} under "
            f"every mask; sparse_ft with {show['sparse_ft', 'dense']} dense and "
            f"{show['sparse_ft', 'pruned']} under every mask")


def borrowed_recipe():
    """The pruners recipe as the superseded run had it: the main table's values, borrowed."""
    return load_recipe(str(LEADERBOARD / PRUNERS_BORROWED / "pruners-borrowed.toml"))


def pruners_borrowed(b: Board) -> str:
    values = load_values(borrowed_recipe().values_path("small"))["values"]
    ft = [values[c]["ft"]["oracle"]["lr"] for c in ("dense|class:0", "omp:0.95|class:0")]
    sp = [values[c]["sparse_ft"]["oracle"] for c in ("dense|class:0", "omp:0.95|class:0")]
    return (f"the main table's study chose FT's lr {ft[0]:.3g} on the dense model and {ft[1]:.3g} on "
            f"the 95%-sparse one, and sparse_ft's lr {sp[0]['lr']:.3g} / {sp[1]['lr']:.3g} with gamma "
            f"{sp[0]['gamma']:.3g} / {sp[1]['gamma']:.3g}")


def pruners_own_study(b: Board) -> str:
    cells, _, _ = recipe_cells("pruners", "small", execution={})
    trials = load_values(borrowed_recipe().values_path("small"))["protocol"]["trials"]
    pairs = sum(len(c.methods) for c in cells)
    return (f"a study of its own would take {pairs * trials + 2 * len(cells)} tuning trials ({trials} "
            f"candidates x {pairs} method-cell pairs, plus Retrain and none on each of the {len(cells)} "
            f"cells' tuning splits)")


def verdict_line(b: Board) -> str:
    """The two claims' verdicts and counts in one sentence (each pruners README quotes the
    other board's)."""
    (text3, word3), (text1, word1) = pruners_claim3(b), pruners_claim1(b)
    return (f"claim 3 {word3} (beyond noise: {text3.split('Beyond noise: ')[1]}); claim 1 along the grid "
            f"at 95% {word1} (narrower beyond noise: {text1.split('Narrower beyond noise: ')[1]})")


# -- pruners-small, tuned per cell --------------------------------------------------------------

def _study(b: Board) -> dict:
    return json.loads((b.folder / "tuning" / "study.json").read_text())


def cell_of(pruning: str) -> str:
    """A summary's pruning ("dense", "omp 0.95") as a study's cell key."""
    return "dense|class:0" if pruning == "dense" else pruning.replace(" ", ":") + "|class:0"


def tuned_values(b: Board) -> dict[str, dict[str, dict]]:
    """The per-cell values the board ran with: the recipe's file, and every FT and sparse_ft
    record's parameters equal to its cell's (asserted)."""
    values = load_values(load_recipe("pruners").values_path("small"))["values"]
    for r in b.records:
        if r.method in ("ft", "sparse_ft"):
            space = UNLEARNERS.get(r.method).search_space
            ran = {k: v for k, v in r.config["method_params"].items() if k in space}
            assert ran == values[cell_of(pruning_of(r))][r.method]["oracle"], (r.run_id, ran)
    return values


def pruners_tuned_table(b: Board) -> str:
    """The values chosen at each cell, a row per cell."""
    values = tuned_values(b)
    lines = ["| cell | FT lr | sparse_ft lr | sparse_ft gamma |", "|---|---|---|---|"]
    for key in ["dense|class:0"] + [f"{m}:{s:g}|class:0" for m in MASKS for s in LEVELS]:
        ft, sp = values[key]["ft"]["oracle"], values[key]["sparse_ft"]["oracle"]
        lines.append(f"| {key.split('|')[0]} | {ft['lr']:.3g} | {sp['lr']:.3g} | {sp['gamma']:.3g} |")
    return "\n".join(lines)


def pruners_study_cost(b: Board) -> str:
    study = _study(b)
    rows = sum(len(c["methods"]) for c in study["cells"].values())
    total = rows * study["protocol"]["trials"] * len(study["protocol"]["seeds"]) + 2 * len(study["cells"])
    return (f"{study['protocol']['trials']} candidates for each of {rows} method-cell pairs, plus Retrain "
            f"and none on each of the {len(study['cells'])} cells' tuning splits: {total} trials in "
            f"{study['wall_clock_s']:,.0f} s of wall clock")


def borrowed_score(cell: dict, method: str, params: dict) -> tuple[str, float, float]:
    """Where a borrowed value ranks among a cell's candidates by the oracle criterion ("1 of 6":
    the best), its score and the best score; the value must be one of the candidates."""
    scored = sorted((c["oracle"], c["params"]) for c in cell["methods"][method]["candidates"])
    rank = next(i for i, (_, p) in enumerate(scored, 1) if p == params)
    return f"{rank} of {len(scored)}", scored[rank - 1][0], scored[0][0]


def pruners_misfit(b: Board) -> str:
    """How the main table's 95% values, which the superseded run borrowed for every mask, fare
    among each 95% cell's own candidates (the same six at every cell)."""
    study = _study(b)
    borrowed = load_values(borrowed_recipe().values_path("small"))["values"]["omp:0.95|class:0"]
    parts = []
    for method in ("ft", "sparse_ft"):
        for mask in ("imp", "synflow", "random"):
            rank, score, best = borrowed_score(study["cells"][f"{mask}:0.95|class:0"], method,
                                               borrowed[method]["oracle"])
            parts.append(f"{method} {MASKS[mask]} {rank} ({score:.2f} against {best:.2f})")
    trials = study["protocol"]["trials"]
    return (f"Rank of the borrowed values among each 95% cell's {trials} candidates, by the oracle "
            "criterion on the tuning split (Disparity to Retrain, that value's against the best): "
            + "; ".join(parts))


def pruners_choices(b: Board) -> str:
    """Which cells chose one of the main table's two choices (its dense and 95% cells'), by mask
    family, and how the others differ from the borrowed values."""
    main = load_values(borrowed_recipe().values_path("small"))["values"]
    values = tuned_values(b)
    known = {m: [main[c][m]["oracle"] for c in ("dense|class:0", "omp:0.95|class:0")] for m in ("ft", "sparse_ft")}
    counts, others = {}, []
    for family, masks in (("magnitude", ("omp", "imp")), ("other", ("synflow", "random"))):
        rows = [(m, level, values[f"{mask}:{level:g}|class:0"][m]["oracle"])
                for mask in masks for level in LEVELS for m in ("ft", "sparse_ft")]
        counts[family] = (sum(v in known[m] for m, _, v in rows), len(rows))
        if family == "other":
            others = [(m, v) for m, level, v in rows if v not in known[m]]
            assert {level for m, level, v in rows if v not in known[m]} == {0.9, 0.95}
    borrowed = {m: main["omp:0.95|class:0"][m]["oracle"] for m in ("ft", "sparse_ft")}
    assert all(v["lr"] < borrowed["ft"]["lr"] for m, v in others if m == "ft")
    assert all(v["gamma"] < borrowed["sparse_ft"]["gamma"] for m, v in others if m == "sparse_ft")
    return (f"under OMP's and IMP's masks {counts['magnitude'][0]} of {counts['magnitude'][1]} rows chose "
            f"one of the main table's two choices (its dense cell's or its 95% cell's); under SynFlow's "
            f"and random's {counts['other'][0]} of {counts['other'][1]} did, the other {len(others)} all at "
            f"90% and 95%, FT with a lower learning rate and sparse_ft with a smaller gamma each time")


def claim3_levels(b: Board) -> str:
    """Claim 3's comparisons beyond noise, sparsity by sparsity (OMP and SynFlow against IMP)."""
    parts = []
    for method in ("ft", "sparse_ft"):
        for level in LEVELS:
            imp = b.per_seed("class:0", f"imp {level:g}", method)
            moves = [beyond_noise(*paired(imp, b.per_seed("class:0", f"{mask} {level:g}", method)))
                     for mask in ("omp", "synflow")]
            parts.append(f"{method} at {level:g} {moves.count(1)} in favour, {moves.count(-1)} against")
    return "By sparsity: " + "; ".join(parts)


def narrower(b: Board, method: str, level: float) -> list[str]:
    """The masks under which pruning first narrows a method's gap beyond noise, at a sparsity."""
    dense = b.per_seed("class:0", "dense", method)
    return [name for mask, name in MASKS.items()
            if beyond_noise(*paired(dense, b.per_seed("class:0", f"{mask} {level:g}", method))) == 1]


def claim1_masks(b: Board) -> str:
    """Under which masks each method's gap narrows, at 90% and 95%, and where most at 95%."""
    parts = [f"{method} at {level:g} under {', '.join(narrower(b, method, level)) or 'none'}"
             for level in LEVELS[1:] for method in ("ft", "sparse_ft")]
    most = []
    for method in ("ft", "sparse_ft"):
        dense = b.per_seed("class:0", "dense", method)
        gains = {name: paired(dense, b.per_seed("class:0", f"{mask} {LEVELS[-1]:g}", method))[0]
                 for mask, name in MASKS.items()}
        best = max(gains, key=gains.get)
        most.append(f"{method} under {best}'s ({gains[best]:+.2f})")
    return "Narrower beyond noise: " + "; ".join(parts) + ". Most at 95%: " + "; ".join(most)


def retuned_rows(b: Board) -> str:
    """Every row whose tuned values differ from the borrowed ones, its Disparity and RA with the
    borrowed values and with its own."""
    old = board(PRUNERS_BORROWED)
    borrowed = load_values(borrowed_recipe().values_path("small"))["values"]["omp:0.95|class:0"]
    values = tuned_values(b)
    parts = []
    for level in LEVELS:
        for mask, name in MASKS.items():
            for method in ("ft", "sparse_ft"):
                if values[f"{mask}:{level:g}|class:0"][method]["oracle"] == borrowed[method]["oracle"]:
                    continue
                before, after = old.row("class:0", f"{mask} {level:g}", method), b.row("class:0", f"{mask} {level:g}", method)
                parts.append(f"{method} {name} {level:g}: Disparity {float(before['disparity']):.2f} -> "
                             f"{float(after['disparity']):.2f}, RA {float(before['RA_mean']):.2f} -> "
                             f"{float(after['RA_mean']):.2f}")
    return (f"{len(parts)} rows run with values of their own (borrowed -> own): " + "; ".join(parts))


def untimed(metrics: dict) -> dict:
    """A trial's metrics but its wall clock (RTE), which no rerun repeats."""
    return {k: v for k, v in metrics.items() if k != "RTE"}


def pruners_reproduced(b: Board) -> str:
    """The study's dense and OMP 95% cells ran the main table's study's trials again, bit for bit."""
    ours, main = _study(b)["cells"], json.loads((LEADERBOARD / "main-table-small" / "tuning" /
                                                 "study.json").read_text())["cells"]
    same = 0
    for key in ("dense|class:0", "omp:0.95|class:0"):
        for method in ("ft", "sparse_ft"):
            a, c = ours[key]["methods"][method]["candidates"], main[key]["methods"][method]["candidates"]
            assert [(x["params"], x["oracle"], untimed(x["metrics"])) for x in a] == \
                [(x["params"], x["oracle"], untimed(x["metrics"])) for x in c]
            same += len(a)
    return (f"its dense and OMP 95% cells ran the main table's study's {same} FT and sparse_ft "
            f"candidates again and got the same metrics to the last digit (their RTE aside)")


def pruners_reuse(b: Board) -> str:
    """Which of the board's runs are the superseded run's own (the same identity, found)."""
    old = {r.identity: r.created for r in board(PRUNERS_BORROWED).records}
    reused = [r for r in b.records if old.get(r.identity) == r.created]
    values = tuned_values(b)
    borrowed = load_values(borrowed_recipe().values_path("small"))["values"]
    def kept(r) -> bool:  # a reference, or run with the value the earlier run borrowed for its cell
        source = "dense|class:0" if not r.pruner else "omp:0.95|class:0"
        return r.method in ("retrain", "none") or \
            values[cell_of(pruning_of(r))][r.method]["oracle"] == borrowed[source][r.method]["oracle"]
    assert [r.run_id for r in reused] == [r.run_id for r in b.records if kept(r)]
    earlier = json.loads((LEADERBOARD / PRUNERS_BORROWED / "recipe.json").read_text())
    return (f"{len(reused)} of its {len(b.records)} runs are the earlier run's own, found by identity "
            f"(Retrain, none, and the cells whose tuned values are the borrowed ones); that run took "
            f"{earlier['wall_clock_s']:,.0f} s of wall clock, IMP's 4, 11 and 14 rounds of training per "
            f"seed most of it")


# -- gamma-schedules-small ----------------------------------------------------------------------

GAMMA = "gamma-schedules-small"
SCHEDULES = ("sparse_ft-constant", "sparse_ft-linear_increase", "sparse_ft-linear_decay")
SCENARIOS = {"class-wise": "class:0", "random": "random:0.1"}


def gamma_table(b: Board) -> str:
    lines = ["| scenario | method | Disparity Ave. | UA | MIA-Eff. | RA | TA | steps | vs none |",
             "|---|---|---|---|---|---|---|---|---|"]
    for scenario, forget in SCENARIOS.items():
        for method in ("retrain", "none", "ft", *SCHEDULES):
            r = b.row(forget, "dense", method)
            cells = [_n(float(r[c])) for c in ("UA_mean", "MIA_mean", "RA_mean", "TA_mean")]
            disparity = "—" if method == "retrain" else _n(float(r["disparity"]))
            lines.append(f"| {scenario} | {method} | {disparity} | {' | '.join(cells)} | "
                         f"{float(r['work:steps_mean']):.0f} | {FLAG.get(str(r['inert']), '—')} |")
    return "\n".join(lines)


def gamma_values(b: Board) -> str:
    study = json.loads((b.folder / "tuning" / "study.json").read_text())
    lines = ["| scenario | method | chosen (oracle) |", "|---|---|---|"]
    for scenario, forget in SCENARIOS.items():
        for method, entry in study["cells"][f"dense|{forget}"]["methods"].items():
            params = {k: v for k, v in entry["chosen"]["oracle"]["params"].items() if k in entry["space"]}
            lines.append(f"| {scenario} | {method} | {params_text(params)} |")
    return "\n".join(lines)


def gamma_tuning_cost(b: Board) -> str:
    study = json.loads((b.folder / "tuning" / "study.json").read_text())
    rows = sum(len(c["methods"]) for c in study["cells"].values())
    return (f"{study['protocol']['trials']} candidates for each of {rows} method-cell pairs; "
            f"{study['ran']} trials run by this study in {study['wall_clock_s']:.0f} s of wall clock "
            f"(the FT and linear-decay candidates and the references are the main table's own "
            f"trials, found by identity)")


def gamma_claim(b: Board) -> tuple[str, str]:
    """Decaying gamma against each other schedule, per seed: other minus decay (positive favours it)."""
    parts, favour, against = [], 0, 0
    for scenario, forget in SCENARIOS.items():
        decay = b.per_seed(forget, "dense", "sparse_ft-linear_decay")
        for other in ("sparse_ft-constant", "sparse_ft-linear_increase"):
            mean, se = paired(b.per_seed(forget, "dense", other), decay)
            move = beyond_noise(mean, se)
            favour, against = favour + (move > 0), against + (move < 0)
            parts.append(f"{scenario} {other.split('-')[1]} {mean:+.2f} ± {se:.2f}")
    text = (f"Each other schedule's Disparity Ave. minus linear decay's, per seed (positive: decay is "
            f"closer to Retrain): " + "; ".join(parts)
            + f". Beyond noise in favour of decay: {favour} of 4; against it: {against}")
    return text, verdict(favour, against, 4)


def gamma_against_ft(b: Board) -> str:
    parts = []
    for scenario, forget in SCENARIOS.items():
        ft = b.per_seed(forget, "dense", "ft")
        for method in SCHEDULES:
            mean, se = paired(ft, b.per_seed(forget, "dense", method))
            parts.append(f"{scenario} {method.split('-')[1]} {mean:+.2f} ± {se:.2f}")
    return "FT's Disparity Ave. minus each schedule's, per seed: " + "; ".join(parts)


# -- backdoor-small -----------------------------------------------------------------------------

BACKDOOR = "backdoor-small"
BD_PRUNINGS = ("dense", "omp 0.5", "omp 0.9", "omp 0.95")
ASR = "probe:ASR:after_mean"


def asr_of(record, _oracle) -> float:
    return record.probes["ASR"]["after"]


def backdoor_table(b: Board) -> str:
    lines = ["| pruning | ASR before | Retrain | FT | sparse_ft | TA before | TA FT | TA sparse_ft | "
             "vs none FT / sparse_ft |", "|---|---|---|---|---|---|---|---|---|"]
    for p in BD_PRUNINGS:
        v = lambda m, c: b.v("backdoor:0.1", p, m, c)  # noqa: E731
        flags = " / ".join(FLAG[str(b.row("backdoor:0.1", p, m)["inert"])] for m in ("ft", "sparse_ft"))
        lines.append(f"| {p} | {v('none', ASR):.2f} | {v('retrain', ASR):.2f} | {v('ft', ASR):.2f} | "
                     f"{v('sparse_ft', ASR):.2f} | {v('none', 'TA_mean'):.2f} | {v('ft', 'TA_mean'):.2f} | "
                     f"{v('sparse_ft', 'TA_mean'):.2f} | {flags} |")
    return "\n".join(lines)


def backdoor_claim(b: Board) -> tuple[str, str]:
    """FT's ASR after unlearning, dense minus sparse, per seed (positive: lower on the sparse model)."""
    parts, favour, against = [], 0, 0
    for method in ("ft", "sparse_ft"):
        dense = b.per_seed("backdoor:0.1", "dense", method, asr_of)
        for p in ("omp 0.9", "omp 0.95"):
            mean, se = paired(dense, b.per_seed("backdoor:0.1", p, method, asr_of))
            move = beyond_noise(mean, se)
            if method == "ft":
                favour, against = favour + (move > 0), against + (move < 0)
            parts.append(f"{method} {p}: {mean:+.2f} ± {se:.2f}")
    text = (f"ASR after unlearning, dense minus sparse, per seed (positive: lower on the sparse "
            f"model): " + "; ".join(parts) + f". FT's falls beyond noise at {favour} of 2 sparsities; "
            f"rises beyond noise at {against}")
    return text, verdict(favour, against, 2)


def backdoor_values(b: Board) -> str:
    show = method_params(b)
    return (f"FT runs with {show['ft', 'dense']} on the dense model and {show['ft', 'pruned']} at every "
            f"sparsity; sparse_ft with {show['sparse_ft', 'dense']} dense and {show['sparse_ft', 'pruned']} "
            f"at every sparsity")


def backdoor_no_split(b: Board) -> str:
    config = load_recipe("backdoor").configs(scale="small", tuned=False)[0]
    assert prepare(config).forget.tuning(10) is None  # Scenario.tuning: none for backdoor
    return (f"the {config.forget} scenario declares no tuning split (its forget set is the poisoned "
            f"images themselves), so no study of its own can tune for it")


BLOCKS: dict[str, dict[str, Callable[[Board], str]]] = {
    PRUNERS: {"table": pruners_table, "claim3": lambda b: pruners_claim3(b)[0],
              "claim1": lambda b: pruners_claim1(b)[0], "values": pruners_tuned_table,
              "study": pruners_study_cost, "misfit": pruners_misfit, "reproduced": pruners_reproduced,
              "reuse": pruners_reuse, "steps": lambda b: steps(b, "class:0", ("ft", "sparse_ft")),
              "fit": lambda b: retrain_fit(b, "class:0"), "inert": inert, "cost": run_cost,
              "before": lambda b: verdict_line(board(PRUNERS_BORROWED)), "levels": claim3_levels, "choices": pruners_choices,
              "masks": claim1_masks, "retuned": retuned_rows},
    PRUNERS_BORROWED: {"table": pruners_table, "claim3": lambda b: pruners_claim3(b)[0],
                       "claim1": lambda b: pruners_claim1(b)[0], "values": pruners_values,
                       "borrowed": pruners_borrowed, "own_study": pruners_own_study,
                       "misfit": lambda b: pruners_misfit(board(PRUNERS)),
                       "after": lambda b: verdict_line(board(PRUNERS)),
                       "steps": lambda b: steps(b, "class:0", ("ft", "sparse_ft")),
                       "fit": lambda b: retrain_fit(b, "class:0"), "inert": inert, "cost": run_cost},
    GAMMA: {"table": gamma_table, "values": gamma_values, "tuning": gamma_tuning_cost,
            "claim": lambda b: gamma_claim(b)[0], "ft": gamma_against_ft,
            "steps": lambda b: steps(b, "class:0", ("ft", *SCHEDULES)), "fit": lambda b: retrain_fit(b, "class:0"),
            "inert": inert, "cost": run_cost},
    BACKDOOR: {"table": backdoor_table, "no_split": backdoor_no_split, "claim": lambda b: backdoor_claim(b)[0], "values": backdoor_values,
               "steps": lambda b: steps(b, "backdoor:0.1", ("ft", "sparse_ft")),
               "fit": lambda b: retrain_fit(b, "backdoor:0.1"), "inert": inert, "cost": run_cost},
}
VERDICTS = {PRUNERS: {"Claim 3": pruners_claim3, "Claim 1": pruners_claim1},
            PRUNERS_BORROWED: {"Claim 3": pruners_claim3, "Claim 1": pruners_claim1},
            GAMMA: {"Claim 2": gamma_claim}, BACKDOOR: {"Claim 4": backdoor_claim}}


class Boards(dict):
    """Each board as the tests ask for it (read once: ``board``)."""

    def __missing__(self, name: str) -> Board:
        return board(name)


@pytest.fixture(scope="module")
def boards() -> Boards:
    return Boards()


@pytest.mark.parametrize("board,block", [(b, k) for b, blocks in BLOCKS.items() for k in blocks])
def test_readme_block_is_the_records(boards, board: str, block: str) -> None:
    b = boards[board]
    says(b.readme(), BLOCKS[board][block](b))


@pytest.mark.parametrize("board", sorted(VERDICTS))
def test_verdict_words_follow_their_criteria(boards, board: str) -> None:
    """Each claim's verdict in bold, as its rule gives it from the records."""
    b = boards[board]
    readme = b.readme()
    for claim, rule in VERDICTS[board].items():
        _, word = rule(b)
        assert f"**{claim}" in readme, claim
        assert f": {word}.**" in readme.split(f"**{claim}")[1][:300], (claim, word)


def moves(b: Board, forget: str, a: str, c: str, value=None) -> int:
    """+1 when row ``c`` is closer to Retrain than row ``a`` beyond noise (a - c per seed)."""
    return beyond_noise(*paired(b.per_seed(forget, "dense", a, value), b.per_seed(forget, "dense", c, value)))


def counts(b: Board) -> list[tuple[int, int]]:
    """(in favour, against) beyond noise: claim 3 for FT and for sparse_ft, then claim 1."""
    def pairs(text: str) -> list[tuple[int, int]]:
        return [(int(a), int(c)) for a, c in re.findall(r"(\d+) of \d+ in favour, (\d+) against", text)]
    narrow = re.search(r"Narrower beyond noise: (\d+) of 8; wider: (\d+)", pruners_claim1(b)[0])
    return pairs(pruners_claim3(b)[0]) + [(int(narrow[1]), int(narrow[2]))]


def test_pruners_statements(boards) -> None:
    """The README's words about the masks, tuned per cell, each from the records."""
    b = boards[PRUNERS]
    v = lambda mask, level, method, column: b.v("class:0", f"{mask} {level:g}", method, column)  # noqa: E731
    for level in LEVELS:
        ua = {mask: v(mask, level, "ft", "UA_mean") for mask in MASKS}
        assert min(ua, key=ua.get) == "imp" and v("imp", level, "ft", "RA_mean") >= 99
        for mask in ("synflow", "random"):
            assert ua[mask] > 50 and v(mask, level, "ft", "RA_mean") < v("imp", level, "ft", "RA_mean")
    # sparse_ft, sparsity by sparsity: reversed at 0.5, in part at 0.9, holds at 0.95
    words = {}
    for level in LEVELS:
        imp = b.per_seed("class:0", f"imp {level:g}", "sparse_ft")
        moves = [beyond_noise(*paired(imp, b.per_seed("class:0", f"{m} {level:g}", "sparse_ft"))) for m in ("omp", "synflow")]
        words[level] = verdict(moves.count(1), moves.count(-1), 2)
    assert words == {0.5: "is reversed", 0.9: "holds in part", 0.95: "holds"}
    # at 50% every mask chose the same values; sparse_ft forgets the whole class and keeps most under IMP and random
    values = tuned_values(b)
    assert len({json.dumps({k: c["oracle"] for k, c in values[f"{m}:0.5|class:0"].items()}, sort_keys=True)
                for m in MASKS}) == 1
    assert all(v(m, 0.5, "sparse_ft", "UA_mean") == 100 for m in MASKS)
    ra = {m: v(m, 0.5, "sparse_ft", "RA_mean") for m in MASKS}
    assert set(sorted(ra, key=ra.get)[2:]) == {"imp", "random"}
    # claim 1: FT narrows under every mask at 95%; random narrows both the most (the block says so)
    assert narrower(b, "ft", 0.95) == list(MASKS.values())
    says(b.readme(), "FT's gap narrows under every mask at 95%")
    # against the borrowed run: no verdict word changed, the counts moved toward the claims, none away
    old = board(PRUNERS_BORROWED)
    assert pruners_claim3(b)[1] == pruners_claim3(old)[1] and pruners_claim1(b)[1] == pruners_claim1(old)[1]
    now, before = counts(b), counts(old)
    assert all(f >= f0 and a <= a0 for (f, a), (f0, a0) in zip(now, before)) and now != before
    says(b.readme(), "changed no verdict word; the counts moved toward the claims, none away")
    assert not load_recipe("pruners").tuning["small"]["borrow"]  # tuned per cell, nothing borrowed
    # the seeded sampler offered every cell the same six candidates
    cells = _study(b)["cells"].values()
    for method in ("ft", "sparse_ft"):
        offered = {json.dumps([c["params"] for c in cell["methods"][method]["candidates"]]) for cell in cells}
        assert len(offered) == 1 and len(json.loads(offered.pop())) == 6
    says(b.readme(), "offers every cell the same six candidates")


def test_pruners_borrowed_statements(boards) -> None:
    """The superseded README's words about the masks, each from the records."""
    b = boards[PRUNERS_BORROWED]
    v = lambda mask, level, method, column: b.v("class:0", f"{mask} {level:g}", method, column)  # noqa: E731
    for level in LEVELS:
        ua = {mask: v(mask, level, "ft", "UA_mean") for mask in MASKS}
        assert min(ua, key=ua.get) == "imp" and v("imp", level, "ft", "RA_mean") >= 99
        for mask in ("synflow", "random"):
            assert ua[mask] > 50 and v(mask, level, "ft", "RA_mean") < 99
        assert all(v(mask, level, "sparse_ft", "UA_mean") >= 99.5 for mask in MASKS)  # (almost) the whole class
    kept = {mask: sum(v(mask, level, "sparse_ft", "RA_mean") for level in LEVELS) for mask in MASKS}
    assert max(kept, key=kept.get) == "imp"
    imp = {level: b.per_seed("class:0", f"imp {level:g}", "sparse_ft") for level in LEVELS}
    omp_ahead = {level for level in LEVELS  # IMP minus OMP beyond noise, positive: OMP closer
                 if beyond_noise(*paired(imp[level], b.per_seed("class:0", f"omp {level:g}", "sparse_ft"))) == 1}
    assert omp_ahead == {0.95}

    def narrower(method: str, level: float) -> set[str]:
        dense = b.per_seed("class:0", "dense", method)
        return {mask for mask in MASKS
                if beyond_noise(*paired(dense, b.per_seed("class:0", f"{mask} {level:g}", method))) == 1}
    assert narrower("ft", 0.95) == set(MASKS) and narrower("sparse_ft", 0.95) == {"omp", "imp"}
    gains = {mask: paired(b.per_seed("class:0", "dense", "ft"), b.per_seed("class:0", f"{mask} 0.95", "ft"))[0]
             for mask in MASKS}
    assert max(gains, key=gains.get) == "omp"
    assert narrower("ft", 0.9) == {"synflow", "random"}
    # the runs found by identity: the main table's dense Retrain and none, and its OMP 95% cell
    main = {r.identity: r.created for r in Board("main-table-small").records}
    reused = [r for r in b.records if main.get(r.identity) == r.created]  # the same run, not a rerun of it
    assert {(r.method, pruning_of(r)) for r in reused} == {
        ("retrain", "dense"), ("none", "dense"), *((m, "omp 0.95") for m in ("retrain", "none", "ft", "sparse_ft"))}
    assert len(reused) == len(b.records) - json.loads((b.folder / "recipe.json").read_text())["ran"]
    study = json.loads((LEADERBOARD / "main-table-small" / "tuning" / "study.json").read_text())
    main_trials = sum(len(c["methods"]) for c in study["cells"].values()) * study["protocol"]["trials"] \
        + 2 * len(study["cells"])
    cells, _, _ = recipe_cells("pruners", "small", execution={})
    assert sum(len(c.methods) for c in cells) * study["protocol"]["trials"] + 2 * len(cells) > main_trials
    says(b.readme(), "more than the main table's whole study")
    assert borrowed_recipe().tuning["small"]["borrow"]  # what this run was: borrowed values


def test_backdoor_statements(boards) -> None:
    """The README's words about FT's and sparse_ft's ASR, each from the records."""
    b = boards[BACKDOOR]
    asr = {(m, p): b.v("backdoor:0.1", p, m, ASR) for m in ("none", "ft", "sparse_ft") for p in BD_PRUNINGS}
    assert asr["ft", "omp 0.95"] < asr["ft", "dense"]  # the paper's direction at 95% ...
    dense = b.per_seed("backdoor:0.1", "dense", "ft", asr_of)
    assert beyond_noise(*paired(dense, b.per_seed("backdoor:0.1", "omp 0.95", "ft", asr_of))) == 0  # ... within noise
    assert beyond_noise(*paired(dense, b.per_seed("backdoor:0.1", "omp 0.9", "ft", asr_of))) == 0
    assert asr["sparse_ft", "dense"] < 0.2 * asr["none", "dense"]  # removes most of it
    ta = {m: b.v("backdoor:0.1", "dense", m, "TA_mean") for m in ("none", "sparse_ft")}
    assert ta["sparse_ft"] < ta["none"] - 10
    assert max(asr["sparse_ft", p] for p in ("dense", "omp 0.5")) < asr["sparse_ft", "omp 0.9"] \
        < asr["sparse_ft", "omp 0.95"]


def test_gamma_statements(boards) -> None:
    """The README's words about the schedules, each from the noise rule."""
    b = boards[GAMMA]
    decay = "sparse_ft-linear_decay"
    assert moves(b, "class:0", "sparse_ft-linear_increase", decay) == 1  # decay beats increase
    assert moves(b, "class:0", decay, "sparse_ft-constant") == 1  # constant beats decay
    assert b.v("class:0", "dense", "sparse_ft-constant", "RA_mean") > b.v("class:0", "dense", decay, "RA_mean")
    assert b.v("class:0", "dense", "sparse_ft-constant", "UA_mean") >= 99
    assert all(moves(b, "random:0.1", other, decay) == 0
               for other in ("sparse_ft-constant", "sparse_ft-linear_increase"))
    closer = {(f, m) for f in SCENARIOS.values() for m in SCHEDULES if moves(b, f, "ft", m) == 1}
    assert closer == {("class:0", "sparse_ft-constant")}
    says(b.readme(), "Only the constant schedule class-wise is closer to Retrain than FT beyond noise; "
                     "decay is not.")


def test_the_rule_of_a_verdict() -> None:
    assert verdict(6, 0, 8) == "holds" and verdict(8, 1, 8) == "holds in part"
    assert verdict(0, 3, 8) == "does not hold" and verdict(2, 0, 8) == "holds in part"
    assert verdict(0, 3, 4) == "is reversed" and verdict(1, 3, 4) == "holds in part"


if __name__ == "__main__":
    shown = board(sys.argv[1])
    for name in sys.argv[2:] or BLOCKS[sys.argv[1]]:
        print(f"--- {name}\n{BLOCKS[sys.argv[1]][name](shown)}\n")
    for claim, rule in VERDICTS[sys.argv[1]].items():
        print(f"--- {claim}: {rule(shown)[1]}")
