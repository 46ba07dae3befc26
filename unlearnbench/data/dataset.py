"""The dataset contract: a registered, configurable source of uint8 train/test images."""

from __future__ import annotations

import abc
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import ClassVar

from ..errors import DataNotFoundError
from ..params import Configurable
from ..recipe import TrainRecipe
from .streaming import DiskImages
from .tensors import Augment, ImageData, Normalize, tensor_hash


@dataclass(frozen=True)
class LoadedDataset:
    train: ImageData
    test: ImageData
    class_names: tuple[str, ...]
    normalize: Normalize
    augment: Augment

    @functools.cached_property
    def content_hash(self) -> str:
        """Hash of the training images and labels, computed once per loaded dataset.

        Images streamed from disk are hashed by their files' identities, never decoded.
        """
        images = self.train.images
        if isinstance(images, DiskImages):
            joined = f"{images.content_hash()}/{tensor_hash(self.train.labels)}"
            return hashlib.sha256(joined.encode()).hexdigest()[:16]
        return tensor_hash(images, self.train.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_chans(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train.images.shape[-1])


class Dataset(Configurable, abc.ABC):
    """A dataset plugin: declares defaults, and loads train/test splits from a local root.

    ``load`` must never download unless ``download`` is true; a missing dataset raises
    :class:`~unlearnbench.errors.DataNotFoundError` saying where it looked and how to get it.
    """

    default_arch: ClassVar[str] = "resnet18"

    @abc.abstractmethod
    def load(self, root: Path | None, download: bool = False) -> LoadedDataset:
        """Read the train and test splits."""

    @abc.abstractmethod
    def default_recipe(self) -> TrainRecipe:
        """How the original model is trained on this dataset by default."""

    def fingerprint(self, root: Path | None) -> list | None:
        """A JSON-able identity of the files ``load`` reads (names, sizes, mtimes), or None.

        When given, the decoded tensors are cached, so slow decoding (e.g. 60,000 JPEGs)
        happens once per set of files, not once per run. Datasets that decode from files
        list them in :meth:`data_files`.
        """
        if root is None:
            return None
        root = Path(root).expanduser()
        files = self.data_files(root)
        return [[str(f.relative_to(root)), f.stat().st_size, f.stat().st_mtime_ns]
                for f in files] or None

    def data_files(self, root: Path) -> list[Path]:
        """The files under ``root`` that ``load`` would read; none: nothing is cached."""
        return []


def guarded_download(fetch: Callable[[], object], dataset: str, root: Path) -> None:
    """Run ``fetch`` (a torchvision download, say); a network or file failure becomes one
    :class:`~unlearnbench.errors.DataNotFoundError` line saying what to do instead."""
    try:
        fetch()
    except (OSError, RuntimeError, ValueError) as exc:  # urllib's URLError is an OSError
        reason = getattr(exc, "reason", None) or exc
        raise DataNotFoundError(f"{dataset}: downloading to {root} failed ({type(exc).__name__}: "
                                f"{reason}); without a network, copy the files under --data-root "
                                f"yourself") from exc
