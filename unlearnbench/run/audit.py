"""Population audits: KLoM and U-LiRA, per-example tests over many trained models.

The paper's MIA-Efficacy asks one classifier, shared by all examples, whether each forget
example looks like a member. A population audit asks the stronger question per example: is
the distribution of this example's margin over many unlearned models the one of models that
never saw it? It needs many models that differ only in their training seed, so an audit is a
grid of ordinary trials whose configurations carry a ``population`` (their fixed split,
replicate and scored examples, :mod:`unlearnbench.data.population`). They run on any executor,
every original and pruned model is cached by its identity and shared by all methods, and a
rerun resumes where it stopped: a trial is done when a record of its identity is there.

A population metric (:class:`~unlearnbench.metric.PopulationMetric`, entry-point group
``unlearnbench.metrics``) says which trials it needs (:meth:`design`) and scores their margins
(:meth:`score`). Every estimate comes with its same-N null: the oracle method (Retrain) run
through the same design with other seeds, scored like a method. At small N these estimators
are biased (KLoM's histogram null is 6.4 at N = 8, ``evaluation.md``), and a number without
its null misleads. When Retrain is one of the audited methods, its row *is* the null.

Built in, with their estimators: :class:`~unlearnbench.evaluate.klom.KLoM` (Georgiev et al.,
ICLR 2025) and :class:`~unlearnbench.evaluate.ulira.ULiRA` (Hayes et al., SaTML 2025). This
module is the audit's protocol: its spec, the context a metric designs its population in, running
the trials, scoring them and writing the result; and the audit recipes (TOML).
"""

from __future__ import annotations

import dataclasses
import io
import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..components import METRICS, UNLEARNERS
from ..data.population import Membership
from ..data.splits import holdout
from ..errors import ConfigError, UnlearnbenchError, unknown_name_message
# KLoM and ULiRA are importable from here too: the entry points of an install made before they
# moved to unlearnbench.evaluate name them in this module (a fresh `pip install -e .` updates them)
from ..evaluate.klom import KLoM  # noqa: F401
from ..evaluate.ulira import ULiRA  # noqa: F401
from ..identity import jsonable, trial_identity
from ..metric import Design, Member, Population, PopulationMetric
from ..params import MAX_SEED
from ..report.audit import plot_audit, render_audit
from ..report.records import RunRecord, load_records
from ..seeds import derive_seed
from ..storage import atomic_write_bytes, atomic_write_text
from .config import RunConfig, prepare
from .executors import LocalExecutor, Trial, run_grid
from .identity import resolved_config
from .recipes import FIELD_TYPES, method_entry, pruning_entry, source_cell, toml_text, tuning_entry
from .tuning import CRITERIA, Cell, load_values
from .trial import load_data

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Log = Callable[[str], None]
AUDIT_FORMAT = 1
# RunConfig fields an audit recipe may set in [run] or [scales.*]
RUN_FIELDS = ("dataset", "dataset_params", "arch", "train_params", "val_fraction", "train_size",
              "test_size")
AUDIT_KEYS = ("metrics", "method", "pruning", "models", "forget", "seed", "oracle", "tuning")


# -- what an audit is ------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditSpec:
    """An audit: a setting (``base``: dataset, model, recipe, subsets, folders, device), the
    methods and prunings audited, the population metrics with their parameters, the number of
    models per population (N originals, K shadows), the forget-set size (a fraction of the
    training split, or a count), the audit's own seed (hold-out, forget set, pool, halves) and
    the oracle method."""

    name: str
    description: str
    base: Mapping[str, Any]
    methods: tuple[Mapping[str, Any], ...]
    prunings: tuple[Mapping[str, Any], ...]
    metrics: Mapping[str, Mapping[str, Any]]
    models: int
    forget: float
    seed: int = 0
    oracle: Mapping[str, Any] = field(default_factory=lambda: {"method": "retrain"})
    # tuned values by pruning label and row, each over the row's own parameters; ``tuning``
    # says where they come from (file, criterion, the tuned cell each pruning borrowed)
    tuned: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    tuning: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.models < 2:
            raise ConfigError(f"--models {self.models} is invalid: an audit compares populations, "
                              f"expected at least 2 models")
        if not self.methods or not self.prunings or not self.metrics:
            raise ConfigError("an audit needs at least one method, one pruning and one metric")
        whole = float(self.forget).is_integer() and self.forget >= 1
        if not whole and not 0 < self.forget < 1:
            raise ConfigError(f"audit forget={self.forget!r} is invalid: expected a fraction in (0, 1) "
                              f"or a whole count >= 1")

    def forget_count(self, train_size: int) -> int:
        count = int(self.forget) if self.forget >= 1 else int(round(self.forget * train_size))
        if not 1 <= count < train_size:
            raise ConfigError(f"audit forget={self.forget:g} gives {count} of {train_size} training "
                              f"examples; expected at least 1 and fewer than all")
        return count


def method_label(entry: Mapping[str, Any]) -> str:
    return entry.get("label") or entry["method"]


def pruning_label(entry: Mapping[str, Any]) -> str:
    return f"{entry['pruner']}:{entry['sparsity']:g}" if entry.get("pruner") else "dense"


@dataclass(frozen=True)
class AuditContext:
    """What a population metric designs its population in (:meth:`PopulationMetric.design`):
    the spec, the base configuration and the data's labels; it draws the audit's seeded choices
    and makes the members (trials) of a design."""

    spec: AuditSpec
    base: RunConfig
    train_labels: Any  # torch tensor of the training part's labels
    test_labels: Any

    def holdout(self) -> tuple[np.ndarray, np.ndarray]:
        """The population's training and validation indices (the hold-out of the audit's seed)."""
        train, validation = holdout(self.train_labels, self.base.val_fraction, self.spec.seed)
        return train.numpy(), validation.numpy()

    def rng(self, stream: str) -> np.random.Generator:
        return np.random.default_rng(derive_seed(self.spec.seed, f"audit/{stream}"))

    def oracle_and_methods(self) -> tuple[Mapping[str, Any], list[Mapping[str, Any]]]:
        """The oracle method, and the audited methods with the oracle among them (its row is
        the null)."""
        spec = self.spec
        oracle = {"method": spec.oracle["method"],
                  "method_params": dict(spec.oracle.get("method_params", {})),
                  "label": spec.oracle.get("label")}
        methods = list(spec.methods)
        same = [m for m in methods if m["method"] == oracle["method"]
                and dict(m.get("method_params", {})) == oracle["method_params"]]
        if not same:
            methods.insert(0, oracle)
        return oracle, methods

    @staticmethod
    def label(method: Mapping[str, Any]) -> str:
        """The row label of a method entry."""
        return method_label(method)

    def member(self, role: str, method: Mapping[str, Any], pruning: Mapping[str, Any], seed: int,
               membership: Membership) -> Member:
        tuned = self.spec.tuned.get(pruning_label(pruning), {}).get(method_label(method), {})
        config = dataclasses.replace(
            self.base, method=method["method"], method_params={**method.get("method_params", {}), **tuned},
            label=method.get("label"), pruner=pruning.get("pruner"), sparsity=pruning.get("sparsity"),
            pruner_params=dict(pruning.get("pruner_params", {})),
            forget=f"random:{len(membership.forget)}", seeds=(seed,),
            population=membership.to_mapping())
        return Member(role, method_label(method), pruning_label(pruning), config, seed)


# -- running an audit ------------------------------------------------------------------------
def population_metric(name: str, params: Mapping[str, Any]) -> PopulationMetric:
    cls = METRICS.get(name)
    if getattr(cls, "needs", None) != "population":
        raise ConfigError(f"metric {name!r} is a per-trial metric, not a population audit; "
                          f"`unlearnbench ls metrics` lists both kinds")
    return cls.from_params(dict(params))


def base_config(spec: AuditSpec) -> RunConfig:
    """The setting every trial of ``spec`` shares (the members replace method, pruning, forget
    spec, seed and population)."""
    return RunConfig(**{**spec.base, "method": spec.oracle["method"], "forget": "random:1"})


def designs(spec: AuditSpec, metrics: Mapping[str, PopulationMetric], data: Any) -> list[Design]:
    context = AuditContext(spec, base_config(spec), data.train.labels.cpu(), data.test.labels.cpu())
    return [metric.design(context) for metric in metrics.values()]


@dataclass(frozen=True)
class Cost:
    originals: int
    pruned: int
    unlearning: int
    retrainings: int  # of the unlearning runs: the oracle method's, each a training from scratch
    to_do: int

    def __str__(self) -> str:
        return (f"{self.originals} original models and {self.pruned} pruned models to train (or load "
                f"from the cache), {self.unlearning} unlearning runs ({self.retrainings} of them "
                f"retrain from scratch); {self.to_do} runs to do, "
                f"{self.unlearning - self.to_do} already recorded")


def plan_trials(spec: AuditSpec, all_designs: Sequence[Design], records_dir: Path):
    """The distinct trials of the designs (a trial two designs share runs once), their
    identities, which are already recorded, and the cost."""
    recorded = {r.identity: r for r in load_records(records_dir)} if records_dir.is_dir() else {}
    identities: dict[str, Member] = {}
    member_ids: list[list[str]] = []
    for design in all_designs:
        ids = []
        for member in design.members:
            identity = trial_identity(resolved_config(prepare(member.config)), member.seed)
            identities.setdefault(identity, member)
            ids.append(identity)
        member_ids.append(ids)
    originals = {(m.seed, json.dumps([m.config.population.get("exclude", [])])) for m in identities.values()}
    pruned = {(m.seed, json.dumps([m.config.population.get("exclude", [])]), m.pruning)
              for m in identities.values() if m.config.pruner}
    retrain = sum(m.config.method == spec.oracle["method"] for m in identities.values())
    todo = [i for i in identities if i not in recorded]
    cost = Cost(len(originals), len(pruned), len(identities), retrain, len(todo))
    return identities, member_ids, todo, cost


def run_audit(spec: AuditSpec, *, output: Path, executor: Any = None, log: Log = print,
              plots: bool = True, dry_run: bool = False) -> dict[str, Any]:
    """Run every pending trial of ``spec``'s populations, score them, write ``audit.json``,
    ``per_example.npz``, ``table.md`` and the pictures under ``output``."""
    metrics = {name: population_metric(name, params) for name, params in spec.metrics.items()}
    plan = prepare(base_config(spec))  # every name checked before the data is read
    data = load_data(plan)
    all_designs = designs(spec, metrics, data)
    records_dir = output / "records"
    identities, member_ids, todo, cost = plan_trials(spec, all_designs, records_dir)
    log(f"audit {spec.name}: {', '.join(metrics)} x {len(spec.methods)} methods x "
        f"{len(spec.prunings)} prunings, {spec.models} models each: {cost}")
    if dry_run:
        return {"cost": dataclasses.asdict(cost)}
    start = time.perf_counter()
    trials = [Trial(dataclasses.replace(identities[i].config, output_dir=records_dir), identities[i].seed)
              for i in _grouped(todo, identities)]
    run_grid(trials, executor or LocalExecutor(), log=log, resume=True)
    seconds = time.perf_counter() - start
    recorded = {r.identity: r for r in load_records(records_dir)}
    results = []
    arrays: dict[str, np.ndarray] = {}
    for design, ids, (name, metric) in zip(all_designs, member_ids, metrics.items()):
        chosen = [recorded[i] for i in ids]
        if diverged := [r.run_id for r in chosen if r.diverged or r.margins is None]:
            raise UnlearnbenchError(f"audit {name}: {len(diverged)} trials have no margins (diverged?), "
                                    f"e.g. {diverged[0]}; a population cannot be scored without them")
        population = Population(design, [np.asarray(r.margins["train"], dtype=np.float64) for r in chosen],
                                chosen)
        scored = metric.score(population)
        results.extend(scored.rows)
        arrays.update(scored.arrays)
    members = {i: recorded[i] for ids in member_ids for i in ids}
    summary = write_audit(spec, output, results, arrays, cost, seconds, metrics, data,
                          trial_seconds=recorded_seconds(members.values()))
    if plots:
        plot_audit(summary, arrays, output / "plots", log=log)
    log(f"{cost.to_do} runs in {seconds:.0f} s; table in {output / 'table.md'}")
    return summary


def _grouped(todo: Sequence[str], identities: Mapping[str, Member]) -> list[str]:
    """Trials that share an original model next to each other (the local executor then keeps
    it in memory), originals in seed order."""
    def key(i: str):
        m = identities[i]
        return (m.seed, json.dumps(m.config.population.get("exclude", [])), m.pruning, m.method)
    return sorted(todo, key=key)


def recorded_seconds(records: Iterable[RunRecord]) -> dict[str, float]:
    """The compute the member trials recorded: training the originals and pruning them, each
    model counted once (every member records its model's seconds, from the cache or not), and
    unlearning and evaluation, summed over the trials. Unlike the wall clock, which counts only
    invocations that finished, it survives an audit resumed after an interruption."""
    originals: dict[tuple, float] = {}
    pruned: dict[tuple, float] = {}
    unlearn = evaluate = 0.0
    for r in records:
        model = (r.seed, json.dumps((r.resolved or {}).get("population", {}).get("exclude", [])))
        originals[model] = r.timings.original_s
        if r.pruner:
            pruned[(*model, r.pruner, r.target_sparsity)] = r.timings.prune_s
        unlearn, evaluate = unlearn + r.timings.unlearn_s, evaluate + r.timings.eval_s
    return {"train": round(sum(originals.values()), 1), "prune": round(sum(pruned.values()), 1),
            "unlearn": round(unlearn, 1), "eval": round(evaluate, 1)}


def write_audit(spec: AuditSpec, output: Path, rows: list[dict[str, Any]], arrays: dict[str, np.ndarray],
                cost: Cost, seconds: float, metrics: Mapping[str, PopulationMetric], data: Any,
                trial_seconds: Mapping[str, float] | None = None) -> dict[str, Any]:
    """``audit.json`` (the result record), ``per_example.npz`` and ``table.md``, each atomically."""
    previous = _previous_seconds(output / "audit.json")
    summary = {"audit_format": AUDIT_FORMAT, "name": spec.name, "description": spec.description,
               "spec": jsonable(dataclasses.asdict(spec)),
               "metrics": {name: {"params": m.get_params(), **type(m).declaration().to_dict()}
                           for name, m in metrics.items()},
               "data_hash": data.content_hash, "cost": dataclasses.asdict(cost),
               "wall_clock_s": round(previous + seconds, 1), "trial_seconds": dict(trial_seconds or {}),
               "rows": jsonable(rows)}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(output / "per_example.npz", buffer.getvalue())
    atomic_write_text(output / "audit.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    atomic_write_text(output / "table.md", render_audit(summary))
    return summary


def _previous_seconds(path: Path) -> float:
    try:
        return float(json.loads(path.read_text()).get("wall_clock_s", 0.0))
    except (OSError, ValueError, AttributeError, TypeError):
        return 0.0


# -- audit recipes -----------------------------------------------------------------------------
def load_audit(path_or_name: str | Path, *, scale: str = "full", models: int | None = None,
               tuned: bool = True, **common: Any) -> AuditSpec:
    """An audit recipe (a bundled one by name, or a TOML file)::

        description = "..."
        [run]                      # the setting, as in other recipes
        dataset = "cifar10"
        arch = "resnet18"
        [audit]
        metrics = ["klom", "ulira"]           # or {klom = {points = 200}, ulira = {runs_per_shadow = 4}}
        method = ["retrain", "ft", {method = "sparse_ft", label = "...", params = {...}}]
        pruning = ["dense", "omp:0.95"]
        models = 100
        forget = 0.01                         # a fraction of the training split, or a count
        [scales.small]                         # overrides of [run], and of [audit] under `audit`
        arch = "mini_vgg_wide"
        audit = { models = 8 }

    ``common`` holds the RunConfig fields of the command line (folders, device, ...);
    ``tuned=False`` leaves the tuning entry's values unread (a study that will write them):
    ``tuning`` then holds the entry itself (``values``, ``borrow``), checked.
    """
    name, table = _read_audit(path_or_name)
    run, audit = _scaled(table, name, scale)
    base = _run_fields(run, name)
    _check_audit_keys(audit, name)
    where = f"audit {name!r} [audit]"
    oracle = method_entry(audit.get("oracle", "retrain"), where)
    methods = tuple(method_entry(m, where) for m in audit.get("method", []))
    prunings = tuple(pruning_entry(p, where) for p in audit.get("pruning", ["dense"]))
    forget = float(audit.get("forget", 0.01))
    tuning, values = {}, {}
    where_tuning = f"audit {name!r} [audit] tuning"
    if "tuning" in audit and tuned:
        tuning, values = _tuned(audit["tuning"], _audit_path(path_or_name).parent, methods, prunings,
                                forget, where_tuning)
    elif "tuning" in audit:
        tuning = _tuning_spec(audit["tuning"], where_tuning)
    return AuditSpec(
        name=f"{name}" if scale == "full" else f"{name}-{scale}",
        description=table.get("description", ""), base={**base, **common},
        methods=methods, prunings=prunings,
        metrics=_metrics(audit), models=models or int(audit.get("models", 8)),
        forget=forget, seed=int(audit.get("seed", 0)), oracle=oracle, tuned=values, tuning=tuning)


def audit_cells(path_or_name: str | Path, scale: str, *, execution: Mapping[str, Any]
                ) -> tuple[list[Cell], Path | None, Path]:
    """An audit's setting as a tuning study's cells, so that its methods can be tuned where they
    are audited: one cell per audited pruning, forgetting a random share of the audit's size
    (the study moves it to the scenario's tuning draw), each with the audited rows that declare a
    search space. Also the values file its ``tuning`` entry names (none when it borrows another
    study's: a study of the audit never writes that file) and the study's folder."""
    spec = load_audit(path_or_name, scale=scale, tuned=False, **execution)
    if not 0 < spec.forget < 1:
        raise ConfigError(f"audit {spec.name!r}: forget = {spec.forget:g} is a count; a tuning study "
                          f"draws a forget share of the training split, expected a fraction in (0, 1)")
    base = dataclasses.replace(base_config(spec), forget=f"random:{spec.forget:g}")
    tunable = [m for m in spec.methods if UNLEARNERS.get(m["method"]).search_space]
    variants = {method_label(m): (m["method"], dict(m.get("method_params", {}))) for m in tunable}
    cells = [Cell(dataclasses.replace(base, pruner=p.get("pruner"), sparsity=p.get("sparsity"),
                                      pruner_params=dict(p.get("pruner_params", {}))),
                  tuple(variants), variants) for p in spec.prunings]
    values = None
    if spec.tuning and not spec.tuning["borrow"]:
        values = (_audit_path(path_or_name).parent / spec.tuning["values"]).resolve()
    return cells, values, Path("leaderboard") / f"audit-{spec.name}" / "tuning"


def _tuning_spec(entry: Any, where: str) -> dict[str, Any]:
    """An audit's ``tuning`` entry checked as a recipe's (its one ``criterion`` aside)."""
    return tuning_entry({k: v for k, v in entry.items() if k != "criterion"} if isinstance(entry, dict) else entry,
                        where)


def _tuned(entry: Any, folder: Path, methods: Sequence[Mapping[str, Any]],
           prunings: Sequence[Mapping[str, Any]], forget: float, where: str
           ) -> tuple[dict[str, Any], dict[str, dict[str, dict[str, Any]]]]:
    """An audit's ``tuning = {values = FILE, criterion = "oracle", borrow = {...}}``: each tunable
    row's values at each pruning, from the file's cell ``PRUNING|random:FORGET`` or the cell a
    ``borrow`` pattern names (as a recipe's tuning, ``unlearnbench.run.recipes``)."""
    spec = _tuning_spec(entry, where)
    criterion = entry.get("criterion", "oracle")
    if criterion not in CRITERIA:
        raise ConfigError(f"{where}: criterion = {toml_text(criterion)} is invalid: expected one of "
                          f"{', '.join(CRITERIA)}")
    values = load_values(folder / spec["values"])["values"]
    tuned: dict[str, dict[str, dict[str, Any]]] = {}
    borrowed = {}
    for pruning in prunings:
        cell = f"{pruning_label(pruning)}|random:{forget:g}"
        source = borrowed[cell] = source_cell(cell, values, spec["borrow"])
        for method in methods:
            if not UNLEARNERS.get(method["method"]).search_space:
                continue
            chosen = values.get(source, {}).get(method_label(method), {}).get(criterion)
            if chosen is None:
                raise ConfigError(f"{where}: {spec['values']} holds no {criterion} values for "
                                  f"{method_label(method)} at {source} (for {cell})")
            tuned.setdefault(pruning_label(pruning), {})[method_label(method)] = dict(chosen)
    return {"values": spec["values"], "criterion": criterion, "cells": borrowed}, tuned


def _read_audit(path_or_name: str | Path) -> tuple[str, dict[str, Any]]:
    """The audit's name and its TOML table, its sections' types checked."""
    path = _audit_path(path_or_name)
    try:
        table = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"audit recipe {path}: {exc}") from exc
    _check_audit_types(table, path.stem)
    return path.stem, table


def _audit_path(path_or_name: str | Path) -> Path:
    """A TOML file, or the bundled audit of that name."""
    path = Path(path_or_name)
    if path.suffix == ".toml" and path.is_file():
        return path
    bundled = {p.stem: p for p in bundled_audits()}
    if str(path_or_name) not in bundled:
        raise ConfigError(unknown_name_message("audit", str(path_or_name), bundled))
    return bundled[str(path_or_name)]


def _scaled(table: Mapping[str, Any], name: str, scale: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``[run]`` and ``[audit]`` tables with the scale's overrides applied."""
    scales = table.get("scales", {})
    if scale != "full" and scale not in scales:
        raise ConfigError(f"--scale {scale!r} is invalid for audit {name!r}: expected one of "
                          f"{', '.join(['full', *scales])}")
    overrides = dict(scales.get(scale, {}))
    audit = {**table.get("audit", {}), **overrides.pop("audit", {})}
    run = {**table.get("run", {}), **overrides}
    return run, audit


def _run_fields(run: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The RunConfig fields of ``[run]`` (``train`` is ``train_params``), each of its type."""
    base = {}
    for key, value in run.items():
        key = {"train": "train_params"}.get(key, key)
        if key not in RUN_FIELDS:
            raise ConfigError(f"audit {name!r} [run]: unknown key {key!r}; expected one of "
                              f"{', '.join(RUN_FIELDS)}")
        ok, expected = FIELD_TYPES[key]
        if not ok(value):
            raise ConfigError(f"audit {name!r} [run]: {key} = {toml_text(value)} is invalid: "
                              f"expected {expected}")
        base[key] = value
    return base


def _check_audit_keys(audit: Mapping[str, Any], name: str) -> None:
    """``[audit]`` holds known keys, each of its type."""
    if unknown := set(audit) - set(AUDIT_KEYS):
        raise ConfigError(f"audit {name!r} [audit]: unknown keys {sorted(unknown)}; expected some of "
                          f"{', '.join(AUDIT_KEYS)}")
    for key, (ok, expected) in AUDIT_TYPES.items():
        if key in audit and not ok(audit[key]):
            raise ConfigError(f"audit {name!r} [audit]: {key} = {toml_text(audit[key])} is invalid: "
                              f"expected {expected}")


def _metrics(audit: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``metrics``, a list of names or a table of names with parameters, as the table."""
    metrics = audit.get("metrics", ["klom", "ulira"])
    return {m: {} for m in metrics} if isinstance(metrics, list) else dict(metrics)

def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# what each [audit] key holds (method and pruning entries are checked as a recipe's grid is)
AUDIT_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "metrics": (lambda v: (isinstance(v, list) and all(isinstance(m, str) for m in v))
                or (isinstance(v, dict) and all(isinstance(p, dict) for p in v.values())),
                "a list of metric names or a table of metric names, each with a table of parameters"),
    "method": (lambda v: isinstance(v, list), "a list of methods"),
    "pruning": (lambda v: isinstance(v, list), "a list of \"dense\" or \"PRUNER:SPARSITY\""),
    "models": (lambda v: _is_int(v) and v >= 2, "a whole number of models >= 2"),
    "forget": (_is_number, "a fraction in (0, 1) or a whole count >= 1"),
    "seed": (lambda v: _is_int(v) and 0 <= v <= MAX_SEED, f"an integer 0 to {MAX_SEED}"),
    "oracle": (lambda v: isinstance(v, (str, dict)), "a method name or {method = NAME, ...}"),
    "tuning": (lambda v: isinstance(v, dict), "{values = \"FILE.json\", criterion = \"oracle\", "
                                              "borrow = {...}}"),
}


def _check_audit_types(table: Mapping[str, Any], name: str) -> None:
    """The sections of an audit TOML are tables (a scale's too), its description a string."""
    for key in ("run", "audit", "scales"):
        if not isinstance(table.get(key, {}), dict):
            raise ConfigError(f"audit {name!r}: {key} = {table[key]!r} is invalid: expected a [{key}] table")
    for scale, overrides in table.get("scales", {}).items():
        if not isinstance(overrides, dict) or not isinstance(overrides.get("audit", {}), dict):
            raise ConfigError(f"audit {name!r} [scales.{scale if scale.isprintable() else repr(scale)}] "
                              f"is invalid: expected a table "
                              f"(with `audit` a table)")
    if not isinstance(table.get("description", ""), str):
        raise ConfigError(f"audit {name!r}: description is invalid: expected a string")


def bundled_audits() -> list[Path]:
    folder = resources.files("unlearnbench.run.recipes") / "audits"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml"))
