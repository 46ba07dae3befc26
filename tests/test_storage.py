"""Crash-safe writes and the checksummed checkpoint cache."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from unlearnbench.run.config import RunConfig
from unlearnbench.run.api import run_trials
from unlearnbench.storage import CheckpointCache, atomic_write_bytes, atomic_write_text, stable_hash

DESCRIPTION = {"kind": "original", "seed": 0, "recipe": {"epochs": 2, "milestones": [0.5, 0.75]}}


# -- atomic writes ------------------------------------------------------------------------------------
def test_atomic_write_creates_folders_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "record.json"
    atomic_write_text(target, "first")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert os.listdir(target.parent) == ["record.json"]


def test_atomic_write_gives_the_permissions_of_an_ordinary_write(tmp_path: Path) -> None:
    ordinary = tmp_path / "ordinary.json"
    ordinary.write_text("x")  # mkstemp alone would make the atomic file private (0600)
    atomic_write_text(tmp_path / "atomic.json", "x")
    assert (tmp_path / "atomic.json").stat().st_mode == ordinary.stat().st_mode


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failed_write_leaves_the_old_file_untouched(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    target = tmp_path / "record.json"
    atomic_write_text(target, "old contents")

    def fail(src, dst):
        assert Path(src).read_bytes() == b"new contents"  # fully written before the rename
        raise error

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(type(error)):
        atomic_write_text(target, "new contents")
    assert target.read_text() == "old contents"
    assert os.listdir(tmp_path) == ["record.json"]


def test_a_failed_first_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError, match="boom"):
        atomic_write_bytes(tmp_path / "x.pt", b"data")
    assert os.listdir(tmp_path) == []


def test_stable_hash_ignores_key_order_and_sees_values() -> None:
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


# -- the checkpoint cache ----------------------------------------------------------------------------
def _payload() -> dict:
    g = torch.Generator().manual_seed(0)
    return {"state": {"w": torch.randn(3, 4, generator=g), "n": torch.tensor(5)},
            "snapshots": {0: {"w": torch.zeros(2)}, 8: {"w": torch.ones(2)}}, "seconds": 1.25}


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    cache = CheckpointCache(tmp_path)
    path = cache.save("originals", DESCRIPTION, _payload())
    assert path == tmp_path / "originals" / f"{stable_hash(DESCRIPTION)}.pt"
    assert path.with_suffix(".sha256").is_file()
    loaded = cache.load("originals", dict(reversed(DESCRIPTION.items())))  # same description
    assert loaded is not None
    torch.testing.assert_close(loaded["state"], _payload()["state"])
    assert loaded["snapshots"].keys() == {0, 8} and loaded["seconds"] == 1.25
    assert sorted(os.listdir(path.parent)) == sorted([path.name, path.with_suffix(".sha256").name])


def test_an_absent_or_differently_described_entry_is_a_silent_miss(tmp_path: Path) -> None:
    cache = CheckpointCache(tmp_path)
    assert cache.load("originals", DESCRIPTION) is None
    cache.save("originals", DESCRIPTION, _payload())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.load("originals", {**DESCRIPTION, "seed": 1}) is None
        assert cache.load("pruned", DESCRIPTION) is None


def test_flipped_bytes_warn_and_count_as_absent(tmp_path: Path) -> None:
    cache = CheckpointCache(tmp_path)
    path = cache.save("originals", DESCRIPTION, _payload())
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=r"ignoring damaged cache entry .*do not match the recorded sha256"):
        assert cache.load("originals", DESCRIPTION) is None


def test_a_missing_checksum_warns_and_counts_as_absent(tmp_path: Path) -> None:
    cache = CheckpointCache(tmp_path)
    path = cache.save("originals", DESCRIPTION, _payload())
    path.with_suffix(".sha256").unlink()
    with pytest.warns(UserWarning, match="checksum file is missing"):
        assert cache.load("originals", DESCRIPTION) is None


def test_an_entry_under_the_wrong_key_is_not_loaded(tmp_path: Path) -> None:
    """A file whose stored description differs from the one asked for (a copied file, a hash
    collision) is refused even though its checksum is fine."""
    cache = CheckpointCache(tmp_path)
    path = cache.save("originals", DESCRIPTION, _payload())
    other = {**DESCRIPTION, "seed": 2}
    shutil.copy(path, cache.path("originals", other))
    shutil.copy(path.with_suffix(".sha256"), cache.path("originals", other).with_suffix(".sha256"))
    with pytest.warns(UserWarning, match="produced by a different configuration"):
        assert cache.load("originals", other) is None


def test_a_valid_checksum_of_unreadable_bytes_warns(tmp_path: Path) -> None:
    cache = CheckpointCache(tmp_path)
    path = cache.path("originals", DESCRIPTION)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a torch file")
    import hashlib
    path.with_suffix(".sha256").write_text(hashlib.sha256(b"not a torch file").hexdigest())
    with pytest.warns(UserWarning, match="cannot be read"):
        assert cache.load("originals", DESCRIPTION) is None


# -- through the harness -------------------------------------------------------------------------
def test_a_corrupted_original_is_rebuilt_with_the_same_results(tmp_path: Path) -> None:
    config = RunConfig(method="ft", method_params={"epochs": 1}, dataset="synthetic",
                       dataset_params={"train_per_class": 32, "test_per_class": 16},
                       train_params={"epochs": 2}, cache_dir=tmp_path / "cache",
                       output_dir=tmp_path / "out")
    [first] = run_trials(config)
    [cached] = run_trials(config)
    assert not first.timings.original_cached and cached.timings.original_cached
    assert cached.metrics["UA"] == first.metrics["UA"] and cached.metrics["RA"] == first.metrics["RA"]

    [entry] = (tmp_path / "cache" / "originals").glob("*.pt")
    data = bytearray(entry.read_bytes())
    data[-100] ^= 0x01
    entry.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="ignoring damaged cache entry"):
        [rebuilt] = run_trials(config)
    assert not rebuilt.timings.original_cached
    for name in ("UA", "MIA", "RA", "TA"):
        assert rebuilt.metrics[name] == first.metrics[name]
    assert rebuilt.split == first.split
    [again] = run_trials(config)  # the rebuilt entry is valid again
    assert again.timings.original_cached
