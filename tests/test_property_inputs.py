"""Property tests of every parser a user feeds: seeds, forget specs, KEY=VALUE lists and
component parameters, recipe and audit TOML files, record JSON.

The property, for any input: it works as documented, or it raises an
:class:`~unlearnbench.errors.UnlearnbenchError` whose message is one line; never another
exception type (which the command line would show as a traceback). No test trains a model:
recipes stop at ``prepare``, audits at ``--dry-run``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from unlearnbench.errors import UnlearnbenchError

# UNLEARNBENCH_PROPERTY_SCALE=10: ten times the examples, from a random start (a longer hunt)
HUNT = int(os.environ.get("UNLEARNBENCH_PROPERTY_SCALE", "1"))
SETTINGS = settings(max_examples=60 * HUNT, deadline=None, derandomize=HUNT == 1, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
FEW = settings(SETTINGS, max_examples=25 * HUNT)


def works_or_one_line(call: Callable[[], Any]) -> Any:
    """``call()``'s result, or None when it raised an UnlearnbenchError of one line."""
    try:
        result = call()
    except UnlearnbenchError as exc:
        event(f"refused: {type(exc).__name__}")
        message = str(exc)
        assert message and len(message.splitlines()) == 1, f"{type(exc).__name__} of several lines: {message!r}"
        return None
    event("works")
    return result


# -- values --------------------------------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
SCALARS = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True), st.booleans(), TEXT,
    st.sampled_from(["", "0", "1", "class:0", "random:0.1", "dense", "omp:0.5", "ft", "retrain",
                     "synthetic", "tiny_cnn", "-1", "nan", "inf"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(TEXT, inner, max_size=3), max_leaves=6)


# -- seeds ---------------------------------------------------------------------------------------

SEED_TEXT = st.one_of(
    st.text(st.sampled_from("0123456789,- +x_٣"), max_size=24),
    st.lists(st.integers(-5, 2**40), min_size=1, max_size=4).map(lambda s: ",".join(map(str, s))))


@SETTINGS
@given(SEED_TEXT)
def test_seeds(text: str) -> None:
    from unlearnbench.cli import _seeds
    from unlearnbench.params import MAX_SEED

    seeds = works_or_one_line(lambda: _seeds(text))
    if seeds is not None:
        assert seeds and len(set(seeds)) == len(seeds) and all(0 <= s <= MAX_SEED for s in seeds)
        assert seeds == tuple(int(s) for s in text.split(","))


# -- forget specs --------------------------------------------------------------------------------

FORGET_TEXT = st.one_of(
    TEXT, st.builds(lambda kind, arg: f"{kind}:{arg}", st.sampled_from(["class", "random", "backdoor", "x", ""]),
                    st.one_of(TEXT, st.integers(-3, 10**30).map(str),
                              st.floats(allow_nan=True, allow_infinity=True).map(str))))


@SETTINGS
@given(FORGET_TEXT)
def test_forget_specs(text: str) -> None:
    from unlearnbench.data.splits import ForgetSpec

    scenario = works_or_one_line(lambda: ForgetSpec.parse(text))
    if scenario is not None:
        assert str(ForgetSpec.parse(str(scenario))) == str(scenario)  # what a record shows reads back


# -- KEY=VALUE lists and component parameters ------------------------------------------------------

@SETTINGS
@given(st.lists(st.one_of(TEXT, st.builds("{}={}".format, TEXT, TEXT)), max_size=4))
def test_key_values(items: list[str]) -> None:
    from unlearnbench.cli import _key_values

    result = works_or_one_line(lambda: _key_values(items, "-p"))
    if result is not None:
        assert len(result) == len(items) and all(k and k == k.strip() for k in result)


def _component(kind: str, name: str):
    from unlearnbench import DATASETS, PRUNERS, UNLEARNERS
    from unlearnbench.recipe import TrainRecipe

    if kind == "recipe":
        return TrainRecipe
    return {"unlearner": UNLEARNERS, "pruner": PRUNERS, "dataset": DATASETS}[kind].get(name)


COMPONENTS = [("unlearner", "ft"), ("unlearner", "sparse_ft"), ("unlearner", "scrub"), ("unlearner", "salun"),
              ("pruner", "omp"), ("pruner", "synflow"), ("dataset", "synthetic"), ("dataset", "cifar10"),
              ("recipe", "")]


@SETTINGS
@given(st.sampled_from(COMPONENTS), st.data())
def test_component_parameters_from_strings(component: tuple[str, str], data: st.DataObject) -> None:
    cls = _component(*component)
    names = [spec.name for spec in cls.param_specs()]
    keys = st.one_of(st.sampled_from(names), TEXT) if names else TEXT
    numeric = st.one_of(st.integers(-10, 10**20).map(str), st.floats().map(str),
                        st.sampled_from(["true", "false", "none", "1e309", "-0", "0x10", "1_000", " 3 "]))
    params = data.draw(st.dictionaries(keys, st.one_of(TEXT, numeric), max_size=3))
    works_or_one_line(lambda: cls.from_params(params))


@SETTINGS
@given(st.sampled_from(COMPONENTS), st.data())
def test_component_parameters_of_any_type(component: tuple[str, str], data: st.DataObject) -> None:
    """What a recipe's tables hand over: TOML values, not strings."""
    cls = _component(*component)
    names = [spec.name for spec in cls.param_specs()]
    params = data.draw(st.dictionaries(st.sampled_from(names), VALUES, max_size=2)) if names else {}
    works_or_one_line(lambda: cls.from_params(params))


# -- recipe and audit TOML files -----------------------------------------------------------------

def toml_value(value: Any) -> str:
    """``value`` as an inline TOML value."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):  # TOML's basic strings take JSON's escapes; \x7f must be escaped too
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    return "{" + ", ".join(f"{toml_value(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_table(table: dict[str, Any]) -> str:
    return "".join(f"{toml_value(k)} = {toml_value(v)}\n" for k, v in table.items())


RECIPE = {
    "description": "tiny", "paper": "none",
    "run": {"dataset": "synthetic", "arch": "tiny_cnn", "train": {"epochs": 1}},
    "grid": {"method": ["retrain"], "pruning": ["dense"], "forget": ["class:0"]},
    "scales": {"small": {"train_size": 64}},
}
RECIPE_KEYS = ("dataset", "dataset_params", "arch", "train", "train_params", "val_fraction", "train_size",
               "test_size", "probes", "pruner_params", "tuning", "grid")
GRID_KEYS = ("method", "pruning", "forget")
TOP_KEYS = ("description", "paper", "run", "grid", "scales")
VALID = {"val_fraction": st.floats(-0.5, 1.5), "train_size": st.integers(-2, 300),
         "test_size": st.integers(-2, 300), "dataset": st.sampled_from(["synthetic", "digits", "cifar10"]),
         "arch": st.sampled_from(["tiny_cnn", "mini_vgg", "resnet18"]),
         "train": st.dictionaries(st.sampled_from(["epochs", "lr", "batch_size"]), VALUES, max_size=2),
         "probes": st.dictionaries(st.sampled_from(["backdoor", "transfer", "x"]),
                                   st.dictionaries(TEXT, VALUES, max_size=2), max_size=1)}


def recipe_file(folder: Path, recipe: dict[str, Any]) -> Path:
    text = toml_table({k: v for k, v in recipe.items() if not isinstance(v, dict)})
    for section in ("run", "grid"):
        if isinstance(recipe.get(section), dict):
            text += f"[{section}]\n" + toml_table(recipe[section])
    if isinstance(recipe.get("scales"), dict):
        for scale, table in recipe["scales"].items():
            text += (f"[scales.{toml_value(scale)}]\n" + toml_table(table) if isinstance(table, dict)
                     else f"[scales]\n{toml_value(scale)} = {toml_value(table)}\n")
    path = folder / "my.toml"
    path.write_text(text)
    return path


@st.composite
def edited_recipes(draw: st.DrawFn) -> dict[str, Any]:
    recipe = copy.deepcopy(RECIPE)
    for _ in range(draw(st.integers(1, 2))):
        where = draw(st.sampled_from(["run", "scale", "grid", "top"]))
        small = recipe["scales"].get("small") if isinstance(recipe.get("scales"), dict) else None
        small = small if isinstance(small, dict) else {}  # edited away: edit a table nobody reads
        if where == "top":
            recipe[draw(st.sampled_from(TOP_KEYS))] = draw(VALUES)
            continue
        if where == "grid":
            key = draw(st.sampled_from(GRID_KEYS))
            value = draw(st.one_of(VALUES, st.lists(VALUES, min_size=1, max_size=2)))
            target = recipe["grid"] if draw(st.booleans()) else small.setdefault("grid", {})
        else:
            key = draw(st.sampled_from(RECIPE_KEYS))
            value = draw(st.one_of(VALUES, VALID.get(key, VALUES)))
            target = recipe["run"] if where == "run" else small
        if isinstance(target, dict):
            target[key] = value
    return recipe


@FEW
@given(edited_recipes(), st.sampled_from(["full", "small"]))
def test_recipe_files(recipe: dict[str, Any], scale: str) -> None:
    from unlearnbench.run.config import prepare
    from unlearnbench.run.recipes import load_recipe

    with tempfile.TemporaryDirectory() as folder:
        path = recipe_file(Path(folder), recipe)

        def load():
            configs = load_recipe(path).configs(scale=scale, output_dir=Path(folder) / "out",
                                                cache_dir=Path(folder) / "cache")
            return [prepare(config) for config in configs]

        works_or_one_line(load)


AUDIT = {
    "description": "tiny",
    "run": {"dataset": "synthetic", "arch": "tiny_cnn", "train": {"epochs": 1}},
    "audit": {"metrics": ["klom"], "method": ["ft"], "pruning": ["dense"], "models": 2, "forget": 4},
}
AUDIT_KEYS = ("metrics", "method", "pruning", "models", "forget", "seed", "oracle", "other")
AUDIT_RUN_KEYS = ("dataset_params", "arch", "train", "val_fraction", "train_size", "test_size", "probes")


@st.composite
def edited_audits(draw: st.DrawFn) -> dict[str, Any]:
    audit = copy.deepcopy(AUDIT)
    section = draw(st.sampled_from(["run", "audit", "top"]))
    if section == "top":
        audit[draw(st.sampled_from(["description", "run", "audit", "scales"]))] = draw(VALUES)
    elif section == "run":
        key = draw(st.sampled_from(AUDIT_RUN_KEYS))
        audit["run"][key] = draw(st.one_of(VALUES, VALID.get(key, VALUES)))
    else:
        key = draw(st.sampled_from(AUDIT_KEYS))
        audit["audit"][key] = draw(st.one_of(VALUES, st.integers(-2, 40), st.floats(-1, 2)))
    return audit


def audit_file(folder: Path, audit: dict[str, Any]) -> Path:
    text = toml_table({k: v for k, v in audit.items() if not isinstance(v, dict)})
    for section in ("run", "audit", "scales"):
        if isinstance(audit.get(section), dict):
            text += f"[{section}]\n" + toml_table(audit[section])
    path = folder / "my.toml"
    path.write_text(text)
    return path


@FEW
@given(edited_audits())
def test_audit_files(audit: dict[str, Any]) -> None:
    from unlearnbench.run.audit import load_audit, run_audit

    with tempfile.TemporaryDirectory() as folder:
        path = audit_file(Path(folder), audit)

        def dry_run():
            spec = load_audit(path, output_dir=Path(folder) / "out", cache_dir=Path(folder) / "cache")
            return run_audit(spec, output=Path(folder) / "audit", log=lambda m: None, plots=False, dry_run=True)

        works_or_one_line(dry_run)


# -- record JSON ---------------------------------------------------------------------------------

def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into a JSON value (the value itself first)."""
    paths = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            paths += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            paths += _paths(item, (*prefix, index))
    return paths


def _mutate(data: dict[str, Any], path: tuple, action: str, value: Any) -> None:
    *head, last = path
    parent = data
    for key in head:
        parent = parent[key]
    if action == "replace":
        parent[last] = value
    elif action == "delete":
        del parent[last]
    elif isinstance(parent[last], dict):
        parent[last][str(value)[:10]] = value  # an extra key


@SETTINGS
@given(st.data())
def test_record_json(make_record, data: st.DataObject) -> None:
    from unlearnbench.report.records import RunRecord

    valid = make_record(probes={"ASR": {"before": 90.0, "after": 10.0}}).to_dict()
    valid = json.loads(json.dumps(valid))  # as a file holds it
    assume(RunRecord.from_dict(valid))
    mutated = copy.deepcopy(valid)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(mutated) if p]
        path = data.draw(st.sampled_from(paths))
        action = data.draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        _mutate(mutated, path, action, data.draw(VALUES))
    record = works_or_one_line(lambda: RunRecord.from_dict(mutated, "r.json"))
    if record is not None:  # a record that loads renders and round-trips
        from unlearnbench.report.leaderboard import render
        render([record])
        assert RunRecord.from_dict(json.loads(json.dumps(record.to_dict())), "again").identity == record.identity
