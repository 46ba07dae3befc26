"""OMP: one-shot global magnitude pruning of the trained dense model, rewind, retrain sparse.

The default pruner of Jia et al. 2023 ("Model Sparsity Can Simplify Machine Unlearning",
NeurIPS 2023, Sec. 4 and Appendix): train dense, remove the globally smallest ``|w|`` of the
prunable weights (conv/linear weights outside the classifier head; BN and biases are never
pruned) down to the target sparsity in one shot, rewind the survivors to an early epoch of
the dense run, and retrain with the mask fixed. Magnitude pruning with rewinding follows
Frankle et al. 2020 ("Linear mode connectivity and the lottery ticket hypothesis").

Defaults and their sources:

- ``rewind="early"``: the reference rewinds to epoch 8 of its 182-epoch recipe; here that
  epoch scaled to the recipe's length (``_magnitude.rewind_epoch``), a snapshot of the dense
  run the pruner asks the harness for (``snapshot_epochs``).
- ``retrain_epochs=None``: retrain with the original model's recipe resumed at the rewind
  epoch, as the reference does (epochs 8-181 of 182 on CIFAR-10, learning-rate decays
  included); set it to retrain for that many epochs on a fresh schedule instead.
"""

from __future__ import annotations

from torch import nn

from unlearnbench import Mask, Pruner, PruningTask, TrainRecipe, param

from ._magnitude import Rewind, load_dense, prune_rewind_retrain, rewind_snapshots


class OneShotMagnitude(Pruner):
    rewind: Rewind = param("early", help="rewind survivors to: early (epoch 8 of 182, scaled), "
                                         "init (epoch 0), none (keep the trained weights)")
    retrain_epochs: int | None = param(None, ge=1, help="override the recipe's epochs for the "
                                                        "sparse retraining (default: the same)")

    def snapshot_epochs(self, recipe: TrainRecipe) -> set[int]:
        return rewind_snapshots(self.rewind, recipe)

    def prune(self, task: PruningTask) -> tuple[nn.Module, Mask]:
        return prune_rewind_retrain(load_dense(task), task, task.sparsity, rewind=self.rewind,
                                    retrain_epochs=self.retrain_epochs, desc="omp retrain")
