"""Intakes against their permit and plan: year-to-date volume, thresholds, a projection, expiry.

An intake (a permitted abstraction point) is measured by one or more meters, each counted with a
sign (a return flow is subtracted). Its year-to-date volume is the sum of its meters' daily volumes
since 1 January, local time; never a difference of totalizers, which resets would spoil
(../meters rules, section 4).

- ``permit_threshold`` and ``plan_threshold``: the year-to-date volume reached 80 %, 90 %, 100 %
  (configurable) of the permitted or planned annual volume; one event per tier and year, each with
  the date the limit is reached at this year's pace so far. A new year clears them, as soon as
  the last day of the old one has been judged (:func:`new_year`).
- ``volume_large`` (scope ``day``): the intake's daily volume above its permitted daily maximum.
  Its subject is ``INTAKE/day``, so an intake and a meter of the same name never share one.
- ``permit_expiring`` from 90 and from 30 days before the permit's expiry date, its last valid day
  (有效期至), and ``permit_expired`` from the day after it; judged each morning for the day that
  begins, as calibration dates are; a renewed permit (a later expiry in the config) clears them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from .conditions import Conditions, RuleEvent

TIERS = (0.8, 0.9, 1.0)
EXPIRY_WARNINGS = (90, 30)  # days ahead
TIER_LEVELS = {0.8: "notice", 0.9: "warning", 1.0: "alarm"}


@dataclass(frozen=True, slots=True)
class Intake:
    """An intake as the config describes it (volumes in m3)."""

    id: str
    permit: str = ""
    source: str = ""  # "surface" or "ground"
    annual_permit: float | None = None
    annual_plan: float | None = None
    daily_max: float | None = None
    expires: date | None = None
    meters: Mapping[str, float] = field(default_factory=dict)  # meter id -> +1 or -1

    def day_volume(self, volumes: Mapping[str, float | None]) -> float | None:
        """The intake's volume of one day from its meters' (None when none of them has one)."""
        known = [sign * v for meter, sign in self.meters.items() if (v := volumes.get(meter)) is not None]
        return math.fsum(known) if known else None


@dataclass(frozen=True, slots=True)
class YearToDate:
    """An intake's volume since 1 January up to and including ``day``."""

    intake: str
    day: date
    volume: float
    days: int  # days of the year so far, ``day`` included

    def projected(self, limit: float) -> date | None:
        """When ``limit`` is reached at this year's pace so far (None: not this year, or no pace)."""
        if self.volume >= limit or self.volume <= 0:
            return None
        # Days of the year needed at this pace; one division (not limit / (volume / days)), and a
        # nudge below, so an exact day does not become the next by a rounding error.
        needed = math.ceil(limit * self.days / self.volume - 1e-9)
        reached = date(self.day.year, 1, 1) + timedelta(days=needed - 1)
        return reached if reached.year == self.day.year else None

    def share(self, limit: float | None) -> float | None:
        return None if not limit else self.volume / limit


def year_to_date(intake: Intake, day: date, daily: Mapping[date, Mapping[str, float | None]]) -> YearToDate:
    """Sum the intake's daily volumes from 1 January to ``day`` (days without data add nothing)."""
    total = 0.0
    for d, volumes in daily.items():
        if d.year == day.year and d <= day:
            total += intake.day_volume(volumes) or 0.0
    return YearToDate(intake.id, day, total, (day - date(day.year, 1, 1)).days + 1)


def permit_rules(
    conditions: Conditions,
    intake: Intake,
    ytd: YearToDate,
    day_volume: float | None,
    tiers: Sequence[float] = TIERS,
) -> list[RuleEvent]:
    """Thresholds, the daily maximum and expiry of one intake, after the day ``ytd.day`` ended."""
    events: list[RuleEvent] = []
    for kind, limit in (("permit_threshold", intake.annual_permit), ("plan_threshold", intake.annual_plan)):
        if not limit:
            continue
        share = ytd.volume / limit
        for tier in tiers:
            projected = ytd.projected(limit)
            event = conditions.update(
                kind,
                f"{intake.id}/{ytd.day.year}/{round(tier * 100)}",
                share >= tier,
                started=ytd.day.isoformat(),
                level=TIER_LEVELS.get(tier, "warning"),
                detail={
                    "intake": intake.id,
                    "permit": intake.permit,
                    "percent": round(tier * 100),
                    "ytd": round(ytd.volume, 3),
                    "limit": limit,
                    "year": ytd.day.year,
                    "projected": projected.isoformat() if projected else None,
                },
            )
            events += [event] if event is not None else []
    if intake.daily_max is not None and day_volume is not None:
        over = day_volume > intake.daily_max
        event = conditions.update(
            "volume_large",
            f"{intake.id}/day",
            over,
            started=ytd.day.isoformat(),
            detail={
                "meter": None,
                "intake": intake.id,
                "scope": "day",
                "volume": round(day_volume, 3),
                "limit": intake.daily_max,
                "at": ytd.day.isoformat(),
            },
        )
        events += [event] if event is not None else []
    events += expiry_rules(conditions, intake, ytd.day + timedelta(days=1))
    return events


def new_year(conditions: Conditions, intake: Intake, year: int) -> list[RuleEvent]:
    """Clear the thresholds of years before ``year`` (their volumes start again from 0)."""
    events = []
    for kind, subject in list(conditions.open):
        parts = subject.split("/")
        if kind in ("permit_threshold", "plan_threshold") and parts[0] == intake.id and int(parts[1]) < year:
            event = conditions.update(kind, subject, False, started="")
            events += [event] if event is not None else []
    return events


def expiry_rules(conditions: Conditions, intake: Intake, today: date) -> list[RuleEvent]:
    """``permit_expiring`` (90 and 30 days ahead) and ``permit_expired`` on ``today``, cleared by a
    renewed permit. ``intake.expires`` is the permit's last valid day."""
    events: list[RuleEvent] = []
    expires = intake.expires
    left = (expires - today).days if expires is not None else None
    for ahead in EXPIRY_WARNINGS:
        within = left is not None and 0 <= left <= ahead
        event = conditions.update(
            "permit_expiring",
            f"{intake.id}/{ahead}",
            within,
            started=str(expires),
            level="warning" if ahead <= 30 else "notice",
            detail={"intake": intake.id, "permit": intake.permit, "expires": str(expires), "days": ahead},
        )
        events += [event] if event is not None else []
    expired = left is not None and left < 0
    event = conditions.update(
        "permit_expired",
        intake.id,
        expired,
        started=str(expires),
        detail={"intake": intake.id, "permit": intake.permit, "expires": str(expires)},
    )
    events += [event] if event is not None else []
    return events
