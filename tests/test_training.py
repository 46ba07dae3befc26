"""The shared training loop: schedules, the SGD update, the mask, and an optimizer that is
carried over between calls, each checked against a hand-computed answer; and the operators a
step costs beyond the model's own, which bound its speed on a GPU."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from unlearnbench import Augment, DeviceLoader, ImageData, Mask, Normalize, TrainRecipe, build_model, fit
from unlearnbench.train.masks import prunable_weights
from unlearnbench.train.runtime import Runtime
from unlearnbench.train.loop import make_sgd

CPU = Runtime.resolve("cpu", "fp32")


def test_step_schedule_decays_at_the_milestones() -> None:
    recipe = TrainRecipe(epochs=10, lr=0.1, schedule="step", milestones=(0.5, 0.75), lr_decay=0.1)
    lrs = [recipe.lr_at(epoch / 10) for epoch in range(10)]
    assert lrs == pytest.approx([0.1] * 5 + [0.01] * 2 + [0.001] * 3)


def test_cosine_and_constant_schedules() -> None:
    cosine = TrainRecipe(lr=0.2, schedule="cosine")
    assert [cosine.lr_at(p) for p in (0.0, 0.5, 1.0)] == pytest.approx([0.2, 0.1, 0.0])
    assert TrainRecipe(lr=0.3, schedule="constant").lr_at(0.9) == 0.3


def _linear(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 3, bias=False), nn.Linear(3, 2))


def _batches(n: int = 3, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(5, 4, generator=g), torch.randint(0, 2, (5,), generator=g)) for _ in range(n)]


def test_two_steps_equal_sgd_with_momentum_and_weight_decay_by_hand() -> None:
    """PyTorch's SGD: d = g + wd * w; b = d (first step), b = mu * b + d after; w -= lr * b."""
    recipe = TrainRecipe(epochs=1, lr=0.05, momentum=0.9, weight_decay=0.01, schedule="constant")
    model, batches = _linear(), _batches(2)
    expected = copy.deepcopy(model)
    fit(model, batches, recipe, CPU)

    params = [p.detach().clone().requires_grad_() for p in expected.parameters()]
    buffers = [None] * len(params)
    for x, y in batches:
        w1, w2, b2 = params
        loss = F.cross_entropy(F.linear(F.linear(x, w1), w2, b2), y)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for i, (p, g) in enumerate(zip(params, grads)):
                d = g + 0.01 * p
                buffers[i] = d.clone() if buffers[i] is None else 0.9 * buffers[i] + d
                p -= 0.05 * buffers[i]
    for got, want in zip(model.parameters(), params):
        torch.testing.assert_close(got, want.detach())


def test_a_shared_optimizer_carries_momentum_across_calls() -> None:
    """Two one-epoch calls with one optimizer are one two-epoch call; with a fresh optimizer
    per call (momentum restarted) they are not."""
    recipe = TrainRecipe(epochs=1, lr=0.05, momentum=0.9, schedule="constant")
    batches = _batches()
    once = fit(_linear(), batches, recipe.replace(epochs=2), CPU)

    shared = _linear()
    optimizer = make_sgd(shared, recipe, CPU)
    fit(shared, batches, recipe, CPU, optimizer=optimizer)
    fit(shared, batches, recipe, CPU, optimizer=optimizer)
    restarted = fit(fit(_linear(), batches, recipe, CPU), batches, recipe, CPU)

    for a, b in zip(once.parameters(), shared.parameters()):
        torch.testing.assert_close(a, b)
    assert any(not torch.allclose(a, b) for a, b in zip(once.parameters(), restarted.parameters()))


def test_the_learning_rate_follows_the_recipe_even_with_a_given_optimizer() -> None:
    model = _linear()
    optimizer = make_sgd(model, TrainRecipe(lr=0.5), CPU)
    fit(model, _batches(1), TrainRecipe(epochs=1, lr=0.003, schedule="constant"), CPU,
        optimizer=optimizer)
    assert optimizer.param_groups[0]["lr"] == 0.003


def test_pruned_weights_stay_zero_and_kept_weights_train_as_without_a_mask() -> None:
    """Masking after each step keeps pruned entries at exactly 0 under momentum and weight
    decay; the head (not prunable) and the kept entries move."""
    model = _linear()
    weight = prunable_weights(model)["0.weight"]
    keep = torch.rand(weight.shape, generator=torch.Generator().manual_seed(3)) < 0.5
    mask = Mask({"0.weight": keep})
    recipe = TrainRecipe(epochs=3, lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="constant")
    before = copy.deepcopy(model)
    fit(model, _batches(), recipe, CPU, mask=mask)
    assert mask.violations(model) == 0
    assert (model[0].weight[~keep] == 0).all()
    assert (model[0].weight[keep] != before[0].weight[keep]).all()
    assert not torch.equal(model[1].weight, before[1].weight)


def test_mask_apply_zeroes_exactly_the_pruned_entries() -> None:
    model = _linear()
    keep = torch.tensor([[True, False, True, False]] * 3)
    before = model[0].weight.detach().clone()
    Mask({"0.weight": keep}).apply(model)
    torch.testing.assert_close(model[0].weight.detach(), before * keep)


class _CountOps(TorchDispatchMode):
    """Counts the aten operators dispatched inside the block (on a GPU, each is a kernel launch
    or less; the training loop of a small model is bound by these launches)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def test_masking_after_a_step_is_one_operator_whatever_the_number_of_layers() -> None:
    model = build_model("resnet18", num_classes=10, in_chans=3, image_size=32)
    mask = Mask.dense(model)
    assert len(mask.keep) == 20
    apply = mask.bind(model)
    with _CountOps() as counted:
        apply()
    assert counted.ops == ["_foreach_mul_"]


def test_a_training_batch_costs_a_bounded_number_of_operators() -> None:
    """Gather, crop, flip and normalize a batch in a fixed number of operators, independent of
    the batch size (a per-image loop would grow with it)."""
    images = ImageData(torch.randint(0, 256, (512, 3, 32, 32), dtype=torch.uint8), torch.zeros(512, dtype=torch.int64))
    counts = []
    for batch_size in (16, 256):
        loader = DeviceLoader(images, normalize=Normalize((0.5,) * 3, (0.3,) * 3), batch_size=batch_size,
                              shuffle=True, augment=Augment(crop_padding=4, hflip=True))
        batches = iter(loader)
        next(batches)  # the epoch's permutation is drawn before the first batch
        with _CountOps() as counted:
            next(batches)
        counts.append(len(counted.ops))
    assert counts[0] == counts[1] <= 50
