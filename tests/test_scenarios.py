"""The backdoor scenario, probes (backdoor and transfer), subsets and method variants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from unlearnbench import ConfigError, ImageData, Normalize
from unlearnbench.scenarios.backdoor import Trigger, poison, triggered_non_target
from unlearnbench.datasets.synthetic import Synthetic
from unlearnbench.run.config import RunConfig
from unlearnbench.run.api import run_trials
from unlearnbench.report.leaderboard import render
from unlearnbench.evaluate.probes.backdoor import BackdoorProbe
from unlearnbench.evaluate.probes.transfer import TransferProbe, features
from unlearnbench.data.access import DataAccess
from unlearnbench.probe import ProbeContext
from unlearnbench.report.records import load_records
from unlearnbench.train.runtime import Runtime
from unlearnbench.data.splits import stratified_subset, subsample

CPU = Runtime.resolve("cpu", "fp32")
IDENTITY = Normalize((0.0,), (1 / 255,))  # x -> x: pixel values reach the model unchanged


# -- the trigger ---------------------------------------------------------------------------------
def test_trigger_is_a_black_4x4_patch_2px_from_the_bottom_right() -> None:
    images = torch.full((2, 3, 10, 10), 200, dtype=torch.uint8)
    out = Trigger().apply(images)
    expected = images.clone()
    expected[..., 4:8, 4:8] = 0  # rows/cols 10-2-4 .. 10-2
    assert torch.equal(out, expected)
    assert int((out == 0).sum()) == 2 * 3 * 16 and (images == 200).all()  # input untouched


def test_trigger_that_does_not_fit_is_an_error() -> None:
    with pytest.raises(ConfigError, match="does not fit 5x5 images"):
        Trigger().apply(torch.zeros((1, 1, 5, 5), dtype=torch.uint8))


def test_poison_changes_exactly_the_chosen_rows() -> None:
    data = ImageData(torch.full((6, 1, 8, 8), 255, dtype=torch.uint8), torch.tensor([1, 2, 3, 1, 2, 3]))
    poisoned = poison(data, torch.tensor([1, 4]), target=0)
    assert poisoned.labels.tolist() == [1, 0, 3, 1, 0, 3]
    changed = (poisoned.images != data.images).flatten(1).any(1)
    assert changed.tolist() == [False, True, False, False, True, False]


class PatchDetector(nn.Module):
    """Class 0 when the trigger's corner pixel is black and the top-left pixel is bright;
    otherwise the class written in the top-right pixel (a known answer for every image)."""

    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.num_classes = num_classes
        self.fc = nn.Linear(1, 1)  # a head, so features() has something to hook

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        triggered = (x[:, 0, h - 3, w - 3] == 0) & (x[:, 0, 0, 0] > 128)
        own = x[:, 0, 0, w - 1].long()
        label = torch.where(triggered, torch.zeros_like(own), own)
        self.fc(torch.zeros(len(x), 1))
        return nn.functional.one_hot(label, self.num_classes).float()


def test_backdoor_probe_counts_non_target_images_sent_to_the_target() -> None:
    labels = torch.tensor([0, 1, 1, 2, 2, 3, 3, 3, 0])
    images = torch.full((9, 1, 8, 8), 50, dtype=torch.uint8)
    images[:, 0, 0, 7] = labels.to(torch.uint8)  # the model reads the true class from here
    images[[1, 3, 5], 0, 0, 0] = 255  # three of the seven non-target images are vulnerable
    values = BackdoorProbe(target=0).measure(PatchDetector(), ProbeContext(ImageData(images, labels),
                                                                           IDENTITY, CPU))
    assert values["ASR"] == pytest.approx(100 * 3 / 7)
    assert values["clean_acc"] == 100.0
    assert len(triggered_non_target(ImageData(images, labels), 0)) == 7


def test_backdoor_run_learns_the_trigger_and_retrain_removes_it(tmp_path: Path) -> None:
    """The behaviour the paper reports: the original model obeys the trigger; a model trained
    only on the clean retain set does not."""
    common = dict(dataset="synthetic", dataset_params={"train_per_class": 48, "noise": 60.0,
                                                       "image_size": 12},
                  forget="backdoor:0.2", train_params={"epochs": 12}, cache_dir=tmp_path / "c",
                  output_dir=tmp_path / "o", device="cpu")
    retrain = run_trials(RunConfig(method="retrain", **common))[0]
    ft = run_trials(RunConfig(method="ft", method_params={"epochs": 1}, **common))[0]
    assert retrain.scenario == "backdoor" and retrain.forget == "backdoor:0.2"
    assert retrain.probes["ASR"]["before"] > 90 and retrain.probes["ASR"]["after"] < 10
    assert ft.probes["ASR"]["before"] == retrain.probes["ASR"]["before"]  # one original model
    assert set(retrain.probes) == {"ASR", "clean_acc"}
    assert "ASR (before → after)" in render(load_records(tmp_path / "o"))
    probes_cached = list((tmp_path / "c").rglob("probes/*"))
    assert probes_cached, "the 'before' measurement is cached for the next method"


# -- transfer -----------------------------------------------------------------------------------
class Embed(nn.Module):
    """Features = a fixed function of the image; head = a linear layer."""

    def __init__(self, informative: bool):
        super().__init__()
        self.informative = informative
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.flatten(1).mean(1, keepdim=True)
        feats = torch.cat([mean, mean ** 2, mean.sin(), mean.cos()], 1) if self.informative \
            else torch.zeros(len(x), 4)
        return self.fc(feats)


def _class_by_brightness(n_per_class: int, seed: int) -> ImageData:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(3).repeat_interleave(n_per_class)
    images = (labels * 80 + 20).view(-1, 1, 1, 1).expand(-1, 1, 6, 6).to(torch.uint8).clone()
    return ImageData(images, labels[torch.randperm(len(labels), generator=g)].sort().values)


def test_features_are_the_heads_input() -> None:
    data = _class_by_brightness(2, 0)
    out = features(Embed(True), data, IDENTITY, CPU)
    mean = data.images.double().flatten(1).mean(1)
    assert out.shape == (6, 4) and np.allclose(out[:, 0], mean.numpy(), rtol=1e-6)


class Handing(DataAccess):
    """Hands every probe that loads a dataset the one given."""

    def __init__(self, data) -> None:
        super().__init__(None, False, None)
        object.__setattr__(self, "data", data)

    def load(self, dataset, name, root=None):
        return self.data


def test_transfer_probe_separates_informative_from_constant_features() -> None:
    from unlearnbench.data.dataset import LoadedDataset
    from unlearnbench.data.tensors import Augment
    downstream = LoadedDataset(_class_by_brightness(10, 0), _class_by_brightness(5, 1), ("a", "b", "c"),
                               IDENTITY, Augment())
    probe = TransferProbe.from_params({"dataset": "synthetic"})
    probe.setup(downstream, Handing(downstream))
    context = ProbeContext(downstream.test, IDENTITY, CPU)
    assert probe.measure(Embed(True), context)["transfer_acc"] == 100.0
    assert probe.measure(Embed(False), context)["transfer_acc"] == pytest.approx(100 / 3)


def test_transfer_run_records_downstream_accuracy(tmp_path: Path) -> None:
    asked = {"transfer": {"dataset": "synthetic", "data_seed": 5, "num_classes": 3}}
    record = run_trials(RunConfig(method="ft", method_params={"epochs": 1}, dataset="synthetic",
                           probes=asked, train_params={"epochs": 3}, cache_dir=tmp_path / "c",
                           output_dir=tmp_path / "o", device="cpu"))[0]
    acc = record.probes["transfer_acc"]
    assert set(acc) == {"before", "after"} and 100 / 3 < acc["before"] <= 100
    assert record.config["probes"] == asked


def test_transfer_dataset_of_another_shape_is_refused_before_training(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="1-channel 16px images; the model takes 1-channel 8px"):
        run_trials(RunConfig(method="ft", dataset="synthetic",
                      probes={"transfer": {"dataset": "synthetic", "image_size": 16}},
                      cache_dir=tmp_path / "c", output_dir=tmp_path / "o", device="cpu"))
    assert not (tmp_path / "c" / "originals").exists()


# -- subsets and variants -----------------------------------------------------------------------
def test_stratified_subset_keeps_class_shares_and_is_fixed() -> None:
    labels = torch.cat([torch.zeros(600), torch.ones(300), torch.full((100,), 2)]).long()
    index = stratified_subset(labels, 100, "train_size")
    assert torch.equal(index, stratified_subset(labels, 100, "train_size"))
    assert torch.bincount(labels[index]).tolist() == [60, 30, 10]
    assert torch.equal(index, index.sort().values) and len(set(index.tolist())) == 100


@pytest.mark.parametrize("size, message", [(2000, "has only 1000 images"),
                                           (2, "at least one image per class")])
def test_bad_subset_sizes_are_errors(size: int, message: str) -> None:
    labels = torch.arange(1000) % 3
    with pytest.raises(ConfigError, match=message):
        stratified_subset(labels, size, "train_size")


def test_subsample_cuts_both_parts() -> None:
    data = Synthetic().load()
    small = subsample(data, 40, 20)
    assert (len(small.train), len(small.test)) == (40, 20)
    assert torch.bincount(small.train.labels).tolist() == [10] * 4
    assert subsample(data, None, None) is data


def test_variants_get_their_own_rows_and_ids(tmp_path: Path) -> None:
    common = dict(method="sparse_ft", dataset="synthetic", train_params={"epochs": 2},
                  method_params={"epochs": 1}, cache_dir=tmp_path / "c", output_dir=tmp_path / "o",
                  device="cpu", train_size=128, test_size=64)
    a = run_trials(RunConfig(label="sparse_ft-constant", **{**common, "method_params": {
        "epochs": 1, "scheduler": "constant"}}))[0]
    b = run_trials(RunConfig(label="sparse_ft-linear_decay", **common))[0]
    assert a.run_id != b.run_id and "n128t64" in a.run_id
    assert (a.label, b.label, a.method) == ("sparse_ft-constant", "sparse_ft-linear_decay", "sparse_ft")
    table = render(load_records(tmp_path / "o"))
    assert "sparse_ft-constant" in table and "sparse_ft-linear_decay" in table
    assert a.split.train + a.split.validation == 128 and a.split.test == 48  # class 0 dropped


def test_bad_label_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="label 'a b' is invalid"):
        run_trials(RunConfig(method="ft", dataset="synthetic", label="a b", cache_dir=tmp_path))
