"""A seeded synthetic image dataset for fast tests: noisy copies of one template per class.

Each class has a random uint8 template; an example is its template plus Gaussian pixel
noise, clipped to 0..255. With the default noise the classes overlap a little, so a model
must learn, and memorization of individual training examples is measurable.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch

from ..data.tensors import Augment, ImageData, Normalize
from ..data.dataset import Dataset, LoadedDataset
from ..params import param
from ..recipe import TrainRecipe


class Synthetic(Dataset):
    num_classes: int = param(4, ge=2, help="number of classes")
    train_per_class: int = param(64, ge=2, help="training examples per class")
    test_per_class: int = param(32, ge=1, help="test examples per class")
    image_size: int = param(8, ge=4, help="height and width in pixels")
    channels: int = param(1, ge=1, help="image channels")
    noise: float = param(80.0, ge=0, help="std of the pixel noise (uint8 scale)")
    data_seed: int = param(0, help="seed of the templates and samples (fixed across trials)")

    default_arch: ClassVar[str] = "tiny_cnn"

    def load(self, root: Path | None = None, download: bool = False) -> LoadedDataset:
        g = torch.Generator().manual_seed(self.data_seed)
        shape = (self.channels, self.image_size, self.image_size)
        templates = torch.rand((self.num_classes, *shape), generator=g) * 255

        def sample(per_class: int) -> ImageData:
            labels = torch.arange(self.num_classes).repeat_interleave(per_class)
            noise = torch.randn((len(labels), *shape), generator=g) * self.noise
            images = (templates[labels] + noise).round().clamp(0, 255).to(torch.uint8)
            order = torch.randperm(len(labels), generator=g)
            return ImageData(images[order], labels[order])

        train, test = sample(self.train_per_class), sample(self.test_per_class)
        return LoadedDataset(train, test, tuple(f"class{k}" for k in range(self.num_classes)),
                             Normalize((0.5,) * self.channels, (0.3,) * self.channels), Augment())

    def default_recipe(self) -> TrainRecipe:
        return TrainRecipe(epochs=15, lr=0.05, batch_size=32)
