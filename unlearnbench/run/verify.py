"""``unlearnbench verify``: re-execute recorded trials from their stored configuration and
check that they give the recorded results.

For each record, first what must match for a re-execution to mean anything:

* the code: the record's unlearnbench version, and its commit when both the record and this
  checkout name one (``environment.unlearnbench_commit``);
* the configuration: rebuilt from the record (method, parameters, dataset, model, pruning,
  forget spec, recipe, subsets, precision, compile mode, probes, population) and prepared as a
  run would, its resolved configuration must be the recorded one (``record.resolved``): the
  data fingerprint (``data``, the names and sizes of the dataset's files under ``--data-root``)
  and the code's formats (``cache_format``, ``record_schema``) included;
* the thread count: the trial re-executes with the record's ``environment.threads`` (torch's
  CPU threads, which set the order of float sums); a record made before schema 6 does not say,
  and re-executes with this process's threads;
* the device type (``environment.device``): a CUDA record needs a CUDA device here.

When all match, the trial runs again (nothing is written to the records' folder) and every
deterministic result is compared: each metric (but those measured in seconds, such as RTE:
wall-clock time is no result of the trial), the probes before and after unlearning, the
achieved sparsity, the split, the hash of the decoded training data, the unlearner's work
(optimizer steps, examples drawn), a population trial's margins and the status. On the CPU,
every value must be bit-identical. On another device type, kernels do not promise the same
order of float sums from run to run, and a value may differ by the device type's tolerance in
:data:`TOLERANCES` (a constant keyed by the device type, not a field of the record: the record
layout, and so every record, stays as it is).

The outcome of each record, with the code version and the date, goes to ``verified.json`` in the
record's folder (record identity -> outcome), which the web site reads to mark verified rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.metadata as md
import json
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..cpus import set_cpu_budget
from ..errors import ConfigError, CorruptFileError, DataNotFoundError, UnlearnbenchError
from ..identity import UNKNOWN
from ..report.records import VERIFIED_FILE, RunRecord, load_records
from ..storage import atomic_write_text
from .config import RunConfig, prepare
from .identity import resolved_config
from .provenance import checkout_commit
from .trial import load_data, run_trial, setup_trials

Log = Callable[[str], None]


@dataclass(frozen=True)
class Tolerance:
    """How far a re-executed value may be from the recorded one: ``percent`` points for a value
    in % (metrics with unit "%", probes), ``relative`` (times the recorded magnitude) for any
    other number."""

    percent: float
    relative: float

    def allows(self, recorded: float, again: float, unit: str) -> bool:
        bound = self.percent if unit == "%" else self.relative * abs(recorded)
        return abs(recorded - again) <= bound


EXACT = Tolerance(0.0, 0.0)
# By device type. The CPU's kernels sum in a fixed order for a given thread count: exact. A GPU's
# (cuDNN's autotuned convolutions, atomic adds) do not, and an unlearned model's accuracy on a
# small forget set moves by whole examples: 2 points of a percentage, 2% of any other value. Not
# yet calibrated on a GPU (no GPU re-execution has been measured against these bounds).
TOLERANCES: dict[str, Tolerance] = {"cpu": EXACT, "cuda": Tolerance(2.0, 0.02),
                                    "mps": Tolerance(2.0, 0.02)}
TIME_UNITS = ("s",)  # metrics in these units are wall-clock times: not compared


@dataclass
class Verification:
    """The outcome for one record: ``problems`` is empty when it verified."""

    record: RunRecord
    path: Path
    problems: list[str] = field(default_factory=list)
    compared: int = 0  # values compared after re-executing
    device: str = ""
    threads: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return not self.problems and self.compared > 0

    def line(self) -> str:
        """What the command prints for the record."""
        if self.verified:
            how = "bit-identical" if self.device == "cpu" else f"within the {self.device} tolerance"
            threads = f", {self.threads} thread{'s' if self.threads != 1 else ''}" if self.threads else ""
            notes = f" ({'; '.join(self.notes)})" if self.notes else ""
            return (f"verified  {self.record.run_id}: {self.compared} values {how} on "
                    f"{self.device}{threads}{notes}")
        return f"FAILED    {self.record.run_id}: {'; '.join(self.problems)}"


def code_version() -> tuple[str, str | None]:
    """This unlearnbench's version and the commit of its checkout (None when installed)."""
    return md.version("unlearnbench"), checkout_commit()


def record_config(record: RunRecord, *, data_root: Path | None, cache_dir: Path,
                  output_dir: Path) -> Any:
    """The :class:`~unlearnbench.run.config.RunConfig` of ``record``'s trial, from what it stored."""
    cfg = record.config
    missing = [k for k in ("method_params", "dataset_params", "recipe", "val_fraction") if k not in cfg]
    if missing:
        raise ConfigError(f"the record does not store {', '.join(missing)} (schema "
                          f"{record.resolved.get('record_schema', '?') if record.resolved else '?'}): "
                          f"its trial cannot be rebuilt")
    resolved = record.resolved or {}
    return RunConfig(
        method=record.method, method_params=dict(cfg["method_params"]), label=record.label,
        dataset=record.dataset, dataset_params=dict(cfg["dataset_params"]), arch=record.arch,
        pruner=record.pruner, sparsity=record.target_sparsity,
        pruner_params=dict(cfg.get("pruner_params") or {}), forget=record.forget,
        holdout=cfg.get("holdout", "test"), seeds=(record.seed,), train_params=dict(cfg["recipe"]),
        val_fraction=cfg["val_fraction"], train_size=cfg.get("train_size"),
        test_size=cfg.get("test_size"), probes={k: dict(v) for k, v in (cfg.get("probes") or {}).items()},
        data_root=data_root, cache_dir=cache_dir, output_dir=output_dir,
        device=record.environment.device.split(":")[0], precision=record.environment.precision,
        compile=record.environment.compile, population=dict(resolved.get("population") or {}))


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def configuration_problems(record: RunRecord, resolved: dict[str, Any]) -> list[str]:
    """Where the configuration planned here differs from the record's (the data fingerprint,
    the code's formats, a component's defaults)."""
    problems = []
    recorded = record.resolved or {}
    for key in sorted(set(recorded) | set(resolved)):
        mine, theirs = resolved.get(key, "(absent)"), recorded.get(key, "(absent)")
        if json.dumps(mine, sort_keys=True, default=str) == json.dumps(theirs, sort_keys=True, default=str):
            continue
        if theirs == UNKNOWN:
            problems.append(f"the record does not store its {key} (an older record): it cannot be "
                            f"checked")
        elif key == "data":
            problems.append(f"data fingerprint differs: the record's {theirs or 'none'}, here "
                            f"{mine or 'none'} (other dataset files: --data-root?)")
        elif key in ("cache_format", "record_schema", "identity"):
            problems.append(f"code format {key} differs: the record's {theirs}, here {mine}")
        else:
            problems.append(f"configuration differs at {key}: the record's {_short(theirs)}, "
                            f"here {_short(mine)}")
    return problems


def pre_checks(record: RunRecord, version: tuple[str, str | None]) -> tuple[list[str], list[str]]:
    """What must match before the trial re-executes: (problems, notes)."""
    problems, notes = [], []
    env = record.environment
    here_version, here_commit = version
    if env.unlearnbench != here_version:
        problems.append(f"code version differs: the record's unlearnbench {env.unlearnbench}, "
                        f"here {here_version}")
    if env.unlearnbench_commit and here_commit and env.unlearnbench_commit != here_commit:
        problems.append(f"code version differs: the record's commit {env.unlearnbench_commit}, "
                        f"here {here_commit}")
    elif env.unlearnbench_commit and env.unlearnbench_commit.endswith("-dirty"):
        notes.append("made with uncommitted changes: the commit does not pin the code")
    device = env.device.split(":")[0]
    if device not in TOLERANCES:
        problems.append(f"device type {device!r} has no tolerance here (known: {', '.join(TOLERANCES)})")
    elif device == "cuda" and not torch.cuda.is_available():
        problems.append("the record ran on cuda; this machine has no CUDA device")
    if record.diverged:
        notes.append("a diverged run")
    return problems, notes


def compare(record: RunRecord, again: RunRecord, tolerance: Tolerance) -> tuple[list[str], int]:
    """The differences between the recorded and the re-executed results, and how many values
    were compared."""
    problems: list[str] = []
    compared = 0

    def check(name: str, recorded: Any, value: Any, unit: str = "") -> None:
        nonlocal compared
        compared += 1
        if recorded == value:
            return
        if isinstance(recorded, (int, float)) and isinstance(value, (int, float)) \
                and not isinstance(recorded, bool) and math.isfinite(recorded) and math.isfinite(value) \
                and tolerance.allows(recorded, value, unit):
            return
        problems.append(f"{name}: recorded {recorded!r}, re-executed {value!r}")

    for name, value in record.metrics.items():
        declaration = record.metric_declarations.get(name)
        unit = declaration.unit if declaration else ""
        if unit in TIME_UNITS:
            continue
        check(f"metric {name}", value, again.metrics.get(name), unit)
    for name, values in record.probes.items():
        for when, value in values.items():
            check(f"probe {name} ({when})", value, again.probes.get(name, {}).get(when), "%")
    check("sparsity", record.sparsity, again.sparsity)
    check("status", record.status, again.status)
    check("split", dataclasses.asdict(record.split), dataclasses.asdict(again.split))
    if record.data_hash is not None:
        check("decoded data hash", record.data_hash, again.data_hash)
    if record.work is not None:
        check("work", dataclasses.asdict(record.work), dataclasses.asdict(again.work) if again.work else None)
    if record.margins is not None:
        for part, values in record.margins.items():
            mine = (again.margins or {}).get(part, [])
            if len(mine) != len(values):
                check(f"margins ({part})", len(values), len(mine))
            for i, (a, b) in enumerate(zip(values, mine)):
                check(f"margin {part}[{i}]", a, b)
    return problems, compared


def verify_record(record: RunRecord, path: Path, *, data_root: Path | None = None,
                  cache_dir: Path | None = None, log: Log = lambda m: None,
                  version: tuple[str, str | None] | None = None) -> Verification:
    """Check, re-execute and compare one record (see the module docstring)."""
    result = Verification(record, path, device=record.environment.device.split(":")[0])
    result.problems, result.notes = pre_checks(record, version or code_version())
    if result.problems:
        return result
    with tempfile.TemporaryDirectory(prefix="unlearnbench-verify-") as scratch:
        try:
            config = record_config(record, data_root=data_root,
                                   cache_dir=cache_dir or Path(scratch) / "cache",
                                   output_dir=Path(scratch) / "records")
            plan = prepare(config)
            result.problems += configuration_problems(record, resolved_config(plan))
        except UnlearnbenchError as exc:
            result.problems.append(f"its configuration cannot be rebuilt here: {' '.join(str(exc).split())}")
        if result.problems:
            return result
        threads = record.environment.threads
        if threads is None:
            result.notes.append(f"the record does not say its thread count: re-executed with "
                                f"{torch.get_num_threads()}")
        previous, before = set_cpu_budget(threads) if threads else None, torch.get_num_threads()
        try:
            log(f"re-executing {record.run_id}")
            data = load_data(plan)
            again = run_trial(plan, data, record.seed, probes=setup_trials(plan, data), log=log).record
        except (UnlearnbenchError, OSError) as exc:
            result.problems.append(f"re-execution failed: {type(exc).__name__}: {' '.join(str(exc).split())}")
            return result
        finally:
            result.threads = torch.get_num_threads()
            if threads:
                set_cpu_budget(previous)
                torch.set_num_threads(before)
    problems, result.compared = compare(record, again, TOLERANCES[result.device])
    result.problems += problems
    return result


def record_files(path: Path) -> list[tuple[Path, RunRecord]]:
    """Every record under ``path`` (a record file, or a folder searched recursively), with its file."""
    path = Path(path)
    if not path.exists():
        raise DataNotFoundError(f"{path} does not exist: expected a record file or a folder of records")
    if path.is_file():
        return [(path, RunRecord.load(path))]
    by_identity = {r.identity: r for r in load_records(path)}  # one per trial (the newest)
    found = []
    for file in sorted(path.rglob("*.json")):
        if file.name == VERIFIED_FILE or not file.is_file():
            continue
        try:
            record = RunRecord.load(file)
        except CorruptFileError:
            continue  # load_records above has already raised for a damaged record
        if by_identity.get(record.identity) is not None and by_identity[record.identity].created == record.created:
            found.append((file, record))
            by_identity[record.identity] = None
    if not found:
        raise DataNotFoundError(f"no run records (*.json) under {path}; nothing to verify")
    return found


def verify_path(path: Path, *, data_root: Path | None = None, cache_dir: Path | None = None,
                log: Log = lambda m: None, report: Log = print) -> list[Verification]:
    """Verify every record under ``path``, printing one line per record with ``report``."""
    version = code_version()
    results = []
    for file, record in record_files(path):
        result = verify_record(record, file, data_root=data_root, cache_dir=cache_dir, log=log,
                               version=version)
        report(result.line())
        results.append(result)
    return results


def write_verified(results: Sequence[Verification], version: tuple[str, str | None] | None = None) -> list[Path]:
    """Record each outcome in ``verified.json`` beside its record (merged with what is there);
    returns the files written."""
    version = version or code_version()
    date = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    by_folder: dict[Path, list[Verification]] = {}
    for result in results:
        by_folder.setdefault(result.path.parent, []).append(result)
    written = []
    for folder, items in by_folder.items():
        path = folder / VERIFIED_FILE
        try:
            entries = json.loads(path.read_text()) if path.is_file() else {}
        except ValueError:
            entries = {}
        if not isinstance(entries, dict):
            entries = {}
        for result in items:
            entries[result.record.identity] = {
                "run_id": result.record.run_id, "verified": result.verified,
                "problems": result.problems, "compared": result.compared, "device": result.device,
                "threads": result.threads, "unlearnbench": version[0], "commit": version[1],
                "date": date}
        atomic_write_text(path, json.dumps(entries, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
