"""Running configurations from Python: :func:`run_trials`, what ``unlearnbench run`` calls.

Every seed of each configuration is a :class:`~unlearnbench.run.executors.Trial`, handed to an
executor (default: in this process, one after the other); each record is written to its
configuration's ``output_dir`` as it arrives. Exported as ``unlearnbench.run_trials``
(``unlearnbench.run`` is this package).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..report.records import RunRecord
from .config import RunConfig, prepare
from .executors import Executor, LocalExecutor, Trial, run_grid


def run_trials(config: RunConfig | Sequence[RunConfig], *,
               log: Callable[[str], None] = lambda m: None,
               executor: Executor | None = None) -> list[RunRecord]:
    """Run every seed of ``config`` (or of each of several configurations, in order; on
    ``executor``, default in-process); returns the records in that order (also written to
    each configuration's ``output_dir``)."""
    configs = [config] if isinstance(config, RunConfig) else list(config)
    for each in configs:  # a bad configuration fails here, before any executor starts
        prepare(each)
    trials = [Trial(each, seed) for each in configs for seed in each.seeds]
    return run_grid(trials, executor or LocalExecutor(), log=log, progress=executor is not None)
