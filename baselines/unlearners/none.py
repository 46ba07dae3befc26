"""None: the original model, returned unchanged: no unlearning at all.

A reference row, not a method. In a population audit (``unlearnbench audit``) it shows where a
measure puts a model that still holds the forget set: KLoM on the forget examples is then large
and the U-LiRA attack clearly above 50% (the known answers of the reference note,
``evaluation.md``, sanity checks 3 and 4). In the main table its UA is the original model's
forget-set error. Its RTE is the cost of the call, about zero.
"""

from __future__ import annotations

from torch import nn

from unlearnbench import Unlearner, UnlearnerTags, UnlearningTask


class NoUnlearning(Unlearner):
    tags = UnlearnerTags(changes_model=False)

    def unlearn(self, model: nn.Module, task: UnlearningTask) -> nn.Module:
        return model
