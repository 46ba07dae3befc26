"""Probes: extra measurements taken on the model before and after unlearning.

The four metrics say how well a method forgets; a probe asks what unlearning did to a
property of the model that a scenario or an application cares about: a backdoor's attack
success rate (the paper's Trojan-removal application) or the quality of the model's features
for a downstream task (its transfer-learning application). Every probe is measured twice,
on the model handed to the unlearner and on the unlearned model, and both values land in the
record's ``probes`` field.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..scenarios.backdoor import TRIGGER, Trigger, triggered_non_target
from ..data.tensors import DeviceLoader, ImageData, Normalize
from ..data.dataset import LoadedDataset
from ..errors import ConfigError
from ..train.masks import classifier
from .metrics import accuracy, predict
from ..train.runtime import Runtime


@dataclass(frozen=True)
class ProbeContext:
    """What a probe may look at besides the model: the whole test set, on the run device."""

    test: ImageData
    normalize: Normalize
    runtime: Runtime


class Probe(abc.ABC):
    @abc.abstractmethod
    def identity(self) -> dict[str, Any]:
        """JSON-able description: with the model's, it keys the cached "before" measurement."""

    @abc.abstractmethod
    def measure(self, model: nn.Module, context: ProbeContext) -> dict[str, float]:
        """Named values in percent."""


@dataclass(frozen=True)
class BackdoorProbe(Probe):
    """Attack success rate and clean test accuracy (the paper's Trojan-removal figure)."""

    target: int
    trigger: Trigger = TRIGGER

    def identity(self) -> dict[str, Any]:
        return {"probe": "backdoor", "target": self.target, "trigger": vars(self.trigger)}

    def measure(self, model: nn.Module, context: ProbeContext) -> dict[str, float]:
        triggered = triggered_non_target(context.test, self.target, self.trigger)
        logits = predict(model, triggered, context.normalize, context.runtime)
        clean = predict(model, context.test, context.normalize, context.runtime)
        return {"ASR": 100.0 * (logits.argmax(1) == self.target).double().mean().item(),
                "clean_acc": accuracy(clean, context.test.labels.cpu())}


class TransferProbe(Probe):
    """Linear-probe accuracy of the model's features on a downstream dataset.

    The features are the input of the classification head (the penultimate layer), taken in
    eval mode without augmentation; downstream images are normalized like the model's own
    training data. The probe is scikit-learn's multinomial logistic regression on standardized
    features, a convex problem, so its result depends only on the features.
    """

    def __init__(self, name: str, data: LoadedDataset, *, max_iter: int = 1000):
        self.name, self.data, self.max_iter = name, data, max_iter

    def identity(self) -> dict[str, Any]:
        return {"probe": "transfer", "dataset": self.name, "data": self.data.content_hash,
                "test": len(self.data.test), "max_iter": self.max_iter}

    def check(self, in_chans: int, image_size: int) -> None:
        """The downstream images must fit the upstream model (raised before any training)."""
        if (self.data.in_chans, self.data.image_size) != (in_chans, image_size):
            raise ConfigError(
                f"transfer dataset {self.name!r} has {self.data.in_chans}-channel "
                f"{self.data.image_size}px images; the model takes {in_chans}-channel "
                f"{image_size}px images: pick a downstream dataset of the same shape")

    def measure(self, model: nn.Module, context: ProbeContext) -> dict[str, float]:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        train = features(model, self.data.train.to(context.runtime.device), context.normalize,
                         context.runtime)
        test = features(model, self.data.test.to(context.runtime.device), context.normalize,
                        context.runtime)
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=self.max_iter))
        probe.fit(train, self.data.train.labels.numpy())
        predicted = probe.predict(test)
        return {"transfer_acc": 100.0 * float(np.mean(predicted == self.data.test.labels.numpy()))}


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
