"""Concurrent grids share work: a trial's identity is its lock.

Several processes may run grids into one output folder with one cache (two ``unlearnbench
reproduce`` of one recipe, three ``unlearnbench run`` of one setting): each trial then runs in
exactly one of them, and every process ends with every record. Before a process starts a trial,
it takes the trial's lock (an OS file lock of :mod:`filelock` under the cache folder,
``CACHE/trials/KEY.lock``, KEY a hash of the trial's identity and the output folder: it dies
with its process) and, holding it, looks again for the trial's record: when another process
wrote it meanwhile, the trial is done and its record is read instead. The lock is held until
the record is written.

A process does not wait while it has other work: a trial whose lock another process holds is
passed over and taken up after the others, when the process waits for that lock; if the other
process died or failed without writing the record, this one runs the trial.

Which records count as done: with ``resume`` (``reproduce``, audits, studies: they run only
trials without a record anyway) any valid record of the trial; without it (``unlearnbench run``,
which re-measures a trial when run again), only a record that appeared after the grid started,
i.e. one a concurrent process wrote.

A lock file is removed, under the lock, once the record is written (any process that takes it
afterwards finds the record) and after a failed write (a full disk: as the cache's own locks);
after a trial that failed or was interrupted it stays, an empty file in the cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout

from ..errors import CorruptFileError
from ..report.records import RunRecord
from .config import prepare
from .identity import SHORT, planned_identity

if TYPE_CHECKING:
    from .executors import Trial


def trial_identity_of(trial: Trial, plans: list) -> str:
    """The identity of ``trial``; ``plans`` holds (configuration, plan) pairs prepared so far
    (configurations are not hashable: compared by value, each prepared once)."""
    plan = next((plan for config, plan in plans if config == trial.config), None)
    if plan is None:
        plan = prepare(trial.config)
        plans.append((trial.config, plan))
    return planned_identity(plan, trial.seed)


def records_of(folder: Path, identity: str) -> list[Path]:
    """The files of ``folder`` that hold a valid record of the trial ``identity`` (the file
    name ends with its short hash; the stored identity must match)."""
    found = []
    for path in sorted(Path(folder).glob(f"*-{identity[:SHORT]}.json")):
        try:
            if RunRecord.load(path).identity == identity:
                found.append(path)
        except CorruptFileError:
            continue
    return found


def _stamp(path: Path) -> tuple[str, int] | None:
    try:
        return str(path), path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


class Claims:
    """The trials of one grid and their locks (see the module docstring).

    An executor asks :meth:`next` for the trial to run; run_grid releases a trial's lock once
    its record is written (:meth:`release`). A trial that another process recorded meanwhile is
    handed to ``recorded(index, record)`` and not returned by :meth:`next`.
    """

    def __init__(self, trials: Sequence[Trial], *, resume: bool,
                 recorded: Callable[[int, RunRecord], None]):
        plans: list = []
        self.trials = list(trials)
        self.identities = [trial_identity_of(t, plans) for t in self.trials]
        self.folders = [Path(t.config.output_dir).expanduser() for t in self.trials]
        self.resume = resume
        self.recorded = recorded
        # without resume, the records there before the grid started are not a concurrent
        # process's work: they are replaced as before
        self.before = [set() if resume else {s for p in records_of(f, i) if (s := _stamp(p))}
                       for f, i in zip(self.folders, self.identities)]
        self.todo = list(range(len(self.trials)))  # not yet run, recorded or claimed
        self.held: dict[int, object] = {}  # index -> its acquired FileLock

    def lock_path(self, index: int) -> Path:
        folder = self.folders[index].resolve()
        key = hashlib.sha256(f"{folder}\n{self.identities[index]}".encode()).hexdigest()[:32]
        return Path(self.trials[index].config.cache_dir).expanduser() / "trials" / f"{key}.lock"

    def done_elsewhere(self, index: int) -> RunRecord | None:
        """The record of trial ``index`` that another process wrote, if any."""
        for path in records_of(self.folders[index], self.identities[index]):
            if self.resume or _stamp(path) not in self.before[index]:
                try:
                    return RunRecord.load(path)
                except CorruptFileError:  # replaced while being read: look again under the lock
                    continue
        return None

    def _take(self, index: int, *, wait: bool) -> bool:
        """Try to claim trial ``index``: True when this process is to run it (its lock held);
        False when it is done elsewhere (handed to ``recorded``) or, without ``wait``, locked."""
        path = self.lock_path(index)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path), timeout=-1 if wait else 0)
        try:
            lock.acquire()
        except Timeout:
            return False
        self.todo.remove(index)
        record = self.done_elsewhere(index)
        if record is not None:
            self._unlock(index, lock, remove=True)
            self.recorded(index, record)
            return False
        self.held[index] = lock
        return True

    def next(self, *, wait: bool = True) -> int | None:
        """The next trial for this process, its lock held: the first in grid order that no other
        process holds and none recorded meanwhile. When all that are left are held elsewhere:
        with ``wait``, wait for the first of them (and run it if its record did not come);
        without, None. None when no trial is left."""
        for index in list(self.todo):
            if self._take(index, wait=False):
                return index
        while wait and self.todo:
            index = self.todo[0]
            if self._take(index, wait=True):
                return index
        return None

    @property
    def left(self) -> bool:
        """Whether trials remain that nobody in this process has claimed or recorded yet."""
        return bool(self.todo)

    def release(self, index: int, *, failed: BaseException | None = None) -> None:
        """Release trial ``index``'s lock: after its record was written (the lock file goes),
        or after it failed (the file stays, unless the failure was a filesystem error)."""
        lock = self.held.pop(index, None)
        if lock is not None:
            self._unlock(index, lock, remove=failed is None or isinstance(failed, OSError))

    def release_all(self, failed: BaseException | None = None) -> None:
        for index in list(self.held):
            self.release(index, failed=failed or RuntimeError("grid stopped"))

    def _unlock(self, index: int, lock, *, remove: bool) -> None:
        try:
            if remove:
                self.lock_path(index).unlink(missing_ok=True)
        finally:
            lock.release()
