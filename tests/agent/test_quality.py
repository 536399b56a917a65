"""A totalizer that drops is a wrap, a reset or a replacement, never a negative volume; jumps are flagged."""

from __future__ import annotations

from meterlink.agent.quality import QualityCheck, register_max
from meterlink.drivers.base import Flag, Reading
from meterlink.drivers.modbus import profiles

HOUR = 3_600_000


def reading(value: float, hour: float, quantity: str = "volume_total") -> Reading:
    t = int(hour * HOUR)
    return Reading("m1", quantity, value, "m3", t, t)


def test_register_max_of_the_profiles_totalizers() -> None:
    specs = {s.quantity: s for s in profiles.load("tuf2000").value_specs()}
    assert register_max(specs["volume_total"]) == 2**31 - 1  # int32 + fraction
    emf = {s.quantity: s for s in profiles.load("emf_generic").value_specs()}
    assert register_max(emf["volume_total"]) == (2**32 - 1) * 1e9 + (2**32 - 1)
    water = {s.quantity: s for s in profiles.load("xintai_water_meter").value_specs()}
    assert register_max(water["volume_total"]) is None  # a float32 total does not wrap


def test_a_wrap_a_reset_and_a_jump_are_told_apart() -> None:
    check = QualityCheck("m1", profiles.load("tuf2000").value_specs(), max_flow_m3h=100)
    top = 2**31 - 1
    series = [
        reading(top - 500, 0),  # first: nothing to compare with
        reading(top - 450, 1),  # +50 m3 in an hour: normal
        reading(30, 2),  # from the top to small: a wrap
        reading(80, 3),  # normal again
        reading(5, 4),  # a drop from a small value: reset or replacement
        reading(500, 5),  # +495 m3 in an hour with Qmax 100 m3/h: abnormal
        reading(-3, 6),  # a negative totalizer
        reading(12.5, 7, "flow_rate"),  # not a totalizer: never judged
    ]
    out, findings = check.check(series)
    assert [r.flags for r in out] == [0, 0, Flag.WRAPPED, 0, Flag.METER_RESET, Flag.SUSPECT, Flag.SUSPECT, 0]
    kinds = [f.kind for f in findings]
    assert kinds == ["totalizer_wrapped", "totalizer_reset", "abnormal_jump", "negative_total"]
    wrap = findings[0].detail
    # What flowed across the wrap: up to the top, one count from the top to 0, then from 0.
    assert wrap["volume"] == 450 + 1 + 30
    assert [r.value for r in out] == [r.value for r in series]  # values are never changed or dropped


def test_without_max_flow_there_is_no_jump_rule() -> None:
    check = QualityCheck("m1", profiles.load("tuf2000").value_specs())
    out, findings = check.check([reading(100, 0), reading(10**6, 0.01)])
    assert [r.flags for r in out] == [0, 0] and findings == []


def test_a_float_totalizer_that_drops_is_a_reset() -> None:
    check = QualityCheck("m1", profiles.load("xintai_water_meter").value_specs())
    out, findings = check.check([reading(1234.5, 0), reading(0.2, 1)])
    assert out[1].flags == Flag.METER_RESET and findings[0].kind == "totalizer_reset"
