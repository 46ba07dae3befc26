"""A trial's identity: a stable hash of everything that can change its metrics.

The *resolved configuration* of a :class:`~unlearnbench.run.config.Plan` names every component
with every hyperparameter, defaults included (method, dataset, model, pruner and sparsity), the
original model's training recipe, the forget spec, the validation fraction, the data subsets, a
fingerprint of the data files, each probe the configuration asks for (under its name: what
:meth:`~unlearnbench.probe.Probe.resolved` says, e.g. a downstream dataset, its parameters
and files; a scenario's own probes follow from the forget spec), the precision and compile mode,
a population audit's fixed split and replicate (``population``, only when set), a tuning
trial's hold-out (``holdout``, only when it is the validation split), and the code's
formats (``CACHE_FORMAT``, ``MEASUREMENT_FORMAT``). Its
canonical JSON hashed with sha256 is the *config identity*; with the seed added it is the
*trial identity*, which names the record file and decides whether a trial is done
(:mod:`unlearnbench.identity` holds the JSON form and the hashes, which records and tables read
too).

Left out, because they cannot change a metric: the output and cache folders, where the data
lives (only its files count), the device (its index, or "auto" vs the device it resolves to;
a device that changes the numbers does so through the resolved precision), ``--download`` and
the row label, which is a display name: the same configuration under two labels is one trial.
The unlearnbench version is left out too, so that a release that changes no computation does
not re-run every leaderboard; a change that does bumps ``CACHE_FORMAT`` (training) or
``MEASUREMENT_FORMAT`` (how a trial is measured). The layout of a record (its schema version)
is left out as well: a record of an older layout that measured the same trial is read and
counts as done. The record keeps the version, and the leaderboard says when a row averages
records of several versions. Which metrics a run measures is left out too: every run
measures every registered trial metric, and a metric installed later shows as missing ("—")
in the rows of earlier records rather than re-running them.

The data fingerprint is computed before anything is decoded: the names and sizes of the files
the dataset reads (:meth:`~unlearnbench.data.dataset.Dataset.fingerprint` without the
modification times, so a copy of the same files elsewhere keeps the identity), or none for a
dataset that reads no files (its parameters are in the identity). The record also keeps the
hash of the decoded training tensors, and the leaderboard never averages records whose
decoded data differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, CorruptFileError
from ..identity import (ALWAYS_PRESENT, IDENTITY_VERSION, MEASUREMENT_FORMAT, SHORT,
                        data_fingerprint, trial_identity)
from ..report.records import RunRecord
from ..storage import CACHE_FORMAT

if TYPE_CHECKING:
    from .config import Plan


def resolved_config(plan: Plan) -> dict[str, Any]:
    """Everything about ``plan`` that can change a trial's metrics (the seed apart)."""
    cfg = plan.config
    resolved = {
        "identity": IDENTITY_VERSION, "cache_format": CACHE_FORMAT, "record_schema": MEASUREMENT_FORMAT,
        "method": cfg.method, "method_params": plan.unlearner.get_params(),
        "dataset": cfg.dataset, "dataset_params": plan.dataset.get_params(),
        "data": data_fingerprint(plan.dataset, cfg.data_root),
        "arch": plan.arch,
        "pruner": cfg.pruner, "sparsity": cfg.sparsity,
        "pruner_params": plan.pruner.get_params() if plan.pruner else None,
        "recipe": plan.recipe.get_params(), "forget": str(plan.forget),
        "val_fraction": cfg.val_fraction, "train_size": cfg.train_size, "test_size": cfg.test_size,
        "precision": plan.runtime.precision, "compile": plan.runtime.compile,
        **({"population": dict(cfg.population)} if cfg.population else {}),
        **({"holdout": cfg.holdout} if cfg.holdout != "test" else {}),
    }
    return {**resolved, **ALWAYS_PRESENT, **probe_entries(plan, set(resolved))}


def probe_entries(plan: Plan, taken: set[str]) -> dict[str, Any]:
    """What each probe the configuration asks for adds to its identity, under the probe's name."""
    entries = {}
    for name in plan.config.probes:
        if name in taken:
            raise ConfigError(f"probe {name!r} has the name of a field of the configuration's "
                              f"identity; register the probe under another name")
        entries[name] = plan.probes[name].resolved(plan.data_access)
    return entries


def planned_identity(plan: Plan, seed: int) -> str:
    return trial_identity(resolved_config(plan), seed)


def recorded(folder: Path, identity: str) -> bool:
    """Whether ``folder`` holds a valid record of the trial ``identity``.

    Only files named with its short hash are read; a file whose stored identity differs, or
    does not match its own configuration (renamed or edited by hand), does not count.
    """
    for path in Path(folder).glob(f"*-{identity[:SHORT]}.json"):
        try:
            if RunRecord.load(path).identity == identity:
                return True
        except CorruptFileError:
            continue
    return False
