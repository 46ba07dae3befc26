"""Pieces several unlearners share: random wrong labels, paired retain/forget batches, a
frozen copy of the original model, and the temperature-scaled distillation KL.

Kept in one place so that RL and SalUn relabel the forget set the same way, NegGrad+ (and any
other method that steps on a retain and a forget batch at once) pairs batches the same way,
and SCRUB's KL is the one of its reference code.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Sized
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def random_wrong_labels(labels: torch.Tensor, num_classes: int,
                        generator: torch.Generator) -> torch.Tensor:
    """A label drawn uniformly among the ``num_classes - 1`` classes other than each true one.

    Adding a uniform offset in ``1..C-1`` modulo ``C`` makes every wrong class equally likely
    and the true class impossible. Drawn on the CPU from ``generator`` so the result depends
    only on the seed, not on the device.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes={num_classes}: a wrong label needs at least 2 classes")
    offset = torch.randint(1, num_classes, labels.shape, generator=generator)
    return (labels.cpu() + offset) % num_classes


class Paired:
    """Yields ``(retain_batch, forget_batch)`` pairs; one pass = one pass over ``retain``.

    ``forget`` is cycled: it is iterated again whenever it runs out, so every pass of it is
    reshuffled and re-augmented by its loader. (The reference code of Kurmanji et al. uses
    ``itertools.cycle``, which replays the first pass's batches verbatim.)
    """

    def __init__(self, retain: Iterable[Any], forget: Iterable[Any]):
        self.retain, self.forget = retain, forget

    def __len__(self) -> int:
        if not isinstance(self.retain, Sized):
            raise TypeError("the retain batches have no length")
        return len(self.retain)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return zip(self.retain, _cycle(self.forget))


def _cycle(batches: Iterable[Any]) -> Iterator[Any]:
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise ValueError("cannot cycle an empty set of batches")


def frozen_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy without gradients: the fixed original (SCRUB's teacher, the model
    Boundary Shrink attacks)."""
    frozen = copy.deepcopy(model).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    return frozen


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
               temperature: float) -> torch.Tensor:
    """KL(teacher || student) of the temperature-softened distributions, times T^2,
    averaged over the batch: the ``DistillKL`` of Hinton et al. 2015 as used by SCRUB."""
    log_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    kl = F.kl_div(log_student, log_teacher, reduction="sum", log_target=True)
    return kl * temperature**2 / student_logits.shape[0]
