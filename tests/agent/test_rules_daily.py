"""agent/rules/daily: one meter's day, from readings to the figures a platform reconciles by."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from meterlink.agent.rules.calendar import day_range, parse_period
from meterlink.agent.rules.daily import expected_slots, summarize_day
from meterlink.drivers.base import Flag, Reading

ZONE = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 3)
START, END = day_range(DAY, ZONE)
MIN = 60_000


def total(minute: int, value: float, flags: int = 0, meter: str = "m1") -> Reading:
    ts = START + minute * MIN
    return Reading(meter, "volume_total", value, "m3", ts + 400, ts, flags)


def flow(minute: int, value: float) -> Reading:
    ts = START + minute * MIN
    return Reading("m1", "flow_rate", value, "m3/h", ts + 400, ts)


def test_the_local_day_is_midnight_to_midnight_in_the_site_zone() -> None:
    assert datetime.fromtimestamp(START / 1000, UTC) == datetime(2026, 11, 2, 16, tzinfo=UTC)  # 00:00 +08:00
    assert END - START == 86_400_000
    dst = day_range(date(2026, 3, 29), ZoneInfo("Europe/Berlin"))  # a 23-hour day
    assert dst[1] - dst[0] == 23 * 3_600_000


def test_periods() -> None:
    q = parse_period("2026Q4")
    assert (q.first, q.last, len(q.days())) == (date(2026, 10, 1), date(2026, 12, 31), 92)
    assert parse_period("2024-02").last == date(2024, 2, 29)
    with pytest.raises(ValueError, match=r"'2026-13': month must be in 1\.\.12"):
        parse_period("2026-13")
    with pytest.raises(ValueError, match="not a day"):
        parse_period("last week")
    with pytest.raises(ValueError):
        parse_period("2026-02-30")


def test_a_full_day_of_minute_readings() -> None:
    """From this midnight's reading to the next one's (minute 1440), as a platform takes a day."""
    readings = [total(m, 1000 + m * 0.5) for m in range(1441)] + [flow(m, 30.0 + (m % 3)) for m in range(1440)]
    s = summarize_day("m1", DAY, (START, END), readings, interval_ms=MIN, baseline=total(-1, 999.5))
    assert (s.start_total, s.end_total) == (1000.0, 1000 + 1440 * 0.5)
    assert s.volume == pytest.approx(720.0)  # 1440 steps of 0.5 m3
    assert (s.flow_min, s.flow_max) == (30.0, 32.0) and s.flow_mean == pytest.approx(31.0)
    assert (s.slots_expected, s.slots_filled, s.report_rate) == (1440, 1440, 1.0)
    assert s.flags == () and s.negative_steps == 0


def test_a_gap_is_bridged_by_the_totalizer_and_costs_only_report_rate() -> None:
    readings = [total(m, 1000 + m) for m in range(1441) if not 600 <= m < 744]  # 144 slots missing
    s = summarize_day("m1", DAY, (START, END), readings, interval_ms=MIN, baseline=total(-1, 999))
    assert s.volume == pytest.approx(1440)
    assert s.slots_filled == 1296 and s.report_rate == pytest.approx(0.9)


def test_wrap_reset_and_registered_replacement() -> None:
    wrap_at = 99_999.0
    readings = [
        total(0, 99_990.0),
        total(1, 5.0, Flag.WRAPPED),  # 9.999 + 5 through the wrap
        total(2, 7.0),
        total(3, 1.0, Flag.METER_RESET),  # an unexplained drop: no volume, counted
        total(4, 4.0),
        total(5, 500.0, Flag.REPLACEMENT | Flag.MANUAL),  # a new meter registered at 500
        total(6, 502.0),
    ]
    s = summarize_day("m1", DAY, (START, END), readings, interval_ms=MIN, wrap_at=wrap_at)
    assert s.volume == pytest.approx(9.0 + 5.0 + 2.0 + 3.0 + 2.0)
    assert s.negative_steps == 1
    assert s.flags == ("manual", "meter_reset", "replacement", "wrapped")


def test_an_abnormal_step_is_counted_not_clipped() -> None:
    readings = [total(0, 100.0), total(1, 5000.0, Flag.SUSPECT), total(2, 5001.0)]
    s = summarize_day("m1", DAY, (START, END), readings, interval_ms=MIN)
    assert s.volume == 4901.0 and "suspect" in s.flags


def test_slots_before_the_meter_was_configured_are_not_expected() -> None:
    since = START + 12 * 3_600_000  # first polled at noon
    readings = [total(m, float(m)) for m in range(720, 1440)]
    s = summarize_day("m1", DAY, (START, END), readings, interval_ms=MIN, since=since)
    assert (s.slots_expected, s.slots_filled) == (720, 720)
    assert expected_slots(START, END, 15 * MIN) == 96 and expected_slots(START, END, 3_600_000, END) == 0


def test_self_reports_fill_the_slot_their_time_falls_in() -> None:
    """A meter's own reports carry their time as slot, not a boundary: bucketed by time."""
    readings = [
        Reading("m1", "volume_total", float(i), "m3", START + i * 3_600_000 + 17_000, START + i * 3_600_000 + 17_000)
        for i in range(24)
    ]
    s = summarize_day("m1", DAY, (START, END), readings, interval_ms=3_600_000)
    assert (s.slots_expected, s.slots_filled) == (24, 24)


def test_a_meter_without_a_totalizer_has_no_volume_and_a_day_without_readings_none_at_all() -> None:
    level = [Reading("lvl", "level", 3.2, "m", START + m * MIN, START + m * MIN) for m in range(0, 1440, 5)]
    s = summarize_day("lvl", DAY, (START, END), level, interval_ms=5 * MIN)
    assert s.volume is None and s.report_rate == 1.0
    empty = summarize_day("m1", DAY, (START, END), [], interval_ms=MIN, baseline=total(-1, 42.0))
    assert (empty.volume, empty.start_total, empty.end_total, empty.report_rate) == (None, 42.0, 42.0, 0.0)
    assert empty.to_dict()["report_rate"] == 0.0 and empty.to_dict()["day"] == "2026-11-03"
