"""The ``transfer`` probe: linear-probe accuracy of the model's features on a downstream dataset
(the paper's transfer-learning application, Jia et al. 2023).

The features are the input of the classification head (the penultimate layer), taken in eval
mode without augmentation; downstream images are normalized like the model's own training data.
The probe is scikit-learn's multinomial logistic regression on standardized features, a convex
problem, so its result depends only on the features.

Parameters: ``dataset`` (a registered dataset's name), ``root`` (its local folder; default the
run's ``--data-root``), and any parameter of that dataset, e.g.
``--probe transfer:dataset=synthetic,num_classes=3``. The downstream data is cut to the run's
subset sizes and must have the upstream images' shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...components import DATASETS
from ...data.access import DataAccess
from ...data.dataset import Dataset, LoadedDataset
from ...data.tensors import DeviceLoader, ImageData, Normalize
from ...errors import ConfigError, DataNotFoundError
from ...identity import data_fingerprint
from ...params import param
from ...probe import Probe, ProbeContext
from ...storage import check_writable_folder
from ...train.masks import classifier
from ...train.runtime import Runtime

MAX_ITER = 1000  # the logistic regression's iterations (part of the cached measurement's key)


class TransferProbe(Probe):
    dataset: str = param(dataclasses.MISSING, help="the downstream dataset (a registered name)")
    root: str | None = param(None, help="its local folder (default: the run's --data-root)")

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None = None) -> TransferProbe:
        """Its own parameters; every other one is the downstream dataset's."""
        params = dict(params or {})
        own = {name: params.pop(name) for name in ("dataset", "root") if name in params}
        probe = super().from_params(own)
        probe.downstream = DATASETS.get(probe.dataset).from_params(params)
        return probe

    def __post_init__(self) -> None:
        super().__post_init__()
        self.downstream: Dataset = DATASETS.get(self.dataset)()
        self.data: LoadedDataset | None = None

    def _root(self, access: DataAccess) -> Path | None:
        return Path(self.root).expanduser() if self.root else access.root

    def check(self, access: DataAccess) -> None:
        if self.root is None:
            return
        root = Path(self.root).expanduser()
        if access.download:  # the download creates it
            check_writable_folder(root, "transfer probe root")
        elif not root.is_dir():
            raise DataNotFoundError(f"transfer probe root {root} "
                                    f"{'is a file' if root.exists() else 'does not exist'}; "
                                    f"expected the folder holding the dataset {self.dataset!r}")

    def resolved(self, access: DataAccess) -> dict[str, Any]:
        return {"dataset": self.dataset, "params": self.downstream.get_params(),
                "data": data_fingerprint(self.downstream, self._root(access))}

    def setup(self, data: LoadedDataset, access: DataAccess) -> None:
        """Read the downstream data; it must fit the upstream model (before any training)."""
        downstream = access.load(self.downstream, self.dataset, self._root(access))
        if (downstream.in_chans, downstream.image_size) != (data.in_chans, data.image_size):
            raise ConfigError(
                f"transfer dataset {self.dataset!r} has {downstream.in_chans}-channel "
                f"{downstream.image_size}px images; the model takes {data.in_chans}-channel "
                f"{data.image_size}px images: pick a downstream dataset of the same shape")
        self.data = downstream

    def identity(self) -> dict[str, Any]:
        data = self._loaded()
        return {"probe": "transfer", "dataset": self.dataset, "data": data.content_hash,
                "test": len(data.test), "max_iter": MAX_ITER}

    def measure(self, model: nn.Module, context: ProbeContext) -> dict[str, float]:
        # sklearn (a heavy import) loads when a probe is measured, not with the registry's classes
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        data = self._loaded()
        train = features(model, data.train.to(context.runtime.device), context.normalize,
                         context.runtime)
        test = features(model, data.test.to(context.runtime.device), context.normalize,
                        context.runtime)
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=MAX_ITER))
        probe.fit(train, data.train.labels.numpy())
        predicted = probe.predict(test)
        return {"transfer_acc": 100.0 * float(np.mean(predicted == data.test.labels.numpy()))}

    def _loaded(self) -> LoadedDataset:
        if self.data is None:
            raise ConfigError("the transfer probe has no downstream data: call setup() first")
        return self.data


@torch.no_grad()
def features(model: nn.Module, data: ImageData, normalize: Normalize, runtime: Runtime,
             batch_size: int = 1024) -> np.ndarray:
    """The classification head's input for every image (computed in fp32 whatever the
    runtime's precision, returned as float64, on the CPU)."""
    head = classifier(model)
    if head is None:
        raise ConfigError(f"{type(model).__name__} has no classification head to take features from")
    captured: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda m, inputs, out: captured.append(
        inputs[0].detach().flatten(1).float().cpu()))
    was_training = model.training
    model.eval()
    try:
        for x, _ in DeviceLoader(data, normalize=normalize, batch_size=batch_size,
                                 channels_last=runtime.channels_last):
            model(x)
    finally:
        hook.remove()
        model.train(was_training)
    return torch.cat(captured).double().numpy()
