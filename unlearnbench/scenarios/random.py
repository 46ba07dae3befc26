"""Random forgetting, ``random:F`` or ``random:N``: a seeded random share of the training split.

The random-data scenario of Jia et al. 2023 (10% of the training set in the paper's main
table): F is a fraction in (0, 1), N a count of examples; a number with a decimal point or an
exponent is a fraction, a whole number a count. The test set is kept whole.

``random:F,draw=D`` (D >= 1) is the D-th further draw of the same size, taken from the
examples that draws 0 .. D-1 left (same trial seed): disjoint from the plain ``random:F``, it
is the split hyperparameters are tuned on (:meth:`RandomForget.tuning`).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..errors import ConfigError
from ..scenario import Scenario, amount_argument, sample, show_amount, spec_error


@dataclass(frozen=True)
class RandomForget(Scenario):
    value: float  # a fraction in (0, 1), or a count
    count: bool = False  # ``value`` is a number of examples, not a fraction
    draw: int = 0  # which draw of that size: 0 is the evaluated one, 1.. are disjoint from it

    usage: ClassVar[str] = "random:F (a fraction in (0, 1)) or random:N (a count), optionally ,draw=D"
    title: ClassVar[str] = "random"

    @classmethod
    def parse(cls, kind: str, argument: str) -> RandomForget:
        if "target" in argument:
            raise ConfigError(f"forget spec {f'{kind}:{argument}'!r}: target= applies to backdoor:F only")
        amount, comma, option = argument.partition(",")
        draw = 0
        if comma:
            match = re.fullmatch(r"\s*draw\s*=\s*(\d+)\s*", option)
            if not match or int(match.group(1)) < 1:
                raise spec_error(kind, argument, f"expected {cls.usage} with D a whole number >= 1")
            draw = int(match.group(1))
        value, count = amount_argument(kind, argument, cls.usage, written=amount)
        return cls(kind, value, count=count, draw=draw)

    def argument(self) -> str:
        return show_amount(self.value, self.count) + (f",draw={self.draw}" if self.draw else "")

    def tuning(self, num_classes: int) -> RandomForget:
        return dataclasses.replace(self, draw=self.draw + 1)

    def choose(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = len(labels)
        chosen = taken = sample(n, self.value, self.count, generator, str(self))  # draw 0
        size = int(chosen.sum())
        for _ in range(self.draw):  # each further draw from what the earlier ones left
            left = torch.nonzero(~taken).flatten()
            chosen = torch.zeros(n, dtype=torch.bool)
            chosen[left[sample(len(left), size, True, generator, str(self))]] = True
            taken = taken | chosen
        return chosen
