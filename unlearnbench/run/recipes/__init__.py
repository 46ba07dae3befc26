"""The paper's experiments as recipes: TOML files that expand into grids of runs.

A recipe (``unlearnbench/run/recipes/NAME.toml``, or any file with the same layout) has::

    description = "what it reproduces"
    paper = "where the published numbers are"

    [run]                 # RunConfig fields shared by every run of the recipe
    dataset = "cifar10"

    [grid]                # the cartesian product of these lists, in this order
    method = ["retrain", "ft", {method = "sparse_ft", label = "sparse_ft-constant",
                                params = {scheduler = "constant"}}]
    pruning = ["dense", "omp:0.95"]       # "dense" or "PRUNER:SPARSITY"
    forget = ["class:0", "random:0.1"]

    [scales.small]        # overrides of [run] for --scale small (a subset and a smaller model)
    arch = "mini_vgg"
    train_size = 5000
    grid = {pruning = ["dense", "omp:0.5"]}   # and, optionally, of [grid]
    tuning = {values = "tuned/NAME-small.json", criteria = ["oracle", "oracle-free"]}

``tuning`` (in ``[run]`` for the full scale, or in a scale's table) names the file of tuned
values that ``unlearnbench tune --recipe NAME`` writes (relative to the recipe's folder;
``unlearnbench.run.tuning``): every grid method with values for its cell runs with them, once
per criterion listed, the oracle-free variant under the label ``METHOD.oracle-free`` (a
criterion that chose the oracle's values adds no second row). Methods that declare no search
space (Retrain, ``none``) run as written; a tunable method without values for its cell is an
error before anything runs.

A recipe may run with another recipe's study instead of its own, declaring which tuned cell
serves each of its cells::

    tuning = {values = "tuned/main-table-small.json", criteria = ["oracle"],
              borrow = {"dense|backdoor:0.1" = "dense|random:0.1", "*|backdoor:0.1" = "omp:0.95|random:0.1"}}

``borrow`` maps cell patterns (``PRUNING|FORGET``, shell-style wildcards, the first match
wins) to a cell of the file; a cell the file holds itself is never borrowed. A study of such a
recipe (``unlearnbench tune --recipe``) never writes the file it borrows: only ``--values``.

Every run writes its record under ``OUTPUT/records/``; a trial whose record (of the same
identity, see ``unlearnbench.run.identity``) is already there is not run again, so an
interrupted recipe resumes where it stopped and a changed one re-runs only its changed cells. Afterwards ``OUTPUT/table.md`` and
the pictures in ``OUTPUT/plots/`` are rendered from all records of the folder.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ...components import UNLEARNERS
from ...errors import ConfigError, unknown_name_message
from ...identity import config_identity, jsonable, trial_identity
from ...report.leaderboard import render
from ...report.records import load_records
from ...storage import atomic_write_text
from ..config import RunConfig, prepare, pruning_label
from ..executors import LocalExecutor, Trial, run_grid
from ..identity import recorded, resolved_config
from ..trial import load_data
from ..tuning import CRITERIA, Cell, cell_key, load_values

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

GRID_KEYS = ("method", "pruning", "forget")
# RunConfig fields a recipe may set in [run] or [scales.*]; the rest come from the command line.
RECIPE_FIELDS = ("dataset", "dataset_params", "arch", "train_params", "val_fraction", "train_size",
                 "test_size", "probes", "pruner_params")
ALIASES = {"train": "train_params"}


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    paper: str
    run: Mapping[str, Any]
    grid: Mapping[str, Sequence[Any]]
    scales: Mapping[str, Mapping[str, Any]]
    scale_grids: Mapping[str, Mapping[str, Sequence[Any]]] = dataclasses.field(default_factory=dict)
    tuning: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)  # by scale
    folder: Path | None = None  # where the recipe file lies (tuned values are relative to it)

    @property
    def scale_names(self) -> tuple[str, ...]:
        return ("full", *self.scales)

    def values_path(self, scale: str) -> Path | None:
        """The tuned-values file the scale declares (None: it declares none)."""
        entry = self.tuning.get(scale)
        if not entry:
            return None
        return (self.folder or Path(".")) / entry["values"]

    def tuned_values(self, scale: str) -> dict[str, Any] | None:
        """The scale's tuned values; an error when it declares a file that is not there."""
        path = self.values_path(scale)
        if path is None:
            return None
        if not path.is_file():
            raise ConfigError(f"recipe {self.name!r} ({scale}) runs with the tuned values of {path}, "
                              f"which does not exist; expected `unlearnbench tune --recipe {self.name} "
                              f"--scale {scale}` to have written it")
        return load_values(path)

    def configs(self, *, scale: str = "full", seeds: tuple[int, ...] = (0,),
                probe_params: Mapping[str, Mapping[str, Any]] | None = None, tuned: bool = True,
                **common: Any) -> list[RunConfig]:
        """One RunConfig per grid point (all seeds in each), validated before anything runs.
        ``probe_params`` adds parameters to the recipe's probes of those names (e.g. where a
        probe's data is, from the command line); a probe the recipe does not ask for is left out.
        ``tuned``: apply the scale's tuned values (False: the grid as written, what a tuning
        study starts from)."""
        if scale not in self.scale_names:
            raise ConfigError(f"--scale {scale!r} is invalid for recipe {self.name!r}: expected "
                              f"one of {', '.join(self.scale_names)}")
        base = {**self.run, **(self.scales.get(scale, {}))}
        if probe_params and "probes" in base:
            base["probes"] = {name: {**params, **(probe_params.get(name) or {})}
                              for name, params in base["probes"].items()}
        grid = {**self.grid, **self.scale_grids.get(scale, {})}
        configs, where = [], f"recipe {self.name!r}"
        for method, pruning, forget in itertools.product(*(grid[k] for k in GRID_KEYS)):
            configs.append(RunConfig(**base, **method_entry(method, where), **pruning_entry(pruning, where),
                                     forget=forget, seeds=seeds, **common))
        if tuned and (values := self.tuned_values(scale)) is not None:
            entry = self.tuning[scale]
            configs = with_tuned_values(configs, values["values"], entry.get("criteria", ["oracle"]),
                                        borrow=entry.get("borrow", {}), where=f"recipe {self.name!r} ({scale})")
        seen: dict[str, RunConfig] = {}
        for config in configs:  # every name and parameter checked before the first run starts
            identity = config_identity(resolved_config(prepare(config)))
            if (twin := seen.setdefault(identity, config)) is not config:
                raise ConfigError(f"recipe {self.name!r}: grid entries {_cell(twin)} and {_cell(config)} "
                                  f"are the same configuration (a label is only a row's name); "
                                  f"give them different parameters or drop one")
        return configs


def with_tuned_values(configs: Sequence[RunConfig], values: Mapping[str, Any],
                      criteria: Sequence[str], *, borrow: Mapping[str, str] | None = None,
                      where: str = "recipe") -> list[RunConfig]:
    """``configs`` with the tuned values of their cell (``PRUNING|FORGET``, or the cell
    ``borrow`` names for it: :func:`source_cell`) and row (label or method): one configuration
    per criterion, the first keeping the row's label and each other labelled ``ROW.CRITERION``;
    a criterion whose values another already runs adds none. A tunable method without values
    is an error."""
    out = []
    for config in configs:
        row = config.label or config.method
        cell = source_cell(f"{pruning_label(config)}|{config.forget}", values, borrow or {})
        chosen = values.get(cell, {}).get(row)
        if not chosen:
            if UNLEARNERS.get(config.method).search_space:
                raise ConfigError(f"{where}: the tuned values hold none for {row} at {cell}; expected "
                                  f"that cell in the file, or a `borrow` pattern that names a cell it holds")
            out.append(config)
            continue
        done: list[dict[str, Any]] = []
        for index, criterion in enumerate(criteria):
            if criterion not in chosen:
                raise ConfigError(f"tuned values of {row} at {pruning_label(config)} {config.forget} "
                                  f"lack the criterion {criterion!r}")
            params = {**config.method_params, **chosen[criterion]}
            if params in done:
                continue
            done.append(params)
            label = config.label if index == 0 else f"{row}.{criterion}"
            out.append(dataclasses.replace(config, method_params=params, label=label))
    return out


def source_cell(cell: str, values: Mapping[str, Any], borrow: Mapping[str, str]) -> str:
    """The tuned cell whose values ``cell`` runs with: itself where the file holds it, else
    the target of the first ``borrow`` pattern it matches (else itself)."""
    if cell in values:
        return cell
    return next((source for pattern, source in borrow.items() if fnmatch.fnmatchcase(cell, pattern)), cell)


def _cell(config: RunConfig) -> str:
    return f"'{config.label or config.method} {pruning_label(config)} {config.forget}'"


def method_entry(entry: Any, where: str) -> dict[str, Any]:
    """A grid's method entry; ``where`` (e.g. ``recipe 'NAME'``) begins an error message."""
    if isinstance(entry, str):
        return {"method": entry}
    if isinstance(entry, dict) and isinstance(entry.get("method"), str) \
            and set(entry) <= {"method", "label", "params"} \
            and isinstance(entry.get("label", ""), str) and isinstance(entry.get("params", {}), dict):
        return {"method": entry["method"], "label": entry.get("label"),
                "method_params": dict(entry.get("params", {}))}
    raise ConfigError(f"{where}: grid method entry {entry!r} is invalid: expected a name "
                      f"or {{method = NAME, label = ROW, params = {{...}}}}")


def pruning_entry(entry: Any, where: str) -> dict[str, Any]:
    if entry == "dense":
        return {}
    pruner, sep, sparsity = (entry if isinstance(entry, str) else "").partition(":")
    try:
        value = float(sparsity) if sep and pruner else None
    except ValueError:
        value = None
    if value is None:
        raise ConfigError(f"{where}: pruning entry {entry!r} is invalid: expected "
                          f"'dense' or 'PRUNER:SPARSITY', e.g. 'omp:0.95'")
    return {"pruner": pruner, "sparsity": value}


def _is_table(value: Any) -> bool:
    return isinstance(value, dict)


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


# what each recipe field holds, and how an error says it
FIELD_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "dataset": (lambda v: isinstance(v, str), "a dataset name"),
    "dataset_params": (_is_table, "a table of KEY = VALUE"),
    "arch": (lambda v: isinstance(v, str), "an architecture name"),
    "train_params": (_is_table, "a table of KEY = VALUE, e.g. { epochs = 2 }"),
    "val_fraction": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1,
                     "a number in [0, 1)"),
    "train_size": (_is_size, "a positive number of images"),
    "test_size": (_is_size, "a positive number of images"),
    "probes": (lambda v: _is_table(v) and all(map(_is_table, v.values())),
               "a table of probe names, each with a table of its parameters"),
    "pruner_params": (_is_table, "a table of KEY = VALUE"),
}


SECTION_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "description": (lambda v: isinstance(v, str), "a string"),
    "paper": (lambda v: isinstance(v, str), "a string"),
    "run": (_is_table, "a [run] table"),
    "grid": (_is_table, "a [grid] table"),
    "scales": (lambda v: _is_table(v) and all(map(_is_table, v.values())), "[scales.NAME] tables"),
}


def _fields(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    out = {}
    for key, value in table.items():
        field = ALIASES.get(key, key)
        if field not in RECIPE_FIELDS:
            raise ConfigError(f"{where}: unknown key {key!r}; expected one of {', '.join(RECIPE_FIELDS)}")
        ok, expected = FIELD_TYPES[field]
        if not ok(value):
            raise ConfigError(f"{where}: {key} = {toml_text(value)} is invalid: expected {expected}")
        out[field] = value
    return out


def toml_text(value: Any) -> str:
    """A value as the recipe spells it (near enough for an error message), on one line."""
    return json.dumps(value, default=str) if not isinstance(value, bool) else str(value).lower()


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A bundled recipe by name, or a recipe file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.is_file():
        text, name = path.read_text(), path.stem
    else:
        bundled = {p.stem: p for p in _bundled()}
        if str(name_or_path) not in bundled:
            raise ConfigError(unknown_name_message("recipe", str(name_or_path), bundled))
        text, name = bundled[str(name_or_path)].read_text(), str(name_or_path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"recipe {name!r} is not valid TOML: {exc}") from exc
    unknown = set(data) - {"description", "paper", "run", "grid", "scales"}
    if unknown:
        raise ConfigError(f"recipe {name!r}: unknown sections {sorted(unknown)}")
    for key, (ok, expected) in SECTION_TYPES.items():
        if key in data and not ok(data[key]):
            raise ConfigError(f"recipe {name!r}: {key} = {toml_text(data[key])} is invalid: expected {expected}")
    grid = _grid(data.get("grid", {}), f"recipe {name!r} [grid]", complete=True)
    scales, scale_grids, tuning = {}, {}, {}
    run = dict(data.get("run", {}))
    if "tuning" in run:
        tuning["full"] = tuning_entry(run.pop("tuning"), f"recipe {name!r} [run] tuning")
    for scale, table in data.get("scales", {}).items():
        where = f"recipe {name!r} [scales.{scale if scale.isprintable() else repr(scale)}]"
        table = dict(table)
        scale_grids[scale] = _grid(table.pop("grid", {}), f"{where} grid", complete=False)
        if "tuning" in table:
            tuning[scale] = tuning_entry(table.pop("tuning"), f"{where} tuning")
        scales[scale] = _fields(table, where)
    return Recipe(name, data.get("description", ""), data.get("paper", ""),
                  _fields(run, f"recipe {name!r} [run]"), grid, scales, scale_grids, tuning,
                  folder=path.parent if path.suffix == ".toml" and path.is_file() else
                  Path(str(resources.files(__name__))))


def tuning_entry(entry: Any, where: str) -> dict[str, Any]:
    borrow = entry.get("borrow", {}) if isinstance(entry, dict) else None
    if not (isinstance(entry, dict) and isinstance(entry.get("values"), str)
            and set(entry) <= {"values", "criteria", "borrow"} and isinstance(entry.get("criteria", []), list)
            and all(c in CRITERIA for c in entry.get("criteria", ["oracle"]))
            and entry.get("criteria", ["oracle"])
            and isinstance(borrow, dict) and all(isinstance(v, str) and "|" in v for v in borrow.values())):
        raise ConfigError(f"{where} is invalid: expected {{values = \"FILE.json\", criteria = "
                          f"[...], borrow = {{\"PATTERN\" = \"PRUNING|FORGET\", ...}}}} with criteria "
                          f"among {', '.join(CRITERIA)} (borrow optional)")
    return {"values": entry["values"], "criteria": list(entry.get("criteria", ["oracle"])),
            "borrow": dict(borrow)}


def _grid(table: Mapping[str, Any], where: str, *, complete: bool) -> dict[str, list]:
    if not isinstance(table, dict) or (complete and set(table) != set(GRID_KEYS)) \
            or not set(table) <= set(GRID_KEYS) \
            or not all(isinstance(v, list) and v for v in table.values()):
        raise ConfigError(f"{where} needs non-empty lists "
                          f"{'of ' if not complete else ''}{', '.join(GRID_KEYS)}")
    for entry in table.get("method", []):
        method_entry(entry, where)
    for entry in table.get("pruning", []):
        pruning_entry(entry, where)
    for entry in table.get("forget", []):
        if not isinstance(entry, str):
            raise ConfigError(f"{where}: forget entry {toml_text(entry)} is invalid: expected a forget "
                              f"spec such as \"class:0\" or \"random:0.1\"")
    return dict(table)


def _bundled() -> list[Path]:
    folder = resources.files(__name__)
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml"))


def bundled_recipes() -> list[Recipe]:
    return [load_recipe(p.stem) for p in _bundled()]


def pending(configs: Sequence[RunConfig], records: Path) -> list[RunConfig]:
    """The configs in order, each cut to the seeds whose trial has no record in ``records``
    yet (possibly none). A trial is done when a record of its identity is there: a changed
    recipe, parameter, dataset or precision makes a new trial, and only that one runs."""
    def left(config: RunConfig) -> tuple[int, ...]:
        resolved = resolved_config(prepare(config))
        return tuple(s for s in config.seeds if not recorded(records, trial_identity(resolved, s)))
    return [dataclasses.replace(c, seeds=left(c)) for c in configs]


def reproduce(recipe: Recipe, *, output: Path, scale: str = "full", seeds: tuple[int, ...] = (0,),
              log: Callable[[str], None] = print, plots: bool = True, executor: Any = None,
              probe_params: Mapping[str, Mapping[str, Any]] | None = None,
              **common: Any) -> dict[str, Any]:
    """Run every pending trial of ``recipe`` (on ``executor``, default in-process), then render
    the table and the pictures."""
    records_dir = output / "records"
    configs = recipe.configs(scale=scale, seeds=seeds, output_dir=records_dir,
                             probe_params=probe_params, **common)
    todo = [c for c in pending(configs, records_dir) if c.seeds]
    check_against_data(todo)
    total = sum(len(c.seeds) for c in configs)
    log(f"recipe {recipe.name} ({scale}): {total} runs, {sum(len(c.seeds) for c in todo)} to do")
    start = time.perf_counter()
    records = run_grid([Trial(config, seed) for config in todo for seed in config.seeds],
                       executor or LocalExecutor(), log=log, resume=True)
    diverged = sum(r.diverged for r in records)
    seconds = time.perf_counter() - start
    records = load_records(records_dir, log=log)
    atomic_write_text(output / "table.md", table_text(recipe, scale, records, render(records)))
    summary = {"recipe": recipe.name, "scale": scale, "seeds": list(seeds), "runs": total,
               "ran": sum(len(c.seeds) for c in todo), "wall_clock_s": round(seconds, 1),
               "configs": [jsonable(dataclasses.asdict(c)) for c in configs]}
    write_provenance(output / "recipe.json", summary, log)
    summary["diverged"] = diverged
    if plots:
        from ...report.plots import plot_all  # matplotlib loads only when pictures are drawn
        plot_all(records, output / "plots", "png", log=log)
    log(f"{summary['ran']} runs in {seconds:.0f} s; table in {output / 'table.md'}")
    return summary


def check_against_data(configs: Sequence[RunConfig]) -> None:
    """What needs the data (a forget class or backdoor target beyond the class count, a subset
    larger than the data), checked for every cell before the first one runs."""
    loaded: dict[str, Any] = {}
    for config in configs:
        plan = prepare(config)
        key = json.dumps([config.dataset, plan.dataset.get_params(), str(config.data_root),
                          config.train_size, config.test_size])
        if key not in loaded:
            data = load_data(plan)
            loaded[key] = data.num_classes
        plan.forget.check(loaded[key])


def write_provenance(path: Path, summary: dict[str, Any], log: Callable[[str], None]) -> None:
    """Write ``recipe.json``; a run that ran nothing leaves the file as it was, and runs added
    to a recipe that already ran the same grid (the same configurations, seeds aside), or a grid
    it extends (every configuration of the earlier one kept), add to its counts (the file never
    holds less than before); a changed grid starts them afresh."""
    summary, previous = dict(summary), None
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except (OSError, ValueError):
            previous = None
    if previous is not None and summary["ran"] == 0:
        log(f"nothing ran; {path} kept as it was")
        return
    if isinstance(previous, dict) and (previous.get("recipe"), previous.get("scale")) == (
            summary["recipe"], summary["scale"]) and _extends(_unseeded(summary), _unseeded(previous)):
        for key in ("ran", "wall_clock_s"):
            if isinstance(previous.get(key), (int, float)):
                summary[key] = round(summary[key] + previous[key], 1) if key == "wall_clock_s" \
                    else summary[key] + previous[key]
        summary["seeds"] = sorted(set(summary["seeds"]) | set(previous.get("seeds") or []))
    atomic_write_text(path, json.dumps(summary, indent=2) + "\n")


def _extends(grid: Sequence[Any], earlier: Sequence[Any]) -> bool:
    """Whether ``grid`` holds every configuration of ``earlier`` (the same grid, or one grown);
    a file that names no configurations matches only a grid that names none either."""
    return all(config in grid for config in earlier) if earlier else not grid


def _unseeded(summary: Mapping[str, Any]) -> list[Any]:
    """A recipe.json's configurations without their seeds: what a resumed run must share."""
    configs = summary.get("configs")
    return [{k: v for k, v in c.items() if k != "seeds"} if isinstance(c, dict) else c
            for c in configs] if isinstance(configs, list) else []


def table_text(recipe: Recipe, scale: str, records: Sequence[Any], table: str) -> str:
    """table.md: the recipe's description (the paper's setting), what the records themselves
    ran (so a caption never names the paper's model over a small scale's runs), the table."""
    return (f"# {recipe.name} ({scale})\n\n{recipe.description}\n\n{records_setting(records)}\n\n"
            f"Published numbers: {recipe.paper}\n\n{table}")


def records_setting(records: Sequence[Any]) -> str:
    """One line naming the architectures, datasets and subset sizes the records ran."""
    def sizes(r: Any) -> str:
        train, test = r.config.get("train_size"), r.config.get("test_size")
        if train is None and test is None:
            return "all images"
        return f"{train or 'all'} training / {test or 'all'} test images"
    settings = sorted({f"{r.arch} on {r.dataset} ({sizes(r)})" for r in records})
    return f"These records ran: {'; '.join(settings) or 'nothing yet'}."


def recipe_cells(name: str, scale: str, *, execution: Mapping[str, Any]
                 ) -> tuple[list[Cell], Path | None, Path]:
    """The cells of a recipe's grid (its pruning x forget specs), each with the grid's methods
    that declare a search space; the values file the scale declares; the study's folder."""
    recipe = load_recipe(name)
    configs = recipe.configs(scale=scale, tuned=False, **execution)
    cells: dict[str, list[str]] = {}
    bases: dict[str, RunConfig] = {}
    variants: dict[str, tuple[str, dict[str, Any]]] = {}
    for config in configs:
        bases.setdefault(cell_key(config), config)
        if UNLEARNERS.get(config.method).search_space:
            row = config.label or config.method  # a labelled variant is tuned as its own row
            variants[row] = (config.method, dict(config.method_params))
            cells.setdefault(cell_key(config), [])
            cells[cell_key(config)].append(row)
    values = recipe.values_path(scale)
    if values is not None and recipe.tuning[scale].get("borrow"):
        values = None  # the file is another study's: a study of this recipe writes only where --values says
    return ([Cell(bases[key], tuple(dict.fromkeys(rows)), variants) for key, rows in cells.items()],
            values, default_output(recipe, scale) / "tuning")


def default_output(recipe: Recipe, scale: str) -> Path:
    return Path("leaderboard") / (recipe.name if scale == "full" else f"{recipe.name}-{scale}")
