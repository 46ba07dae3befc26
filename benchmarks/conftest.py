"""The CPU speed gate's rules (see benchmarks/README.md).

Every benchmark times our implementation against a fixed reference implementation of the same
computation, in alternating rounds of one run (reference, ours, reference, ours, ...), and
fails when ours takes more than its limit times the reference. Load from other processes slows
both sides of a pair alike, so the ratio holds on a shared machine and on any hardware, where
absolute timings compared with a stored baseline did not.

* ``@pytest.mark.gate(max_ratio=..., reference="...")`` declares a benchmark's limit; a test
  that uses the ``benchmark`` fixture without it is a collection error.
* The ``gate`` fixture measures and checks the ratio; a gated benchmark that ran with timing on
  and never checked its ratio fails.
* Both sides are timed in CPU seconds of the process (:func:`clock`), not wall-clock seconds.
* ``GATE_SLOWDOWN=1.5`` makes our side of every pair 1.5x slower (a busy wait after each call
  for half the call's own CPU seconds): the gate's self-test, see README.md.

Timings are only comparable with a fixed number of threads: every benchmark runs torch with
one intra-op thread (``UNLEARNBENCH_BENCH_THREADS`` changes it).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any, Literal

import pytest

BENCH_THREADS = int(os.environ.get("UNLEARNBENCH_BENCH_THREADS", "1"))


def _slowdown(text: str) -> float:
    try:
        factor = float(text)
    except ValueError:
        factor = float("nan")
    if not factor >= 1:
        raise pytest.UsageError(f"GATE_SLOWDOWN={text!r} is invalid: expected a number >= 1")
    return factor


SLOWDOWN = _slowdown(os.environ.get("GATE_SLOWDOWN", "1"))

Setup = Callable[[], tuple[tuple, dict]]


@pytest.fixture(scope="session", autouse=True)
def _fixed_threads():
    torch = sys.modules.get("torch")  # imported by the benchmarks that use it
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(BENCH_THREADS)
    yield
    torch.set_num_threads(before)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gate(max_ratio, reference): the benchmark fails when our time exceeds max_ratio "
                   "times the reference implementation's, measured in alternating rounds")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    fixtures = {item.nodeid: getattr(item, "fixturenames", ()) for item in items}
    ungated = [item.nodeid for item in items if "benchmark" in fixtures[item.nodeid]
               and (not _limit(item) or "gate" not in fixtures[item.nodeid])]
    if ungated:
        raise pytest.UsageError(f"benchmarks without a gate limit: {', '.join(ungated)}; every benchmark "
                                f"needs @pytest.mark.gate(max_ratio=..., reference=...) and times itself "
                                f"through the gate fixture")


def _limit(item: pytest.Item) -> tuple[float, str] | None:
    marker = item.get_closest_marker("gate")
    if marker is None:
        return None
    return float(marker.kwargs["max_ratio"]), str(marker.kwargs["reference"])


def clock() -> float:
    """CPU seconds of this process: the time slices other processes take are not in it, so a
    loaded machine changes the timings by their cache and core contention only."""
    return time.process_time()


class Gate:
    """Times ours against the reference in alternating rounds and checks the ratio."""

    def __init__(self, benchmark: Any, limit: tuple[float, str], name: str):
        self.benchmark, self.name = benchmark, name
        self.max_ratio, self.reference = limit
        self.checked = False

    def compare(self, ours: Callable[..., Any], reference: Callable[..., Any], *, rounds: int,
                warmup_rounds: int = 1, setup: Setup | None = None,
                statistic: Literal["median", "min"] = "median") -> tuple[Any, Any]:
        """Run ``rounds`` pairs (after ``warmup_rounds`` untimed ones), each the reference then
        ours, both on fresh arguments from ``setup``; returns the results of ours and of the
        reference from the last round. With timing off (``--benchmark-disable``), one pair runs
        and the ratio is not checked.

        ``statistic`` is the ratio checked: ``"median"``, the median of the per-round ratios,
        for calls of a tenth of a second and more; or ``"min"``, fastest ours over fastest
        reference, for calls of milliseconds, run for many rounds: a process switch in the
        middle of such a call costs it a cache refill, a large share of its time, and the
        fastest round of each side is one that ran undisturbed."""
        make_args = setup or (lambda: ((), {}))
        seconds: dict[str, list[float]] = {"ours": [], "reference": []}
        reference_result: list[Any] = [None]

        def run_reference():  # pytest-benchmark's untimed setup of each round of ours
            args, kwargs = make_args()
            start = clock()
            reference_result[0] = reference(*args, **kwargs)
            seconds["reference"].append(clock() - start)
            return make_args()

        def run_ours(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            result = ours(*args, **kwargs)
            if SLOWDOWN != 1:  # the self-test: spin until ours has cost SLOWDOWN times as much
                end = start + SLOWDOWN * (clock() - start)
                while clock() < end:
                    pass
            seconds["ours"].append(clock() - start)
            return result

        result = self.benchmark.pedantic(run_ours, setup=run_reference, rounds=rounds,
                                         warmup_rounds=warmup_rounds)
        if self.benchmark.disabled:
            return result, reference_result[0]
        ours_seconds, reference_seconds = (seconds[k][warmup_rounds:] for k in ("ours", "reference"))
        assert len(ours_seconds) == len(reference_seconds) == rounds
        self._check(ours_seconds, reference_seconds, statistic)
        return result, reference_result[0]

    def _check(self, ours: list[float], reference: list[float], statistic: str) -> None:
        ratios = [o / r for o, r in zip(ours, reference)]
        median_ratio, ratio_of_minima = statistics.median(ratios), min(ours) / min(reference)
        ratio = {"median": median_ratio, "min": ratio_of_minima}[statistic]
        info = self.benchmark.extra_info
        info.update(ratio=round(ratio, 4), max_ratio=self.max_ratio, reference=self.reference,
                    statistic=statistic, median_ratio=round(median_ratio, 4),
                    ratio_of_minima=round(ratio_of_minima, 4),
                    reference_median_s=statistics.median(reference), slowdown=SLOWDOWN,
                    round_ratios=[round(r, 4) for r in ratios])
        self.checked = True
        print(f"\n{self.name}: ours / reference = {ratio:.3f} ({statistic}; limit {self.max_ratio}; "
              f"reference: {self.reference})")
        assert ratio <= self.max_ratio, (
            f"{self.name} regressed: ours takes {ratio:.3f}x the reference's time "
            f"({self.reference}), more than the limit {self.max_ratio}")


@pytest.fixture
def gate(request: pytest.FixtureRequest, benchmark: Any):
    limit = _limit(request.node)
    if limit is None:  # collection already refuses this; kept for direct fixture use
        pytest.fail(f"{request.node.nodeid} has no @pytest.mark.gate limit")
    checker = Gate(benchmark, limit, request.node.name)
    yield checker
    if benchmark.enabled and not checker.checked and not getattr(request.node, "_gate_failed", False):
        pytest.fail(f"{request.node.nodeid} is gated but never measured its ratio (call gate.compare)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call" and report.failed:
        item._gate_failed = True  # the teardown check does not pile a second error on a failure
    return report
