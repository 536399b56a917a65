"""The outbox: every reading on local disk until the far side has confirmed it.

SQLite in WAL mode with ``synchronous=FULL``: a commit is on disk when it returns, and a crash
image is the database file together with its ``-wal``. One transaction per poll cycle.

``seq`` is assigned here, per gateway, from 1, by exactly 1 per reading, never reused. SQLite's
plain ``INTEGER PRIMARY KEY`` would reuse the highest numbers once they are deleted, so the next
number lives in ``meta`` and is committed with the readings that use it, and a durable mark outside
the store (:mod:`seqmark`) survives the loss of the store itself. Message ``batch`` numbers and event
``seq`` numbers are marked the same way, so none of the three counters starts again after a loss.

A reading is *pending* until :meth:`Store.mark_sent` records the far side's acknowledgement.
Pending readings are found from a low-water mark (``pending_from``: no seq below it is pending)
by a primary-key range scan; an index on ``sent`` would cost a third of the append rate.
Delivered readings stay for ``retention`` (for local queries and reports), then are purged; the
file was created with ``auto_vacuum=INCREMENTAL`` so purged pages are really given back.

This class is synchronous and not thread-safe: the agent calls it from one worker thread
(:class:`meterlink.agent.outbox.Outbox`), tests and benchmarks call it directly.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meterlink.drivers.base import Reading
from meterlink.wire.payload import StoredEvent, StoredReading

from .errors import StoreError
from .osuser import effective_user
from .salvage import Salvage, SalvagedEvent, SalvagedReading, salvage
from .seqmark import SeqMark

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

# The SZY206 site terminal's own delivery state: one self-report per report slot, kept until the
# central station confirmed it (the MQTT uplink's state is the readings' ``sent`` column).
_SZY206_SCHEMA = """
CREATE TABLE IF NOT EXISTS szy206_reports (
    slot INTEGER PRIMARY KEY,     -- report slot, ms since epoch UTC
    data BLOB NOT NULL,           -- the C0H data area: flow/volume pairs, alarm and status words
    created INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    confirmed INTEGER             -- ms when the station confirmed it; NULL until then
)
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


class StoreFull(StoreError):
    """The store is at its cap and its overflow policy is to refuse new readings."""


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


OVERFLOW_POLICIES = ("drop_oldest", "refuse")
WAL_RESERVE = 4 * 1024 * 1024  # the cap keeps this much room for the -wal file
DROP_CHUNK = 5_000  # readings dropped or purged per step when making room


@dataclass(frozen=True, slots=True)
class StoreStats:
    pending: int
    oldest_pending_ts: int | None
    next_seq: int
    rows: int
    events_pending: int
    file_bytes: int


class Store:
    def __init__(
        self,
        path: Path,
        gateway: str,
        *,
        retention_ms: int = 35 * 86_400_000,
        capacity_bytes: int | None = None,
        overflow: str = "drop_oldest",
        uploaded: bool = True,
    ) -> None:
        if reason := not_a_store(path):
            raise StoreError(f"store {reason}")
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {OVERFLOW_POLICIES}")
        self.path = path
        self.gateway = gateway
        self.retention_ms = retention_ms
        self.capacity_bytes = capacity_bytes
        self.overflow = overflow
        # False on a site with no MQTT uplink: no reading will ever be marked sent, so retention
        # purges readings by age alone (else the store would fill to its cap and start dropping).
        self.uploaded = uploaded
        self.dropped = 0  # pending readings dropped to make room, since this process started
        self.events_added = 0  # events written since opening: the uploader sends when this moves
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
        self._series: dict[tuple[str, str, str], int] = {}
        self._series_by_id: dict[int, tuple[str, str, str]] = {}
        for sid, meter, quantity, unit in self.db.execute("SELECT id, meter, quantity, unit FROM series"):
            self._series[(meter, quantity, unit)] = sid
            self._series_by_id[sid] = (meter, quantity, unit)
        self.next_seq = self._open_seq()
        self.pending_from = int(self._meta("pending_from") or 1)
        self._advance_pending_from()

    # -- opening ---------------------------------------------------------------------------------

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
        db.execute(_SZY206_SCHEMA)  # stores made before the SZY206 uplink existed gain its table
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
        statements = _statements(_SCHEMA + _SZY206_SCHEMA + ";")
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements:
                db.execute(statement)
            found = None
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

    def _series_id(self, meter: str, quantity: str, unit: str) -> int:
        key = (meter, quantity, unit)
        sid = self._series.get(key)
        if sid is None:
            sid = self.db.execute("INSERT INTO series (meter, quantity, unit) VALUES (?, ?, ?)", key).lastrowid
            assert sid is not None
            self._series[key] = sid
            self._series_by_id[sid] = key
        return sid

    # -- writing ---------------------------------------------------------------------------------

    def append(self, readings: Sequence[Reading]) -> tuple[int, int]:
        """Store one poll cycle in one transaction. Returns the (first, last) seq given out.

        At the cap, room is made first from delivered readings, then, by the default policy, from
        the oldest pending ones (dropped, counted, reported as an event: the seq gap shows exactly
        which). With ``overflow="refuse"`` the append raises :class:`StoreFull` instead.

        Raises:
            StoreFull: at the cap with the refuse policy.
            sqlite3.OperationalError: the disk itself is full (below the cap) or failing.
        """
        for _ in range(8):
            try:
                return self._append(readings)
            except sqlite3.OperationalError as exc:
                if not self._at_cap(exc) or not self._make_room(len(readings)):
                    raise
        raise StoreFull(f"store {self.path}: no room for {len(readings)} readings within its cap")

    def _at_cap(self, exc: sqlite3.OperationalError) -> bool:
        if "full" not in str(exc) or self.capacity_bytes is None:
            return False
        used = self.db.execute("PRAGMA page_count").fetchone()[0]
        limit = self.db.execute("PRAGMA max_page_count").fetchone()[0]
        free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        return bool(used - free >= limit * 0.9)

    def _make_room(self, wanted: int) -> bool:
        """Free pages inside the file: delivered readings first, then (policy) the oldest pending."""
        chunk = max(DROP_CHUNK, wanted * 4)
        cur = self.db.execute(
            "DELETE FROM readings WHERE seq IN (SELECT seq FROM readings WHERE sent IS NOT NULL ORDER BY seq LIMIT ?)",
            (chunk,),
        )
        if cur.rowcount > 0:
            return True
        if self.overflow == "refuse":
            raise StoreFull(f"store {self.path} is full ({self.capacity_bytes} bytes) and refuses new readings")
        rows = self.db.execute(
            "SELECT seq FROM readings WHERE seq >= ? AND sent IS NULL ORDER BY seq LIMIT ?", (self.pending_from, chunk)
        ).fetchall()
        if not rows:
            return False
        first, last = rows[0][0], rows[-1][0]
        self._mark_next_event()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("DELETE FROM readings WHERE seq BETWEEN ? AND ? AND sent IS NULL", (first, last))
            self.db.execute(
                "INSERT INTO events (ts, kind, detail) VALUES (?, 'readings_dropped', ?)",
                (
                    int(time.time() * 1000),
                    json.dumps({"first_seq": first, "last_seq": last, "count": len(rows), "reason": "store full"}),
                ),
            )
            self.db.execute("COMMIT")
            self.events_added += 1
        except BaseException:
            self._rollback()
            raise
        self.dropped += len(rows)
        self._advance_pending_from()
        return True

    def _append(self, readings: Sequence[Reading]) -> tuple[int, int]:
        if not readings:
            return (self.next_seq, self.next_seq - 1)
        first = self.next_seq
        last = first + len(readings) - 1
        self.mark.ensure(last + 1)
        db = self.db
        own = not db.in_transaction  # else part of a caller's transaction (see transaction())
        if own:
            db.execute("BEGIN IMMEDIATE")
        try:
            cache, sid = self._series, self._series_id
            rows = []
            seq = first
            for r in readings:
                key = (r.meter, r.quantity, r.unit)
                rows.append((seq, cache.get(key) or sid(*key), r.value, r.ts, r.slot, r.flags))
                seq += 1
            db.executemany("INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?, NULL)", rows)
            db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (last + 1,))
            if own:
                db.execute("COMMIT")
        except BaseException:
            if own:
                self._rollback()
            raise
        self.next_seq = last + 1
        return first, last

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Several writes committed as one (a manual reading and the event naming its evidence)."""
        self.db.execute("BEGIN IMMEDIATE")
        next_seq = self.next_seq
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            self._rollback()
            self.next_seq = next_seq
            raise

    def _rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        # Series ids inserted in the failed transaction are gone: forget the cache, reload.
        self._series.clear()
        self._series_by_id.clear()
        for sid, meter, quantity, unit in self.db.execute("SELECT id, meter, quantity, unit FROM series"):
            self._series[(meter, quantity, unit)] = sid
            self._series_by_id[sid] = (meter, quantity, unit)

    def add_event(self, kind: str, ts: int, detail: dict[str, Any] | None = None) -> int:
        self._mark_next_event()
        cur = self.db.execute(
            "INSERT INTO events (ts, kind, detail) VALUES (?, ?, ?)",
            (ts, kind, json.dumps(detail or {}, separators=(",", ":"), ensure_ascii=False)),
        )
        assert cur.lastrowid is not None
        self.events_added += 1
        return cur.lastrowid

    def _mark_next_event(self) -> None:
        """Before an event takes its number, the durable mark covers it (a read only, within a block)."""
        self.mark.ensure(self._last_event_seq() + 2, "event")

    def reserve_batches(self, count: int) -> int:
        """Reserve ``count`` batch numbers never used before, also across restarts; returns the first.

        Numbers are reserved in blocks so a busy drain does not commit once per message; a restart
        skips what was reserved and not used (batch numbers must increase, not be contiguous).
        """
        self.mark.ensure(int(self._meta("next_batch")) + count, "batch")
        cur = self.db.execute(
            "UPDATE meta SET value = value + ? WHERE key = 'next_batch' RETURNING value - ?", (count, count)
        )
        first = int(cur.fetchone()[0])
        cur.close()
        return first

    def mark_sent(self, first: int, last: int, when: int) -> int:
        """Record that readings first..last were confirmed. Returns how many changed state.

        Committed without its own fsync (synchronous=NORMAL for this transaction only): losing a
        mark to a power cut only means those readings are sent again, and receivers drop duplicates
        by (gateway, seq). The WAL is append-only, so the next FULL commit makes the mark durable
        too, and no reading is ever at risk. It saves an fsync per upload on an SD card.
        """
        db = self.db
        db.execute("PRAGMA synchronous=NORMAL")
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                cur = db.execute(
                    "UPDATE readings SET sent = 1 WHERE seq BETWEEN ? AND ? AND sent IS NULL", (first, last)
                )
                db.execute("INSERT OR REPLACE INTO meta VALUES ('last_sent', ?)", (when,))
                if first <= self.pending_from <= last:
                    self._advance_pending_from()
                db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        finally:
            db.execute("PRAGMA synchronous=FULL")
        return cur.rowcount

    def _advance_pending_from(self) -> None:
        """Move the low-water mark to the first pending seq (next_seq when nothing is pending)."""
        row = self.db.execute(
            "SELECT seq FROM readings WHERE seq >= ? AND sent IS NULL ORDER BY seq LIMIT 1", (self.pending_from,)
        ).fetchone()
        self.pending_from = row[0] if row else self.next_seq
        self._set_meta("pending_from", self.pending_from)

    def mark_events_sent(self, first: int, last: int, when: int) -> int:
        cur = self.db.execute(
            "UPDATE events SET sent = ? WHERE seq BETWEEN ? AND ? AND sent IS NULL", (when, first, last)
        )
        return cur.rowcount

    # -- SZY206 report slots ---------------------------------------------------------------------

    def add_report(self, slot: int, data: bytes, created: int) -> bool:
        """Keep the report of one slot (once); False if that slot is already kept."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO szy206_reports (slot, data, created) VALUES (?, ?, ?)", (slot, data, created)
        )
        return cur.rowcount == 1

    def unconfirmed_reports(self, limit: int, before: int | None = None) -> list[tuple[int, bytes]]:
        """Reports the station has not confirmed, oldest first."""
        rows = self.db.execute(
            "SELECT slot, data FROM szy206_reports WHERE confirmed IS NULL AND slot < ? ORDER BY slot LIMIT ?",
            (before if before is not None else 2**62, limit),
        ).fetchall()
        return [(slot, bytes(data)) for slot, data in rows]

    def reports_between(self, first: int, last: int) -> list[tuple[int, bytes]]:
        rows = self.db.execute(
            "SELECT slot, data FROM szy206_reports WHERE slot BETWEEN ? AND ? ORDER BY slot", (first, last)
        ).fetchall()
        return [(slot, bytes(data)) for slot, data in rows]

    def report_attempted(self, slot: int) -> None:
        self.db.execute("UPDATE szy206_reports SET attempts = attempts + 1 WHERE slot = ?", (slot,))

    def confirm_report(self, slot: int, when: int) -> None:
        self.db.execute("UPDATE szy206_reports SET confirmed = ? WHERE slot = ? AND confirmed IS NULL", (when, slot))

    def report_counts(self) -> tuple[int, int]:
        """(confirmed, unconfirmed) report slots held."""
        row = self.db.execute("SELECT count(confirmed), count(*) - count(confirmed) FROM szy206_reports").fetchone()
        return int(row[0]), int(row[1])

    # -- reading ---------------------------------------------------------------------------------

    def pending(self, limit: int, after: int = 0, below: int | None = None) -> list[StoredReading]:
        """The oldest pending readings with ``after`` < seq < ``below``, in seq order."""
        rows = self.db.execute(
            "SELECT seq, series, value, ts, slot, flags FROM readings "
            "WHERE seq >= ? AND seq < ? AND sent IS NULL ORDER BY seq LIMIT ?",
            (max(after + 1, self.pending_from), below if below is not None else 2**62, limit),
        ).fetchall()
        return [self._row(row) for row in rows]

    def _row(self, row: tuple[int, int, float, int, int, int]) -> StoredReading:
        seq, series, value, ts, slot, flags = row
        meter, quantity, unit = self._series_by_id[series]
        return StoredReading(seq, meter, quantity, value, unit, ts, slot, flags)

    def pending_events(self, limit: int, after: int = 0) -> list[StoredEvent]:
        rows = self.db.execute(
            "SELECT seq, ts, kind, detail FROM events WHERE sent IS NULL AND seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        ).fetchall()
        return [StoredEvent(seq, ts, kind, json.loads(detail)) for seq, ts, kind, detail in rows]

    def readings(self, first: int, last: int) -> list[StoredReading]:
        """Readings by seq range, delivered or not (local queries, tests)."""
        rows = self.db.execute(
            "SELECT seq, series, value, ts, slot, flags FROM readings WHERE seq BETWEEN ? AND ? ORDER BY seq",
            (first, last),
        ).fetchall()
        return [self._row(row) for row in rows]

    def stats(self) -> StoreStats:
        db = self.db
        pending, oldest = db.execute(
            "SELECT count(*), min(ts) FROM readings WHERE seq >= ? AND sent IS NULL", (self.pending_from,)
        ).fetchone()
        rows = db.execute("SELECT count(*) FROM readings").fetchone()[0]
        events = db.execute("SELECT count(*) FROM events WHERE sent IS NULL").fetchone()[0]
        return StoreStats(pending, oldest, self.next_seq, rows, events, self.file_bytes())

    def file_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                total += self.path.with_name(self.path.name + suffix).stat().st_size
            except FileNotFoundError:
                pass
        return total

    # -- housekeeping ----------------------------------------------------------------------------

    def purge(self, now_ms: int, chunk: int = 20_000) -> int:
        """Delete delivered readings (all, when nothing uploads them) older than the retention period;
        give the pages back."""
        cutoff = now_ms - self.retention_ms
        # seq follows time, so the expired rows are at the head: bound the scan by the first young one.
        row = self.db.execute("SELECT seq FROM readings WHERE ts >= ? ORDER BY seq LIMIT 1", (cutoff,)).fetchone()
        bound = row[0] if row else self.next_seq
        deleted = 0
        while True:
            cur = self.db.execute(
                "DELETE FROM readings WHERE seq IN (SELECT seq FROM readings WHERE seq < ? AND ts < ? "
                + ("AND sent IS NOT NULL " if self.uploaded else "")
                + "ORDER BY seq LIMIT ?)",
                (bound, cutoff, chunk),
            )
            deleted += cur.rowcount
            if cur.rowcount < chunk:
                break
        self.db.execute("DELETE FROM events WHERE ts < ? AND sent IS NOT NULL", (cutoff,))
        self.db.execute("DELETE FROM szy206_reports WHERE slot < ? AND confirmed IS NOT NULL", (cutoff,))
        if deleted:
            # Through execute() the pragma frees a single page; executescript runs it to the end.
            self.db.executescript("PRAGMA incremental_vacuum;")
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted

    def close(self) -> None:
        try:
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            self.db.close()
