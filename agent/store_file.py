"""Opening the store file, and recovering from what a crash or a bad card left.

The store never writes over a file it did not make (:func:`not_a_store`). A file that fails
SQLite's own check is moved aside, with a marker naming where, and a new store is created that
continues every counter above the durable mark (:mod:`seqmark`) and takes, in the transaction that
creates it, every pending reading and event still readable from the old one (:mod:`salvage`).

:class:`StoreFile` holds the connection and this opening logic; :class:`~meterlink.agent.store.Store`
adds readings and events on top, and :class:`~meterlink.agent.store_reports.ReportSlots` the SZY206
report slots.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import StoreError
from .osuser import effective_user
from .seqmark import SeqMark
from .store_reports import SZY206_SCHEMA

if TYPE_CHECKING:
    from .salvage import Salvage, SalvagedEvent, SalvagedReading

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE series (
    id INTEGER PRIMARY KEY,
    meter TEXT NOT NULL, quantity TEXT NOT NULL, unit TEXT NOT NULL,
    UNIQUE (meter, quantity, unit)
);
CREATE TABLE readings (
    seq INTEGER PRIMARY KEY,      -- assigned by the store, see module docstring
    series INTEGER NOT NULL,
    value REAL NOT NULL,
    ts INTEGER NOT NULL,          -- acquisition time, ms since epoch UTC
    slot INTEGER NOT NULL,        -- scheduled poll slot, ms since epoch UTC
    flags INTEGER NOT NULL,
    sent INTEGER                  -- 1 once the far side confirmed it (a zero-byte value in SQLite's
                                  -- record format, so marking never grows a row); NULL while pending
);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts INTEGER NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL,
    sent INTEGER
);
CREATE INDEX events_pending ON events (seq) WHERE sent IS NULL;
"""


def _statements(script: str) -> list[str]:
    """A script's statements, one by one (comments may hold semicolons, so no naive split)."""
    out: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            out.append(buffer.strip())
            buffer = ""
    return out


class _Corrupt(sqlite3.DatabaseError):
    """The file opened but its content fails SQLite's own check."""


# SQLITE_CORRUPT and SQLITE_NOTADB: the only failures that make a store worth moving aside.
_CORRUPTION_CODES = {11, 26}


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, _Corrupt) or (code is not None and code & 0xFF in _CORRUPTION_CODES)


def _cannot_open(path: Path, exc: sqlite3.DatabaseError) -> str:
    """One line a technician can act on."""
    try:
        if path.is_dir():
            return f"store {path} is a directory, not a store file"
        for file in (path.parent, path, path.with_name(path.name + "-wal")):
            if file.exists() and not os.access(file, os.W_OK):
                return f"store {path}: {file} is not writable by user {effective_user()}"
    except OSError:
        pass
    return f"store {path}: {exc}"


SQLITE_HEADER = b"SQLite format 3\x00"


def not_a_store(path: Path) -> str | None:
    """Why the file at ``path`` must not be opened as the store (one line), or None.

    The store never writes over a file it did not make: an existing file must be empty (taken as a
    new store) or a SQLite database that holds no other program's tables. A bad header counts as
    ours only with the store's durable seq mark beside it: that is a damaged store (moved aside when
    it fails its check), not the signing key or the config named by mistake.
    """
    try:
        info = path.stat()
    except (OSError, ValueError):
        return None  # not there yet (a new store), or opening it says why
    if stat.S_ISDIR(info.st_mode):
        return f"{path} is a directory, not a store file"
    if not stat.S_ISREG(info.st_mode):
        return f"{path} is not a regular file, so not a store file"
    if info.st_size == 0 or path.with_name(path.name + ".seqmark").exists():
        return None
    try:
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except OSError:
        return None  # unreadable: opening it says why, naming the user
    if header != SQLITE_HEADER:
        return f"{path} is not a SQLite database: meterlink leaves it as it is; give store.path a file of its own"
    if _has_foreign_tables(path):
        return (
            f"{path} is a SQLite database of another program (no meterlink tables): meterlink leaves it as "
            "it is; give store.path a file of its own"
        )
    return None


def _has_foreign_tables(path: Path) -> bool:
    """Tables, none of them ours. Read as immutable, so not even a -wal or -shm file appears beside it;
    a database that cannot be read so is left to the store to judge."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
        try:
            names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            db.close()
    except (sqlite3.Error, OSError, ValueError):
        return False
    return bool(names) and "meta" not in names


def make_folder(folder: Path) -> None:
    """Create the store's folder (and its parents) so that it survives a power cut: each new
    folder's entry is made durable by syncing the folder it was created in."""
    missing = [f for f in (folder, *folder.parents) if not f.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):
        _fsync_dir(created.parent)


def _fsync_dir(folder: Path) -> None:
    """Make renames and removals in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


WAL_RESERVE = 4 * 1024 * 1024  # the cap keeps this much room for the -wal file


class StoreFile:
    """The store's SQLite file: opened (or created, or moved aside and replaced) for one gateway."""

    def __init__(self, path: Path, gateway: str, capacity_bytes: int | None) -> None:
        if reason := not_a_store(path):
            raise StoreError(f"store {reason}")
        self.path = path
        self.gateway = gateway
        self.capacity_bytes = capacity_bytes
        self.moved_aside: tuple[Path, str] | None = None  # (where, why) when a corrupt store was replaced
        self.seq_jump: tuple[int, int] | None = None  # (had, continued at) when the store was replaced
        self.salvaged: Salvage | None = None  # what was read from a corrupt store this one replaced
        self.mark = SeqMark(path.with_name(path.name + ".seqmark"))
        make_folder(path.parent)
        try:
            self._open()
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                # Permissions, a directory in the way, a busy or read-only file: the store may hold
                # pending readings, so it is never moved aside for these; the technician fixes it.
                raise StoreError(_cannot_open(path, exc)) from None
            # A corrupt file (a bad SD card, a torn copy): keep it for inspection, start afresh; the
            # durable mark keeps seq above every number the lost store may have used.
            self.moved_aside = (self._move_aside(), str(exc))
            try:
                self._open()
            except sqlite3.DatabaseError as again:
                raise StoreError(_cannot_open(path, again)) from None
        if not self.created:
            self._salvage_done()  # a marker beside a store that opens is left from a crash after its salvage

    def _open(self) -> None:
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._prepare()
            if self.db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise _Corrupt("quick_check failed")
        except sqlite3.DatabaseError:
            self.db.close()
            raise

    def _move_aside(self) -> Path:
        """Move the corrupt store (with its -wal and -shm) aside; the marker written first names it,
        so its pending readings are salvaged into the new store even after a crash right here."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        marker = self._salvage_marker()
        tmp = marker.with_name(marker.name + ".tmp")
        tmp.write_text(target.name + "\n", encoding="utf-8")
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, marker)
        for suffix in ("", "-wal", "-shm"):
            src = self.path.with_name(self.path.name + suffix)
            if src.exists():
                os.replace(src, target.with_name(target.name + suffix))
        _fsync_dir(self.path.parent)
        return target

    def _prepare(self) -> None:
        db = self.db
        fresh = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
        self.created = fresh
        if fresh:
            # Must precede the first table: auto_vacuum cannot be switched on later without VACUUM.
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"store {self.path}: cannot use WAL mode (got {mode})")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=OFF")
        if self.capacity_bytes is not None:
            # The cap counts the -wal file too: the database may use the cap less a reserve, and
            # the WAL is truncated back to that reserve after each checkpoint.
            page = db.execute("PRAGMA page_size").fetchone()[0]
            reserve = min(WAL_RESERVE, self.capacity_bytes // 4)
            db.execute(f"PRAGMA max_page_count = {max(16, (self.capacity_bytes - reserve) // page)}")
            db.execute(f"PRAGMA journal_size_limit = {reserve}")
            db.execute(f"PRAGMA wal_autocheckpoint = {max(16, reserve // page // 2)}")
        if fresh:
            self._create()
        db.execute(SZY206_SCHEMA)  # stores made before the SZY206 uplink existed gain its table
        owner = self._meta("gateway")
        if owner != self.gateway:
            raise StoreError(f"store {self.path} belongs to gateway {owner!r}, not {self.gateway!r}")
        schema = self._meta("schema")
        if schema != SCHEMA_VERSION:
            raise StoreError(f"store {self.path} has schema {schema}, this meterlink needs {SCHEMA_VERSION}")

    def _create(self) -> None:
        """Schema, identity and first numbers in ONE transaction: a crash leaves a whole store or none.

        A new store after a used one (the durable mark is ahead) continues above every number the
        lost store may have used, and says so in an event committed in that same transaction. A new
        store that replaces a corrupt one also takes, in that same transaction, every pending reading
        and event that can still be read from it (salvage.py), under their own numbers.
        """
        source = self._salvage_source()
        if source is not None:
            try:
                self._create_with(source)
            except (sqlite3.Error, OSError) as exc:  # e.g. the salvage does not fit the cap: start empty
                self._create_with(source, error=f"{type(exc).__name__}: {exc}")
            self._salvage_done()
        else:
            self._create_with(None)

    def _create_with(self, source: Path | None, error: str = "") -> None:
        """See :meth:`_create`; ``source`` is a corrupt store to salvage from, unless ``error`` says
        why that failed (the new store then starts empty and its event says so)."""
        db = self.db
        marks = dict(self.mark.marks)
        statements = _statements(_SCHEMA + SZY206_SCHEMA + ";")
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements:
                db.execute(statement)
            found = None
            if source is not None:
                # Only a store that replaces a corrupt one reads the old one's pages.
                from .salvage import Salvage, salvage
            if source is not None and not error:
                found = salvage(source, max(1, marks["seq"]), max(1, marks["event"]), self._salvaged_sink())
                self._insert_salvaged_events(found.events)
            first_seq = max(1, marks["seq"], (found.highest_seq + 1) if found else 1, found.next_seq if found else 1)
            last_event = max(marks["event"] - 1, max((e[0] for e in found.events), default=0) if found else 0)
            replaced = first_seq > 1 or source is not None
            if replaced:
                # Covers store_replaced (and store_salvaged) below.
                self.mark.ensure_all({"seq": first_seq, "event": last_event + (3 if source else 2)})
            lowest = db.execute("SELECT min(seq) FROM readings").fetchone()[0]
            db.execute(
                "INSERT INTO meta VALUES ('schema', ?), ('gateway', ?), ('next_seq', ?), ('next_batch', ?), "
                "('pending_from', ?)",
                (SCHEMA_VERSION, self.gateway, first_seq, max(1, marks["batch"]), lowest or first_seq),
            )
            if last_event > 0:  # AUTOINCREMENT continues above the highest number in sqlite_sequence
                db.execute("INSERT OR REPLACE INTO sqlite_sequence (name, seq) VALUES ('events', ?)", (last_event,))
            if replaced:
                db.execute(
                    "INSERT INTO events (ts, kind, detail) VALUES (?, 'store_replaced', ?)",
                    (int(time.time() * 1000), json.dumps({"seq_continues_at": first_seq})),
                )
            if source is not None:
                self.salvaged = got = found or Salvage(problems=[error])
                db.execute(
                    "INSERT INTO events (ts, kind, detail) VALUES (?, 'store_salvaged', ?)",
                    (
                        int(time.time() * 1000),
                        json.dumps(
                            {
                                "moved_to": str(source),
                                "salvaged": got.readings,
                                "salvaged_events": len(got.events),
                                "unreadable": got.unreadable,
                                "unreadable_events": got.unreadable_events,
                                "error": error or None,
                            }
                        ),
                    ),
                )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        if replaced:
            self.seq_jump = (1, first_seq)

    def _salvaged_sink(self) -> Callable[[list[SalvagedReading]], None]:
        """Inserts salvaged readings (inside the creating transaction) under their own seq, pending."""
        ids: dict[tuple[str, str, str], int] = {}
        db = self.db

        def insert(chunk: list[SalvagedReading]) -> None:
            rows = []
            for seq, meter, quantity, unit, value, ts, slot, flags in chunk:
                key = (meter, quantity, unit)
                sid = ids.get(key)
                if sid is None:
                    db.execute("INSERT OR IGNORE INTO series (meter, quantity, unit) VALUES (?, ?, ?)", key)
                    sid = ids[key] = db.execute(
                        "SELECT id FROM series WHERE meter = ? AND quantity = ? AND unit = ?", key
                    ).fetchone()[0]
                rows.append((seq, sid, value, ts, slot, flags))
            db.executemany("INSERT OR IGNORE INTO readings VALUES (?, ?, ?, ?, ?, ?, NULL)", rows)

        return insert

    def _insert_salvaged_events(self, events: list[SalvagedEvent]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO events (seq, ts, kind, detail) VALUES (?, ?, ?, ?)", events)

    # A corrupt store is moved aside and this file, beside the store, names where until the new store
    # holds what could be salvaged: a crash in between salvages at the next start, not never.
    def _salvage_marker(self) -> Path:
        return self.path.with_name(self.path.name + ".salvage")

    def _salvage_source(self) -> Path | None:
        try:
            name = self._salvage_marker().read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None
        source = self.path.with_name(name)
        return source if name and source.name == name and source.is_file() else None

    def _salvage_done(self) -> None:
        try:
            self._salvage_marker().unlink()
            _fsync_dir(self.path.parent)
        except FileNotFoundError:
            pass

    def _open_seq(self) -> int:
        """The next reading seq; every counter's durable mark is brought up to the store's."""
        stored = int(self._meta("next_seq"))
        highest = self.db.execute("SELECT max(seq) FROM readings").fetchone()[0] or 0
        next_seq = max(stored, highest + 1)
        self.mark.ensure_all(
            {"seq": next_seq, "batch": int(self._meta("next_batch")), "event": self._last_event_seq() + 1}
        )
        return next_seq

    def _last_event_seq(self) -> int:
        """The highest event seq ever given out by this store (AUTOINCREMENT keeps it, deletes or not)."""
        row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return int(row[0]) if row else 0

    def _meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _set_meta(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
