"""Meters' days for ``meterlink report`` and ``status``: as the agent kept them, else computed now.

After each local midnight the agent keeps every meter's day in the store (agent/rulebook.py). A day
it did not keep (today so far, a day the agent was not running at midnight, a store from before the
rules) is computed here the way the rulebook computes it: the same pure
:func:`~meterlink.agent.rules.daily.summarize_day`, the day's readings up to the settle time after
midnight (the midnight slot's reading closes the day), the previous day's closing total as its
baseline, else the meter's last total before the day, and its slots expected from its first one.

Readings are read through :class:`~meterlink.agent.daybook.DayReader` in one pass per run of
consecutive days, in seq order from a seq found by bisection (the table has no index on time), and
each day is summarised and let go as soon as the pass is past it: a quarter is never held at once.
A reading that turns up after its day was let go (a meter's history, a clock set back) sends that
meter's days of the run through the rulebook's own per-day queries instead.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from meterlink.drivers.base import Reading

from .daybook import SCAN_MARGIN_MS, DayReader
from .rulebook import SETTLE_MS, MeterRuleSettings
from .rules.calendar import day_range
from .rules.daily import VOLUME, summarize_day

LEAD_MS = 2 * 86_400_000  # before a run: where a first day's baseline is looked for (as the daybook does)
FLUSH_MARGIN_MS = 3_600_000  # a day is let go this long (in seq order) after its closing readings


@dataclass(frozen=True, slots=True)
class MeterDay:
    """One meter's day: its figures (as ``DaySummary.to_dict()``) and where they come from."""

    meter: str
    day: date
    figures: dict[str, Any]
    version: int | None  # the version the agent kept; None: computed by this command
    partial: bool = False  # the day (with its settle time) is not over: figures so far

    @property
    def kept(self) -> bool:
        return self.version is not None


def kept_days(reader: DayReader, first: date, last: date) -> dict[tuple[str, date], MeterDay]:
    """The latest version of every day the agent kept in ``first..last``."""
    out = {}
    for stored in reader.days(first, last):
        figures = {k: v for k, v in stored.summary.items() if k not in ("version", "correction")}
        out[(stored.meter, stored.day)] = MeterDay(stored.meter, stored.day, figures, stored.version)
    return out


@dataclass(slots=True)
class _Run:
    """Consecutive days computed in one pass, and what the pass keeps until each day is let go."""

    days: list[date]
    tasks: dict[date, set[str]]  # day -> meters to compute
    buckets: dict[int, dict[str, list[Reading]]] = field(default_factory=dict)  # day index -> readings
    late: set[str] = field(default_factory=set)  # meters with a reading met after its day was let go


class DayFigures:
    """Every wanted meter's day, kept or computed, from one store.

    Args:
        reader: the store's rules tables and readings (a read-only connection will do).
        meters: the configured meters' rule settings (interval, totalizer wrap); only these are computed.
        zone: the site's zone.
        now: ms; days not begun yet have no figures, today's are so far.
        seen: each meter's first slot, as the agent keeps it (``meters_seen``); a meter missing there
            starts at its first reading in the store, as the rulebook takes it.
        kept: the days the agent kept (:func:`kept_days`), covering every wanted day and the day before.
    """

    def __init__(
        self,
        reader: DayReader,
        meters: Mapping[str, MeterRuleSettings],
        zone: ZoneInfo,
        now: int,
        seen: Mapping[str, int],
        kept: Mapping[tuple[str, date], MeterDay],
    ) -> None:
        self.reader = reader
        self.meters = meters
        self.zone = zone
        self.now = now
        self.seen = dict(seen)
        self.kept = kept
        self.found: dict[tuple[str, date], MeterDay] = {}
        self._last_total: dict[str, Reading] = {}  # each meter's latest total before the day in hand

    def collect(self, wanted: Mapping[str, Collection[date]]) -> dict[tuple[str, date], MeterDay]:
        """Figures of each ``meter -> days`` wanted: kept ones, else computed; a meter's day before
        its first slot, not kept and before the readings held, or not begun, has none."""
        tasks: dict[date, set[str]] = {}
        held_from = self._oldest_reading()
        for meter, days in wanted.items():
            for day in days:
                start, end = day_range(day, self.zone)
                if (meter, day) in self.kept:
                    self.found[(meter, day)] = self.kept[(meter, day)]
                elif (
                    meter in self.meters and held_from < end and start < self.now and self.seen.get(meter, start) < end
                ):
                    tasks.setdefault(day, set()).add(meter)
        if tasks and not set().union(*tasks.values()) <= set(self.seen):
            self._read_spans()
        for run in _runs(tasks):
            self._compute(run)
        return {(m, d): self.found[(m, d)] for m, days in wanted.items() for d in sorted(days) if (m, d) in self.found}

    def _oldest_reading(self) -> float:
        """When the oldest reading the store still holds was taken: a day that ended before it had its
        readings purged, and has no figures unless the agent kept them (not a day of silence)."""
        row = self.reader.db.execute("SELECT ts FROM readings ORDER BY seq LIMIT 1").fetchone()
        return math.inf if row is None else int(row[0])

    def _read_spans(self) -> None:
        """Meters the agent has not recorded a first slot of: their first reading's (one pass)."""
        for meter, (first, _) in self.reader.reading_spans().items():
            self.seen.setdefault(meter, first)

    # -- one pass --------------------------------------------------------------------------------

    def _compute(self, run: _Run) -> None:
        reader = self.reader
        starts = [day_range(d, self.zone)[0] for d in run.days]
        closing = [day_range(d, self.zone)[1] + SETTLE_MS for d in run.days]  # its readings end here
        lead = starts[0] - LEAD_MS
        wanted = set().union(*run.tasks.values())
        buckets = run.buckets
        self._last_total = {}
        # Where, in seq order, each day's readings and its closing ones are all in.
        done_at = [reader.first_seq_from(end + FLUSH_MARGIN_MS) for end in closing]
        last_day = len(run.days) - 1
        next_day = 0
        for seq, r in reader.scan(reader.first_seq_from(lead - SCAN_MARGIN_MS), lead, closing[-1]):
            while next_day <= last_day and seq >= done_at[next_day]:
                self._summarise(run, next_day)
                next_day += 1
            if r.meter not in wanted:
                continue
            index = bisect_right(starts, r.ts) - 1
            if index < 0:  # before the run: only a baseline
                self._note_total(r)
                continue
            buckets.setdefault(index, {}).setdefault(r.meter, []).append(r)  # the last day's holds its closing ones
            if index and r.ts < closing[index - 1]:  # it may close the day before
                index -= 1
                buckets.setdefault(index, {}).setdefault(r.meter, []).append(r)
            if index < next_day:
                run.late.add(r.meter)  # its day was let go already
        while next_day <= last_day:
            self._summarise(run, next_day)
            next_day += 1
        if run.late:
            self._compute_by_day(run, run.late)

    def _note_total(self, r: Reading) -> None:
        if r.quantity == VOLUME:
            last = self._last_total.get(r.meter)
            if last is None or r.ts > last.ts:
                self._last_total[r.meter] = r

    def _summarise(self, run: _Run, index: int) -> None:
        """Summarise the run's day ``index`` and let its readings go, keeping its totals as baselines."""
        day = run.days[index]
        end = day_range(day, self.zone)[1]
        bucket = run.buckets.pop(index, {})
        for meter in sorted(run.tasks.get(day, ())):
            self._keep(meter, day, bucket.get(meter, []), self._last_total.get(meter))
        for meter, readings in bucket.items():
            if (meter, day) not in self.found:  # else the next day's baseline is this day's closing total
                for r in readings:
                    if r.ts < end:  # not the next day's, which closed this one
                        self._note_total(r)

    def _compute_by_day(self, run: _Run, meters: set[str]) -> None:
        """``meters``' days of the run again, each day with the rulebook's own queries (which scan to
        the table's end)."""
        reader = self.reader
        for day in run.days:
            start, end = day_range(day, self.zone)
            by_meter, _ = reader.readings_between(start, end + SETTLE_MS)
            for meter in sorted(run.tasks.get(day, set()) & meters):
                self._keep(meter, day, by_meter.get(meter, []), partial(reader.last_total_before, meter, start))

    def _keep(
        self, meter: str, day: date, readings: list[Reading], last_total: Reading | Callable[[], Reading | None] | None
    ) -> None:
        """Summarise ``meter``'s ``day`` as the rulebook would, unless it had no slot begun by then;
        ``last_total`` is its latest total before the day (or how to find it), the baseline when the
        day before has no figures."""
        start, end = day_range(day, self.zone)
        since = self.seen.get(meter)
        if since is None or since >= end:
            return  # not polled yet that day: nothing expected of it (as the rulebook skips it)
        settings = self.meters[meter]
        before = day - timedelta(days=1)
        previous = self.found.get((meter, before)) or self.kept.get((meter, before))
        if previous is not None and previous.figures.get("end_total") is not None:
            baseline: Reading | None = Reading(
                meter, VOLUME, float(previous.figures["end_total"]), "", start - 1, start - 1
            )
        else:
            baseline = last_total() if callable(last_total) else last_total
        so_far = self.now < end + SETTLE_MS
        summary = summarize_day(
            meter,
            day,
            (start, min(end, self.now)),
            readings,
            interval_ms=settings.interval_ms,
            baseline=baseline,
            wrap_at=settings.wrap_at,
            since=since,
        )
        self.found[(meter, day)] = MeterDay(meter, day, summary.to_dict(), None, so_far)


def _runs(tasks: Mapping[date, set[str]]) -> list[_Run]:
    """The days to compute, cut into runs of consecutive days."""
    runs: list[_Run] = []
    for day in sorted(tasks):
        if runs and runs[-1].days[-1] + timedelta(days=1) == day:
            runs[-1].days.append(day)
            runs[-1].tasks[day] = tasks[day]
        else:
            runs.append(_Run([day], {day: tasks[day]}))
    return runs
