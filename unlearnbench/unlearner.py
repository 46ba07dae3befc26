"""The unlearner contract, and the task an unlearner receives.

A plugin implements one class::

    class MyUnlearner(Unlearner):
        \"\"\"Cite the paper; say where each default comes from.\"\"\"
        epochs: int = param(5, ge=1)
        lr: float = param(1e-3, gt=0)

        def unlearn(self, model, task):
            recipe = TrainRecipe(epochs=self.epochs, lr=self.lr, schedule="constant")
            return task.fit(model, task.loader(task.retain), recipe)

Hyperparameters are typed, keyword-only and validated before any training starts. The
harness times exactly the ``unlearn`` call (RTE), leaving out the one-time costs of batch
shapes met for the first time in loaders made by ``task.loader`` (see ``unlearnbench.run.timing``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from .data.tensors import Augment, DeviceLoader, ImageData, Normalize
from .train.masks import Mask
from .params import Configurable
from .space import Dimension
from .train.runtime import Runtime, generator
from .train.loop import LossFn, TrainRecipe, cross_entropy, fit, make_sgd


class CountingLoader(DeviceLoader):
    """A :class:`DeviceLoader` that reports the size of every batch it yields."""

    def __init__(self, data: ImageData, *, count: Callable[[int], None], **options: Any):
        super().__init__(data, **options)
        self.count = count

    def __iter__(self):
        for x, y in super().__iter__():
            self.count(len(y))
            yield x, y


@dataclass(frozen=True)
class UnlearningTask:
    """Everything an unlearner may use; all tensors are already on ``runtime.device``.

    ``forget`` and ``retain`` partition exactly the training split the original model saw.
    ``validation`` is the held-out part of the training set (never trained on), for
    hyperparameter searches; the test set is deliberately absent.
    """

    forget: ImageData
    retain: ImageData
    validation: ImageData | None
    num_classes: int
    recipe: TrainRecipe
    normalize: Normalize
    augment: Augment
    runtime: Runtime
    seed: int
    mask: Mask | None
    new_model: Callable[[], nn.Module]
    # Called by loader() with the data and the batch sizes the new loader yields, so that the
    # harness can pay one-time costs of new shapes outside RTE (unlearnbench.run.timing.WarmUp).
    warm_up: Callable[[ImageData, Iterable[int]], None] = lambda data, batch_sizes: None
    # Called with the data and the size of every batch a loader of loader() yields: the harness
    # counts the method's work (the record's ``work``, unlearnbench.run.timing).
    count_examples: Callable[[ImageData, int], None] = lambda data, examples: None

    def generator(self, stream: str):
        """A CPU ``torch.Generator`` for a named random stream of this trial."""
        return generator(self.seed, stream)

    def loader(self, data: ImageData, *, batch_size: int | None = None, shuffle: bool = True,
               augment: bool = True, stream: str = "loader") -> DeviceLoader:
        loader = CountingLoader(data, normalize=self.normalize,
                                batch_size=batch_size or self.recipe.batch_size, shuffle=shuffle,
                                augment=self.augment if augment else None,
                                generator=self.generator(stream),
                                channels_last=self.runtime.channels_last,
                                count=lambda examples: self.count_examples(data, examples))
        self.warm_up(data, loader.batch_sizes())
        return loader

    def fit(self, model: nn.Module, batches: Iterable[Any], recipe: TrainRecipe, *,
            loss: LossFn = cross_entropy, desc: str = "unlearn",
            optimizer: torch.optim.Optimizer | None = None) -> nn.Module:
        """The shared training loop, with this task's mask and runtime (a fresh optimizer per
        call unless ``optimizer``, from :meth:`optimizer`, carries one over from an earlier call)."""
        return fit(model, batches, recipe, self.runtime, loss=loss, mask=self.mask, desc=desc,
                   optimizer=optimizer)

    def optimizer(self, model: nn.Module, recipe: TrainRecipe) -> torch.optim.Optimizer:
        """The SGD optimizer :meth:`fit` would make, to share across several calls."""
        return make_sgd(model, recipe, self.runtime)


@dataclass(frozen=True)
class UnlearnerTags:
    """What a method declares about itself; the conformance checks read it
    (``unlearnbench.testing``). A subclass sets ``tags = UnlearnerTags(...)``.

    ``changes_model``: the returned model differs from the one passed in. Only a method that
    may legitimately return its input unchanged (an identity baseline) declares ``False``.
    """

    changes_model: bool = True


class Unlearner(Configurable, abc.ABC):
    """Base class of every unlearning method (see the module docstring)."""

    tags: ClassVar[UnlearnerTags] = UnlearnerTags()
    #: where ``unlearnbench tune`` searches this method's hyperparameters, by parameter name
    #: (the paper's ranges where it states them; the docstring says where each comes from).
    #: Empty: nothing to tune (Retrain, the identity baseline).
    search_space: ClassVar[Mapping[str, Dimension]] = {}

    @abc.abstractmethod
    def unlearn(self, model: nn.Module, task: UnlearningTask) -> nn.Module:
        """Return the unlearned model (it may be ``model`` itself, modified in place)."""
