"""Whether the store can live where ``store.path`` puts it: the file, its folder, the room on that disk.

``run`` makes the folder and the database when it starts; these checks try the same things (a
folder made and removed, a file created and removed) as the user the command runs as, so a
read-only mount, a folder under /proc or a full disk is one line in check-config and in run, not
a crash at start-up. Nothing is left behind: check-config makes no folder and no store.
"""

from __future__ import annotations

import errno
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .osuser import effective_user
from .store import not_a_store

KEY = "store.path"
# Below this a new store cannot even be created with its -wal: an error, not a warning.
NEARLY_FULL_BYTES = 1024 * 1024


@dataclass
class StoreFindings:
    """``errors`` stop the agent from starting; ``warnings`` are said and it starts."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def check_store(path: Path, capacity_bytes: int) -> StoreFindings:
    """Errors and warnings about the store at ``path``, as ``store.path: reason`` lines."""
    found = StoreFindings()
    if reason := not_a_store(path):
        found.errors.append(f"{KEY}: {reason}")
        return found
    folder = path.parent
    try:
        existing = _nearest_existing(folder)
    except OSError as exc:  # a name too long, a symlink loop
        found.errors.append(f"{KEY}: {folder}: {exc.strerror or exc}")
        return found
    if not existing.is_dir():
        found.errors.append(f"{KEY}: {existing} is not a folder")
        return found
    if problem := _cannot_write(folder, existing):
        found.errors.append(f"{KEY}: {problem}")
        return found
    for file in (path, path.with_name(path.name + "-wal")):
        if file.exists() and not os.access(file, os.W_OK):
            found.errors.append(f"{KEY}: {file} is not writable by user {effective_user()}")
            return found
    _room(path, existing, capacity_bytes, found)
    return found


def _nearest_existing(folder: Path) -> Path:
    while not folder.exists():
        folder = folder.parent
    return folder


def _cannot_write(folder: Path, existing: Path) -> str | None:
    """Try what the store will do: make the folder (a temporary one in its place), or add a file to it."""
    try:
        if existing != folder:
            os.rmdir(tempfile.mkdtemp(prefix=".meterlink-check-", dir=existing))
        else:
            _touch(folder)
    except PermissionError as exc:
        if exc.errno != errno.EACCES:
            return _failed(folder, existing, exc)
        if existing != folder:
            return f"folder {folder} cannot be created: {existing} is not writable by user {effective_user()}"
        return f"folder {folder} is not writable by user {effective_user()}"
    except OSError as exc:
        return _failed(folder, existing, exc)
    return None


def _touch(folder: Path) -> None:
    fd, name = tempfile.mkstemp(prefix=".meterlink-check-", dir=folder)
    os.close(fd)
    os.unlink(name)


def _failed(folder: Path, existing: Path, exc: OSError) -> str:
    verb = "created" if existing != folder else "written"
    return f"folder {folder} cannot be {verb} ({exc.strerror or exc})"


def _room(path: Path, existing: Path, capacity_bytes: int, found: StoreFindings) -> None:
    try:
        disk = os.statvfs(existing)
    except OSError:
        return  # a folder that may be written but not measured: nothing to warn about
    free = disk.f_bavail * disk.f_frsize  # what an unprivileged user may still use
    held = sum(f.stat().st_size for f in (path, path.with_name(path.name + "-wal")) if f.exists())
    if free < NEARLY_FULL_BYTES:
        found.errors.append(
            f"{KEY}: {existing} has only {_mb(free)} free (the store needs at least {_mb(NEARLY_FULL_BYTES)})"
        )
    elif free + held < capacity_bytes:
        found.warnings.append(
            f"{KEY}: {existing} has {_mb(free)} free, less than the store may use "
            f"({_mb(capacity_bytes)}, store.capacity_mb): the disk would fill before the "
            "store reaches its cap"
        )
