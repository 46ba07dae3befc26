"""SVHN, cropped digits (Netzer et al. 2011): 73,257 training and 26,032 test 32x32 images of
house-number digits, 10 classes, from a local root in either on-disk layout:

* torchvision's: ``train_32x32.mat`` and ``test_32x32.mat`` in the root (MATLAB files: ``X``
  is ``(32, 32, 3, N)`` uint8, ``y`` is ``(N, 1)`` with label 10 meaning digit 0, mapped to 0
  as torchvision does), which ``download=True`` fetches through
  ``torchvision.datasets.SVHN`` for users who have a network;
* Hugging Face ``datasets`` parquet files (``train*.parquet`` and ``test*.parquet`` under the
  root; columns ``image`` and ``label``, as in the hub's ``svhn`` ``cropped_digits`` config;
  when the root also holds the ``full_numbers`` config, the ``cropped_digits`` folder wins);
* a folder written by Hugging Face ``datasets``' ``save_to_disk`` (a ``DatasetDict`` with
  ``train`` and ``test`` splits, or ``train/`` and ``test/`` saved ``Dataset`` folders) with
  the same columns.

The 531,131 "extra" images are not used: the unlearning literature trains on the standard
training split.

Normalization: the per-channel mean (0.4377, 0.4438, 0.4728) and std (0.1980, 0.2010,
0.1970) of the SVHN training pixels, the values commonly used with SVHN in torchvision-based
training scripts. The reference code of Jia et al. 2023 (``utils.py``) uses the same mean with
a smaller std, (0.1201, 0.1231, 0.1052), whose derivation it does not document.

Augmentation: random crop with 4 px zero padding, and no horizontal flip, since a mirrored
digit is not the same digit (the reference code trains SVHN without any augmentation).

Recipe: the paper's CIFAR-10 recipe (182 epochs, SGD lr 0.1, momentum 0.9, weight decay
5e-4, batch 256, lr x0.1 at 50% and 75%). paper.md documents no SVHN-specific recipe, and
the reference code's training defaults (``arg_parser.py``) are the same for every dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..data.tensors import Augment, ImageData, Normalize
from ..data.dataset import Dataset, LoadedDataset, guarded_download
from ..errors import CorruptFileError, DataNotFoundError
from ..recipe import TrainRecipe
from ._parquet import (parquet_files, read_saved_train_test, read_train_test, saved_files,
                       saved_split_folders)
from .cifar import PAPER_RECIPE

SVHN_NORMALIZE = Normalize((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970))
MAT_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
HUB_CONFIG = "cropped_digits"


class SVHN(Dataset):
    default_arch: ClassVar[str] = "resnet18"

    def load(self, root: Path | None, download: bool = False) -> LoadedDataset:
        if root is None:
            raise DataNotFoundError("svhn needs --data-root (a folder holding train_32x32.mat and "
                                    "test_32x32.mat, or train/test parquet files)")
        root = Path(root).expanduser()
        has_mat = any((root / f).is_file() for f in MAT_FILES.values())
        has_parquet = bool(parquet_files(root, "train", HUB_CONFIG))
        saved = saved_split_folders(root)
        if not has_mat and not has_parquet and not saved and download:
            import torchvision.datasets  # only a download needs torchvision's datasets
            for split in MAT_FILES:
                guarded_download(lambda: torchvision.datasets.SVHN(str(root), split=split, download=True),
                         "svhn", root)
            has_mat = True
        if has_mat:
            train, test = (_read_mat(root / MAT_FILES[s]) for s in ("train", "test"))
            names = tuple(str(k) for k in range(10))
        elif saved:
            train, test, names = read_saved_train_test(saved, ("label",), "svhn")
        elif has_parquet and parquet_files(root, "test", HUB_CONFIG):
            train, test, names = read_train_test(root, ("label",), "svhn", config=HUB_CONFIG)
        else:
            raise DataNotFoundError(
                f"svhn not found under {root}: looked for {root / MAT_FILES['train']} and "
                f"{root / MAT_FILES['test']} (torchvision's layout) and for train*.parquet + "
                f"test*.parquet files (Hugging Face datasets' layout, e.g. its cropped_digits "
                f"config) and for a datasets save_to_disk folder (dataset_dict.json, or train/ "
                f"and test/ holding state.json). Pass --download to fetch it with torchvision, or point --data-root at "
                f"a folder holding one of these layouts.")
        return LoadedDataset(train, test, names, SVHN_NORMALIZE, Augment(crop_padding=4, hflip=False))

    def default_recipe(self) -> TrainRecipe:
        return PAPER_RECIPE

    def data_files(self, root: Path) -> list[Path]:
        mats = [root / f for f in MAT_FILES.values() if (root / f).is_file()]
        if not mats and (saved := saved_split_folders(root)):
            return saved_files(saved)
        return mats or parquet_files(root, "train", HUB_CONFIG) + parquet_files(root, "test", HUB_CONFIG)


def _read_mat(path: Path) -> ImageData:
    """One split of torchvision's layout; label 10 (digit 0) becomes 0."""
    import scipy.io  # only the .mat files of torchvision's layout need it

    if not path.is_file():
        raise DataNotFoundError(f"svhn: {path} is missing (torchvision's layout needs both "
                                f"{' and '.join(MAT_FILES.values())})")
    try:
        mat = scipy.io.loadmat(str(path))
        x, y = mat["X"], mat["y"]
    except Exception as exc:
        raise CorruptFileError(f"svhn: cannot read {path}: {exc}") from exc
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or y.reshape(-1).shape != (x.shape[3],):
        raise CorruptFileError(f"svhn: {path} holds X of shape {x.shape} and y of shape {y.shape}; "
                               f"expected (32, 32, 3, N) and (N, 1)")
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1), dtype=np.uint8)  # -> (N, 3, H, W)
    labels = y.reshape(-1).astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() > 10):
        raise CorruptFileError(f"svhn: {path} holds labels {labels.min()}..{labels.max()}; "
                               f"expected 1..10 (10 is the digit 0)")
    labels[labels == 10] = 0
    return ImageData(torch.from_numpy(images), torch.from_numpy(labels))
