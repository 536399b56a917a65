"""The platform's rules at run time: the agent feeds agent/rules/ from the store and records what
they say.

- Every poll's readings go through each meter's :class:`MeterWatch` (``volume_large``,
  ``volume_negative``, ``no_data`` clearing); every tick asks for ``no_data`` and ``clock_drift``.
- After each local midnight (plus a settle time, so the reading of the midnight slot, which closes
  the day, is in), every meter's day is summarised from the store, kept as version 1, and judged:
  ``volume_zero``, ``report_rate_low`` (the meters' and the gateway's own upload rate), the intakes'
  permits and plans, and calibration dates. Days that late readings changed (a meter's history, a
  salvage) are summarised again and kept as a correction.
- Events and the conditions they open or clear are committed together (agent/daybook.py); the
  uploader then sends them, and the day summaries on ``<prefix>/<gateway>/daily``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from meterlink.drivers.base import Reading

from .clock import now_ms
from .daybook import Daybook
from .outbox import Outbox
from .rules import anomalies, archive, permits
from .rules.calendar import day_of, day_range
from .rules.conditions import Conditions, RuleEvent
from .rules.daily import DaySummary, summarize_day
from .rules.permits import Intake

log = logging.getLogger("meterlink.rules")

TICK_S = 10.0
SETTLE_MS = 5 * 60_000  # after midnight, before a day is summarised: its closing readings arrive
RECHECK_DAYS = 7  # days looked at again for late readings
HISTORY_DAYS = 40  # day summaries a zero run is judged from (more than the alarm's 30)


@dataclass(frozen=True, slots=True)
class MeterRuleSettings:
    """What the rules need to know of one meter (from the config)."""

    id: str
    interval_ms: int
    max_flow: float | None = None
    one_directional: bool = True
    no_data_after_ms: int = 0  # 0: twice the poll interval
    wrap_at: float | None = None
    calibrated: date | None = None
    calibration_months: int | None = None


@dataclass(slots=True)
class RulebookStats:
    events: int = 0
    days: int = 0
    corrections: int = 0
    last_day: str = ""
    errors: list[str] = field(default_factory=list)


class Rulebook:
    """Runs the rules for one gateway. Call :meth:`start` on the event loop, then run :meth:`run`."""

    def __init__(
        self,
        outbox: Outbox,
        meters: Sequence[MeterRuleSettings],
        *,
        zone: ZoneInfo,
        intakes: Sequence[Intake] = (),
        settings: anomalies.AnomalySettings = anomalies.DEFAULTS,
        upload_interval_ms: int | None = None,
        clock_offset: Callable[[], tuple[float | None, str]] | None = None,
        on_recorded: Callable[[], None] | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.outbox = outbox
        self.meters = {m.id: m for m in meters}
        self.zone = zone
        self.intakes = list(intakes)
        self.settings = settings
        self.upload_interval_ms = upload_interval_ms
        self.clock_offset = clock_offset
        self.on_recorded = on_recorded
        self.clock = clock
        self.stats = RulebookStats()
        self.conditions = Conditions()
        self.watches: dict[str, anomalies.MeterWatch] = {}
        self.daybook: Daybook | None = None
        self._events: list[RuleEvent] = []
        self._seen: dict[str, int] = {}
        self._summarised: date | None = None  # the last day summarised

    async def start(self) -> None:
        """Open the rules' tables and take up the conditions and last readings where they were."""
        self.daybook = daybook = await self.outbox.with_store(Daybook)
        opened = await self.outbox.call(daybook.open_conditions)
        self.conditions = Conditions(opened)
        spans = await self.outbox.call(daybook.reading_spans)
        last = {meter: span[1] for meter, span in spans.items()}
        self._seen = await self.outbox.call(daybook.meters_seen)
        for meter, (first, _) in spans.items():  # meters read before the rules kept their first slot
            self._seen.setdefault(meter, first)
        for m in self.meters.values():
            self.watches[m.id] = anomalies.MeterWatch(
                m.id,
                self.conditions,
                max_flow=m.max_flow,
                one_directional=m.one_directional,
                no_data_after_ms=m.no_data_after_ms or 2 * m.interval_ms,
                last_ts=last.get(m.id),
                watching_since=self.clock(),
                settings=self.settings,
            )

    def observe(self, readings: Sequence[Reading]) -> None:
        """One poll's (or report's) readings, as captured; events are recorded at the next tick."""
        by_meter: dict[str, list[Reading]] = {}
        for r in readings:
            by_meter.setdefault(r.meter, []).append(r)
        for meter, rs in by_meter.items():
            watch = self.watches.get(meter)
            if watch is not None:
                self._events += watch.on_readings(rs)
            if meter not in self._seen:
                self._seen[meter] = min(r.slot for r in rs)  # its slots are expected from its first one

    async def run(self) -> None:
        """Tick until cancelled: record events, ask for silence and drift, summarise ended days."""
        while True:
            try:
                await self.tick()
            except Exception as exc:  # a bug or a store error: logged, tried again next tick
                self.stats.errors = [*self.stats.errors[-9:], repr(exc)]
                log.exception("event=rules_failed")
            await asyncio.sleep(TICK_S)

    async def tick(self) -> None:
        now = self.clock()
        for watch in self.watches.values():
            self._events += watch.on_tick(now)
        if self.clock_offset is not None:
            offset, source = self.clock_offset()
            self._events += anomalies.clock_rule(self.conditions, offset, source, now, self.settings)
        today = day_of(now - SETTLE_MS, self.zone)
        yesterday = today - timedelta(days=1)
        if self._summarised is None or self._summarised < yesterday:
            await self.summarise_days(yesterday, now)
        await self.record(now)

    async def record(self, now: int) -> None:
        events, self._events = self._events, []
        changes = self.conditions.take_changes()
        if not events and not changes:
            return
        assert self.daybook is not None
        try:
            await self.outbox.call(self.daybook.record, events, changes, now)
        except BaseException:
            self._events = events + self._events  # tried again at the next tick
            self.conditions.changed = {**changes, **self.conditions.changed}
            raise
        self.stats.events += len(events)
        for event in events:
            log.warning("event=%s %s", event.kind, " ".join(f"{k}={v}" for k, v in event.detail.items()))
        if self.on_recorded is not None:
            self.on_recorded()

    # -- days ----------------------------------------------------------------------------------------

    async def summarise_days(self, last: date, now: int) -> None:
        """Summarise ``last`` and the days before it that are new or changed, then judge ``last``."""
        assert self.daybook is not None
        first = last - timedelta(days=RECHECK_DAYS - 1)
        for day in (first + timedelta(days=n) for n in range(RECHECK_DAYS)):
            kept = await self.outbox.call(self._summarise_day, day, now)
            self.stats.days += sum(1 for k in kept if k.version == 1)
            self.stats.corrections += sum(1 for k in kept if k.version > 1)
        await self._judge_day(last, now)
        self._summarised = last
        self.stats.last_day = last.isoformat()
        if self.on_recorded is not None:
            self.on_recorded()

    def _summarise_day(self, day: date, now: int) -> list[Any]:
        """(On the store's thread.) Every configured meter's summary of ``day``, kept when new or changed."""
        assert self.daybook is not None
        daybook = self.daybook
        start, end = day_range(day, self.zone)
        if end + SETTLE_MS > now:
            return []
        # Up to the settle time after midnight: the reading of the midnight slot closes the day.
        by_meter, basis = daybook.readings_between(start, end + SETTLE_MS)
        kept = []
        for meter in self.meters.values():
            seen = self._seen.get(meter.id)
            if seen is None or seen >= end:
                continue  # not polled yet that day: nothing expected of it
            latest = daybook.latest_day(meter.id, day)
            if latest is not None and latest.basis == basis.get(meter.id, "0:0"):
                continue  # nothing arrived since it was summarised
            summary = self.summary(day, meter, by_meter.get(meter.id, []), (start, end))
            stored = daybook.keep_day(summary, basis.get(meter.id, "0:0"), now)
            if stored is not None:
                kept.append(stored)
            daybook.saw_meter(meter.id, seen)
        return kept

    def summary(
        self, day: date, meter: MeterRuleSettings, readings: list[Reading], bounds: tuple[int, int]
    ) -> DaySummary:
        """(On the store's thread.) ``meter``'s summary of ``day`` from its readings of that day."""
        assert self.daybook is not None
        before = self.daybook.latest_day(meter.id, day - timedelta(days=1))
        baseline = None
        if before is not None and before.summary.get("end_total") is not None:
            baseline = Reading(
                meter.id, "volume_total", float(before.summary["end_total"]), "", bounds[0] - 1, bounds[0] - 1
            )
        else:
            baseline = self.daybook.last_total_before(meter.id, bounds[0])
        return summarize_day(
            meter.id,
            day,
            bounds,
            readings,
            interval_ms=meter.interval_ms,
            baseline=baseline,
            wrap_at=meter.wrap_at,
            since=self._seen.get(meter.id),
        )

    async def _judge_day(self, day: date, now: int) -> None:
        """The day rules, the gateway's upload rate, permits and calibration, after ``day`` ended."""
        assert self.daybook is not None
        daybook = self.daybook
        history = await self.outbox.call(daybook.days, day - timedelta(days=HISTORY_DAYS), day)
        by_meter: dict[str, list[DaySummary]] = {}
        for stored in history:
            by_meter.setdefault(stored.meter, []).append(_from_stored(stored.summary))
        for meter in self.meters:
            summaries = by_meter.get(meter, [])
            if summaries and summaries[-1].day == day:
                self._events += anomalies.day_rules(self.conditions, summaries, self.settings)
        if self.upload_interval_ms:
            start, end = day_range(day, self.zone)
            confirmed = await self.outbox.call(daybook.upload_slots, start, end)
            first = min(self._seen.values(), default=end)  # none seen yet: the gateway was not running
            expected = max(0, (end - max(start, first)) // self.upload_interval_ms)
            if expected:
                rate = min(1.0, confirmed / expected)
                self._events += anomalies.report_rate_rule(
                    self.conditions, "gateway", "gateway", day, rate, self.settings
                )
        if self.intakes:
            year_days = await self.outbox.call(daybook.days, date(day.year, 1, 1), day)
            daily: dict[date, dict[str, float | None]] = {}
            for stored in year_days:
                daily.setdefault(stored.day, {})[stored.meter] = stored.summary.get("volume")
            for intake in self.intakes:
                ytd = permits.year_to_date(intake, day, daily)
                self._events += permits.permit_rules(
                    self.conditions, intake, ytd, intake.day_volume(daily.get(day, {}))
                )
                # After the year's last day was judged: its volume is final, the next starts from 0.
                self._events += permits.new_year(self.conditions, intake, (day + timedelta(days=1)).year)
        today = day + timedelta(days=1)
        for m in self.meters.values():
            self._events += archive.calibration_rules(self.conditions, m.id, m.calibrated, m.calibration_months, today)
        await self.record(now)


def _from_stored(body: dict[str, Any]) -> DaySummary:
    return DaySummary(
        meter=body["meter"],
        day=date.fromisoformat(body["day"]),
        start_total=body.get("start_total"),
        end_total=body.get("end_total"),
        volume=body.get("volume"),
        flow_min=body.get("flow_min"),
        flow_mean=body.get("flow_mean"),
        flow_max=body.get("flow_max"),
        slots_expected=body["slots_expected"],
        slots_filled=body["slots_filled"],
        readings=body.get("readings", 0),
        negative_steps=body.get("negative_steps", 0),
        flags=tuple(body.get("flags", ())),
    )
