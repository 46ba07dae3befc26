"""Progress of long phases: a bar on a terminal, a line at intervals anywhere else.

Off a terminal (output piped, or a batch job's log) a bar prints nothing useful, so a phase
reports ``train original: epoch 12/182, 41 s`` every ``interval_s()`` seconds
(``UNLEARNBENCH_PROGRESS_INTERVAL``, default 30) and one line at its end if it took longer.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator

from tqdm.auto import tqdm

from ..errors import ConfigError

DEFAULT_INTERVAL_S = 30.0
ENV = "UNLEARNBENCH_PROGRESS_INTERVAL"


def interval_s() -> float:
    """Seconds between progress lines: ``UNLEARNBENCH_PROGRESS_INTERVAL`` (unset or empty: 30;
    ``inf``: none). A value that is not a number >= 0 is a :class:`ConfigError` naming it, not
    a silent default: ``unlearnbench.run.config.prepare`` asks for it, so a typo stops the run
    before any training instead of leaving a batch job's log quiet."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return DEFAULT_INTERVAL_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0:  # NaN too
        raise ConfigError(f"{ENV}={text!r} is invalid: expected a number of seconds >= 0")
    return value


def progress(steps: range, desc: str, unit: str) -> Iterator[int]:
    """Iterate ``steps``, showing progress on stderr (see the module docstring)."""
    if _on_terminal():
        yield from tqdm(steps, desc=desc, unit=unit, leave=False)
        return
    every, total = interval_s(), len(steps)
    start = last = time.monotonic()
    for done, step in enumerate(steps, 1):
        yield step
        now = time.monotonic()
        if now - last >= every and done < total:
            print(f"{desc}: {unit} {done}/{total}, {now - start:.0f} s", file=sys.stderr, flush=True)
            last = now
    if total and time.monotonic() - start >= every:
        print(f"{desc}: {total} {unit}s done in {time.monotonic() - start:.0f} s", file=sys.stderr,
              flush=True)


def _on_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
