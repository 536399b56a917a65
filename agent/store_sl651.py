"""The SL651 station's own delivery state in the store: its reports and its serial number.

Same SQLite file, connection and worker thread as the store (agent/store.py), reached through
:meth:`~meterlink.agent.outbox.Outbox.call`, like the daybook.

- ``sl651_reports``: one row per report (function and slot: 32H per scheduled slot, 34H per hour,
  33H per event). Its elements are kept as sent, so a report missed in an outage goes out later
  with its own values and observation time, and a centre's period query (38H) is answered from
  them. Its serial number and send time are given at its first attempt and kept: every later
  attempt, after a reconnection or a restart too, is the same frame, which a centre that saw it
  already recognises as a repeat.
- ``sl651_state``: the last serial number given out (so numbering continues across restarts) and
  the last event looked at for added reports.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from meterlink.protocols.sl651 import Element

from .store import Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sl651_reports (
    function INTEGER NOT NULL,    -- 32H scheduled, 33H added, 34H hourly
    slot INTEGER NOT NULL,        -- observation time, ms since epoch UTC
    elements TEXT NOT NULL,       -- JSON [[identifier, definition, data hex], ...] as sent
    created INTEGER NOT NULL,
    serial INTEGER,               -- given at the first attempt, kept for every later one
    sent_at INTEGER,              -- the send time of the first attempt, ms since epoch UTC
    attempts INTEGER NOT NULL DEFAULT 0,
    confirmed INTEGER,            -- ms when the centre acknowledged it; NULL until then
    PRIMARY KEY (function, slot)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sl651_unconfirmed ON sl651_reports (slot) WHERE confirmed IS NULL;
CREATE TABLE IF NOT EXISTS sl651_state (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
"""
MAX_SERIAL = 0xFFFF


@dataclass(frozen=True, slots=True)
class KeptReport:
    """A report as kept: ``serial`` and ``sent_at`` are None until its first attempt."""

    function: int
    slot: int
    elements: tuple[Element, ...]
    serial: int | None = None
    sent_at: int | None = None
    confirmed: bool = False


def _pack(elements: Sequence[Element]) -> str:
    return json.dumps([[e.ident, e.definition, e.data.hex()] for e in elements], separators=(",", ":"))


def _unpack(text: str) -> tuple[Element, ...]:
    return tuple(Element(ident, definition, bytes.fromhex(data)) for ident, definition, data in json.loads(text))


class Sl651Book:
    """The SL651 tables in ``store``'s database; call it on the store's thread, like the store."""

    def __init__(self, store: Store) -> None:
        self.db: sqlite3.Connection = store.db
        self.retention_ms = store.retention_ms
        self.db.executescript(_SCHEMA)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _state(self, name: str) -> int:
        row = self.db.execute("SELECT value FROM sl651_state WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _set_state(self, name: str, value: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO sl651_state (name, value) VALUES (?, ?)", (name, value))

    # -- serial numbers ---------------------------------------------------------------------------

    def _next_serial(self) -> int:
        serial = self._state("serial") % MAX_SERIAL + 1  # 1..65535, then 1 again
        self._set_state("serial", serial)
        return serial

    def take_serial(self) -> int:
        """The serial number of a frame that is no report (a keep-alive, an answer), committed."""
        with self._transaction():
            return self._next_serial()

    def last_serial(self) -> int:
        return self._state("serial")

    # -- reports ----------------------------------------------------------------------------------

    def keep(self, function: int, slot: int, elements: Sequence[Element], created: int) -> bool:
        """Keep one report (once); False if that function's slot is already kept."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO sl651_reports (function, slot, elements, created) VALUES (?, ?, ?, ?)",
            (function, slot, _pack(elements), created),
        )
        return cur.rowcount == 1

    def attempt(self, function: int, slot: int, now: int) -> tuple[int, int] | None:
        """Count an attempt; the report's (serial, send time), given now at its first attempt.
        None when the report is acknowledged already, or not kept."""
        with self._transaction():
            row = self.db.execute(
                "SELECT serial, sent_at, confirmed FROM sl651_reports WHERE function = ? AND slot = ?",
                (function, slot),
            ).fetchone()
            if row is None or row[2] is not None:
                return None
            serial, sent_at, _ = row
            if serial is None:
                serial, sent_at = self._next_serial(), now
            self.db.execute(
                "UPDATE sl651_reports SET serial = ?, sent_at = ?, attempts = attempts + 1 "
                "WHERE function = ? AND slot = ?",
                (serial, sent_at, function, slot),
            )
            return int(serial), int(sent_at)

    def confirm(self, function: int, slot: int, when: int) -> None:
        self.db.execute(
            "UPDATE sl651_reports SET confirmed = ? WHERE function = ? AND slot = ? AND confirmed IS NULL",
            (when, function, slot),
        )

    def unconfirmed(self, limit: int, before: int | None = None) -> list[KeptReport]:
        """Reports the centre has not acknowledged, oldest first (hourly before scheduled at a tie)."""
        rows = self.db.execute(
            "SELECT function, slot, elements, serial, sent_at FROM sl651_reports "
            "WHERE confirmed IS NULL AND slot < ? ORDER BY slot, function DESC LIMIT ?",
            (before if before is not None else 2**62, limit),
        ).fetchall()
        return [KeptReport(f, s, _unpack(e), serial, sent) for f, s, e, serial, sent in rows]

    def between(self, first: int, last: int) -> list[KeptReport]:
        """Every report with first <= slot <= last, oldest first: what a period query is answered from."""
        rows = self.db.execute(
            "SELECT function, slot, elements, serial, sent_at, confirmed FROM sl651_reports "
            "WHERE slot BETWEEN ? AND ? ORDER BY slot, function",
            (first, last),
        ).fetchall()
        return [KeptReport(f, s, _unpack(e), serial, sent, c is not None) for f, s, e, serial, sent, c in rows]

    def counts(self) -> tuple[int, int]:
        """(acknowledged, not acknowledged) reports held."""
        row = self.db.execute("SELECT count(confirmed), count(*) - count(confirmed) FROM sl651_reports").fetchone()
        return int(row[0]), int(row[1])

    def purge(self, now: int) -> int:
        """Delete acknowledged reports older than the store's retention; how many."""
        cur = self.db.execute(
            "DELETE FROM sl651_reports WHERE slot < ? AND confirmed IS NOT NULL", (now - self.retention_ms,)
        )
        return cur.rowcount

    # -- events that become added reports ----------------------------------------------------------

    def new_events(self, kinds: Sequence[str], limit: int = 100) -> list[tuple[int, int, str, str]]:
        """Events of ``kinds`` after the last one looked at: (seq, ts, kind, detail JSON)."""
        if not kinds:
            return []
        marks = ",".join("?" * len(kinds))
        rows = self.db.execute(
            f"SELECT seq, ts, kind, detail FROM events WHERE seq > ? AND kind IN ({marks}) ORDER BY seq LIMIT ?",
            (self._state("events_seen"), *kinds, limit),
        ).fetchall()
        return [(int(seq), int(ts), str(kind), str(detail)) for seq, ts, kind, detail in rows]

    def start_events_at(self, since: int) -> None:
        """On the uplink's first start: events recorded before ``since`` (ms) are history, not
        reported; later ones are (the agent records some before its uplinks start)."""
        if self.db.execute("SELECT 1 FROM sl651_state WHERE name = 'events_seen'").fetchone() is None:
            top = self.db.execute("SELECT coalesce(max(seq), 0) FROM events WHERE ts < ?", (since,)).fetchone()[0]
            self._set_state("events_seen", int(top))

    def keep_added(self, seq: int, slot: int, elements: Sequence[Element], created: int) -> bool:
        """Keep the added report of event ``seq`` and mark the event looked at, in one transaction."""
        with self._transaction():
            fresh = self.keep(0x33, slot, elements, created)
            self._set_state("events_seen", seq)
        return fresh

    def skip_event(self, seq: int) -> None:
        self._set_state("events_seen", seq)
