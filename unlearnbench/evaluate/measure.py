"""Measuring a trial: the unlearned model's logits once, then every registered trial metric.

The metrics come from the registry :data:`~unlearnbench.components.METRICS` (entry-point group
``unlearnbench.metrics``); nothing here names one. A run measures every registered trial
metric with its default parameters. Population metrics (audits over many trained models) are
not measured here: ``unlearnbench audit`` runs them.

A registered metric whose module is not installed is not measured (``unlearnbench ls metrics``
says so). One that is installed but cannot be loaded (its import fails, it is not a metric
class, its declaration or name is malformed) is left out with a
:class:`~unlearnbench.errors.MetricNotMeasuredWarning` naming it and its package: every run
measures every metric, so one broken metric plugin must not stop them all
(``UNLEARNBENCH_DISABLE_PLUGINS=1`` leaves out every other distribution's). A metric that fails
while it computes is an error of the trial, naming the metric and its package.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..components import METRICS
from ..data.tensors import ImageData, Normalize
from ..errors import (ConfigError, MetricNotMeasuredWarning, NonFiniteError, PluginError,
                      PluginLoadError)
from ..guard import call_plugin
from ..metric import MetricDeclaration, TrialEvaluation, TrialMetric, check_metric_name
from ..train.runtime import Runtime
from .metrics import predict


def trial_metrics() -> dict[str, TrialMetric]:
    """Every loadable registered trial metric, by name, built with its default parameters.

    One that cannot be loaded is left out with a :class:`MetricNotMeasuredWarning`; a name
    registered twice stays an error (:class:`~unlearnbench.errors.DuplicateNameError`)."""
    metrics = {}
    for name in METRICS.names():
        if not _installed(name):
            continue
        try:
            metric = _load(name)
        except PluginLoadError as exc:
            warnings.warn(MetricNotMeasuredWarning(f"{exc}; it is left out of this run"), stacklevel=2)
            continue
        if metric is not None:
            metrics[name] = metric
    return metrics


def _installed(name: str) -> bool:
    """Whether the module of the metric ``name`` is there to import (it may still fail to)."""
    entry = METRICS.entry(name)
    if entry.obj is not None:
        return True
    try:
        return importlib.util.find_spec(entry.target.partition(":")[0]) is not None
    except (ImportError, ValueError):  # its package is missing too
        return False


def _load(name: str) -> TrialMetric | None:
    """The metric ``name`` ready to compute, None for a population metric."""
    cls = METRICS.get(name)
    try:
        check_metric_name(name)
        if cls.declaration().needs != "trial":
            return None
        if not issubclass(cls, TrialMetric):
            raise ConfigError("it declares needs='trial' but is not a subclass of unlearnbench.TrialMetric")
        return cls.from_params({})
    except ConfigError as exc:
        entry = METRICS.entry(name)
        raise PluginLoadError(f"metric {name!r} from {entry.origin} ({entry.target}) cannot be "
                              f"used: {exc}") from None


def declarations(metrics: Mapping[str, TrialMetric]) -> dict[str, MetricDeclaration]:
    """What a record keeps of ``metrics``: each one's declaration, by name."""
    return {name: type(metric).declaration() for name, metric in metrics.items()}


def trial_evaluation(model: nn.Module, *, forget: ImageData, retain: ImageData, test: ImageData,
                     normalize: Normalize, runtime: Runtime, mia_members: torch.Tensor,
                     rte: float, heldout: ImageData | None = None) -> TrialEvaluation:
    """The logits of ``model`` on the sets (fp32, eval mode, on the CPU) with their labels;
    ``heldout``: the whole held-out set ``test`` was cut from (default: ``test`` itself).
    Raises :class:`NonFiniteError` when a logit is NaN or infinite (the run diverged)."""
    logits = {}
    sets = [("forget", forget), ("retain", retain), ("test", test)]
    for name, data in sets + ([("heldout", heldout)] if heldout is not None else []):
        logits[name] = predict(model, data, normalize, runtime)
        if not bool(torch.isfinite(logits[name]).all()):  # would break a metric, not diverge visibly
            raise NonFiniteError(f"its logits on the {name} set are non-finite")
    return TrialEvaluation(
        forget_logits=logits["forget"], forget_labels=forget.labels.cpu(),
        retain_logits=logits["retain"], retain_labels=retain.labels.cpu(),
        test_logits=logits["test"], test_labels=test.labels.cpu(),
        mia_members=mia_members.cpu(), rte=float(rte),
        heldout_logits=logits.get("heldout", logits["test"]),
        heldout_labels=(heldout if heldout is not None else test).labels.cpu())


def measure(metrics: Mapping[str, TrialMetric], evaluation: TrialEvaluation) -> dict[str, float | None]:
    """Every metric's value on ``evaluation``, by name; a value that is not finite is None
    (undefined, e.g. the accuracy of an empty set: records hold no NaN)."""
    values = {}
    for name, metric in metrics.items():
        value = call_plugin(METRICS, name, lambda: metric.compute(evaluation))
        values[name] = _checked(name, value)
    return values


def _checked(name: str, value: Any) -> float | None:
    if getattr(value, "ndim", None) == 0:  # a numpy or torch scalar
        value = value.item()
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise PluginError(f"metric {name!r} (from {METRICS.origin(name)}) returned {value!r}; "
                          f"expected a number or None")
    return None if value is None or not math.isfinite(value) else float(value)


def evaluate(model: nn.Module, *, forget: ImageData, retain: ImageData, test: ImageData,
             normalize: Normalize, runtime: Runtime, mia_members: torch.Tensor, rte: float = 0.0,
             metrics: Mapping[str, TrialMetric] | None = None) -> dict[str, float | None]:
    """``model``'s value of every registered trial metric (or of ``metrics``)."""
    evaluation = trial_evaluation(model, forget=forget, retain=retain, test=test, normalize=normalize,
                                  runtime=runtime, mia_members=mia_members, rte=rte)
    return measure(trial_metrics() if metrics is None else metrics, evaluation)
