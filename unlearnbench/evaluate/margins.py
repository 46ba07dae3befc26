"""The per-example statistic every distribution-level audit shares: the margin.

φ(x) = z_y − log Σ_{j≠y} exp(z_j), where z are the logits and y the true label. It equals
log(p_y / (1 − p_y)) under the softmax p exactly, but is computed from the logits, so it stays
finite and exact where p_y rounds to 1 (a confident model's training points). KLoM calls it the
"margin" (Georgiev et al., ICLR 2025, App. E.1; code RoyRin/data-unlearning-bench
``unlearning_bench/eval.py``); LiRA and U-LiRA call it the "logit-scaled confidence" (Carlini et
al., IEEE S&P 2022; tensorflow/privacy ``research/mi_lira_2021``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import logsumexp

from ..errors import ConfigError


def as_float64(values: Any, name: str) -> np.ndarray:
    """A numpy float64 copy of a numpy array, a torch tensor (any device or dtype) or a list."""
    if hasattr(values, "detach"):  # a torch tensor; torch itself is not imported here
        values = values.detach().to("cpu").double().numpy()
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{name} must be numeric, got {type(values).__name__}: {error}") from None
    return array


def margins(logits: Any, labels: Any) -> np.ndarray:
    """The margins φ = z_y − logsumexp_{j≠y} z_j of each example, in float64.

    ``logits``: numpy array or torch tensor of shape ``[n, classes]`` (one model) or
    ``[models, n, classes]`` (a population of models scored on the same examples).
    ``labels``: ``[n]`` integer labels in ``[0, classes)``, shared by all models.
    Returns ``[n]`` or ``[models, n]``.

    The sum excludes the true class by setting its logit to −inf before a max-shifted
    logsumexp, so no exponential overflows: logits of 1e4 give the exact difference.
    Source: KLoM's margin (RoyRin/data-unlearning-bench ``unlearning_bench/eval.py``), which uses
    logsumexp over the other logits, not the largest other logit. No deviation.
    """
    z = as_float64(logits, "logits")
    if z.ndim not in (2, 3) or z.shape[-1] < 2:
        raise ConfigError(f"logits must have shape [n, classes] or [models, n, classes] with at "
                          f"least 2 classes, got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ConfigError("logits hold NaN or infinite values: the model diverged or the input "
                          "is not logits")
    y = _integer_labels(labels, n=z.shape[-2], classes=z.shape[-1])
    true_class = np.arange(z.shape[-1]) == y[:, None]  # [n, classes]
    true_logit = np.where(true_class, z, 0.0).sum(axis=-1)
    others = np.where(true_class, -np.inf, z)
    return true_logit - logsumexp(others, axis=-1)


def _integer_labels(labels: Any, *, n: int, classes: int) -> np.ndarray:
    """Labels as an int64 vector of length ``n``, each in ``[0, classes)``, or a ConfigError."""
    if hasattr(labels, "detach"):
        labels = labels.detach().to("cpu").numpy()
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ConfigError(f"labels must have shape ({n},) to match the logits, got {y.shape}")
    if y.dtype.kind not in "iu":
        raise ConfigError(f"labels must be integers, got dtype {y.dtype}")
    outside = (y < 0) | (y >= classes)
    if outside.any():
        raise ConfigError(f"labels must lie in [0, {classes}), got {y[outside][0]} at index "
                          f"{int(np.flatnonzero(outside)[0])}")
    return y.astype(np.int64)
