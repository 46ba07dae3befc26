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
import math
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

    def grid(self, points: int) -> list[Any]:
        """``points`` values spread over the range, both ends included (a grid search's axis)."""
        raise NotImplementedError(f"{type(self).__name__} has no grid")

    @property
    def fixed_points(self) -> int | None:
        """How many values the dimension's grid has whatever is asked (a choice's), else None."""
        return None


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

    def grid(self, points: int) -> list[float]:
        if points == 1:
            return [self.low + (self.high - self.low) / 2]
        return [self.low + (self.high - self.low) * i / (points - 1) for i in range(points)]


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

    def grid(self, points: int) -> list[float]:
        """Evenly spaced in log scale (1e-5, 1e-4, 1e-3 for three points over [1e-5, 1e-3])."""
        low, high = math.log10(self.low), math.log10(self.high)
        if points == 1:
            return [10 ** ((low + high) / 2)]
        points_ = (10 ** (low + (high - low) * i / (points - 1)) for i in range(points))
        return [min(max(v, self.low), self.high) for v in points_]  # float rounding kept inside


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

    def grid(self, points: int) -> list[Any]:
        return list(self.values)

    @property
    def fixed_points(self) -> int | None:
        return len(self.values)


def grid_of(space: Mapping[str, Dimension], trials: int) -> dict[str, list[Any]]:
    """The axes of a full grid of ``trials`` points over ``space``: every choice with all its
    values, each range with the same number of points k, so that k ** ranges x choices' values
    == trials; a ConfigError naming the trial counts that would work otherwise."""
    fixed = math.prod(d.fixed_points for d in space.values() if d.fixed_points is not None)
    ranges = sum(d.fixed_points is None for d in space.values())
    k = round((trials / fixed) ** (1 / ranges)) if ranges else 1
    if k < 1 or k ** ranges * fixed != trials:
        valid = ", ".join(str(n ** ranges * fixed) for n in range(1, 5))
        raise ConfigError(f"--trials {trials} is invalid for a grid over {', '.join(space)}: "
                          f"expected points ** {ranges} range(s) x {fixed} choice value(s), e.g. {valid}")
    return {name: d.grid(k) for name, d in space.items()}


def describe_space(space: Mapping[str, Dimension]) -> dict[str, dict[str, Any]]:
    """A space as JSON, by hyperparameter."""
    return {name: dim.describe() for name, dim in space.items()}
