"""Search spaces: the ranges a method declares for its hyperparameters, for ``unlearnbench tune``.

A method states where each tunable hyperparameter may lie (``Unlearner.search_space``), as the
paper gives it where it does; the tuning protocol (``unlearnbench.run.tuning``) samples every
method's space with the same number of trials. A dimension is plain data, so a study's record
keeps the space it searched::

    class FineTune(Unlearner):
        lr: float = param(0.01, gt=0)
        search_space = {"lr": LogUniform(0.01, 0.1)}
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError


class Dimension(abc.ABC):
    """One hyperparameter's range."""

    @abc.abstractmethod
    def distribution(self) -> Any:
        """The range as an Optuna distribution (the sampler draws from it)."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """The range as JSON (a study's provenance)."""

    def contains(self, value: Any) -> bool:
        """Whether ``value`` lies in the range."""
        return True


@dataclass(frozen=True)
class Uniform(Dimension):
    """A float uniform in [low, high]."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ConfigError(f"{type(self).__name__}({self.low}, {self.high}): expected low < high")

    def distribution(self) -> Any:
        from optuna.distributions import FloatDistribution  # only a tuning study needs optuna
        return FloatDistribution(self.low, self.high)

    def describe(self) -> dict[str, Any]:
        return {"kind": "uniform", "low": self.low, "high": self.high}

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and self.low <= value <= self.high


@dataclass(frozen=True)
class LogUniform(Uniform):
    """A positive float uniform in log scale over [low, high] (learning rates, strengths)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.low <= 0:
            raise ConfigError(f"LogUniform({self.low}, {self.high}): expected low > 0")

    def distribution(self) -> Any:
        from optuna.distributions import FloatDistribution  # only a tuning study needs optuna
        return FloatDistribution(self.low, self.high, log=True)

    def describe(self) -> dict[str, Any]:
        return {"kind": "log-uniform", "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Choice(Dimension):
    """One of a few values (a scheduler, a flag)."""

    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise ConfigError("Choice(): expected at least one value")

    def distribution(self) -> Any:
        from optuna.distributions import CategoricalDistribution  # only a tuning study needs optuna
        return CategoricalDistribution(list(self.values))

    def describe(self) -> dict[str, Any]:
        return {"kind": "choice", "values": list(self.values)}

    def contains(self, value: Any) -> bool:
        return value in self.values


def describe_space(space: Mapping[str, Dimension]) -> dict[str, dict[str, Any]]:
    """A space as JSON, by hyperparameter."""
    return {name: dim.describe() for name, dim in space.items()}
