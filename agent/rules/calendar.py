"""Local days, months and quarters as UTC millisecond ranges.

A platform counts volumes and report rates per local day (China: UTC+8, no daylight saving), so
every rule works on the site's calendar, given as an IANA zone (``Asia/Shanghai``). Where a zone has
daylight saving, a day is 23 or 25 hours long: ranges are computed from local midnights, never as
multiples of 24 h.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo


def day_of(ts_ms: int, zone: ZoneInfo) -> date:
    """The local date of the moment ``ts_ms``."""
    return datetime.fromtimestamp(ts_ms / 1000, zone).date()


def midnight(day: date, zone: ZoneInfo) -> int:
    """Local 00:00 of ``day``, in ms since the epoch."""
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp() * 1000)


def day_range(day: date, zone: ZoneInfo) -> tuple[int, int]:
    """``[start, end)`` of the local day, in ms."""
    return midnight(day, zone), midnight(day + timedelta(days=1), zone)


@dataclass(frozen=True, slots=True)
class Period:
    """A run of whole local days: a day, a month or a quarter, named as the report names it."""

    name: str  # "2026-11-03", "2026-11", "2026Q4"
    first: date
    last: date  # inclusive

    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


def parse_period(text: str) -> Period:
    """``YYYY-MM-DD``, ``YYYY-MM`` or ``YYYYQN``.

    Raises:
        ValueError: anything else, or an impossible date.
    """
    text = text.strip()
    try:
        return _period(text)
    except ValueError as exc:
        if str(exc).startswith(repr(text)):
            raise
        raise ValueError(f"{text!r}: {exc}") from None


def _period(text: str) -> Period:
    if m := re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text):
        day = date(int(m[1]), int(m[2]), int(m[3]))
        return Period(text, day, day)
    if m := re.fullmatch(r"(\d{4})-(\d{2})", text):
        first = date(int(m[1]), int(m[2]), 1)
        return Period(text, first, _month_end(first))
    if m := re.fullmatch(r"(\d{4})[Qq]([1-4])", text):
        first = date(int(m[1]), 3 * int(m[2]) - 2, 1)
        last = _month_end(date(first.year, first.month + 2, 1))
        return Period(f"{m[1]}Q{m[2]}", first, last)
    raise ValueError(f"{text!r} is not a day (YYYY-MM-DD), a month (YYYY-MM) or a quarter (YYYYQN)")


def _month_end(first: date) -> date:
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return following - timedelta(days=1)


def year_start(day: date) -> date:
    return date(day.year, 1, 1)


def days_in_year(year: int) -> int:
    return (date(year + 1, 1, 1) - date(year, 1, 1)).days
