"""Random forgetting, ``random:F`` or ``random:N``: a seeded random share of the training split.

The random-data scenario of Jia et al. 2023 (10% of the training set in the paper's main
table): F is a fraction in (0, 1), N a count of examples; a number with a decimal point or an
exponent is a fraction, a whole number a count. The test set is kept whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..errors import ConfigError
from ..scenario import Scenario, amount_argument, sample, show_amount


@dataclass(frozen=True)
class RandomForget(Scenario):
    value: float  # a fraction in (0, 1), or a count
    count: bool = False  # ``value`` is a number of examples, not a fraction

    usage: ClassVar[str] = "random:F (a fraction in (0, 1)) or random:N (a count)"
    title: ClassVar[str] = "random"

    @classmethod
    def parse(cls, kind: str, argument: str) -> RandomForget:
        if "target" in argument:
            raise ConfigError(f"forget spec {f'{kind}:{argument}'!r}: target= applies to backdoor:F only")
        value, count = amount_argument(kind, argument, cls.usage)
        return cls(kind, value, count=count)

    def argument(self) -> str:
        return show_amount(self.value, self.count)

    def choose(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return sample(len(labels), self.value, self.count, generator, str(self))
