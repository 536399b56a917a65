"""What can still be read from a store that fails its integrity check: pending readings and events.

A store is moved aside when SQLite finds it corrupt (a bad SD card, a torn copy), and a new one is
begun. Its pending readings are still the only copy of what the meters measured, and one bad page
rarely spoils more than the rows on it. So before the new store takes over, everything pending that
can be read goes into it under its original ``seq``, and the ``store_replaced`` event says how many
rows were saved and how many numbers could not be read.

Two passes, because each alone is wrong somewhere:

1. **Through SQLite**, by seq range: a range whose query fails is split in halves down to small
   ranges, so only the rows behind the damaged page are left out. This never reads a row the store
   had deleted.
2. **Page by page**, for the ranges that failed (or for everything, when even the schema cannot be
   read): every table leaf page of the file, with the newest committed version of each page from the
   ``-wal`` laid over it, is parsed by hand (agent/sqlite_pages.py) and rows of the readings',
   events' and series' shapes are taken. A damaged interior page hides whole subtrees from SQLite,
   but not their leaves from this pass. Pages on the freelist are skipped; a stale copy
   of a row can still turn up on a page SQLite moved, and then it carries its own ``seq`` and
   content, so the platform drops it as a duplicate.

Nothing here raises on bad bytes: whatever cannot be parsed is skipped and counted.
"""

from __future__ import annotations

import bisect
import json
import math
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .sqlite_pages import Pages

CHUNK = 4096  # seqs per query in the first pass
SMALLEST_SPLIT = 64  # a failing range this small goes to the second pass whole
# SQLite's complaint about a damaged file can itself hold bytes that are not UTF-8.
_SQL_ERRORS = (sqlite3.Error, UnicodeDecodeError)

SalvagedReading = tuple[int, str, str, str, float, int, int, int]  # seq, meter, quantity, unit, value, ts, slot, flags
SalvagedEvent = tuple[int, int, str, str]  # seq, ts, kind, detail (JSON text)


@dataclass
class Salvage:
    """What was read from a damaged store, and what could not be. Readings go to the caller's sink
    chunk by chunk (a damaged store can hold millions); events are few and kept here."""

    readings: int = 0
    highest_seq: int = 0
    events: list[SalvagedEvent] = field(default_factory=list)
    unreadable: int = 0  # pending seqs whose rows neither pass could read
    unreadable_events: int = 0
    next_seq: int = 0  # the damaged store's own next seq, when it could be read (0: unknown)
    problems: list[str] = field(default_factory=list)  # one line each, for the log


@dataclass
class _Bounds:
    readings: tuple[int, int] = (1, 0)  # the pending seq range
    events: tuple[int, int] = (1, 0)


Sink = Callable[[list[SalvagedReading]], None]


def salvage(path: Path, seq_bound: int, event_bound: int, sink: Sink) -> Salvage:
    """Read every pending reading and event that can still be read from the store file at ``path``
    (with its ``-wal``), handing the readings to ``sink`` in ascending seq order per pass.
    ``seq_bound`` and ``event_bound`` are numbers above any the store used (the durable marks), for
    when its own counters cannot be read. Never raises on bad content (the sink's errors pass)."""
    out = Salvage()
    bounds = _Bounds((1, max(0, seq_bound - 1)), (1, max(0, event_bound - 1)))
    series: dict[int, tuple[str, str, str]] = {}
    failed_readings: list[tuple[int, int]] = []
    failed_events: list[tuple[int, int]] = []
    try:
        db = sqlite3.connect(path, isolation_level=None)
        db.text_factory = _text  # a damaged page can hold bytes that are not UTF-8
    except _SQL_ERRORS as exc:
        out.problems.append(f"cannot open: {exc}")
        db = None
    if db is not None:
        try:
            bounds = _own_bounds(db, bounds, out)
            series = _logical_series(db, out)
            failed_readings = _logical_readings(db, bounds.readings, series, out, sink)
            failed_events = _logical_events(db, bounds.events, out)
        finally:
            db.close()
    else:
        failed_readings, failed_events = [bounds.readings], [bounds.events]
    if failed_readings or failed_events:
        _page_pass(path, series, failed_readings, failed_events, out, sink)
    return out


# -- first pass: through SQLite --------------------------------------------------------------------


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _own_bounds(db: sqlite3.Connection, bounds: _Bounds, out: Salvage) -> _Bounds:
    """The store's own pending ranges where its meta and counters can be read, else the marks'."""
    lo, hi = bounds.readings
    try:
        meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('next_seq', 'pending_from')").fetchall())
        next_seq, pending_from = int(meta["next_seq"]), int(meta["pending_from"])
        if 1 <= pending_from <= next_seq:
            lo, hi = pending_from, next_seq - 1
            out.next_seq = next_seq
    except (*_SQL_ERRORS, KeyError, TypeError, ValueError) as exc:
        out.problems.append(f"meta unreadable ({exc}): pending readings looked for in 1..{hi}")
    ev_lo, ev_hi = bounds.events
    try:
        row = db.execute("SELECT min(seq), max(seq) FROM events WHERE sent IS NULL").fetchone()
        if row[0] is not None:
            ev_lo, ev_hi = int(row[0]), int(row[1])
        else:
            ev_lo, ev_hi = 1, 0
    except _SQL_ERRORS as exc:
        out.problems.append(f"events index unreadable ({exc}): pending events looked for in 1..{ev_hi}")
    return _Bounds((lo, hi), (ev_lo, ev_hi))


def _logical_series(db: sqlite3.Connection, out: Salvage) -> dict[int, tuple[str, str, str]]:
    try:
        return {
            int(sid): (str(m), str(q), str(u))
            for sid, m, q, u in db.execute("SELECT id, meter, quantity, unit FROM series")
        }
    except _SQL_ERRORS as exc:
        out.problems.append(f"series unreadable through SQLite ({exc})")
        return {}


def _ranges(
    db: sqlite3.Connection, sql: str, lo: int, hi: int, failed: list[tuple[int, int]]
) -> Iterator[list[tuple[object, ...]]]:
    """The rows of ``sql`` (bound to a seq range) over lo..hi, chunk by chunk, ascending; ranges that
    cannot be read are split until small, then appended to ``failed``."""
    todo = [(a, min(a + CHUNK - 1, hi)) for a in range(lo, hi + 1, CHUNK)][::-1]
    while todo:
        a, b = todo.pop()
        try:
            rows = db.execute(sql, (a, b)).fetchall()
        except _SQL_ERRORS:
            if b - a + 1 <= SMALLEST_SPLIT:
                if failed and failed[-1][1] == a - 1:
                    failed[-1] = (failed[-1][0], b)
                else:
                    failed.append((a, b))
            else:
                mid = (a + b) // 2
                todo += [(mid + 1, b), (a, mid)]
            continue
        yield rows


def _logical_readings(
    db: sqlite3.Connection, rng: tuple[int, int], series: dict[int, tuple[str, str, str]], out: Salvage, sink: Sink
) -> list[tuple[int, int]]:
    failed: list[tuple[int, int]] = []
    sql = "SELECT seq, series, value, ts, slot, flags FROM readings WHERE seq BETWEEN ? AND ? AND sent IS NULL"
    for rows in _ranges(db, sql, rng[0], rng[1], failed):
        chunk: list[SalvagedReading] = []
        for seq, sid, value, ts, slot, flags in rows:
            name = series.get(sid)  # type: ignore[call-overload]
            try:
                if name is None:  # its meter cannot be named here: the page pass may find the series row
                    raise ValueError(f"series {sid!r}")
                if not math.isfinite(float(value)):  # type: ignore[arg-type]
                    raise ValueError("not a finite value")
                chunk.append((int(seq), *name, float(value), int(ts), int(slot), int(flags)))  # type: ignore
            except (TypeError, ValueError):  # a damaged row SQLite still returns: left to the page pass
                if isinstance(seq, int):
                    failed.append((seq, seq))
        _emit(chunk, out, sink)
    failed.sort()
    return failed


def _emit(chunk: list[SalvagedReading], out: Salvage, sink: Sink) -> None:
    if chunk:
        sink(chunk)
        out.readings += len(chunk)
        out.highest_seq = max(out.highest_seq, chunk[-1][0])


def _logical_events(db: sqlite3.Connection, rng: tuple[int, int], out: Salvage) -> list[tuple[int, int]]:
    failed: list[tuple[int, int]] = []
    sql = "SELECT seq, ts, kind, detail FROM events WHERE seq BETWEEN ? AND ? AND sent IS NULL"
    for rows in _ranges(db, sql, rng[0], rng[1], failed):
        for seq, ts, kind, detail in rows:
            if isinstance(seq, int) and isinstance(ts, int) and isinstance(kind, str) and _is_detail(detail):
                out.events.append((seq, ts, kind, detail))  # type: ignore[arg-type]
            elif isinstance(seq, int):
                failed.append((seq, seq))
    return failed


# -- second pass: page by page ---------------------------------------------------------------------


class _Ranges:
    """Sorted, disjoint seq ranges with a fast membership test."""

    def __init__(self, ranges: list[tuple[int, int]]) -> None:
        self.ranges = sorted(ranges)
        self.starts = [a for a, _ in self.ranges]

    def __contains__(self, seq: int) -> bool:
        i = bisect.bisect_right(self.starts, seq) - 1
        return i >= 0 and seq <= self.ranges[i][1]

    def size(self) -> int:
        return sum(b - a + 1 for a, b in self.ranges)


def _page_pass(
    path: Path,
    series: dict[int, tuple[str, str, str]],
    failed_readings: list[tuple[int, int]],
    failed_events: list[tuple[int, int]],
    out: Salvage,
    sink: Sink,
) -> None:
    want_readings, want_events = _Ranges(failed_readings), _Ranges(failed_events)
    found_readings: dict[int, tuple[int, float, int, int, int]] = {}  # seq -> series, value, ts, slot, flags
    seen_readings: set[int] = set()  # pending or not: a row that was read is not "unreadable"
    found_events: dict[int, SalvagedEvent] = {}
    seen_events: set[int] = set()
    raw_series: dict[int, tuple[str, str, str]] = {}
    try:
        pages = Pages(path)
    except (OSError, ValueError) as exc:
        out.problems.append(f"pages unreadable: {exc}")
        pages = None
    if pages is not None:
        with pages:
            for rowid, values in pages.table_rows():
                shape = _shape(values)
                if shape == "reading" and rowid in want_readings:
                    seen_readings.add(rowid)
                    if values[6] is None:
                        found_readings[rowid] = (values[1], float(values[2]), values[3], values[4], values[5])  # type: ignore
                elif shape == "event" and rowid in want_events and _is_detail(values[3]):
                    seen_events.add(rowid)
                    if values[4] is None:
                        found_events[rowid] = (rowid, values[1], values[2], values[3])  # type: ignore[assignment]
                elif shape == "series" and rowid not in raw_series:
                    raw_series[rowid] = (values[1], values[2], values[3])  # type: ignore[assignment]
            out.problems += pages.problems
    names = {**raw_series, **series}
    chunk: list[SalvagedReading] = []
    for seq, (sid, value, ts, slot, flags) in sorted(found_readings.items()):
        name = names.get(sid)
        if name is None:
            seen_readings.discard(seq)  # its meter cannot be named: not saved
            continue
        chunk.append((seq, *name, value, ts, slot, flags))
    _emit(chunk, out, sink)
    out.events += found_events.values()
    out.events.sort()
    out.unreadable = want_readings.size() - len(seen_readings)
    out.unreadable_events = want_events.size() - len(seen_events)


def _is_detail(text: object) -> bool:
    """An event's detail as the store writes it: a JSON object (the uploader parses it)."""
    try:
        return isinstance(text, str) and isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _shape(values: list[object]) -> str | None:
    """Which of the store's tables a row of these values belongs to (by column count and types)."""
    n = len(values)
    if (
        n == 7
        and values[0] is None
        and all(isinstance(values[i], int) for i in (1, 3, 4, 5))
        and isinstance(values[2], int | float)
        and math.isfinite(values[2])
        and (values[6] is None or isinstance(values[6], int))
    ):
        return "reading"
    if (
        n == 5
        and values[0] is None
        and isinstance(values[1], int)
        and isinstance(values[2], str)
        and isinstance(values[3], str)
        and (values[4] is None or isinstance(values[4], int))
    ):
        return "event"
    if n == 4 and values[0] is None and all(isinstance(v, str) for v in values[1:]):
        return "series"
    return None
