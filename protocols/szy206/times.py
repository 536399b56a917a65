"""Wall-clock time <-> SZY206 time fields, in the site's local time (China: UTC+8).

The 5-byte SZY206 time label carries second, minute, hour and day but no month or year: a receiver
takes the most recent moment, not later than "now" plus a small allowance for a sender's clock
running ahead, whose local day and time match (without the allowance, a label a few seconds in
our future would read as a month earlier). The 7-byte SL/T 427 label and the 6-byte clock
(11H/51H) carry two digits of the year: the century is the one that puts it nearest to now.
Pure: the caller passes "now" (its own clock, with any offset it applies); times are ms since the
Unix epoch.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from .errors import DataError
from .fields import Clock, TimeLabel

SKEW_MS = 10 * 60_000  # a label up to 10 minutes "in the future" is the sender's clock running fast


def _zone(utc_offset_h: float) -> timezone:
    return timezone(timedelta(hours=utc_offset_h))


def _local(ms: int, utc_offset_h: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, _zone(utc_offset_h))


def time_label_at(ms: int, *, tp_len: int = 5, utc_offset_h: float = 8.0, delay_min: int = 0) -> TimeLabel:
    """The time label of moment ``ms``: 5 bytes (SZY206) or 7 bytes (SL/T 427)."""
    t = _local(ms // 1000 * 1000, utc_offset_h)
    if tp_len == 5:
        return TimeLabel(second=t.second, minute=t.minute, hour=t.hour, day=t.day, delay_min=delay_min)
    if tp_len == 7:
        return TimeLabel(
            second=t.second,
            minute=t.minute,
            hour=t.hour,
            day=t.day,
            delay_min=delay_min,
            month=t.month,
            year=t.year % 100,
        )
    raise ValueError(f"a time label has 5 or 7 bytes, not {tp_len}")


def reply_label(
    tp: TimeLabel | None, ms: int, *, utc_offset_h: float = 8.0, delay_min: int | None = None
) -> TimeLabel | None:
    """The Tp of a reply to a frame that carried ``tp``: moment ``ms`` in the same edition (5 or 7
    bytes), with ``tp``'s allowed delay unless ``delay_min`` is given; None when ``tp`` is None.

    SL/T 427 terminals set their clock from the Tp of a confirm, so a reply carries the replier's
    clock in the form the terminal sent.
    """
    if tp is None:
        return None
    delay = tp.delay_min if delay_min is None else delay_min
    return time_label_at(ms, tp_len=tp.size, utc_offset_h=utc_offset_h, delay_min=delay)


def full_year(two_digits: int, now_ms: int) -> int:
    """The four-digit year nearest to now that ends in ``two_digits``."""
    this = datetime.fromtimestamp(now_ms / 1000, UTC).year
    year = this - this % 100 + two_digits
    if year > this + 50:
        year -= 100
    elif year < this - 50:
        year += 100
    return year


def label_to_ms(tp: TimeLabel, *, now_ms: int, utc_offset_h: float = 8.0, ahead_ms: int = SKEW_MS) -> int:
    """The moment a time label names.

    Raises:
        DataError: no such moment (a 7-byte date that does not exist, such as 30 February).
    """
    zone = _zone(utc_offset_h)
    if tp.month is not None and tp.year is not None:
        try:
            when = datetime(full_year(tp.year, now_ms), tp.month, tp.day, tp.hour, tp.minute, tp.second, tzinfo=zone)
        except ValueError as exc:
            raise DataError(f"time label names no date: {exc}") from None
        return int(when.timestamp() * 1000)
    latest = _local(now_ms + ahead_ms, utc_offset_h)
    year, month = latest.year, latest.month
    for _ in range(13):  # the same day number occurs at least once a year
        try:
            day = datetime(year, month, tp.day, tp.hour, tp.minute, tp.second, tzinfo=zone)
        except ValueError:
            day = None
        if day is not None and day <= latest:
            return int(day.timestamp() * 1000)
        month -= 1
        if month == 0:
            year, month = year - 1, 12
    raise DataError(f"day {tp.day} does not occur in the last year")


def clock_at(ms: int, *, utc_offset_h: float = 8.0) -> Clock:
    """The 6-byte clock (11H set, 51H answer) of moment ``ms``; weekday 1 = Monday .. 7 = Sunday."""
    t = _local(ms, utc_offset_h)
    return Clock(
        second=t.second,
        minute=t.minute,
        hour=t.hour,
        day=t.day,
        month=t.month,
        year=t.year % 100,
        weekday=t.isoweekday(),
    )


def clock_to_ms(clock: Clock, *, now_ms: int, utc_offset_h: float = 8.0) -> int:
    """The moment a 6-byte clock (or B1H stamp) names; its two-digit year is read nearest to ``now_ms``.

    Raises:
        DataError: no such moment (30 February).
    """
    try:
        when = datetime(
            full_year(clock.year, now_ms),
            clock.month,
            clock.day,
            clock.hour,
            clock.minute,
            clock.second,
            tzinfo=_zone(utc_offset_h),
        )
    except ValueError as exc:
        raise DataError(f"clock names no date: {exc}") from None
    return int(when.timestamp() * 1000)


def utc_ms(when: datetime) -> int:
    """ms since the epoch of an aware datetime (naive ones are taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)
