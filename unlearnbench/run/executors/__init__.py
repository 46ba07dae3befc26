"""Executors: where the trials of a grid run.

A grid (``unlearnbench reproduce``, the seeds of ``unlearnbench run``, a hyperparameter search)
is a list of :class:`Trial`; :func:`run_grid` hands it to an :class:`Executor` and, on the
driver, writes each record as it arrives (atomically), draws one progress bar and logs one line
per trial. Executors come from the entry-point group ``unlearnbench.executors`` (registry
:data:`unlearnbench.components.EXECUTORS`), so a SLURM or other backend is a plugin. Built in:
``local`` (in-process, one trial after the other) and ``ray`` (Ray Core tasks; the optional
extra ``unlearnbench[ray]``).

The contract of :meth:`Executor.run`: for every trial index, call exactly one of
``on_done(index, record)`` (the trial's :class:`~unlearnbench.report.records.RunRecord`, not
written yet) or ``on_failed(index, error)``, or raise. An executor never writes records
itself. Seeds and results must not depend on the executor: a trial's record is a function of
its configuration and seed (timings aside).

Concurrent grids share work (:mod:`unlearnbench.run.claims`): an executor whose class sets
``claims_trials = True`` is given ``claims`` too and runs only the trials that
``claims.next()`` hands it (an index, the trial's lock held; None when no trial is left); for
the others, another process ran them, and the driver reads their records. Both built-in
executors do; an executor that does not runs every trial of its grid, as before.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ...components import EXECUTORS
from ...cpus import set_cpu_budget
from ...errors import UnlearnbenchError
from ...params import Configurable, param
from ...report.records import RunRecord
from ..claims import Claims
from ..config import RunConfig, prepare, share_snapshots
from ..sharing import set_exclusive_timing
from ..trial import load_data, setup_trials, trial_record

Log = Callable[[str], None]


@dataclass(frozen=True)
class Trial:
    """One seed of one configuration."""

    config: RunConfig  # its ``seeds`` are ignored: the trial runs ``seed``
    seed: int

    @property
    def single(self) -> RunConfig:
        """The configuration of exactly this trial."""
        return dataclasses.replace(self.config, seeds=(self.seed,))

    def describe(self) -> str:
        c = self.config
        pruning = f"{c.pruner}:{c.sparsity:g}" if c.pruner else "dense"
        return f"{c.label or c.method} {pruning} {c.forget} seed {self.seed}"


class Executor(Configurable):
    """Runs a list of trials (see the module docstring for the contract)."""

    claims_trials = False  # True: run() takes ``claims`` and runs what claims.next() hands it

    def run(self, trials: Sequence[Trial], *, on_done: Callable[[int, RunRecord], None],
            on_failed: Callable[[int, BaseException], None], log: Log) -> None:
        raise NotImplementedError


class LocalExecutor(Executor):
    """In this process, one trial after the other; a failing trial stops the grid."""

    cpus_per_trial: int | None = param(None, ge=1, help="cores a trial may use (default: all)")
    exclusive_timing: bool = param(True, help="at most one timed unlearning call per device")
    claims_trials = True

    def run(self, trials, *, on_done, on_failed, log, claims=None) -> None:
        threads = torch.get_num_threads()
        cpus = set_cpu_budget(self.cpus_per_trial) if self.cpus_per_trial is not None else None
        exclusive = set_exclusive_timing(self.exclusive_timing)
        try:
            self._run(trials, on_done, log, claims)
        finally:  # this process is the driver's too: give it back its settings
            if self.cpus_per_trial is not None:
                set_cpu_budget(cpus)
                torch.set_num_threads(threads)
            set_exclusive_timing(exclusive)

    def _run(self, trials, on_done, log, claims) -> None:
        prepared = None  # consecutive seeds of one configuration share its plan and probes
        datasets: dict[str, object] = {}  # and configurations of one dataset share its tensors
        order = iter(range(len(trials))) if claims is None else iter(claims.next, None)
        for index in order:
            trial = trials[index]
            if prepared is None or prepared[0] != trial.config:
                plan = prepare(trial.config)
                key = data_key(trial.config)
                if key not in datasets:
                    datasets.clear()  # hold one dataset at a time
                    datasets[key] = load_data(plan)
                data = datasets[key]
                prepared = (trial.config, plan, data, setup_trials(plan, data))
            _, plan, data, probes = prepared
            on_done(index, trial_record(plan, data, trial.seed, log=log, probes=probes))


def data_key(config: RunConfig) -> str:
    """What determines a configuration's dataset tensors (its files, parameters and subset)."""
    return json.dumps([config.dataset, dict(config.dataset_params), config.data_root,
                       config.download, config.train_size, config.test_size, config.cache_dir],
                      sort_keys=True, default=str)


def make_executor(name: str, params: dict | None = None) -> Executor:
    """The executor registered as ``name``, with its parameters validated."""
    return EXECUTORS.get(name).from_params(params or {})


def run_grid(trials: Sequence[Trial], executor: Executor, *, log: Log = lambda m: None,
             progress: bool = True, resume: bool = False) -> list[RunRecord]:
    """Run ``trials`` on ``executor``; each record is written to its configuration's
    ``output_dir`` as soon as it arrives. Returns the records in the order of ``trials``;
    raises after the others finished when a trial failed.

    A trial that a concurrent process runs into the same output folder (with the same cache)
    runs there only: this grid reads its record (:mod:`unlearnbench.run.claims`). With
    ``resume``, any record of a trial found when it is about to start counts as done; without,
    only one written after the grid started (an older record is replaced)."""
    configs = share_snapshots([trial.config for trial in trials])  # an original trains once
    trials = [dataclasses.replace(trial, config=config) for trial, config in zip(trials, configs)]

    records: dict[int, RunRecord] = {}
    failures: dict[int, BaseException] = {}
    start = time.perf_counter()
    bar = tqdm(total=len(trials), desc="trials", unit="trial", disable=None if progress else True)

    def on_done(index: int, record: RunRecord) -> None:
        if index in records or index in failures:
            raise UnlearnbenchError(f"executor reported trial {trials[index].describe()} twice")
        try:
            record.save(Path(trials[index].config.output_dir) / f"{record.run_id}.json")
        except BaseException as exc:
            if claims is not None:
                claims.release(index, failed=exc)
            raise
        if claims is not None:
            claims.release(index)
        records[index] = record
        bar.update()
        log(f"[{len(records) + len(failures)}/{len(trials)}] {record.run_id}: {record.metric_summary()}"
            + (f" (device shared by {record.timings.shared_by})" if record.timings.shared_by else "")
            + f"  [{time.perf_counter() - start:.0f} s]")

    def on_failed(index: int, error: BaseException) -> None:
        if claims is not None:
            claims.release(index, failed=error)
        failures[index] = error
        bar.update()
        bar.set_postfix(failed=len(failures))
        log(f"[{len(records) + len(failures)}/{len(trials)}] FAILED {trials[index].describe()}: "
            f"{type(error).__name__}: {error}")

    def on_recorded(index: int, record: RunRecord) -> None:  # a concurrent process ran it
        records[index] = record
        bar.update()
        log(f"[{len(records) + len(failures)}/{len(trials)}] {record.run_id}: recorded by another "
            f"process  [{time.perf_counter() - start:.0f} s]")

    claims = (Claims(trials, resume=resume, recorded=on_recorded)
              if getattr(executor, "claims_trials", False) else None)
    try:
        executor.run(trials, on_done=on_done, on_failed=on_failed, log=log,
                     **({"claims": claims} if claims is not None else {}))
    except BaseException as exc:
        if claims is not None:
            claims.release_all(exc)
        raise
    finally:
        bar.close()
        if claims is not None:
            claims.release_all()  # an executor that broke the contract: held locks stay files
    if failures:
        first = min(failures)
        if len(trials) == 1:
            raise failures[first]
        raise UnlearnbenchError(
            f"{len(failures)} of {len(trials)} trials failed (the {len(records)} finished ones are "
            f"recorded); first: {trials[first].describe()}: {type(failures[first]).__name__}: "
            f"{failures[first]}") from failures[first]
    if missing := [t.describe() for i, t in enumerate(trials) if i not in records]:
        raise UnlearnbenchError(f"executor {type(executor).__name__} returned without running "
                                f"{len(missing)} trial(s), e.g. {missing[0]}")
    return [records[i] for i in range(len(trials))]
