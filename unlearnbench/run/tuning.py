"""Tuning as a declared protocol: every method searched the same way, with the same budget.

A *study* tunes methods at *cells* (a pruning and an evaluated forget spec). For each cell:

1. **The tuning split.** The scenario names another forget set of its kind, disjoint from the
   evaluated one (:meth:`unlearnbench.scenario.Scenario.tuning`: class-wise, the next class;
   random, a further seeded draw of the same size). Tuning trials forget that set from the same
   original (or pruned) model, and measure held-out behaviour on the **validation hold-out**
   instead of the test set (``RunConfig.holdout = "validation"``: TA, HA and the MIA's
   non-members). So selection never reads the test set, nor how a method forgets the
   evaluated forget set.
2. **The budget.** Every method declares its search space (``Unlearner.search_space``: the
   paper's ranges where it gives them); each gets the same number of candidates, drawn by a
   seeded Optuna sampler (``qmc``: scrambled Sobol points, space-filling and independent of
   the results, the default; ``random``; ``tpe``, adaptive, which optimizes one criterion).
   Candidates are ordinary trials, run by any executor, identity-keyed: a study that stops
   resumes where it stopped (the sampler, seeded, proposes the same candidates again).
3. **Two criteria, both reported.**
   - *oracle*: the gap to Retrain on the tuning split, the paper's Disparity Ave. over the
     metrics that declare ``in_disparity`` (UA, MIA-Efficacy, RA, and TA, here on validation
     data), with Retrain run through the same tuning trial;
   - *oracle-free*: no Retrain: |forget accuracy - HA| (HA: the forget accuracy expected of a
     model that never saw the forget set, read off held-out data: the held-out accuracy on its
     classes, 0 for a class the retain set lacks; ``unlearnbench.evaluate.heldout``), among
     candidates whose TA (validation accuracy) stays within ``tolerance`` points of the
     unlearning-free model's (``none``); candidates that break the constraint rank after all
     that keep it, by how far they fall.
   Ties go to the earlier candidate. Scores are over the means of the tuning seeds.

The study writes ``study.json`` (protocol, spaces, every candidate with its scores and records,
the references, the choices, wall clock) and ``tuning.md``; :func:`write_values` extracts the
chosen values into the file a recipe reads (``tuned = ...`` in the recipe,
``unlearnbench.run.recipes``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabulate import tabulate

from ..components import UNLEARNERS
from ..errors import ConfigError
from ..identity import jsonable
from ..report.records import RunRecord
from ..space import describe_space, grid_of
from ..storage import atomic_write_text
from .config import RunConfig, prepare, pruning_label
from .executors import Executor, LocalExecutor, Trial, run_grid
from .identity import planned_identity, recorded
from .trial import load_data

CRITERIA = ("oracle", "oracle-free")
SAMPLERS = ("qmc", "random", "tpe", "grid")
ORACLE, REFERENCE = "retrain", "none"  # the exact method, and the unlearning-free baseline
Log = Callable[[str], None]


@dataclass(frozen=True)
class Protocol:
    """How every method of a study is tuned (recorded with the study)."""

    trials: int = 8  # candidates per method and cell
    sampler: str = "qmc"
    seed: int = 0  # the sampler's
    seeds: tuple[int, ...] = (0,)  # the tuning trials' seeds (each candidate runs all)
    tolerance: float = 5.0  # oracle-free: TA may fall this many points below none's
    criterion: str = "oracle"  # what an adaptive sampler (tpe) optimizes
    rounds: int = 4  # tpe: the candidates are asked and told in this many rounds

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ConfigError(f"--trials {self.trials} is invalid: expected at least 1")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"--sampler {self.sampler!r} is invalid: expected one of {', '.join(SAMPLERS)}")
        if self.criterion not in CRITERIA:
            raise ConfigError(f"--criterion {self.criterion!r} is invalid: expected one of "
                              f"{', '.join(CRITERIA)}")
        if not self.seeds:
            raise ConfigError("the tuning seeds are empty: expected at least one seed")
        if not self.tolerance >= 0:
            raise ConfigError(f"--tolerance {self.tolerance} is invalid: expected points >= 0")

    def batches(self) -> list[int]:
        """How many candidates each round asks for: all at once unless the sampler adapts."""
        if self.sampler != "tpe":
            return [self.trials]
        rounds = max(1, min(self.rounds, self.trials))
        return [len(range(i, self.trials, rounds)) for i in range(rounds)]


@dataclass(frozen=True)
class Cell:
    """Where methods are tuned: the evaluated configuration (its method is irrelevant) and the
    methods to tune there."""

    base: RunConfig
    methods: tuple[str, ...]  # the rows to tune: method names, or labels of ``variants``
    variants: Mapping[str, tuple[str, Mapping[str, Any]]] = dataclasses.field(default_factory=dict)

    @property
    def key(self) -> str:
        """``PRUNING|FORGET`` of the evaluated configuration: how a recipe finds its values."""
        return cell_key(self.base)

    def variant(self, row: str) -> tuple[str, Mapping[str, Any]]:
        """A row's method and the parameters it holds fixed (a labelled variant, e.g. a recipe's
        ``sparse_ft-constant`` = sparse_ft with ``scheduler="constant"``; a plain method: none)."""
        return self.variants.get(row, (row, {}))


def cell_key(config: RunConfig) -> str:
    return f"{pruning_label(config)}|{config.forget}"


# -- the trials of a study -------------------------------------------------------------------

def tuning_base(cell: Cell, output: Path, protocol: Protocol, num_classes: int) -> RunConfig:
    """The cell's configuration moved to its tuning split: the scenario's tuning forget set,
    the validation hold-out in place of the test set, no probes, the study's seeds."""
    scenario = prepare(cell.base).forget
    tuning = scenario.tuning(num_classes)
    if tuning is None:
        raise ConfigError(f"forget spec {scenario} declares no tuning split (Scenario.tuning); "
                          f"its methods cannot be tuned apart from the evaluated forget set")
    return dataclasses.replace(cell.base, method=ORACLE, method_params={}, label=None,
                               forget=str(tuning), holdout="validation", seeds=protocol.seeds,
                               probes={}, output_dir=output / "records", save_model=None)


def space_of(method: str) -> Mapping[str, Any]:
    space = UNLEARNERS.get(method).search_space
    if not space:
        raise ConfigError(f"method {method!r} declares no search space (Unlearner.search_space); "
                          f"expected the ranges of its tunable hyperparameters")
    return space


class Candidates:
    """The candidates of one method at one cell, drawn by a seeded Optuna study."""

    def __init__(self, method: str, protocol: Protocol, fixed: Mapping[str, Any]):
        import optuna  # a heavy import, needed by a study's sampler only (not by --dry-run or recipes)

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.method, self.protocol, self.fixed = method, protocol, dict(fixed)
        self.space = space_of(method)
        self.distributions = {name: dim.distribution() for name, dim in self.space.items()}
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # QMC's
        samplers = {"qmc": lambda: optuna.samplers.QMCSampler(seed=protocol.seed, scramble=True),
                    "random": lambda: optuna.samplers.RandomSampler(seed=protocol.seed),
                    "tpe": lambda: optuna.samplers.TPESampler(seed=protocol.seed),
                    "grid": lambda: optuna.samplers.GridSampler(grid_of(self.space, protocol.trials),
                                                                seed=protocol.seed)}
        self.study = optuna.create_study(direction="minimize", sampler=samplers[protocol.sampler]())
        self.asked: list[Any] = []

    def ask(self, count: int) -> list[dict[str, Any]]:
        new = [self.study.ask(self.distributions) for _ in range(count)]
        self.asked.extend(new)
        return [self.params(t) for t in new]

    def params(self, trial: Any) -> dict[str, Any]:
        return {**self.fixed, **trial.params}

    def tell(self, trial: Any, score: float) -> None:
        self.study.tell(trial, score)


def candidate_config(base: RunConfig, method: str, params: Mapping[str, Any]) -> RunConfig:
    return dataclasses.replace(base, method=method, method_params=dict(params))


# -- scores -----------------------------------------------------------------------------------

def means(records: Sequence[RunRecord]) -> dict[str, float]:
    """Each metric's mean over ``records`` (the tuning seeds); a metric missing from one is left out."""
    names = set.intersection(*(set(r.metrics) for r in records)) if records else set()
    out = {}
    for name in names:
        values = [r.metrics[name] for r in records]
        if all(v is not None for v in values):
            out[name] = sum(values) / len(values)
    return out


def oracle_score(candidate: Sequence[RunRecord], oracle: Sequence[RunRecord]) -> float:
    """Disparity Ave. to Retrain on the tuning split: the mean |gap| over the metrics that
    declare ``in_disparity``; inf for a diverged candidate."""
    if any(r.diverged for r in candidate):
        return math.inf
    mine, theirs = means(candidate), means(oracle)
    names = [n for n, d in oracle[0].metric_declarations.items() if d.in_disparity]
    if missing := [n for n in names if n not in mine or n not in theirs]:
        raise ConfigError(f"the oracle criterion needs {', '.join(missing)} in every tuning record")
    return sum(abs(mine[n] - theirs[n]) for n in names) / len(names)


def oracle_free_score(candidate: Sequence[RunRecord], reference: Sequence[RunRecord],
                      tolerance: float) -> tuple[float, bool]:
    """(|forget accuracy - HA| + shortfall penalty, whether TA stays within ``tolerance``
    of the unlearning-free model's); inf for a diverged candidate."""
    if any(r.diverged for r in candidate):
        return math.inf, False
    mine, base = means(candidate), means(reference)
    if missing := [n for n in ("UA", "HA", "TA") if n not in mine] + (["TA"] if "TA" not in base else []):
        raise ConfigError(f"the oracle-free criterion needs {', '.join(missing)} in every tuning record")
    gap = abs((100.0 - mine["UA"]) - mine["HA"])
    shortfall = base["TA"] - tolerance - mine["TA"]
    return (gap, True) if shortfall <= 0 else (100.0 + shortfall, False)


# -- running a study ---------------------------------------------------------------------------

@dataclass
class _Method:
    row: str
    cell: Cell
    base: RunConfig
    candidates: Candidates
    configs: list[RunConfig] = dataclasses.field(default_factory=list)


def study(cells: Sequence[Cell], protocol: Protocol, output: Path, *, executor: Executor,
          num_classes: Callable[[RunConfig], int], log: Log = lambda m: None,
          fixed: Mapping[tuple[str, str], Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Tune every method of every cell (see the module docstring); returns (and writes) the study.

    ``num_classes(config)``: the class count of a configuration's data (the tuning split of a
    class-wise scenario needs it). ``fixed[(cell key, method)]``: parameters held fixed for
    that method (e.g. a recipe's), not searched.
    """
    start = time.perf_counter()
    methods, references = [], {}
    for cell in cells:
        base = tuning_base(cell, output, protocol, num_classes(cell.base))
        references[cell.key] = {"oracle": base,
                                "reference": dataclasses.replace(base, method=REFERENCE)}
        for row in cell.methods:
            method, held = cell.variant(row)
            given = {**held, **(fixed or {}).get((cell.key, row), {})}
            methods.append(_Method(row, cell, base, Candidates(method, protocol, given)))
    ran, records = 0, Records(output)
    for round_index, count in enumerate(protocol.batches()):
        configs = [cfg for refs in references.values() for cfg in refs.values()] if round_index == 0 else []
        for m in methods:
            new = [candidate_config(m.base, m.candidates.method, p) for p in m.candidates.ask(count)]
            m.configs.extend(new)
            configs.extend(new)
        ran += _run(configs, executor, output, log)
        if protocol.sampler == "tpe":
            for m in methods:
                refs = references[m.cell.key]
                for trial, config in zip(m.candidates.asked[-count:], m.configs[-count:]):
                    m.candidates.tell(trial, _score(config, refs, protocol, records)[protocol.criterion])
    result = _summary(methods, references, protocol, records)
    result["wall_clock_s"] = round(time.perf_counter() - start, 1)
    result["ran"] = ran
    result = _with_earlier_runs(output, result)
    write_study(output, result)
    return result


def _with_earlier_runs(output: Path, result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with the wall clock and trial count of earlier runs of the same study added
    (a resumed study's cost is the sum of its runs)."""
    try:
        earlier = json.loads((output / "study.json").read_text())
    except (OSError, ValueError):
        return result
    if earlier.get("protocol") != jsonable(result["protocol"]):
        return result
    return {**result, "wall_clock_s": round(result["wall_clock_s"] + earlier.get("wall_clock_s", 0), 1),
            "ran": result["ran"] + earlier.get("ran", 0)}


def plan_cost(cells: Sequence[Cell], protocol: Protocol, output: Path,
              num_classes: Callable[[RunConfig], int]) -> dict[str, int]:
    """What a study will run, before it runs (``--dry-run``): trials in all, and how many are
    recorded already (with a non-adaptive sampler every candidate is known in advance)."""
    configs = []
    for cell in cells:
        base = tuning_base(cell, output, protocol, num_classes(cell.base))
        configs += [base, dataclasses.replace(base, method=REFERENCE)]
        for row in cell.methods:
            method, held = cell.variant(row)
            candidates = Candidates(method, protocol, held)
            if protocol.sampler != "tpe":
                configs += [candidate_config(base, method, p) for p in candidates.ask(protocol.trials)]
    trials = [(c, s) for c in configs for s in c.seeds]
    done = sum(recorded(output / "records", planned_identity(prepare(c), s)) for c, s in trials)
    candidates = sum(len(c.methods) for c in cells) * protocol.trials * len(protocol.seeds)
    references = 2 * len(cells) * len(protocol.seeds)
    return {"cells": len(cells), "methods": sum(len(c.methods) for c in cells),
            "candidates": candidates, "references": references, "trials": candidates + references,
            "recorded": done if protocol.sampler != "tpe" else -1}


def _run(configs: Sequence[RunConfig], executor: Executor, output: Path, log: Log) -> int:
    """Run the trials of ``configs`` that have no record yet; returns how many ran."""
    todo: dict[str, Trial] = {}  # by identity: two criteria or rounds may ask for one trial twice
    for config in configs:
        plan = prepare(config)
        for seed in config.seeds:
            identity = planned_identity(plan, seed)
            if identity not in todo and not recorded(output / "records", identity):
                todo[identity] = Trial(config, seed)
    unique = list(todo.values())
    if unique:
        run_grid(unique, executor, log=log, resume=True)
    return len(unique)


class Records:
    """The study's records, read once each: a configuration's, one per tuning seed."""

    def __init__(self, output: Path):
        self.folder = output / "records"
        self.read: dict[str, RunRecord] = {}

    def of(self, config: RunConfig) -> list[RunRecord]:
        plan = prepare(config)
        return [self._one(config, planned_identity(plan, seed), seed) for seed in config.seeds]

    def _one(self, config: RunConfig, identity: str, seed: int) -> RunRecord:
        if identity not in self.read:
            found = [r for r in map(RunRecord.load, self.folder.glob(f"*-{identity[:12]}.json"))
                     if r.identity == identity]
            if not found:
                raise ConfigError(f"no record of tuning trial {config.method} {config.forget} seed "
                                  f"{seed} in {self.folder}")
            self.read[identity] = found[0]
        return self.read[identity]


def _score(config: RunConfig, refs: Mapping[str, RunConfig], protocol: Protocol,
           records: Records) -> dict[str, Any]:
    mine = records.of(config)
    oracle = oracle_score(mine, records.of(refs["oracle"]))
    free, feasible = oracle_free_score(mine, records.of(refs["reference"]), protocol.tolerance)
    return {"oracle": oracle, "oracle-free": free, "feasible": feasible,
            "metrics": means(mine), "records": [r.run_id for r in mine]}


def _summary(methods: Sequence[_Method], references: Mapping[str, Mapping[str, RunConfig]],
             protocol: Protocol, records: Records) -> dict[str, Any]:
    cells: dict[str, Any] = {}
    for key, refs in references.items():
        cells[key] = {"tuning_forget": refs["oracle"].forget, "methods": {},
                      "references": {role: {"method": cfg.method, "metrics": means(records.of(cfg)),
                                            "records": [r.run_id for r in records.of(cfg)]}
                                     for role, cfg in refs.items()}}
    for m in methods:
        refs = references[m.cell.key]
        scored = []
        for number, config in enumerate(m.configs):
            score = _score(config, refs, protocol, records)
            scored.append({"number": number, "params": dict(config.method_params), **score})
        chosen = {criterion: _best(scored, criterion) for criterion in CRITERIA}
        cells[m.cell.key]["methods"][m.row] = {
            "space": describe_space(m.candidates.space), "fixed": m.candidates.fixed,
            "candidates": scored, "chosen": chosen}
    return {"protocol": dataclasses.asdict(protocol), "cells": cells}


def _best(scored: Sequence[Mapping[str, Any]], criterion: str) -> dict[str, Any]:
    best = min(scored, key=lambda c: c[criterion])  # min keeps the first of equals
    return {"number": best["number"], "params": best["params"], "score": best[criterion],
            **({"feasible": best["feasible"]} if criterion == "oracle-free" else {})}


# -- what a study leaves behind ----------------------------------------------------------------

def write_study(output: Path, result: Mapping[str, Any]) -> None:
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output / "study.json", json.dumps(jsonable(result), indent=2) + "\n")
    atomic_write_text(output / "tuning.md", study_table(result))


def study_table(result: Mapping[str, Any]) -> str:
    """``tuning.md``: the protocol, then per cell each method's choices and every candidate."""
    p = result["protocol"]
    lines = [f"# Tuning study\n",
             f"{p['trials']} candidates per method and cell, sampler {p['sampler']} (seed {p['seed']}), "
             f"tuning seeds {', '.join(map(str, p['seeds']))}; oracle-free tolerance {p['tolerance']:g} "
             f"points of validation accuracy. Wall clock {result.get('wall_clock_s', 0):.0f} s.\n"]
    for key, cell in result["cells"].items():
        lines.append(f"## {key} (tuned on {cell['tuning_forget']}, validation hold-out)\n")
        rows = []
        for method, entry in cell["methods"].items():
            for c in entry["candidates"]:
                marks = [name for name in CRITERIA if entry["chosen"][name]["number"] == c["number"]]
                rows.append([method, _show_params(c["params"], entry["space"]), _num(c["oracle"]),
                             _num(c["oracle-free"]) + ("" if c["feasible"] else " (TA below)"),
                             ", ".join(marks)])
        lines.append(tabulate(rows, headers=["method", "candidate", "oracle", "oracle-free", "chosen by"],
                              tablefmt="github") + "\n")
    return "\n".join(lines)


def _show_params(params: Mapping[str, Any], space: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items() if k in space)


def _num(value: float) -> str:
    return "inf" if value is None or not math.isfinite(value) else f"{value:.2f}"


def write_values(path: Path, result: Mapping[str, Any], *, study_path: str) -> dict[str, Any]:
    """The chosen values as a recipe reads them: ``{"values": {CELL: {METHOD: {CRITERION:
    params}}}, "protocol": ..., "study": where the study lies}``."""
    values = {key: {method: {criterion: entry["chosen"][criterion]["params"] for criterion in CRITERIA}
                    for method, entry in cell["methods"].items()}
              for key, cell in result["cells"].items()}
    tuned = {"protocol": result["protocol"], "study": study_path, "values": values}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(jsonable(tuned), indent=2) + "\n")
    return tuned


def load_values(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"tuned values {path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("values"), dict):
        raise ConfigError(f"tuned values {path}: expected an object with 'values'")
    return data


def class_counter() -> Callable[[RunConfig], int]:
    """``num_classes(config)``, loading each dataset (cached) once."""
    seen: dict[str, int] = {}

    def count(config: RunConfig) -> int:
        key = json.dumps([config.dataset, dict(config.dataset_params), str(config.data_root),
                          config.train_size, config.test_size], sort_keys=True, default=str)
        if key not in seen:
            seen[key] = load_data(prepare(config)).num_classes
        return seen[key]
    return count



# -- what the command line hands over ----------------------------------------------------------

def setting_cells(methods: Sequence[str], fields: Mapping[str, Any]) -> list[Cell]:
    """One cell: the setting of ``unlearnbench tune METHOD ... [options]``."""
    for method in methods:
        space_of(method)  # an untunable method fails before anything runs
    return [Cell(RunConfig(method=ORACLE, **fields), tuple(dict.fromkeys(methods)))]


def select_cells(cells: Sequence[Cell], keys: Sequence[str]) -> list[Cell]:
    """The cells named by their keys (``pruning|forget``, as the study's table shows them), in the
    study's order; an unknown key is an error that lists the known ones."""
    known = {cell.key: cell for cell in cells}
    if unknown := [key for key in keys if key not in known]:
        raise ConfigError(f"no cell {unknown[0]!r} in this study; its cells: {', '.join(known)}")
    wanted = set(keys)
    return [cell for key, cell in known.items() if key in wanted]


def tune(cells: Sequence[Cell], protocol: Protocol, output: Path, *, executor: Executor | None,
         values: Path | None, log: Log, dry_run: bool = False) -> dict[str, Any] | None:
    """``unlearnbench tune``: the cost first; then the study, its tables and the values file."""
    counter = class_counter()
    cost = plan_cost(cells, protocol, output, counter)
    done = "unknown (tpe adapts)" if cost["recorded"] < 0 else cost["recorded"]
    log(f"tuning study: {cost['cells']} cell(s), {cost['methods']} method-cell pair(s) x "
        f"{protocol.trials} candidates x {len(protocol.seeds)} seed(s) = {cost['candidates']} trials, "
        f"plus {cost['references']} reference trials (retrain and none on each tuning split); "
        f"{cost['trials']} in all, {done} recorded already -> {output}")
    if dry_run:
        return None
    result = study(cells, protocol, output, executor=executor or LocalExecutor(), num_classes=counter,
                   log=log)
    print((output / "tuning.md").read_text())
    if values is not None:
        write_values(values, result, study_path=str(output / "study.json"))
        log(f"chosen values written to {values}")
    return result
