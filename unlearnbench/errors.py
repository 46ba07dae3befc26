"""The exceptions unlearnbench raises on bad input.

Every error a user can cause derives from :class:`UnlearnbenchError`, so the CLI can print
it as one clean line (no traceback) and exit non-zero.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UnlearnbenchError(Exception):
    """Base class of every error caused by bad input, configuration or data."""


class ConfigError(UnlearnbenchError, ValueError):
    """A parameter, forget spec or command-line value is invalid."""


class UnknownNameError(UnlearnbenchError, LookupError):
    """A name that no registry (or parameter list) knows."""

    def __init__(self, kind: str, name: str, available: Iterable[str]):
        self.kind, self.name = kind, name
        self.available = sorted(available)
        super().__init__(unknown_name_message(kind, name, self.available))


class DuplicateNameError(UnlearnbenchError):
    """Two components claim the same name in one registry."""


class PluginLoadError(UnlearnbenchError):
    """A registered component could not be imported or is not of the expected type."""


class DataNotFoundError(UnlearnbenchError, FileNotFoundError):
    """A dataset is missing from the local root."""


class CorruptFileError(UnlearnbenchError):
    """A record or cache file exists but cannot be trusted."""


def unknown_name_message(kind: str, name: str, available: Iterable[str]) -> str:
    available = sorted(available)
    message = f"Unknown {kind} {name!r}."
    close = difflib.get_close_matches(name, available, n=3, cutoff=0.6)
    close += [a for a in available if a.lower() == name.lower() and a not in close]
    if close:
        message += " Did you mean " + " or ".join(repr(c) for c in close) + "?"
    shown = ", ".join(available[:40]) + (", ..." if len(available) > 40 else "")
    return message + f" Available: {shown or '(none)'}."


class PluginError(UnlearnbenchError):
    """A component failed while it ran, or returned something it must not (names it and its package)."""


class NonFiniteError(UnlearnbenchError):
    """A model's weights or logits are NaN or infinite: training diverged."""


class DuplicateRecordWarning(UserWarning):
    """A folder holds one trial (one identity) more than once; the newest record is used."""


class MetricNotMeasuredWarning(UserWarning):
    """A registered metric cannot be loaded, so the run leaves it out (the warning names it)."""
