"""Forget specs and the one seeded split of a trial."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from unlearnbench import ConfigError
from unlearnbench.datasets.synthetic import Synthetic
from unlearnbench.run.config import RunConfig
from unlearnbench.run.api import run_trials
from unlearnbench.data.splits import ForgetSpec, Split, holdout, make_split

# 10 classes of unequal size (20, 21, ..., 29 examples), shuffled
TRAIN_LABELS = torch.cat([torch.full((20 + k,), k) for k in range(10)])[
    torch.randperm(245, generator=torch.Generator().manual_seed(0))]
TEST_LABELS = torch.arange(10).repeat(5)


def split(forget: str = "class:0", seed: int = 0, val_fraction: float = 0.1) -> Split:
    return make_split(TRAIN_LABELS, TEST_LABELS, ForgetSpec.parse(forget), num_classes=10,
                      val_fraction=val_fraction, seed=seed)


# -- forget specs ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, kind, value, shown", [
    ("class:0", "class", 0.0, "class:0"),
    ("class:7", "class", 7.0, "class:7"),
    (" random : 0.1 ", "random", 0.1, "random:0.1"),
    ("random:.25", "random", 0.25, "random:0.25"),
    ("random:500", "random", 500.0, "random:500"),
    ("random:1e-2", "random", 0.01, "random:0.01"),
])
def test_forget_spec_parses(text: str, kind: str, value: float, shown: str) -> None:
    spec = ForgetSpec.parse(text)
    assert (spec.kind, spec.value, str(spec)) == (kind, value, shown)
    assert spec.scenario == ("class-wise" if kind == "class" else "random")
    assert spec.forget_class == (int(value) if kind == "class" else None)


@pytest.mark.parametrize("text, value, target, shown", [
    ("backdoor:0.1", 0.1, 0, "backdoor:0.1"),
    ("backdoor:0.05, target=3", 0.05, 3, "backdoor:0.05,target=3"),
    ("backdoor:40", 40.0, 0, "backdoor:40"),
])
def test_backdoor_spec_parses(text: str, value: float, target: int, shown: str) -> None:
    spec = ForgetSpec.parse(text)
    assert (spec.kind, spec.value, spec.target, str(spec)) == ("backdoor", value, target, shown)
    assert spec.scenario == "backdoor" and spec.poisons and ForgetSpec.parse(shown) == spec


def test_backdoor_target_must_exist() -> None:
    with pytest.raises(ConfigError, match="target label 12 does not exist; expected 0..9"):
        make_split(TRAIN_LABELS, TEST_LABELS, ForgetSpec.parse("backdoor:0.1,target=12"),
                   num_classes=10, val_fraction=0.1, seed=0)


def test_backdoor_split_keeps_the_whole_test_set() -> None:
    split = make_split(TRAIN_LABELS, TEST_LABELS, ForgetSpec.parse("backdoor:0.1"), num_classes=10,
                       val_fraction=0.1, seed=0)
    assert len(split.test) == len(TEST_LABELS)
    assert len(split.forget) == round(0.1 * len(split.train))
    assert set(split.forget.tolist()) | set(split.retain.tolist()) == set(split.train.tolist())


@pytest.mark.parametrize("text, message", [
    ("class0", "expected KIND:ARGUMENT, one of backdoor:F"),
    ("random:0.1,target=2", "target= applies to backdoor:F only"),
    ("backdoor:0", "expected a fraction in (0, 1)"),
    ("classes:1", "Unknown scenario 'classes'. Did you mean 'class'?"),
    ("class:-1", "expected class:K"),
    ("random:", "expected random:F (a fraction in (0, 1)) or random:N (a count)"),
    ("random:abc", "expected random:F (a fraction in (0, 1)) or random:N (a count)"),
    ("backdoor:0.1,target=x", "expected backdoor:F[,target=T]"),
    ("", "expected KIND:ARGUMENT"),
    ("class:1.5", "class index must be an integer"),
    ("random:0", "expected a fraction in (0, 1) or a whole count >= 1"),
    ("random:1.5", "expected a fraction in (0, 1) or a whole count >= 1"),
])
def test_forget_spec_rejects_bad_input(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        ForgetSpec.parse(text)
    assert repr(text) in str(info.value) and message in str(info.value)


@pytest.mark.parametrize("text", ["class0", "classes:1"])
def test_a_spec_of_no_known_kind_lists_every_scenarios_syntax(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        ForgetSpec.parse(text)
    for usage in ("class:K (a class index)", "random:F (a fraction in (0, 1)) or random:N (a count)",
                  "backdoor:F[,target=T] (poison a fraction F with target label T)"):
        assert usage in str(info.value)


# -- the split --------------------------------------------------------------------------------------
@pytest.mark.parametrize("forget", ["class:3", "random:0.1", "random:17"])
def test_forget_and_retain_partition_exactly_the_training_split(forget: str) -> None:
    s = split(forget)
    train, forget_set, retain = set(s.train.tolist()), set(s.forget.tolist()), set(s.retain.tolist())
    assert forget_set.isdisjoint(retain)
    assert forget_set | retain == train
    assert len(s.forget) + len(s.retain) == len(s.train)
    assert set(s.validation.tolist()).isdisjoint(train)
    assert train | set(s.validation.tolist()) == set(range(len(TRAIN_LABELS)))


def test_validation_holds_out_the_fraction_of_every_class() -> None:
    s = split(val_fraction=0.2)
    for k in range(10):
        size = 20 + k
        assert int((TRAIN_LABELS[s.validation] == k).sum()) == round(0.2 * size)
        assert int((TRAIN_LABELS[s.train] == k).sum()) == size - round(0.2 * size)
    assert len(split(val_fraction=0.0).validation) == 0
    with pytest.raises(ConfigError, match="val_fraction=1.0 is invalid"):
        holdout(TRAIN_LABELS, 1.0, 0)


def test_the_split_is_a_function_of_the_seed() -> None:
    a, b, c = split("random:0.1", seed=0), split("random:0.1", seed=0), split("random:0.1", seed=1)
    for name in ("train", "validation", "forget", "retain", "test"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert a.hash == b.hash
    assert not torch.equal(a.validation, c.validation) and not torch.equal(a.forget, c.forget)
    assert a.hash != c.hash and a.train_hash != c.train_hash


def test_class_wise_forgets_the_class_and_removes_it_from_the_test_set() -> None:
    s = split("class:4")
    assert (TRAIN_LABELS[s.forget] == 4).all() and not (TRAIN_LABELS[s.retain] == 4).any()
    assert len(s.forget) == int((TRAIN_LABELS[s.train] == 4).sum())
    assert torch.equal(s.test, torch.nonzero(TEST_LABELS != 4).flatten())
    assert len(s.test) == 45


def test_random_forgetting_sizes_and_keeps_the_test_set() -> None:
    s = split("random:0.1")
    assert len(s.forget) == round(0.1 * len(s.train))
    assert len(split("random:17").forget) == 17
    assert torch.equal(s.test, torch.arange(len(TEST_LABELS)))


@pytest.mark.parametrize("forget, message", [
    ("class:10", "class 10 does not exist; expected 0..9"),
    ("random:10000", "expected at least 1 and fewer than all"),
])
def test_impossible_splits_are_config_errors(forget: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        split(forget)


def test_a_class_without_training_examples_cannot_be_forgotten() -> None:
    labels = torch.tensor([0, 1, 2] * 10)  # class 3 of 4 has no examples
    with pytest.raises(ConfigError, match="class 3 has no training examples"):
        make_split(labels, torch.tensor([0, 1, 2, 3]), ForgetSpec.parse("class:3"), num_classes=4,
                   val_fraction=0.1, seed=0)


def test_split_hash_changes_with_any_part() -> None:
    a = split("class:1")
    b = split("class:2")
    assert a.train_hash == b.train_hash  # the original model is shared by both scenarios
    assert a.hash != b.hash


# -- one split for the original model and the unlearning -------------------------------------------
@pytest.mark.parametrize("forget, seed", [("class:1", 0), ("random:0.2", 3)])
def test_the_original_model_trained_on_exactly_forget_and_retain(
        forget: str, seed: int, shared_cache: Path, tmp_path: Path) -> None:
    """The reference code's split-seed bug (retain images the original never saw) cannot happen:
    the record's split and the cached original's training split are the same indices."""
    [record] = run_trials(RunConfig(method="ft", method_params={"epochs": 1}, dataset="synthetic",
                             forget=forget, seeds=(seed,), train_params={"epochs": 2},
                             cache_dir=shared_cache, output_dir=tmp_path))
    data = Synthetic().load()
    expected = make_split(data.train.labels, data.test.labels, ForgetSpec.parse(forget),
                          num_classes=data.num_classes, val_fraction=0.1, seed=seed)
    assert record.split.hash == expected.hash
    assert (record.split.forget, record.split.retain, record.split.train) == \
        (len(expected.forget), len(expected.retain), len(expected.train))
    descriptions = [torch.load(p, weights_only=True)["description"]
                    for p in (shared_cache / "originals").glob("*.pt")]
    mine = [d for d in descriptions if d["seed"] == seed and d["dataset"] == "synthetic"
            and d["recipe"]["epochs"] == 2 and d["dataset_params"] == Synthetic().get_params()]
    assert [d["train_split"] for d in mine] == [expected.train_hash]
    union = torch.sort(torch.cat([expected.forget, expected.retain])).values
    assert torch.equal(union, expected.train)
