"""Identities: the one JSON form unlearnbench hashes and writes, and the hashes built on it.

A trial's *resolved configuration* (built from a plan by :mod:`unlearnbench.run.identity`)
names everything that can change its metrics. Its canonical JSON (:func:`canonical`: sorted
keys, no spaces, integral floats written as integers) hashed with sha256 is the *config
identity*; with the seed added it is the *trial identity*, which names the record file and
decides whether a trial is done. Records, leaderboards and probes read identities through this
module, so it sits on the shared ground: it imports nothing of unlearnbench but its errors.

:func:`jsonable` is the one conversion of Python values to JSON: the canonical form is its
``exact`` variant (unknown types and non-finite numbers are errors rather than written as text
or null), so what a study writes and what an identity hashes never drift apart.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .data.dataset import Dataset
    from .report.records import RunRecord

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


# -- the JSON form --------------------------------------------------------------------------
def jsonable(value: Any, *, exact: bool = False) -> Any:
    """``value`` as plain JSON: mappings and sequences recursively, paths as text, numpy
    scalars as Python numbers, a non-finite float as None.

    ``exact`` (the form identities hash): integral floats become integers (1.0 and 1 are one
    number), a non-finite float is kept (and refused by :func:`canonical`), and a value of any
    other type is a :class:`TypeError` instead of passing through."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if hasattr(value, "item") and type(value).__module__ == "numpy":  # a numpy scalar
        value = value.item()
    if isinstance(value, float):
        if not math.isfinite(value):
            return value if exact else None
        return int(value) if exact and value.is_integer() else value
    if isinstance(value, int):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, exact=exact) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, exact=exact) for v in value]
    if isinstance(value, Path):
        return str(value)
    if exact:
        raise TypeError(f"{value!r} ({type(value).__name__}) has no canonical JSON form")
    return value


def canonical(value: Any) -> str:
    """Compact JSON with sorted keys; 1.0 and 1 are one number, tuples are lists."""
    return json.dumps(jsonable(value, exact=True), sort_keys=True, separators=(",", ":"),
                      allow_nan=False)


def _sha256(value: Any) -> str:
    return hashlib.sha256(canonical(value).encode()).hexdigest()


# -- identities -----------------------------------------------------------------------------
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
