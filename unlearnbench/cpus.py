"""The CPU cores a process may use: torch's intra-op threads, the MIA's prediction threads and
the image-decoding pool follow one budget, set by the executor that runs the trials."""

from __future__ import annotations

import os

import torch

from .errors import ConfigError

_CPU_BUDGET: int | None = None


def set_cpu_budget(cpus: int | None) -> int | None:
    """Give this process ``cpus`` cores (None: all it may run on): torch's intra-op threads,
    the MIA's prediction threads and the image-decoding pool (made at its first use) follow it.
    Returns the previous setting."""
    global _CPU_BUDGET
    if cpus is not None and cpus < 1:
        raise ConfigError(f"cpus={cpus} is invalid: expected at least 1")
    previous, _CPU_BUDGET = _CPU_BUDGET, cpus
    torch.set_num_threads(cpu_budget())
    return previous


def cpu_budget() -> int:
    """The cores this process may use: the budget set by its executor, else every core it may run on."""
    if _CPU_BUDGET is not None:
        return _CPU_BUDGET
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
