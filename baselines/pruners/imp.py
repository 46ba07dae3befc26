"""IMP: iterative magnitude pruning with weight rewinding (lottery tickets).

Frankle & Carbin 2019 ("The lottery ticket hypothesis"), with rewinding to an early epoch as
in Frankle et al. 2020 ("Linear mode connectivity and the lottery ticket hypothesis"); one of
the pruners compared by Jia et al. 2023 ("Model Sparsity Can Simplify Machine Unlearning",
NeurIPS 2023). Each round removes ``rate`` of the remaining prunable weights by global
magnitude, rewinds the survivors and retrains with the mask fixed, so after ``j`` rounds the
sparsity is ``1 - (1 - rate)^j``. The number of rounds ``k`` is the smallest with
``1 - (1 - rate)^k >= target``, and the last round prunes exactly to the target, so the
achieved sparsity equals the target.

Cost: ``k`` rounds are ``k`` full retrainings (14 at the paper's 95% with rate 0.2), which
is why IMP is by far the most expensive pruner here.

Defaults and their sources:

- ``rate=0.2``: the reference's per-round pruning rate (sparsity 1 - 0.8^k after k rounds).
- ``rewind="early"``: the reference rewinds to epoch 8 of its 182-epoch recipe, scaled here
  to the recipe's length (``_magnitude.rewind_epoch``), a snapshot of the dense run the
  pruner asks the harness for (``snapshot_epochs``).
- ``retrain_epochs=None``: each round retrains with the original model's recipe resumed at
  the rewind epoch (weights and learning-rate schedule rewound together), as the reference
  does; set it to retrain every round for that many epochs on a fresh schedule instead.
"""

from __future__ import annotations

from torch import nn

from unlearnbench import ConfigError, Mask, Pruner, PruningTask, TrainRecipe, param

from ._magnitude import Rewind, load_dense, prune_rewind_retrain, rewind_snapshots

_TOLERANCE = 1e-12  # so that e.g. 1 - 0.8**2 == 0.36 up to rounding counts as reaching 0.36


def round_schedule(target: float, rate: float) -> list[float]:
    """The sparsity after each round: ``1 - (1 - rate)^j`` for ``j < k``, then ``target``."""
    if not 0 <= target < 1 or not 0 < rate < 1:
        raise ConfigError(f"round_schedule(target={target}, rate={rate}) is invalid: expected "
                          f"0 <= target < 1 and 0 < rate < 1")
    schedule = []
    while True:
        reached = 1 - (1 - rate) ** (len(schedule) + 1)
        if reached >= target - _TOLERANCE:
            return schedule + [target]
        schedule.append(reached)


class IterativeMagnitude(Pruner):
    rate: float = param(0.2, gt=0, lt=1, help="fraction of the remaining weights pruned per round")
    rewind: Rewind = param("early", help="rewind survivors to: early (epoch 8 of 182, scaled), "
                                         "init (epoch 0), none (keep the trained weights)")
    retrain_epochs: int | None = param(None, ge=1, help="override the recipe's epochs for every "
                                                        "round's retraining (default: the same)")

    def snapshot_epochs(self, recipe: TrainRecipe) -> set[int]:
        return rewind_snapshots(self.rewind, recipe)

    def prune(self, task: PruningTask) -> tuple[nn.Module, Mask]:
        model, mask = load_dense(task), None
        schedule = round_schedule(task.sparsity, self.rate)
        for j, sparsity in enumerate(schedule, start=1):
            model, mask = prune_rewind_retrain(
                model, task, sparsity, rewind=self.rewind, retrain_epochs=self.retrain_epochs,
                previous=mask, desc=f"imp round {j}/{len(schedule)}")
        return model, mask
