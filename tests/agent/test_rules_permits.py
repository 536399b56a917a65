"""agent/rules/permits and archive: what the scenarios do not reach: projection dates, return
flows, tier edges, the permit's last valid day, a meter and an intake of one name, and calibration
dates at month ends."""

from __future__ import annotations

from datetime import date

import pytest

from meterlink.agent.rules.archive import calibration_rules, next_calibration
from meterlink.agent.rules.conditions import Conditions
from meterlink.agent.rules.permits import Intake, YearToDate, expiry_rules, new_year, permit_rules, year_to_date


def ytd(volume: float, day: date) -> YearToDate:
    return YearToDate("i", day, volume, (day - date(day.year, 1, 1)).days + 1)


def test_projection_is_the_day_the_limit_is_reached_at_this_years_pace() -> None:
    assert ytd(100.0, date(2026, 1, 10)).projected(1000.0) == date(2026, 4, 10)  # 10 a day: the 100th day
    assert ytd(100.0, date(2026, 1, 10)).projected(1001.0) == date(2026, 4, 11)  # a little more: one day later
    assert ytd(3000.0, date(2026, 2, 28)).projected(10_000.0) == date(2026, 7, 16)  # ceil(10,000 x 59 / 3,000)


def test_projection_of_an_exact_day_is_not_pushed_to_the_next_by_rounding() -> None:
    # 0.7 m3 in 7 days is 0.1 a day: 10 m3 on the 100th day; 10 / (0.7 / 7) is 100.00000000000001.
    assert ytd(0.7, date(2026, 1, 7)).projected(10.0) == date(2026, 4, 10)


def test_no_projection_when_reached_without_pace_or_not_this_year() -> None:
    assert ytd(1000.0, date(2026, 6, 1)).projected(1000.0) is None  # reached
    assert ytd(0.0, date(2026, 6, 1)).projected(1000.0) is None  # no pace
    assert ytd(10.0, date(2026, 6, 1)).projected(1000.0) is None  # 2028 at this pace
    assert ytd(10.0, date(2024, 12, 31)).projected(10.01) is None  # not in 2024's last day
    assert ytd(366.0, date(2024, 12, 30)).projected(367.0) == date(2024, 12, 31)  # a leap year's 366th day
    assert ytd(10.0, date(2026, 6, 1)).share(None) is None and ytd(10.0, date(2026, 6, 1)).share(40.0) == 0.25


def test_year_to_date_sums_signed_meters_from_1_january_only() -> None:
    intake = Intake("i", meters={"well": 1.0, "return": -1.0})
    daily: dict[date, dict[str, float | None]] = {
        date(2025, 12, 31): {"well": 500.0},  # last year
        date(2026, 1, 1): {"well": 100.0, "return": 10.0},
        date(2026, 1, 2): {"well": 100.0, "return": None},  # the return meter's day unknown: adds nothing
        date(2026, 1, 3): {"other": 900.0},  # none of its meters
        date(2026, 1, 4): {"well": 50.0},  # after the day asked
    }
    total = year_to_date(intake, date(2026, 1, 3), daily)
    assert (total.volume, total.days) == (190.0, 3)
    assert intake.day_volume({"other": 1.0}) is None and intake.day_volume({"return": 4.0}) == -4.0


def test_each_tier_is_raised_once_at_or_above_its_share() -> None:
    c = Conditions()
    intake = Intake("i", permit="P-1", annual_permit=1000.0)
    assert permit_rules(c, intake, ytd(799.99, date(2026, 3, 1)), None) == []
    [notice] = permit_rules(c, intake, ytd(800.0, date(2026, 3, 2)), None)  # exactly 80 %
    assert notice.detail["id"] == "permit_threshold/i/2026/80/2026-03-02" and notice.detail["level"] == "notice"
    raised = permit_rules(c, intake, ytd(1000.0, date(2026, 3, 3)), None)  # 90 and 100 % on one day
    assert [(e.detail["percent"], e.detail["level"]) for e in raised] == [(90, "warning"), (100, "alarm")]
    assert permit_rules(c, intake, ytd(1200.0, date(2026, 3, 4)), None) == []  # held for the rest of the year
    cleared = new_year(c, intake, 2027)
    assert sorted(e.detail["percent"] for e in cleared) == [80, 90, 100]
    assert all(e.detail["cleared"] for e in cleared) and new_year(c, intake, 2027) == []


def test_an_intake_and_a_meter_of_one_name_keep_their_volume_large_apart() -> None:
    """A technician may well name the intake after its only well."""
    c = Conditions()
    meter_event = c.update("volume_large", "well-1", True, started="1", detail={"scope": "interval"})
    assert meter_event is not None
    intake = Intake("well-1", daily_max=100.0)
    [day_event] = permit_rules(c, intake, ytd(150.0, date(2026, 3, 1)), 150.0)
    assert day_event.detail["id"] == "volume_large/well-1/day/2026-03-01"
    assert c.is_open("volume_large", "well-1")  # the meter's is still open
    [cleared] = permit_rules(c, intake, ytd(200.0, date(2026, 3, 2)), 50.0)
    assert cleared.detail["cleared"] and cleared.detail["scope"] == "day"
    assert c.is_open("volume_large", "well-1")


def test_a_permit_is_valid_through_its_expiry_date() -> None:
    expires = date(2026, 12, 31)
    intake = Intake("i", permit="P-1", expires=expires)
    c = Conditions()

    def on(day: date) -> list[tuple[str, bool]]:
        return [(e.detail["id"], e.detail["cleared"]) for e in expiry_rules(c, intake, day)]

    assert on(date(2026, 10, 1)) == []  # 91 days ahead
    assert on(date(2026, 10, 2)) == [("permit_expiring/i/90/2026-12-31", False)]  # 90 days ahead
    assert on(date(2026, 12, 1)) == [("permit_expiring/i/30/2026-12-31", False)]  # 30 days ahead
    assert on(date(2026, 12, 31)) == []  # its last valid day: still expiring, not expired
    assert on(date(2027, 1, 1)) == [
        ("permit_expiring/i/90/2026-12-31", True),
        ("permit_expiring/i/30/2026-12-31", True),
        ("permit_expired/i/2026-12-31", False),
    ]
    renewed = Intake("i", permit="P-1", expires=date(2031, 12, 31))
    assert [e.detail["cleared"] for e in expiry_rules(c, renewed, date(2027, 1, 2))] == [True]


def test_permit_rules_judge_expiry_for_the_day_after_the_day_summed() -> None:
    """Run after a day ended, the rules warn on the morning of the day that is 30 days ahead."""
    c = Conditions()
    intake = Intake("i", expires=date(2026, 12, 31))
    assert [e.kind for e in permit_rules(c, intake, ytd(0.0, date(2026, 10, 1)), None)] == ["permit_expiring"]


@pytest.mark.parametrize(
    ("last", "months", "due"),
    [
        (date(2025, 11, 3), 12, date(2026, 11, 3)),
        (date(2026, 1, 31), 1, date(2026, 2, 28)),  # no 31 February
        (date(2024, 1, 31), 1, date(2024, 2, 29)),  # a leap year's
        (date(2026, 8, 31), 1, date(2026, 9, 30)),
        (date(2026, 3, 30), 11, date(2027, 2, 28)),
        (date(2026, 12, 31), 2, date(2027, 2, 28)),  # over the year's end
        (date(2023, 2, 28), 12, date(2024, 2, 28)),  # a 28th stays the 28th
        (date(2026, 5, 15), 240, date(2046, 5, 15)),
    ],
)
def test_next_calibration_keeps_the_day_or_takes_the_months_last(last: date, months: int, due: date) -> None:
    assert next_calibration(last, months) == due


def test_calibration_due_30_days_before_overdue_from_the_day_cleared_by_a_new_date() -> None:
    c = Conditions()

    def on(day: date, last: date | None = date(2025, 12, 2)) -> list[tuple[str, bool]]:
        return [(e.detail["id"], e.detail["cleared"]) for e in calibration_rules(c, "m", last, 12, day)]

    assert on(date(2026, 11, 1)) == []  # 31 days ahead
    assert on(date(2026, 11, 2)) == [("calibration_due/m/2026-12-02", False)]
    assert on(date(2026, 12, 1)) == []
    assert on(date(2026, 12, 2)) == [
        ("calibration_due/m/2026-12-02", True),
        ("calibration_overdue/m/2026-12-02", False),
    ]
    assert on(date(2026, 12, 9), last=date(2026, 12, 8)) == [("calibration_overdue/m/2026-12-02", True)]
    assert calibration_rules(Conditions(), "m", None, 12, date(2026, 1, 1)) == []  # never calibrated: nothing due
    assert calibration_rules(Conditions(), "m", date(2020, 1, 1), None, date(2026, 1, 1)) == []  # no period
