"""One meter's local day: totalizer at start and end, volume, flow statistics, slots and report rate.

A platform takes a day's volume from the totalizer at 00:00 and at the next 00:00. So does this
module: the reading of the slot at local midnight closes the day before and opens the day it
starts, and the volume is summed step by step along the totalizer from the day's opening reading
(else the last one before it) to its closing reading (else the last one before it). A gap in the
readings is bridged by the totalizer, and no volume falls between days: each step belongs to the
day whose slots it closes. The steps follow the quality rules (agent/quality.py, ../meters rules
section 3.4):

- a rise is volume, abnormal or not (a ``suspect`` step is counted and flagged, never clipped);
- a ``wrapped`` step adds the rest of the register's range and what the new cycle shows: ``wrap_at``
  is the value at which the totalizer starts again from 0 (its largest value plus one count: 100000
  for a register showing 0 to 99999.99 m3 in steps of 0.01);
- a step onto a registered meter change (``replacement``, from ``meterlink manual-reading``) adds
  nothing: the new meter starts at the value it shows;
- any other drop adds nothing and is counted in ``negative_steps``: a reset or an unregistered
  replacement, which the platform calls an abnormal negative.

Report rate: the day is cut into the meter's poll interval; a slot is filled when a reading's slot
(or, for a meter's own reports, its time) falls into it. Slots before ``since`` (the meter was not
configured yet) are not expected. Flow statistics, slots and the reading count are the day's own,
from 00:00 to 24:00 by reading time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from itertools import pairwise
from typing import Any

from meterlink.drivers.base import Flag, Reading

VOLUME = "volume_total"  # the totalizer a day's volume is taken from
FLOW = "flow_rate"


@dataclass(frozen=True, slots=True)
class DaySummary:
    """The figures the platform reconciles a meter's day by (values in the meter's units)."""

    meter: str
    day: date
    start_total: float | None
    end_total: float | None
    volume: float | None
    flow_min: float | None
    flow_mean: float | None
    flow_max: float | None
    slots_expected: int
    slots_filled: int
    readings: int
    negative_steps: int
    flags: tuple[str, ...]

    @property
    def report_rate(self) -> float | None:
        """Filled slots over expected ones (None when none was expected)."""
        if not self.slots_expected:
            return None
        return min(1.0, self.slots_filled / self.slots_expected)

    def to_dict(self) -> dict[str, Any]:
        """As the ``/daily`` message and ``meterlink report --json`` carry it."""
        rate = self.report_rate
        return {
            "meter": self.meter,
            "day": self.day.isoformat(),
            "volume": _round(self.volume),
            "start_total": self.start_total,
            "end_total": self.end_total,
            "flow_min": _round(self.flow_min),
            "flow_mean": _round(self.flow_mean),
            "flow_max": _round(self.flow_max),
            "slots_expected": self.slots_expected,
            "slots_filled": self.slots_filled,
            "report_rate": None if rate is None else round(rate, 4),
            "readings": self.readings,
            "negative_steps": self.negative_steps,
            "flags": list(self.flags),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def expected_slots(start: int, end: int, interval_ms: int, since: int | None = None) -> int:
    """Slot boundaries ``k * interval`` in ``[max(start, since), end)``."""
    first = max(start, since if since is not None else start)
    if first >= end:
        return 0
    return (end - 1) // interval_ms - math.ceil(first / interval_ms) + 1


def summarize_day(
    meter: str,
    day: date,
    bounds: tuple[int, int],
    readings: Sequence[Reading],
    *,
    interval_ms: int,
    baseline: Reading | None = None,
    wrap_at: float | None = None,
    since: int | None = None,
) -> DaySummary:
    """One meter's day from its readings (any order) in ``bounds`` (ms, ``[start, end)``) and up to
    the next day's midnight slot, whose reading closes the day.

    ``baseline`` is the meter's last totalizer reading before the day's slots (the closing reading
    of the day before); ``wrap_at`` the value at which its totalizer starts again from 0 (None: it
    does not wrap).
    """
    start, end = bounds
    inside = sorted((r for r in readings if start <= r.ts < end), key=lambda r: (r.ts, r.quantity))
    by_slot = sorted((r for r in readings if r.quantity == VOLUME), key=lambda r: (r.slot, r.ts))
    opening = [r for r in by_slot if r.slot <= start][-1:]
    totals = [r for r in by_slot if start < r.slot <= end]
    flows = [r.value for r in inside if r.quantity == FLOW]
    candidates = ([baseline] if baseline is not None else []) + opening
    first = max(candidates, key=lambda r: (r.slot, r.ts)) if candidates else None
    steps = ([first] if first is not None else []) + totals
    volume: float | None = None
    negative = 0
    if totals:
        volume = 0.0
        for prev, cur in pairwise(steps):
            added, dropped = step_volume(prev, cur, wrap_at)
            volume += added
            negative += dropped
    seen_flags = 0  # the flags' names once for the day, not per reading (a day of minutes is thousands)
    for r in (*(r for r in inside if r.quantity != VOLUME), *totals):  # a totalizer's, on the day of its step
        seen_flags |= r.flags
    flags = Flag(seen_flags).names()
    first_slot = start // interval_ms
    buckets = {(r.slot if r.slot % interval_ms == 0 else r.ts) // interval_ms for r in inside}
    floor = max(start, since) if since is not None else start
    filled = sum(1 for b in buckets if b * interval_ms >= floor and b >= first_slot and b * interval_ms < end)
    return DaySummary(
        meter=meter,
        day=day,
        start_total=steps[0].value if steps else None,
        end_total=totals[-1].value if totals else (first.value if first is not None else None),
        volume=volume,
        flow_min=min(flows) if flows else None,
        flow_mean=math.fsum(flows) / len(flows) if flows else None,
        flow_max=max(flows) if flows else None,
        slots_expected=expected_slots(start, end, interval_ms, since),
        slots_filled=filled,
        readings=len(inside),
        negative_steps=negative,
        flags=tuple(sorted(flags)),
    )


def step_volume(prev: Reading, cur: Reading, wrap_at: float | None) -> tuple[float, int]:
    """The volume between two successive totalizer readings, and 1 when the step is an unexplained
    drop (a reset or an unregistered meter change), else 0."""
    if cur.flags & Flag.REPLACEMENT:
        return 0.0, 0
    delta = cur.value - prev.value
    if delta >= 0:
        return delta, 0
    if cur.flags & Flag.WRAPPED and wrap_at is not None:
        return wrap_at - prev.value + cur.value, 0
    return 0.0, 1
