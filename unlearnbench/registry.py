"""One generic, lazy registry for every kind of component.

Components come from two places:

* entry points in the groups ``unlearnbench.datasets``, ``unlearnbench.models``,
  ``unlearnbench.pruners``, ``unlearnbench.unlearners``, ``unlearnbench.scenarios``,
  ``unlearnbench.probes`` and ``unlearnbench.executors`` (unlearnbench's own built-ins are
  declared there too, exactly like a third-party plugin's), recorded as ``module:attr``
  strings and imported only when first used, so one broken plugin breaks only its own runs;
* the :meth:`Registry.register` decorator, for notebooks and tests.

A duplicate name is an error naming both origins; an unknown name raises
:class:`~unlearnbench.errors.UnknownNameError` with close matches and the available names.
Setting ``UNLEARNBENCH_DISABLE_PLUGINS=1`` skips entry points of other distributions.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.metadata as md
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .errors import DuplicateNameError, PluginLoadError, UnknownNameError

T = TypeVar("T")

OWN_DISTRIBUTION = "unlearnbench"


@dataclass(frozen=True)
class Origin:
    """Where a registered component comes from."""

    package: str
    version: str | None = None

    def __str__(self) -> str:
        return f"{self.package} {self.version}" if self.version else self.package


@dataclass
class Entry(Generic[T]):
    name: str
    origin: Origin
    target: str  # "module:attr", shown by `unlearnbench ls` without importing
    obj: T | None = None
    conflicts: list[Origin] = field(default_factory=list)


class Registry(Generic[T]):
    """Name -> component, for one kind of component (one entry-point group)."""

    def __init__(self, kind: str, group: str, check: Callable[[Any], bool], expected: str):
        self.kind, self.group = kind, group
        self._check, self._expected = check, expected
        self._entries: dict[str, Entry[T]] = {}
        self._discovered = False

    # -- discovery -------------------------------------------------------------------
    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        skip_plugins = os.environ.get("UNLEARNBENCH_DISABLE_PLUGINS", "") not in ("", "0")
        seen: set[tuple[str, str, str]] = set()
        for ep in sorted(md.entry_points(group=self.group), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            origin = Origin(dist.name if dist else "unknown", dist.version if dist else None)
            if skip_plugins and origin.package != OWN_DISTRIBUTION:
                continue
            key = (ep.name, ep.value, origin.package)
            if key in seen:  # the same distribution found twice on sys.path
                continue
            seen.add(key)
            self._add(Entry(ep.name, origin, ep.value), on_duplicate="record")

    def _add(self, entry: Entry[T], on_duplicate: str) -> None:
        existing = self._entries.get(entry.name)
        if existing is None:
            self._entries[entry.name] = entry
        elif on_duplicate == "record":
            existing.conflicts.append(entry.origin)
        else:
            raise DuplicateNameError(
                f"{self.kind} {entry.name!r} is already registered by {existing.origin} "
                f"({existing.target}); cannot register it again from {entry.origin} ({entry.target})")

    # -- registering in-process ------------------------------------------------------------
    def register(self, name: str, obj: T | None = None) -> Any:
        """Register ``obj`` under ``name``; without ``obj``, return a decorator."""
        def decorator(o: T) -> T:
            self._discover()
            self._validate(name, o, Origin(f"in-process ({getattr(o, '__module__', '?')})"))
            target = f"{getattr(o, '__module__', '?')}:{getattr(o, '__qualname__', repr(o))}"
            self._add(Entry(name, Origin(f"in-process ({getattr(o, '__module__', '?')})"), target, o),
                      on_duplicate="raise")
            return o
        return decorator(obj) if obj is not None else decorator

    def unregister(self, name: str) -> None:
        self._discover()
        self._entries.pop(name, None)

    # -- lookup -----------------------------------------------------------------------------
    def names(self, pattern: str | None = None) -> list[str]:
        self._discover()
        names = sorted(self._entries)
        return [n for n in names if fnmatch.fnmatchcase(n, pattern)] if pattern else names

    def entries(self, pattern: str | None = None) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names(pattern)]

    def __contains__(self, name: str) -> bool:
        self._discover()
        return name in self._entries

    def entry(self, name: str) -> Entry[T]:
        self._discover()
        try:
            entry = self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._entries) from None
        if entry.conflicts:
            others = ", ".join(str(o) for o in entry.conflicts)
            raise DuplicateNameError(
                f"{self.kind} {name!r} is registered by both {entry.origin} and {others}; "
                f"uninstall one of them or set UNLEARNBENCH_DISABLE_PLUGINS=1")
        return entry

    def get(self, name: str) -> T:
        """The component registered as ``name``, imported on first use."""
        entry = self.entry(name)
        if entry.obj is None:
            module_name, _, attr = entry.target.partition(":")
            try:
                obj: Any = importlib.import_module(module_name)
                for part in attr.split(".") if attr else []:
                    obj = getattr(obj, part)
            except Exception as exc:  # a broken plugin must name itself, not crash the suite
                raise PluginLoadError(
                    f"{self.kind} {name!r} from {entry.origin} could not be loaded from "
                    f"{entry.target!r}: {type(exc).__name__}: {exc}") from exc
            self._validate(name, obj, entry.origin)
            entry.obj = obj
        return entry.obj

    def origin(self, name: str) -> Origin:
        return self.entry(name).origin

    def _validate(self, name: str, obj: Any, origin: Origin) -> None:
        if not self._check(obj):
            raise PluginLoadError(
                f"{self.kind} {name!r} from {origin} is {obj!r}, expected {self._expected}")


def subclass_of(base: type | str) -> Callable[[Any], bool]:
    """A check that a component is a subclass of ``base``: a class, or its ``"module:attr"``
    path, imported only when a component is checked (listing names imports nothing)."""
    def check(obj: Any) -> bool:
        cls = base
        if isinstance(cls, str):
            module_name, _, attr = cls.partition(":")
            cls = getattr(importlib.import_module(module_name), attr)
        return isinstance(obj, type) and issubclass(obj, cls)
    return check
