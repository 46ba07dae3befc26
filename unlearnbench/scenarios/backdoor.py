"""The BadNets backdoor of the paper's Trojan-removal application (Gu et al. 2017; Jia et al. 2023).

A seeded share of the training images (10% by default) gets a trigger, a 4x4 black patch in
the bottom-right corner 2 px from the edges (paper.md), and the target label (0 by default).
The original model learns the backdoor; the poisoned images are the forget set, so a
successful unlearner removes it. The attack success rate (ASR) is the share of triggered test
images whose true class is not the target that the model assigns to the target.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.tensors import ImageData
from ..errors import ConfigError


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
