"""A trial's place in a population of trials (an audit, ``unlearnbench.run.audit``).

An ordinary trial draws its validation hold-out and its forget set from its own seed. The
models of a population audit differ in their training seed *only*: every one of them is scored
on the same examples, with the same membership. So a trial of a population carries its
:class:`Membership`: the seed of the validation hold-out (shared by the whole population),
the exact forget set, the training examples its original model never sees (a U-LiRA shadow
trains on half of a candidate pool), a replicate number (independent unlearning runs from one
original model), and the examples whose per-example margins its record keeps.

All indices are into the dataset's training part (after ``--train-size``), except
``score_test``, which indexes its test part.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from ..errors import ConfigError
from ..seeds import derive_seed
from .splits import Split, holdout


@dataclass(frozen=True)
class Membership:
    split_seed: int
    forget: tuple[int, ...]
    exclude: tuple[int, ...] = ()
    replicate: int = 0
    score: tuple[int, ...] = ()
    score_test: tuple[int, ...] = ()

    @classmethod
    def from_mapping(cls, value: Mapping[str, Any]) -> Membership:
        """Validated from a configuration's ``population`` mapping (JSON-able)."""
        if not isinstance(value, Mapping):
            raise ConfigError(f"population {value!r} is invalid: expected a mapping")
        names = {f.name for f in fields(cls)}
        if unknown := sorted(set(value) - names):
            raise ConfigError(f"population has unknown keys {unknown}; expected some of {sorted(names)}")
        if "split_seed" not in value or "forget" not in value:
            raise ConfigError("population needs split_seed and forget")
        out: dict[str, Any] = {}
        for name in names & set(value):
            item = value[name]
            if name in ("split_seed", "replicate"):
                if not isinstance(item, int) or isinstance(item, bool) or item < 0:
                    raise ConfigError(f"population {name}={item!r} is invalid: expected an integer >= 0")
                out[name] = item
            else:
                items = tuple(item) if isinstance(item, (list, tuple)) else None
                if items is None or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                                            for i in items):
                    raise ConfigError(f"population {name}={item!r} is invalid: expected a list of "
                                      f"example indices >= 0")
                if len(set(items)) != len(items):
                    raise ConfigError(f"population {name} lists an example twice")
                out[name] = items
        if not out["forget"]:
            raise ConfigError("population forget is empty: expected at least one example")
        return cls(**out)

    def to_mapping(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def unlearning_seed(self, seed: int) -> int:
        """The seed of the unlearning run: the trial's, or one derived for a replicate > 0."""
        return seed if self.replicate == 0 else derive_seed(seed, f"replicate/{self.replicate}") % 2**31


def population_split(train_labels: torch.Tensor, test_labels: torch.Tensor, membership: Membership,
                     *, val_fraction: float) -> Split:
    """The split of a population's trial: the hold-out of ``split_seed``; ``train`` without the
    excluded examples; the given forget set (it must lie in ``train``); the whole test set."""
    train, validation = holdout(train_labels, val_fraction, membership.split_seed)
    n = len(train_labels)
    for name in ("forget", "exclude", "score"):
        if bad := [i for i in getattr(membership, name) if i >= n]:
            raise ConfigError(f"population {name} index {bad[0]} is out of range: the training part "
                              f"has {n} examples")
    if bad := [i for i in membership.score_test if i >= len(test_labels)]:
        raise ConfigError(f"population score_test index {bad[0]} is out of range: the test part "
                          f"has {len(test_labels)} examples")
    in_train = torch.zeros(n, dtype=torch.bool)
    in_train[train] = True
    if bad := [i for i in membership.exclude if not in_train[i]]:
        raise ConfigError(f"population exclude index {bad[0]} is a validation example, not a training one")
    in_train[list(membership.exclude)] = False
    if bad := [i for i in membership.forget if not in_train[i]]:
        raise ConfigError(f"population forget index {bad[0]} is not in this trial's training set "
                          f"(held out for validation or excluded)")
    in_forget = torch.zeros(n, dtype=torch.bool)
    in_forget[list(membership.forget)] = True
    train = torch.nonzero(in_train).flatten()
    forget = torch.nonzero(in_forget).flatten()
    retain = torch.nonzero(in_train & ~in_forget).flatten()
    if len(retain) == 0:
        raise ConfigError("population forget would forget the whole training set")
    return Split(train, validation, forget, retain, torch.arange(len(test_labels)))
