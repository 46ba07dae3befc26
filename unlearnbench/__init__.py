"""unlearnbench: a benchmark suite for machine unlearning, built around "Model Sparsity Can
Simplify Machine Unlearning" (Jia, Liu et al., NeurIPS 2023).

The public names below are imported on first use (PEP 562), so ``import unlearnbench`` and the
command line's help, listings and argument errors do not pay for importing torch.

From Python, :func:`run_trials` runs the seeds of a :class:`RunConfig` (what ``unlearnbench run``
does; ``unlearnbench.run`` is the package that runs trials, hence the name) and
:func:`load_records` reads records back; the registries (``UNLEARNERS``, ..., ``EXECUTORS``) list
and look up every component.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("unlearnbench")  # the installed distribution's
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

# public name -> the module (relative to this package) that defines it
_EXPORTS: dict[str, str] = {
    "DATASETS": ".components", "MODELS": ".components", "PRUNERS": ".components",
    "UNLEARNERS": ".components", "METRICS": ".components", "build_model": ".components",
    "PROBES": ".components", "SCENARIOS": ".components", "EXECUTORS": ".components",
    "REGISTRIES": ".components",
    "RunConfig": ".run.config", "run_trials": ".run.api", "Executor": ".run.executors",
    "RunRecord": ".report.records", "load_records": ".report.records",
    "Augment": ".data.tensors", "DeviceLoader": ".data.tensors", "ImageData": ".data.tensors",
    "Normalize": ".data.tensors",
    "Dataset": ".data.dataset", "LoadedDataset": ".data.dataset",
    "ConfigError": ".errors", "CorruptFileError": ".errors", "DataNotFoundError": ".errors",
    "DuplicateNameError": ".errors", "PluginLoadError": ".errors", "UnknownNameError": ".errors",
    "UnlearnbenchError": ".errors",
    "Metric": ".metric", "PopulationMetric": ".metric", "TrialEvaluation": ".metric",
    "TrialMetric": ".metric",
    "Mask": ".train.masks", "prunable_weights": ".train.masks",
    "Configurable": ".params", "param": ".params",
    "Pruner": ".pruner", "PruningTask": ".train.tasks",
    "DataAccess": ".data.access", "Probe": ".probe", "ProbeContext": ".probe",
    "Scenario": ".scenario",
    "Choice": ".space", "Dimension": ".space", "LogUniform": ".space", "Uniform": ".space",
    "TrainRecipe": ".recipe", "cross_entropy": ".train.loop", "fit": ".train.loop",
    "Unlearner": ".unlearner", "UnlearnerTags": ".unlearner", "UnlearningTask": ".train.tasks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what type checkers and IDEs see
    from .components import (DATASETS, EXECUTORS, METRICS, MODELS, PROBES, PRUNERS, REGISTRIES,
                             SCENARIOS, UNLEARNERS, build_model)
    from .data.dataset import Dataset, LoadedDataset
    from .data.tensors import Augment, DeviceLoader, ImageData, Normalize
    from .errors import (ConfigError, CorruptFileError, DataNotFoundError, DuplicateNameError,
                         PluginLoadError, UnknownNameError, UnlearnbenchError)
    from .metric import Metric, PopulationMetric, TrialEvaluation, TrialMetric
    from .params import Configurable, param
    from .data.access import DataAccess
    from .probe import Probe, ProbeContext
    from .space import Choice, Dimension, LogUniform, Uniform
    from .pruner import Pruner
    from .report.records import RunRecord, load_records
    from .run.api import run_trials
    from .run.config import RunConfig
    from .run.executors import Executor
    from .recipe import TrainRecipe
    from .scenario import Scenario
    from .train.loop import cross_entropy, fit
    from .train.masks import Mask, prunable_weights
    from .train.tasks import PruningTask, UnlearningTask
    from .unlearner import Unlearner, UnlearnerTags
