"""Behaviour of the pruners: exact sparsity, what each keeps, and the pruning cache."""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from unlearnbench_baselines.pruners.imp import IterativeMagnitude, round_schedule
from unlearnbench_baselines.pruners.omp import OneShotMagnitude
from unlearnbench_baselines.pruners.random import RandomPruner
from unlearnbench_baselines.pruners.synflow import SynFlow, compounding_schedule, linearized, synflow_mask, synflow_scores
from unlearnbench.components import build_model
from unlearnbench import PRUNERS, ConfigError, ImageData, Mask, PruningTask, prunable_weights
from unlearnbench.run.config import RunConfig
from unlearnbench.run.api import run_trials
from unlearnbench.train.masks import weight_sparsity
from unlearnbench.testing import tiny_pruning_task

# Keep every pruner to a few seconds on the tiny task (IMP at rate 0.5: 3 rounds to 0.875, not 10);
# pruners without an entry run with their defaults.
QUICK = {"imp": {"retrain_epochs": 1, "rate": 0.5}, "omp": {"retrain_epochs": 1},
         "synflow": {"iterations": 20}}


def _prunable_count(mask: Mask) -> int:
    return sum(m.numel() for m in mask.keep.values())


@pytest.fixture(scope="module")
def task() -> PruningTask:
    return tiny_pruning_task(0.5)


# -- every pruner ----------------------------------------------------------------------------
# tiny_cnn has 3,528 prunable weights = 8 * 441, so eighths are reachable exactly.
@pytest.mark.parametrize("sparsity", [0.5, 0.875])
@pytest.mark.parametrize("name", PRUNERS.names())
def test_achieved_sparsity_is_the_target(name: str, sparsity: float, task: PruningTask) -> None:
    pruner = PRUNERS.get(name).from_params(QUICK.get(name, {}))
    model, mask = pruner.prune(dataclasses.replace(task, sparsity=sparsity))
    assert abs(mask.sparsity - sparsity) <= 1 / _prunable_count(mask) + 1e-12
    assert weight_sparsity(model) >= sparsity
    assert mask.violations(model) == 0


# -- OMP ---------------------------------------------------------------------------------------
def test_omp_keeps_the_globally_largest_dense_weights(task: PruningTask) -> None:
    _, mask = OneShotMagnitude(retrain_epochs=1).prune(dataclasses.replace(task, sparsity=0.8))
    kept, pruned = [], []
    for name, keep in mask.keep.items():
        magnitude = task.dense_state[name].abs()
        kept.append(magnitude[keep])
        pruned.append(magnitude[~keep])
    assert torch.cat(kept).min() >= torch.cat(pruned).max()
    # global, not per layer: the layers end up with different sparsities
    per_layer = [1 - keep.float().mean().item() for keep in mask.keep.values()]
    assert max(per_layer) - min(per_layer) > 0.05


def _distinct_snapshots(task: PruningTask) -> dict[int, dict[str, torch.Tensor]]:
    """Epoch 0 = init, epoch 1 = another init, epoch 3 = the dense result: all different."""
    other = task.new_model().state_dict()
    return {0: dict(task.snapshots[0]), 1: {k: v.clone() for k, v in other.items()},
            3: dict(task.dense_state)}


@pytest.mark.parametrize("rewind, epoch", [("early", 1), ("init", 0), ("none", 3)])
@pytest.mark.parametrize("pruner_cls, params", [(OneShotMagnitude, {}),
                                                (IterativeMagnitude, {"rate": 0.3})])  # 2 rounds
def test_magnitude_pruners_rewind_the_survivors(pruner_cls, params: dict, rewind: str, epoch: int,
                                                task: PruningTask) -> None:
    # A vanishing learning rate makes retraining a no-op on the weights, exposing the rewind.
    snapshots = _distinct_snapshots(task)
    frozen = dataclasses.replace(task, snapshots=snapshots, recipe=task.recipe.replace(lr=1e-12))
    model, mask = pruner_cls(rewind=rewind, retrain_epochs=1, **params).prune(frozen)
    for name, weight in prunable_weights(model).items():
        expected = snapshots[epoch][name] * mask.keep[name]
        torch.testing.assert_close(weight.detach(), expected, rtol=0, atol=1e-8)


@pytest.mark.parametrize("rewind, start", [("early", 1), ("init", 0)])
@pytest.mark.parametrize("pruner_cls, params, rounds", [(OneShotMagnitude, {}, 1),
                                                        (IterativeMagnitude, {"rate": 0.3}, 2)])
def test_magnitude_pruners_rewind_the_learning_rate_schedule_too(
        pruner_cls, params: dict, rounds: int, rewind: str, start: int, task: PruningTask,
        monkeypatch) -> None:
    # The reference resumes its schedule at the rewind epoch (182 epochs rewound to 8: 174 more,
    # decays at their 83rd and 128th). The tiny recipe: 4 epochs, lr 0.05, x0.1 at epochs 2 and
    # 3; its early snapshot is epoch 1, so each retraining runs epochs 1-3 at 0.05, 0.005, 0.0005.
    seen: list[float] = []
    step = torch.optim.SGD.step

    def recording(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", recording)
    pruner_cls(rewind=rewind, **params).prune(dataclasses.replace(task, sparsity=0.5))
    per_epoch = len(task.loader())
    recipe = task.recipe
    expected = [recipe.lr_at(epoch / recipe.epochs) for epoch in range(start, recipe.epochs)
                for _ in range(per_epoch)]
    assert expected[0] == 0.05 and expected[-1] == pytest.approx(0.0005)
    assert seen == pytest.approx(expected * rounds)


def test_early_rewind_without_an_early_snapshot_is_a_clear_error(task: PruningTask) -> None:
    only_init = dataclasses.replace(task, snapshots={0: task.snapshots[0]})
    with pytest.raises(ConfigError, match="rewind=init"):
        OneShotMagnitude(retrain_epochs=1).prune(only_init)


# -- IMP ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("target, rate", [(0.5, 0.2), (0.9, 0.2), (0.95, 0.2), (0.99, 0.2),
                                          (0.95, 0.5), (0.1, 0.2)])
def test_imp_round_schedule_compounds(target: float, rate: float) -> None:
    schedule = round_schedule(target, rate)
    assert len(schedule) == math.ceil(math.log(1 - target) / math.log(1 - rate))
    for j, sparsity in enumerate(schedule[:-1], start=1):
        assert sparsity == pytest.approx(1 - (1 - rate) ** j)
        assert sparsity < target
    assert schedule[-1] == target


def test_imp_round_schedule_stops_when_a_round_lands_on_the_target() -> None:
    assert len(round_schedule(0.2, 0.2)) == 1
    assert len(round_schedule(0.36, 0.2)) == 2  # 1 - 0.8**2, though log ratio is 2.0000000000000004
    assert len(round_schedule(0.95, 0.2)) == 14  # the paper's setting: 14 retrainings


def test_imp_rounds_prune_nested_masks_on_schedule(task: PruningTask, monkeypatch) -> None:
    masks: list[Mask] = []
    original_train = PruningTask.train_masked

    def recording(self, model, mask, **kwargs):
        masks.append(Mask({n: k.clone() for n, k in mask.keep.items()}))
        return original_train(self, model, mask, **kwargs)

    monkeypatch.setattr(PruningTask, "train_masked", recording)
    IterativeMagnitude(retrain_epochs=1).prune(dataclasses.replace(task, sparsity=0.6))
    expected = round_schedule(0.6, 0.2)
    assert len(masks) == len(expected) == 5
    total = _prunable_count(masks[0])
    for mask, target in zip(masks, expected):
        assert abs(mask.sparsity - target) <= 1 / total
    for earlier, later in zip(masks, masks[1:]):
        assert all(not (later.keep[n] & ~earlier.keep[n]).any() for n in earlier.keep)


# -- SynFlow -----------------------------------------------------------------------------------
def _linear_net() -> nn.Module:
    """x (2) -> W1 (2x2) -> W2 (2x2) -> head W3 (1x2); no biases, no nonlinearity."""
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False),
                        nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[5.0, 3.0], [3.0, -2.0]]))
        net[1].weight.copy_(torch.tensor([[1.0, 1.0], [1.0, -3.0]]))
        net[2].weight.copy_(torch.tensor([[1.0, 2.0]]))
    return net


def test_synflow_scores_match_the_closed_form_on_a_linear_net() -> None:
    # R = 1^T |W3| |W2| |W1| 1. With a = |W1| 1 = (8, 5), b = 1^T |W3| = (1, 2) and
    # c = b |W2| = (3, 7): score(W1_ij) = c_i |W1_ij|, score(W2_ij) = b_i |W2_ij| a_j, R = 59.
    net = _linear_net()
    scores = synflow_scores(linearized(net), (2,))
    assert set(scores) == {"0.weight", "1.weight"}  # the head is not prunable
    torch.testing.assert_close(scores["0.weight"], torch.tensor([[15.0, 9.0], [21.0, 14.0]],
                                                                dtype=torch.float64))
    torch.testing.assert_close(scores["1.weight"], torch.tensor([[8.0, 5.0], [16.0, 30.0]],
                                                                dtype=torch.float64))
    # synaptic flow is conserved: every layer's scores sum to R
    assert scores["0.weight"].sum().item() == pytest.approx(59.0)
    assert scores["1.weight"].sum().item() == pytest.approx(59.0)
    # scoring works on a copy: the model keeps its signs and precision
    assert net[0].weight[1, 1].item() == -2.0 and net[0].weight.dtype == torch.float32


def test_synflow_rescores_the_masked_network_between_iterations() -> None:
    net = _linear_net()
    # One shot at 50% removes the four lowest scores above: 5, 8, 9, 14.
    one_shot = synflow_mask(net, (2,), 0.5, iterations=1)
    assert one_shot.keep["0.weight"].tolist() == [[True, False], [True, False]]
    assert one_shot.keep["1.weight"].tolist() == [[False, False], [True, True]]
    # Two iterations: first to 1 - 0.5**0.5 (2 of 8 weights: W2's row 0, scores 5 and 8). Then
    # c = b |W2 masked| = (2, 6), so W1 rescores to [[10, 6], [18, 12]] while W2's kept row
    # stays (16, 30); the next two to go are 6 and 10, all of W1's row 0.
    iterative = synflow_mask(net, (2,), 0.5, iterations=2)
    assert iterative.keep["0.weight"].tolist() == [[False, False], [True, True]]
    assert iterative.keep["1.weight"].tolist() == [[False, False], [True, True]]


def test_compounding_schedule() -> None:
    schedule = compounding_schedule(0.99, 100)
    assert len(schedule) == 100
    assert schedule[-1] == pytest.approx(0.99)
    assert schedule[49] == pytest.approx(0.9)  # half the iterations: density sqrt(0.01)
    assert all(a < b for a, b in zip(schedule, schedule[1:]))


def test_synflow_scores_100_times_by_default(task: PruningTask, monkeypatch) -> None:
    """The paper's (and Tanaka et al.'s) 100 iterations: one scoring pass per iteration."""
    import unlearnbench_baselines.pruners.synflow as synflow
    calls = []

    def counting(probe, input_shape):
        calls.append(1)
        return synflow_scores(probe, input_shape)
    monkeypatch.setattr(synflow, "synflow_scores", counting)
    SynFlow().prune(dataclasses.replace(task, recipe=task.recipe.replace(epochs=1)))
    assert len(calls) == 100


# -- the defaults, pinned to their sources ------------------------------------------------------
@pytest.mark.parametrize(("cls", "defaults"), [
    # paper.md "Pruners": SynFlow 100 iterations; IMP prunes 20% of the remaining weights per
    # round and rewinds to epoch 8 (scaled, "early"); OMP rewinds the same way; both retrain with
    # the original recipe (retrain_epochs None). Module docstrings: imp.py, omp.py, synflow.py.
    (SynFlow, {"iterations": 100}),
    (IterativeMagnitude, {"rate": 0.2, "rewind": "early", "retrain_epochs": None}),
    (OneShotMagnitude, {"rewind": "early", "retrain_epochs": None}),
], ids=lambda v: v.__name__ if isinstance(v, type) else "")
def test_pruner_defaults_are_the_papers(cls: type, defaults: dict) -> None:
    assert cls().get_params() == defaults


def _with_images(task: PruningTask, images: torch.Tensor) -> PruningTask:
    return dataclasses.replace(task, train=ImageData(images, task.train.labels))


def test_synflow_uses_no_data(task: PruningTask) -> None:
    shape = task.train.images.shape
    garbage = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    pruner = SynFlow(iterations=20)
    masks = [pruner.prune(t)[1] for t in
             (task, _with_images(task, garbage), _with_images(task, torch.zeros_like(task.train.images)))]
    for other in masks[1:]:
        assert all(torch.equal(masks[0].keep[n], other.keep[n]) for n in masks[0].keep)


def test_synflow_mask_of_an_all_zero_dataset(task: PruningTask) -> None:
    zeros = _with_images(task, torch.zeros_like(task.train.images))
    model, mask = SynFlow(iterations=20).prune(zeros)
    expected = synflow_mask(task.new_model(), tuple(task.train.images.shape[1:]), 0.5, 20)
    assert all(torch.equal(mask.keep[n], expected.keep[n]) for n in mask.keep)
    assert mask.violations(model) == 0


def test_synflow_avoids_layer_collapse(task: PruningTask) -> None:
    # Tanaka et al. 2020: iterative SynFlow never disconnects a layer below max compression.
    # 99% of 3,528 weights leaves 35, fewer than the first layer's 72.
    mask = synflow_mask(task.new_model(), tuple(task.train.images.shape[1:]), 0.99, 100)
    assert all(keep.any() for keep in mask.keep.values())


# -- random ------------------------------------------------------------------------------------
def test_random_mask_is_seeded(task: PruningTask) -> None:
    first = RandomPruner().prune(task)[1]
    again = RandomPruner().prune(task)[1]
    other_seed = RandomPruner().prune(dataclasses.replace(task, seed=task.seed + 1))[1]
    assert all(torch.equal(first.keep[n], again.keep[n]) for n in first.keep)
    assert any(not torch.equal(first.keep[n], other_seed.keep[n]) for n in first.keep)


def test_random_mask_prunes_every_layer_alike(task: PruningTask) -> None:
    mask = RandomPruner().prune(dataclasses.replace(task, sparsity=0.75))[1]
    for name, keep in mask.keep.items():
        if keep.numel() >= 1000:  # binomial spread of a layer's sparsity is below 0.015 here
            assert 1 - keep.float().mean().item() == pytest.approx(0.75, abs=0.05), name


# -- the cache ---------------------------------------------------------------------------------
def test_pruned_model_survives_the_cache_and_a_damaged_entry_is_rebuilt(tmp_path: Path) -> None:
    config = RunConfig(method="ft", method_params={"epochs": 2}, dataset="synthetic", pruner="omp",
                       sparsity=0.9, train_params={"epochs": 3}, cache_dir=tmp_path / "cache",
                       output_dir=tmp_path / "out")
    first, = run_trials(config)
    second, = run_trials(config)
    assert not first.timings.prune_cached and second.timings.prune_cached
    assert second.timings.original_cached
    assert second.sparsity == first.sparsity >= 0.9 - 1 / 3528
    _assert_same_metrics(first, second)

    entries = list((tmp_path / "cache" / "pruned").glob("*.pt"))
    assert len(entries) == 1
    data = bytearray(entries[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    entries[0].write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="damaged cache entry"):
        third, = run_trials(config)
    assert not third.timings.prune_cached
    assert third.sparsity == first.sparsity
    _assert_same_metrics(first, third)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fourth, = run_trials(config)
    assert not [w for w in caught if "damaged cache entry" in str(w.message)]  # rebuilt whole
    assert fourth.timings.prune_cached


def _assert_same_metrics(a, b) -> None:
    for metric in ("UA", "MIA", "RA", "TA"):
        assert a.metrics[metric] == b.metrics[metric], metric


# -- SynFlow on the suite's ResNet-18 (CIFAR stem) ---------------------------------------------
def _resnet18() -> nn.Module:
    torch.manual_seed(0)
    return build_model("resnet18", num_classes=10, in_chans=3, image_size=32)


def test_synflow_scores_of_the_suites_resnet18_are_not_degenerate() -> None:
    # A zero-initialized BN at the end of a residual branch (timm's zero_init_last) cuts the
    # branch out of the absolute-valued network: its convs' scores are all exactly 0 and tie
    # order decides which of them survive. The reference ResNet-18 has no such zeros.
    scores = synflow_scores(linearized(_resnet18()), (3, 16, 16))
    zero_share = {name: (s == 0).double().mean().item() for name, s in scores.items()}
    assert all(share < 0.01 for share in zero_share.values()), zero_share


def test_synflow_prunes_no_residual_conv_of_resnet18_away() -> None:
    # With zero-initialized residual BNs every residual conv of layers 1-3 was pruned whole at
    # 95%. (A 1x1 downsample shortcut may legitimately go: the block's branch still carries
    # the flow, so the network stays connected.)
    mask = synflow_mask(_resnet18(), (3, 16, 16), 0.95, iterations=10)
    density = {name: keep.double().mean().item() for name, keep in mask.keep.items()}
    branch_convs = {name: d for name, d in density.items() if "downsample" not in name}
    assert len(branch_convs) == 17 and min(branch_convs.values()) > 0, density
