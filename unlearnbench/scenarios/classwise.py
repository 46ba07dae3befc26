"""Class-wise forgetting, ``class:K``: every training example of class K is forgotten.

The class-wise scenario of Jia et al. 2023 (and of the unlearning literature before it):
the forget set is a whole class, and class K is dropped from the test set too, so TA measures
the accuracy on the classes the model is meant to keep.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..errors import ConfigError
from ..scenario import NUMBER, Scenario, spec_error


@dataclass(frozen=True)
class ClassWise(Scenario):
    value: float  # the class index (a float, as every scenario's amount is)

    usage: ClassVar[str] = "class:K (a class index)"
    title: ClassVar[str] = "class-wise"

    @classmethod
    def parse(cls, kind: str, argument: str) -> ClassWise:
        written = argument.strip()
        if re.fullmatch(r"\d+", written):
            return cls(kind, float(written))
        if re.fullmatch(NUMBER, written):
            raise ConfigError(f"forget spec {f'{kind}:{argument}'!r}: class index must be an integer")
        raise spec_error(kind, argument, f"expected {cls.usage}")

    @property
    def forget_class(self) -> int:
        return int(self.value)

    def argument(self) -> str:
        return str(self.forget_class)

    def check(self, num_classes: int) -> None:
        if not 0 <= self.forget_class < num_classes:
            raise ConfigError(f"forget spec {self}: class {self.forget_class} does not exist; "
                              f"expected 0..{num_classes - 1}")

    def choose(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        in_forget = labels == self.forget_class
        if not in_forget.any():  # an empty forget set has no UA or MIA-Efficacy
            raise ConfigError(f"forget spec {self}: class {self.forget_class} has no training "
                              f"examples to forget")
        return in_forget

    def tuning(self, num_classes: int) -> ClassWise:
        """The next class (K + 1 mod C): another whole class, disjoint from K."""
        return ClassWise(self.kind, float((self.forget_class + 1) % num_classes))

    def keep_test(self, labels: torch.Tensor) -> torch.Tensor:
        return labels != self.forget_class
