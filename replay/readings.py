"""A scenario's site at work: the readings its meters give, the uplink's confirmed slots, the clock.

Every meter is polled at its interval, aligned to the clock as the agent's scheduler does, from the
scenario's first midnight until the replay ends. Its flow is a step function of time (its base flow
and pattern, changed by the scenario's happenings) and its totalizer counts that flow exactly, so
the water a day saw is known to the litre. What the meter shows is then stepped, reset, replaced or
wrapped as the happenings say, and every polled reading goes through the agent's own quality check
(agent/quality.py), which sets the flags a real poll would carry. A registered replacement is a
manual reading, flagged by hand, that the check takes as its new base, as the agent does.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from meterlink.agent.quality import QualityCheck
from meterlink.agent.rules.calendar import day_of, midnight
from meterlink.drivers.base import Flag, Reading

from .scenario import MeterSpec, Scenario, ScenarioError

HOUR_MS = 3_600_000
QUARTER_HOUR_MS = 900_000  # every zone's offset is a multiple of it: local hours start on one


@dataclass(slots=True)
class SiteRun:
    """What a scenario's site did: the readings, the uplink, the clock, and the truth they make.

    ``batches`` are the readings of one moment (ms), in time order, flagged by agent/quality.py;
    ``uploads`` the upload slots the uplink confirmed, with the moment each was confirmed;
    ``slots[(meter, day)]`` is (slots answered, slots of the day): the meter's true report rate;
    ``flowed[(meter, day)]`` the water that passed between the day's midnight readings.
    """

    batches: list[tuple[int, list[Reading]]]
    uploads: list[tuple[int, int]]
    clock_offset: Callable[[int], float]
    slots: dict[tuple[str, date], tuple[int, int]] = field(default_factory=dict)
    flowed: dict[tuple[str, date], float] = field(default_factory=dict)

    def rate(self, meter: str, day: date) -> float:
        answered, expected = self.slots[(meter, day)]
        return answered / expected


class FlowModel:
    """One meter's flow as a step function of time, and the volume it adds up to (exactly)."""

    def __init__(self, scenario: Scenario, meter: MeterSpec) -> None:
        self.zone = scenario.zone
        self.meter = meter
        self.start = scenario.start_ms
        mine = [h for h in scenario.spec.happenings if h.meter == meter.id]
        # (from, to, what the totalizer counts, what the meter shows), m3/h
        self.windows: list[tuple[int, int, float, float]] = []
        for h in mine:
            if h.from_ is None or h.to is None:
                continue
            a, b = scenario.ms(h.from_), scenario.ms(h.to)
            if h.kind == "zero":
                self.windows.append((a, b, 0.0, 0.0))
            elif h.kind == "flow" and h.flow is not None:
                self.windows.append((a, b, h.flow, h.flow))
            elif h.kind == "negative_flow" and h.flow is not None:
                self.windows.append((a, b, 0.0, h.flow))  # a forward totalizer does not count back
        points = set(range(self.start, scenario.replay_end_ms + QUARTER_HOUR_MS, QUARTER_HOUR_MS))
        points.update(t for a, b, _, _ in self.windows for t in (a, b))
        self.points = sorted(points)
        self.cumulative = [0.0]
        for a, b in itertools.pairwise(self.points):
            self.cumulative.append(self.cumulative[-1] + self.rate(a) * (b - a) / HOUR_MS)

    def rate(self, t: int) -> float:
        """What the forward totalizer counts at ``t``, m3/h."""
        for a, b, counted, _ in self.windows:
            if a <= t < b:
                return counted
        hour = datetime.fromtimestamp(t / 1000, self.zone).hour
        return self.meter.flow * (self.meter.pattern[hour] if self.meter.pattern else 1.0)

    def shown_flow(self, t: int) -> float:
        """What the meter shows as its flow at ``t`` (a negative flow does not move the totalizer)."""
        for a, b, _, shown in self.windows:
            if a <= t < b:
                return shown
        return self.rate(t)

    def volume(self, t: int) -> float:
        """m3 counted from the scenario's start to ``t``."""
        i = bisect.bisect_right(self.points, t) - 1
        return self.cumulative[i] + self.rate(self.points[i]) * (t - self.points[i]) / HOUR_MS


def generate(scenario: Scenario) -> SiteRun:
    """The readings of every meter, in time order, with the flags the agent's quality check gives."""
    spec = scenario.spec
    acquire = spec.site.acquire_ms
    by_time: dict[int, list[Reading]] = {}
    run = SiteRun([], [], _clock_offsets(scenario))
    for meter in spec.meters:
        for r in _meter_readings(scenario, meter, run):
            by_time.setdefault(r.ts, []).append(r)
    run.batches = sorted(by_time.items())
    if spec.site.upload_interval:
        interval = spec.site.upload_interval * 1000
        away = [
            (scenario.ms(h.from_), scenario.ms(h.to))
            for h in spec.happenings
            if h.kind == "uplink_outage" and h.from_ is not None and h.to is not None
        ]
        slot = -(-scenario.start_ms // interval) * interval
        while slot + acquire <= scenario.replay_end_ms:
            if not any(a <= slot < b for a, b in away):
                run.uploads.append((slot, slot + acquire))
            slot += interval
    return run


def _meter_readings(scenario: Scenario, meter: MeterSpec, run: SiteRun) -> list[Reading]:
    spec = scenario.spec
    zone = scenario.zone
    acquire = spec.site.acquire_ms
    model = FlowModel(scenario, meter)
    mine = [h for h in spec.happenings if h.meter == meter.id]
    silent = [
        (scenario.ms(h.from_), scenario.ms(h.to))
        for h in mine
        if h.kind == "outage" and h.from_ is not None and h.to is not None
    ]
    steps = sorted((scenario.ms(h.at), n, h) for n, h in enumerate(mine) if h.at is not None and h.kind != "wrap")
    start_total = meter.total
    for h in mine:
        if h.kind == "wrap" and h.at is not None and meter.wraps_at is not None:
            # Start where the register passes its end exactly at h.at: its flow and steps before then
            # are known, but not what a reset or a new meter would show.
            at = scenario.ms(h.at)
            before = [s for t, _, s in steps if t <= at]
            shift = sum((s.volume or 0.0) - (s.by or 0.0) for s in before)
            start_total = meter.wraps_at - model.volume(at) - shift
            if start_total < 0 or any(s.kind in ("reset", "replacement") for s in before):
                raise ScenarioError(
                    [
                        f"{scenario.name}: meters[{meter.id}]: cannot wrap at {h.at} "
                        "(too little flow before it, or a reset or replacement before it)"
                    ]
                )
    check = QualityCheck(meter.id, max_flow_m3h=meter.max_flow, maxima={"volume_total": meter.wraps_at})
    interval = meter.poll_interval * 1000
    out: list[Reading] = []
    offset = 0.0
    pending = list(steps)

    def shown(t: int) -> float:
        value = round(start_total + model.volume(t) + offset, 3)
        if meter.wraps_at is not None:
            value = round(value % meter.wraps_at, 3)
        return value

    def take(readings: list[Reading]) -> None:
        flagged, _ = check.check(readings)
        out.extend(flagged)

    slot = -(-scenario.start_ms // interval) * interval
    while slot + acquire <= scenario.replay_end_ms:
        ts = slot + acquire
        while pending and pending[0][0] <= ts:
            at, _, h = pending.pop(0)
            if h.kind == "negative_step" and h.by is not None:
                offset -= h.by
            elif h.kind == "large_step" and h.volume is not None:
                offset += h.volume
            elif h.kind == "reset":
                offset = -(start_total + model.volume(at))
            elif h.kind == "replacement" and h.total is not None:
                offset = h.total - (start_total + model.volume(at))
                manual = Reading(meter.id, "volume_total", shown(at), "m3", at, at, Flag.MANUAL | Flag.REPLACEMENT)
                check.rebase(manual)  # as the agent does with a registered meter change: no reset
                out.append(manual)
        answered = not any(a <= slot < b for a, b in silent)
        if answered:
            take(
                [
                    Reading(meter.id, "flow_rate", round(model.shown_flow(ts), 3), "m3/h", ts, slot),
                    Reading(meter.id, "volume_total", shown(ts), "m3", ts, slot),
                ]
            )
        day = day_of(slot, zone)
        if scenario.start_ms <= slot < scenario.end_ms:
            done, due = run.slots.get((meter.id, day), (0, 0))
            run.slots[(meter.id, day)] = (done + answered, due + 1)
        slot += interval
    for day in scenario.days:
        opened = midnight(day, zone) + acquire
        closed = midnight(day + timedelta(days=1), zone) + acquire
        run.flowed[(meter.id, day)] = model.volume(closed) - model.volume(opened)
    return out


def _clock_offsets(scenario: Scenario) -> Callable[[int], float]:
    windows = [
        (scenario.ms(h.from_), scenario.ms(h.to), h.offset_s)
        for h in scenario.spec.happenings
        if h.kind == "clock_offset" and h.from_ is not None and h.to is not None
    ]

    def offset(now: int) -> float:
        return next((float(s) for a, b, s in windows if a <= now < b and s is not None), 0.0)

    return offset
