"""The agent's store read from outside with plain sqlite3, as a technician would: never through the product."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def last_and_pending(db: Path) -> tuple[int, int]:
    """(highest seq in the store, readings not yet confirmed), in one read transaction.

    Read-only and never creating anything, so it is safe while the agent runs.
    """
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        con.execute("BEGIN")
        last = con.execute("SELECT coalesce(max(seq), 0) FROM readings").fetchone()[0]
        pending = con.execute("SELECT count(*) FROM readings WHERE sent IS NULL").fetchone()[0]
        con.execute("COMMIT")
        return int(last), int(pending)
    finally:
        con.close()
