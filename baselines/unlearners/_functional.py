"""Per-example gradients with ``torch.func``, shared by the second-order unlearners (FF, IU).

Gradients are taken with the model in eval mode: BatchNorm then uses its running statistics,
so an example's gradient does not depend on the rest of its batch (the reference code does
the same with batch size 1), and ``vmap`` can batch the computation. Examples are processed
in chunks sized to a memory budget instead of one at a time in a Python loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from unlearnbench import ImageData, Mask, UnlearningTask

Params = dict[str, torch.Tensor]


def trainable(model: nn.Module) -> dict[str, nn.Parameter]:
    """Name -> parameter, for every parameter that requires a gradient."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def single_example_logits(model: nn.Module) -> Callable[[Params, torch.Tensor], torch.Tensor]:
    """``f(params, x) -> logits`` of one example (no batch dimension), for ``torch.func``."""
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def logits(params: Params, x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, (params, buffers), (x.unsqueeze(0),)).squeeze(0)
    return logits


def flatten(tensors: Params, names: list[str]) -> torch.Tensor:
    """Concatenate per-parameter tensors with a leading batch dimension into ``(B, d)``."""
    return torch.cat([tensors[n].reshape(tensors[n].shape[0], -1) for n in names], dim=1)


def per_example_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      names: list[str]) -> torch.Tensor:
    """``(B, d)``: row i is the gradient of CE(model(x_i), y_i) over the parameters ``names``."""
    logits = single_example_logits(model)
    params = {n: p.detach() for n, p in trainable(model).items()}

    def loss(p: Params, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(logits(p, xi), yi)
    return flatten(vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y), names)


def chunk_size(floats_per_example: int, memory_mb: int) -> int:
    """Examples per chunk so that one chunk's float32 gradients fit in ``memory_mb``."""
    return max(1, (memory_mb * 2**20 // 4) // max(floats_per_example, 1))


def eval_batches(task: UnlearningTask, data: ImageData,
                 batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Normalized, unaugmented, unshuffled ``(x, y)`` batches of ``data``."""
    return iter(task.loader(data, batch_size=batch_size, shuffle=False, augment=False))


def flat_keep(model: nn.Module, names: list[str], mask: Mask | None) -> torch.Tensor | None:
    """A 0/1 vector over the flattened parameters ``names``: 0 at pruned weights."""
    if mask is None:
        return None
    params = trainable(model)
    parts = [mask.keep[n].to(params[n].device).flatten().float() if n in mask.keep
             else torch.ones(params[n].numel(), device=params[n].device) for n in names]
    return torch.cat(parts)


@torch.no_grad()
def add_flat_(model: nn.Module, names: list[str], delta: torch.Tensor) -> None:
    """theta += delta, with ``delta`` flattened in the order of ``names``."""
    params, offset = trainable(model), 0
    for n in names:
        p = params[n]
        p.add_(delta[offset:offset + p.numel()].view_as(p).to(p.dtype))
        offset += p.numel()
