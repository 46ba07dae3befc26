"""The probe contract: an extra measurement taken on the model before and after unlearning.

The four metrics say how well a method forgets; a probe asks what unlearning did to a
property of the model that a scenario or an application cares about: a backdoor's attack
success rate (the paper's Trojan-removal application) or the quality of the model's features
for a downstream task (its transfer-learning application). Every probe is measured twice, on
the model handed to the unlearner and on the unlearned model, and both values land in the
record's ``probes`` field under the names :meth:`Probe.measure` returns.

A probe is a class registered in the entry-point group ``unlearnbench.probes`` (the built-ins
``backdoor`` and ``transfer`` are declared there exactly like a plugin's). A run asks for one
by name and parameters (``--probe transfer:dataset=svhn``); a scenario asks for the probes it
needs (:meth:`unlearnbench.scenario.Scenario.probes`). Its parameters are typed and validated
like every component's (:class:`~unlearnbench.params.Configurable`)::

    class WeightNorm(Probe):
        \"\"\"The L2 norm of all weights.\"\"\"
        scale: float = param(1.0, gt=0)

        def measure(self, model, context):
            norm = sum(float(p.detach().double().pow(2).sum()) for p in model.parameters())
            return {"weight_norm": self.scale * norm ** 0.5}
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .params import Configurable

if TYPE_CHECKING:
    from torch import nn

    from .data.access import DataAccess
    from .data.dataset import LoadedDataset
    from .data.tensors import ImageData, Normalize
    from .train.runtime import Runtime


@dataclass(frozen=True)
class ProbeContext:
    """What a probe may look at besides the model: the whole test set, on the run device."""

    test: ImageData
    normalize: Normalize
    runtime: Runtime


class Probe(Configurable, abc.ABC):
    """Base class of every probe (see the module docstring)."""

    def check(self, access: DataAccess) -> None:
        """Errors found before any data is read (a missing folder, ...)."""

    def resolved(self, access: DataAccess) -> dict[str, Any]:
        """Everything about this probe that can change its values, as JSON: a probe the run
        asks for adds it to the trial's identity. Default: its parameters."""
        return {"params": self.get_params()}

    def setup(self, data: LoadedDataset, access: DataAccess) -> None:
        """Once per configuration, before its first trial trains anything: read what the probe
        needs and check it fits the run's ``data`` (raise :class:`ConfigError` if not)."""

    def identity(self) -> dict[str, Any]:
        """JSON-able description: with the model's, it keys the cached "before" measurement,
        so it must change whenever the values could (data included)."""
        return {"probe": f"{type(self).__module__}:{type(self).__qualname__}",
                "params": self.get_params()}

    @abc.abstractmethod
    def measure(self, model: nn.Module, context: ProbeContext) -> dict[str, float]:
        """Named values (in percent where they are shares); the model is left as it was."""
