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
The task (:class:`~unlearnbench.train.tasks.UnlearningTask`: the data, the shared training
loop with the mask held fixed) is built by the harness from the layers above this contract.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from .params import Configurable
from .space import Dimension

if TYPE_CHECKING:
    from torch import nn

    from .train.tasks import UnlearningTask


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
