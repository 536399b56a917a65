"""What the platform's rules keep in the store: day summaries, open conditions, upload slots.

Same SQLite file and connection as the readings (agent/store.py), same worker thread, so a rule's
event and the condition it opens or clears commit in one transaction, and ``meterlink report`` reads
all of it from the store alone. Day summaries are tiny and kept far longer than readings (a quarter
is reconciled from them long after its readings were purged).

- ``daily``: one row per meter, local day and version. Version 1 is written after the day ended; a
  later version (a correction) only when readings that arrived late change the figures. Unsent
  versions go out on ``<prefix>/<gateway>/daily``.
- ``conditions``: the open conditions (agent/rules/conditions.py), so a restart neither raises one
  again nor forgets to clear it.
- ``upload_slots``: the upload slots in which the gateway's upload completed (its own report rate).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from meterlink.drivers.base import Reading

from .rules.conditions import Condition, RuleEvent
from .rules.daily import VOLUME, DaySummary
from .store import Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS daily (
    meter TEXT NOT NULL,
    day TEXT NOT NULL,            -- local date, YYYY-MM-DD
    version INTEGER NOT NULL,     -- 1, then one more per correction
    summary TEXT NOT NULL,        -- JSON, as published
    basis TEXT NOT NULL,          -- count and highest seq of the readings it was made from
    created INTEGER NOT NULL,
    sent INTEGER,
    PRIMARY KEY (meter, day, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conditions (
    kind TEXT NOT NULL, subject TEXT NOT NULL, id TEXT NOT NULL, level TEXT NOT NULL, detail TEXT NOT NULL,
    PRIMARY KEY (kind, subject)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS upload_slots (slot INTEGER PRIMARY KEY, confirmed INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meters_seen (meter TEXT PRIMARY KEY, first_ts INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS evidence (
    sha256 TEXT PRIMARY KEY,      -- the photo, kept beside the store as evidence/<sha256>
    media_type TEXT NOT NULL, size INTEGER NOT NULL, created INTEGER NOT NULL,
    sent INTEGER                  -- when it went out on <prefix>/<gateway>/evidence/<sha256>
) WITHOUT ROWID;
"""

# A reading is stored after it is taken, never before; this margin covers a clock set back by a day.
SCAN_MARGIN_MS = 86_400_000
KEEP_DAILY_DAYS = 800  # two years and more: a year's reconciliation, and the year before


@dataclass(frozen=True, slots=True)
class StoredDay:
    """A day summary as kept: its figures, its version and what it was made from."""

    meter: str
    day: date
    version: int
    summary: dict[str, Any]
    basis: str
    sent: bool


class DayReader:
    """The rules' queries that only read: on the store's connection, or on a read-only one
    (``meterlink report`` and ``status`` read the store while the agent runs)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    # -- readings for the rules --------------------------------------------------------------------

    def first_seq_from(self, ts: int) -> int:
        """A seq below which no reading was taken at ``ts`` or later, found by bisection on seq.

        Readings are appended as they are taken, so ``ts`` rises with ``seq`` (late ones, a meter's
        history, come with higher seqs, never lower): the bisection lets a day's scan skip the rest
        of the table without an index on ``ts``, which would slow every append.
        """
        # Two subqueries: SQLite looks min() and max() up in the key only when each stands alone;
        # together they scan the whole table (a second for a quarter of 64 meters).
        lo, hi = self.db.execute("SELECT (SELECT min(seq) FROM readings), (SELECT max(seq) FROM readings)").fetchone()
        if lo is None:
            return 1
        while lo < hi:
            mid = (lo + hi) // 2
            row = self.db.execute("SELECT ts FROM readings WHERE seq >= ? ORDER BY seq LIMIT 1", (mid,)).fetchone()
            if row is None or row[0] >= ts:
                hi = mid
            else:
                lo = mid + 1
        return int(lo)

    def readings_between(self, start: int, end: int) -> tuple[dict[str, list[Reading]], dict[str, str]]:
        """Every reading (delivered or not) with ``start <= ts < end``, by meter, and each meter's basis
        (how many readings and the highest seq: a late reading changes it)."""
        floor = self.first_seq_from(start - SCAN_MARGIN_MS)
        by_meter: dict[str, list[Reading]] = {}
        top: dict[str, int] = {}
        for seq, reading in self.scan(floor, start, end):
            by_meter.setdefault(reading.meter, []).append(reading)
            top[reading.meter] = max(top.get(reading.meter, 0), seq)
        return by_meter, {m: f"{len(rs)}:{top[m]}" for m, rs in by_meter.items()}

    def scan(self, floor: int, start: int, end: int) -> Iterator[tuple[int, Reading]]:
        """``(seq, reading)`` of every reading from seq ``floor`` on with ``start <= ts < end``, in seq
        order, one at a time (a report's pass over a quarter never holds all of it)."""
        # Series by id here rather than joined: a join makes three new strings per reading.
        series = self._series()
        cursor = self.db.execute(
            "SELECT seq, series, value, ts, slot, flags FROM readings WHERE seq >= ? AND ts >= ? AND ts < ? "
            "ORDER BY seq",
            (floor, start, end),
        )
        for seq, sid, value, ts, slot, flags in cursor:
            if sid not in series:  # a series added since: the connection may be the writer's
                series = self._series()
            meter, quantity, unit = series[sid]
            yield seq, Reading(meter, quantity, value, unit, ts, slot, flags)

    def _series(self) -> dict[int, tuple[str, str, str]]:
        return {sid: (m, q, u) for sid, m, q, u in self.db.execute("SELECT id, meter, quantity, unit FROM series")}

    def last_total_before(self, meter: str, before: int) -> Reading | None:
        """The meter's last totalizer reading before ``before`` (a day's baseline when the day before
        has no summary): the latest of the two days before, else none."""
        floor = self.first_seq_from(before - 2 * 86_400_000)
        row = self.db.execute(
            "SELECT s.meter, s.quantity, r.value, s.unit, r.ts, r.slot, r.flags FROM readings r "
            "JOIN series s ON s.id = r.series WHERE r.seq >= ? AND s.meter = ? AND s.quantity = ? AND r.ts < ? "
            "ORDER BY r.ts DESC LIMIT 1",
            (floor, meter, VOLUME, before),
        ).fetchone()
        return Reading(*row) if row else None

    def reading_spans(self) -> dict[str, tuple[int, int]]:
        """Each meter's first slot and newest reading time, in one pass over the readings: where its
        slots start to be expected (a store from before the rules kept that), and ``no_data`` after a
        restart."""
        rows = self.db.execute(
            "SELECT s.meter, min(r.slot), max(r.ts) FROM readings r JOIN series s ON s.id = r.series GROUP BY s.meter"
        ).fetchall()
        return {meter: (int(first), int(last)) for meter, first, last in rows}

    # -- day summaries -----------------------------------------------------------------------------

    def latest_day(self, meter: str, day: date) -> StoredDay | None:
        row = self.db.execute(
            "SELECT version, summary, basis, sent FROM daily WHERE meter = ? AND day = ? ORDER BY version DESC LIMIT 1",
            (meter, day.isoformat()),
        ).fetchone()
        if row is None:
            return None
        return StoredDay(meter, day, row[0], json.loads(row[1]), row[2], row[3] is not None)

    def days(self, first: date, last: date, meters: Iterable[str] | None = None) -> list[StoredDay]:
        """The latest version of every stored day summary in ``first..last``."""
        rows = self.db.execute(
            "SELECT meter, day, max(version), summary, basis, sent FROM daily WHERE day BETWEEN ? AND ? "
            "GROUP BY meter, day ORDER BY meter, day",
            (first.isoformat(), last.isoformat()),
        ).fetchall()
        wanted = set(meters) if meters is not None else None
        return [
            StoredDay(m, date.fromisoformat(d), v, json.loads(s), b, sent is not None)
            for m, d, v, s, b, sent in rows
            if wanted is None or m in wanted
        ]


class Daybook(DayReader):
    """The rules' tables in ``store``'s database; call it on the store's thread, like the store."""

    def __init__(self, store: Store) -> None:
        super().__init__(store.db)
        self.store = store
        self.db.executescript(_SCHEMA)

    def keep_day(self, summary: DaySummary, basis: str, now: int) -> StoredDay | None:
        """Store ``summary`` as a new version if it differs from the latest; returns what was stored."""
        body = summary.to_dict()
        latest = self.latest_day(summary.meter, summary.day)
        if latest is not None:
            previous = {k: v for k, v in latest.summary.items() if k not in ("version", "correction")}
            if previous == body:
                if latest.basis != basis:
                    self.db.execute(
                        "UPDATE daily SET basis = ? WHERE meter = ? AND day = ? AND version = ?",
                        (basis, summary.meter, summary.day.isoformat(), latest.version),
                    )
                return None
        version = 1 if latest is None else latest.version + 1
        body = {**body, "version": version, "correction": version > 1}
        self.db.execute(
            "INSERT INTO daily (meter, day, version, summary, basis, created) VALUES (?, ?, ?, ?, ?, ?)",
            (summary.meter, summary.day.isoformat(), version, json.dumps(body, separators=(",", ":")), basis, now),
        )
        return StoredDay(summary.meter, summary.day, version, body, basis, False)

    def unsent_days(self, limit: int) -> list[StoredDay]:
        rows = self.db.execute(
            "SELECT meter, day, version, summary, basis FROM daily WHERE sent IS NULL ORDER BY day, meter, version "
            "LIMIT ?",
            (limit,),
        ).fetchall()
        return [StoredDay(m, date.fromisoformat(d), v, json.loads(s), b, False) for m, d, v, s, b in rows]

    def mark_days_sent(self, days: Sequence[StoredDay], when: int) -> None:
        self.db.executemany(
            "UPDATE daily SET sent = ? WHERE meter = ? AND day = ? AND version = ?",
            [(when, d.meter, d.day.isoformat(), d.version) for d in days],
        )

    def purge_days(self, before: date) -> int:
        cur = self.db.execute("DELETE FROM daily WHERE day < ? AND sent IS NOT NULL", (before.isoformat(),))
        return cur.rowcount

    # -- conditions and their events ---------------------------------------------------------------

    def open_conditions(self) -> list[Condition]:
        return [
            Condition(kind, subject, ident, level, json.loads(detail))
            for kind, subject, ident, level, detail in self.db.execute(
                "SELECT kind, subject, id, level, detail FROM conditions"
            )
        ]

    def record(
        self, events: Sequence[RuleEvent], changes: Mapping[tuple[str, str], Condition | None], now: int
    ) -> None:
        """The events and the conditions they open, change or close, in one transaction."""
        if not events and not changes:
            return
        store = self.store
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for event in events:
                store.add_event(event.kind, now, event.detail)
            for (kind, subject), condition in changes.items():
                if condition is None:
                    self.db.execute("DELETE FROM conditions WHERE kind = ? AND subject = ?", (kind, subject))
                else:
                    self.db.execute(
                        "INSERT OR REPLACE INTO conditions VALUES (?, ?, ?, ?, ?)",
                        (kind, subject, condition.id, condition.level, json.dumps(condition.detail)),
                    )
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def meters_seen(self) -> dict[str, int]:
        """When each meter's first reading was taken: its slots are expected from then on."""
        return dict(self.db.execute("SELECT meter, first_ts FROM meters_seen").fetchall())

    def saw_meter(self, meter: str, ts: int) -> None:
        self.db.execute("INSERT OR IGNORE INTO meters_seen VALUES (?, ?)", (meter, ts))

    # -- evidence of manual readings -----------------------------------------------------------------

    def keep_evidence(self, sha256: str, media_type: str, size: int) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO evidence VALUES (?, ?, ?, ?, NULL)",
            (sha256, media_type, size, int(time.time() * 1000)),
        )

    def unsent_evidence(self, limit: int) -> list[tuple[str, str, int]]:
        """(sha256, media_type, size) of photos not yet sent, oldest first."""
        rows = self.db.execute(
            "SELECT sha256, media_type, size FROM evidence WHERE sent IS NULL ORDER BY created LIMIT ?", (limit,)
        )
        return [(str(a), str(b), int(c)) for a, b, c in rows]

    def mark_evidence_sent(self, sha256: str, when: int) -> None:
        self.db.execute("UPDATE evidence SET sent = ? WHERE sha256 = ?", (when, sha256))

    # -- the gateway's own upload slots ------------------------------------------------------------

    def upload_confirmed(self, slot: int) -> None:
        self.db.execute("INSERT OR IGNORE INTO upload_slots VALUES (?, ?)", (slot, int(time.time() * 1000)))

    def upload_slots(self, start: int, end: int) -> int:
        return int(
            self.db.execute("SELECT count(*) FROM upload_slots WHERE slot >= ? AND slot < ?", (start, end)).fetchone()[
                0
            ]
        )
