"""CIFAR-10 and CIFAR-100 from a local root, in either on-disk layout:

* torchvision's (``cifar-10-batches-py/`` or ``cifar-100-python/`` with python pickles), which
  ``download=True`` fetches through ``torchvision.datasets`` for users who have a network;
* Hugging Face ``datasets`` parquet files (``train*.parquet`` and ``test*.parquet`` anywhere
  under the root; an image column of encoded bytes and an integer label column);
* a folder written by Hugging Face ``datasets``' ``save_to_disk`` (a ``DatasetDict`` with
  ``train`` and ``test`` splits, or ``train/`` and ``test/`` saved ``Dataset`` folders) with
  the same columns.

The original-model recipe follows Jia et al. 2023 (paper.md): SGD lr 0.1, momentum 0.9,
weight decay 5e-4, batch 256, 182 epochs, lr x0.1 at epochs 91 and 136, random crop (pad 4)
and horizontal flip. Each dataset is normalized with its own training-set per-channel mean
and std: CIFAR-10's from paper.md; CIFAR-100's are the widely used values computed on its
50,000 training images, (0.50708, 0.48655, 0.44092) / (0.26733, 0.25644, 0.27615) (e.g.
weiaicunzai/pytorch-cifar100, ``conf/global_settings.py``), rounded to 4 digits. (The
reference code's 0.4866 for the green mean is a rounding slip of the same value.)
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..data.tensors import Augment, ImageData, Normalize
from ..data.dataset import Dataset, LoadedDataset, guarded_download
from ..errors import CorruptFileError, DataNotFoundError
from ..params import param
from ..recipe import TrainRecipe
from ._parquet import (parquet_files, read_saved_train_test, read_train_test, saved_files,
                       saved_split_folders)

# The paper's original-model recipe (paper.md), also used for SVHN.
PAPER_RECIPE = TrainRecipe(epochs=182, lr=0.1, momentum=0.9, weight_decay=5e-4, batch_size=256,
                           schedule="step", milestones=(0.5, 0.75), lr_decay=0.1)
IMAGE_SHAPE = (3, 32, 32)  # (channels, height, width)
CIFAR_NORMALIZE = Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100_NORMALIZE = Normalize((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))


class _Cifar(Dataset):
    default_arch: ClassVar[str] = "resnet18"
    folder: ClassVar[str]
    train_files: ClassVar[tuple[str, ...]]
    test_files: ClassVar[tuple[str, ...]]
    meta_file: ClassVar[str]
    label_key: ClassVar[str]
    names_key: ClassVar[str]
    torchvision_class: ClassVar[str]
    normalize: ClassVar[Normalize]
    parquet_label: ClassVar[str] = "label"
    augment: bool = param(True, help="random crop (pad 4) + flip in training; false: none, for a "
                                     "small model that must fit its training set as the paper's does")

    def load(self, root: Path | None, download: bool = False) -> LoadedDataset:
        if root is None:
            raise DataNotFoundError(f"{self.dataset_name} needs --data-root (a folder holding "
                                    f"{self.folder}/, train/test parquet files or a save_to_disk folder)")
        root = Path(root).expanduser()
        saved = saved_split_folders(root)
        if not (root / self.folder).is_dir() and not saved and not parquet_files(root, "train") and download:
            import torchvision.datasets  # only a download needs torchvision's datasets
            guarded_download(lambda: getattr(torchvision.datasets, self.torchvision_class)(
                str(root), train=True, download=True), self.dataset_name, root)
        if (root / self.folder).is_dir():
            train, test, names = self._load_pickles(root / self.folder)
        elif saved:
            train, test, names = read_saved_train_test(saved, (self.parquet_label, "label"),
                                                       self.dataset_name)
        elif parquet_files(root, "train") and parquet_files(root, "test"):
            train, test, names = read_train_test(root, (self.parquet_label, "label"), self.dataset_name)
        else:
            raise DataNotFoundError(
                f"{self.dataset_name} not found under {root}: looked for {root / self.folder}/ "
                f"(torchvision's layout), for train*.parquet + test*.parquet files (Hugging Face "
                f"datasets' layout) and for a datasets save_to_disk folder (dataset_dict.json, or "
                f"train/ and test/ holding state.json). Pass --download to fetch it with "
                f"torchvision, or point --data-root at a folder holding one of these layouts.")
        for part, split in ((train, "train"), (test, "test")):
            self._check_shape(part, split, root)
        augment = Augment(crop_padding=4, hflip=True) if self.augment else Augment()
        return LoadedDataset(train, test, names, self.normalize, augment)

    def _check_shape(self, part: ImageData, split: str, root: Path) -> None:
        """CIFAR's images are 32x32 RGB: other sizes (a resized copy, another dataset) would
        train without a word, on statistics and a model built for 32x32."""
        shape = tuple(part.images.shape[1:])
        if shape != IMAGE_SHAPE:
            channels, height, width = (*shape, None, None, None)[:3]
            raise CorruptFileError(f"{self.dataset_name}: the {split} images under {root} are "
                                   f"{height}x{width} with {channels} channels; expected 32x32 RGB "
                                   f"(3 channels), CIFAR's size")

    def default_recipe(self) -> TrainRecipe:
        return PAPER_RECIPE

    def data_files(self, root: Path) -> list[Path]:
        if (root / self.folder).is_dir():
            return sorted((root / self.folder).glob("*"))
        if saved := saved_split_folders(root):
            return saved_files(saved)
        return parquet_files(root, "train") + parquet_files(root, "test")

    @property
    def dataset_name(self) -> str:
        return type(self).__name__

    def _load_pickles(self, folder: Path) -> tuple[ImageData, ImageData, tuple[str, ...]]:
        def read(name: str) -> dict:
            path = folder / name
            if not path.is_file():
                raise DataNotFoundError(f"{self.dataset_name}: {path} is missing")
            try:
                with path.open("rb") as f:
                    return pickle.load(f, encoding="bytes")
            except Exception as exc:
                raise CorruptFileError(f"{self.dataset_name}: cannot read {path}: {exc}") from exc

        def part(names: tuple[str, ...]) -> ImageData:
            batches = [read(n) for n in names]
            data = np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32)
            labels = np.concatenate([np.asarray(b[self.label_key.encode()]) for b in batches])
            return ImageData(torch.from_numpy(data.astype(np.uint8)), torch.from_numpy(labels).long())

        meta = read(self.meta_file)
        names = tuple(n.decode() if isinstance(n, bytes) else n for n in meta[self.names_key.encode()])
        return part(self.train_files), part(self.test_files), names


class Cifar10(_Cifar):
    """CIFAR-10 (Krizhevsky 2009): 50,000 training and 10,000 test 32x32 images, 10 classes."""

    folder: ClassVar[str] = "cifar-10-batches-py"
    train_files: ClassVar[tuple[str, ...]] = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_files: ClassVar[tuple[str, ...]] = ("test_batch",)
    meta_file: ClassVar[str] = "batches.meta"
    label_key: ClassVar[str] = "labels"
    names_key: ClassVar[str] = "label_names"
    torchvision_class: ClassVar[str] = "CIFAR10"
    normalize: ClassVar[Normalize] = CIFAR_NORMALIZE


class Cifar100(_Cifar):
    """CIFAR-100 (Krizhevsky 2009), fine labels: 100 classes of 500 training images each."""

    folder: ClassVar[str] = "cifar-100-python"
    train_files: ClassVar[tuple[str, ...]] = ("train",)
    test_files: ClassVar[tuple[str, ...]] = ("test",)
    meta_file: ClassVar[str] = "meta"
    label_key: ClassVar[str] = "fine_labels"
    names_key: ClassVar[str] = "fine_label_names"
    torchvision_class: ClassVar[str] = "CIFAR100"
    parquet_label: ClassVar[str] = "fine_label"  # the hub's cifar100 also has coarse_label
    normalize: ClassVar[Normalize] = CIFAR100_NORMALIZE
