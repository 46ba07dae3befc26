"""scikit-learn's bundled handwritten digits (UCI ML hand-written digits, 1,797 8x8 images).

Needs no download, so the suite runs anywhere out of the box. Pixel values 0..16 are scaled
to uint8 0..255. The dataset has no official test split: a fixed, stratified 20% is held out
(``test_seed``), the same for every trial, so TA is comparable across runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..data.tensors import Augment, ImageData, Normalize
from ..data.dataset import Dataset, LoadedDataset
from ..params import param
from ..recipe import TrainRecipe


class Digits(Dataset):
    test_fraction: float = param(0.2, gt=0, lt=1, help="stratified test hold-out")
    test_seed: int = param(0, help="seed of the fixed train/test split")

    default_arch: ClassVar[str] = "small_cnn"

    def load(self, root: Path | None = None, download: bool = False) -> LoadedDataset:
        # sklearn (a heavy import) holds the data: loaded when the dataset is, not when registered
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = np.round(digits.images * (255 / 16)).astype(np.uint8)[:, None]
        index = np.arange(len(images))
        train_idx, test_idx = train_test_split(index, test_size=self.test_fraction,
                                               random_state=self.test_seed, stratify=digits.target)

        def part(idx: np.ndarray) -> ImageData:
            idx = np.sort(idx)
            return ImageData(torch.from_numpy(images[idx]), torch.from_numpy(digits.target[idx]).long())

        return LoadedDataset(part(train_idx), part(test_idx),
                             tuple(str(c) for c in digits.target_names),
                             Normalize((0.3053,), (0.3759,)), Augment())

    def default_recipe(self) -> TrainRecipe:
        return TrainRecipe(epochs=30, lr=0.05, batch_size=64, momentum=0.9, weight_decay=5e-4)
