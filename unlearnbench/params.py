"""Typed, keyword-only, validated hyperparameters for every configurable component.

A component (unlearner, pruner, dataset, training recipe) declares its hyperparameters as
annotated class attributes; ``Configurable`` turns the class into a keyword-only dataclass,
checks types and bounds on construction, and builds instances from string-valued mappings
(the CLI's ``-p key=value``) with a clear error for unknown keys. In the spirit of
scikit-learn's ``BaseEstimator``: ``__init__`` only stores, ``get_params`` is derived from
the declaration, and a bad key names the valid ones::

    class FineTune(Unlearner):
        epochs: int = param(10, ge=1, help="passes over the retain set")
        lr: float = param(0.01, gt=0, help="constant SGD learning rate")
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, get_args, get_origin

from .errors import ConfigError, unknown_name_message

C = TypeVar("C", bound="Configurable")
INT_LIMIT = 2**63
MAX_SEED = 2**31 - 1  # the largest trial seed: what every generator takes (torch, numpy, an int32)

_BOUNDS = {"ge": (lambda v, b: v >= b, ">="), "gt": (lambda v, b: v > b, ">"),
           "le": (lambda v, b: v <= b, "<="), "lt": (lambda v, b: v < b, "<")}


def param(default: Any, *, help: str = "", ge: float | None = None, gt: float | None = None,
          le: float | None = None, lt: float | None = None) -> Any:
    """Declare a hyperparameter with its default, bounds and a one-line description."""
    bounds = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults are not allowed; use a tuple")
    return dataclasses.field(default=default, metadata={"help": help, "bounds": bounds})


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    name: str
    type: Any
    default: Any
    help: str
    bounds: Mapping[str, float]

    @property
    def type_name(self) -> str:
        return _type_name(self.type)


class Configurable:
    """Base of every component with hyperparameters (see the module docstring)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclasses.dataclass(kw_only=True, repr=True, eq=True)(cls)

    def __post_init__(self) -> None:
        for spec in self.param_specs():
            value = getattr(self, spec.name)
            setattr(self, spec.name, _check_value(type(self), spec, value))
        self.validate()

    def validate(self) -> None:
        """Cross-parameter checks; raise :class:`ConfigError` with the offending values."""

    @classmethod
    def param_specs(cls) -> list[ParamSpec]:
        hints = typing.get_type_hints(cls)
        specs = []
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            default = f.default if f.default is not dataclasses.MISSING else dataclasses.MISSING
            specs.append(ParamSpec(f.name, hints[f.name], default, f.metadata.get("help", ""),
                                   f.metadata.get("bounds", {})))
        return specs

    @classmethod
    def from_params(cls: type[C], params: Mapping[str, Any] | None = None) -> C:
        """Build an instance; string values are parsed by each parameter's declared type."""
        params = dict(params or {})
        specs = {s.name: s for s in cls.param_specs()}
        unknown = [k for k in params if k not in specs]
        if unknown:
            raise ConfigError(unknown_name_message(f"parameter of {cls.__name__}", unknown[0], specs))
        missing = [n for n, s in specs.items() if s.default is dataclasses.MISSING and n not in params]
        if missing:
            raise ConfigError(f"{cls.__name__} needs parameter(s) {', '.join(missing)}")
        parsed = {k: _parse(cls, specs[k], v) if isinstance(v, str) else v for k, v in params.items()}
        return cls(**parsed)

    def get_params(self) -> dict[str, Any]:
        """Every hyperparameter, defaults included, as JSON-friendly values."""
        return {s.name: _jsonable(getattr(self, s.name)) for s in self.param_specs()}


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "{" + ",".join(str(a) for a in get_args(tp)) + "}"
    if get_origin(tp) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if get_origin(tp) is tuple:
        return f"tuple[{_type_name(get_args(tp)[0])}, ...]"
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _fail(cls: type, spec: ParamSpec, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{cls.__name__}.{spec.name}={value!r} is invalid: expected {expected}")


def _check_value(cls: type, spec: ParamSpec, value: Any) -> Any:
    value = _coerce(cls, spec, spec.type, value)
    for key, bound in spec.bounds.items():
        ok, symbol = _BOUNDS[key]
        if isinstance(value, (int, float)) and not ok(value, bound):
            raise _fail(cls, spec, value, f"a value {symbol} {bound}")
    return value


def _coerce(cls: type, spec: ParamSpec, tp: Any, value: Any) -> Any:
    origin = get_origin(tp)
    if origin is Literal:
        # type-exact: True == 1 and 1.0 == 1, but neither is the choice 1
        if not any(type(value) is type(choice) and value == choice for choice in get_args(tp)):
            raise _fail(cls, spec, value, f"one of {', '.join(map(repr, get_args(tp)))}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in get_args(tp):
            return None
        for arg in (a for a in get_args(tp) if a is not type(None)):
            try:
                return _coerce(cls, spec, arg, value)
            except ConfigError:
                pass
        raise _fail(cls, spec, value, _type_name(tp))
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            raise _fail(cls, spec, value, _type_name(tp))
        return tuple(_coerce(cls, spec, get_args(tp)[0], v) for v in value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _fail(cls, spec, value, "a finite float")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(cls, spec, value, "an integer")
        if not -INT_LIMIT <= value < INT_LIMIT:  # torch and range() lengths overflow past 64 bits
            raise _fail(cls, spec, value, "an integer that fits in 64 bits (|value| < 2**63)")
        return value
    if tp in (bool, str) and not isinstance(value, tp):
        raise _fail(cls, spec, value, tp.__name__)
    return value


def _parse(cls: type, spec: ParamSpec, text: str) -> Any:
    """Parse a command-line string by the declared type (the check happens in __post_init__)."""
    tp = spec.type
    if get_origin(tp) in (typing.Union, types.UnionType) and text.lower() in ("none", "null"):
        return None
    args = [a for a in get_args(tp) if a is not type(None)] if get_origin(tp) in (typing.Union, types.UnionType) else [tp]
    for arg in args:
        try:
            return _parse_one(arg, text)
        except ValueError:
            continue
    raise _fail(cls, spec, text, _type_name(tp))


def _parse_one(tp: Any, text: str) -> Any:
    if get_origin(tp) is Literal:
        for choice in get_args(tp):
            if str(choice) == text:
                return choice
        raise ValueError(text)
    if get_origin(tp) is tuple:
        return tuple(_parse_one(get_args(tp)[0], t.strip()) for t in text.split(",") if t.strip())
    if tp is bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(text)
    if tp is int:
        return int(text)
    if tp is float:
        return float(text)
    return text
