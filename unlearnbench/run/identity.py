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
canonical JSON (sorted keys, integral floats written as integers) hashed with sha256 is the
*config identity*; with the seed added it is the *trial identity*, which names the record file
and decides whether a trial is done.

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

import hashlib
import json
import math
from pathlib import Path
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .config import CACHE_FORMAT

if TYPE_CHECKING:
    from ..data.dataset import Dataset
    from ..report.records import RunRecord
    from .config import Plan

IDENTITY_VERSION = 1  # bump when the resolved configuration gains or loses a field
# How a trial is measured: bump when the evaluation changes what a metric of the same trial
# reads (the logits' precision or mode, the MIA's member subset, a built-in metric's formula).
# It is hashed under the key "record_schema" because, until records became schema 4, the
# record's schema version stood for it (it was 3 then); a new record layout alone must not
# make finished trials count as not done.
MEASUREMENT_FORMAT = 4  # 4: predict in channels_last batches of the helper's size
# Version 1 holds the key "transfer" in every configuration (None unless a probe of that name
# is asked for): kept, so that no identity changed when probes became plugins.
ALWAYS_PRESENT = {"transfer": None}
UNKNOWN = "?"  # a value an older record did not store
SHORT = 12  # hex digits of the trial identity in a record's file name


def canonical(value: Any) -> str:
    """Compact JSON with sorted keys; 1.0 and 1 are one number, tuples are lists."""
    return json.dumps(_normalize(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


def _normalize(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else value
    if isinstance(value, dict):
        return {str(k): _normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalize(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{value!r} ({type(value).__name__}) has no canonical JSON form")


def _sha256(value: Any) -> str:
    return hashlib.sha256(canonical(value).encode()).hexdigest()


def config_identity(resolved: dict[str, Any]) -> str:
    """The identity of a configuration over all its seeds (one leaderboard row)."""
    return _sha256(resolved)


def trial_identity(resolved: dict[str, Any], seed: int) -> str:
    """The identity of one trial: the configuration and its seed."""
    return _sha256({"config": resolved, "seed": seed})


def data_fingerprint(dataset: Dataset, root: Path | None) -> str | None:
    """A short hash of the names and sizes of the files ``dataset`` reads under ``root``.

    None when it reads no files (bundled or generated data) or does not fingerprint them.
    Rows of the default fingerprint, ``[name, size, mtime_ns]``, lose their modification time.
    """
    files = dataset.fingerprint(Path(root).expanduser() if root else None)
    if not files:
        return None
    rows = [row[:2] if isinstance(row, (list, tuple)) and len(row) == 3 and isinstance(row[2], int)
            else row for row in files]
    return _sha256(rows)[:16]


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
    from ..errors import ConfigError

    entries = {}
    for name in plan.config.probes:
        if name in taken:
            raise ConfigError(f"probe {name!r} has the name of a field of the configuration's "
                              f"identity; register the probe under another name")
        entries[name] = plan.probes[name].resolved(plan.data_access)
    return entries


def planned_identity(plan: Plan, seed: int) -> str:
    return trial_identity(resolved_config(plan), seed)


def derived_config(record: RunRecord) -> dict[str, Any]:
    """The resolved configuration of a record written before identities existed (schema 1, 2).

    What such a record did not store (the data's fingerprint, the cache format, the transfer
    dataset's parameters) is ``"?"``, so it never matches a configuration planned today.
    """
    cfg = record.config
    transfer = cfg.get("transfer")
    return {
        "identity": IDENTITY_VERSION, "cache_format": UNKNOWN, "record_schema": record.schema_version,
        "method": record.method, "method_params": cfg.get("method_params", UNKNOWN),
        "dataset": record.dataset, "dataset_params": cfg.get("dataset_params", UNKNOWN),
        "data": UNKNOWN,
        "arch": record.arch,
        "pruner": record.pruner, "sparsity": record.target_sparsity,
        "pruner_params": cfg.get("pruner_params", UNKNOWN if record.pruner else None),
        "recipe": cfg.get("recipe", UNKNOWN), "forget": record.forget,
        "val_fraction": cfg.get("val_fraction", UNKNOWN),
        "train_size": cfg.get("train_size"), "test_size": cfg.get("test_size"),
        "transfer": {"dataset": transfer, "params": UNKNOWN, "data": UNKNOWN} if transfer else None,
        "precision": record.environment.precision, "compile": record.environment.compile,
    }


def recorded(folder: Path, identity: str) -> bool:
    """Whether ``folder`` holds a valid record of the trial ``identity``.

    Only files named with its short hash are read; a file whose stored identity differs, or
    does not match its own configuration (renamed or edited by hand), does not count.
    """
    from ..errors import CorruptFileError
    from ..report.records import RunRecord

    for path in Path(folder).glob(f"*-{identity[:SHORT]}.json"):
        try:
            if RunRecord.load(path).identity == identity:
                return True
        except CorruptFileError:
            continue
    return False


# -- what differs between configurations (the labels of leaderboard rows) -----------------
_PREFIXES = {"method_params": "", "recipe": "train.", "dataset_params": "dataset.",
             "pruner_params": "pruner."}


def flatten(resolved: dict[str, Any]) -> dict[str, Any]:
    """``resolved`` as one level of readable keys: ``lr`` (a method parameter), ``train.epochs``,
    ``dataset.X``, ``pruner.X``, ``precision``, ... and a probe's entry as ``PROBE`` (the
    dataset it reads, if any), ``PROBE.data`` and ``PROBE.X`` (its parameters)."""
    flat: dict[str, Any] = {}
    for key, value in resolved.items():
        if key in _PREFIXES and isinstance(value, dict):
            flat.update({f"{_PREFIXES[key]}{k}": v for k, v in value.items()})
        elif isinstance(value, dict):  # a probe's entry
            flat.update(_flat_probe(key, value))
        else:
            flat[key] = value
    return flat


def _flat_probe(name: str, entry: dict[str, Any]) -> dict[str, Any]:
    flat = {name if key == "dataset" else f"{name}.{key}": value
            for key, value in entry.items() if key != "params"}
    if "params" in entry:
        params = entry["params"]
        flat.update({f"{name}.{k}": v for k, v in params.items()} if isinstance(params, dict)
                    else {f"{name}.params": params})
    return flat


def differing_keys(flats: list[dict[str, Any]]) -> list[str]:
    """The keys whose values are not the same in all of ``flats``: method parameters first."""
    keys = {k for flat in flats for k in flat}
    return ordered([k for k in keys if len({canonical(flat.get(k, UNKNOWN)) for flat in flats}) > 1])


def ordered(keys: Iterable[str]) -> list[str]:
    """Flattened keys in label order: method parameters first, then the rest, alphabetically."""
    return sorted(keys, key=lambda k: ("." in k or k in _TOP_LEVEL, k))


_TOP_LEVEL = {"identity", "cache_format", "record_schema", "method", "dataset", "data", "arch",
              "pruner", "sparsity", "forget", "val_fraction", "train_size", "test_size",
              "precision", "compile", "data_hash", "method_params", "dataset_params",
              "pruner_params", "recipe"} | set(ALWAYS_PRESENT)


def show(key: str, value: Any) -> str:
    """``key=value`` for a row label; hashes are cut to 8 characters."""
    if (key in ("data", "data_hash") or key.endswith(".data")) and isinstance(value, str):
        value = value[:8]
    elif isinstance(value, float):
        value = f"{value:g}"
    elif value is None:
        value = "none"
    elif not isinstance(value, (str, int)):
        value = canonical(value)
    return f"{key}={value}"
