"""The ``backdoor`` probe: attack success rate and clean test accuracy (the paper's
Trojan-removal figure; Gu et al. 2017, Jia et al. 2023).

ASR is the share of triggered test images whose true class is not the target that the model
assigns to the target; the trigger is the backdoor scenario's (``unlearnbench.scenarios.backdoor``),
which asks for this probe with its target. ``clean_acc`` is the accuracy on the whole, clean
test set.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from ...data.access import DataAccess
from ...data.dataset import LoadedDataset
from ...errors import ConfigError
from ...params import param
from ...probe import Probe, ProbeContext
from ...scenarios.backdoor import TRIGGER, Trigger, triggered_non_target
from ..metrics import accuracy, predict


class BackdoorProbe(Probe):
    target: int = param(0, ge=0, help="the backdoor's target label")

    trigger: ClassVar[Trigger] = TRIGGER

    def setup(self, data: LoadedDataset, access: DataAccess) -> None:
        if self.target >= data.num_classes:
            raise ConfigError(f"backdoor probe: target label {self.target} does not exist; "
                              f"expected 0..{data.num_classes - 1}")

    def identity(self) -> dict[str, Any]:
        return {"probe": "backdoor", "target": self.target, "trigger": vars(self.trigger)}

    def measure(self, model: nn.Module, context: ProbeContext) -> dict[str, float]:
        triggered = triggered_non_target(context.test, self.target, self.trigger)
        logits = predict(model, triggered, context.normalize, context.runtime)
        clean = predict(model, context.test, context.normalize, context.runtime)
        return {"ASR": 100.0 * (logits.argmax(1) == self.target).double().mean().item(),
                "clean_acc": accuracy(clean, context.test.labels.cpu())}
