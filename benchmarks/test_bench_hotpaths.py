"""CPU speed benchmarks of the hot paths, each timed against a fixed reference implementation
of the same computation and each also a correctness check.

Every benchmark runs alternating rounds of the reference and ours in one process, and the
gate (``conftest.py``) fails it when the median of the per-round ratios ours / reference
exceeds its ``@pytest.mark.gate`` limit. The references are plain, obvious implementations
that do not change when our code does: a per-image loop, plain ``model(x)`` passes, the dense
sklearn SVC, a ``mul_`` loop, a bare ``torch.optim.SGD`` loop, a per-image PIL ``DataLoader``.
The limits sit between the ratios measured on a loaded 2-core machine and 1.5 times them
(benchmarks/README.md has the numbers), so a 1.5x regression of our side fails and load does not.
With ``--benchmark-disable`` each side runs once and only the correctness checks remain.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unlearnbench import (Augment, DeviceLoader, ImageData, Mask, Normalize, TrainRecipe, build_model,
                          fit)
from unlearnbench.datasets.cifar import CIFAR_NORMALIZE
from unlearnbench.run.config import RunConfig, prepare
from unlearnbench.run.api import run_trials
from unlearnbench.train.masks import prunable_weights
from unlearnbench.evaluate.metrics import mia_efficacy, predict
from unlearnbench.train.runtime import Runtime

CPU = Runtime.resolve("cpu", "fp32")


@dataclass(frozen=True)
class Images:
    train: ImageData
    test: ImageData
    normalize: Normalize


@pytest.fixture(scope="module")
def images32() -> Images:
    """2048 training and 4096 test 3x32x32 images of 10 classes, each class a noisy flat
    colour: a tiny CNN learns it within one epoch, despite crops and flips."""
    g = torch.Generator().manual_seed(0)
    colours = torch.rand(10, 3, 1, 1, generator=g) * 255

    def sample(n: int) -> ImageData:
        labels = torch.randint(0, 10, (n,), generator=g)
        noisy = colours[labels] + 30 * torch.randn(n, 3, 32, 32, generator=g)
        return ImageData(noisy.round().clamp(0, 255).to(torch.uint8), labels)

    return Images(sample(2048), sample(4096), Normalize((0.5,) * 3, (0.3,) * 3))


def _tiny_cnn(seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model("tiny_cnn", num_classes=10, in_chans=3, image_size=32)


def _mini_vgg_wide(seed: int = 0) -> nn.Module:
    """The small-scale workload's model: wide enough (32-256 channels) that the memory format
    matters, as in runs; tiny_cnn's 8 channels hid a fall back to NCHW kernels."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model("mini_vgg_wide", num_classes=10, in_chans=3, image_size=32)


def _as_runtime_lays_out(model: nn.Module) -> nn.Module:
    """``model`` in the memory format the CPU runtime gives a run's models (channels_last, as the
    trial's model factory converts them), so our side is timed on the path runs take."""
    return model.to(memory_format=torch.channels_last) if CPU.channels_last else model


def _train_mode_loss(model: nn.Module, loader: DeviceLoader) -> float:
    """Mean cross-entropy with batch statistics, the quantity SGD minimizes (a copy is used,
    so the model's BatchNorm running statistics stay untouched)."""
    probe = copy.deepcopy(model).train()
    with torch.no_grad():
        total = sum(float(F.cross_entropy(probe(x), y, reduction="sum")) for x, y in loader)
    return total / len(loader.data)


def _plain_sgd(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], epochs: int,
               recipe: TrainRecipe) -> nn.Module:
    """The reference training loop: bare ``torch.optim.SGD`` steps over ready-made batches."""
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                          weight_decay=recipe.weight_decay)
    model.train()
    for _ in range(epochs):
        for x, y in batches:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
    return model


@pytest.mark.gate(max_ratio=0.93, reference="bare NCHW SGD loop over the same 16 batches, made in advance")
def test_train_epoch(gate, images32):
    """One epoch (16 steps of 32 images, the small-scale recipe's batch) of the shared SGD loop
    on mini_vgg_wide over the device loader, with crop + flip, in the CPU runtime's
    channels_last layout; the reference runs the same steps in NCHW on batches made beforehand,
    so ours also pays the loader and a fall back to NCHW shows."""
    start = _mini_vgg_wide()
    recipe = TrainRecipe(epochs=1, lr=0.05, batch_size=32)
    train = images32.train.subset(torch.arange(512))

    def loader(seed: int, channels_last: bool) -> DeviceLoader:
        return DeviceLoader(train, normalize=images32.normalize, batch_size=32, shuffle=True,
                            augment=Augment(crop_padding=4, hflip=True),
                            generator=torch.Generator().manual_seed(seed), channels_last=channels_last)
    ours_loader, ready = loader(0, CPU.channels_last), list(loader(1, False))
    plain = DeviceLoader(train, normalize=images32.normalize, batch_size=1024)

    # Ours converts its copy to channels_last inside the timed call, as a run's model factory does.
    trained, _ = gate.compare(lambda m: fit(_as_runtime_lays_out(m), ours_loader, recipe, CPU),
                              lambda m: _plain_sgd(m, ready, 1, recipe),
                              setup=lambda: ((copy.deepcopy(start),), {}), rounds=7)

    changed = [name for name, p in trained.named_parameters()
               if not torch.equal(p, dict(start.named_parameters())[name])]
    assert len(changed) == len(list(start.parameters())), "every parameter must have been updated"
    before, after = _train_mode_loss(start, plain), _train_mode_loss(trained, plain)
    assert after < 0.97 * before, f"one epoch did not reduce the training loss: {before:.3f} -> {after:.3f}"


def _reference_augment(images: torch.Tensor, padding: int, seed: int) -> torch.Tensor:
    """Crop and flip image by image, drawing the same random numbers in the same order."""
    g = torch.Generator().manual_seed(seed)
    n, _, h, w = images.shape
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=g)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=g)
    flip = torch.rand(n, generator=g) < 0.5
    padded = F.pad(images, (padding,) * 4)
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    return torch.where(flip[:, None, None, None], out.flip(3), out)


@pytest.mark.gate(max_ratio=0.49, reference="per-image crop and flip loop, same random draws")
def test_augment_batch(gate):
    """Random crop (zero padding 4) and flip of a 256-image batch, checked image by image."""
    images = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1))
    augment = Augment(crop_padding=4, hflip=True)

    out, expected = gate.compare(lambda: augment(images, torch.Generator().manual_seed(7)),
                                 lambda: _reference_augment(images, 4, seed=7), rounds=101, warmup_rounds=5,
                                 statistic="min")

    assert out.shape == images.shape and out.dtype == torch.uint8
    assert torch.equal(out, expected)
    assert not torch.equal(out, images)


def _plain_logits(model: nn.Module, data: ImageData, batch_size: int) -> torch.Tensor:
    """The reference evaluation: per chunk of images, standardize and run ``model(x)`` in eval
    mode (the same memory traffic as ours, so other processes' cache pressure hits both alike)."""
    model.eval()
    mean = torch.tensor([0.5] * 3).view(1, 3, 1, 1)
    with torch.no_grad():
        return torch.cat([model((chunk.float() / 255 - mean) / 0.3) for chunk in data.images.split(batch_size)])


@pytest.mark.gate(max_ratio=0.8, reference="per chunk of 256 images: standardize, plain NCHW model(x)")
def test_predict(gate, images32):
    """Evaluation logits of mini_vgg_wide on 1024 images, equal to plain forward passes of
    the model: ours as a run computes them on the CPU (channels_last model and batches,
    predict's default batch size), the reference in NCHW chunks of 256, whose activations stay
    in cache (at 1024 a pass's CPU time followed the memory traffic of other processes)."""
    model = _mini_vgg_wide().eval()
    ours_model = _as_runtime_lays_out(copy.deepcopy(model))
    test = images32.test.subset(torch.arange(1024))

    logits, plain = gate.compare(lambda: predict(ours_model, test, images32.normalize, CPU),
                                 lambda: _plain_logits(model, test, batch_size=256), rounds=9)

    assert logits.shape == (len(test), 10)
    torch.testing.assert_close(logits, plain, rtol=1e-4, atol=1e-4)
    assert torch.equal(logits.argmax(1), plain.argmax(1))


def realistic_confidences(seed: int, members: int = 10_000, non_members: int = 10_000,
                          targets: int = 5_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True-label softmax confidences shaped like a trained CIFAR ResNet's: training examples
    sit very close to 1, test examples mostly do, with a tail of misclassified ones."""
    rng = np.random.default_rng(seed)

    def confidence(margin: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + 9.0 * np.exp(-margin))

    member = confidence(rng.normal(10, 2.5, members))
    non_member = confidence(np.where(rng.random(non_members) < 0.93, rng.normal(7, 3, non_members),
                                     rng.normal(-2, 2, non_members)))
    target = confidence(np.where(rng.random(targets) < 0.9, rng.normal(9, 3, targets),
                                 rng.normal(0, 2, targets)))
    return member, non_member, target


def _reference_mia(member: np.ndarray, non_member: np.ndarray, target: np.ndarray) -> float:
    """The paper's attack exactly as its code runs it: one default SVC, one predict call."""
    from sklearn.svm import SVC
    x = np.concatenate([member, non_member]).reshape(-1, 1)
    y = np.concatenate([np.ones(len(member)), np.zeros(len(non_member))])
    attack = SVC(C=3, gamma="auto", kernel="rbf").fit(x, y)
    return 100.0 * float(1.0 - attack.predict(target.reshape(-1, 1)).mean())


@pytest.mark.gate(max_ratio=0.79, reference="plain SVC(C=3, gamma='auto') on the dense column, one predict")
def test_mia_attack(gate):
    """SVC fit on 3k members + 3k non-members and prediction of 1.5k targets; the result equals
    the reference SVC's exactly (same classifier, same inputs)."""
    member, non_member, target = realistic_confidences(seed=0, members=3000, non_members=3000, targets=1500)
    target[:300] = target[300:600]  # repeated values, as saturated confidences give

    value, expected = gate.compare(lambda: mia_efficacy(member, non_member, target),
                                   lambda: _reference_mia(member, non_member, target), rounds=7)

    assert value == expected
    assert 5.0 < value < 60.0, "the attack should call a minority of the targets non-members"


@pytest.mark.gate(max_ratio=1.22, reference="a Python loop of w.mul_(keep) over the prunable weights")
def test_mask_apply(gate):
    """Zeroing the pruned weights of a ResNet-18 (11M prunable weights) at 95% sparsity."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model("resnet18", num_classes=10, in_chans=3, image_size=32)
    weights = prunable_weights(model)
    original = {n: w.detach().clone() for n, w in weights.items()}
    g = torch.Generator().manual_seed(0)
    mask = Mask.from_scores({n: torch.rand(w.shape, generator=g) for n, w in weights.items()}, 0.95)
    apply = mask.bind(model)
    pairs = [(w, mask.keep[n].to(w.dtype)) for n, w in weights.items()]

    @torch.no_grad()
    def plain_loop() -> None:
        for w, keep in pairs:
            w.mul_(keep)

    gate.compare(apply, plain_loop, rounds=41, warmup_rounds=3, statistic="min")

    assert mask.violations(model) == 0
    assert abs(mask.sparsity - 0.95) < 1e-6
    for name, w in weights.items():
        keep = mask.keep[name]
        assert torch.equal(w[keep], original[name][keep]), f"{name}: kept weights changed"
        assert (w[~keep] == 0).all()


def _plain_trial(shape: tuple[int, ...], classes: int, sizes: dict[str, int], original: TrainRecipe,
                 unlearn: TrainRecipe, out: Path) -> dict[str, float]:
    """The reference trial: the same amount of work as ``run`` with FT, written plainly: train
    the original (bare SGD), save it, fine-tune on the retain set, predict every split, fit the
    dense SVC attack, write a JSON record. Random images of the same shape stand in for the data."""
    g = torch.Generator().manual_seed(0)

    def batches(n: int, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        x, y = torch.randn((n, *shape), generator=g), torch.randint(0, classes, (n,), generator=g)
        return list(zip(x.split(size), y.split(size)))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model("tiny_cnn", num_classes=classes, in_chans=shape[0], image_size=shape[1])
    _plain_sgd(model, batches(sizes["train"], original.batch_size), original.epochs, original)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "original.pt", "wb") as f:
        torch.save(model.state_dict(), f)
        os.fsync(f.fileno())
    _plain_sgd(model, batches(sizes["retain"], unlearn.batch_size), unlearn.epochs, unlearn)
    model.eval()
    with torch.no_grad():
        conf = {k: torch.softmax(model(torch.randn((sizes[k], *shape), generator=g)), 1)[:, 0].double().numpy()
                for k in ("forget", "retain", "test")}
    mia = _reference_mia(conf["retain"][:sizes["test"]], conf["test"], conf["forget"])
    with open(out / "record.json", "w") as f:
        json.dump({"MIA": mia, "conf": {k: v.tolist() for k, v in conf.items()}}, f)
        f.flush()
        os.fsync(f.fileno())
    return {"MIA": mia}


@pytest.mark.gate(max_ratio=1.4, reference="the same trial's work in plain code: bare SGD, dense SVC, JSON")
def test_full_tiny_run(gate, tmp_path: Path):
    """A whole trial: train the original, fine-tune it (FT), evaluate, write the record."""
    counter = iter(range(1000))

    def fresh_config() -> RunConfig:
        round_dir = tmp_path / f"round{next(counter)}"  # empty cache: the original is trained
        return RunConfig(method="ft", dataset="synthetic", forget="class:0", seeds=(0,),
                         cache_dir=round_dir / "cache", output_dir=round_dir / "results",
                         device="cpu", precision="fp32")

    plan = prepare(fresh_config())
    data = plan.dataset.load()
    (probe,) = run_trials(fresh_config())
    sizes = {"train": probe.split.train, "retain": probe.split.retain, "forget": probe.split.forget,
             "test": probe.split.test}
    shape = tuple(data.train.images.shape[1:])

    records, _ = gate.compare(
        run_trials, lambda config: _plain_trial(shape, data.num_classes, sizes, plan.recipe,
                                         plan.unlearner.train_recipe(SimpleNamespace(recipe=plan.recipe)),
                                         Path(config.output_dir)),
        setup=lambda: ((fresh_config(),), {}), rounds=7)

    (record,) = records
    m = SimpleNamespace(**record.metrics)
    assert all(0.0 <= v <= 100.0 for v in (m.UA, m.MIA, m.RA, m.TA))
    assert m.RTE > 0 and not record.timings.original_cached
    assert record.split.forget == 58 and record.split.forget + record.split.retain == record.split.train
    assert m.RA > 70.0, f"FT should keep the retain set learned (RA={m.RA:.1f})"
    assert len(list(tmp_path.glob("round*/results/*.json"))) >= 1


# -- the data path against a reference-style DataLoader ----------------------------------------
class _PilDataset(torch.utils.data.Dataset):
    """The classic CIFAR input pipeline: uint8 array -> PIL image -> torchvision transforms."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        from torchvision import transforms as T
        self.images = images.permute(0, 2, 3, 1).numpy()  # HWC, as PIL wants
        self.labels = labels
        self.transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
                                    T.ToTensor(), T.Normalize(CIFAR_NORMALIZE.mean, CIFAR_NORMALIZE.std)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image
        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


@pytest.mark.gate(max_ratio=0.105, reference="DataLoader with per-image PIL transforms, num_workers=0")
def test_loader_vs_pil_dataloader(gate):
    """Our batch pipeline (gather, crop, flip, normalize) against per-image PIL transforms in
    a single-process DataLoader, over the same 1024 uint8 images."""
    g = torch.Generator().manual_seed(0)
    data = ImageData(torch.randint(0, 256, (1024, 3, 32, 32), dtype=torch.uint8, generator=g),
                     torch.randint(0, 10, (1024,), generator=g))
    ours = DeviceLoader(data, normalize=CIFAR_NORMALIZE, batch_size=256, shuffle=True,
                        augment=Augment(crop_padding=4, hflip=True), generator=g)
    reference = torch.utils.data.DataLoader(_PilDataset(data.images, data.labels), batch_size=256,
                                            shuffle=True, num_workers=0)

    batches, reference_batches = gate.compare(lambda: list(ours), lambda: list(reference), rounds=9,
                                                statistic="min")

    (x, y), (rx, ry) = batches[0], reference_batches[0]
    assert x.shape == rx.shape and x.dtype == rx.dtype and y.dtype == ry.dtype
    assert sum(len(b[1]) for b in batches) == len(data) == sum(len(b[1]) for b in reference_batches)
    # Same value range: both map 0..255 through the same per-channel standardization.
    lowest = CIFAR_NORMALIZE(torch.zeros((1, 3, 1, 1), dtype=torch.uint8)).flatten()
    highest = CIFAR_NORMALIZE(torch.full((1, 3, 1, 1), 255, dtype=torch.uint8)).flatten()
    assert torch.allclose(rx.amin((0, 2, 3)), lowest, atol=1e-5)
    assert torch.allclose(x.amax((0, 2, 3)), highest, atol=1e-5)
