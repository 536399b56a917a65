"""LatestValues: the newest reading per (meter, quantity), and what was polled for a report slot."""

from __future__ import annotations

from meterlink.agent.latest import HISTORY, LatestValues
from meterlink.drivers.base import Reading


def reading(value: float, slot: int, meter: str = "m1", quantity: str = "flow_rate") -> Reading:
    return Reading(meter, quantity, value, "m3/h", slot + 120, slot)


def test_the_newest_reading_is_kept_per_meter_and_quantity() -> None:
    latest = LatestValues()
    latest.observe([reading(1.0, 1000), reading(5.0, 1000, quantity="volume_total"), reading(7.0, 1000, meter="m2")])
    latest.observe([reading(2.0, 2000)])
    newest = latest.get("m1", "flow_rate")
    assert newest is not None and (newest.value, newest.ts, newest.slot) == (2.0, 2120, 2000)
    assert latest.get("m1", "volume_total") == reading(5.0, 1000, quantity="volume_total")
    assert latest.get("m2", "flow_rate") == reading(7.0, 1000, meter="m2")
    assert latest.get("m3", "flow_rate") is None


def test_a_late_poll_never_replaces_a_newer_value() -> None:
    latest = LatestValues()
    latest.observe([reading(2.0, 2000)])
    latest.observe([reading(1.0, 1000)])
    assert latest.get("m1", "flow_rate") == reading(2.0, 2000)
    assert latest.at("m1", "flow_rate", 1000, 1000) is None, "the late value was not kept either"


def test_a_report_slot_gets_what_was_polled_for_it_within_the_window() -> None:
    latest = LatestValues()
    latest.observe([reading(float(n), n * 1000) for n in range(1, 5)])
    assert latest.at("m1", "flow_rate", 3000, 1000) == reading(3.0, 3000)
    assert latest.at("m1", "flow_rate", 3500, 1000) == reading(3.0, 3000)
    assert latest.at("m1", "flow_rate", 9000, 1000) is None, "a stale value is not a slot's value"
    assert latest.at("m1", "flow_rate", 500, 1000) is None


def test_history_is_bounded() -> None:
    latest = LatestValues()
    latest.observe([reading(float(n), n * 1000) for n in range(1, HISTORY + 6)])
    assert latest.at("m1", "flow_rate", 5000, 1000) is None
    assert latest.at("m1", "flow_rate", 6000, 1000) == reading(6.0, 6000)
