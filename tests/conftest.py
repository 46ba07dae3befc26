"""Shared fixtures: one checkpoint cache per test run, throwaway plugin distributions, records."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from unlearnbench.report.records import Environment, RunRecord, SplitInfo, Timings

BUILTIN_METRICS = ("UA", "MIA", "RA", "TA", "RTE")


def builtin_declarations() -> dict:
    """The declarations of the built-in metrics, by name (as a run records them)."""
    from unlearnbench import METRICS
    return {name: METRICS.get(name).declaration() for name in BUILTIN_METRICS}


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One checkpoint cache for the whole test run, so each tiny original model trains once.

    Tests that damage cache entries must use their own folder instead.
    """
    return tmp_path_factory.mktemp("unlearnbench-cache")


MakeDistribution = Callable[..., Path]


@pytest.fixture
def make_distribution(tmp_path: Path) -> Iterator[MakeDistribution]:
    """Write an installed-looking distribution (modules + ``.dist-info``) to a fresh folder.

    ``importlib.metadata`` finds it once the folder is on ``sys.path`` (or ``PYTHONPATH`` of a
    subprocess), exactly as it finds a pip-installed plugin. Returns that folder. Modules the
    test imports from it are dropped from ``sys.modules`` afterwards.
    """
    made: list[str] = []

    def make(name: str, version: str, modules: Mapping[str, str],
             entry_points: Mapping[str, Mapping[str, str]]) -> Path:
        root = tmp_path / f"site-{name}"
        for relative, source in modules.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(source))
            made.append(Path(relative).parts[0].removesuffix(".py"))
        info = root / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        info.joinpath("METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        lines = []
        for group, entries in entry_points.items():
            lines.append(f"[{group}]")
            lines += [f"{entry} = {target}" for entry, target in entries.items()]
        info.joinpath("entry_points.txt").write_text("\n".join(lines) + "\n")
        return root

    yield make
    for module in list(sys.modules):
        if module.split(".")[0] in made:
            del sys.modules[module]


@pytest.fixture
def make_record() -> Callable[..., RunRecord]:
    """A valid, hand-built :class:`RunRecord` with the built-in metrics; keyword arguments
    override fields or metrics (``metrics=``/``metric_declarations=`` replace them all)."""

    def make(*, method: str = "ft", seed: int = 0, UA: float = 10.0, MIA: float = 20.0,
             RA: float = 99.0, TA: float = 90.0, RTE: float = 1.5, pruner: str | None = None,
             target_sparsity: float | None = None, device_name: str = "cpu (test)",
             forget: str = "class:0", **fields) -> RunRecord:
        pruning = f"{pruner}{target_sparsity:g}" if pruner else "dense"
        values = dict(
            run_id=f"synthetic-tiny_cnn-{forget}-{method}-{pruning}-seed{seed}".replace(":", "_"),
            created="2024-01-01T00:00:00+00:00", dataset="synthetic", arch="tiny_cnn",
            forget=forget, scenario="class-wise" if forget.startswith("class") else "random",
            method=method, pruner=pruner, target_sparsity=target_sparsity, seed=seed,
            sparsity=target_sparsity or 0.0,
            metrics={"UA": UA, "MIA": MIA, "RA": RA, "TA": TA, "RTE": RTE},
            metric_declarations=builtin_declarations(),
            timings=Timings(original_s=3.0, original_cached=True, prune_s=0.0, prune_cached=True,
                            unlearn_s=RTE, eval_s=0.5, warmup_s=0.1),
            split=SplitInfo(hash="0123456789abcdef", train=230, validation=26, forget=58,
                            retain=172, test=96),
            environment=Environment(python="3.11.7", torch="2.4.0", cuda=None, unlearnbench="0.1.0",
                                    device="cpu", device_name=device_name, precision="fp32",
                                    packages={"unlearnbench": "0.1.0"}),
            config={"method_params": {"epochs": 10, "lr": 0.01}, "recipe": {"milestones": [0.5, 0.75]}},
            components={"unlearner": f"{method} (unlearnbench 0.1.0)"})
        values.update(fields)
        return RunRecord(**values)

    return make


@pytest.fixture
def add_metric() -> Callable[..., RunRecord]:
    """``add(record, name, value, **declaration)``: ``record`` with one more metric, as a run
    with a metric plugin installed records it."""
    import dataclasses

    from unlearnbench.metric import MetricDeclaration

    def add(record: RunRecord, name: str, value: float | None, **declaration) -> RunRecord:
        return dataclasses.replace(
            record, metrics={**record.metrics, name: value},
            metric_declarations={**record.metric_declarations, name: MetricDeclaration(**declaration)})

    return add


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: builds a multi-node Ray cluster in network namespaces "
                                       "(tests/test_cluster.py; skips where namespaces cannot be made)")
