"""Reading the store from another process without creating, changing or locking out a file.

``meterlink status`` and ``meterlink report`` read the store while the agent may be running, often as
another user (root, a technician). A plain read-only SQLite connection is not enough: on a store in
WAL mode whose ``-wal`` and ``-shm`` are absent (the agent stopped cleanly), SQLite creates both, even
read-only, and leaves them behind, owned by whoever ran the command; the agent, running as its own
user, then cannot open its store. So:

- ``-wal`` and ``-shm`` present (the agent runs, or was killed): a ``mode=ro`` connection reads the
  committed state like any other reader; nothing is created, and the database and ``-wal`` are only
  read (SQLite notes its reader in the shared-memory ``-shm``, as every reader does).
- neither present: everything is in the database file, which is opened ``immutable`` (no locks, no
  ``-shm``). Should the agent start meanwhile, the file's identity or a new ``-wal`` shows it, and the
  read is done again the first way.
- a ``-wal`` without its ``-shm`` (a copied store): the two are read from a private copy.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from .errors import MeterlinkError

T = TypeVar("T")
ATTEMPTS = 3


def _uri(path: Path, options: str) -> str:
    return f"file:{quote(str(path.resolve()))}?{options}"


def _identity(path: Path) -> tuple[int, int, int, int, bool]:
    """What changes when anything writes the store: the file itself, or a ``-wal`` appearing."""
    info = path.stat()
    wal = path.with_name(path.name + "-wal")
    return info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns, wal.exists()


def _read(uri: str, read: Callable[[sqlite3.Connection], T]) -> T:
    db = sqlite3.connect(uri, uri=True, isolation_level=None)
    try:
        db.execute("BEGIN")  # one snapshot for every query of the read, while the agent appends
        try:
            return read(db)
        finally:
            if db.in_transaction:
                db.execute("COMMIT")
    finally:
        db.close()


def read_store(path: Path, read: Callable[[sqlite3.Connection], T]) -> T:
    """``read(connection)`` on the store at ``path``, read-only; returns what it returns.

    Raises:
        MeterlinkError: no store at ``path``, or not a database (one line).
    """
    if not path.exists():
        raise MeterlinkError(f"store {path} does not exist yet (the agent has not run)")
    if path.is_dir():
        raise MeterlinkError(f"store {path} is a directory, not a store file")
    try:
        return _read_store(path, read)
    except sqlite3.DatabaseError as exc:
        raise MeterlinkError(f"store {path}: {exc}") from None
    except OSError as exc:
        raise MeterlinkError(f"store {path}: {exc.strerror or exc}") from None


def _read_store(path: Path, read: Callable[[sqlite3.Connection], T]) -> T:
    wal = path.with_name(path.name + "-wal")
    shm = path.with_name(path.name + "-shm")
    for _ in range(ATTEMPTS):
        if wal.exists() and shm.exists():
            return _read(_uri(path, "mode=ro"), read)
        if wal.exists():
            return _read_copy(path, read)
        before = _identity(path)
        try:
            result = _read(_uri(path, "immutable=1"), read)
        except sqlite3.DatabaseError:
            if _identity(path) == before:
                raise
            continue  # the agent started and wrote while we read: read again, as its reader
        if _identity(path) == before:
            return result
    raise MeterlinkError(f"store {path} kept changing while it was read; try again")


def _read_copy(path: Path, read: Callable[[sqlite3.Connection], T]) -> T:
    """A store with a ``-wal`` but no ``-shm``: SQLite would create the ``-shm`` beside it."""
    with tempfile.TemporaryDirectory(prefix="meterlink-store-") as tmp:
        copy = Path(tmp) / path.name
        shutil.copyfile(path, copy)
        shutil.copyfile(path.with_name(path.name + "-wal"), copy.with_name(copy.name + "-wal"))
        os.chmod(copy, 0o600)
        return _read(_uri(copy, "mode=ro"), read)


def has_table(db: sqlite3.Connection, name: str) -> bool:
    """Whether the store has ``name`` (the rules' tables appear once the agent ran them)."""
    row = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
    return bool(row[0])
