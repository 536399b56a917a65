"""The platform's rules, replayed over scenario files (replay/scenarios/) through the agent's store and
rulebook at accelerated time: each anomaly raised once at the right time and cleared once, nothing
else raised, and a month with all of them compared with its truth event by event."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from meterlink.replay.run import Replay, check_rates, compare, rate_differences, replay, subject_of
from meterlink.replay.scenario import builtin

Replayed = Callable[[str], Replay]


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    """Each built-in scenario replayed once per module, in a store of its own."""
    done: dict[str, Replay] = {}

    def get(name: str) -> Replay:
        if name not in done:
            folder = tmp_path_factory.mktemp(name)
            done[name] = asyncio.run(replay(builtin(name), folder))
        return done[name]

    return get


def story(result: Replay, kind: str) -> list[tuple[str, str, str, str]]:
    """The events of ``kind``: (site time, subject, "raised LEVEL" or "cleared", id)."""
    zone = result.scenario.zone
    return [
        (
            datetime.fromtimestamp(e.ts / 1000, zone).strftime("%m-%d %H:%M"),
            subject_of(e),
            "cleared" if e.detail["cleared"] else f"raised {e.detail['level']}",
            e.detail["id"],
        )
        for e in result.events
        if e.kind == kind
    ]


def assert_matches_truth(result: Replay) -> None:
    found = compare(result.scenario, result.events)
    check_rates(result, found)
    assert (found.misses, found.false_alarms, found.rate_misses) == ([], [], []), found


def test_no_data_while_a_meter_is_silent_and_its_report_rate_for_those_days(replayed: Replayed) -> None:
    r = replayed("outage")
    assert story(r, "no_data") == [
        ("11-02 20:06", "well-1", "raised alarm", "no_data/well-1/1793620500300"),  # 19:55:00.3 + 600 s
        ("11-02 22:01", "well-1", "cleared", "no_data/well-1/1793620500300"),  # the 22:00 reading, at the next tick
        ("11-03 12:06", "well-1", "raised alarm", "no_data/well-1/1793678100300"),
        ("11-03 16:01", "well-1", "cleared", "no_data/well-1/1793678100300"),
    ]
    assert story(r, "report_rate_low") == [
        ("11-03 00:05", "well-1", "raised alarm", "report_rate_low/well-1/2026-11-02"),
        ("11-05 00:05", "well-1", "cleared", "report_rate_low/well-1/2026-11-02"),  # low on the 3rd too
    ]
    low = next(e.detail for e in r.events if e.kind == "report_rate_low")
    assert (low["scope"], low["day"], low["rate"]) == ("meter", "2026-11-02", 0.9167)  # 264 of 288 slots
    # From the first slot of the first day: the meter was read from 00:00.
    assert [r.rate("well-1", n) for n in range(3)] == [264 / 288, 240 / 288, 1.0]
    assert_matches_truth(r)


def test_the_gateways_own_report_rate_from_its_confirmed_upload_slots(replayed: Replayed) -> None:
    """Only the day of the uplink outage is low; a first start judges no day before any reading."""
    r = replayed("uplink-outage")
    assert story(r, "report_rate_low") == [
        ("11-04 00:05", "gateway", "raised alarm", "report_rate_low/gateway/2026-11-03"),
        ("11-05 00:05", "gateway", "cleared", "report_rate_low/gateway/2026-11-03"),
    ]
    detail = r.events[0].detail
    assert (detail["scope"], detail["meter"], detail["rate"]) == ("gateway", None, 0.875)  # 84 of 96 slots
    assert_matches_truth(r)


def test_volume_zero_is_a_notice_then_an_alarm_then_cleared_by_water(replayed: Replayed) -> None:
    r = replayed("zero-days")
    ident = "volume_zero/well-1/2026-11-03"  # the first day without water, from midnight
    assert story(r, "volume_zero") == [
        ("11-06 00:05", "well-1", "raised notice", ident),  # 3, 4, 5 November
        ("11-08 00:05", "well-1", "raised alarm", ident),  # 3 to 7 November
        ("11-10 00:05", "well-1", "cleared", ident),  # water again on the 9th
    ]
    assert [e.detail["days"] for e in r.events] == [3, 5, 5]
    assert_matches_truth(r)


def test_volume_large_on_one_abnormal_totalizer_step(replayed: Replayed) -> None:
    r = replayed("large-step")
    [raised, cleared] = story(r, "volume_large")
    assert raised[:3] == ("11-03 10:06", "well-1", "raised alarm")  # the 10:05 poll
    assert cleared[:3] == ("11-03 10:11", "well-1", "cleared")  # the 10:10 poll
    detail = r.events[0].detail
    assert (detail["scope"], detail["limit"]) == ("interval", 6.0)
    assert detail["volume"] == pytest.approx(50 + 40 * 5 / 60, abs=0.002)
    assert_matches_truth(r)


def test_volume_large_on_a_day_above_the_intakes_permitted_maximum(replayed: Replayed) -> None:
    r = replayed("daily-max")
    assert story(r, "volume_large") == [
        ("11-04 00:05", "intake-1/day", "raised alarm", "volume_large/intake-1/day/2026-11-03"),
        ("11-05 00:05", "intake-1/day", "cleared", "volume_large/intake-1/day/2026-11-03"),
    ]
    detail = r.events[0].detail
    assert (detail["scope"], detail["meter"], detail["intake"], detail["limit"]) == ("day", None, "intake-1", 1000.0)
    assert detail["volume"] == pytest.approx(1200.0, abs=0.01)  # 50 m3/h, midnight reading to midnight reading
    assert_matches_truth(r)


def test_volume_negative_on_negative_flow(replayed: Replayed) -> None:
    r = replayed("negative-flow")
    [raised, cleared] = story(r, "volume_negative")
    assert raised[:3] == ("11-03 02:01", "well-1/flow", "raised alarm")
    assert cleared[:3] == ("11-03 04:01", "well-1/flow", "cleared")
    assert (r.events[0].detail["cause"], r.events[0].detail["value"]) == ("negative_flow", -6.5)
    assert_matches_truth(r)


def test_volume_negative_on_a_drop_and_a_reset_but_not_a_wrap_or_a_registered_replacement(
    replayed: Replayed,
) -> None:
    r = replayed("totalizer-drops")
    assert [row[:3] for row in story(r, "volume_negative")] == [
        ("11-03 09:06", "well-1", "raised alarm"),
        ("11-03 09:11", "well-1", "cleared"),
        ("11-04 14:06", "well-1", "raised alarm"),
        ("11-04 14:11", "well-1", "cleared"),
    ]
    drop, reset = r.events[0].detail, r.events[2].detail
    assert drop["cause"] == reset["cause"] == "totalizer_drop"
    assert drop["previous"] - drop["value"] == pytest.approx(120 - 40 * 5 / 60, abs=0.002)
    assert reset["value"] == pytest.approx(40 * 150.3 / 3600, abs=0.001)  # counted since the reset, 150.3 s before
    assert_matches_truth(r)


def test_clock_drift_raised_and_cleared_by_the_clocks_offset(replayed: Replayed) -> None:
    r = replayed("clock-drift")
    assert [row[:3] for row in story(r, "clock_drift")] == [
        ("11-03 10:00", "gateway", "raised alarm"),
        ("11-03 14:00", "gateway", "cleared"),
    ]
    assert r.events[0].detail["offset_s"] == 90.0 and r.events[0].detail["source"] == "kernel"
    assert_matches_truth(r)


def test_permit_and_plan_thresholds_once_per_tier_with_a_projection(replayed: Replayed) -> None:
    r = replayed("permit")
    assert [row[:3] for row in story(r, "permit_threshold")] == [
        ("01-10 00:05", "intake-1/2027/80", "raised notice"),  # 9 days: 8,640 m3 of 10,000
        ("01-11 00:05", "intake-1/2027/90", "raised warning"),
        ("01-12 00:05", "intake-1/2027/100", "raised alarm"),
    ]
    assert [row[:3] for row in story(r, "plan_threshold")] == [
        ("01-12 00:05", "intake-1/2027/80", "raised notice"),
        ("01-13 00:05", "intake-1/2027/90", "raised warning"),
        ("01-15 00:05", "intake-1/2027/100", "raised alarm"),
    ]
    first = r.events[0].detail
    assert first["ytd"] == pytest.approx(8640, abs=0.01) and first["limit"] == 10000.0
    assert first["projected"] == "2027-01-11"  # 10,000 / 960 a day: during the 11th day
    assert r.events[2].detail["projected"] is None  # reached
    assert_matches_truth(r)


def test_thresholds_of_a_year_are_cleared_when_it_ends(replayed: Replayed) -> None:
    r = replayed("new-year")
    assert [row[:3] for row in story(r, "permit_threshold")] == [
        ("12-31 00:05", "intake-1/2026/80", "raised notice"),
        ("01-01 00:05", "intake-1/2026/90", "raised warning"),
        ("01-01 00:05", "intake-1/2026/100", "raised alarm"),
        ("01-01 00:05", "intake-1/2026/80", "cleared"),
        ("01-01 00:05", "intake-1/2026/90", "cleared"),
        ("01-01 00:05", "intake-1/2026/100", "cleared"),
    ]
    assert_matches_truth(r)


def test_permit_expiring_90_and_30_days_ahead_and_expired_after_its_last_day(replayed: Replayed) -> None:
    r = replayed("permit-expiry")
    assert [row[:3] for row in story(r, "permit_expiring")] == [
        ("11-02 00:00", "intake-b/90", "raised notice"),
        ("11-02 00:00", "intake-c/90", "raised notice"),
        ("11-02 00:00", "intake-c/30", "raised warning"),
        ("11-03 00:05", "intake-a/90", "raised notice"),  # 2027-02-01 is 90 days after 3 November
        ("11-03 00:05", "intake-b/30", "raised warning"),  # 2026-12-03 is 30 days after
        ("11-04 00:05", "intake-c/90", "cleared"),
        ("11-04 00:05", "intake-c/30", "cleared"),
    ]
    assert story(r, "permit_expired") == [
        ("11-04 00:05", "intake-c", "raised alarm", "permit_expired/intake-c/2026-11-03"),
    ]
    assert_matches_truth(r)


def test_calibration_due_30_days_ahead_then_overdue_on_the_day(replayed: Replayed) -> None:
    r = replayed("calibration")
    assert story(r, "calibration_due") == [
        ("11-01 00:00", "well-2", "raised notice", "calibration_due/well-2/2026-11-03"),
        ("11-02 00:05", "well-1", "raised notice", "calibration_due/well-1/2026-12-02"),
        ("11-03 00:05", "well-2", "cleared", "calibration_due/well-2/2026-11-03"),
    ]
    assert story(r, "calibration_overdue") == [
        ("11-03 00:05", "well-2", "raised alarm", "calibration_overdue/well-2/2026-11-03"),
    ]
    assert_matches_truth(r)


# -- the month ------------------------------------------------------------------------------------


def test_a_month_of_every_anomaly_matches_its_truth_event_by_event(replayed: Replayed) -> None:
    r = replayed("month-of-anomalies")
    found = compare(r.scenario, r.events)
    assert found.misses == []
    assert found.false_alarms == []
    assert found.expected == found.raised == 48
    kinds = {e.kind for e in r.events}
    assert len(kinds) == 12  # every kind of the rules
    scopes = {(e.kind, e.detail.get("scope")) for e in r.events if "scope" in e.detail}
    assert scopes == {
        ("volume_large", "interval"),
        ("volume_large", "day"),
        ("report_rate_low", "meter"),
        ("report_rate_low", "gateway"),
    }
    causes = {e.detail["cause"] for e in r.events if e.kind == "volume_negative"}
    assert causes == {"totalizer_drop", "negative_flow"}


def test_a_month_of_report_rates_as_computed_equals_the_truth(replayed: Replayed) -> None:
    r = replayed("month-of-anomalies")
    rates = rate_differences(r)
    assert len(rates) == 3 * 30
    assert all(got is not None and got == pytest.approx(true, abs=1e-12) for true, got in rates.values()), rates
    low = {key: true for key, (true, _) in rates.items() if true < 1}
    assert low == {("well-1", 2): 240 / 288, ("well-3", 20): 88 / 96, ("well-3", 21): 84 / 96}
    for want in r.scenario.spec.expect_rate:
        assert r.rate(want.meter, (want.day - r.scenario.days[0]).days) == pytest.approx(want.rate, abs=5e-6)


def test_a_month_of_daily_volumes_runs_from_midnight_reading_to_midnight_reading(replayed: Replayed) -> None:
    """On days whose totalizer only counted water, the day summary's volume is the water that
    passed between the day's 00:00 reading and the next day's; the summaries chain."""
    r = replayed("month-of-anomalies")
    stepped = {("well-1", 5), ("well-2", 14), ("well-2", 26), ("well-3", 23)}  # shown totals stepped
    across = {("well-3", 20), ("well-3", 21)}  # the midnight reading missing
    checked = 0
    for d in r.days:
        n = (d.day - r.scenario.days[0]).days
        if (d.meter, n) in stepped | across:
            continue
        assert d.summary["volume"] == pytest.approx(r.run.flowed[(d.meter, d.day)], abs=0.002), (d.meter, d.day)
        checked += 1
    assert checked == 3 * 30 - len(stepped | across)
    by_meter: dict[str, list[dict[str, object]]] = {}
    for d in sorted(r.days, key=lambda d: (d.meter, d.day)):
        by_meter.setdefault(d.meter, []).append(d.summary)
    for summaries in by_meter.values():
        for before, after in itertools.pairwise(summaries):
            assert before["end_total"] == after["start_total"]
    zero = [d.day.isoformat() for d in r.days if d.meter == "well-2" and d.summary["volume"] == 0]
    assert zero == [f"2026-12-{n}" for n in range(14, 22)]


def test_the_scenarios_shipped_are_all_replayed_here() -> None:
    folder = Path(__file__).resolve().parents[2] / "replay" / "scenarios"
    shipped = {p.stem for p in folder.glob("*.toml")}
    tested = {
        "outage",
        "uplink-outage",
        "zero-days",
        "large-step",
        "daily-max",
        "negative-flow",
        "totalizer-drops",
        "clock-drift",
        "permit",
        "new-year",
        "permit-expiry",
        "calibration",
        "month-of-anomalies",
    }
    assert shipped == tested
