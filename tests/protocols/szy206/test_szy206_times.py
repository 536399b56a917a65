"""Time labels in the site's local time, and the year/month a 5-byte label leaves out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterlink.protocols.szy206.errors import DataError
from meterlink.protocols.szy206.fields import Clock, TimeLabel
from meterlink.protocols.szy206.times import clock_at, clock_to_ms, label_to_ms, reply_label, time_label_at, utc_ms

NOW = utc_ms(datetime(2026, 11, 29, 0, 45, tzinfo=UTC))  # 08:45 in UTC+8


def label(day: int, hour: int, minute: int = 0, **more: int) -> TimeLabel:
    return TimeLabel(second=0, minute=minute, hour=hour, day=day, **more)


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return utc_ms(datetime(year, month, day, hour, minute, tzinfo=UTC)) - 8 * 3600_000


def test_labels_are_in_local_time() -> None:
    assert time_label_at(NOW, tp_len=5, delay_min=10) == label(29, 8, 45, delay_min=10)
    assert time_label_at(NOW, tp_len=7) == label(29, 8, 45, month=11, year=26)


def test_a_five_byte_label_is_the_most_recent_matching_moment() -> None:
    assert label_to_ms(label(29, 8, 45), now_ms=NOW) == NOW
    # Day 30 at 08:00 has not come yet this month: it was last month's 30th.
    assert label_to_ms(label(30, 8), now_ms=NOW) == local(2026, 10, 30, 8, 0)
    # Day 31 skips November (30 days).
    assert label_to_ms(label(31, 8), now_ms=NOW) == local(2026, 10, 31, 8, 0)
    # A sender whose clock runs a few minutes fast is not pushed back a month.
    assert label_to_ms(label(29, 8, 50), now_ms=NOW) == NOW + 5 * 60_000


def test_seven_byte_labels_and_clocks_are_exact() -> None:
    full = label(29, 8, 45, month=11, year=26)
    assert label_to_ms(full, now_ms=NOW) == NOW
    assert clock_to_ms(clock_at(NOW), now_ms=NOW) == NOW
    assert clock_at(NOW).weekday == 7  # 2026-11-29 is a Sunday
    with pytest.raises(DataError):
        label_to_ms(label(31, 0, month=2, year=26), now_ms=NOW)


def test_a_clock_takes_its_century_from_the_now_it_is_given() -> None:
    """The 6-byte clock has two digits of year: "now" is the caller's, not the machine's."""
    clock = Clock(second=0, minute=0, hour=8, day=1, month=1, year=99)
    assert clock_to_ms(clock, now_ms=NOW) == local(1999, 1, 1, 8, 0)
    assert clock_to_ms(clock, now_ms=local(2090, 1, 1, 0, 0)) == local(2099, 1, 1, 8, 0)


def test_a_reply_carries_the_repliers_time_in_the_requests_edition() -> None:
    assert reply_label(None, NOW) is None
    assert reply_label(label(1, 2, delay_min=10), NOW) == label(29, 8, 45, delay_min=10)
    assert reply_label(label(1, 2, month=3, year=4), NOW, delay_min=0) == label(29, 8, 45, month=11, year=26)


@given(
    st.integers(utc_ms(datetime(2001, 1, 1)), utc_ms(datetime(2098, 1, 1))).map(lambda ms: ms // 1000 * 1000),
    st.sampled_from([5, 7]),
)
def test_round_trip_of_any_moment(ms: int, tp_len: int) -> None:
    assert label_to_ms(time_label_at(ms, tp_len=tp_len), now_ms=ms) == ms
