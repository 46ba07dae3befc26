"""Pruning masks: which weights are prunable, and keeping pruned weights exactly zero.

Prunable tensors are the weights of convolutional and linear layers, except the classifier
head (the reference code of Jia et al. 2023 prunes no head, BN or bias). A :class:`Mask` is
re-applied after every optimizer step of the shared training loop, so a pruned weight stays
exactly zero under momentum, weight decay and any penalty.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import nn

from ..errors import CorruptFileError


def classifier(model: nn.Module) -> nn.Module | None:
    """The classification head: timm's ``get_classifier()``, else the last linear layer."""
    if hasattr(model, "get_classifier"):
        head = model.get_classifier()
        if isinstance(head, nn.Module) and any(True for _ in head.parameters()):
            return head
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def prunable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """Name -> weight of every conv/linear layer outside the classifier head."""
    head = classifier(model)
    excluded = {id(p) for p in head.parameters()} if head is not None else set()
    weights = {}
    for module_name, module in model.named_modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            if id(module.weight) not in excluded:
                weights[f"{module_name}.weight" if module_name else "weight"] = module.weight
    return weights


class Mask:
    """Boolean keep-masks, one per prunable weight (True = kept)."""

    def __init__(self, keep: Mapping[str, torch.Tensor]):
        self.keep = {name: m.to(torch.bool) for name, m in keep.items()}

    @classmethod
    def dense(cls, model: nn.Module) -> Mask:
        return cls({n: torch.ones_like(w, dtype=torch.bool) for n, w in prunable_weights(model).items()})

    @classmethod
    def from_scores(cls, scores: Mapping[str, torch.Tensor], sparsity: float) -> Mask:
        """Keep the globally highest-scoring ``1 - sparsity`` fraction of the entries."""
        flat = torch.cat([s.detach().flatten().float() for s in scores.values()])
        n_prune = math.ceil(sparsity * flat.numel() - 1e-9)  # achieved sparsity >= target
        keep_flat = torch.ones_like(flat, dtype=torch.bool)
        if n_prune:
            keep_flat[torch.topk(flat, n_prune, largest=False, sorted=False).indices] = False
        keep, offset = {}, 0
        for name, s in scores.items():
            keep[name] = keep_flat[offset:offset + s.numel()].view_as(s)
            offset += s.numel()
        return cls(keep)

    @property
    def sparsity(self) -> float:
        total = sum(m.numel() for m in self.keep.values())
        kept = sum(int(m.sum()) for m in self.keep.values())
        return 1.0 - kept / total if total else 0.0

    def to(self, device: torch.device | str) -> Mask:
        return Mask({n: m.to(device) for n, m in self.keep.items()})

    def check_model(self, model: nn.Module) -> dict[str, nn.Parameter]:
        weights = prunable_weights(model)
        if weights.keys() != self.keep.keys():
            raise CorruptFileError(
                f"mask covers {sorted(self.keep)[:5]}... but the model's prunable weights are "
                f"{sorted(weights)[:5]}...; the mask belongs to another architecture")
        for name, w in weights.items():
            if w.shape != self.keep[name].shape:
                raise CorruptFileError(f"mask {name!r} has shape {tuple(self.keep[name].shape)}, "
                                       f"weight has {tuple(w.shape)}")
        return weights

    def bind(self, model: nn.Module) -> Callable[[], None]:
        """A function that zeroes the pruned weights of ``model`` (checked once, cheap per call)."""
        named = self.check_model(model)
        weights = list(named.values())
        keeps = [self.keep[n].to(w.device, w.dtype) for n, w in named.items()]

        @torch.no_grad()
        def apply() -> None:
            torch._foreach_mul_(weights, keeps)  # one fused launch per device/dtype on a GPU
        return apply

    def apply(self, model: nn.Module) -> None:
        """Zero every pruned weight in place."""
        self.bind(model)()

    def violations(self, model: nn.Module) -> int:
        """How many pruned weights are not exactly zero."""
        return sum(int((w.detach()[~self.keep[n].to(w.device)] != 0).sum())
                   for n, w in self.check_model(model).items())

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: m.cpu() for n, m in self.keep.items()}


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of exactly-zero entries among the prunable weights."""
    weights = prunable_weights(model).values()
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / total if total else 0.0
