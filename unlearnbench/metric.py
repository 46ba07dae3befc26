"""The metric contract: what a measurement declares about itself, and how it is computed.

A metric is a class registered in the entry-point group ``unlearnbench.metrics`` (the
built-ins are declared there exactly like a plugin's). Its class attributes are its
declaration, and everything that shows a metric follows from them: the leaderboard's columns
and Disparity, the plots, the run summary and the web site.

Two kinds:

* :class:`TrialMetric` needs one trial: the unlearned model's logits on the forget, retain and
  test sets (:class:`TrialEvaluation`). UA, MIA-Efficacy, RA and TA are trial metrics.
* :class:`PopulationMetric` needs a population of trained models (many originals, oracles and
  unlearning runs that differ in their seeds): an audit such as KLoM or U-LiRA. It says which
  models it needs and scores their per-example margins; ``unlearnbench audit`` runs it.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from .params import Configurable

if TYPE_CHECKING:
    import torch

DIRECTIONS = ("higher", "lower")
NEEDS = ("trial", "population")


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


class Metric(Configurable, abc.ABC):
    """Base class of every metric. Subclasses set the class attributes below."""

    label: ClassVar[str]  # the column header, e.g. "MIA-Efficacy"
    unit: ClassVar[str] = "%"  # "%", "s", "nats", ...
    higher_is_better: ClassVar[bool] = True
    in_disparity: ClassVar[bool] = False  # whether |value - Retrain's| enters Disparity Ave.
    needs: ClassVar[str] = "trial"  # "trial" or "population"
    description: ClassVar[str] = ""  # one line for `unlearnbench ls metrics` and table captions

    @classmethod
    def declaration(cls) -> dict[str, Any]:
        """The declaration as data (for listings, records and tests)."""
        return {"label": cls.label, "unit": cls.unit, "higher_is_better": cls.higher_is_better,
                "in_disparity": cls.in_disparity, "needs": cls.needs, "description": cls.description}


class TrialMetric(Metric):
    """A metric of one trial's unlearned model."""

    needs: ClassVar[str] = "trial"

    @abc.abstractmethod
    def compute(self, evaluation: TrialEvaluation) -> float | None:
        """The value (None: undefined, e.g. an empty set)."""


class PopulationMetric(Metric):
    """A metric of a population of trained models (see ``unlearnbench.run.audit``): it
    declares the population it needs (:meth:`design`) and scores the models' per-example
    margins (:meth:`score`)."""

    needs: ClassVar[str] = "population"

    @abc.abstractmethod
    def design(self, spec: Any) -> Any:
        """The models to train and unlearn for ``spec`` (an ``unlearnbench.run.audit.AuditSpec``)."""

    @abc.abstractmethod
    def score(self, population: Any) -> Any:
        """Score a population's margins (an ``unlearnbench.run.audit.Population``)."""
