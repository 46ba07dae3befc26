"""Typed, schema-versioned run records: one JSON file per trial.

Every table is generated from these records. ``RunRecord.from_dict`` checks the schema
version and every field, so a damaged or foreign file is an error that names it.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, CorruptFileError, DataNotFoundError
from ..storage import atomic_write_text

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1 records lack ``probes``; they read as having none


@dataclass(frozen=True)
class MetricValues:
    UA: float
    MIA: float
    RA: float
    TA: float
    RTE: float  # seconds of the unlearning call


@dataclass(frozen=True)
class Timings:
    original_s: float
    original_cached: bool
    prune_s: float
    prune_cached: bool
    unlearn_s: float
    eval_s: float
    warmup_s: float = 0.0  # one-time warm-up (cuDNN autotuning, compilation), excluded from RTE
    shared_by: int = 0  # other trials on the device while RTE was timed (0: it had the device alone)


@dataclass(frozen=True)
class SplitInfo:
    hash: str
    train: int
    validation: int
    forget: int
    retain: int
    test: int


@dataclass(frozen=True)
class Environment:
    python: str
    torch: str
    cuda: str | None
    unlearnbench: str
    device: str
    device_name: str
    precision: str
    packages: dict[str, str]  # every distribution that supplied a component used by the run
    compile: str = "none"  # torch.compile mode of the training loop


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    created: str
    dataset: str
    arch: str
    forget: str
    scenario: str
    method: str
    pruner: str | None
    target_sparsity: float | None
    seed: int
    sparsity: float  # achieved, over the prunable weights
    metrics: MetricValues
    timings: Timings
    split: SplitInfo
    environment: Environment
    config: dict[str, Any]
    components: dict[str, str] = field(default_factory=dict)  # role -> "name (package version)"
    # Extra measurements of the scenario (e.g. a backdoor's attack success rate) or of a
    # downstream probe, each taken on the model before and after unlearning:
    # {"ASR": {"before": 99.6, "after": 14.2}, ...}; values in percent.
    probes: dict[str, dict[str, float]] = field(default_factory=dict)
    label: str | None = None  # the row name of a method variant (default: the method's name)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> RunRecord:
        version = data.get("schema_version") if isinstance(data, dict) else None
        if type(version) is not int or version not in READABLE_VERSIONS:  # true == 1 in Python
            raise CorruptFileError(f"{source}: schema_version {version!r} is not supported "
                                   f"(this unlearnbench reads versions {READABLE_VERSIONS})")
        record = _build(cls, data, source)
        for name, values in record.probes.items():
            if not isinstance(values, dict) or not all(
                    isinstance(k, str) and _matches(float, v) for k, v in values.items()):
                raise CorruptFileError(f"{source}: probe {name!r}={values!r} is not a mapping of "
                                       f"'before'/'after' to numbers")
        return dataclasses.replace(record, schema_version=SCHEMA_VERSION)

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise CorruptFileError(f"{path}: not a readable JSON record ({exc})") from exc
        return cls.from_dict(data, str(path))


def _build(cls: type, data: Any, source: str) -> Any:
    if not isinstance(data, dict):
        raise CorruptFileError(f"{source}: expected an object for {cls.__name__}, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    required = {f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    if missing := required - data.keys():
        raise CorruptFileError(f"{source}: {cls.__name__} lacks {sorted(missing)}")
    if extra := data.keys() - names:
        raise CorruptFileError(f"{source}: {cls.__name__} has unknown fields {sorted(extra)}")
    values = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            value = _build(tp, value, f"{source}:{name}")
        elif not _matches(tp, value):
            raise CorruptFileError(f"{source}: field {cls.__name__}.{name}={value!r} is not {tp}")
        values[name] = value
    return cls(**values)


def _matches(tp: Any, value: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType")):
        return any(_matches(a, value) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp in (int, float):  # JSON's true/false are not numbers, though bool subclasses int
        return isinstance(value, (int, float) if tp is float else int) and not isinstance(value, bool)
    if tp is Any:
        return True
    return isinstance(value, origin or tp)


def load_records(folder: Path) -> list[RunRecord]:
    """Every ``*.json`` record under ``folder`` (recursively), sorted by run id."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataNotFoundError(f"results folder {folder} does not exist")
    seen: dict[str, Path] = {}
    records = []
    for path in sorted(folder.rglob("*.json")):
        record = RunRecord.load(path)
        if record.run_id in seen:  # the same trial twice would count as two seeds
            raise ConfigError(f"run {record.run_id!r} is recorded twice, in {seen[record.run_id]} "
                              f"and {path}; keep one of them")
        seen[record.run_id] = path
        records.append(record)
    return sorted(records, key=lambda r: r.run_id)
