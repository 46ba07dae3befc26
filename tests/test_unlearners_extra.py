"""The 2024-2026 baselines (RL, NegGrad+, SCRUB, SalUn, Boundary Shrink): each checked against
what its paper says it does, then all of them on class-wise forgetting of a tiny task."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unlearnbench_baselines.unlearners._common import Paired, distill_kl, frozen_copy, random_wrong_labels
from unlearnbench_baselines.unlearners.boundary_shrink import BoundaryShrink, fgsm, neighbour_labels
from unlearnbench_baselines.unlearners.neggrad_plus import NegGradPlus
from unlearnbench_baselines.unlearners.rl import RandomLabel, relabelled_forget
from unlearnbench_baselines.unlearners.salun import SalUn, forget_gradient, saliency_mask
from unlearnbench_baselines.unlearners.scrub import Scrub
from unlearnbench import UNLEARNERS, ImageData, TrainRecipe, UnlearningTask
from unlearnbench.evaluate.metrics import accuracy, predict
from unlearnbench.seeds import derive_seed
from unlearnbench.testing import tiny_task

NEW = {"rl": RandomLabel, "neggrad_plus": NegGradPlus, "scrub": Scrub, "salun": SalUn,
       "boundary_shrink": BoundaryShrink}
SEEDS = (0, 1, 2)
# tiny_task's default recipe leaves the original under-trained (it predicts mostly one class);
# 20 epochs of batch 16 fit it to 100% on train and validation for seeds 0-2.
WELL_TRAINED = TrainRecipe(epochs=20, lr=0.05, batch_size=16)


def _accuracy(model: nn.Module, data, task: UnlearningTask) -> float:
    return accuracy(predict(model, data, task.normalize, task.runtime), data.labels)


def _batch(task: UnlearningTask, data) -> tuple[torch.Tensor, torch.Tensor]:
    """All of ``data`` as one normalized, unaugmented batch."""
    return next(iter(task.loader(data, batch_size=len(data), shuffle=False, augment=False)))


@pytest.fixture(scope="module")
def trained() -> dict[int, tuple[nn.Module, UnlearningTask]]:
    """A fully fitted tiny original per seed, class 0 to forget. In eval mode, so that probing
    it in a test cannot move its BatchNorm statistics (every method trains a copy)."""
    tasks = {seed: tiny_task(seed=seed, recipe=WELL_TRAINED) for seed in SEEDS}
    for model, _ in tasks.values():
        model.eval()
    return tasks


# -- every new method --------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(NEW))
def test_registered_under_the_declared_name(name: str) -> None:
    assert UNLEARNERS.get(name) is NEW[name]


# -- RL: random wrong labels -------------------------------------------------------------------
def test_random_wrong_labels_are_never_true_and_uniform_over_the_others() -> None:
    labels = torch.arange(5).repeat(4000)
    new = random_wrong_labels(labels, 5, torch.Generator().manual_seed(0))
    assert not (new == labels).any()
    for true in range(5):
        counts = torch.bincount(new[labels == true], minlength=5).double()
        assert counts[true] == 0
        others = counts[torch.arange(5) != true]
        # 4,000 draws over 4 classes: each count ~ 1,000 +- 27 (one std); allow 5 std.
        assert (others - 1000).abs().max() < 5 * math.sqrt(4000 * 0.25 * 0.75)


def test_relabelling_is_seeded_by_the_trial(trained) -> None:
    _, task0 = trained[0]
    first, again = relabelled_forget(task0), relabelled_forget(task0)
    assert torch.equal(first.labels, again.labels)
    assert torch.equal(first.images, task0.forget.images)
    assert not (first.labels == task0.forget.labels).any()
    other = UnlearningTask(**{**task0.__dict__, "seed": 7})
    assert not torch.equal(relabelled_forget(other).labels, first.labels)


def test_rl_trains_on_retain_plus_relabelled_forget(trained) -> None:
    _, task = trained[0]
    data = RandomLabel().data(task)
    n_r = len(task.retain)
    assert len(data) == n_r + len(task.forget)
    assert torch.equal(data.labels[:n_r], task.retain.labels)
    assert torch.equal(data.labels[n_r:], relabelled_forget(task).labels)


# -- NegGrad+ ----------------------------------------------------------------------------------
def test_neggrad_plus_loss_is_the_papers_on_a_hand_built_batch() -> None:
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))  # logits = inputs
    retain = (torch.tensor([[2.0, 0.0]]), torch.tensor([0]))  # CE = log(1 + e^-2)
    forget = (torch.tensor([[0.0, 1.0]]), torch.tensor([1]))  # CE = log(1 + e^-1)
    ce_r, ce_f = math.log1p(math.exp(-2)), math.log1p(math.exp(-1))
    for alpha in (0.0, 0.3, 0.9999, 1.0):
        value = NegGradPlus(alpha=alpha).loss(model, (retain, forget), 0.0)
        assert value.item() == pytest.approx(alpha * ce_r - (1 - alpha) * ce_f, rel=1e-6, abs=1e-7)


def test_paired_batches_cycle_the_forget_set_through_one_retain_pass(trained) -> None:
    _, task = trained[0]
    retain = task.loader(task.retain, batch_size=4, stream="r")
    forget = task.loader(task.forget, batch_size=4, stream="f")
    pairs = list(Paired(retain, forget))
    assert len(pairs) == len(Paired(retain, forget)) == len(retain) > len(forget)
    assert sum(len(r[1]) for r, _ in pairs) == len(task.retain)
    assert all(bool((f[1] == 0).all()) for _, f in pairs)  # class 0 is the forget class
    assert sum(len(f[1]) for _, f in pairs) >= len(task.forget) * (len(pairs) // len(forget))


# -- SCRUB -------------------------------------------------------------------------------------
def test_distill_kl_is_the_temperature_scaled_kl_of_teacher_to_student() -> None:
    student = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    teacher = torch.tensor([[0.0, 2.0, 0.0], [0.5, 0.5, 0.0]])
    for T in (1.0, 4.0):
        p_t, p_s = torch.softmax(teacher / T, 1), torch.softmax(student / T, 1)
        expected = (p_t * (p_t / p_s).log()).sum(1).mean() * T**2
        assert distill_kl(student, teacher, T).item() == pytest.approx(expected.item(), rel=1e-5)
    assert distill_kl(teacher, teacher, 4.0).item() == pytest.approx(0.0, abs=1e-6)


def test_scrub_alternates_max_and_min_steps_with_the_reference_schedule(trained, monkeypatch) -> None:
    model, task = trained[0]
    phases: list[tuple[str, float]] = []
    optimizers: set[int] = set()

    def record(self, m, batches, recipe, *, loss, desc, optimizer=None):
        phases.append((desc, recipe.lr))
        optimizers.add(id(optimizer))
        return m

    monkeypatch.setattr(UnlearningTask, "fit", record)
    Scrub(epochs=6, msteps=2).unlearn(copy.deepcopy(model), task)
    assert len(optimizers) == 1 and None not in optimizers  # one SGD (and momentum) for all phases
    names = [d.split()[-1] for d, _ in phases]
    assert names == ["max-step", "min-step", "max-step", "min-step"] + ["min-step"] * 4
    # lr 5e-4, x0.1 after epochs 3 and 5 (of 3, 5, 9)
    lrs = [lr for d, lr in phases if d.endswith("min-step")]
    assert lrs == pytest.approx([5e-4, 5e-4, 5e-4, 5e-5, 5e-5, 5e-6])


def test_scrub_loaders_do_not_augment_as_in_the_reference(trained, monkeypatch) -> None:
    # The reference's unlearning loaders use the test-time transform (no crop, no flip).
    model, task = trained[0]
    asked: list[bool] = []
    real_loader = UnlearningTask.loader

    def recording(self, data, **kwargs):
        asked.append(kwargs.get("augment", True))
        return real_loader(self, data, **kwargs)

    monkeypatch.setattr(UnlearningTask, "loader", recording)
    monkeypatch.setattr(UnlearningTask, "fit", lambda self, m, batches, recipe, **kw: m)
    Scrub(epochs=1).unlearn(copy.deepcopy(model), task)
    assert asked == [False, False]


def test_scrub_max_step_pushes_forget_away_and_min_step_keeps_retain(trained) -> None:
    model, task = trained[0]
    scrub = Scrub(lr=0.05, batch_size=16, forget_batch_size=16)
    teacher, student = frozen_copy(model), copy.deepcopy(model)
    x_f, _ = _batch(task, task.forget)

    def forget_kl() -> float:
        student.eval()
        with torch.no_grad():
            return distill_kl(student(x_f), teacher(x_f), scrub.kd_T).item()

    assert forget_kl() == pytest.approx(0.0, abs=1e-6)
    forget = task.loader(task.forget, batch_size=16, stream="t/forget")
    task.fit(student, forget, scrub.recipe(1), loss=scrub.max_loss(teacher))
    after_max = forget_kl()
    assert after_max > 0.5
    retain_before = _accuracy(model, task.retain, task)
    task.fit(student, task.loader(task.retain, batch_size=16, stream="t/retain"), scrub.recipe(1),
             loss=scrub.min_loss(teacher))
    assert _accuracy(student, task.retain, task) >= retain_before - 2.0


# -- SalUn -------------------------------------------------------------------------------------
def test_forget_gradient_is_the_mean_loss_gradient_over_the_whole_forget_set(trained) -> None:
    model, task = trained[0]
    in_batches = forget_gradient(model, task, batch_size=5)
    x, y = _batch(task, task.forget)
    probe = copy.deepcopy(model).eval()
    F.cross_entropy(probe(x), y).backward()
    for name, p in probe.named_parameters():
        torch.testing.assert_close(in_batches[name], p.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("threshold", [0.1, 0.5, 0.9])
def test_saliency_keeps_exactly_the_top_fraction(trained, threshold: float) -> None:
    model, task = trained[0]
    grads = forget_gradient(model, task, batch_size=64)
    salient = saliency_mask(grads, threshold)
    total = sum(g.numel() for g in grads.values())
    assert sum(int(s.sum()) for s in salient.values()) == round(threshold * total)
    inside = torch.cat([grads[n].abs()[s] for n, s in salient.items()])
    outside = torch.cat([grads[n].abs()[~s] for n, s in salient.items()])
    assert inside.min() >= outside.max()


def test_salun_changes_only_salient_weights(trained) -> None:
    model, task = trained[0]
    salun = SalUn(batch_size=16)
    salient = salun.saliency(model, task)
    out = salun.unlearn(copy.deepcopy(model), task)
    before, after = dict(model.named_parameters()), dict(out.named_parameters())
    changed = 0
    for name, keep in salient.items():
        assert torch.equal(after[name][~keep], before[name][~keep])  # bitwise
        changed += int((after[name][keep] != before[name][keep]).sum())
    assert changed > 0.5 * sum(int(k.sum()) for k in salient.values())


def test_salun_on_a_pruned_model_never_picks_pruned_weights() -> None:
    model, task = tiny_task(sparsity=0.5, recipe=WELL_TRAINED)
    salun = SalUn(threshold=0.3, batch_size=16)
    salient = salun.saliency(model, task)
    free = sum(int(k.sum()) for k in task.mask.keep.values())
    free += sum(p.numel() for n, p in model.named_parameters() if n not in task.mask.keep)
    assert sum(int(s.sum()) for s in salient.values()) == round(0.3 * free)
    assert all(not (salient[n] & ~keep).any() for n, keep in task.mask.keep.items())
    out = salun.unlearn(copy.deepcopy(model), task)
    assert task.mask.violations(out) == 0


# -- Boundary Shrink ---------------------------------------------------------------------------
def test_fgsm_is_one_signed_step_in_pixel_space(trained) -> None:
    model, task = trained[0]
    x, y = _batch(task, task.forget)
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (task.normalize.mean, task.normalize.std))
    pixels, adv = x * std + mean, fgsm(model, x, y, task.normalize, 0.1) * std + mean
    assert adv.min() >= -1e-6 and adv.max() <= 1 + 1e-6
    torch.testing.assert_close(adv * 255, (adv * 255).round(), rtol=0, atol=1e-3)
    assert (adv - pixels).abs().max() <= 0.1 + 0.5 / 255 + 1e-5
    assert (adv - pixels).abs().mean() > 0.05  # most pixels moved by about the bound
    with torch.no_grad():
        clean_loss = F.cross_entropy(model(x), y)
        attacked_loss = F.cross_entropy(model(fgsm(model, x, y, task.normalize, 0.1)), y)
    assert attacked_loss > clean_loss


def test_neighbour_labels_are_the_attacked_prediction_or_the_runner_up(trained) -> None:
    model, task = trained[0]
    x, y = _batch(task, ImageData.concat([task.forget, task.retain]))
    seen_success = seen_failure = False
    for bound in (0.02, 0.1, 0.5):
        labels = neighbour_labels(model, x, y, task.normalize, bound)
        assert not (labels == y).any()
        with torch.no_grad():
            logits = model(fgsm(model, x, y, task.normalize, bound))
        predicted = logits.argmax(1)
        success = predicted != y
        assert torch.equal(labels[success], predicted[success])
        runner_up = logits.topk(2, dim=1).indices[:, 1]
        assert torch.equal(labels[~success], runner_up[~success])
        seen_success |= bool(success.any())
        seen_failure |= bool((~success).any())
    assert seen_success and seen_failure


# -- behaviour: class-wise forgetting ----------------------------------------------------------
# The tiny task has ~88 training images: at batch 256 every method would take one step per
# epoch, so each runs with batch 16 (as FT below); learning rates are scaled up where the
# reference's are meant for CIFAR-scale step counts (see each module's docstring).
BEHAVIOUR = {
    "rl": {"batch_size": 16},
    "salun": {"batch_size": 16},
    "neggrad_plus": {"alpha": 0.8, "momentum": 0.9, "batch_size": 16},
    "scrub": {"lr": 0.01, "batch_size": 16, "forget_batch_size": 8},
    "boundary_shrink": {"lr": 0.003, "batch_size": 16},
}
FT = {"batch_size": 16}  # 10 epochs, lr 0.01: the same step budget as RL
MARGIN, RETAIN_FLOOR = 50.0, 90.0  # forget error at least FT's + 50 points; retain acc >= 90%


def _unlearn(name: str, params: dict, model: nn.Module, task: UnlearningTask) -> nn.Module:
    torch.manual_seed(derive_seed(task.seed, "unlearn"))
    return UNLEARNERS.get(name).from_params(params).unlearn(copy.deepcopy(model), task)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", sorted(BEHAVIOUR))
def test_forgets_the_class_that_ft_keeps(name: str, seed: int, trained) -> None:
    model, task = trained[seed]
    ft = _unlearn("ft", FT, model, task)
    ft_error = 100 - _accuracy(ft, task.forget, task)
    out = _unlearn(name, BEHAVIOUR[name], model, task)
    error, retain = 100 - _accuracy(out, task.forget, task), _accuracy(out, task.retain, task)
    assert error >= ft_error + MARGIN, f"{name}: forget error {error:.1f} vs FT's {ft_error:.1f}"
    assert retain >= RETAIN_FLOOR, f"{name}: retain accuracy {retain:.1f}"
