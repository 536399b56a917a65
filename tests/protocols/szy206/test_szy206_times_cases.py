"""Time labels in site time (UTC+8) <-> UTC milliseconds, as the SZY206 driver reads them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meterlink.protocols.szy206 import TimeLabel
from meterlink.protocols.szy206.errors import DataError
from meterlink.protocols.szy206.times import label_to_ms, time_label_at


def label_to_utc_ms(tp: TimeLabel, now: int, *, utc_offset_h: float = 8.0, ahead_s: float = 600) -> int | None:
    try:
        return label_to_ms(tp, now_ms=now, utc_offset_h=utc_offset_h, ahead_ms=int(ahead_s * 1000))
    except DataError:
        return None


def label_at(ms: int, size: int, *, delay_min: int = 0) -> TimeLabel | None:
    if size not in (0, 5, 7):
        raise ValueError(f"a time label is 0, 5 or 7 bytes, got {size}")
    return time_label_at(ms, tp_len=size, delay_min=delay_min) if size else None


def ms(text: str) -> int:
    """'2024-06-01 00:00:00' (UTC) -> ms since the epoch."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * 1000


def tp5(day: int, hour: int, minute: int = 0, second: int = 0) -> TimeLabel:
    return TimeLabel(second=second, minute=minute, hour=hour, day=day, delay_min=10)


@pytest.mark.parametrize(
    ("now", "label", "expected"),
    [
        # Site time is UTC+8: 08:45 on the 9th at the site is 00:45 UTC.
        ("2024-06-09 01:00:00", tp5(9, 8, 45), "2024-06-09 00:45:00"),
        # Day 10 has not come yet this month: the label is from last month.
        ("2024-06-09 01:00:00", tp5(10, 8, 45), "2024-05-10 00:45:00"),
        # Site midnight crossed: 07:59 UTC on 31 May is 15:59 on 31 May at the site.
        ("2024-06-01 00:30:00", tp5(31, 15, 59), "2024-05-31 07:59:00"),
        # Day 31 does not exist in April: look one month further back.
        ("2024-05-01 12:00:00", tp5(31, 12), "2024-03-31 04:00:00"),
        # Day 30 from early March: February has none, January does.
        ("2024-03-05 00:00:00", tp5(30, 8), "2024-01-30 00:00:00"),
        # A meter clock running 2 minutes ahead stays in this month, not the last.
        ("2024-06-09 00:45:00", tp5(9, 8, 47), "2024-06-09 00:47:00"),
        # ... even across the site's month end (our 23:59:30 on 30 June, its 00:01 on 1 July).
        ("2024-06-30 15:59:30", tp5(1, 0, 1), "2024-06-30 16:01:00"),
        # New year at the site while UTC is still in the old one.
        ("2024-12-31 16:30:00", tp5(1, 0, 15), "2024-12-31 16:15:00"),
    ],
)
def test_five_byte_labels_take_the_latest_matching_moment(now: str, label: TimeLabel, expected: str) -> None:
    assert label_to_utc_ms(label, ms(now)) == ms(expected)


def test_a_label_far_ahead_reads_as_last_month() -> None:
    """Beyond the allowed skew a label is in the past: the previous month."""
    label = tp5(9, 9, 0)  # 01:00 UTC, one hour after "now"
    assert label_to_utc_ms(label, ms("2024-06-09 00:00:00")) == ms("2024-05-09 01:00:00")
    assert label_to_utc_ms(label, ms("2024-06-09 00:00:00"), ahead_s=7200) == ms("2024-06-09 01:00:00")


def test_seven_byte_labels_carry_their_date() -> None:
    label = TimeLabel(second=5, minute=4, hour=3, day=2, month=1, year=24, delay_min=0)
    assert label_to_utc_ms(label, ms("2026-01-01 00:00:00")) == ms("2024-01-01 19:04:05")
    # The century nearest to now: '99' read in 2024 is 1999.
    old = TimeLabel(second=0, minute=0, hour=8, day=1, month=1, year=99)
    assert label_to_utc_ms(old, ms("2024-06-01 00:00:00")) == ms("1999-01-01 00:00:00")
    # 30 February does not exist.
    bad = TimeLabel(second=0, minute=0, hour=0, day=30, month=2, year=24)
    assert label_to_utc_ms(bad, ms("2024-06-01 00:00:00")) is None


def test_other_site_zones() -> None:
    assert label_to_utc_ms(tp5(9, 8, 45), ms("2024-06-09 12:00:00"), utc_offset_h=0) == ms("2024-06-09 08:45:00")


def test_labels_of_a_moment_round_trip() -> None:
    moment = ms("2024-02-29 23:59:58")
    five = label_at(moment, 5, delay_min=10)
    seven = label_at(moment + 999, 7)
    assert five == TimeLabel(second=58, minute=59, hour=7, day=1, delay_min=10)
    assert seven == TimeLabel(second=58, minute=59, hour=7, day=1, month=3, year=24)
    assert label_to_utc_ms(five, moment + 5_000) == moment
    assert label_to_utc_ms(seven, moment) == moment
    assert label_at(moment, 0) is None
    with pytest.raises(ValueError, match="0, 5 or 7"):
        label_at(moment, 6)
