"""Keeping RTE comparable when trials share a device.

Every trial announces itself on its device while it runs (a file under
``$UNLEARNBENCH_DEVICE_DIR``, default ``<tmp>/unlearnbench-devices``, in its grid's folder, held
under an OS file lock that dies with its process, so a killed worker never counts). By default
at most one timed unlearning call runs on a device at a time, across every process of the
machine: the clock starts only once the device's timing lock is held. Other work (training
originals, pruning, evaluating) may share the device meanwhile; how many other trials *of the
same grid* were on the device when the clock started or stopped is the record's
``timings.shared_by``, and the leaderboard warns when it is not zero.

A grid is one driver process's run (:func:`grid_id`); an executor whose trials run in other
processes hands its id to them (:func:`join_grid`, ``$UNLEARNBENCH_GRID``), so an unrelated
unlearnbench process on the same machine never counts as sharing.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import torch
from filelock import FileLock

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux/macOS: nobody is counted
    fcntl = None  # type: ignore[assignment]

_EXCLUSIVE = True


def set_exclusive_timing(exclusive: bool) -> bool:
    """False lets timed unlearning calls overlap on a device (faster grids, noisier RTE).
    Returns the previous setting."""
    global _EXCLUSIVE
    previous, _EXCLUSIVE = _EXCLUSIVE, bool(exclusive)
    return previous


def device_key(device: torch.device) -> str:
    """A name for the physical device, the same in every process of the machine (a GPU's UUID,
    since each process may number the GPUs it sees differently)."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return f"cuda-{getattr(props, 'uuid', index)}"
    return device.type


GRID_ENV = "UNLEARNBENCH_GRID"


def grid_id() -> str:
    """The grid this process's trials belong to: the one an executor's driver handed over
    (``$UNLEARNBENCH_GRID``), else this process's own."""
    return os.environ.get(GRID_ENV) or f"pid-{os.getpid()}"


def join_grid(grid: str) -> None:
    """Count this process's trials (a worker's) with those of the driver's grid ``grid``."""
    os.environ[GRID_ENV] = grid


def _folder(device: torch.device) -> Path:
    root = Path(os.environ.get("UNLEARNBENCH_DEVICE_DIR")
                or Path(tempfile.gettempdir()) / "unlearnbench-devices")
    folder = root / device_key(device)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _grid_folder(device: torch.device) -> Path:
    # a grid id is a file name: keep it one (an id from the environment may hold anything)
    return _folder(device) / ("grid-" + "".join(c if c.isalnum() or c in "-_." else "_"
                                                for c in grid_id())[:100])


@contextlib.contextmanager
def on_device(device: torch.device) -> Iterator[None]:
    """Announce a trial on ``device`` (in its grid) while the block runs."""
    if fcntl is None:
        yield
        return
    folder = _grid_folder(device)
    path = folder / f"trial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    while True:
        folder.mkdir(exist_ok=True)
        try:
            handle = open(path, "w")
            break
        except FileNotFoundError:  # the grid's last other trial removed the folder just now
            continue
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # the grid's last trial here leaves no folder
                folder.rmdir()


def trials_on(device: torch.device) -> int:
    """How many trials of this grid are on ``device`` now (files whose lock is held by a live
    process)."""
    if fcntl is None:
        return 0
    count = 0
    for path in _grid_folder(device).glob("trial-*"):
        try:
            with open(path) as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    count += 1  # held: its trial is running
                else:
                    path.unlink(missing_ok=True)  # left by a process that died
        except FileNotFoundError:
            continue
    return count


class TimedSlot:
    """``with TimedSlot(device) as slot:`` around a timed call: waits for the device's timing
    lock (unless timing is shared), then ``slot.shared_by`` is the number of other trials seen
    on the device when the block started or ended (the larger)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.shared_by = 0
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> TimedSlot:
        if _EXCLUSIVE and fcntl is not None:
            self._stack.enter_context(FileLock(str(_folder(self.device) / "timing.lock")))
        self.shared_by = max(0, trials_on(self.device) - 1)
        return self

    def __exit__(self, *exc) -> None:
        self.shared_by = max(self.shared_by, trials_on(self.device) - 1)
        self._stack.close()
