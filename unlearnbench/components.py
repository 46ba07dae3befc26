"""The registries of components and executors, and building a model from an architecture name.

Nothing here names a component: built-ins arrive through the same entry points as plugins.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Protocol

from torch import nn

from .data.dataset import Dataset
from .errors import ConfigError, UnknownNameError
from .pruner import Pruner
from .registry import Registry, subclass_of
from .unlearner import Unlearner


class ModelBuilder(Protocol):
    def __call__(self, *, num_classes: int, in_chans: int, image_size: int) -> nn.Module: ...


DATASETS: Registry[type[Dataset]] = Registry(
    "dataset", "unlearnbench.datasets", subclass_of(Dataset), "a subclass of unlearnbench.Dataset")
MODELS: Registry[ModelBuilder] = Registry(
    "model", "unlearnbench.models", callable, "a callable (*, num_classes, in_chans, image_size) -> nn.Module")
PRUNERS: Registry[type[Pruner]] = Registry(
    "pruner", "unlearnbench.pruners", subclass_of(Pruner), "a subclass of unlearnbench.Pruner")
UNLEARNERS: Registry[type[Unlearner]] = Registry(
    "unlearner", "unlearnbench.unlearners", subclass_of(Unlearner), "a subclass of unlearnbench.Unlearner")


def _is_executor(obj: Any) -> bool:
    from .run.executors import Executor  # not at import time: executors import the harness
    return isinstance(obj, type) and issubclass(obj, Executor)


EXECUTORS: Registry[type] = Registry(
    "executor", "unlearnbench.executors", _is_executor, "a subclass of unlearnbench.run.executors.Executor")

REGISTRIES: dict[str, Registry[Any]] = {
    "datasets": DATASETS, "models": MODELS, "pruners": PRUNERS, "unlearners": UNLEARNERS,
    "executors": EXECUTORS}


def timm_names(pattern: str | None = None) -> list[str]:
    import timm
    return timm.list_models(pattern or "*")


def check_arch(arch: str) -> None:
    """Fail early (before any training) on an architecture name nobody knows."""
    if arch in MODELS:
        return
    if not timm_names(arch):
        raise UnknownNameError("model", arch, MODELS.names() + timm_names())


def build_model(arch: str, *, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    """A registered model, else any timm architecture (with the CIFAR stem for small inputs)."""
    check_arch(arch)
    if arch in MODELS:
        return MODELS.get(arch)(num_classes=num_classes, in_chans=in_chans, image_size=image_size)
    return timm_model(arch, num_classes=num_classes, in_chans=in_chans, image_size=image_size)


def timm_model(arch: str, *, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    """A randomly initialized timm model; for inputs up to 64 px a ResNet gets the stem of
    the CIFAR ResNets (3x3 stride-1 first conv, no max-pool), as in Jia et al. 2023."""
    import timm
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_chans)
    if image_size <= 64 and isinstance(getattr(model, "conv1", None), nn.Conv2d) \
            and hasattr(model, "maxpool"):
        out_channels = model.conv1.out_channels
        model.conv1 = nn.Conv2d(in_chans, out_channels, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif image_size <= 64 and fnmatch.fnmatch(arch, "*resnet*"):
        raise ConfigError(f"cannot give {arch!r} the small-input stem: no conv1/maxpool found")
    return model
