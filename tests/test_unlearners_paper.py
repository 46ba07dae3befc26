"""The unlearners of Jia et al. 2023 (GA, FF, IU, sparse FT): each against a known answer.

* IU: the WoodFisher inverse-Hessian-vector product equals a direct solve with the explicit
  empirical Fisher, and differs from the reference code's rank-one recursion.
* FF: the Fisher diagonal of a linear softmax model equals its closed form; the noise added
  has exactly the variance alpha / F (floor and cap included).
* sparse FT: the gamma schedule at known points; the penalty is exactly gamma_t * ||theta||_1
  and lowers the L1 norm against FT with the same seed.
* GA: the forget loss goes up.
* IU: the whole update equals the closed-form Newton step on a linear softmax model, so
  dropping the retain gradient fails; at the original's optimum the direction is -g_r.
* On digits class-wise forgetting (the real harness): GA and sparse FT forget far more than
  FT, every method keeps the retain set, and FF and IU leave different metrics than the
  unchanged original (a method that does nothing keeps the retain set too).
* The defaults are pinned: the paper's where the suite follows it, the suite's documented
  choice (with its search in the module docstring) where it does not.
"""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unlearnbench_baselines.unlearners._functional import per_example_grads, trainable
from unlearnbench_baselines.unlearners.ff import FisherForgetting, fisher_diagonal, noise_variance
from unlearnbench_baselines.unlearners.ft import FineTune
from unlearnbench_baselines.unlearners.ga import GradientAscent
from unlearnbench_baselines.unlearners.iu import (GradientBlocks, InfluenceUnlearning, mean_gradient,
                                                 woodfisher_ihvp)
from unlearnbench_baselines.unlearners.sparse_ft import SparseFineTune, l1_norm
from unlearnbench import (UNLEARNERS, Augment, ImageData, Normalize, TrainRecipe, Unlearner,
                          UnlearnerTags, UnlearningTask)
from unlearnbench.run.config import RunConfig
from unlearnbench.run.api import run_trials
from unlearnbench.testing import tiny_task
from unlearnbench.train.runtime import Runtime

def forget_loss(model: nn.Module, task) -> float:
    model.eval()
    with torch.no_grad():
        x = task.normalize(task.forget.images)
        return F.cross_entropy(model(x), task.forget.labels).item()


def linear_problem(seed: int = 0, n: int = 30, features: int = 8, classes: int = 4):
    g = torch.Generator().manual_seed(seed)
    model = nn.Linear(features, classes)
    with torch.no_grad():
        model.weight.copy_(torch.randn(classes, features, generator=g))
        model.bias.copy_(torch.randn(classes, generator=g))
    x = torch.randn(n, features, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return model, x, y


# -- IU -------------------------------------------------------------------------------------
def reference_rank_one_recursion(grads: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The public reference's loop (identity start, 1/N scaling): its second vector is only
    ever rescaled, so it stays parallel to the first gradient. Kept here to show the defect."""
    n, k_vec, o_vec = len(grads), v.clone(), grads[0].clone()
    for g in grads[1:]:
        tmp = o_vec @ g
        k_vec -= (k_vec @ g) / (n + tmp) * o_vec
        o_vec -= tmp / (n + tmp) * o_vec
    return k_vec


def sherman_morrison(grads: torch.Tensor, v: torch.Tensor, damping: float) -> torch.Tensor:
    """WoodFisher's recursion done right: F_k^{-1} u for u = v and every later g_j."""
    n = len(grads)
    vectors = [g / damping for g in grads]  # F_0^{-1} g_j
    result = v / damping
    for k in range(n):
        u = vectors[k]  # F_{k}^{-1} g_k (0-based: before adding g_k)
        denom = n + grads[k] @ u
        result = result - (grads[k] @ result) / denom * u
        for j in range(k + 1, n):
            vectors[j] = vectors[j] - (grads[k] @ vectors[j]) / denom * u
    return result


def test_per_example_grads_equal_one_backward_per_example() -> None:
    model, task = tiny_task()
    model.eval()
    x, y = task.normalize(task.retain.images[:5]), task.retain.labels[:5]
    names = list(trainable(model))
    batched = per_example_grads(model, x, y, names)
    for i in range(5):
        loss = F.cross_entropy(model(x[i:i + 1]), y[i:i + 1])
        single = torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(trainable(model).values()))])
        torch.testing.assert_close(batched[i], single, rtol=1e-4, atol=1e-6)


def test_woodfisher_ihvp_is_the_exact_inverse_of_the_empirical_fisher() -> None:
    """Closed form: F = damping*I + G^T G / N built explicitly (d = 36, N = 30), solved directly.
    Gradients in float32; relative error < 1e-4. The reference's rank-one recursion is far off."""
    model, x, y = linear_problem()
    names = list(trainable(model))
    grads = per_example_grads(model, x, y, names)  # (30, 36), float32
    v = torch.randn(grads.shape[1], generator=torch.Generator().manual_seed(1))
    damping = 1.0  # the reference's implicit value
    g64 = grads.double()
    fisher = damping * torch.eye(g64.shape[1], dtype=torch.float64) + g64.T @ g64 / len(g64)
    exact = torch.linalg.solve(fisher, v.double())

    blocks = list(grads.split(7))  # uneven blocks exercise the block assembly
    ours = woodfisher_ihvp(blocks, v, damping).double()
    error = ((ours - exact).norm() / exact.norm()).item()
    assert error < 1e-4

    recursion = sherman_morrison(grads.double(), v.double(), damping)
    assert ((recursion - exact).norm() / exact.norm()).item() < 1e-10

    rank_one = reference_rank_one_recursion(grads.double(), v.double())
    rank_one_error = ((rank_one - exact).norm() / exact.norm()).item()
    assert rank_one_error > 0.05 and rank_one_error > 1000 * error


def test_woodfisher_ihvp_small_damping_and_more_samples_than_dims() -> None:
    g = torch.Generator().manual_seed(2)
    for n, d, damping in ((50, 20, 1e-2), (10, 40, 1e-3)):
        grads = torch.randn(n, d, generator=g, dtype=torch.float64)
        v = torch.randn(d, generator=g, dtype=torch.float64)
        exact = torch.linalg.solve(damping * torch.eye(d, dtype=torch.float64) + grads.T @ grads / n, v)
        ours = woodfisher_ihvp(list(grads.split(8)), v, damping)
        assert ((ours - exact).norm() / exact.norm()).item() < 1e-8


def test_recomputed_gradient_blocks_give_the_same_step_as_kept_ones() -> None:
    model, task = tiny_task()
    model.eval()
    names = list(trainable(model))
    v = torch.randn(sum(p.numel() for p in trainable(model).values()),
                    generator=torch.Generator().manual_seed(3))
    steps = [woodfisher_ihvp(GradientBlocks(model, task, task.retain, names, chunk=16, keep=None,
                                            cache=cache), v, 1.0) for cache in (True, False)]
    torch.testing.assert_close(steps[0], steps[1])


def test_iu_raises_the_forget_loss() -> None:
    model, task = tiny_task()
    before = forget_loss(model, task)
    after = forget_loss(InfluenceUnlearning(alpha=30.0).unlearn(copy.deepcopy(model), task), task)
    assert after > before + 0.1


def softmax_task(seed: int = 0, n_forget: int = 6, n_retain: int = 18, classes: int = 3):
    """A linear softmax model on 4-pixel images and its task: every gradient has a closed form."""
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, classes))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(classes, 4, generator=g))
        model[1].bias.copy_(torch.randn(classes, generator=g))

    def data(n: int) -> ImageData:
        return ImageData(torch.randint(0, 256, (n, 1, 2, 2), generator=g, dtype=torch.uint8),
                         torch.randint(0, classes, (n,), generator=g))
    task = UnlearningTask(
        forget=data(n_forget), retain=data(n_retain), validation=None, num_classes=classes,
        recipe=TrainRecipe(), normalize=Normalize((0.5,), (0.25,)), augment=Augment(),
        runtime=Runtime.resolve("cpu", "fp32"), seed=seed, mask=None, new_model=lambda: None)
    return model, task


def closed_form_iu_step(model: nn.Module, task, *, alpha: float, damping: float,
                        retain_weight: float = 1.0) -> torch.Tensor:
    """alpha * F^-1 v in float64 from the softmax gradients (p - e_y) x^T and p - e_y:
    v = (n_f/n)(g_f - retain_weight * g_r), F = damping I + G_r^T G_r / n_r."""
    W, b = (p.detach().double() for p in model[1].parameters())

    def grads(data: ImageData) -> torch.Tensor:
        x = task.normalize(data.images, torch.float64).flatten(1)
        r = torch.softmax(x @ W.T + b, dim=1) - F.one_hot(data.labels, W.shape[0]).double()
        return torch.cat([torch.einsum("nk,nj->nkj", r, x).flatten(1), r], dim=1)  # (n, d)
    g_forget, g_retain = grads(task.forget), grads(task.retain)
    n_f, n_r = len(g_forget), len(g_retain)
    v = n_f / (n_f + n_r) * (g_forget.mean(0) - retain_weight * g_retain.mean(0))
    fisher = damping * torch.eye(len(v), dtype=torch.float64) + g_retain.T @ g_retain / n_r
    return alpha * torch.linalg.solve(fisher, v)


def iu_step(method, model: nn.Module, task) -> torch.Tensor:
    before = torch.cat([p.detach().flatten() for p in model.parameters()]).double()
    out = method.unlearn(copy.deepcopy(model), task)
    return torch.cat([p.detach().flatten() for p in out.parameters()]).double() - before


class IUWithoutRetainGradient(InfluenceUnlearning):
    """A wrong IU: v = (n_f / n) g_f, the retain gradient dropped."""

    def influence_direction(self, model, task, names, keep):
        n_f, n = len(task.forget), len(task.forget) + len(task.retain)
        return (n_f / n) * mean_gradient(model, task, task.forget, names, self.batch_size)


def test_iu_update_is_the_closed_form_newton_step() -> None:
    """On a linear softmax model the whole update alpha F^-1 (n_f/n)(g_f - g_r) is known in
    closed form (d = 15, all 18 retain examples in F); IU matches it to float32 precision, and
    a method that drops the retain gradient is far off."""
    model, task = softmax_task()
    method = InfluenceUnlearning(alpha=2.0, damping=0.1, fisher_samples=1000)
    exact = closed_form_iu_step(model, task, alpha=2.0, damping=0.1)
    error = ((iu_step(method, model, task) - exact).norm() / exact.norm()).item()
    assert error < 1e-4

    wrong = IUWithoutRetainGradient(alpha=2.0, damping=0.1, fisher_samples=1000)
    wrong_error = ((iu_step(wrong, model, task) - exact).norm() / exact.norm()).item()
    assert wrong_error > 0.05 and wrong_error > 1000 * error
    # and the wrong method is exactly the closed form without the retain term: the test sees it
    torch.testing.assert_close(iu_step(wrong, model, task),
                               closed_form_iu_step(model, task, alpha=2.0, damping=0.1, retain_weight=0.0),
                               rtol=1e-4, atol=1e-6)


def test_iu_direction_at_the_full_optimum_is_minus_the_retain_gradient() -> None:
    """Where n_f g_f + n_r g_r = 0 (the original's optimum), v = -g_r: the step is a Newton
    step towards the retain-only model (iu.py's docstring). The float32 optimum leaves a full
    gradient of ~1e-4 of |g_r|, hence the tolerance."""
    model, task = softmax_task(seed=1)
    all_data = ImageData.concat([task.forget, task.retain])
    x = task.normalize(all_data.images).flatten(1)
    optimizer = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=500, tolerance_grad=1e-9,
                                  tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), all_data.labels)
        loss.backward()
        return loss
    optimizer.step(closure)
    names = list(trainable(model))
    v = InfluenceUnlearning().influence_direction(model, task, names, None)
    g_r = mean_gradient(model, task, task.retain, names, 256)
    assert g_r.norm() > 1e-2  # the retain-only objective is not at its optimum
    assert ((v + g_r).norm() / g_r.norm()).item() < 1e-3
    wrong = IUWithoutRetainGradient().influence_direction(model, task, names, None)
    # dropping g_r leaves (n_f/n) g_f = -(n_r/n) g_r: a quarter of the step is missing
    assert ((wrong + g_r).norm() / g_r.norm()).item() == pytest.approx(6 / 24, abs=1e-3)


# -- FF -------------------------------------------------------------------------------------
def test_fisher_diagonal_of_a_linear_softmax_model_has_its_closed_form() -> None:
    """For logits W x + b: sum_y p_y (d log p_y / d W_kj)^2 = p_k (1 - p_k) x_j^2."""
    model, x, y = linear_problem(n=40)
    fisher = fisher_diagonal(model, [(x[:25], y[:25]), (x[25:], y[25:])])
    p = torch.softmax(model(x), dim=1).detach()
    spread = p * (1 - p)  # (n, classes)
    torch.testing.assert_close(fisher["weight"], torch.einsum("nk,nj->kj", spread, x.square()) / len(x))
    torch.testing.assert_close(fisher["bias"], spread.mean(0))


def test_noise_variance_is_alpha_over_fisher_with_floor_and_cap() -> None:
    fisher = {"w": torch.tensor([0.0, 1e-12, 1e-4, 1e-2, 1.0])}
    var = noise_variance(fisher, alpha=1e-6, fisher_floor=1e-8, max_variance=1e-3)["w"]
    # 0 and 1e-12 are floored to 1e-8 -> 1e2, capped to 1e-3; 1e-4 -> 1e-2, capped; then 1e-4, 1e-6.
    torch.testing.assert_close(var, torch.tensor([1e-3, 1e-3, 1e-3, 1e-4, 1e-6]))


def test_ff_adds_gaussian_noise_of_exactly_that_variance() -> None:
    model, task = tiny_task()
    ff = FisherForgetting(alpha=1e-6, max_variance=1e-3)
    variance = noise_variance(ff.retain_fisher(copy.deepcopy(model), task), alpha=ff.alpha,
                              fisher_floor=ff.fisher_floor, max_variance=ff.max_variance)
    before = {n: p.detach().clone() for n, p in trainable(model).items()}
    after = trainable(ff.unlearn(model, task))
    z = torch.cat([((after[n].detach() - before[n]) / variance[n].sqrt()).flatten() for n in before])
    # z should be N(0, 1): ~3.7k draws give a standard error of ~0.02 on the variance.
    assert abs(z.mean().item()) < 0.1 and abs(z.var().item() - 1) < 0.1
    # No class-wise special case: the forgotten class's head row is noised, not zeroed.
    assert (after["fc.weight"][0] != 0).all()


def test_ff_noise_does_not_survive_on_pruned_weights() -> None:
    model, task = tiny_task(sparsity=0.5)
    out = FisherForgetting(alpha=1e-3).unlearn(model, task)
    assert task.mask.violations(out) == 0


# -- sparse FT ------------------------------------------------------------------------------
@pytest.mark.parametrize(("scheduler", "expected"), [
    ("constant", (1.0, 1.0, 1.0)),
    ("linear_decay", (1.0, 0.5, 0.001)),
    ("linear_increase", (0.0, 0.5, 0.999)),
])
def test_gamma_schedule(scheduler: str, expected: tuple[float, float, float]) -> None:
    sparse = SparseFineTune(gamma=2e-3, scheduler=scheduler)
    got = [sparse.gamma_at(p) for p in (0.0, 0.5, 0.999)]
    assert got == pytest.approx([2e-3 * e for e in expected], rel=1e-12, abs=1e-15)


def test_sparse_ft_loss_is_ft_loss_plus_gamma_t_times_l1() -> None:
    model, task = tiny_task()
    batch = next(iter(task.loader(task.retain, shuffle=False, augment=False)))
    sparse = SparseFineTune(gamma=1e-3)
    l1 = sum(p.abs().sum() for p in model.parameters())
    difference = sparse.loss(model, batch, 0.25) - FineTune().loss(model, batch, 0.25)
    assert difference.item() == pytest.approx(0.75e-3 * l1.item(), rel=1e-5)


def test_sparse_ft_lowers_the_l1_norm_against_ft() -> None:
    model, task = tiny_task()
    norms = {}
    # The tiny retain set is one batch: 5 steps, so gamma must be large to show.
    for name, method in (("ft", FineTune(epochs=5)), ("sparse", SparseFineTune(epochs=5, gamma=0.1))):
        torch.manual_seed(0)
        norms[name] = l1_norm(method.unlearn(copy.deepcopy(model), task)).item()
    assert norms["sparse"] < 0.9 * norms["ft"]


# -- GA -------------------------------------------------------------------------------------
def test_ga_raises_the_forget_loss_more_with_a_larger_step() -> None:
    model, task = tiny_task()
    before = forget_loss(model, task)
    small = forget_loss(GradientAscent().unlearn(copy.deepcopy(model), task), task)
    large = forget_loss(GradientAscent(lr=1e-2).unlearn(copy.deepcopy(model), task), task)
    assert before < small < large and large > before + 0.1


# -- the defaults, pinned to their sources ----------------------------------------------------
# paper.md "Unlearning methods and the reference's hyperparameters": FT 10 epochs, constant lr
# 0.01, SGD m=0.9 wd=5e-4; GA 5 epochs, lr 1e-4; sparse FT the FT recipe with gamma_0 = 1e-4
# and the linearly decaying scheduler; their batch is the recipe's (None: the budget rule,
# docs/budgets.md), which at full scale is the reference launcher's 256 (ft.py). FF's and
# IU's alpha are undocumented in the paper: the suite's searched choices, with the search's
# table in ff.py's and iu.py's docstrings (FF 2e-7 vs the launcher's ~3e-8; IU 10 vs "about
# 1"); IU's WoodFisher uses ~1,000 retain samples and the reference's implicit damping 1.
PAPER_SGD = {"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": None}


@pytest.mark.parametrize(("cls", "defaults"), [
    (FineTune, {"epochs": 10, **PAPER_SGD}),
    (GradientAscent, {**PAPER_SGD, "epochs": 5, "lr": 1e-4}),
    (SparseFineTune, {"epochs": 10, **PAPER_SGD, "gamma": 1e-4, "scheduler": "linear_decay"}),
    (FisherForgetting, {"alpha": 2e-7, "fisher_floor": 1e-8, "max_variance": 1e-2,
                        "gradient_memory_mb": 512}),
    (InfluenceUnlearning, {"alpha": 10.0, "damping": 1.0, "fisher_samples": 1000,
                           "batch_size": 256, "gradient_memory_mb": 1024}),
], ids=lambda v: v.__name__ if isinstance(v, type) else "")
def test_defaults_are_pinned(cls: type, defaults: dict) -> None:
    assert cls().get_params() == defaults


@pytest.mark.parametrize("cls", [FineTune, GradientAscent, SparseFineTune], ids=lambda c: c.__name__)
def test_sgd_methods_use_a_constant_learning_rate_at_the_recipes_batch(cls: type) -> None:
    """Constant lr as in the reference's launcher; the batch is the original's recipe's unless
    the method sets its own (the budget rule, docs/budgets.md)."""
    task = SimpleNamespace(recipe=TrainRecipe(epochs=45, batch_size=32))
    assert cls().train_recipe(task).schedule == "constant"
    assert cls().train_recipe(task).batch_size == 32
    assert cls(batch_size=256).train_recipe(task).batch_size == 256


def test_sparse_ft_default_gamma_decays_linearly_from_1e_4_to_0() -> None:
    sparse = SparseFineTune()
    assert [sparse.gamma_at(p) for p in (0.0, 0.5, 1.0)] == pytest.approx([1e-4, 5e-5, 0.0], abs=1e-18)


# -- behaviour on digits, class-wise forgetting, through the harness -------------------------
# Digits-scale settings. The reference's batch 256 gives only 5 steps per epoch on digits'
# ~1,160 retain images, so the SGD methods use the digits recipe's batch 64; GA's lr and
# sparse FT's gamma are the digits searches' choices (see the method docstrings). FF and IU
# run with their defaults. Measured (UA, RA) on seeds 0, 1, 2: ft (0, 100) on each;
# ga (93.8, 98.6), (91.4, 95.9), (85.9, 97.2); sparse_ft (100, 99.9), (100, 97.6), (100, 99.2).
SEEDS = (0, 1, 2)
DIGITS_PARAMS = {"ft": {"batch_size": 64}, "ga": {"batch_size": 64, "lr": 2e-3},
                 "sparse_ft": {"batch_size": 64, "gamma": 1e-2}, "ff": {}, "iu": {}}
UA_MARGIN_OVER_FT = 50.0
RA_FLOOR = 90.0


class Unchanged(Unlearner):
    """Returns the original model: the metrics of doing nothing, which every method must leave."""

    tags = UnlearnerTags(changes_model=False)

    def unlearn(self, model: nn.Module, task) -> nn.Module:
        return model


@pytest.fixture(scope="module")
def digits_metrics(shared_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """method -> seed -> metrics, with "unchanged" for the original model itself; the
    original model of each seed is trained once."""
    out = tmp_path_factory.mktemp("digits-records")
    UNLEARNERS.register("unchanged", Unchanged)
    try:
        return {method: {r.seed: SimpleNamespace(**r.metrics) for r in run_trials(RunConfig(
                    method=method, method_params=params, dataset="digits", forget="class:0",
                    seeds=SEEDS, cache_dir=shared_cache, output_dir=out / method, device="cpu"))}
                for method, params in {**DIGITS_PARAMS, "unchanged": {}}.items()}
    finally:
        UNLEARNERS.unregister("unchanged")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("method", ["ga", "sparse_ft"])
def test_ga_and_sparse_ft_forget_far_more_than_ft(digits_metrics: dict, method: str, seed: int) -> None:
    ft = digits_metrics["ft"][seed].UA
    assert digits_metrics[method][seed].UA > ft + UA_MARGIN_OVER_FT, (digits_metrics[method][seed], ft)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("method", list(DIGITS_PARAMS))
def test_every_method_keeps_the_retain_set(digits_metrics: dict, method: str, seed: int) -> None:
    assert digits_metrics[method][seed].RA > RA_FLOOR, digits_metrics[method][seed]


def _quality(metrics) -> tuple[float, float, float, float]:
    return metrics.UA, metrics.MIA, metrics.RA, metrics.TA


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("method", ["ff", "iu"])
def test_ff_and_iu_change_the_original(digits_metrics: dict, method: str, seed: int) -> None:
    """With the retain test above, a method that returns the original unchanged fails: keeping
    the retain set is only worth something when the model moved. (GA and sparse FT are held to
    a UA margin over FT above; FT itself leaves all four metrics of the original on seeds 0
    and 2, its known weakness in class-wise forgetting.)"""
    unchanged = digits_metrics["unchanged"][seed]
    assert unchanged.RA > RA_FLOOR  # so the retain test alone cannot tell doing nothing apart
    assert _quality(digits_metrics[method][seed]) != _quality(unchanged), (method, unchanged)
