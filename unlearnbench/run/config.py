"""What to run: a trial's configuration, and its validation into a :class:`Plan`.

Every name and parameter is resolved here, before any data is read or any model trained.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..components import DATASETS, PROBES, PRUNERS, UNLEARNERS, check_arch
from ..data.access import DataAccess
from ..data.dataset import Dataset
from ..data.population import Membership
from ..data.splits import ForgetSpec
from ..errors import ConfigError, DataNotFoundError
from ..params import MAX_SEED
from ..probe import Probe
from ..pruner import Pruner, snapshots_needed
from ..recipe import TrainRecipe
from ..scenario import Scenario
from ..storage import CheckpointCache, check_file_name, check_writable_folder
from ..train.progress import interval_s
from ..train.runtime import Runtime
from ..unlearner import Unlearner
from .provenance import planned_run_id

HOLDOUTS = ("test", "validation")


@dataclass(frozen=True)
class RunConfig:
    """What to run; names and parameters are validated by :func:`prepare`."""

    method: str
    method_params: Mapping[str, Any] = field(default_factory=dict)
    label: str | None = None  # the row's name in tables when a method runs in several variants
    dataset: str = "digits"
    dataset_params: Mapping[str, Any] = field(default_factory=dict)
    arch: str | None = None  # None: the dataset's default
    pruner: str | None = None
    sparsity: float | None = None
    pruner_params: Mapping[str, Any] = field(default_factory=dict)
    forget: str = "class:0"
    # what TA, the MIA's non-members and the probes measure on: the test set, or (a tuning
    # trial, unlearnbench.run.tuning) the validation hold-out, so the test set is never read
    holdout: str = "test"
    seeds: tuple[int, ...] = (0,)
    train_params: Mapping[str, Any] = field(default_factory=dict)  # overrides of the recipe
    val_fraction: float = 0.1
    train_size: int | None = None  # a stratified subset of the training set (same for every seed)
    test_size: int | None = None  # ... and of the test set
    # probes measured before and after unlearning besides the scenario's: name -> parameters
    probes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    data_root: Path | None = None
    download: bool = False
    cache_dir: Path = Path("~/.cache/unlearnbench")
    output_dir: Path = Path("results")
    save_model: Path | None = None  # also write each trial's unlearned model here (run_id.pt)
    device: str = "auto"
    precision: str = "auto"
    compile: str = "none"
    # a trial of a population audit: its fixed split, replicate and scored examples
    # (unlearnbench.data.population.Membership as a mapping; empty for an ordinary trial)
    population: Mapping[str, Any] = field(default_factory=dict)
    # epochs of the original's training to keep besides those the pruner needs: a grid sets the
    # union of its pruners' needs, so that an original they share trains once (epochs past the
    # recipe's end are ignored; no part of the identity: snapshots change no metric)
    keep_snapshots: tuple[int, ...] = ()


@dataclass(frozen=True)
class Plan:
    """A validated :class:`RunConfig`: every component resolved and instantiated."""

    config: RunConfig
    dataset: Dataset
    arch: str
    recipe: TrainRecipe
    unlearner: Unlearner
    pruner: Pruner | None
    forget: Scenario
    runtime: Runtime
    cache: CheckpointCache
    probes: Mapping[str, Probe] = field(default_factory=dict)  # the scenario's first
    # the snapshots of the original's training a trial needs: epoch 0, the pruner's, the grid's
    snapshot_epochs: frozenset[int] = frozenset({0})

    @property
    def data_access(self) -> DataAccess:
        """Where the run's data is, for probes that read a dataset of their own."""
        cfg = self.config
        return DataAccess(Path(cfg.data_root).expanduser() if cfg.data_root else None, cfg.download,
                          self.cache, cfg.train_size, cfg.test_size)


def pruning_label(config: RunConfig) -> str:
    return f"{config.pruner}:{config.sparsity:g}" if config.pruner else "dense"


def prepare(config: RunConfig) -> Plan:
    """Resolve and validate everything before any data is read or any model trained."""
    check_fields(config)
    interval_s()  # an invalid UNLEARNBENCH_PROGRESS_INTERVAL stops here, not in the first epoch
    unlearner = UNLEARNERS.get(config.method).from_params(config.method_params)
    dataset = DATASETS.get(config.dataset).from_params(config.dataset_params)
    pruner = None
    if config.pruner is not None:
        pruner = PRUNERS.get(config.pruner).from_params(config.pruner_params)
        if config.sparsity is None or not 0 < config.sparsity < 1:
            raise ConfigError(f"--sparsity {config.sparsity} is invalid: a pruner needs a "
                              f"target sparsity in (0, 1)")
    elif config.sparsity is not None or config.pruner_params:
        raise ConfigError("--sparsity and pruner parameters need --pruner NAME")
    arch = config.arch or dataset.default_arch
    check_arch(arch)
    recipe = dataset.default_recipe().replace(**dict(config.train_params))
    if not config.seeds:
        raise ConfigError("--seeds is empty: expected at least one seed")
    if config.label is not None and not re.fullmatch(r"[A-Za-z0-9_.+-]+", config.label):
        raise ConfigError(f"label {config.label!r} is invalid: use letters, digits and _ . + -")
    if config.save_model is not None and Path(config.save_model).expanduser().is_file():
        raise ConfigError(f"--save-model {config.save_model} is a file: expected a folder for the models")
    if config.population:
        check_population(config)
    if config.holdout not in HOLDOUTS:
        raise ConfigError(f"holdout {config.holdout!r} is invalid: expected one of {', '.join(HOLDOUTS)}")
    if config.holdout == "validation" and not config.val_fraction:
        raise ConfigError("holdout 'validation' needs a validation hold-out: val_fraction > 0")
    forget = ForgetSpec.parse(config.forget)
    snapshots = snapshots_needed(pruner, recipe) | {e for e in config.keep_snapshots
                                                    if 0 <= e <= recipe.epochs}
    plan = Plan(config, dataset, arch, recipe, unlearner, pruner, forget,
                Runtime.resolve(config.device, config.precision, config.compile),
                CheckpointCache(config.cache_dir), make_probes(forget, config.probes), snapshots)
    check_locations(plan)
    return plan


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, Path))


_OPTIONAL = {"label": str, "arch": str, "pruner": str}
_TEXT = ("method", "dataset", "forget", "holdout", "device", "precision", "compile")
_TABLES = ("method_params", "dataset_params", "pruner_params", "train_params", "probes", "population")


def check_fields(config: RunConfig) -> None:
    """Each field of a RunConfig of its type and range (a recipe file or a caller of the API
    may hand over anything), so a wrong one is one line before any data is read."""
    def fail(name: str, expected: str) -> ConfigError:
        return ConfigError(f"{name}={getattr(config, name)!r} is invalid: expected {expected}")

    for name in _TEXT:
        if not isinstance(getattr(config, name), str):
            raise fail(name, "a string")
    for name, kind in _OPTIONAL.items():
        if not isinstance(getattr(config, name), (kind, type(None))):
            raise fail(name, "a string")
    for name in _TABLES:
        if not isinstance(getattr(config, name), Mapping) or not all(
                isinstance(k, str) for k in getattr(config, name)):
            raise fail(name, "a table of KEY = VALUE")
    if not all(isinstance(v, Mapping) for v in config.probes.values()):
        raise fail("probes", "a table of probe names, each with a table of its parameters")
    if config.sparsity is not None and not _is_number(config.sparsity):
        raise fail("sparsity", "a number in (0, 1)")
    if not (_is_number(config.val_fraction) and 0 <= config.val_fraction < 1):
        raise fail("val_fraction", "a number in [0, 1)")
    for name in ("train_size", "test_size"):
        if (size := getattr(config, name)) is not None and not (_is_int(size) and size >= 1):
            raise fail(name, "a positive number of images")
    if not (isinstance(config.seeds, (tuple, list))
            and all(_is_int(s) and 0 <= s <= MAX_SEED for s in config.seeds)):
        raise fail("seeds", f"integers 0 to {MAX_SEED}")
    if not (isinstance(config.keep_snapshots, (tuple, list)) and all(map(_is_int, config.keep_snapshots))):
        raise fail("keep_snapshots", "epoch numbers")
    if not isinstance(config.download, bool):
        raise fail("download", "true or false")
    for name in ("cache_dir", "output_dir"):
        if not _is_path(getattr(config, name)):
            raise fail(name, "a folder")
    for name in ("data_root", "save_model"):
        if getattr(config, name) is not None and not _is_path(getattr(config, name)):
            raise fail(name, "a folder")


def check_population(config: RunConfig) -> None:
    """A population's trial forgets exactly the examples it lists: its forget spec must say
    ``random:N`` with N their number (what records and tables show)."""
    membership = Membership.from_mapping(config.population)
    expected = f"random:{len(membership.forget)}"
    if str(ForgetSpec.parse(config.forget)) != expected:
        raise ConfigError(f"forget spec {config.forget!r} does not describe the population's forget "
                          f"set: expected {expected!r}")


def share_snapshots(configs: Sequence[RunConfig]) -> list[RunConfig]:
    """``configs``, each keeping (``keep_snapshots``) every snapshot that the pruners of the
    configurations that may share its original need (same dataset, architecture and recipe),
    so that the original trains once and holds them all. Configurations that need no more than
    the initialization are returned as they are."""
    plans = _distinct_plans(configs)
    needs: dict[str, set[int]] = {}
    for key, plan in plans:
        needs.setdefault(key, set()).update(plan.snapshot_epochs - {0})
    shared = []
    for config in configs:
        key = next(k for (k, plan) in plans if plan.config == config)
        more = tuple(sorted(needs[key] | set(config.keep_snapshots)))
        shared.append(dataclasses.replace(config, keep_snapshots=more) if more else config)
    return shared


def _distinct_plans(configs: Sequence[RunConfig]) -> list[tuple[str, Plan]]:
    """One (original's key, plan) per distinct configuration."""
    plans: list[tuple[str, Plan]] = []
    for config in configs:
        if not any(plan.config == config for _, plan in plans):
            plan = prepare(config)
            key = json.dumps([config.dataset, plan.dataset.get_params(), plan.arch,
                              plan.recipe.get_params()], sort_keys=True, default=str)
            plans.append((key, plan))
    return plans


def make_probes(scenario: Scenario, asked: Mapping[str, Mapping[str, Any]]) -> dict[str, Probe]:
    """The probes of a trial, validated: the scenario's, then those the configuration asks for."""
    needed = scenario.probes()
    if twice := sorted(set(needed) & set(asked)):
        raise ConfigError(f"probe {twice[0]!r} is measured by the scenario {scenario} already; "
                          f"expected it once (drop it from the probes)")
    return {name: PROBES.get(name).from_params(params)
            for name, params in {**needed, **asked}.items()}


def check_locations(plan: Plan) -> None:
    """Folders and file names that would otherwise fail only after the compute: the data roots
    exist, the output and cache folders are writable, and every record's name fits."""
    config = plan.config
    if config.data_root is not None:
        root = Path(config.data_root).expanduser()
        if config.download:  # the download creates it
            check_writable_folder(root, "--data-root")
        elif not root.is_dir():
            raise DataNotFoundError(f"--data-root {root} {'is a file' if root.exists() else 'does not exist'}; "
                                    f"expected the folder holding the dataset")
    for probe in plan.probes.values():
        probe.check(plan.data_access)
    check_writable_folder(config.output_dir, "--output")
    check_writable_folder(config.cache_dir, "--cache-dir")
    for seed in config.seeds:
        check_file_name(f"{planned_run_id(plan, seed)}.json",
                        f"--label {config.label!r}" if config.label else "this run's record")

