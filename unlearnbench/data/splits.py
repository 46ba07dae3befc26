"""Forget specs and the one seeded split every stage of a trial shares.

A trial's :class:`Split` is computed once from ``(labels, forget spec, val_fraction, seed)``:
the original model trains on ``train``; ``forget`` and ``retain`` partition exactly that
``train``. The reference code could hold out a different validation set for the original
model and for unlearning (so some "retain" images were never trained on); here both stages
receive the same object, and the original's cache key contains the hash of ``train``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..components import SCENARIOS
from ..errors import ConfigError, PluginError, UnlearnbenchError, unknown_name_message
from ..scenario import Scenario
from ..seeds import generator
from .dataset import LoadedDataset
from .tensors import tensor_hash

if TYPE_CHECKING:
    from ..registry import Registry


class ForgetSpec:
    """``--forget KIND:ARGUMENT``, the scenario of a trial.

    KIND names a scenario registered in ``unlearnbench.scenarios`` (built in: ``class:K``,
    ``random:F`` or ``random:N``, ``backdoor:F[,target=T]`` or ``backdoor:N[,target=T]``);
    the scenario's class parses ARGUMENT (see :class:`unlearnbench.scenario.Scenario`).
    """

    @staticmethod
    def parse(text: str) -> Scenario:
        kind, colon, argument = text.partition(":")
        kind = kind.strip()
        if not colon or not kind:
            raise ConfigError(f"forget spec {text!r} is invalid: expected KIND:ARGUMENT, one of "
                              f"{_usages(SCENARIOS)}")
        if kind not in SCENARIOS:
            raise ConfigError(f"forget spec {text!r} is invalid: "
                              f"{unknown_name_message('scenario', kind, SCENARIOS.names())} "
                              f"Expected one of {_usages(SCENARIOS)}")
        scenario = SCENARIOS.get(kind).parse(kind, argument.strip())
        if not isinstance(scenario, Scenario) or scenario.kind != kind:
            raise PluginError(f"scenario {kind!r} ({SCENARIOS.origin(kind)}) parsed {text!r} into "
                              f"{scenario!r}; expected a Scenario whose kind is {kind!r}")
        return scenario


def _usages(scenarios: Registry) -> str:
    """The registered scenarios' syntax, for an error message (a broken plugin shows its name)."""
    usages = []
    for name in scenarios.names():
        try:
            usages.append(scenarios.get(name).usage or f"{name}:...")
        except UnlearnbenchError:
            usages.append(f"{name}:...")
    return "; ".join(usages)


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


def make_split(train_labels: torch.Tensor, test_labels: torch.Tensor, spec: Scenario, *,
               num_classes: int, val_fraction: float, seed: int) -> Split:
    """The whole split of one trial (see the module docstring): the scenario chooses the forget
    set from the training split (with the trial's seeded "forget" stream) and the test examples."""
    train, validation = holdout(train_labels, val_fraction, seed)
    spec.check(num_classes)
    in_forget = _mask(spec.choose(train_labels[train], generator(seed, "forget")), len(train),
                      spec, "choose")
    if not in_forget.any():  # an empty forget set has no UA or MIA-Efficacy
        raise ConfigError(f"forget spec {spec} forgets no training example")
    if in_forget.all():
        raise ConfigError(f"forget spec {spec} would forget the whole training set")
    keep = spec.keep_test(test_labels)
    test = (torch.arange(len(test_labels)) if keep is None
            else torch.nonzero(_mask(keep, len(test_labels), spec, "keep_test")).flatten())
    return Split(train, validation, train[in_forget], train[~in_forget], test)


def _mask(mask: object, length: int, spec: Scenario, hook: str) -> torch.Tensor:
    """A scenario's boolean mask, checked: one entry per example, on the CPU."""
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != (length,):
        shown = (f"{mask.dtype} tensor of shape {tuple(mask.shape)}" if isinstance(mask, torch.Tensor)
                 else type(mask).__name__)
        raise PluginError(f"scenario {spec.kind!r}: {hook}() returned a {shown}; expected a boolean "
                          f"mask of shape ({length},)")
    return mask.cpu()


def stratified_subset(labels: torch.Tensor, size: int, what: str) -> torch.Tensor:
    """Sorted indices of ``size`` examples keeping each class's share (fixed seed: every trial
    of a run sees the same subset, so trials differ only by their own seed)."""
    from sklearn.model_selection import train_test_split  # heavy; only a subset of the data needs it

    n = len(labels)
    if size > n:
        raise ConfigError(f"{what}={size} is invalid: the dataset has only {n} images there")
    if size == n:
        return torch.arange(n)
    classes = int(torch.unique(labels).numel())
    if size < classes:
        raise ConfigError(f"{what}={size} is invalid: expected at least one image per class "
                          f"({classes} classes)")
    if n - size < classes:  # scikit-learn needs a class's worth left out too
        return _nearly_all(labels, n - size)
    try:
        chosen, _ = train_test_split(np.arange(n), train_size=size, stratify=labels.numpy(),
                                     random_state=0)
    except ValueError as exc:  # e.g. a class of a single image, which cannot be stratified
        raise ConfigError(f"{what}={size} is invalid: the images cannot be subsampled keeping each "
                          f"class's share ({' '.join(str(exc).split())})") from None
    return torch.from_numpy(np.sort(chosen))


def _nearly_all(labels: torch.Tensor, drop: int) -> torch.Tensor:
    """Every index but ``drop`` (fewer than the classes): the last example of each of the
    ``drop`` largest classes, so each class's share stays as near as it can."""
    values, counts = np.unique(labels.numpy(), return_counts=True)
    largest = values[np.argsort(-counts, kind="stable")[:drop]]
    keep = np.ones(len(labels), dtype=bool)
    for value in largest:
        keep[np.flatnonzero(labels.numpy() == value)[-1]] = False
    return torch.from_numpy(np.flatnonzero(keep))


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
