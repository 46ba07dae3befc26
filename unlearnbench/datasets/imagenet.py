"""ImageNet-1k (ILSVRC 2012; Russakovsky et al. 2015), streamed from disk in batches.

Layouts under the root, in this order of preference:

* torchvision's ImageFolder tree: ``train/<class>/*.JPEG`` and ``val/<class>/*.JPEG`` (what
  ``torchvision.datasets.ImageNet`` prepares from the official archives). Class names are the
  sorted folder names of ``train/`` and label ``k`` is the k-th of them, exactly as
  ``torchvision.datasets.ImageFolder``; ``val/`` folders are matched to them by name.
  This is the layout for full-scale training: a shuffled batch reads one file per image.
* Hugging Face ``datasets`` parquet files: ``train*.parquet`` and ``validation*.parquet`` (or
  ``val*.parquet``), or ``train/*.parquet`` and ``validation/*.parquet``, anywhere under the
  root; columns ``image`` (a ``{bytes, path}`` struct) and ``label``; class names from the
  parquet metadata. Shuffled access reads whole row groups, so it is slow at full
  scale (see :mod:`unlearnbench.data.streaming`); fine for evaluation and small subsets.

ImageNet cannot be downloaded automatically (its license requires registering at
image-net.org), so ``download`` is not supported. The validation set serves as the test set.

Images are never decoded into memory as a whole: the dataset's images are
:class:`~unlearnbench.data.streaming.DiskImages`, decoded per batch with the usual evaluation
transform (RGB, shorter side to ``resize`` = 256 with antialiased bilinear filtering, center
crop ``crop`` = 224). So there is no decoded-tensor cache either (:meth:`ImageNet.fingerprint`
returns None). Training augments on the device: torchvision's RandomResizedCrop (scale
(0.08, 1), ratio (3/4, 4/3)) and a horizontal flip, applied to the stored 224 px center crop
rather than to the full image (:class:`~unlearnbench.data.tensors.Augment`).

Recipe: the standard ResNet ImageNet recipe (He et al. 2016; torchvision's reference
``train.py`` defaults): 90 epochs, SGD lr 0.1, momentum 0.9, weight decay 1e-4, batch 256,
lr x0.1 at epochs 30 and 60. Normalization: torchvision's ImageNet mean (0.485, 0.456, 0.406)
and std (0.229, 0.224, 0.225). Default architecture: timm's ResNet-18 with its ImageNet stem
(7x7 stride-2 conv and max-pool; the CIFAR stem is only used for inputs up to 64 px).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..data.tensors import Augment, ImageData, Normalize
from ..data.dataset import Dataset, LoadedDataset
from ..errors import ConfigError, DataNotFoundError
from ..params import param
from ..data.streaming import IMAGE_EXTENSIONS, CenterCrop, DiskImages, FolderStore, ParquetStore
from ..recipe import TrainRecipe
from ._parquet import IMAGE_COLUMNS, class_names, parquet_files, pick_column, read_labels, read_schema

IMAGENET_NORMALIZE = Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


class ImageNet(Dataset):
    resize: int = param(256, ge=1, help="shorter side of each image after resizing (pixels)")
    crop: int = param(224, ge=1, help="side of the stored center crop, the model's input size")

    default_arch: ClassVar[str] = "resnet18"

    def validate(self) -> None:
        if self.crop > self.resize:
            raise ConfigError(f"ImageNet.crop={self.crop} is invalid: it must not exceed "
                              f"resize={self.resize}")

    def load(self, root: Path | None, download: bool = False) -> LoadedDataset:
        if root is None:
            raise DataNotFoundError("imagenet needs --data-root (a folder holding train/ and val/ "
                                    "class folders, or train*.parquet and validation*.parquet files)")
        root = Path(root).expanduser()
        transform = CenterCrop(self.resize, self.crop)
        if _has_class_folders(root / "train"):
            train, test, names = _image_folders(root, transform)
        elif parquet_files(root, "train") and _validation_files(root):
            train, test, names = _parquet(root, transform)
        else:
            raise DataNotFoundError(
                f"imagenet not found under {root}: looked for {root / 'train'}/ and {root / 'val'}/ "
                f"holding one folder per class (torchvision's ImageFolder layout) and for "
                f"train*.parquet + validation*.parquet (or val*.parquet) files (Hugging Face "
                f"datasets' layout). ImageNet cannot be downloaded automatically"
                f"{' (--download does not apply)' if download else ''}: get it from "
                f"image-net.org and point --data-root at a folder holding either layout.")
        return LoadedDataset(train, test, names, IMAGENET_NORMALIZE,
                             Augment(hflip=True, resized_crop_scale=(0.08, 1.0)))

    def default_recipe(self) -> TrainRecipe:
        return TrainRecipe(epochs=90, lr=0.1, momentum=0.9, weight_decay=1e-4, batch_size=256,
                           schedule="step", milestones=(1 / 3, 2 / 3), lr_decay=0.1)

    def fingerprint(self, root: Path | None) -> list | None:
        """None: the images are streamed, never decoded into a tensor that could be cached."""
        return None


def _has_class_folders(folder: Path) -> bool:
    """Whether ``folder`` looks like an ImageFolder split (cheap: never walks the tree)."""
    return folder.is_dir() and any(e.is_dir() for e in os.scandir(folder))


def _image_folders(root: Path, transform: CenterCrop) -> tuple[ImageData, ImageData, tuple[str, ...]]:
    if not (root / "val").is_dir():
        raise DataNotFoundError(f"imagenet: {root / 'val'}/ is missing (the ImageFolder layout "
                                f"needs train/ and val/, each with one folder per class)")
    classes, train = _scan(root / "train", None)
    _, test = _scan(root / "val", classes)
    return (ImageData(DiskImages.of(train[0], transform), train[1]),
            ImageData(DiskImages.of(test[0], transform), test[1]), tuple(classes))


def _scan(folder: Path, classes: list[str] | None) -> tuple[list[str], tuple[FolderStore, torch.Tensor]]:
    """The image files of an ImageFolder tree, class by class, each class's files sorted (as
    torchvision lists them); labels index ``classes`` (default: the sorted folder names)."""
    found = sorted(e.name for e in os.scandir(folder) if e.is_dir())
    if not found:
        raise DataNotFoundError(f"imagenet: {folder}/ holds no class folders; expected "
                                f"{folder}/<class>/<image> (ImageNet's validation images must be "
                                f"sorted into class folders, as torchvision.datasets.ImageNet does)")
    if classes is None:
        classes = found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataNotFoundError(f"imagenet: {folder}/ has class folders that the training set "
                                f"lacks: {unknown[:5]}{' ...' if len(unknown) > 5 else ''}")
    index = {name: k for k, name in enumerate(classes)}
    files: list[bytes] = []
    labels: list[int] = []
    empty = []
    for name in found:
        count = len(files)
        for dirpath, _, names in sorted(os.walk(folder / name, followlinks=True)):
            relative = os.path.relpath(dirpath, folder)
            files += [os.fsencode(os.path.join(relative, f)) for f in sorted(names)
                      if f.lower().endswith(IMAGE_EXTENSIONS)]
        labels += [index[name]] * (len(files) - count)
        if len(files) == count:
            empty.append(name)
    if empty:
        raise DataNotFoundError(f"imagenet: class folders without images under {folder}/: "
                                f"{empty[:5]}{' ...' if len(empty) > 5 else ''} (extensions "
                                f"{', '.join(IMAGE_EXTENSIONS)})")
    store = FolderStore(folder, np.array(files, dtype=bytes))
    return classes, (store, torch.tensor(labels, dtype=torch.long))


def _validation_files(root: Path) -> list[Path]:
    return parquet_files(root, "validation") or parquet_files(root, "val")


def _parquet(root: Path, transform: CenterCrop) -> tuple[ImageData, ImageData, tuple[str, ...]]:
    parts, names = [], None
    for files in (parquet_files(root, "train"), _validation_files(root)):
        schema = read_schema(files[0], "imagenet")
        image_column = pick_column(schema, IMAGE_COLUMNS, files, "imagenet", "an image column")
        label_column = pick_column(schema, ("label",), files, "imagenet", "a label column")
        store = ParquetStore(files, image_column)
        names = names or class_names(schema, label_column)
        labels = read_labels(files, label_column, "imagenet", len(names) if names else None)
        parts.append(ImageData(DiskImages.of(store, transform), labels))
    train, test = parts
    if not names:
        names = [str(k) for k in range(int(max(train.labels.max(), test.labels.max())) + 1)]
    return train, test, tuple(names)
