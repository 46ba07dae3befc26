"""Forget specs and the one seeded split every stage of a trial shares.

A trial's :class:`Split` is computed once from ``(labels, forget spec, val_fraction, seed)``:
the original model trains on ``train``; ``forget`` and ``retain`` partition exactly that
``train``. The reference code could hold out a different validation set for the original
model and for unlearning (so some "retain" images were never trained on); here both stages
receive the same object, and the original's cache key contains the hash of ``train``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import numpy as np
import torch

from .tensors import tensor_hash
from .dataset import LoadedDataset
from ..errors import ConfigError
from ..train.runtime import generator


_SPEC = re.compile(r"\s*(class|random|backdoor)\s*:\s*([0-9]*\.?[0-9]+(?:e-?\d+)?)\s*"
                   r"(?:,\s*target\s*=\s*(\d+)\s*)?")


@dataclass(frozen=True)
class ForgetSpec:
    """What is forgotten, i.e. the scenario of a trial.

    * ``class:K``: every training example of class K (dropped from the test set too);
    * ``random:F`` / ``random:N``: a seeded random fraction F (or count N) of the training set;
    * ``backdoor:F[,target=T]`` / ``backdoor:N[,target=T]``: a seeded fraction F (or count N) of
      the training images gets the BadNets trigger and label T (default 0); those poisoned
      images are the forget set, and the attack success rate is measured before and after
      unlearning (see ``backdoor.py``).

    How a number is written decides what it is: with a decimal point or an exponent
    (``0.1``, ``1.0``, ``1e-2``) it is a fraction and must lie in (0, 1); a whole number
    (``100``) is a count of examples. So ``random:1.0`` is an error, not one example.
    """

    kind: str
    value: float
    target: int = 0  # the backdoor's target label
    count: bool = False  # ``value`` is a number of examples, not a fraction

    @classmethod
    def parse(cls, text: str) -> ForgetSpec:
        match = _SPEC.fullmatch(text)
        if not match:
            raise ConfigError(f"forget spec {text!r} is invalid: expected class:K (a class index), "
                              f"random:F (a fraction in (0, 1)), random:N (a count) or "
                              f"backdoor:F[,target=T] (poison a fraction F with target label T)")
        kind, written, target = match.group(1), match.group(2), match.group(3)
        whole = written.isdigit()  # "100" is a count; "1.0", ".5" and "1e-2" are fractions
        number = float(written)
        if target is not None and kind != "backdoor":
            raise ConfigError(f"forget spec {text!r}: target= applies to backdoor:F only")
        if kind == "class" and not whole:
            raise ConfigError(f"forget spec {text!r}: class index must be an integer")
        expected = "expected a fraction in (0, 1) or a whole count >= 1"
        if kind != "class" and whole and number < 1:
            raise ConfigError(f"forget spec {text!r}: {expected}")
        if kind != "class" and not whole and not 0 < number < 1:
            raise ConfigError(f"forget spec {text!r}: {expected}; {written} has a decimal point or "
                              f"exponent, so it is a fraction (a count is written as a whole number, "
                              f"e.g. {kind}:{max(int(number), 1)})")
        return cls(kind, number, int(target or 0), count=kind != "class" and whole)

    @property
    def scenario(self) -> str:
        return {"class": "class-wise", "random": "random", "backdoor": "backdoor"}[self.kind]

    @property
    def forget_class(self) -> int | None:
        return int(self.value) if self.kind == "class" else None

    @property
    def poisons(self) -> bool:
        """Whether the scenario changes the training data the original model sees."""
        return self.kind == "backdoor"

    def check(self, num_classes: int) -> None:
        """Errors that need the dataset's class count, raised before any training."""
        k = self.forget_class if self.kind == "class" else self.target
        if not 0 <= k < num_classes:
            what = "class" if self.kind == "class" else "target label"
            raise ConfigError(f"forget spec {self}: {what} {k} does not exist; "
                              f"expected 0..{num_classes - 1}")

    def __str__(self) -> str:
        value = int(self.value) if self.kind == "class" or self.count else self.value
        target = f",target={self.target}" if self.kind == "backdoor" and self.target else ""
        return f"{self.kind}:{value}{target}"


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
    spec.check(num_classes)
    if spec.kind == "class":
        k = spec.forget_class
        in_forget = labels == k
        if not in_forget.any():  # an empty forget set has no UA or MIA-Efficacy
            raise ConfigError(f"forget spec {spec}: class {k} has no training examples to forget")
        test = torch.nonzero(test_labels != k).flatten()
    else:  # random and backdoor: a seeded sample of the training split
        count = int(spec.value) if spec.count else int(round(spec.value * len(train)))
        if not 1 <= count < len(train):
            raise ConfigError(f"forget spec {spec}: {count} of {len(train)} training examples; "
                              f"expected at least 1 and fewer than all")
        chosen = torch.randperm(len(train), generator=generator(seed, "forget"))[:count]
        in_forget = torch.zeros(len(train), dtype=torch.bool)
        in_forget[chosen] = True
    if in_forget.all():
        raise ConfigError(f"forget spec {spec} would forget the whole training set")
    return Split(train, validation, train[in_forget], train[~in_forget], test)


def stratified_subset(labels: torch.Tensor, size: int, what: str) -> torch.Tensor:
    """Sorted indices of ``size`` examples keeping each class's share (fixed seed: every trial
    of a run sees the same subset, so trials differ only by their own seed)."""
    from sklearn.model_selection import train_test_split

    n = len(labels)
    if size > n:
        raise ConfigError(f"{what}={size} is invalid: the dataset has only {n} images there")
    if size == n:
        return torch.arange(n)
    classes = int(torch.unique(labels).numel())
    if size < classes:
        raise ConfigError(f"{what}={size} is invalid: expected at least one image per class "
                          f"({classes} classes)")
    chosen, _ = train_test_split(np.arange(n), train_size=size, stratify=labels.numpy(),
                                 random_state=0)
    return torch.from_numpy(np.sort(chosen))


def subsample(data: LoadedDataset, train_size: int | None, test_size: int | None) -> LoadedDataset:
    """``data`` cut to stratified subsets of the given sizes."""
    if train_size is None and test_size is None:
        return data
    train, test = data.train, data.test
    if train_size is not None:
        train = train.subset(stratified_subset(train.labels.cpu(), train_size, "train_size"))
    if test_size is not None:
        test = test.subset(stratified_subset(test.labels.cpu(), test_size, "test_size"))
    return dataclasses.replace(data, train=train, test=test)
