"""Guards around the code of plugins: a failure inside a component, or a result of the wrong
shape, becomes one line naming the component and the package that supplied it (the
traceback stays available with ``unlearnbench --debug``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

from .errors import PluginError, UnlearnbenchError
from .registry import Registry

T = TypeVar("T")


def call_plugin(registry: Registry, name: str, work: Callable[[], T]) -> T:
    """``work()``; an exception that is not one of unlearnbench's own is wrapped into a
    :class:`PluginError` naming ``name``, its package and the original error."""
    try:
        return work()
    except UnlearnbenchError:
        raise
    except Exception as exc:
        raise PluginError(f"{describe(registry, name)} failed: {type(exc).__name__}: {exc} "
                          f"(`unlearnbench --debug ...` shows the traceback)") from exc


def check_same_architecture(registry: Registry, name: str, given: nn.Module, returned: object) -> None:
    """The returned model must be a torch module of the given model's class, with the same
    parameter and buffer names and shapes: metrics and masks assume the architecture held."""
    who = describe(registry, name)
    if not isinstance(returned, nn.Module):
        raise PluginError(f"{who} returned {type(returned).__name__}; expected the torch.nn.Module "
                          f"it was given, changed in place or as a copy")
    if type(returned) is not type(given):
        raise PluginError(f"{who} returned a {type(returned).__name__}; expected the architecture it "
                          f"was given ({type(given).__name__})")
    expected = {k: tuple(v.shape) for k, v in given.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in returned.state_dict().items()}
    if got != expected:
        differ = sorted(k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k))
        raise PluginError(f"{who} returned a {type(returned).__name__} whose tensors differ from the "
                          f"one it was given ({len(differ)} differ, e.g. {differ[0]!r}: "
                          f"{expected.get(differ[0])} -> {got.get(differ[0])}); expected the same "
                          f"architecture")


def describe(registry: Registry, name: str) -> str:
    return f"{registry.kind} {name!r} (from {registry.origin(name)})"
