"""CPU speed benchmarks of the hot paths, each also a correctness check.

Sizes are small so the whole file runs in about a minute on two cores; ``benchmarks/gate.sh``
compares the timings with the stored baseline. With ``--benchmark-disable`` every function
runs once and only the assertions remain. The reference-vs-ours comparison of the data path
is a ratio measured within one run, so it holds on any machine.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unlearnbench import (Augment, DeviceLoader, ImageData, Mask, Normalize, TrainRecipe, build_model,
                          fit)
from unlearnbench.datasets.cifar import CIFAR_NORMALIZE
from unlearnbench.run.config import RunConfig
from unlearnbench.run.trial import run
from unlearnbench.train.masks import prunable_weights
from unlearnbench.evaluate.metrics import mia_efficacy, predict
from unlearnbench.train.runtime import Runtime

CPU = Runtime.resolve("cpu", "fp32")
# On one CPU thread our batch pipeline was about 6x faster than per-image PIL transforms when
# this file was written (benchmarks/README.md); half of that is the floor.
MIN_LOADER_SPEEDUP = 3.0


@dataclass(frozen=True)
class Images:
    train: ImageData
    test: ImageData
    normalize: Normalize


@pytest.fixture(scope="module")
def images32() -> Images:
    """2048 training and 5000 test 3x32x32 images of 10 classes, each class a noisy flat
    colour: a tiny CNN learns it within one epoch, despite crops and flips."""
    g = torch.Generator().manual_seed(0)
    colours = torch.rand(10, 3, 1, 1, generator=g) * 255

    def sample(n: int) -> ImageData:
        labels = torch.randint(0, 10, (n,), generator=g)
        noisy = colours[labels] + 30 * torch.randn(n, 3, 32, 32, generator=g)
        return ImageData(noisy.round().clamp(0, 255).to(torch.uint8), labels)

    return Images(sample(2048), sample(5000), Normalize((0.5,) * 3, (0.3,) * 3))


def _tiny_cnn(seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model("tiny_cnn", num_classes=10, in_chans=3, image_size=32)


def _train_mode_loss(model: nn.Module, loader: DeviceLoader) -> float:
    """Mean cross-entropy with batch statistics, the quantity SGD minimizes (a copy is used,
    so the model's BatchNorm running statistics stay untouched)."""
    probe = copy.deepcopy(model).train()
    with torch.no_grad():
        total = sum(float(F.cross_entropy(probe(x), y, reduction="sum")) for x, y in loader)
    return total / len(loader.data)


def test_train_epoch(benchmark, images32):
    """One epoch (16 steps) of the shared SGD loop over the device loader, with crop + flip."""
    start = _tiny_cnn()
    recipe = TrainRecipe(epochs=1, lr=0.1, batch_size=128)
    loader = DeviceLoader(images32.train, normalize=images32.normalize, batch_size=128,
                          shuffle=True, augment=Augment(crop_padding=4, hflip=True),
                          generator=torch.Generator().manual_seed(0))
    plain = DeviceLoader(images32.train, normalize=images32.normalize, batch_size=1024)

    trained = benchmark.pedantic(lambda m: fit(m, loader, recipe, CPU), rounds=5, warmup_rounds=1,
                                 setup=lambda: ((copy.deepcopy(start),), {}))

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


def test_augment_batch(benchmark):
    """Random crop (zero padding 4) and flip of a 256-image batch, checked image by image."""
    images = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1))
    augment = Augment(crop_padding=4, hflip=True)

    out = benchmark(lambda: augment(images, torch.Generator().manual_seed(7)))

    assert out.shape == images.shape and out.dtype == torch.uint8
    assert torch.equal(out, _reference_augment(images, 4, seed=7))
    assert not torch.equal(out, images)


def test_predict(benchmark, images32):
    """Evaluation logits of 5k images, equal to plain forward passes of the model."""
    model = _tiny_cnn().eval()
    test = images32.test

    logits = benchmark.pedantic(lambda: predict(model, test, images32.normalize, CPU), rounds=5,
                                warmup_rounds=1)

    with torch.no_grad():
        x = (test.images.float() / 255 - torch.tensor([0.5] * 3).view(1, 3, 1, 1)) / 0.3
        plain = torch.cat([model(chunk) for chunk in x.split(1024)])
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


@pytest.fixture(scope="module")
def mia_case():
    member, non_member, target = realistic_confidences(seed=0)
    target[:1000] = target[1000:2000]  # repeated values, as saturated confidences give
    return member, non_member, target, _reference_mia(member, non_member, target)


def test_mia_attack(benchmark, mia_case):
    """SVC fit on 10k members + 10k non-members and prediction of 5k targets; the result
    equals the reference SVC's exactly (same classifier, same inputs)."""
    member, non_member, target, expected = mia_case

    value = benchmark.pedantic(lambda: mia_efficacy(member, non_member, target), rounds=2)

    assert value == expected
    assert 5.0 < value < 60.0, "the attack should call a minority of the targets non-members"


def test_mask_apply(benchmark):
    """Zeroing the pruned weights of a ResNet-18 (11M prunable weights) at 95% sparsity."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model("resnet18", num_classes=10, in_chans=3, image_size=32)
    weights = prunable_weights(model)
    original = {n: w.detach().clone() for n, w in weights.items()}
    g = torch.Generator().manual_seed(0)
    mask = Mask.from_scores({n: torch.rand(w.shape, generator=g) for n, w in weights.items()}, 0.95)
    apply = mask.bind(model)

    benchmark(apply)

    assert mask.violations(model) == 0
    assert abs(mask.sparsity - 0.95) < 1e-6
    for name, w in weights.items():
        keep = mask.keep[name]
        assert torch.equal(w[keep], original[name][keep]), f"{name}: kept weights changed"
        assert (w[~keep] == 0).all()


def test_full_tiny_run(benchmark, tmp_path: Path):
    """A whole trial: train the original, fine-tune it (FT), evaluate, write the record."""
    counter = iter(range(1000))

    def fresh_dirs():
        round_dir = tmp_path / f"round{next(counter)}"  # empty cache: the original is trained
        config = RunConfig(method="ft", dataset="synthetic", forget="class:0", seeds=(0,),
                           cache_dir=round_dir / "cache", output_dir=round_dir / "results",
                           device="cpu", precision="fp32")
        return (config,), {}

    records = benchmark.pedantic(run, setup=fresh_dirs, rounds=5, warmup_rounds=1)

    (record,) = records
    m = record.metrics
    assert all(0.0 <= v <= 100.0 for v in (m.UA, m.MIA, m.RA, m.TA))
    assert m.RTE > 0 and not record.timings.original_cached
    assert record.split.forget == 58 and record.split.forget + record.split.retain == record.split.train
    assert m.RA > 70.0, f"FT should keep the retain set learned (RA={m.RA:.1f})"
    assert len(list(tmp_path.glob("round*/results/*.json"))) >= 1


# -- the data path against a reference-style DataLoader, as a ratio within one run ----------
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


def _epoch_seconds(batches: Callable[[], object], repeats: int) -> float:
    """Best of ``repeats`` passes over every batch (the least disturbed by other processes)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _batch in batches():
            pass
        best = min(best, time.perf_counter() - start)
    return best


def test_loader_vs_pil_dataloader(benchmark):
    """Our batch pipeline (gather, crop, flip, normalize) against per-image PIL transforms in
    a single-process DataLoader, over the same 2048 uint8 images; ours must stay much faster."""
    g = torch.Generator().manual_seed(0)
    data = ImageData(torch.randint(0, 256, (2048, 3, 32, 32), dtype=torch.uint8, generator=g),
                     torch.randint(0, 10, (2048,), generator=g))
    ours = DeviceLoader(data, normalize=CIFAR_NORMALIZE, batch_size=256, shuffle=True,
                        augment=Augment(crop_padding=4, hflip=True), generator=g)
    reference = torch.utils.data.DataLoader(_PilDataset(data.images, data.labels), batch_size=256,
                                            shuffle=True, num_workers=0)

    batches = benchmark(lambda: list(ours))

    x, y = batches[0]
    rx, ry = next(iter(reference))
    assert x.shape == rx.shape and x.dtype == rx.dtype and y.dtype == ry.dtype
    assert sum(len(b[1]) for b in batches) == len(data)
    # Same value range: both map 0..255 through the same per-channel standardization.
    lowest = CIFAR_NORMALIZE(torch.zeros((1, 3, 1, 1), dtype=torch.uint8)).flatten()
    highest = CIFAR_NORMALIZE(torch.full((1, 3, 1, 1), 255, dtype=torch.uint8)).flatten()
    assert torch.allclose(rx.amin((0, 2, 3)), lowest, atol=1e-5)
    assert torch.allclose(x.amax((0, 2, 3)), highest, atol=1e-5)
    speedup = _epoch_seconds(lambda: reference, 2) / _epoch_seconds(lambda: ours, 5)
    print(f"\ndevice loader vs PIL DataLoader (num_workers=0): {speedup:.1f}x faster")
    assert speedup > MIN_LOADER_SPEEDUP, f"our loader is only {speedup:.1f}x faster than PIL transforms"
