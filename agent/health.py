"""Each meter's health as the running agent sees it: what `meterlink status` shows per meter.

Pure: poll outcomes, flags and uploads come in with their times, a snapshot (plain data, ready for
JSON) goes out; no clock, no I/O. The agent feeds it from its poll loop and writes the snapshot
beside the store now and then (``agent/state_file.py``), so ``status`` never asks a meter and works
whether the agent runs or not.

A meter is ``ok`` while its last poll answered, ``failing`` from its first failed poll, and
``offline`` once it has not answered for longer than its report requirement (``no_data_after``,
the same limit the ``no_data`` rule uses).
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from meterlink.drivers.base import Reading

from .rules.calendar import day_of

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS


# Minutes that have left the day are dropped from the front of the arrays this many at a time.
_COMPACT_AT = 240


class PollCounts:
    """Polls that answered and failed, per minute over the last day, with the day's totals kept as
    they change (a snapshot then costs an hour's minutes at most, not a day's).

    The minutes are three flat arrays (minute number, answered, failed), 12 bytes a minute: a day
    of a meter polled every second is 17 KB, not the 140 KB an object per minute would hold.
    """

    __slots__ = ("_failed", "_head", "_minute", "_ok", "day_failed", "day_ok")

    def __init__(self) -> None:
        self._minute = array("I")  # minutes since the epoch, rising: a poll after a clock step back counts in place
        self._ok = array("I")
        self._failed = array("I")
        self._head = 0  # the minutes before it have left the day
        self.day_ok = 0
        self.day_failed = 0

    def add(self, at_ms: int, ok: bool) -> None:
        minute = at_ms // MINUTE_MS
        if len(self._minute) == self._head or self._minute[-1] < minute:
            self._minute.append(minute)
            self._ok.append(0)
            self._failed.append(0)
            self._prune(minute * MINUTE_MS)
        i = len(self._minute) - 1
        if self._minute[i] > minute:
            i = self._find(minute)  # a poll stamped in an earlier minute than the newest (a clock step back)
        if ok:
            self._ok[i] += 1
            self.day_ok += 1
        else:
            self._failed[i] += 1
            self.day_failed += 1

    def _prune(self, now_ms: int) -> None:
        head = bisect_right(self._minute, (now_ms - DAY_MS) // MINUTE_MS, self._head)
        if head > self._head:
            self.day_ok -= sum(self._ok[self._head : head])
            self.day_failed -= sum(self._failed[self._head : head])
        if head >= _COMPACT_AT:
            del self._minute[:head], self._ok[:head], self._failed[:head]
            head = 0
        self._head = head

    def _find(self, minute: int) -> int:
        return max(self._head, bisect_right(self._minute, minute, self._head) - 1)

    def last_day(self, now_ms: int) -> tuple[int, int]:
        """(answered, failed) in the day before ``now_ms``."""
        self._prune(now_ms)
        return self.day_ok, self.day_failed

    def within(self, now_ms: int, span_ms: int) -> tuple[int, int]:
        """(answered, failed) in the ``span_ms`` before ``now_ms``."""
        first = bisect_right(self._minute, (now_ms - span_ms) // MINUTE_MS, self._head)
        return sum(self._ok[first:]), sum(self._failed[first:])


@dataclass(slots=True)
class MeterHealth:
    id: str
    bus: str
    interval_ms: int
    no_data_after_ms: int
    last_ts: int | None = None  # the newest reading's time
    last_values: dict[str, float] = field(default_factory=dict)
    last_ok_ms: int | None = None  # when a poll last answered
    consecutive_failures: int = 0
    failing_since_ms: int | None = None
    last_error: str = ""
    last_error_ms: int | None = None
    counts: PollCounts = field(default_factory=PollCounts)
    flags_day: date | None = None
    flags_today: set[str] = field(default_factory=set)

    def state(self, now_ms: int) -> str:
        if self.failing_since_ms is None:
            return "ok"
        since = self.failing_since_ms if self.last_ok_ms is None else self.last_ok_ms
        return "offline" if now_ms - since > self.no_data_after_ms else "failing"


class HealthBook:
    """The health of every meter and of the uploads, since the agent started."""

    def __init__(self, started_ms: int, zone: ZoneInfo) -> None:
        self.started_ms = started_ms
        self.zone = zone
        self.meters: dict[str, MeterHealth] = {}
        self.last_upload_ms: int | None = None
        self.next_upload_ms: int | None = None

    def add_meter(self, meter: str, bus: str, interval_ms: int, no_data_after_ms: int) -> None:
        """A meter to follow; one already followed keeps its history (a reload built its poller again)."""
        known = self.meters.get(meter)
        if known is None:
            self.meters[meter] = MeterHealth(meter, bus, interval_ms, no_data_after_ms)
        else:
            known.bus, known.interval_ms, known.no_data_after_ms = bus, interval_ms, no_data_after_ms

    def retain(self, meters: set[str]) -> None:
        """Forget the meters not in ``meters`` (removed from the site file)."""
        for gone in self.meters.keys() - meters:
            del self.meters[gone]

    def answered(self, meter: str, at_ms: int, readings: Iterable[Reading], *, poll: bool = True) -> None:
        """The meter answered a poll (or, ``poll`` False, reported on its own: alive, but no poll)."""
        health = self.meters.get(meter)
        if health is None:
            return
        if poll:
            health.counts.add(at_ms, True)
        health.last_ok_ms = at_ms
        health.consecutive_failures = 0
        health.failing_since_ms = None
        last, values = health.last_ts, health.last_values
        for r in readings:
            ts = r.ts
            if last is None or ts >= last:
                if ts != last:  # a newer moment: the values of the last one are no longer the latest
                    last, values = ts, {}
                values[r.quantity] = r.value
        health.last_ts, health.last_values = last, values

    def failed(self, meter: str, at_ms: int, error: str) -> None:
        health = self.meters.get(meter)
        if health is None:
            return
        health.counts.add(at_ms, False)
        health.consecutive_failures += 1
        if health.failing_since_ms is None:
            health.failing_since_ms = at_ms
        health.last_error, health.last_error_ms = error, at_ms

    def flag(self, meter: str, flag: str, at_ms: int) -> None:
        """A flag or finding about a meter's data (``wrapped``, ``volume_negative``, ...)."""
        health = self.meters.get(meter)
        if health is None:
            return
        day = day_of(at_ms, self.zone)
        if health.flags_day != day:
            health.flags_day, health.flags_today = day, set()
        health.flags_today.add(flag)

    def uploaded(self, at_ms: int) -> None:
        """The far side confirmed an upload."""
        self.last_upload_ms = at_ms

    def snapshot(self, now_ms: int, pid: int) -> dict[str, Any]:
        """Plain data for the state file and ``status --json``."""
        today = day_of(now_ms, self.zone)
        return {
            "pid": pid,
            "written_ms": now_ms,
            "started_ms": self.started_ms,
            "uptime_s": max(0, now_ms - self.started_ms) // 1000,
            "last_upload_ms": self.last_upload_ms,
            "next_upload_ms": self.next_upload_ms,
            "meters": [_meter(h, now_ms, today) for h in self.meters.values()],
        }


def _meter(h: MeterHealth, now_ms: int, today: date) -> dict[str, Any]:
    hour_ok, hour_failed = h.counts.within(now_ms, HOUR_MS)
    day_ok, day_failed = h.counts.last_day(now_ms)
    return {
        "id": h.id,
        "bus": h.bus,
        "state": h.state(now_ms),
        "last_ts": h.last_ts,
        "age_s": None if h.last_ts is None else max(0, now_ms - h.last_ts) / 1000,
        "values": dict(h.last_values),
        "consecutive_failures": h.consecutive_failures,
        "failing_since_ms": h.failing_since_ms,
        "last_error": h.last_error or None,
        "last_error_ms": h.last_error_ms,
        "polls_last_hour": {"ok": hour_ok, "failed": hour_failed},
        "polls_last_day": {"ok": day_ok, "failed": day_failed},
        "flags_today": sorted(h.flags_today) if h.flags_day == today else [],
    }
