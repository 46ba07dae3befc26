"""Configurable: typed, keyword-only, validated hyperparameters."""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest

from unlearnbench import ConfigError, Configurable, param


class Example(Configurable):
    epochs: int = param(10, ge=1, help="passes")
    lr: float = param(0.01, gt=0, le=1, help="learning rate")
    nesterov: bool = param(False)
    schedule: Literal["constant", "linear"] = param("constant")
    width: Literal[1, 2] = param(1)
    clip: float | None = param(None, gt=0)
    milestones: tuple[float, ...] = param((0.5, 0.75))
    tags: tuple[str, ...] = param(())
    name: str = param("x")


class Ordered(Configurable):
    low: int = param(0)
    high: int = param(1)

    def validate(self) -> None:
        if self.low >= self.high:
            raise ConfigError(f"Ordered: low={self.low} must be below high={self.high}")


class Required(Configurable):
    size: int  # no default: the caller must give it


def test_defaults_and_keyword_only() -> None:
    e = Example()
    assert (e.epochs, e.lr, e.nesterov, e.schedule, e.clip, e.milestones) == \
        (10, 0.01, False, "constant", None, (0.5, 0.75))
    with pytest.raises(TypeError):
        Example(5)  # type: ignore[misc]
    assert dataclasses.is_dataclass(Example)


@pytest.mark.parametrize("kwargs, expected", [
    ({"epochs": 2.0}, "Example.epochs=2.0 is invalid: expected an integer"),
    ({"epochs": True}, "expected an integer"),
    ({"epochs": "3"}, "expected an integer"),
    ({"lr": "0.1"}, "expected a finite float"),
    ({"lr": True}, "expected a finite float"),
    ({"lr": float("inf")}, "expected a finite float"),
    ({"nesterov": 1}, "Example.nesterov=1 is invalid: expected bool"),
    ({"schedule": "cosine"}, "expected one of 'constant', 'linear'"),
    ({"width": True}, "expected one of 1, 2"),
    ({"width": 1.0}, "expected one of 1, 2"),
    ({"clip": "none"}, "expected float | None"),
    ({"milestones": 0.5}, "expected tuple[float, ...]"),
    ({"milestones": (0.5, "x")}, "expected a finite float"),
    ({"name": 3}, "expected str"),
])
def test_type_errors_name_the_parameter_and_the_expected_type(kwargs: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        Example(**kwargs)
    assert expected in str(info.value)
    assert f"Example.{next(iter(kwargs))}=" in str(info.value)


def test_accepted_values_are_normalized() -> None:
    e = Example(lr=1, clip=2, milestones=[0.25, 1], tags=["a"], width=2)
    assert e.lr == 1.0 and type(e.lr) is float
    assert e.clip == 2.0 and type(e.clip) is float
    assert e.milestones == (0.25, 1.0) and type(e.milestones) is tuple
    assert e.tags == ("a",) and e.width == 2


@pytest.mark.parametrize("kwargs, expected", [
    ({"epochs": 0}, "Example.epochs=0 is invalid: expected a value >= 1"),
    ({"lr": 0.0}, "Example.lr=0.0 is invalid: expected a value > 0"),
    ({"lr": 1.5}, "Example.lr=1.5 is invalid: expected a value <= 1"),
    ({"clip": -1.0}, "Example.clip=-1.0 is invalid: expected a value > 0"),
])
def test_bounds(kwargs: dict, expected: str) -> None:
    with pytest.raises(ConfigError, match=f"^{expected.replace('.', '[.]')}$"):
        Example(**kwargs)


def test_bounds_are_inclusive_or_exclusive_as_declared() -> None:
    assert Example(epochs=1, lr=1.0).lr == 1.0
    assert Example(clip=None).clip is None  # the bound applies to numbers only


def test_validate_hook_runs_after_the_type_checks() -> None:
    assert Ordered(low=1, high=2).high == 2
    with pytest.raises(ConfigError, match="low=3 must be below high=2"):
        Ordered(low=3, high=2)
    with pytest.raises(ConfigError, match="expected an integer"):  # type check first
        Ordered(low="3")


def test_from_params_parses_strings_by_declared_type() -> None:
    e = Example.from_params({"epochs": "3", "lr": "1e-3", "nesterov": "true", "schedule": "linear",
                             "width": "2", "clip": "none", "milestones": "0.3, 0.6",
                             "tags": "a, b", "name": "hello"})
    assert e == Example(epochs=3, lr=1e-3, nesterov=True, schedule="linear", width=2, clip=None,
                        milestones=(0.3, 0.6), tags=("a", "b"), name="hello")
    assert Example.from_params({"clip": "0.5"}).clip == 0.5
    assert Example.from_params({"nesterov": "0"}).nesterov is False
    assert Example.from_params({"epochs": 4}).epochs == 4  # non-strings pass through


@pytest.mark.parametrize("params, expected", [
    ({"epochs": "2.5"}, "Example.epochs='2.5' is invalid: expected int"),
    ({"epochs": "0"}, "expected a value >= 1"),
    ({"lr": "fast"}, "Example.lr='fast' is invalid: expected float"),
    ({"lr": "nan"}, "expected a finite float"),
    ({"nesterov": "maybe"}, "expected bool"),
    ({"schedule": "cos"}, "expected {constant,linear}"),
    ({"width": "3"}, "expected {1,2}"),
    ({"milestones": "0.5,x"}, "expected tuple[float, ...]"),
])
def test_from_params_rejects_unparsable_strings(params: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        Example.from_params(params)
    assert expected in str(info.value)


def test_unknown_key_is_an_error_with_suggestion_and_the_valid_keys() -> None:
    with pytest.raises(ConfigError) as info:
        Example.from_params({"epoch": "3"})
    assert str(info.value) == (
        "Unknown parameter of Example 'epoch'. Did you mean 'epochs'? Available: clip, epochs, lr, "
        "milestones, name, nesterov, schedule, tags, width.")


def test_missing_required_parameter() -> None:
    assert Required(size=3).size == 3
    with pytest.raises(ConfigError, match="Required needs parameter"):
        Required.from_params({})


def test_get_params_round_trips_through_from_params_and_json() -> None:
    import json

    e = Example(epochs=7, clip=0.3, milestones=(0.1,), tags=("t",), schedule="linear")
    params = e.get_params()
    assert params == {"epochs": 7, "lr": 0.01, "nesterov": False, "schedule": "linear", "width": 1,
                      "clip": 0.3, "milestones": [0.1], "tags": ["t"], "name": "x"}
    assert Example.from_params(json.loads(json.dumps(params))) == e
    # the command line's strings too
    as_strings = {k: ",".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in params.items()}
    assert Example.from_params(as_strings) == e


def test_param_specs_describe_each_parameter() -> None:
    specs = {s.name: s for s in Example.param_specs()}
    assert specs["epochs"].default == 10 and specs["epochs"].bounds == {"ge": 1}
    assert specs["epochs"].help == "passes"
    assert specs["schedule"].type_name == "{constant,linear}"
    assert specs["clip"].type_name == "float | None"
    assert specs["milestones"].type_name == "tuple[float, ...]"


@pytest.mark.parametrize("default", [[1, 2], {"a": 1}, {1}])
def test_mutable_default_is_rejected(default) -> None:
    with pytest.raises(TypeError, match="mutable defaults are not allowed; use a tuple"):
        param(default)


def test_subclass_inherits_and_extends_parameters() -> None:
    class Longer(Example):
        extra: int = param(1, ge=0)

    assert Longer(extra=2, epochs=3).get_params()["epochs"] == 3
    with pytest.raises(ConfigError, match="Longer.epochs=0"):
        Longer(epochs=0)
