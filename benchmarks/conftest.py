"""Shared settings of the CPU speed benchmarks (see benchmarks/README.md).

Timings are only comparable with a fixed number of threads: every benchmark runs torch with
one intra-op thread (``UNLEARNBENCH_BENCH_THREADS`` changes it), which also keeps the numbers
steady on a machine that other processes share.
"""

from __future__ import annotations

import os

import pytest
import torch

BENCH_THREADS = int(os.environ.get("UNLEARNBENCH_BENCH_THREADS", "1"))


@pytest.fixture(scope="session", autouse=True)
def _fixed_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(BENCH_THREADS)
    yield
    torch.set_num_threads(before)
