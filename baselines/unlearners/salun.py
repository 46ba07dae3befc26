"""SalUn: random-label fine-tuning restricted to the weights most salient for the forget set.

Fan et al. 2024, "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency in
Both Image Classification and Generation" (ICLR 2024), Eq. (3)-(5), and their public code
(OPTML-Group/Unlearn-Saliency, ``Classification/generate_mask.py`` and ``unlearn/RL.py``).

1. Saliency: s = |grad_theta CE(D_f; theta_o)|, the gradient of the forget loss at the original
   weights, over every parameter (conv, linear, classifier head, BatchNorm affine, biases), with
   the model in eval mode. The top ``threshold`` fraction of entries by s, ranked globally, are
   the salient weights m_S.
2. Unlearning: RL (``rl.py``: retain set plus the forget set with random wrong labels), where
   only salient weights change: theta = m_S * (theta_o + delta) + (1 - m_S) * theta_o.

Non-salient weights are put back to their original values after every optimizer step, so
neither weight decay nor momentum moves them (SGD updates each coordinate on its own, so the
salient weights follow exactly the masked-gradient trajectory). The reference masks the
gradients, and its latest ``RL.py`` also restores the masked weights after each step. With a
pruning mask, pruned weights are never salient (they cannot change) and ``threshold`` is a
fraction of the unpruned entries; the task's mask keeps them at zero as in every method.

Defaults: ``threshold`` 0.5 (the ``with_0.5.pt`` saliency map of the reference README) and the
README's CIFAR-10 ResNet-18 example (10% random forgetting) ``--unlearn_epochs 10
--unlearn_lr 0.013``; momentum 0.9, weight decay 5e-4 and batch 256 are the reference's argument
defaults (as for RL). The paper tunes the lr per scenario; 0.013 is the one value its code
documents.

Differences from the reference, on purpose: the saliency gradient is that of the mean loss over
the whole forget set, without augmentation (the reference sums per-batch mean gradients of its
training loader, which weighs a short last batch more); relabelling as in ``rl.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unlearnbench import Mask, UnlearningTask, param

from .rl import RandomLabel

Saliency = dict[str, torch.Tensor]  # parameter name -> bool tensor, True = salient


def forget_gradient(model: nn.Module, task: UnlearningTask, batch_size: int) -> dict[str, torch.Tensor]:
    """Gradient of the mean cross-entropy over the forget set (eval mode, no augmentation)."""
    was_training = model.training
    model.eval()
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    grads = {n: torch.zeros_like(p) for n, p in params.items()}
    total = len(task.forget)
    for x, y in task.loader(task.forget, batch_size=batch_size, shuffle=False, augment=False):
        loss = F.cross_entropy(model(x), y, reduction="sum") / total
        for n, g in zip(params, torch.autograd.grad(loss, list(params.values()), allow_unused=True)):
            if g is not None:
                grads[n] += g
    model.train(was_training)
    return grads


def saliency_mask(scores: dict[str, torch.Tensor], threshold: float,
                  pruning: Mask | None = None) -> Saliency:
    """Mark the globally top ``threshold`` fraction of entries by ``|score|`` as salient.

    Pruned entries are never salient; the fraction is of the remaining ones. Exactly
    ``round(threshold * free)`` entries are marked.
    """
    flat = torch.cat([s.detach().abs().flatten().float() for s in scores.values()])
    free = torch.ones_like(flat, dtype=torch.bool)
    if pruning is not None:
        free = torch.cat([pruning.keep[n].to(s.device).flatten() if n in pruning.keep
                          else torch.ones(s.numel(), dtype=torch.bool, device=s.device)
                          for n, s in scores.items()])
    count = int(round(threshold * int(free.sum())))
    ranked = torch.where(free, flat, torch.full_like(flat, -1.0))  # |grad| >= 0 > -1
    salient = torch.zeros_like(free)
    salient[torch.topk(ranked, count, sorted=False).indices] = True
    result, offset = {}, 0
    for name, s in scores.items():
        result[name] = salient[offset:offset + s.numel()].view_as(s)
        offset += s.numel()
    return result


class FreezeOutside:
    """Batches that, after each step taken on them, put non-salient weights back.

    The training loop asks for the next batch only after its optimizer step (and its mask
    re-application), so restoring here follows every step, the last one included.
    """

    def __init__(self, batches: Iterable[Any], model: nn.Module, salient: Saliency):
        self.batches = batches
        params = dict(model.named_parameters())
        self.frozen = [(params[n], keep, params[n].detach().clone())
                       for n, keep in salient.items() if not bool(keep.all())]

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        for batch in self.batches:
            yield batch
            self.restore()

    @torch.no_grad()
    def restore(self) -> None:
        for p, keep, original in self.frozen:
            p.copy_(torch.where(keep, p, original))


class SalUn(RandomLabel):
    threshold: float = param(0.5, gt=0, le=1, help="fraction of the (unpruned) weights that are salient")
    lr: float = param(0.013, gt=0, help="constant SGD learning rate (reference CIFAR-10 example)")

    def saliency(self, model: nn.Module, task: UnlearningTask) -> Saliency:
        return saliency_mask(forget_gradient(model, task, self.batch(task)), self.threshold, task.mask)

    def unlearn(self, model: nn.Module, task: UnlearningTask) -> nn.Module:
        salient = self.saliency(model, task)
        batches = FreezeOutside(task.loader(self.data(task), batch_size=self.batch(task)), model, salient)
        return task.fit(model, batches, self.train_recipe(task), loss=self.loss, desc="SalUn")
