"""The registries of components and executors, and building a model from an architecture name.

Nothing here names a component: built-ins arrive through the same entry points as plugins.
This module sits beside the contracts, above the shared ground's generic
:class:`~unlearnbench.registry.Registry`: every layer that looks a component up (a forget spec's
scenario in ``data``, the metrics in ``evaluate``, everything in ``run``) imports it from below.
It imports no component and no torch: each registry names its base class as a ``"module:attr"``
string, imported when a component is first checked (the executors' base class too, which lives
with the executors in ``run``), so listing the registries stays fast.
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Any, Protocol

from .errors import ConfigError, UnknownNameError
from .registry import Registry, subclass_of

if TYPE_CHECKING:
    from torch import nn

    from .data.dataset import Dataset
    from .metric import Metric
    from .probe import Probe
    from .pruner import Pruner
    from .scenario import Scenario
    from .unlearner import Unlearner


class ModelBuilder(Protocol):
    def __call__(self, *, num_classes: int, in_chans: int, image_size: int) -> nn.Module: ...


DATASETS: Registry[type[Dataset]] = Registry(
    "dataset", "unlearnbench.datasets", subclass_of("unlearnbench.data.dataset:Dataset"),
    "a subclass of unlearnbench.Dataset")
MODELS: Registry[ModelBuilder] = Registry(
    "model", "unlearnbench.models", callable, "a callable (*, num_classes, in_chans, image_size) -> nn.Module")
PRUNERS: Registry[type[Pruner]] = Registry(
    "pruner", "unlearnbench.pruners", subclass_of("unlearnbench.pruner:Pruner"),
    "a subclass of unlearnbench.Pruner")
UNLEARNERS: Registry[type[Unlearner]] = Registry(
    "unlearner", "unlearnbench.unlearners", subclass_of("unlearnbench.unlearner:Unlearner"),
    "a subclass of unlearnbench.Unlearner")
METRICS: Registry[type[Metric]] = Registry(
    "metric", "unlearnbench.metrics", subclass_of("unlearnbench.metric:Metric"),
    "a subclass of unlearnbench.TrialMetric (or of unlearnbench.metric.PopulationMetric)")

SCENARIOS: Registry[type[Scenario]] = Registry(
    "scenario", "unlearnbench.scenarios", subclass_of("unlearnbench.scenario:Scenario"),
    "a subclass of unlearnbench.Scenario")
PROBES: Registry[type[Probe]] = Registry(
    "probe", "unlearnbench.probes", subclass_of("unlearnbench.probe:Probe"),
    "a subclass of unlearnbench.Probe")


EXECUTORS: Registry[type] = Registry(
    "executor", "unlearnbench.executors", subclass_of("unlearnbench.run.executors:Executor"),
    "a subclass of unlearnbench.run.executors.Executor")

REGISTRIES: dict[str, Registry[Any]] = {
    "datasets": DATASETS, "models": MODELS, "pruners": PRUNERS, "unlearners": UNLEARNERS,
    "executors": EXECUTORS, "metrics": METRICS, "scenarios": SCENARIOS, "probes": PROBES}


def timm_names(pattern: str | None = None) -> list[str]:
    import timm  # timm (and torch) load only when a name is not a registered model: `ls` stays light
    return timm.list_models(pattern or "*")


def check_arch(arch: str) -> None:
    """Fail early (before any training) on an architecture name nobody knows. Names are
    matched exactly (a timm name may carry a ``.tag``): ``resnet1?`` is no wildcard here."""
    if arch in MODELS:
        return
    import timm  # timm (and torch) load only when a name is not a registered model: `ls` stays light
    if not timm.is_model(arch):
        raise UnknownNameError("model", arch, MODELS.names() + timm_names())


def build_model(arch: str, *, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    """A registered model, else any timm architecture (with the CIFAR stem for small inputs)."""
    check_arch(arch)
    if arch in MODELS:
        return MODELS.get(arch)(num_classes=num_classes, in_chans=in_chans, image_size=image_size)
    return timm_model(arch, num_classes=num_classes, in_chans=in_chans, image_size=image_size)


def timm_model(arch: str, *, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    """A randomly initialized timm model for ``image_size`` px inputs, with the initialization of
    the reference ResNets. An architecture that cannot take such inputs is refused here, before
    any training, with a :class:`ConfigError`.

    - Architectures that fix their input size at construction (ViT, DeiT, Swin, ...) are built
      for ``image_size``.
    - ``zero_init_last``: timm starts the last BatchNorm weight of every residual branch at 0;
      the reference ResNet-18 of Jia et al. 2023 (torchvision's layout) starts it at 1. The
      zeros cut each branch out of the network at initialization, which breaks SynFlow (it
      scores the absolute-valued network: every residual conv would score exactly 0). It is
      turned off for every model that has it.
    - for inputs up to 64 px a ResNet gets the stem of the CIFAR ResNets (3x3 stride-1 first
      conv, no max-pool), as in Jia et al. 2023; the new conv is initialized like timm's other
      convs and the reference's (Kaiming normal, fan-out, ReLU gain).
    """
    # timm and torch load when a model is built, not with the registries (`ls` stays light)
    import timm
    from torch import nn

    def create(**kwargs: Any) -> nn.Module:
        return timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_chans,
                                 **kwargs)

    def sized(**kwargs: Any) -> nn.Module:
        try:
            return create(img_size=image_size, **kwargs)
        except TypeError as exc:  # the architecture takes any input size
            if "img_size" not in str(exc):
                raise
            return create(**kwargs)

    try:
        model = sized()
        if any(hasattr(m, "zero_init_last") for m in model.modules()):
            model = sized(zero_init_last=False)
    except Exception as exc:
        raise ConfigError(f"--arch {arch!r} cannot be built for {in_chans}-channel {image_size}px "
                          f"images: {type(exc).__name__}: {_first_line(exc)}") from exc
    if image_size <= 64 and isinstance(getattr(model, "conv1", None), nn.Conv2d) \
            and hasattr(model, "maxpool"):
        out_channels = model.conv1.out_channels
        model.conv1 = nn.Conv2d(in_chans, out_channels, 3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
        model.maxpool = nn.Identity()
    elif image_size <= 64 and fnmatch.fnmatch(arch, "*resnet*"):
        raise ConfigError(f"cannot give {arch!r} the small-input stem: no conv1/maxpool found")
    _check_forward(model, arch, in_chans, image_size)
    return model


_RUNS_AT: set[tuple[str, int, int]] = set()


def _check_forward(model: nn.Module, arch: str, in_chans: int, image_size: int) -> None:
    """One forward pass of two blank images (eval mode, no gradients: no weight, statistic or
    random state changes), once per architecture and input shape in a process."""
    import torch  # torch loads when a model is built, not with the registries (`ls` stays light)

    if (arch, in_chans, image_size) in _RUNS_AT:
        return
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(2, in_chans, image_size, image_size))
    except Exception as exc:
        raise ConfigError(f"--arch {arch!r} does not run on {in_chans}-channel {image_size}px images "
                          f"(a forward pass fails: {type(exc).__name__}: {_first_line(exc)}); pick an "
                          f"architecture that takes this input size") from exc
    finally:
        model.train(was_training)
    _RUNS_AT.add((arch, in_chans, image_size))


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]
