"""U-LiRA: a per-example likelihood-ratio attack on unlearned models.

Hayes, Shumailov, Triantafillou, Khalifa, Papernot, *Inexact Unlearning Needs More Careful
Evaluations to Avoid a False Sense of Privacy*, SaTML 2025 (arXiv 2403.01218), adapting LiRA
(Carlini et al., *Membership Inference Attacks From First Principles*, IEEE S&P 2022, arXiv
2112.03570; code tensorflow/privacy ``research/mi_lira_2021/plot.py``). The steps follow the
KLoM authors' re-run, RoyRin/data-unlearning-bench commit 56757ac ``unlearning/auditors/ulira/``.

The game: given an unlearned model and a candidate x, tell "trained on x, then unlearned it"
(positive) from "never saw x" (negative). K shadow originals each train on a random half of a
candidate pool; each is unlearned R times, every forget set drawn from its own half. For each x,
U_x = margins of unlearned shadows whose forget set held x, O_x = margins of unlearned shadows
that never held x; a Gaussian is fitted to each, and a target model's margin φ(x) scores
Λ(x) = log N(φ; μ_U, σ_U) − log N(φ; μ_O, σ_O) ("unlearned" if Λ > 0). Ideal: balanced
accuracy 0.5 and AUC 0.5, what retraining from scratch gets.

The steps are reconstructed from LiRA's code and the re-run, not from the paper's text. The
choices, each stated:

* O_x comes from *unlearned* shadows that never held x, not from the shadow originals as in the
  re-run: then "unlearned" and "never seen" differ only in whether x was learned and unlearned,
  not also in whether the model went through the unlearning procedure at all.
* μ = median and σ = standard deviation, as LiRA's ``plot.py``. σ² uses ddof = 1, the unbiased
  variance at the 4–8 samples of a small audit (LiRA's ``np.std`` has ddof = 0; the two agree
  at LiRA's scale).
* Below 64 shadows one global σ shared by U and O (``variance="shared"``, LiRA's
  ``fix_variance``, the reference note's choice), else one σ per example and side
  (``"per_example"``, LiRA's default). The shared σ is the pooled within-example deviation of
  both sides, σ² = Σ_side Σ_x Σ_i (φ_i − mean_{side,x})² / Σ_side Σ_x (n_{side,x} − 1): every
  residual from its own side's mean, pooled over examples and over U and O. One σ for both
  sides makes Λ linear in φ, Λ = (μ_U − μ_O)(φ − (μ_U + μ_O)/2) / σ², so the rule is a single
  threshold, the midpoint of the two medians. LiRA's ``fix_variance`` takes ``np.std`` of all
  in-scores without centering them per example (and uses it for both sides); the spread of the
  examples' means would then inflate σ, so this module centers per example.
* ``variance="per_side"`` is a labelled variant: the same pooling, but one σ for U and another
  for O. Λ is then quadratic in φ (two thresholds, or none). This is what the committed audit
  reported as "σ: global" before the shared σ became the default.
* Targets by leave-one-shadow-out: the runs of shadow k are targets for a fit on the runs of
  all other shadows, so a target never shares its original with the models it is scored against.

:class:`ULiRA` is the population metric (entry point ``ulira``) an audit runs with this attack
(``unlearnbench audit``, :mod:`unlearnbench.run.audit`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from scipy.stats import norm, rankdata

from ..data.population import Membership
from ..errors import ConfigError
from ..metric import Design, Population, PopulationMetric, Scored
from ..params import param
from .klom import TRIAL_METRICS, VARIANCE_FLOOR
from .margins import as_float64

if TYPE_CHECKING:
    from ..run.audit import AuditContext

VARIANCES = ("auto", "shared", "per_side", "per_example")
PER_EXAMPLE_FROM = 64  # LiRA: below ≈64 shadows, one global σ beats noisy per-example σ's
NULL_SIMULATIONS = 1000


@dataclass(frozen=True)
class TargetScores:
    """Every scored (target run, example) pair, for plots: Λ and whether x was forgotten."""

    run: np.ndarray  # int [n_scores], the target run m (row of ``phi``)
    example: np.ndarray  # int [n_scores], the candidate x (column of ``phi``)
    llr: np.ndarray  # float [n_scores], Λ(x) = log N(φ; U) − log N(φ; O)
    label: np.ndarray  # bool [n_scores], True: x was in the run's forget set


@dataclass(frozen=True)
class ULiraResult:
    """Balanced accuracy and AUC as mean ± std (ddof = 0) over the target runs.

    The std is the spread of single targets. ``accuracy_se`` and ``auc_se`` are std (ddof = 1)
    / √targets, the standard error of the mean *if* the targets were independent; they are not
    (every target's fit shares the other shadows), which :func:`simulated_null` measures.
    """

    accuracy_mean: float
    accuracy_std: float
    auc_mean: float
    auc_std: float
    n_targets: int  # target runs scored (with ≥ 1 usable positive and negative)
    skipped_points: int  # (run, x) pairs left out: too few U or O samples for x
    skipped_targets: int  # runs left out: no usable positive or no usable negative
    variance: str  # "shared", "per_side" or "per_example": the σ actually fitted
    target_runs: np.ndarray  # int [n_targets]
    accuracies: np.ndarray  # float [n_targets]
    aucs: np.ndarray  # float [n_targets]
    scores: TargetScores

    @property
    def accuracy_se(self) -> float:
        return _naive_se(self.accuracies)

    @property
    def auc_se(self) -> float:
        return _naive_se(self.aucs)


@dataclass(frozen=True)
class _Fit:
    """Gaussians for U_x and O_x of every candidate, fitted on the runs of the other shadows."""

    mu_u: np.ndarray
    sigma_u: np.ndarray
    mu_o: np.ndarray
    sigma_o: np.ndarray
    usable: np.ndarray  # bool [P]: enough samples on both sides

    def llr(self, phi: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Λ = log N(φ; μ_U, σ_U) − log N(φ; μ_O, σ_O) for margins ``phi`` of candidates ``x``."""
        return (norm.logpdf(phi, self.mu_u[x], self.sigma_u[x])
                - norm.logpdf(phi, self.mu_o[x], self.sigma_o[x]))


def ulira(phi: Any, shadow: Any, held: Any, forgotten: Any, *, variance: str = "auto",
          per_example_from: int = PER_EXAMPLE_FROM, seed: int = 0,
          variance_floor: float = VARIANCE_FLOOR) -> ULiraResult:
    """Run U-LiRA over M unlearning runs of K shadow originals on a pool of P candidates.

    ``phi``: float ``[M, P]``, the margin of each unlearned shadow model on each candidate.
    ``shadow``: int ``[M]``, the shadow original each run started from.
    ``held``: bool ``[M, P]``, whether that run's original trained on x (its random half; equal
    for all runs of one shadow). ``forgotten``: bool ``[M, P]``, whether x was in the run's forget
    set (a subset of ``held``).

    For each shadow k, U_x and O_x are fitted on the runs of the other shadows; each run m of
    shadow k is a target whose positives are its forgotten points and whose negatives are as many
    points (seeded choice, without replacement) that shadow k never held. A point whose U_x or
    O_x has fewer than 1 sample (2 with per-example σ) is skipped and counted. Each target gets
    a balanced accuracy (Λ > 0 means "unlearned") and an AUC of Λ (as ``roc_auc_score``).

    ``variance``: "shared" (one σ for every x and both sides: Λ linear in φ), "per_side" (one σ
    for U and one for O, pooled over x: a labelled variant, Λ quadratic), "per_example" (one per
    x and side), or "auto" (shared below ``per_example_from`` shadows, else per-example).
    σ's below √``variance_floor`` are raised to it, so identical samples give a finite Λ.
    Source and deviations: see the module docstring (O_x from unlearned shadows; LiRA's median
    and std, ddof = 1; the global σ pooled within examples).
    """
    phi, shadow, held, forgotten = _checked_population(phi, shadow, held, forgotten)
    shadows = np.unique(shadow)
    mode = _resolve_variance(variance, n_shadows=len(shadows), per_example_from=per_example_from)
    if not variance_floor > 0:
        raise ConfigError(f"variance_floor must be > 0, got {variance_floor}")
    rng = np.random.default_rng(seed)
    scored: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []  # run, x, Λ, label
    skipped_points = skipped_targets = 0
    for k in shadows:
        others = (shadow != k)[:, None]
        fit = _fit_gaussians(phi, forgotten & others, ~held & others, mode=mode,
                             variance_floor=variance_floor)
        for m in np.flatnonzero(shadow == k):
            x, label = _target_candidates(forgotten[m], held[m], rng)
            keep = fit.usable[x]
            skipped_points += int((~keep).sum())
            x, label = x[keep], label[keep]
            if label.all() or not label.any():
                skipped_targets += 1
            else:
                scored.append((int(m), x, fit.llr(phi[m, x], x), label))
    if not scored:
        raise ConfigError(
            f"U-LiRA has no usable target: every run lacks a forgotten or a never-held candidate "
            f"with enough samples ({skipped_points} points skipped; each needs >= "
            f"{2 if mode == 'per_example' else 1} U and O samples from other shadows"
            f"{'' if mode == 'per_example' else ', and the pooled σ some x with 2'}; "
            f"variance={mode!r}, {len(shadows)} shadows)")
    return _result(scored, skipped_points=skipped_points, skipped_targets=skipped_targets,
                   variance=mode)


@dataclass(frozen=True)
class NullSpread:
    """U-LiRA's score under the null on one design, over simulated audits: the mean and the
    standard deviation (ddof = 1) of the audit's mean accuracy and mean AUC."""

    simulations: int
    variance: str
    accuracy_mean: float
    accuracy_sd: float
    auc_mean: float
    auc_sd: float


def simulated_null(shadow: Any, held: Any, forgotten: Any, *, simulations: int = NULL_SIMULATIONS,
                   seed: int = 0, variance: str = "auto",
                   per_example_from: int = PER_EXAMPLE_FROM) -> NullSpread:
    """How far from 50% an audit of this design lands when there is nothing to detect.

    The design is kept (the runs' shadows, halves and forget sets: so the numbers of shadows,
    targets and candidates), and the margins are replaced by independent N(0, 1) draws, the
    same for forgotten and never-held points, so every simulated audit is a Retrain. Each is
    scored like the real one (its own seed for the negatives). The standard deviation of the
    mean accuracy over simulations is the noise of one audit's null row: it includes what the
    targets' shared shadows add, which the naive standard error over targets leaves out.
    Gaussian margins are an assumption; real margins are skewed and their σ differs by example.
    """
    if isinstance(simulations, bool) or not isinstance(simulations, (int, np.integer)) \
            or simulations < 2:
        raise ConfigError(f"simulations must be a whole number >= 2, got {simulations!r}")
    held = np.asarray(held)
    rng = np.random.default_rng(seed)
    results = [ulira(rng.standard_normal(held.shape), shadow, held, forgotten, variance=variance,
                     per_example_from=per_example_from, seed=int(rng.integers(2**32)))
               for _ in range(simulations)]
    accuracy = np.array([r.accuracy_mean for r in results])
    auc = np.array([r.auc_mean for r in results])
    return NullSpread(simulations=simulations, variance=results[0].variance,
                      accuracy_mean=float(accuracy.mean()), accuracy_sd=float(accuracy.std(ddof=1)),
                      auc_mean=float(auc.mean()), auc_sd=float(auc.std(ddof=1)))


def _target_candidates(forgotten: np.ndarray, held: np.ndarray,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One target run's candidates: its forgotten points (label True), then as many points its
    original never held (label False, drawn without replacement; all of them if fewer)."""
    positives = np.flatnonzero(forgotten)
    never_held = np.flatnonzero(~held)
    negatives = np.sort(rng.choice(never_held, size=min(len(positives), len(never_held)),
                                   replace=False))
    x = np.concatenate([positives, negatives])
    label = np.arange(len(x)) < len(positives)
    return x, label


def _fit_gaussians(phi: np.ndarray, in_u: np.ndarray, in_o: np.ndarray, *, mode: str,
                   variance_floor: float) -> _Fit:
    """Fit U_x (samples where ``in_u``) and O_x (where ``in_o``) for every candidate x, with
    the σ's of ``mode`` ("shared", "per_side" or "per_example")."""
    per_example = mode == "per_example"
    mu_u, var_u, count_u = _fit_side(phi, in_u, per_example=per_example)
    mu_o, var_o, count_o = _fit_side(phi, in_o, per_example=per_example)
    if mode == "shared":
        var_u = var_o = np.full(phi.shape[1], _pooled_variance(phi, [in_u, in_o]))
    needed = 2 if per_example else 1
    usable = (count_u >= needed) & (count_o >= needed) & np.isfinite(var_u) & np.isfinite(var_o)
    return _Fit(mu_u=mu_u, sigma_u=np.sqrt(np.maximum(var_u, variance_floor)),
               mu_o=mu_o, sigma_o=np.sqrt(np.maximum(var_o, variance_floor)), usable=usable)


def _fit_side(phi: np.ndarray, mask: np.ndarray, *,
              per_example: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of ``phi`` restricted to ``mask``: the median, the variance (per column, or one
    pooled within-column variance for all; NaN where undefined) and the sample count."""
    count = mask.sum(axis=0)
    values = np.where(mask, phi, np.nan)
    ordered = np.sort(values, axis=0)  # NaNs sort last, so the samples lead each column
    columns = np.arange(phi.shape[1])
    # The middle one or two samples; a column without samples reads NaN from row 0.
    lower_middle = ordered[(np.maximum(count, 1) - 1) // 2, columns]
    median = 0.5 * (lower_middle + ordered[count // 2, columns])
    if per_example:
        squares = _squares(phi, mask)
        variance = np.where(count >= 2, squares / np.maximum(count - 1, 1), np.nan)
    else:
        variance = np.full(phi.shape[1], _pooled_variance(phi, [mask]))
    return median, variance, count


def _squares(phi: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per column: the sum of squared deviations of the masked samples from their mean."""
    count = mask.sum(axis=0)
    mean = np.where(mask, phi, 0.0).sum(axis=0) / np.maximum(count, 1)
    return np.where(mask, (phi - mean) ** 2, 0.0).sum(axis=0)


def _pooled_variance(phi: np.ndarray, masks: list[np.ndarray]) -> float:
    """One within-column variance pooled over every column of every mask: each sample's squared
    deviation from its own (mask, column) mean, over Σ (n − 1) degrees of freedom; NaN if none."""
    squares = sum(float(_squares(phi, mask).sum()) for mask in masks)
    freedom = sum(int(np.maximum(mask.sum(axis=0) - 1, 0).sum()) for mask in masks)
    return squares / freedom if freedom > 0 else float("nan")


def _naive_se(values: np.ndarray) -> float:
    """std (ddof = 1) / √n: the standard error of a mean of independent values (0 for one)."""
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def _auc(label: np.ndarray, score: np.ndarray) -> float:
    """The ROC AUC of ``score`` for boolean ``label`` (both classes present), by the Mann-Whitney
    rank sum, ties counted half: sklearn's ``roc_auc_score``, ≈ 25 times faster on 18 points,
    which the null's thousands of simulated audits need."""
    positives = int(label.sum())
    negatives = len(label) - positives
    rank_sum = float(rankdata(score)[label].sum())
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def _balanced_accuracy(predicted: np.ndarray, label: np.ndarray) -> float:
    """Mean of the true-positive and true-negative rates (both classes must be present)."""
    return float(0.5 * (predicted[label].mean() + (~predicted[~label]).mean()))


def _result(scored: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]], *, skipped_points: int,
            skipped_targets: int, variance: str) -> ULiraResult:
    """Each target's balanced accuracy (Λ > 0: "unlearned") and AUC of Λ, and their summary."""
    runs, examples, llrs, labels = zip(*scored)
    accuracies = np.array([_balanced_accuracy(llr > 0, label) for llr, label in zip(llrs, labels)])
    aucs = np.array([_auc(label, llr) for llr, label in zip(llrs, labels)], dtype=float)
    run = np.repeat(np.array(runs, dtype=np.int64), [len(x) for x in examples])
    return ULiraResult(
        accuracy_mean=float(accuracies.mean()), accuracy_std=float(accuracies.std()),
        auc_mean=float(aucs.mean()), auc_std=float(aucs.std()), n_targets=len(runs),
        skipped_points=skipped_points, skipped_targets=skipped_targets, variance=variance,
        target_runs=np.array(runs, dtype=np.int64), accuracies=accuracies, aucs=aucs,
        scores=TargetScores(run=run, example=np.concatenate(examples).astype(np.int64),
                            llr=np.concatenate(llrs), label=np.concatenate(labels)))


def _resolve_variance(variance: str, *, n_shadows: int, per_example_from: int) -> str:
    """"global" or "per_example" for the ``variance`` setting and the number of shadows."""
    if variance == "global":  # the name of the per-side σ before the shared one was the default
        raise ConfigError("variance='global' is ambiguous: expected 'shared' (one global σ for U "
                          "and O, LiRA's fix_variance) or 'per_side' (one global σ per side)")
    if variance not in VARIANCES:
        raise ConfigError(f"variance must be one of {', '.join(VARIANCES)}, got {variance!r}")
    if isinstance(per_example_from, bool) or not isinstance(per_example_from, (int, np.integer)) \
            or per_example_from < 1:
        raise ConfigError(f"per_example_from must be a positive number of shadows, got "
                          f"{per_example_from!r}")
    if variance != "auto":
        return variance
    return "per_example" if n_shadows >= per_example_from else "shared"


def _checked_population(phi: Any, shadow: Any, held: Any,
                        forgotten: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The four inputs as arrays, or a ConfigError naming what does not fit the design."""
    phi = as_float64(phi, "phi")
    if phi.ndim != 2 or 0 in phi.shape:
        raise ConfigError(f"phi must have shape [runs, candidates], both >= 1, got {phi.shape}")
    if not np.isfinite(phi).all():
        raise ConfigError(f"phi holds {int((~np.isfinite(phi)).sum())} NaN or infinite margins")
    shadow = np.asarray(shadow)
    if shadow.shape != phi.shape[:1] or shadow.dtype.kind not in "iu":
        raise ConfigError(f"shadow must be integers of shape ({phi.shape[0]},) (one per run of "
                          f"phi), got dtype {shadow.dtype} and shape {shadow.shape}")
    if len(np.unique(shadow)) < 2:
        raise ConfigError("U-LiRA needs runs from at least 2 shadow originals (targets are "
                          "scored against the other shadows)")
    held = _checked_mask(held, "held", phi.shape)
    forgotten = _checked_mask(forgotten, "forgotten", phi.shape)
    outside = forgotten & ~held
    if outside.any():
        m, x = np.argwhere(outside)[0]
        raise ConfigError(f"forgotten must be a subset of held: run {m} forgets candidate {x}, "
                          f"which its original never trained on ({int(outside.sum())} such pairs)")
    for k in np.unique(shadow):
        rows = held[shadow == k]
        if not (rows == rows[0]).all():
            raise ConfigError(f"held must be the same for every run of one shadow original: "
                              f"the runs of shadow {k} disagree")
    return phi, shadow, held, forgotten


def _checked_mask(mask: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A boolean mask of the given shape (integers 0/1 are not accepted: they read as indices)."""
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.shape != shape:
        raise ConfigError(f"{name} must be a boolean array of shape {shape} like phi, got dtype "
                          f"{mask.dtype} and shape {mask.shape}")
    return mask


# -- the population metric ---------------------------------------------------------------
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
        oracle, methods = context.oracle_and_methods()
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
                                         "oracle": context.label(oracle)})

    def score(self, population: Population) -> Scored:
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
                results[(pruning, method)] = (result, variant, index)
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
                result, variant, members = results[(pruning, method)]
                rows.append({"metric": "ulira", "pruning": pruning, "method": method,
                             "is_null": method == info["oracle"], "models": len(members),
                             **_attack_values(result, null), "targets": result.n_targets,
                             "variance": result.variance, "variant": variant.variance,
                             **{f"variant_{k}": v for k, v in _attack_values(variant, null_variant).items()},
                             **spread, **{k: population.metric_mean(members, k) for k in TRIAL_METRICS}})
        return Scored(rows, arrays)

    def _null_spread(self, shadow: np.ndarray, held: np.ndarray, forgotten: np.ndarray) -> dict[str, Any]:
        """The null's mean and standard deviation over Gaussian audits of this design."""
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
