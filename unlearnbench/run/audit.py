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

Built in: :class:`KLoM` (Georgiev et al., ICLR 2025) and :class:`ULiRA` (Hayes et al., SaTML
2025); the estimators are in :mod:`unlearnbench.evaluate.klom` and
:mod:`unlearnbench.evaluate.ulira`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..data.population import Membership
from ..errors import ConfigError, UnlearnbenchError
from ..metric import PopulationMetric
from ..params import MAX_SEED, param
from .config import RunConfig, prepare

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Log = Callable[[str], None]
AUDIT_FORMAT = 1
# RunConfig fields an audit recipe may set in [run] or [scales.*]
RUN_FIELDS = ("dataset", "dataset_params", "arch", "train_params", "val_fraction", "train_size",
              "test_size")
AUDIT_KEYS = ("metrics", "method", "pruning", "models", "forget", "seed", "oracle")


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
class Member:
    """One trial of a population: the row it belongs to and its configuration."""

    role: str  # "oracle" (the reference population) or "method" (the null is the oracle method's row)
    method: str  # row label
    pruning: str
    config: RunConfig
    seed: int


@dataclass
class Design:
    """The trials one population metric needs, and what its scoring needs to know about them."""

    metric: str
    members: list[Member]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditContext:
    """What a design may look at: the spec, the base configuration and the data's labels."""

    spec: AuditSpec
    base: RunConfig
    train_labels: Any  # torch tensor of the training part's labels
    test_labels: Any

    def holdout(self) -> tuple[np.ndarray, np.ndarray]:
        """The population's training and validation indices (the hold-out of the audit's seed)."""
        from ..data.splits import holdout
        train, validation = holdout(self.train_labels, self.base.val_fraction, self.spec.seed)
        return train.numpy(), validation.numpy()

    def rng(self, stream: str) -> np.random.Generator:
        from ..train.runtime import derive_seed
        return np.random.default_rng(derive_seed(self.spec.seed, f"audit/{stream}"))

    def member(self, role: str, method: Mapping[str, Any], pruning: Mapping[str, Any], seed: int,
               membership: Membership) -> Member:
        config = dataclasses.replace(
            self.base, method=method["method"], method_params=dict(method.get("method_params", {})),
            label=method.get("label"), pruner=pruning.get("pruner"), sparsity=pruning.get("sparsity"),
            pruner_params=dict(pruning.get("pruner_params", {})),
            forget=f"random:{len(membership.forget)}", seeds=(seed,),
            population=membership.to_mapping())
        return Member(role, method_label(method), pruning_label(pruning), config, seed)


@dataclass
class Population:
    """A design's trials, run: each member's margins on the design's scored examples."""

    design: Design
    margins: list[np.ndarray]  # per member, aligned with design.members
    records: list[Any]

    def matrix(self, members: Sequence[int]) -> np.ndarray:
        return np.stack([self.margins[i] for i in members])

    def rows(self, *, role: str, method: str | None = None, pruning: str) -> list[int]:
        return [i for i, m in enumerate(self.design.members)
                if m.role == role and m.pruning == pruning and (method is None or m.method == method)]


@dataclass
class Scored:
    """A population metric's result: table rows (one per pruning and method, each with its
    null) and per-example arrays (name -> array) kept beside the audit's record."""

    rows: list[dict[str, Any]]
    arrays: dict[str, np.ndarray]


def _oracle_and_methods(spec: AuditSpec) -> tuple[Mapping[str, Any], list[Mapping[str, Any]]]:
    """The oracle method, and the audited methods with the oracle among them (its row is the null)."""
    oracle = {"method": spec.oracle["method"], "method_params": dict(spec.oracle.get("method_params", {})),
              "label": spec.oracle.get("label")}
    methods = list(spec.methods)
    same = [m for m in methods if m["method"] == oracle["method"]
            and dict(m.get("method_params", {})) == oracle["method_params"]]
    if not same:
        methods.insert(0, oracle)
    return oracle, methods


def _scored_mean(records: Sequence[Any], key: str) -> float | None:
    values = [r.metrics.get(key) for r in records if not r.diverged]
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


# -- KLoM ------------------------------------------------------------------------------------
class KLoM(PopulationMetric):
    """KL divergence of margins (Georgiev, Rinberg, Park, Garg, Ilyas, Madry, Neel, ICLR 2025,
    App. E.1; code RoyRin/data-unlearning-bench ``unlearning_bench/eval.py``, EasyDUB).

    Population: N originals trained on D (seeds 0..N-1, one fixed hold-out and forget set F),
    pruned each when the setting prunes; N oracles: the oracle method (Retrain: a fresh model
    on D minus F, under the original's mask when pruned) from those originals, replicate 0;
    every method unlearns F from each original once, replicate 1. So Retrain as a method is a
    second, independent set of N oracles: its row is the same-N null. Unlearned and oracle
    models are not paired.

    Scored: every forget example, ``points`` random retain examples and ``points`` random
    validation examples (fewer if the split has fewer). Per example, KL(P_unlearned || P_oracle)
    of the margins by a 20-bin histogram over the example's joint range (the note's definition);
    reported as the ``percentile`` (95) over the examples of each split, lower is better. Also
    the closed-form KL of fitted Gaussians, the note's labelled deviation for N = 8-32, where
    the histogram's null is large (6.4 at N = 8).
    Deviation: on a pruned setting the oracles are Retrain under the originals' masks (the
    paper's sparse Retrain), not dense models.
    """

    label: ClassVar[str] = "KLoM (forget, P95)"
    unit: ClassVar[str] = "nats"
    higher_is_better: ClassVar[bool] = False
    description: ClassVar[str] = ("per-example KL of margin distributions, unlearned vs oracle models "
                                  "(Georgiev et al. 2025); population audit")

    bins: int = param(20, ge=2, help="histogram bins per example (the reference's 20)")
    percentile: float = param(95.0, gt=0, le=100, help="summary over the examples of a split")
    points: int = param(100, ge=1, help="retain and validation examples scored (each)")

    def design(self, context: AuditContext) -> Design:
        spec = context.spec
        train, validation = context.holdout()
        count = spec.forget_count(len(train))
        forget = np.sort(context.rng("klom/forget").permutation(train)[:count])
        retain_pool = np.setdiff1d(train, forget)
        retain = np.sort(context.rng("klom/retain").permutation(retain_pool)[:self.points])
        val = np.sort(context.rng("klom/validation").permutation(validation)[:self.points])
        score = [int(i) for i in np.concatenate([forget, retain, val])]
        splits = {"forget": (0, len(forget)), "retain": (len(forget), len(forget) + len(retain)),
                  "val": (len(forget) + len(retain), len(score))}
        oracle, methods = _oracle_and_methods(spec)
        members = []
        for pruning in spec.prunings:
            for seed in range(spec.models):
                members.append(context.member("oracle", oracle, pruning, seed, Membership(
                    spec.seed, tuple(int(i) for i in forget), replicate=0, score=tuple(score))))
                for method in methods:
                    members.append(context.member("method", method, pruning, seed, Membership(
                        spec.seed, tuple(int(i) for i in forget), replicate=1, score=tuple(score))))
        return Design("klom", members, {"splits": splits, "oracle": method_label(oracle),
                                        "forget": count})

    def score(self, population: Population) -> Scored:
        from ..evaluate.klom import gaussian_kl_per_example, klom_per_example, summarize

        design = population.design
        spec_rows, arrays = [], {}
        oracle_label = design.info["oracle"]
        for pruning in dict.fromkeys(m.pruning for m in design.members):
            oracle = population.matrix(population.rows(role="oracle", pruning=pruning))
            per_method: dict[str, dict[str, Any]] = {}
            for method in dict.fromkeys(m.method for m in design.members if m.role == "method"):
                rows = population.rows(role="method", method=method, pruning=pruning)
                unlearned = population.matrix(rows)
                values: dict[str, Any] = {"models": len(rows)}
                for split, (start, stop) in design.info["splits"].items():
                    if stop == start:
                        continue
                    hist = klom_per_example(unlearned[:, start:stop], oracle[:, start:stop], bins=self.bins)
                    gauss = gaussian_kl_per_example(unlearned[:, start:stop], oracle[:, start:stop])
                    values[split] = summarize(hist, self.percentile)
                    values[f"{split}_gaussian"] = summarize(gauss, self.percentile)
                    arrays[f"klom/{pruning}/{method}/{split}"] = hist
                    arrays[f"klom-gaussian/{pruning}/{method}/{split}"] = gauss
                records = [population.records[i] for i in rows]
                values.update({k: _scored_mean(records, k) for k in ("UA", "MIA", "RA", "TA")})
                per_method[method] = values
            null = per_method[oracle_label]
            for method, values in per_method.items():
                spec_rows.append({"metric": "klom", "pruning": pruning, "method": method,
                                  "is_null": method == oracle_label, **values,
                                  **{f"null_{k}": null[k] for k in null
                                     if k.split("_")[0] in design.info["splits"]}})
        return Scored(spec_rows, arrays)


# -- U-LiRA ----------------------------------------------------------------------------------
class ULiRA(PopulationMetric):
    """U-LiRA: a per-example likelihood-ratio membership attack on unlearned models (Hayes,
    Shumailov, Triantafillou, Khalifa, Papernot, SaTML 2025), built on LiRA (Carlini et al.,
    IEEE S&P 2022). Only the abstract was reachable; the design follows the reference note
    (``evaluation.md``) and its defensible choices, which are ours, not verified against the paper:

    * a candidate pool P of ``pool_multiple`` x the forget-set size training examples; K
      shadow originals (K = the audit's ``--models``) each train on the training split minus a
      random half of P (so membership varies over P only; a shadow holds the other half);
    * each shadow is unlearned ``runs_per_shadow`` times, each run forgetting a random
      forget-set-sized subset of the pool points it holds (replicates 0..R-1);
    * per candidate x: U_x = margins under unlearned runs whose forget set held x, O_x = margins
      under unlearned runs of shadows that never held x (the note's choice; the public re-run
      took O from the originals); Gaussian fits with mu the median, sigma the std, one global
      sigma shared by U and O below 64 shadows (LiRA's fix_variance: a linear likelihood
      ratio); the per-side global sigma (one for U, one for O) is scored beside it, labelled;
    * targets by leave-one-shadow-out: each run of shadow k is attacked with fits from the other
      shadows; positives its forget points, negatives as many pool points shadow k never held;
      balanced accuracy and AUC, mean ± std (the spread over targets) and the naive standard
      error. 50% (0.5) is ideal: Retrain's level, and the null is the oracle method (Retrain)
      run through the same design; how far a null lands from 50% by chance is simulated on the
      design with Gaussian margins (``null_simulations`` audits).
    """

    label: ClassVar[str] = "U-LiRA accuracy"
    unit: ClassVar[str] = "%"
    higher_is_better: ClassVar[bool] = False
    description: ClassVar[str] = ("per-example likelihood-ratio attack on unlearned shadow models "
                                  "(Hayes et al. 2025); 50% is ideal; population audit")

    pool_multiple: int = param(4, ge=2, help="candidate pool size, in forget-set sizes (2: each "
                                            "run forgets the whole half its shadow holds)")
    runs_per_shadow: int = param(2, ge=1, help="unlearning runs per shadow original")
    variance: str = param("auto", help="auto (one sigma shared by U and O below 64 shadows, else "
                                       "per example), shared, per_side or per_example")
    null_simulations: int = param(1000, ge=0, help="simulated Gaussian audits of the design for the "
                                                   "null's spread (0: none)")

    def validate(self) -> None:
        from ..evaluate.ulira import VARIANCES
        if self.variance not in VARIANCES:
            raise ConfigError(f"ULiRA.variance={self.variance!r} is invalid: expected one of "
                              f"{', '.join(VARIANCES)}")

    def design(self, context: AuditContext) -> Design:
        spec = context.spec
        train, _ = context.holdout()
        count = spec.forget_count(len(train))
        size = self.pool_multiple * count
        if size >= len(train):
            raise ConfigError(f"ULiRA.pool_multiple={self.pool_multiple} is invalid: a pool of {size} "
                              f"examples ({self.pool_multiple} x {count} forgotten) needs more than the "
                              f"{len(train)} training examples")
        pool = np.sort(context.rng("ulira/pool").permutation(train)[:size])
        oracle, methods = _oracle_and_methods(spec)
        members, held, forgotten, shadow = [], [], [], []
        for k in range(spec.models):
            half = np.sort(context.rng(f"ulira/half/{k}").permutation(pool)[:size // 2])
            exclude = tuple(int(i) for i in np.setdiff1d(pool, half))
            for r in range(self.runs_per_shadow):
                forget = np.sort(context.rng(f"ulira/forget/{k}/{r}").permutation(half)[:count])
                membership = Membership(spec.seed, tuple(int(i) for i in forget), exclude=exclude,
                                        replicate=r, score=tuple(int(i) for i in pool))
                for pruning in spec.prunings:
                    for method in methods:
                        members.append(context.member("method", method, pruning, k, membership))
                        held.append(np.isin(pool, half))
                        forgotten.append(np.isin(pool, forget))
                        shadow.append(k)
        return Design("ulira", members, {"held": np.array(held), "forgotten": np.array(forgotten),
                                         "shadow": np.array(shadow), "pool": size, "forget": count,
                                         "oracle": method_label(oracle)})

    def score(self, population: Population) -> Scored:
        from ..evaluate.ulira import ulira

        design = population.design
        info = design.info
        rows, arrays = [], {}
        results: dict[tuple[str, str], Any] = {}
        spreads: dict[bytes, dict[str, Any]] = {}  # the prunings share one design: simulate it once
        for pruning in dict.fromkeys(m.pruning for m in design.members):
            for method in dict.fromkeys(m.method for m in design.members):
                index = population.rows(role="method", method=method, pruning=pruning)
                runs = (info["shadow"][index], info["held"][index], info["forgotten"][index])
                result = ulira(population.matrix(index), *runs, variance=self.variance)
                # the labelled variant: per-side σ's, or the shared σ when per-side is the main
                variant = ulira(population.matrix(index), *runs,
                                variance="shared" if result.variance == "per_side" else "per_side")
                results[(pruning, method)] = (result, variant, [population.records[i] for i in index])
                arrays[f"ulira/{pruning}/{method}/llr"] = result.scores.llr
                arrays[f"ulira/{pruning}/{method}/label"] = result.scores.label
                arrays[f"ulira-{variant.variance}/{pruning}/{method}/llr"] = variant.scores.llr
                arrays[f"ulira-{variant.variance}/{pruning}/{method}/label"] = variant.scores.label
            null, null_variant, _ = results[(pruning, info["oracle"])]
            index = population.rows(role="method", method=info["oracle"], pruning=pruning)
            runs = (info["shadow"][index], info["held"][index], info["forgotten"][index])
            key = b"".join(np.ascontiguousarray(a).tobytes() for a in runs)
            if key not in spreads:
                spreads[key] = self._null_spread(*runs)
            spread = spreads[key]
            for method in dict.fromkeys(m.method for m in design.members):
                result, variant, records = results[(pruning, method)]
                rows.append({"metric": "ulira", "pruning": pruning, "method": method,
                             "is_null": method == info["oracle"], "models": len(records),
                             **_attack_values(result, null), "targets": result.n_targets,
                             "variance": result.variance, "variant": variant.variance,
                             **{f"variant_{k}": v for k, v in _attack_values(variant, null_variant).items()},
                             **spread, **{k: _scored_mean(records, k) for k in ("UA", "MIA", "RA", "TA")}})
        return Scored(rows, arrays)

    def _null_spread(self, shadow: np.ndarray, held: np.ndarray, forgotten: np.ndarray) -> dict[str, Any]:
        """The null's mean and standard deviation over Gaussian audits of this design."""
        from ..evaluate.ulira import simulated_null
        if not self.null_simulations:
            return {}
        spread = simulated_null(shadow, held, forgotten, simulations=self.null_simulations,
                                variance=self.variance)
        return {"null_simulations": spread.simulations,
                "null_simulated_accuracy": 100 * spread.accuracy_mean,
                "null_simulated_accuracy_sd": 100 * spread.accuracy_sd,
                "null_simulated_auc": spread.auc_mean, "null_simulated_auc_sd": spread.auc_sd}


def _attack_values(result: Any, null: Any) -> dict[str, float]:
    """A U-LiRA result's table values (accuracy in %): mean, std over targets, naive s.e., null."""
    return {"accuracy": 100 * result.accuracy_mean, "accuracy_std": 100 * result.accuracy_std,
            "accuracy_se": 100 * result.accuracy_se, "auc": result.auc_mean,
            "auc_std": result.auc_std, "auc_se": result.auc_se,
            "null_accuracy": 100 * null.accuracy_mean, "null_auc": null.auc_mean}


# -- running an audit ------------------------------------------------------------------------
def population_metric(name: str, params: Mapping[str, Any]) -> PopulationMetric:
    from ..components import METRICS
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
    from ..report.records import load_records
    from .identity import resolved_config, trial_identity

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
    from ..report.records import load_records
    from .executors import LocalExecutor, Trial, run_grid
    from .trial import load_data

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
    run_grid(trials, executor or LocalExecutor(), log=log)
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
    summary = write_audit(spec, output, results, arrays, cost, seconds, metrics, data)
    if plots:
        from ..report.audit import plot_audit
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


def write_audit(spec: AuditSpec, output: Path, rows: list[dict[str, Any]], arrays: dict[str, np.ndarray],
                cost: Cost, seconds: float, metrics: Mapping[str, PopulationMetric], data: Any) -> dict[str, Any]:
    """``audit.json`` (the result record), ``per_example.npz`` and ``table.md``, each atomically."""
    import io

    from ..report.audit import render_audit
    from ..storage import atomic_write_bytes, atomic_write_text
    from ..storage import jsonable

    previous = _previous_seconds(output / "audit.json")
    summary = {"audit_format": AUDIT_FORMAT, "name": spec.name, "description": spec.description,
               "spec": jsonable(dataclasses.asdict(spec)),
               "metrics": {name: {"params": m.get_params(), **type(m).declaration().to_dict()}
                           for name, m in metrics.items()},
               "data_hash": data.content_hash, "cost": dataclasses.asdict(cost),
               "wall_clock_s": round(previous + seconds, 1), "rows": jsonable(rows)}
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
               **common: Any) -> AuditSpec:
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

    ``common`` holds the RunConfig fields of the command line (folders, device, ...).
    """
    from .recipes import FIELD_TYPES, _method, _pruning, _toml

    path = Path(path_or_name)
    if not (path.suffix == ".toml" and path.is_file()):
        bundled = {p.stem: p for p in bundled_audits()}
        if str(path_or_name) not in bundled:
            from ..errors import unknown_name_message
            raise ConfigError(unknown_name_message("audit", str(path_or_name), bundled))
        path = bundled[str(path_or_name)]
    try:
        table = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"audit recipe {path}: {exc}") from exc
    name = path.stem
    _check_audit_types(table, name)
    scales = table.get("scales", {})
    if scale != "full" and scale not in scales:
        raise ConfigError(f"--scale {scale!r} is invalid for audit {name!r}: expected one of "
                          f"{', '.join(['full', *scales])}")
    overrides = dict(scales.get(scale, {}))
    audit = {**table.get("audit", {}), **overrides.pop("audit", {})}
    run = {**table.get("run", {}), **overrides}
    base = {}
    for key, value in run.items():
        key = {"train": "train_params"}.get(key, key)
        if key not in RUN_FIELDS:
            raise ConfigError(f"audit {name!r} [run]: unknown key {key!r}; expected one of "
                              f"{', '.join(RUN_FIELDS)}")
        ok, expected = FIELD_TYPES[key]
        if not ok(value):
            raise ConfigError(f"audit {name!r} [run]: {key} = {_toml(value)} is invalid: expected {expected}")
        base[key] = value
    if unknown := set(audit) - set(AUDIT_KEYS):
        raise ConfigError(f"audit {name!r} [audit]: unknown keys {sorted(unknown)}; expected some of "
                          f"{', '.join(AUDIT_KEYS)}")
    for key, (ok, expected) in AUDIT_TYPES.items():
        if key in audit and not ok(audit[key]):
            raise ConfigError(f"audit {name!r} [audit]: {key} = {_toml(audit[key])} is invalid: "
                              f"expected {expected}")
    metrics = audit.get("metrics", ["klom", "ulira"])
    metrics = {m: {} for m in metrics} if isinstance(metrics, list) else dict(metrics)
    where = f"audit {name!r} [audit]"
    oracle = _method(audit.get("oracle", "retrain"), where)
    return AuditSpec(
        name=f"{name}" if scale == "full" else f"{name}-{scale}",
        description=table.get("description", ""), base={**base, **common},
        methods=tuple(_method(m, where) for m in audit.get("method", [])),
        prunings=tuple(_pruning(p, where) for p in audit.get("pruning", ["dense"])),
        metrics=metrics, models=models or int(audit.get("models", 8)),
        forget=float(audit.get("forget", 0.01)), seed=int(audit.get("seed", 0)), oracle=oracle)


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
    from importlib import resources
    folder = resources.files("unlearnbench.run.recipes") / "audits"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml"))
