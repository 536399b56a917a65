"""MeterWatch, poll by poll: each condition is raised once, cleared once, and quiet in between."""

from __future__ import annotations

from meterlink.agent.rules.anomalies import MeterWatch
from meterlink.agent.rules.conditions import Conditions
from meterlink.drivers.base import Reading


def watch(conditions: Conditions) -> MeterWatch:
    return MeterWatch("m1", conditions, max_flow=36.0, one_directional=True, no_data_after_ms=2000, watching_since=0)


def poll(w: MeterWatch, ts: int, total: float, flow: float) -> list[tuple[str, bool]]:
    readings = [Reading("m1", "volume_total", total, "m3", ts, ts), Reading("m1", "flow_rate", flow, "m3/h", ts, ts)]
    return [(e.kind, e.detail["cleared"]) for e in w.on_readings(readings)]


def test_no_data_is_raised_by_silence_and_cleared_by_the_next_reading() -> None:
    w = watch(Conditions())
    assert poll(w, 1000, 10.0, 1.0) == []
    assert [(e.kind, e.detail["cleared"]) for e in w.on_tick(10_000)] == [("no_data", False)]
    assert w.on_tick(11_000) == []
    assert poll(w, 12_000, 10.0, 1.0) == [("no_data", True)]
    assert poll(w, 13_000, 10.0, 1.0) == []


def test_negative_flow_drop_and_large_step_are_raised_and_cleared_once() -> None:
    w = watch(Conditions())
    assert poll(w, 1000, 10.0, 1.0) == []
    assert poll(w, 2000, 10.0, -1.0) == [("volume_negative", False)]
    assert poll(w, 3000, 10.0, -1.0) == []
    assert poll(w, 4000, 10.0, 1.0) == [("volume_negative", True)]
    assert poll(w, 5000, 9.0, 1.0) == [("volume_negative", False)]
    assert poll(w, 6000, 9.0, 1.0) == [("volume_negative", True)]
    assert poll(w, 7000, 19.0, 1.0) == [("volume_large", False)]  # 10 m3 in 1 s at 36 m3/h at most
    assert poll(w, 8000, 19.0, 1.0) == [("volume_large", True)]
    assert poll(w, 9000, 19.0, 1.0) == []
