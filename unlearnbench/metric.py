"""The metric contract: what a measurement declares about itself, and how it is computed.

A metric is a class registered in the entry-point group ``unlearnbench.metrics`` (the
built-ins are declared there exactly like a plugin's). Its class attributes are its
declaration, and everything that shows a metric follows from them: the leaderboard's columns
and Disparity, the plots, the run summary and the web site.

Two kinds:

* :class:`TrialMetric` needs one trial: the unlearned model's logits on the forget, retain and
  test sets, and the unlearning call's seconds (:class:`TrialEvaluation`). UA, MIA-Efficacy, RA,
  TA and RTE are trial metrics; every run measures every registered one.
* :class:`PopulationMetric` needs a population of trained models (many originals, oracles and
  unlearning runs that differ in their seeds): an audit such as KLoM or U-LiRA. It says which
  models it needs and scores their per-example margins; ``unlearnbench audit`` runs it.
"""

from __future__ import annotations

import abc
import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .errors import ConfigError
from .params import Configurable

if TYPE_CHECKING:
    import torch

    from .run.audit import AuditContext
    from .run.config import RunConfig

NEEDS = ("trial", "population")
# Names the tables give their own columns: a metric of that name would overwrite one.
RESERVED_NAMES = frozenset({
    "dataset", "arch", "scenario", "forget", "forget_name", "pruning", "method", "seed", "seeds",
    "base", "variant", "setting", "versions", "sparsity", "device", "devices", "diverged", "n",
    "disparity", "target", "speed", "run_id"})
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.+-]*")


def check_metric_name(name: str) -> str:
    """``name`` when a metric may use it (a letter, then letters, digits, ``_.+-``; none of the
    tables' own column names), else a :class:`ConfigError` saying why."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"metric name {name!r} is invalid: expected a letter followed by letters, "
                          f"digits or _.+-")
    if name in RESERVED_NAMES:
        raise ConfigError(f"metric name {name!r} is taken by a column of the tables: expected "
                          f"another name")
    return name


@dataclass(frozen=True)
class MetricDeclaration:
    """What a metric says about itself, as data: run records keep a copy of the declaration of
    every metric they hold, so a table renders them without the metric's package installed."""

    label: str  # the column header, e.g. "MIA-Efficacy"
    unit: str = "%"  # "%", "s", "nats", ...
    higher_is_better: bool = True
    in_disparity: bool = False  # whether |value - Retrain's| enters Disparity Ave.
    needs: str = "trial"  # "trial" or "population"
    description: str = ""  # one line for `unlearnbench ls metrics` and the web site
    order: int = 100  # columns sort by (order, name); the built-ins use 10-50
    decimals: int = 2  # digits after the point in tables and summaries

    def __post_init__(self) -> None:
        for name, kind in (("label", str), ("unit", str), ("description", str),
                           ("higher_is_better", bool), ("in_disparity", bool)):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(f"{name}={getattr(self, name)!r} is invalid: expected a {kind.__name__}")
        for name in ("order", "decimals"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{name}={value!r} is invalid: expected an integer")
        if not self.label.strip():
            raise ConfigError("label='' is invalid: expected the column header, e.g. 'UA'")
        if self.needs not in NEEDS:
            raise ConfigError(f"needs={self.needs!r} is invalid: expected one of {', '.join(NEEDS)}")
        if not 0 <= self.decimals <= 10:
            raise ConfigError(f"decimals={self.decimals} is invalid: expected 0 to 10")

    @property
    def header(self) -> str:
        """The table's column header: the label, with the unit unless it is percent (the
        tables' default, said once in their notes)."""
        return self.label if self.unit in ("%", "") else f"{self.label} ({self.unit})"

    @property
    def direction(self) -> str:
        """How a value reads: "retrain" (closer to Retrain is better: a Disparity metric),
        "higher" or "lower"."""
        if self.in_disparity:
            return "retrain"
        return "higher" if self.higher_is_better else "lower"

    def show(self, value: float | None) -> str:
        """``value`` as a run summary writes it: ``12.34`` (percent), ``1.50s``, ``0.31 nats``."""
        if value is None:
            return "—"
        number = f"{value:.{self.decimals}f}"
        if self.unit in ("%", ""):
            return number
        return number + (self.unit if len(self.unit) <= 2 else f" {self.unit}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def columns(declarations: Mapping[str, MetricDeclaration]) -> dict[str, MetricDeclaration]:
    """The trial metrics of ``declarations`` (name -> declaration) in column order: declared
    ``order``, then name. Population metrics are no per-trial columns."""
    trial = [(name, d) for name, d in declarations.items() if d.needs == "trial"]
    return dict(sorted(trial, key=lambda item: (item[1].order, item[0])))


@dataclass(frozen=True)
class TrialEvaluation:
    """What a trial metric may look at: fp32 logits (on the CPU) of the unlearned model in eval
    mode without augmentation, the labels, the MIA's member indices (into ``retain``) and the
    unlearning call's seconds."""

    forget_logits: torch.Tensor
    forget_labels: torch.Tensor
    retain_logits: torch.Tensor
    retain_labels: torch.Tensor
    test_logits: torch.Tensor
    test_labels: torch.Tensor
    mia_members: torch.Tensor
    rte: float
    # the whole held-out set TA's examples come from (the test set, or a tuning trial's
    # validation hold-out), examples a scenario leaves out of TA included (a forgotten class)
    heldout_logits: torch.Tensor | None = None
    heldout_labels: torch.Tensor | None = None


class Metric(Configurable, abc.ABC):
    """Base class of every metric. Subclasses set the class attributes below (the fields of
    :class:`MetricDeclaration`); ``label`` is required."""

    label: ClassVar[str]  # the column header, e.g. "MIA-Efficacy"
    unit: ClassVar[str] = "%"  # "%", "s", "nats", ...
    higher_is_better: ClassVar[bool] = True
    in_disparity: ClassVar[bool] = False  # whether |value - Retrain's| enters Disparity Ave.
    needs: ClassVar[str] = "trial"  # "trial" or "population"
    description: ClassVar[str] = ""  # one line for `unlearnbench ls metrics` and the web site
    order: ClassVar[int] = 100  # columns sort by (order, name)
    decimals: ClassVar[int] = 2  # digits after the point in tables and summaries

    @classmethod
    def declaration(cls) -> MetricDeclaration:
        """The declaration as data (for listings, records and tests); a :class:`ConfigError`
        names the class and the field when it is malformed."""
        if not isinstance(getattr(cls, "label", None), str):
            raise ConfigError(f"{cls.__qualname__} declares no label: expected a class attribute "
                              f"label = 'column header'")
        fields = {f.name: getattr(cls, f.name) for f in dataclasses.fields(MetricDeclaration)}
        try:
            return MetricDeclaration(**fields)
        except ConfigError as exc:
            raise ConfigError(f"{cls.__qualname__} declares {exc}") from None


class TrialMetric(Metric):
    """A metric of one trial's unlearned model."""

    needs: ClassVar[str] = "trial"

    @abc.abstractmethod
    def compute(self, evaluation: TrialEvaluation) -> float | None:
        """The value (None: undefined, e.g. an empty set)."""


class PopulationMetric(Metric):
    """A metric of a population of trained models (an audit, run by ``unlearnbench.run.audit``):
    it declares the population it needs (:meth:`design`) and scores the models' per-example
    margins (:meth:`score`)."""

    needs: ClassVar[str] = "population"

    @abc.abstractmethod
    def design(self, context: AuditContext) -> Design:
        """The trials to run for an audit: ``context`` holds the audit's spec and data labels and
        makes its members (:class:`~unlearnbench.run.audit.AuditContext`)."""

    @abc.abstractmethod
    def score(self, population: Population) -> Scored:
        """Score a population's margins: the table's rows and the per-example arrays."""


# -- what a population metric designs and scores ----------------------------------------------
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


@dataclass
class Population:
    """A design's trials, run: each member's margins on the design's scored examples."""

    design: Design
    margins: list[np.ndarray]  # per member, aligned with design.members
    records: list[Any]  # per member, its run record

    def matrix(self, members: Sequence[int]) -> np.ndarray:
        return np.stack([self.margins[i] for i in members])

    def rows(self, *, role: str, method: str | None = None, pruning: str) -> list[int]:
        return [i for i, m in enumerate(self.design.members)
                if m.role == role and m.pruning == pruning and (method is None or m.method == method)]

    def metric_mean(self, members: Sequence[int], name: str) -> float | None:
        """The mean of the trial metric ``name`` over ``members`` (diverged runs and undefined
        values left out; None when none is left)."""
        values = [self.records[i].metrics.get(name) for i in members if not self.records[i].diverged]
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else None


@dataclass
class Scored:
    """A population metric's result: table rows (one per pruning and method, each with its
    null) and per-example arrays (name -> array) kept beside the audit's record."""

    rows: list[dict[str, Any]]
    arrays: dict[str, np.ndarray]
