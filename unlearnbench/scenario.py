"""The scenario contract: what a trial forgets, written ``--forget KIND:ARGUMENT``.

A scenario is a class registered in the entry-point group ``unlearnbench.scenarios`` under its
KIND (the built-ins ``class``, ``random`` and ``backdoor`` are declared there exactly like a
plugin's). :func:`unlearnbench.data.splits.ForgetSpec.parse` looks KIND up and hands the
ARGUMENT to the class's :meth:`Scenario.parse`; the instance then decides, for every trial:

* which examples of the training split are forgotten (:meth:`Scenario.choose`, seeded);
* optionally, what the original model trains on instead of the clean images
  (:meth:`Scenario.poison`: the backdoor stamps its trigger on the forget set);
* optionally, which test examples TA is measured on (:meth:`Scenario.keep_test`: the
  class-wise scenario drops the forgotten class);
* which probes measure the model before and after unlearning (:meth:`Scenario.probes`).

A plugin::

    @dataclass(frozen=True)
    class FirstN(Scenario):
        \"\"\"Forget the first N examples of the training split.\"\"\"
        usage: ClassVar[str] = "first:N (a count)"
        n: int

        @classmethod
        def parse(cls, kind, argument):
            return cls(kind, count_argument(kind, argument, cls.usage))

        def argument(self):
            return str(self.n)

        def choose(self, labels, generator):
            return torch.arange(len(labels)) < self.n

The text a scenario prints (``KIND:`` + :meth:`Scenario.argument`) is part of a trial's
identity and of its record's file name, so it must be canonical: parsing it gives back an
equal scenario.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from .errors import ConfigError

if TYPE_CHECKING:
    from .data.tensors import ImageData

NUMBER = r"[0-9]*\.?[0-9]+(?:e-?\d+)?"  # a count ("100") or a fraction (".5", "0.1", "1e-2")


@dataclass(frozen=True)
class Scenario(abc.ABC):
    """Base class of every forgetting scenario (see the module docstring)."""

    kind: str  # the name it is registered under: the text before the colon

    #: the argument's syntax, for error messages: ``"random:F (a fraction in (0, 1))"``
    usage: ClassVar[str] = ""
    #: the scenario's name in records and tables; None: its kind
    title: ClassVar[str | None] = None

    @classmethod
    @abc.abstractmethod
    def parse(cls, kind: str, argument: str) -> Scenario:
        """The scenario written ``KIND:ARGUMENT``; a :class:`ConfigError` naming the whole text
        (see :func:`spec_error`) when ``argument`` is invalid."""

    @abc.abstractmethod
    def argument(self) -> str:
        """The canonical text after ``KIND:`` (parsing it gives an equal scenario)."""

    @abc.abstractmethod
    def choose(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Which examples of the training split are forgotten: a boolean mask over ``labels``
        (the training split's labels, in its order); ``generator`` is seeded by the trial's
        seed, for a random choice."""

    def check(self, num_classes: int) -> None:
        """Errors that need the dataset's class count, raised before any training."""

    def poison(self, train: ImageData, forget: torch.Tensor) -> ImageData:
        """The training images and labels the original model sees; ``forget`` indexes the
        forget set in ``train``. Unchanged by default; a scenario that changes them (see
        :attr:`poisons`) must not modify ``train`` itself."""
        return train

    def keep_test(self, labels: torch.Tensor) -> torch.Tensor | None:
        """A boolean mask of the test examples TA is measured on; None (the default): all."""
        return None

    def tuning(self, num_classes: int) -> Scenario | None:
        """The scenario hyperparameters are tuned on (``unlearnbench tune``): a forget set of
        the same kind whose examples are disjoint from this one's, so that selection never
        looks at how a method forgets the evaluated set. None: this scenario cannot be tuned
        apart from itself (the default)."""
        return None

    def probes(self) -> dict[str, dict[str, Any]]:
        """The probes (by registered name, with their parameters) this scenario needs measured
        before and after unlearning."""
        return {}

    @property
    def poisons(self) -> bool:
        """Whether the original model trains on data this scenario changed (then the
        scenario and its forget set are part of the original's cache key)."""
        return type(self).poison is not Scenario.poison

    @property
    def scenario(self) -> str:
        """The name stored in records ("class-wise", "random", "backdoor")."""
        return self.title or self.kind

    @property
    def forget_class(self) -> int | None:
        """The class forgotten as a whole, if any (records name it)."""
        return None

    def __str__(self) -> str:
        return f"{self.kind}:{self.argument()}"


def spec_error(kind: str, argument: str, problem: str) -> ConfigError:
    """``forget spec 'KIND:ARGUMENT' is invalid: PROBLEM``."""
    return ConfigError(f"forget spec {f'{kind}:{argument}'!r} is invalid: {problem}")


def amount_argument(kind: str, argument: str, usage: str, *,
                    written: str | None = None) -> tuple[float, bool]:
    """The amount ``written`` (default: the whole ``argument``), a fraction or a count by how
    it is written: with a decimal point or an exponent
    (``0.1``, ``1.0``, ``1e-2``) it is a fraction and must lie in (0, 1); a whole number
    (``100``) is a count >= 1. So ``random:1.0`` is an error, not one example.

    Returns ``(value, is_count)``; errors name ``usage`` and the whole ``KIND:ARGUMENT``.
    """
    written = (argument if written is None else written).strip()
    if not re.fullmatch(NUMBER, written):
        raise spec_error(kind, argument, f"expected {usage}")
    whole = written.isdigit()
    number = float(written)
    text = f"{kind}:{argument}"
    expected = "expected a fraction in (0, 1) or a whole count >= 1"
    if whole and number < 1:
        raise ConfigError(f"forget spec {text!r}: {expected}")
    if not whole and not 0 < number < 1:
        raise ConfigError(f"forget spec {text!r}: {expected}; {written} has a decimal point or "
                          f"exponent, so it is a fraction (a count is written as a whole number, "
                          f"e.g. {kind}:{max(int(number), 1)})")
    return number, whole


def show_amount(value: float, count: bool) -> str:
    """The canonical text of :func:`amount_argument`'s result (``500``, ``0.1``)."""
    return str(int(value)) if count else str(value)


def sample(num_train: int, value: float, count: bool, generator: torch.Generator,
           spec: str) -> torch.Tensor:
    """A boolean mask of a seeded random ``value`` (a fraction, or a count) of ``num_train``
    examples; at least one and fewer than all."""
    chosen = int(value) if count else int(round(value * num_train))
    if not 1 <= chosen < num_train:
        raise ConfigError(f"forget spec {spec}: {chosen} of {num_train} training examples; "
                          f"expected at least 1 and fewer than all")
    picked = torch.randperm(num_train, generator=generator)[:chosen]
    in_forget = torch.zeros(num_train, dtype=torch.bool)
    in_forget[picked] = True
    return in_forget
