"""Forget specs and the one seeded split every stage of a trial shares.

A trial's :class:`Split` is computed once from ``(labels, forget spec, val_fraction, seed)``:
the original model trains on ``train``; ``forget`` and ``retain`` partition exactly that
``train``. The reference code could hold out a different validation set for the original
model and for unlearning (so some "retain" images were never trained on); here both stages
receive the same object, and the original's cache key contains the hash of ``train``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from .data import tensor_hash
from .errors import ConfigError
from .runtime import generator


@dataclass(frozen=True)
class ForgetSpec:
    """``class:K`` (every training example of class K) or ``random:F`` / ``random:N``."""

    kind: str
    value: float

    @classmethod
    def parse(cls, text: str) -> ForgetSpec:
        match = re.fullmatch(r"\s*(class|random)\s*:\s*([0-9]*\.?[0-9]+(?:e-?\d+)?)\s*", text)
        if not match:
            raise ConfigError(f"forget spec {text!r} is invalid: expected class:K (a class index) "
                              f"or random:F (a fraction in (0, 1)) or random:N (a count)")
        kind, number = match.group(1), float(match.group(2))
        if kind == "class" and not number.is_integer():
            raise ConfigError(f"forget spec {text!r}: class index must be an integer")
        if kind == "random" and not (0 < number < 1 or (number >= 1 and number.is_integer())):
            raise ConfigError(f"forget spec {text!r}: expected a fraction in (0, 1) or a whole count >= 1")
        return cls(kind, number)

    @property
    def scenario(self) -> str:
        return "class-wise" if self.kind == "class" else "random"

    @property
    def forget_class(self) -> int | None:
        return int(self.value) if self.kind == "class" else None

    def __str__(self) -> str:
        value = int(self.value) if self.value.is_integer() else self.value
        return f"{self.kind}:{value}"


@dataclass(frozen=True)
class Split:
    """Index tensors into the dataset's train and test parts."""

    train: torch.Tensor
    validation: torch.Tensor
    forget: torch.Tensor
    retain: torch.Tensor
    test: torch.Tensor

    @property
    def train_hash(self) -> str:
        return tensor_hash(self.train)

    @property
    def hash(self) -> str:
        return tensor_hash(self.train, self.validation, self.forget, self.retain, self.test)


def holdout(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Hold out ``fraction`` of each class as validation; returns sorted (train, validation)."""
    if not 0 <= fraction < 1:
        raise ConfigError(f"val_fraction={fraction} is invalid: expected a value in [0, 1)")
    g = generator(seed, "validation")
    val = []
    for c in torch.unique(labels):
        members = torch.nonzero(labels == c).flatten()
        members = members[torch.randperm(len(members), generator=g)]
        val.append(members[:int(round(fraction * len(members)))])
    val_index = torch.sort(torch.cat(val)).values
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[val_index] = False
    return torch.nonzero(keep).flatten(), val_index


def make_split(train_labels: torch.Tensor, test_labels: torch.Tensor, spec: ForgetSpec, *,
               num_classes: int, val_fraction: float, seed: int) -> Split:
    """The whole split of one trial (see the module docstring)."""
    train, validation = holdout(train_labels, val_fraction, seed)
    labels = train_labels[train]
    test = torch.arange(len(test_labels))
    if spec.kind == "class":
        k = spec.forget_class
        if not 0 <= k < num_classes:
            raise ConfigError(f"forget spec {spec}: class {k} does not exist; expected 0..{num_classes - 1}")
        in_forget = labels == k
        if not in_forget.any():  # an empty forget set has no UA or MIA-Efficacy
            raise ConfigError(f"forget spec {spec}: class {k} has no training examples to forget")
        test = torch.nonzero(test_labels != k).flatten()
    else:
        count = int(round(spec.value * len(train))) if spec.value < 1 else int(spec.value)
        if not 1 <= count < len(train):
            raise ConfigError(f"forget spec {spec}: {count} of {len(train)} training examples; "
                              f"expected at least 1 and fewer than all")
        chosen = torch.randperm(len(train), generator=generator(seed, "forget"))[:count]
        in_forget = torch.zeros(len(train), dtype=torch.bool)
        in_forget[chosen] = True
    if in_forget.all():
        raise ConfigError(f"forget spec {spec} would forget the whole training set")
    return Split(train, validation, train[in_forget], train[~in_forget], test)
