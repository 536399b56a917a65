"""The SZY206 site terminal's own delivery state in the store: one self-report per report slot.

A slot's data area is kept until the central station confirmed it (the MQTT uplink's state is the
readings' ``sent`` column). :class:`ReportSlots` is part of :class:`~meterlink.agent.store.Store`
and shares its connection and its thread.
"""

from __future__ import annotations

import sqlite3

# The SZY206 site terminal's own delivery state: one self-report per report slot, kept until the
# central station confirmed it (the MQTT uplink's state is the readings' ``sent`` column).
SZY206_SCHEMA = """
CREATE TABLE IF NOT EXISTS szy206_reports (
    slot INTEGER PRIMARY KEY,     -- report slot, ms since epoch UTC
    data BLOB NOT NULL,           -- the C0H data area: flow/volume pairs, alarm and status words
    created INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    confirmed INTEGER             -- ms when the station confirmed it; NULL until then
)
"""


class ReportSlots:
    """Report slots: kept once, attempted, confirmed, purged after the retention period."""

    db: sqlite3.Connection

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

    def _purge_reports(self, cutoff: int) -> None:
        self.db.execute("DELETE FROM szy206_reports WHERE slot < ? AND confirmed IS NOT NULL", (cutoff,))
