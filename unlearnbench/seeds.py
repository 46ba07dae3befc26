"""Reproducible random streams: every random choice of a trial draws from a named stream of
its seed, so that adding a draw in one place never shifts the draws of another."""

from __future__ import annotations

import hashlib

import torch


def derive_seed(seed: int, stream: str) -> int:
    """An independent 63-bit seed for a named random stream of a trial."""
    digest = hashlib.sha256(f"{seed}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def generator(seed: int, stream: str) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, stream))
