"""Reading a dataset the way a run does: decoded once per set of files (in the run's checkpoint
cache), then cut to the run's subset sizes. A run reads its own dataset so, and a probe with a
dataset of its own (the ``transfer`` probe's downstream data) reads it through
:class:`DataAccess`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..storage import CACHE_FORMAT, CheckpointCache
from .dataset import Dataset, LoadedDataset
from .splits import subsample
from .tensors import Augment, ImageData, Normalize


@dataclass(frozen=True)
class DataAccess:
    """How a probe with a dataset of its own reads it, the way the run reads its own.

    ``root`` is the run's data folder (``--data-root``) and ``download`` whether a missing
    dataset may be downloaded; :meth:`load` decodes a dataset (once per set of files, in the
    run's cache) and cuts it to the run's subset sizes.
    """

    root: Path | None
    download: bool
    cache: Any  # the run's checkpoint cache
    train_size: int | None = None
    test_size: int | None = None

    def load(self, dataset: Dataset, name: str, root: Path | None = None) -> LoadedDataset:
        """``dataset`` (registered as ``name``) from ``root``, default the run's data folder."""
        data = load_dataset(dataset, name, root or self.root, self.download, self.cache)
        return subsample(data, self.train_size, self.test_size)


def load_dataset(dataset: Dataset, name: str, root: Path | None, download: bool,
                 cache: CheckpointCache) -> LoadedDataset:
    """A dataset's tensors; decoded once per set of files when the dataset fingerprints them."""
    root = Path(root).expanduser() if root else None
    fingerprint = dataset.fingerprint(root)
    if fingerprint is None:
        return dataset.load(root, download)
    description = {"format": CACHE_FORMAT, "kind": "dataset", "layout": 2, "dataset": name,
                   "params": dataset.get_params(), "root": str(root.resolve()),
                   "files": fingerprint}
    with cache.lock("datasets", description):  # one process decodes, the others load
        cached = cache.load("datasets", description)
        if cached is not None:
            return LoadedDataset(
                ImageData(cached["train_images"], cached["train_labels"]),
                ImageData(cached["test_images"], cached["test_labels"]), tuple(cached["class_names"]),
                Normalize(tuple(cached["mean"]), tuple(cached["std"])),
                Augment(**cached["augment"]))
        data = dataset.load(root, download)
        cache.save("datasets", description, {
            "train_images": data.train.images, "train_labels": data.train.labels,
            "test_images": data.test.images, "test_labels": data.test.labels,
            "class_names": list(data.class_names), "mean": list(data.normalize.mean),
            "std": list(data.normalize.std), "augment": dataclasses.asdict(data.augment)})
        return data
