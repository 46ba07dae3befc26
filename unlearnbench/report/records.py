"""Typed, schema-versioned run records: one JSON file per trial.

Every table is generated from these records. ``RunRecord.from_dict`` checks the schema
version and every field, so a damaged or foreign file is an error that names it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError, CorruptFileError, DataNotFoundError, DuplicateRecordWarning
from ..identity import config_identity, derived_config, trial_identity
from ..metric import MetricDeclaration, check_metric_name, columns
from ..storage import atomic_write_text

SCHEMA_VERSION = 6
# Version 1 records lack ``probes``; they read as having none. Versions 1 and 2 lack the
# identity: it is derived from what they stored (``unlearnbench.identity.derived_config``).
# Versions 1 and 2 lack ``status``: they read as "ok" (a diverged run could not be recorded).
# Versions 1 to 3 hold the five metrics of that time as fixed fields (``LegacyMetricValues``)
# and no declarations: they read with ``LEGACY_DECLARATIONS``.
# Versions 1 to 4 lack ``work`` (what the unlearner did): it reads as None (not measured).
# Versions 1 to 5 lack ``environment.threads`` (torch's CPU threads): it reads as None.
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6)
IDENTITY_FIELDS = ("resolved", "identity", "config_identity")
STATUSES = ("ok", "diverged")
# What ``unlearnbench verify`` writes beside the records it checked (record identity ->
# verification); no record, and record scans pass it over.
VERIFIED_FILE = "verified.json"


@dataclass(frozen=True)
class LegacyMetricValues:
    """The ``metrics`` of a record of schema 1 to 3 (None: a diverged run; JSON has no NaN)."""

    UA: float | None
    MIA: float | None
    RA: float | None
    TA: float | None
    RTE: float  # seconds of the unlearning call


# The declarations of the metrics of schema 1-3 records, as the built-in metrics made them when
# metrics became plugins (a test checks that the built-ins still declare exactly this).
LEGACY_DECLARATIONS = {
    "UA": MetricDeclaration("UA", in_disparity=True, order=10,
                            description="100 - accuracy on the forget set"),
    "MIA": MetricDeclaration("MIA-Efficacy", in_disparity=True, order=20,
                             description="share of the forget set that a membership-inference "
                                         "attack calls non-member"),
    "RA": MetricDeclaration("RA", in_disparity=True, order=30, description="accuracy on the retain set"),
    "TA": MetricDeclaration("TA", in_disparity=True, order=40,
                            description="accuracy on the test set (without a forgotten class)"),
    "RTE": MetricDeclaration("RTE", unit="s", higher_is_better=False, order=50,
                             description="wall-clock seconds of the unlearning call"),
}


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
class Work:
    """What the unlearning call did, counted by the harness while it ran
    (``unlearnbench.run.timing``): every ``optimizer.step()`` of any torch optimizer, and the
    examples drawn through the task's loaders from each part of the data (``forget``,
    ``retain``, ``validation``; ``other`` for data the method built itself). Passes over a
    part are its examples divided by its size (``SplitInfo``)."""

    optimizer_steps: int
    examples: dict[str, int] = field(default_factory=dict)

    def passes(self, part: str, size: int) -> float | None:
        """Passes over ``part`` (None when the part is empty)."""
        return self.examples.get(part, 0) / size if size else None


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
    unlearnbench_commit: str | None = None  # the checkout's commit (+"-dirty") when run from one
    # torch's CPU threads while the trial ran (they set the order of float sums, so a CPU trial
    # re-executes bit for bit only with as many); None: a record before schema 6
    threads: int | None = None


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
    # metric name -> value (None: undefined, or a diverged run); every run measures every
    # registered trial metric (unlearnbench.evaluate.measure)
    metrics: dict[str, float | None]
    # metric name -> its declaration when the run was made: a table renders the record
    # without the metric's package installed
    metric_declarations: dict[str, MetricDeclaration]
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
    # A population audit's trial (config "population"): the margins of its scored examples,
    # {"train": [...], "test": [...]} (unlearnbench.data.population, unlearnbench.run.audit)
    margins: dict[str, list[float]] | None = None
    # The identity (unlearnbench.identity): the resolved configuration the hashes cover,
    # the trial's sha256 (configuration and seed; its first 12 digits end the file name) and
    # the configuration's (over all seeds: one leaderboard row). Derived when not given.
    resolved: dict[str, Any] | None = None
    identity: str = ""
    config_identity: str = ""
    data_hash: str | None = None  # hash of the decoded training data (None: not recorded)
    # "diverged": the unlearned model had non-finite weights or logits; its metrics (and the
    # probes after unlearning) are None, and config["divergence"] says what was non-finite
    # (records before schema 4 kept the RTE of a diverged run; timings.unlearn_s has it)
    status: str = "ok"
    # what the unlearner did (None: a record before schema 5, which did not count it)
    work: Work | None = None
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.resolved is None:
            object.__setattr__(self, "resolved", derived_config(self))
        if not self.identity:
            object.__setattr__(self, "identity", trial_identity(self.resolved, self.seed))
        if not self.config_identity:
            object.__setattr__(self, "config_identity", config_identity(self.resolved))

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    def metric_summary(self) -> str:
        """The metrics as a run's log line shows them: ``UA 12.34  MIA-Efficacy 56.78  ...
        RTE 1.50s``; a diverged run's, ``DIVERGED`` and how long the unlearning call took."""
        if self.diverged:
            return f"DIVERGED  unlearning took {self.timings.unlearn_s:.2f}s"
        return "  ".join(f"{d.label} {d.show(self.metrics[name])}"
                         for name, d in columns(self.metric_declarations).items())

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
        if version < 3:  # the identity is derived from the stored configuration
            data = {k: v for k, v in data.items() if k not in IDENTITY_FIELDS}
        elif missing := [k for k in IDENTITY_FIELDS if not data.get(k)]:
            raise CorruptFileError(f"{source}: a schema {version} record needs {', '.join(missing)}")
        if version < 4:
            data = _legacy_metrics(data, source)
        record = _build(cls, data, source)
        record = dataclasses.replace(record, metric_declarations=_declarations(record, source))
        _check_identity(record, data, source)
        if record.status not in STATUSES:
            raise CorruptFileError(f"{source}: status {record.status!r} is invalid: expected one of "
                                   f"{', '.join(STATUSES)}")
        for name, values in record.probes.items():
            if not isinstance(values, dict) or not all(
                    isinstance(k, str) and _matches(float | None, v) and (v is None or math.isfinite(v))
                    for k, v in values.items()):
                raise CorruptFileError(f"{source}: probe {name!r}={values!r} is not a mapping of "
                                       f"'before'/'after' to finite numbers or null")
        _check_created(record.created, source)
        return dataclasses.replace(record, schema_version=SCHEMA_VERSION)

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise CorruptFileError(f"{path}: not a readable JSON record ({exc})") from exc
        return cls.from_dict(data, str(path))


def _check_created(created: str, source: str) -> None:
    """``created`` is what a run writes: an ISO-8601 date and time with its UTC offset
    (``2024-01-01T12:00:00+00:00``); the newest of two records of one trial is chosen by it."""
    try:
        moment = dt.datetime.fromisoformat(created)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise CorruptFileError(f"{source}: created {created!r} is invalid: expected an ISO-8601 "
                               f"timestamp with its UTC offset, e.g. 2024-01-01T12:00:00+00:00")


def _legacy_metrics(data: dict[str, Any], source: str) -> dict[str, Any]:
    """``data`` of a schema 1-3 record with its fixed metric fields as a schema 4 mapping and
    the declarations those metrics had."""
    if "metric_declarations" in data:
        raise CorruptFileError(f"{source}: a schema {data['schema_version']} record has no "
                               f"metric_declarations (they came with schema 4)")
    if "metrics" not in data:
        return data  # RunRecord lacks it: _build says so
    values = _build(LegacyMetricValues, data["metrics"], f"{source}:metrics")
    return {**data, "metrics": dataclasses.asdict(values),
            "metric_declarations": {k: d.to_dict() for k, d in LEGACY_DECLARATIONS.items()}}


def _declarations(record: RunRecord, source: str) -> dict[str, MetricDeclaration]:
    """The record's declarations, built and checked: one per metric value, and no other."""
    declarations = {}
    for name, value in record.metrics.items():
        if not _matches(float | None, value):
            raise CorruptFileError(f"{source}: metric {name!r}={value!r} is not a number or null")
        if value is not None and not math.isfinite(value):  # a run records an undefined value as null
            raise CorruptFileError(f"{source}: metric {name!r}={value!r} is not finite; expected a "
                                   f"finite number or null (edited by hand?)")
        if name not in record.metric_declarations:
            raise CorruptFileError(f"{source}: metric {name!r} has no entry in metric_declarations")
    for name, raw in record.metric_declarations.items():
        where = f"{source}:metric_declarations:{name}"
        if name not in record.metrics:
            raise CorruptFileError(f"{where}: declares a metric the record has no value of")
        try:
            check_metric_name(name)
            declarations[name] = _build(MetricDeclaration, raw, where)
        except ConfigError as exc:
            raise CorruptFileError(f"{where}: {exc}") from None
    return declarations


def _check_identity(record: RunRecord, data: dict[str, Any], source: str) -> None:
    """A stored identity must be the hash of the stored configuration (no hand edits)."""
    if "identity" not in data:
        return
    try:
        expected = (trial_identity(record.resolved, record.seed), config_identity(record.resolved))
    except (TypeError, ValueError) as exc:  # e.g. NaN, which JSON readers accept
        raise CorruptFileError(f"{source}: field RunRecord.resolved cannot be hashed ({exc})") from exc
    if (record.identity, record.config_identity) != expected:
        raise CorruptFileError(f"{source}: identity {record.identity[:12]}... does not match the "
                               f"record's configuration and seed (edited by hand?); expected "
                               f"{expected[0][:12]}...")


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
        optional = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is not None and len(optional) == 1 and dataclasses.is_dataclass(optional[0]):
            tp = optional[0]  # an optional record part, e.g. ``work``
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


def load_records(path: Path, *, log: Callable[[str], None] | None = None) -> list[RunRecord]:
    """Every run record under ``path`` (recursively), sorted by run id; ``path`` may also be one
    record file. Other JSON files (a recipe's ``recipe.json``, a stray file) are skipped, each
    reported to ``log`` with the reason; a file that claims to be a record (it has a
    ``schema_version``) but is damaged is an error, never dropped."""
    records, skipped = scan_records(path)
    for file, reason in skipped:
        if log is not None:
            log(f"skipped {file}: {reason}")
    return records


def scan_records(path: Path) -> tuple[list[RunRecord], list[tuple[Path, str]]]:
    """The records under ``path`` (see :func:`load_records`) and the skipped files with reasons.

    One trial recorded twice would count as two seeds: the newer record (by ``created``) is
    kept, and a :class:`DuplicateRecordWarning` names both files.
    """
    path = Path(path)
    if path.is_file():
        return [RunRecord.load(path)], []
    if not path.is_dir():
        raise DataNotFoundError(f"results folder {path} does not exist")
    kept: dict[str, tuple[RunRecord, Path]] = {}
    skipped = []
    for file in sorted(path.rglob("*.json")):
        if not file.is_file() or file.name == VERIFIED_FILE:
            continue
        data, reason = _read_record(file)
        if reason is not None:
            skipped.append((file, reason))
            continue
        record = RunRecord.from_dict(data, str(file))
        if (earlier := kept.get(record.identity)) is not None:
            (new, new_path), (old, old_path) = sorted(
                [earlier, (record, file)], key=lambda rp: (rp[0].created, str(rp[1])), reverse=True)
            warnings.warn(DuplicateRecordWarning(
                f"trial {record.identity[:12]} ({record.run_id}) is recorded twice: using "
                f"{new_path} (created {new.created}), ignoring {old_path} (created {old.created})"),
                stacklevel=2)
            kept[record.identity] = (new, new_path)
        else:
            kept[record.identity] = (record, file)
    return sorted((r for r, _ in kept.values()), key=lambda r: r.run_id), skipped


def _read_record(path: Path) -> tuple[Any, str | None]:
    """``path``'s parsed JSON and None when it claims to be a run record, else why it is none.

    A file that mentions ``schema_version`` but does not parse (a record cut short) is loaded
    as a record, so the error names it instead of skipping it."""
    try:
        text = path.read_text()
    except OSError as exc:
        return None, f"not readable ({type(exc).__name__})"
    try:
        data = json.loads(text)
    except ValueError as exc:
        if '"schema_version"' in text:
            RunRecord.load(path)  # raises CorruptFileError naming the file
        return None, f"not readable JSON ({type(exc).__name__})"
    if not isinstance(data, dict) or "schema_version" not in data:
        return None, "not a run record (no schema_version)"
    return data, None
