"""The platform's anomaly rules, at the meter (../meters rules, sections 0 and 2.5).

Per poll, from a meter's readings (:class:`MeterWatch`):

- ``volume_large``: a totalizer step above ``max_flow x elapsed x factor`` (1.2 by default);
- ``volume_negative``: a totalizer drop that is neither a wrap nor a registered meter change, or a
  negative flow on a meter configured as one-directional;
- ``no_data``: no reading for longer than the meter's report requirement (default twice its poll
  interval), asked on every tick; it clears with the next reading.

Per day, from the meters' day summaries (:func:`day_rules`):

- ``volume_zero``: a meter that answers but whose daily volume has been 0 for N days (a notice at 7,
  an alarm at 30); a day without any reading is offline, not zero, and ends the run;
- ``report_rate_low``: a day's report rate of a meter, or the gateway's upload rate, below target.

And ``clock_drift`` (:func:`clock_rule`): the clock off its time source by more than 60 s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from operator import attrgetter

from meterlink.drivers.base import Flag, Reading

from .conditions import Conditions, RuleEvent
from .daily import FLOW, VOLUME, DaySummary


@dataclass(frozen=True, slots=True)
class AnomalySettings:
    """Thresholds; the defaults are ../meters rules' proposals (marked unverified there)."""

    zero_notice_days: int = 7
    zero_alarm_days: int = 30
    large_factor: float = 1.2
    report_rate_target: float = 0.95
    clock_drift_s: float = 60.0


DEFAULTS = AnomalySettings()
_BY_TS = attrgetter("ts")


class MeterWatch:
    """One meter's per-poll rules.

    Args:
        meter: its id.
        conditions: the gateway's open conditions (shared by every rule).
        max_flow: m3/h, for ``volume_large`` (None: not judged).
        one_directional: a negative flow is an anomaly.
        no_data_after_ms: the meter's report requirement.
        last_ts: when its last reading was taken (from the store, at start), if ever.
        watching_since: when the watch began: a meter that never answered is silent since then.
        settings: thresholds.
    """

    def __init__(
        self,
        meter: str,
        conditions: Conditions,
        *,
        max_flow: float | None,
        one_directional: bool,
        no_data_after_ms: int,
        last_ts: int | None = None,
        watching_since: int | None = None,
        settings: AnomalySettings = DEFAULTS,
    ) -> None:
        self.meter = meter
        self.watching_since = watching_since
        self.conditions = conditions
        self.max_flow = max_flow
        self.one_directional = one_directional
        self.no_data_after_ms = no_data_after_ms
        self.last_ts = last_ts
        self.settings = settings
        self._last_total: Reading | None = None
        self._flow_subject = f"{meter}/flow"

    def on_readings(self, readings: Sequence[Reading]) -> list[RuleEvent]:
        """Judge one poll's (or one report's) readings of this meter."""
        # Runs for every poll: a condition that neither holds nor is open is skipped before its
        # event's members are built, which is what Conditions.update would do with them anyway.
        events: list[RuleEvent] = []
        conditions, meter = self.conditions, self.meter
        for r in sorted(readings, key=_BY_TS):
            if r.meter != meter:
                continue
            if self.last_ts is None or r.ts > self.last_ts:
                self.last_ts = r.ts
            quantity = r.quantity
            if quantity == VOLUME:
                events += self._total(r)
            elif quantity == FLOW and self.one_directional:
                negative = r.value < 0
                if negative or conditions.is_open("volume_negative", self._flow_subject):
                    events += _listed(
                        conditions.update(
                            "volume_negative",
                            self._flow_subject,
                            negative,
                            started=str(r.ts),
                            detail={
                                "meter": self.meter,
                                "cause": "negative_flow",
                                "value": r.value,
                                "previous": None,
                                "at": r.ts,
                            },
                        )
                    )
        if readings and conditions.is_open("no_data", self.meter):
            events += _listed(conditions.update("no_data", self.meter, False, started=""))
        return events

    def _total(self, r: Reading) -> list[RuleEvent]:
        prev, self._last_total = self._last_total, r
        if prev is None or r.ts <= prev.ts:
            return []
        events: list[RuleEvent] = []
        conditions = self.conditions
        delta = r.value - prev.value
        dropped = delta < 0 and not (r.flags & (Flag.WRAPPED | Flag.REPLACEMENT))
        if dropped or conditions.is_open("volume_negative", self.meter):
            events += _listed(
                conditions.update(
                    "volume_negative",
                    self.meter,
                    dropped,
                    started=str(r.ts),
                    detail={
                        "meter": self.meter,
                        "cause": "totalizer_drop",
                        "value": r.value,
                        "previous": prev.value,
                        "at": r.ts,
                    },
                )
            )
        if self.max_flow is not None and not r.flags & Flag.REPLACEMENT:
            limit = self.max_flow * (r.ts - prev.ts) / 3_600_000 * self.settings.large_factor
            large = delta > limit
            if large or conditions.is_open("volume_large", self.meter):
                events += _listed(
                    conditions.update(
                        "volume_large",
                        self.meter,
                        large,
                        started=str(r.ts),
                        detail={
                            "meter": self.meter,
                            "intake": None,
                            "scope": "interval",
                            "volume": round(delta, 6),
                            "limit": round(limit, 6),
                            "at": r.ts,
                        },
                    )
                )
        return events

    def on_tick(self, now: int) -> list[RuleEvent]:
        """``no_data`` when the meter has been silent longer than its report requirement."""
        since = self.last_ts if self.last_ts is not None else self.watching_since
        if since is None:
            return []
        silent = now - since > self.no_data_after_ms
        return _listed(
            self.conditions.update(
                "no_data",
                self.meter,
                silent,
                started=str(since),
                detail={"meter": self.meter, "last_ts": self.last_ts, "limit_s": self.no_data_after_ms // 1000},
            )
        )


def day_rules(
    conditions: Conditions,
    history: Sequence[DaySummary],
    settings: AnomalySettings = DEFAULTS,
) -> list[RuleEvent]:
    """``volume_zero`` and ``report_rate_low`` of one meter, from its day summaries up to the day
    just ended (oldest first, one per day; days missing from the list end a zero run)."""
    if not history:
        return []
    last = history[-1]
    meter = last.meter
    events: list[RuleEvent] = []
    run: list[DaySummary] = []
    for summary in reversed(history):
        follows = not run or (run[-1].day - summary.day).days == 1
        if not follows or summary.volume != 0 or summary.slots_filled == 0:
            break
        run.append(summary)
    days = len(run)
    if days >= settings.zero_alarm_days:
        level = "alarm"
    elif days >= settings.zero_notice_days:
        level = "notice"
    else:
        level = ""
    first = run[-1].day.isoformat() if run else last.day.isoformat()
    event = conditions.update(
        "volume_zero",
        meter,
        bool(level),
        started=first,
        level=level or "notice",
        detail={"meter": meter, "since": first, "days": days},
    )
    events += [event] if event is not None else []
    rate = last.report_rate
    if rate is not None:
        events += report_rate_rule(conditions, "meter", meter, last.day, rate, settings)
    return events


def report_rate_rule(
    conditions: Conditions,
    scope: str,
    subject: str,
    day: date,
    rate: float,
    settings: AnomalySettings = DEFAULTS,
) -> list[RuleEvent]:
    """``report_rate_low`` for one day's rate of a meter (scope ``meter``) or of the gateway's uploads."""
    low = rate < settings.report_rate_target
    event = conditions.update(
        "report_rate_low",
        subject,
        low,
        started=day.isoformat(),
        detail={
            "scope": scope,
            "meter": subject if scope == "meter" else None,
            "day": day.isoformat(),
            "rate": round(rate, 4),
            "target": settings.report_rate_target,
        },
    )
    return [event] if event is not None else []


def clock_rule(
    conditions: Conditions,
    offset_s: float | None,
    source: str,
    now: int,
    settings: AnomalySettings = DEFAULTS,
) -> list[RuleEvent]:
    """``clock_drift``: ``offset_s`` is how far the clock is off its source (None: cannot be told)."""
    if offset_s is None:
        return []
    drifted = abs(offset_s) > settings.clock_drift_s
    event = conditions.update(
        "clock_drift",
        "gateway",
        drifted,
        started=str(now),
        detail={"offset_s": round(offset_s, 3), "limit_s": settings.clock_drift_s, "source": source},
    )
    return [event] if event is not None else []


def _listed(event: RuleEvent | None) -> list[RuleEvent]:
    return [event] if event is not None else []
