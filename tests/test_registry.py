"""The component registry: lazy entry points, origins, duplicates, suggestions, type checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from torch import nn

from unlearnbench import (DuplicateNameError, PluginLoadError, UnknownNameError, Unlearner,
                          UnlearningTask)
from unlearnbench.components import REGISTRIES
from unlearnbench.registry import Registry, subclass_of

GROUP = "unlearnbench_tests.things"  # a private group: only this file's distributions feed it

UNLEARNER_MODULE = """
    from unlearnbench import Unlearner

    class Noop(Unlearner):
        def unlearn(self, model, task):
            return model

    NOT_AN_UNLEARNER = 42
"""


class KeepModel(Unlearner):
    """Returns the model unchanged (enough to be a valid registry entry)."""

    def unlearn(self, model: nn.Module, task: UnlearningTask) -> nn.Module:
        return model


def fresh_registry(group: str = GROUP) -> Registry:
    return Registry("unlearner", group, subclass_of(Unlearner), "a subclass of unlearnbench.Unlearner")


@pytest.fixture
def on_path(monkeypatch: pytest.MonkeyPatch):
    """Put distribution folders on sys.path, after the global registries have discovered
    theirs (so no other test sees these throwaway plugins)."""
    for registry in REGISTRIES.values():
        registry.names()
    monkeypatch.delenv("UNLEARNBENCH_DISABLE_PLUGINS", raising=False)

    def add(*roots: Path) -> None:
        for root in roots:
            monkeypatch.syspath_prepend(str(root))

    return add


@pytest.fixture
def lazy_dist(make_distribution, on_path) -> Path:
    root = make_distribution(
        "ub-lazy-plugin", "1.4.2",
        {"ub_lazy_pkg/__init__.py": "",
         "ub_lazy_pkg/good.py": UNLEARNER_MODULE,
         "ub_lazy_pkg/broken.py": "raise ImportError('this plugin needs libfoo')\n"},
        {GROUP: {"good": "ub_lazy_pkg.good:Noop", "broken": "ub_lazy_pkg.broken:Noop",
                 "wrong_type": "ub_lazy_pkg.good:NOT_AN_UNLEARNER",
                 "missing_attr": "ub_lazy_pkg.good:Nothing"}})
    on_path(root)
    return root


# -- lazy loading -------------------------------------------------------------------------------
def test_listing_imports_nothing_and_a_broken_entry_fails_only_when_used(lazy_dist: Path) -> None:
    registry = fresh_registry()
    assert registry.names() == ["broken", "good", "missing_attr", "wrong_type"]
    assert registry.entry("broken").target == "ub_lazy_pkg.broken:Noop"
    assert str(registry.origin("good")) == "ub-lazy-plugin 1.4.2"
    assert not any(m.startswith("ub_lazy_pkg") for m in sys.modules)

    with pytest.raises(PluginLoadError) as info:
        registry.get("broken")
    message = str(info.value)
    assert "'broken'" in message and "ub-lazy-plugin 1.4.2" in message
    assert "ub_lazy_pkg.broken:Noop" in message and "libfoo" in message

    good = registry.get("good")  # the broken neighbour does not break this one
    assert issubclass(good, Unlearner) and good.__name__ == "Noop"
    assert registry.get("good") is good
    assert "ub_lazy_pkg.broken" not in sys.modules


def test_an_attribute_missing_from_its_module_is_a_load_error(lazy_dist: Path) -> None:
    with pytest.raises(PluginLoadError, match="'missing_attr'.*ub-lazy-plugin 1.4.2.*AttributeError"):
        fresh_registry().get("missing_attr")


def test_an_entry_point_of_the_wrong_type_is_a_load_error(lazy_dist: Path) -> None:
    with pytest.raises(PluginLoadError, match=r"'wrong_type' from ub-lazy-plugin 1.4.2 is 42, "
                                              r"expected a subclass of unlearnbench.Unlearner"):
        fresh_registry().get("wrong_type")


def test_importing_unlearnbench_imports_no_component_module() -> None:
    """Built-ins are entry points too: listing them imports nothing, using one imports only it
    (plus whatever it imports itself), never its neighbours."""
    script = (
        "import json, sys, unlearnbench\n"
        "def loaded(): return sorted(m for m in sys.modules if m.startswith('unlearnbench_baselines'))\n"
        "at_import = loaded()\n"
        "names = unlearnbench.UNLEARNERS.names() + unlearnbench.PRUNERS.names()\n"
        "after_listing = loaded()\n"
        "unlearnbench.UNLEARNERS.get('ft')\n"
        "targets = [e.target.split(':')[0] for r in (unlearnbench.UNLEARNERS, unlearnbench.PRUNERS)\n"
        "           for e in r.entries()]\n"
        "print(json.dumps([at_import, after_listing, names, loaded(), targets]))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, env=_env_without_disable())
    assert result.returncode == 0, result.stderr
    at_import, after_listing, names, after_get, targets = json.loads(result.stdout)
    assert at_import == [] and after_listing == []
    assert {"ft", "retrain", "omp"} <= set(names)
    assert "unlearnbench_baselines.unlearners.ft" in after_get
    assert [m for m in after_get if m in targets] == ["unlearnbench_baselines.unlearners.ft"]


def _env_without_disable() -> dict[str, str]:
    import os
    return {k: v for k, v in os.environ.items() if k != "UNLEARNBENCH_DISABLE_PLUGINS"}


# -- registering in-process ---------------------------------------------------------------------
def test_register_decorator_returns_the_class_and_registers_it() -> None:
    registry = fresh_registry("unlearnbench_tests.empty")
    assert registry.names() == []

    @registry.register("keep")
    class Keep(KeepModel):
        pass

    assert registry.get("keep") is Keep
    assert "keep" in registry and registry.names() == ["keep"]
    assert str(registry.origin("keep")) == f"in-process ({__name__})"
    registry.register("keep2", KeepModel)  # the direct form
    assert registry.get("keep2") is KeepModel
    registry.unregister("keep")
    assert registry.names() == ["keep2"]


def test_registering_a_non_unlearner_is_a_load_error() -> None:
    registry = fresh_registry("unlearnbench_tests.empty")
    with pytest.raises(PluginLoadError, match="'plain'.*expected a subclass of unlearnbench.Unlearner"):
        registry.register("plain")(type("Plain", (), {}))
    with pytest.raises(PluginLoadError):
        registry.register("instance", KeepModel())  # an instance is not the class
    assert registry.names() == []


def test_registering_a_taken_name_names_both_origins(lazy_dist: Path) -> None:
    registry = fresh_registry()
    with pytest.raises(DuplicateNameError) as info:
        registry.register("good", KeepModel)
    message = str(info.value)
    assert "ub-lazy-plugin 1.4.2" in message and "ub_lazy_pkg.good:Noop" in message
    assert f"in-process ({__name__})" in message and "KeepModel" in message
    registry.register("keep", KeepModel)
    with pytest.raises(DuplicateNameError, match="already registered"):
        registry.register("keep", KeepModel)


def test_two_distributions_with_one_name_fail_naming_both(make_distribution, on_path) -> None:
    first = make_distribution("ub-dup-one", "1.0", {"ub_dup_one.py": UNLEARNER_MODULE},
                              {GROUP: {"same": "ub_dup_one:Noop", "only_one": "ub_dup_one:Noop"}})
    second = make_distribution("ub-dup-two", "2.3", {"ub_dup_two.py": UNLEARNER_MODULE},
                               {GROUP: {"same": "ub_dup_two:Noop"}})
    on_path(first, second)
    registry = fresh_registry()
    assert registry.names() == ["only_one", "same"]
    with pytest.raises(DuplicateNameError) as info:
        registry.get("same")
    assert "ub-dup-one 1.0" in str(info.value) and "ub-dup-two 2.3" in str(info.value)
    assert "UNLEARNBENCH_DISABLE_PLUGINS" in str(info.value)
    assert registry.get("only_one").__module__ == "ub_dup_one"  # the conflict stays local


# -- lookup ---------------------------------------------------------------------------------------
def test_unknown_name_suggests_close_names_and_lists_all() -> None:
    registry = fresh_registry("unlearnbench_tests.empty")
    for name in ("sparse_ft", "ft", "retrain"):
        registry.register(name, KeepModel)
    with pytest.raises(UnknownNameError) as info:
        registry.get("retrian")
    assert str(info.value) == ("Unknown unlearner 'retrian'. Did you mean 'retrain'? "
                               "Available: ft, retrain, sparse_ft.")
    assert info.value.available == ["ft", "retrain", "sparse_ft"]
    with pytest.raises(UnknownNameError) as info:
        registry.get("zzz")
    assert "Did you mean" not in str(info.value) and "Available: ft, retrain, sparse_ft." in str(info.value)
    assert isinstance(info.value, LookupError)  # callers may catch it as a lookup failure


def test_unknown_name_in_an_empty_registry_says_none() -> None:
    with pytest.raises(UnknownNameError, match=r"Available: \(none\)"):
        fresh_registry("unlearnbench_tests.empty").get("ft")


def test_names_filter_with_wildcards() -> None:
    registry = fresh_registry("unlearnbench_tests.empty")
    for name in ("ft", "sparse_ft", "ga", "retrain", "FT_big"):
        registry.register(name, KeepModel)
    assert registry.names("*ft*") == ["ft", "sparse_ft"]  # case-sensitive, like the names
    assert registry.names("?a") == ["ga"]
    assert registry.names("[rs]*") == ["retrain", "sparse_ft"]
    assert [e.name for e in registry.entries("*ft")] == ["ft", "sparse_ft"]
    assert registry.names("nothing*") == []


def test_builtins_are_entry_points_of_unlearnbench() -> None:
    from unlearnbench import UNLEARNERS
    entry = UNLEARNERS.entry("ft")
    assert entry.origin.package == "unlearnbench"
    assert entry.target == "unlearnbench_baselines.unlearners.ft:FineTune"


def test_metrics_are_a_registry_like_the_others() -> None:
    """The built-in metrics and the audits are entry points of unlearnbench; listing them
    imports none, and a misspelt name gets suggestions."""
    from unlearnbench import METRICS
    assert REGISTRIES["metrics"] is METRICS
    entries = {e.name: e for e in METRICS.entries()}
    assert {"UA", "MIA", "RA", "TA", "RTE", "klom", "ulira"} <= set(entries)
    assert all(entries[n].origin.package == "unlearnbench" for n in ("UA", "klom"))
    from unlearnbench.evaluate.klom import KLoM
    from unlearnbench.evaluate.ulira import ULiRA
    assert METRICS.get("klom") is KLoM and METRICS.get("ulira") is ULiRA  # beside their estimators
    with pytest.raises(UnknownNameError, match="Unknown metric 'MAI'. Did you mean 'MIA'"):
        METRICS.get("MAI")
    with pytest.raises(PluginLoadError, match="metric 'not_a_metric' .* expected a subclass of "
                                              "unlearnbench.TrialMetric"):
        METRICS.register("not_a_metric", KeepModel)


# -- disabling third-party plugins ----------------------------------------------------------------
@pytest.mark.parametrize("value, plugin_visible", [("1", False), ("0", True), ("", True)])
def test_disable_plugins_keeps_only_unlearnbench_components(
        make_distribution, on_path, monkeypatch: pytest.MonkeyPatch, value: str,
        plugin_visible: bool) -> None:
    root = make_distribution("ub-extra-plugin", "0.9", {"ub_extra.py": UNLEARNER_MODULE},
                             {"unlearnbench.unlearners": {"ub_extra_method": "ub_extra:Noop"}})
    on_path(root)
    monkeypatch.setenv("UNLEARNBENCH_DISABLE_PLUGINS", value)
    registry = fresh_registry("unlearnbench.unlearners")
    assert ("ub_extra_method" in registry.names()) is plugin_visible
    assert "ft" in registry.names() and "retrain" in registry.names()
    if plugin_visible:
        assert str(registry.origin("ub_extra_method")) == "ub-extra-plugin 0.9"
