"""agent/rules/daily: a day's volume runs from the reading of its midnight slot to the next one's,
as a platform takes it from the totalizer at 00:00 and at the next 00:00."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest

from meterlink.agent.rules.calendar import day_range
from meterlink.agent.rules.daily import DaySummary, summarize_day
from meterlink.drivers.base import Flag, Reading

ZONE = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 3)
START, END = day_range(DAY, ZONE)
HOUR = 3_600_000


def total(hour: float, value: float, flags: int = 0) -> Reading:
    """The totalizer in the slot ``hour`` hours after the day's midnight, read 300 ms into it."""
    slot = START + int(hour * HOUR)
    return Reading("m1", "volume_total", value, "m3", slot + 300, slot, flags)


def hourly(readings: list[Reading], baseline: Reading | None = None, wrap_at: float | None = None) -> DaySummary:
    return summarize_day("m1", DAY, (START, END), readings, interval_ms=HOUR, baseline=baseline, wrap_at=wrap_at)


def test_a_pump_that_stopped_at_midnight_gives_a_day_of_zero() -> None:
    """The step from 23:00 to 00:00 belongs to the day before; the day's own totalizer never moved."""
    readings = [total(h, 500.0) for h in range(25)]  # 00:00 to the next 00:00, all 500
    s = hourly(readings, baseline=total(-1, 460.0))
    assert (s.start_total, s.end_total, s.volume) == (500.0, 500.0, 0.0)


def test_the_volume_of_the_midnight_step_goes_to_the_day_it_closes() -> None:
    before = summarize_day(
        "m1",
        date(2026, 11, 2),
        day_range(date(2026, 11, 2), ZONE),
        [total(-1, 460.0), total(0, 500.0)],
        interval_ms=HOUR,
    )
    assert (before.start_total, before.end_total, before.volume) == (460.0, 500.0, 40.0)
    assert before.slots_filled == 1  # the 23:00 slot; the 00:00 reading fills the 3rd's first slot
    s = hourly([total(0, 500.0), total(1, 540.0)], baseline=total(-1, 460.0))
    assert (s.start_total, s.volume, s.slots_filled) == (500.0, 40.0, 2)


def test_without_its_midnight_reading_a_day_opens_on_the_last_reading_before_it() -> None:
    """A meter silent over midnight: the step across the gap is the volume of the day it closes in."""
    s = hourly([total(3, 620.0), total(24, 1460.0)], baseline=total(-2, 380.0))
    assert (s.start_total, s.end_total, s.volume) == (380.0, 1460.0, 1080.0)
    open_end = hourly([total(0, 500.0), total(20, 1300.0)])  # and silent after 20:00: no closing reading
    assert (open_end.end_total, open_end.volume) == (1300.0, 800.0)


def test_a_day_with_only_its_opening_reading_has_no_volume_of_its_own() -> None:
    s = hourly([total(0, 500.0)], baseline=total(-1, 460.0))
    assert (s.start_total, s.end_total, s.volume, s.slots_filled) == (500.0, 500.0, None, 1)


def test_a_wrap_on_the_closing_reading_is_counted_and_flagged_on_the_day_it_closes() -> None:
    readings = [total(0, 99_000.0), total(12, 99_900.0), total(24, 40.0, Flag.WRAPPED)]
    s = hourly(readings, wrap_at=100_000.0)
    assert s.volume == pytest.approx(1040.0) and s.flags == ("wrapped",)
    after = summarize_day("m1", date(2026, 11, 4), day_range(date(2026, 11, 4), ZONE), [readings[-1]], interval_ms=HOUR)
    assert after.flags == ()  # the next day's own steps had no wrap


def test_an_older_baseline_gives_way_to_the_midnight_reading() -> None:
    s = hourly([total(0, 500.0), total(24, 560.0)], baseline=total(-5, 100.0))
    assert (s.start_total, s.volume, s.negative_steps) == (500.0, 60.0, 0)
