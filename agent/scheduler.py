"""Polling on schedule: one task per bus, slots aligned to the wall clock.

Each bus runs its own loop, so a dead bus never delays another. On a bus, meters are polled one
after the other (the bus lock serialises them anyway), and a meter that does not answer costs at
most its timeout x tries. All readings of one wake-up of a bus (one *poll cycle*) are handed to the
store together and committed in one transaction.

If a cycle overruns a meter's next slot, that slot is skipped and counted: polling late would
label a reading with a slot it was not taken in.

The agent's clock can jump (a trusted station's offset, a system clock step). Such a jump is told
from time passing by comparing the agent clock with the monotonic clock; the slots are then
re-aligned to the new clock, so a jump back does not stall polling and a jump forward is not
counted as missed slots.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from meterlink.drivers.base import Driver, DriverError, Flag, Reading

from .clock import ClockCheck, next_slot, now_ms
from .quality import QualityCheck

log = logging.getLogger("meterlink.poll")

Sink = Callable[[Sequence[Reading]], Awaitable[None]]
EventSink = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclass(slots=True)
class MeterState:
    """What the agent knows about one meter's health (counters reset only at restart)."""

    polls: int = 0
    ok: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    consecutive_failures: int = 0
    online: bool | None = None  # None until the first poll
    missed_slots: int = 0
    last_error: str = ""


@dataclass(slots=True)
class ScheduledMeter:
    meter: Any  # a driver's meter: ModbusMeter or Szy206Meter (both have .id)
    interval_ms: int
    state: MeterState = field(default_factory=MeterState)
    due: int = 0
    meter_cost_ms: int = 10_000  # the most one poll of it may take (timeout x tries x requests)
    quality: QualityCheck | None = None


def _monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def _off_schedule(m: ScheduledMeter, now: int, jump: int) -> bool:
    """Whether a clock jump put ``m`` off its schedule: its slot is now more than an interval away
    (the clock went back), or the clock went forward by more than an interval."""
    return m.due - now > m.interval_ms or jump > m.interval_ms


class BusPoller:
    def __init__(
        self,
        name: str,
        driver: Driver,
        meters: list[ScheduledMeter],
        sink: Sink,
        events: EventSink,
        clock_check: ClockCheck,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.name = name
        self.driver = driver
        self.meters = meters
        self.sink = sink
        self.events = events
        self.clock_check = clock_check
        self.clock = clock
        self.cycles = 0
        self.last_cycle_end = clock()  # the watchdog's measure of a live poller
        self._seen = (self.last_cycle_end, _monotonic_ms())  # agent clock vs monotonic, last look
        # Set while waiting for the next slot, clear during a cycle: a reload stops a poller only
        # when it is set, so no poll in flight is cut off and its slot lost.
        self.idle = asyncio.Event()

    async def run(self) -> None:
        now = self.clock()
        for m in self.meters:
            if not m.due:  # a meter carried over from the poller a reload replaced keeps its next slot
                m.due = next_slot(now, m.interval_ms)
        while True:
            self.idle.set()
            await self._wait()
            self.idle.clear()  # no await between the wait's end and here: a reload sees one or the other
            await self.cycle()

    async def _wait(self) -> None:
        """Sleep until the first meter is due, at most one interval at a time: a clock jump made
        during the sleep is then followed within an interval, not after the sleep it cut short."""
        step = min(m.interval_ms for m in self.meters)
        while True:
            now = self.clock()
            self._follow_clock(now, self._clock_jump(now))
            delay = min(m.due for m in self.meters) - now
            if delay <= 0:
                return
            await asyncio.sleep(min(delay, step) / 1000)

    async def cycle(self) -> list[Reading]:
        """Poll every meter that is due, store their readings in one transaction."""
        now = self.clock()
        self._follow_clock(now, self._clock_jump(now))
        due = [m for m in self.meters if m.due <= now]
        flags = Flag.NONE if self.clock_check.synced() else Flag.CLOCK_UNSYNCED
        readings: list[Reading] = []
        for m in due:
            readings.extend(await self._poll(m, flags))
        after = self.clock()
        jump = self._clock_jump(after)
        for m in due:
            if not _off_schedule(m, after, jump):  # those are re-aligned below, not counted missed
                self._schedule_next(m, after)
        self._follow_clock(after, jump)
        if readings:
            await self.sink(readings)
        self.cycles += 1
        self.last_cycle_end = self.clock()
        return readings

    def _schedule_next(self, m: ScheduledMeter, after: int) -> None:
        following = next_slot(max(after, m.due), m.interval_ms)
        skipped = (following - m.due) // m.interval_ms - 1
        if skipped > 0:
            m.state.missed_slots += skipped
            log.warning(
                "event=slots_missed bus=%s meter=%s missed=%d reason=cycle_overran", self.name, m.meter.id, skipped
            )
        m.due = following

    def _clock_jump(self, now: int) -> int:
        """How far the agent clock moved since the last look beyond the time that passed (ms)."""
        mono = _monotonic_ms()
        seen_now, seen_mono = self._seen
        self._seen = (now, mono)
        return (now - seen_now) - (mono - seen_mono)

    def _follow_clock(self, now: int, jump: int) -> None:
        """Re-align to the current clock every meter a clock jump has put off its schedule."""
        moved = [m for m in self.meters if _off_schedule(m, now, jump)]
        for m in moved:
            m.due = next_slot(now, m.interval_ms)
        if moved:
            # The same instant on the new clock: the watchdog must not read the jump as a stall.
            self.last_cycle_end += jump
            log.warning(
                "event=clock_jump bus=%s by_ms=%d meters=%s", self.name, jump, ",".join(str(m.meter.id) for m in moved)
            )

    async def _poll(self, m: ScheduledMeter, flags: int) -> list[Reading]:
        state = m.state
        state.polls += 1
        try:
            readings: list[Reading] = await self.driver.read(m.meter, m.due, flags)
        except DriverError as exc:
            kind = type(exc).__name__
            state.failures[kind] = state.failures.get(kind, 0) + 1
            state.consecutive_failures += 1
            state.last_error = str(exc)
            # First failure, then every 10th: a dead meter must not flood the journal.
            if state.consecutive_failures == 1 or state.consecutive_failures % 10 == 0:
                at = getattr(m.meter, "unit_id", None) or getattr(m.meter, "address", "")
                log.warning(
                    "event=poll_failed bus=%s meter=%s at=%s error=%s detail=%r consecutive=%d",
                    self.name,
                    m.meter.id,
                    at,
                    kind,
                    str(exc),
                    state.consecutive_failures,
                )
            if state.online is not False:
                state.online = False
                await self.events("meter_offline", {"meter": m.meter.id, "error": kind, "detail": str(exc)})
            return []
        state.ok += 1
        if m.quality is not None:
            readings, findings = m.quality.check(readings)
            for finding in findings:
                log.warning("event=%s bus=%s meter=%s detail=%s", finding.kind, self.name, m.meter.id, finding.detail)
                await self.events(finding.kind, finding.detail)
        if state.online is not True:
            if state.online is False:
                log.info(
                    "event=meter_recovered bus=%s meter=%s after_failures=%d",
                    self.name,
                    m.meter.id,
                    state.consecutive_failures,
                )
                await self.events("meter_online", {"meter": m.meter.id, "after_failures": state.consecutive_failures})
            state.online = True
        state.consecutive_failures = 0
        return readings
