"""Crash-safe files: atomic writes, and a checksummed cache of trained models.

A file is written to a temporary name in its folder, flushed to disk, then renamed over the
target, so a killed process leaves either the old file or the new one, never half of one.
Cache entries carry a sha256 sidecar and the full description of what produced them; an
entry whose checksum or description does not match is reported and rebuilt, never loaded.

Several processes may share one cache: :meth:`CheckpointCache.lock` holds an entry's file lock,
so exactly one of them builds a missing entry while the others wait and then load it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

from .errors import ConfigError

CACHE_FORMAT = 4  # bump when a change to training code makes old cached models stale
# 4: channels_last training on the CPU as well (float-level changes)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file ordinary permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:  # a failed write() names no file: say which one it was
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def stable_hash(description: Mapping[str, Any]) -> str:
    """sha256 of a JSON description (keys sorted), the cache key of what it describes."""
    return hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode()).hexdigest()


class CheckpointCache:
    """``root/<kind>/<key>.pt`` + ``<key>.sha256``, keyed by :func:`stable_hash` of a description."""

    def __init__(self, root: Path):
        self.root = Path(root).expanduser()

    def path(self, kind: str, description: Mapping[str, Any]) -> Path:
        return self.root / kind / f"{stable_hash(description)}.pt"

    @contextmanager
    def lock(self, kind: str, description: Mapping[str, Any]) -> Iterator[None]:
        """Hold the entry's lock (``<key>.lock``, an OS file lock that dies with its process):
        load-or-build inside it, so one process builds and the others wait, then load."""
        path = self.path(kind, description)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = path.with_suffix(".lock")
        with FileLock(str(lock)):
            try:
                yield
            except OSError:
                # the entry could not be written (a full or read-only disk): leave no lock file
                # behind beside the missing entry (a process already waiting on it builds anew)
                if not path.exists():
                    lock.unlink(missing_ok=True)
                raise

    def load(self, kind: str, description: Mapping[str, Any]) -> dict[str, Any] | None:
        """The cached payload, or None if absent; a damaged entry warns and counts as absent."""
        path = self.path(kind, description)
        checksum = path.with_suffix(".sha256")
        if not path.exists():
            return None
        problem = None
        data = path.read_bytes()
        if not checksum.exists():
            problem = "its checksum file is missing (an interrupted write?)"
        elif hashlib.sha256(data).hexdigest() != checksum.read_text().strip():
            problem = "its contents do not match the recorded sha256"
        else:
            try:
                entry = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            except Exception as exc:
                problem = f"it cannot be read ({type(exc).__name__}: {exc})"
            else:
                if json.loads(json.dumps(description, default=str)) != entry.get("description"):
                    problem = "it was produced by a different configuration"
                else:
                    return entry["payload"]
        warnings.warn(f"ignoring damaged cache entry {path}: {problem}; rebuilding it", stacklevel=2)
        return None

    def save(self, kind: str, description: Mapping[str, Any], payload: dict[str, Any]) -> Path:
        path = self.path(kind, description)
        buffer = io.BytesIO()
        torch.save({"description": json.loads(json.dumps(description, default=str)),
                    "payload": payload}, buffer)
        data = buffer.getvalue()
        path.with_suffix(".sha256").unlink(missing_ok=True)
        atomic_write_bytes(path, data)
        atomic_write_text(path.with_suffix(".sha256"), hashlib.sha256(data).hexdigest())
        return path


# -- checks of output locations, made before any model trains ------------------------------
NAME_MAX = 255  # bytes in one file name on common filesystems (ext4, xfs, btrfs, APFS, NTFS)
TEMP_NAME_EXTRA = len(".") + len(".") + 8 + len(".tmp")  # atomic_write_bytes's ".NAME.XXXXXXXX.tmp"


def check_writable_folder(path: Path, flag: str) -> None:
    """Raise a one-line :class:`ConfigError` unless ``path`` is (or can be made) a writable folder.

    Nothing is created: the nearest existing ancestor is probed with a temporary file, which
    also catches read-only mounts (where permission bits alone say nothing for root).
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file; expected a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{flag} {path} cannot be created: {existing} is a file")
    try:
        _probe_write(existing)
    except OSError as exc:
        raise ConfigError(f"{flag} {path} is not writable: {exc.strerror or exc} in {existing}") from None


def check_writable_file(path: Path, flag: str) -> None:
    """Like :func:`check_writable_folder`, for a file about to be written (its folder is probed)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; expected a file name")
    check_file_name(path.name, flag)
    check_writable_folder(path.parent, flag)


def check_file_name(name: str, what: str) -> None:
    """A file name that the filesystem (and an atomic write's temporary name) can hold."""
    length = len(name.encode()) + TEMP_NAME_EXTRA
    if length > NAME_MAX:
        raise ConfigError(f"{what} gives the file name {name[:40]!r}... of {len(name.encode())} bytes; "
                          f"expected at most {NAME_MAX - TEMP_NAME_EXTRA} (shorten it)")


def _probe_write(folder: Path) -> None:
    with tempfile.TemporaryFile(dir=folder):
        pass

