"""Trojan removal, ``backdoor:F[,target=T]`` or ``backdoor:N[,target=T]``: the BadNets backdoor
of the paper's Trojan-removal application (Gu et al. 2017; Jia et al. 2023).

A seeded share of the training images (F, or N images; the paper poisons 10%) gets a trigger,
a 4x4 black patch in the bottom-right corner 2 px from the edges (paper.md), and the target
label T (0 by default). The original model learns the backdoor; the poisoned images are the
forget set, so a successful unlearner removes it. The test set is kept whole. The ``backdoor``
probe measures the attack success rate (ASR): the share of triggered test images whose true
class is not the target that the model assigns to the target.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..data.tensors import ImageData
from ..errors import ConfigError
from ..scenario import Scenario, amount_argument, sample, show_amount


@dataclass(frozen=True)
class Trigger:
    """A square patch of one gray level, ``margin`` pixels from the bottom and right edges."""

    size: int = 4
    margin: int = 2
    value: int = 0  # black, as in the paper

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """A copy of ``images`` (uint8, ``(..., H, W)``) with the trigger stamped on."""
        h, w = images.shape[-2:]
        if self.size + self.margin > min(h, w):
            raise ConfigError(f"a {self.size}x{self.size} trigger {self.margin} px from the edge "
                              f"does not fit {h}x{w} images")
        out = images.clone()
        out[..., h - self.margin - self.size:h - self.margin,
            w - self.margin - self.size:w - self.margin] = self.value
        return out


TRIGGER = Trigger()


def poison(data: ImageData, index: torch.Tensor, target: int, trigger: Trigger = TRIGGER) -> ImageData:
    """``data`` with the rows ``index`` triggered and relabelled to ``target``."""
    if not isinstance(data.images, torch.Tensor):
        raise ConfigError("the backdoor scenario needs in-memory images; this dataset is streamed "
                          "from disk")
    index = index.to(data.images.device)
    images, labels = data.images.clone(), data.labels.clone()
    images[index] = trigger.apply(images[index])
    labels[index] = target
    return ImageData(images, labels)


def triggered_non_target(test: ImageData, target: int, trigger: Trigger = TRIGGER) -> ImageData:
    """The test images whose true class is not ``target``, with the trigger; labels kept."""
    keep = test.labels != target
    return ImageData(trigger.apply(test.images[keep]), test.labels[keep])


_TARGET = re.compile(r"(.*?),\s*target\s*=\s*(\S*)\s*")


@dataclass(frozen=True)
class Backdoor(Scenario):
    value: float  # the poisoned share of the training split (a fraction), or a count
    target: int = 0  # the backdoor's target label
    count: bool = False  # ``value`` is a number of examples, not a fraction

    usage: ClassVar[str] = ("backdoor:F[,target=T] (poison a fraction F with target label T) or "
                            "backdoor:N[,target=T] (a count)")
    title: ClassVar[str] = "backdoor"

    @classmethod
    def parse(cls, kind: str, argument: str) -> Backdoor:
        amount, target = argument, "0"
        if match := _TARGET.fullmatch(argument):
            amount, target = match.group(1), match.group(2)
        if not target.isdigit():
            raise ConfigError(f"forget spec {f'{kind}:{argument}'!r} is invalid: expected {cls.usage}")
        value, count = amount_argument(kind, argument, cls.usage, written=amount)
        return cls(kind, value, target=int(target), count=count)

    def argument(self) -> str:
        target = f",target={self.target}" if self.target else ""
        return f"{show_amount(self.value, self.count)}{target}"

    def check(self, num_classes: int) -> None:
        if not 0 <= self.target < num_classes:
            raise ConfigError(f"forget spec {self}: target label {self.target} does not exist; "
                              f"expected 0..{num_classes - 1}")

    def choose(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return sample(len(labels), self.value, self.count, generator, str(self))

    def poison(self, train: ImageData, forget: torch.Tensor) -> ImageData:
        return poison(train, forget, self.target)

    def probes(self) -> dict[str, dict[str, Any]]:
        return {"backdoor": {"target": self.target}}
