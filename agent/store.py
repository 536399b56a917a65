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
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meterlink.drivers.base import Reading
from meterlink.wire.payload import StoredEvent, StoredReading

from .errors import StoreError
from .store_file import SCHEMA_VERSION, SQLITE_HEADER, StoreFile, make_folder, not_a_store
from .store_reports import ReportSlots

__all__ = [
    "OVERFLOW_POLICIES",
    "SCHEMA_VERSION",
    "SQLITE_HEADER",
    "Store",
    "StoreFull",
    "StoreStats",
    "make_folder",
    "not_a_store",
]


class StoreFull(StoreError):
    """The store is at its cap and its overflow policy is to refuse new readings."""


OVERFLOW_POLICIES = ("drop_oldest", "refuse")
DROP_CHUNK = 5_000  # readings dropped or purged per step when making room


@dataclass(frozen=True, slots=True)
class StoreStats:
    pending: int
    oldest_pending_ts: int | None
    next_seq: int
    rows: int
    events_pending: int
    file_bytes: int
    dropped: int = 0  # pending readings dropped to make room, since the store was opened


class Store(StoreFile, ReportSlots):
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
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {OVERFLOW_POLICIES}")
        self.retention_ms = retention_ms
        self.overflow = overflow
        # False on a site with no MQTT uplink: no reading will ever be marked sent, so retention
        # purges readings by age alone (else the store would fill to its cap and start dropping).
        self.uploaded = uploaded
        self.dropped = 0  # pending readings dropped to make room, since this process started
        self.events_added = 0  # events written since opening: the uploader sends when this moves
        super().__init__(path, gateway, capacity_bytes)
        self._series: dict[tuple[str, str, str], int] = {}
        self._series_by_id: dict[int, tuple[str, str, str]] = {}
        for sid, meter, quantity, unit in self.db.execute("SELECT id, meter, quantity, unit FROM series"):
            self._series[(meter, quantity, unit)] = sid
            self._series_by_id[sid] = (meter, quantity, unit)
        self.next_seq = self._open_seq()
        self.pending_from = int(self._meta("pending_from") or 1)
        self._advance_pending_from()

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

    # -- reading ---------------------------------------------------------------------------------

    def pending(self, limit: int, after: int = 0, below: int | None = None) -> list[StoredReading]:
        """The oldest pending readings with ``after`` < seq < ``below``, in seq order."""
        rows = self.db.execute(
            "SELECT seq, series, value, ts, slot, flags FROM readings "
            "WHERE seq >= ? AND seq < ? AND sent IS NULL ORDER BY seq LIMIT ?",
            (max(after + 1, self.pending_from), below if below is not None else 2**62, limit),
        ).fetchall()
        return self._stored(rows)

    def _stored(self, rows: list[tuple[int, int, float, int, int, int]]) -> list[StoredReading]:
        # One loop, no call per row: every reading an upload sends passes through here.
        by_id, out = self._series_by_id, []
        for seq, series, value, ts, slot, flags in rows:
            meter, quantity, unit = by_id[series]
            out.append(StoredReading(seq, meter, quantity, value, unit, ts, slot, flags))
        return out

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
        return self._stored(rows)

    def stats(self, *, count_rows: bool = True) -> StoreStats:
        """What the store holds; ``count_rows`` False leaves out the count of every row (``rows`` 0),
        which scans the whole table: the monitor's frequent look needs only what is pending."""
        db = self.db
        pending, oldest = db.execute(
            "SELECT count(*), min(ts) FROM readings WHERE seq >= ? AND sent IS NULL", (self.pending_from,)
        ).fetchone()
        rows = db.execute("SELECT count(*) FROM readings").fetchone()[0] if count_rows else 0
        events = db.execute("SELECT count(*) FROM events WHERE sent IS NULL").fetchone()[0]
        return StoreStats(pending, oldest, self.next_seq, rows, events, self.file_bytes(), self.dropped)

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
        self._purge_reports(cutoff)
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
