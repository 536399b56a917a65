"""sim/meter_model.py: the daily pattern, the totalizer, the register map and the fault switches."""

from __future__ import annotations

import math

import pytest

from meterlink.drivers.modbus import profiles
from meterlink.protocols.modbus import rtu
from meterlink.sim.meter_model import (
    Fault,
    IllegalDataAddress,
    IllegalDataValue,
    IllegalFunction,
    SimMeter,
    daily_shape,
)

MIDNIGHT_LOCAL = 1_717_171_200.0  # 2024-06-01 00:00 at UTC+8 (2024-05-31 16:00 UTC)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, t: float = MIDNIGHT_LOCAL) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def decoded(meter: SimMeter) -> dict[str, float]:
    """What a client decodes from the meter's registers now."""
    image = meter.image()
    return {spec.quantity: spec.decode(image) for spec in meter.specs}


def test_daily_pattern_has_peaks_and_a_night_minimum() -> None:
    """Morning and evening peaks are several times the night flow."""
    night = daily_shape(3.0)
    assert daily_shape(7.5) > 5 * night
    assert daily_shape(19.0) > 4 * night
    assert 0.05 < night < 0.2
    assert max(daily_shape(h / 10) for h in range(240)) == pytest.approx(1.0, abs=0.1)


def test_flow_follows_site_time_with_a_few_percent_noise() -> None:
    """At 07:30 site time the flow is near the peak; at 03:00 it is low; noise stays within 3 %."""
    meter = SimMeter("emf_generic", 1, clock=FakeClock(), peak_flow=40.0)
    morning = MIDNIGHT_LOCAL + 7.5 * 3600
    assert meter.flow_at(morning) == pytest.approx(40.0 * daily_shape(7.5), rel=0.031)
    assert meter.flow_at(MIDNIGHT_LOCAL + 3 * 3600) < 0.25 * meter.flow_at(morning)
    samples = [meter.flow_at(morning + i) for i in range(0, 600, 7)]
    assert len({round(s, 6) for s in samples}) > 10  # it does move


def test_totalizer_equals_integrated_flow_over_an_accelerated_day() -> None:
    """Over a simulated day at speed 600, delta total equals the trapezoid integral of the shown flow."""
    clock = FakeClock()
    meter = SimMeter("tuf2000", 1, clock=clock, speed=600.0, seed=3)
    start = decoded(meter)
    integral = 0.0
    previous_flow = start["flow_rate"]
    previous_total = start["volume_total"]
    for _ in range(1440):  # 1440 x 60 simulated seconds
        clock.t += 0.1
        now = decoded(meter)
        integral += (previous_flow + now["flow_rate"]) / 2 * 60.0 / 3600.0
        assert now["volume_total"] >= previous_total
        previous_flow, previous_total = now["flow_rate"], now["volume_total"]
    delta = previous_total - start["volume_total"]
    assert meter.now() - MIDNIGHT_LOCAL == pytest.approx(86_400.0)
    assert delta == pytest.approx(integral, rel=0.005)
    # A day of the pattern: roughly peak x 24 h x mean share (about a third).
    assert 0.2 * 120 * 24 < delta < 0.5 * 120 * 24


def test_one_long_jump_integrates_like_many_small_steps() -> None:
    """A meter not polled for hours still integrates the pattern, not a straight line."""
    a_clock, b_clock = FakeClock(), FakeClock()
    a = SimMeter("mfe600h", 1, clock=a_clock, seed=9)
    b = SimMeter("mfe600h", 1, clock=b_clock, seed=9)
    for _ in range(12 * 60):
        a_clock.t += 60.0
        a.update()
    b_clock.t += 12 * 3600.0
    assert b.values()["volume_total"] == pytest.approx(a.values()["volume_total"], abs=0.05)


def test_velocity_follows_flow_and_pipe_size() -> None:
    """velocity = flow / 3600 / (pi d^2 / 4)."""
    meter = SimMeter("emf_generic", 1, clock=FakeClock(MIDNIGHT_LOCAL + 8 * 3600), pipe_diameter=0.1)
    values = meter.values()
    assert values["velocity"] == pytest.approx(values["flow_rate"] / 3600 / (math.pi * 0.01 / 4))


def test_level_is_a_slow_sine_with_two_decimals() -> None:
    """Level stays a few metres, carries 2 decimals via its decimals register, and moves slowly."""
    clock = FakeClock()
    meter = SimMeter("qdy30a_level", 1, clock=clock)
    spec = meter.specs[0]
    assert spec.decimals_address is not None
    levels = []
    for _ in range(48):
        clock.t += 1800
        image = meter.image()
        assert image[spec.decimals_address] == 2
        levels.append(spec.decode(image))
        assert levels[-1] == round(levels[-1], 2) == meter.values()["level"]
    assert 2.0 < min(levels) < 3.0 < max(levels) < 4.5


def test_same_seed_same_values_other_seed_other_values() -> None:
    """Values are repeatable for a seed and differ between seeds and unit ids."""
    values = [SimMeter("tuf2000", u, seed=s, clock=FakeClock()).values() for s, u in ((1, 1), (1, 1), (2, 1), (1, 2))]
    assert values[0] == values[1]
    assert values[0] != values[2] and values[0] != values[3]


@pytest.mark.parametrize("name", profiles.names())
def test_every_profile_encodes_what_values_says(name: str) -> None:
    """For every built-in profile the registers decode to values() within float32 precision."""
    meter = SimMeter(name, 5, clock=FakeClock(MIDNIGHT_LOCAL + 9 * 3600))
    expected = meter.values()
    assert set(expected) == {s.quantity for s in meter.specs}
    for quantity, value in decoded(meter).items():
        assert value == pytest.approx(expected[quantity], rel=2e-6, abs=1e-6), quantity
    for status in ("error_bits", "empty_pipe_alarm", "pipe_status"):
        assert expected.get(status, 0.0) == 0.0


def test_register_reads_gaps_margin_and_illegal_addresses() -> None:
    """Gaps read 0; a read past the map plus its margin is exception 02; wrong function and count refused."""
    meter = SimMeter("tuf2000", 1, clock=FakeClock())  # registers 0..27 and 71, CDAB
    block = meter.registers(3, 0, 28)
    assert block[2:4] == [0, 0]  # REG0003-0004 are not in the map
    assert meter.registers(3, 72, 4) == [0, 0, 0, 0]  # the margin above the last register
    with pytest.raises(IllegalDataAddress):
        meter.registers(3, 72, 5)
    with pytest.raises(IllegalDataAddress):
        meter.registers(3, 1000, 1)
    with pytest.raises(IllegalFunction):
        meter.registers(4, 0, 2)
    with pytest.raises(IllegalDataValue):
        meter.registers(3, 0, 126)
    high = SimMeter("mfe600h", 1, clock=FakeClock())  # block at 0x1010
    with pytest.raises(IllegalDataAddress):
        high.registers(3, 0, 10)


def test_answer_counts_requests_and_builds_exceptions() -> None:
    """answer() counts each request and turns refusals into exception PDUs."""
    meter = SimMeter("tuf2000", 1, clock=FakeClock())
    assert meter.answer(3, 0, 2).pdu == rtu.read_response_pdu(3, meter.registers(3, 0, 2))
    assert meter.answer(3, 500, 2).pdu == rtu.exception_pdu(3, 2)
    assert meter.answer(6, 0, 1).pdu == rtu.exception_pdu(6, 1)
    assert meter.requests == 3


def test_negative_fault_shows_negative_flow_and_totals() -> None:
    """negative: flow, velocity and every total decode negative, also from unsigned registers."""
    for name in ("tuf2000", "emf_generic", "xintai_water_meter"):
        meter = SimMeter(name, 1, clock=FakeClock(MIDNIGHT_LOCAL + 8 * 3600))
        before = meter.values()
        meter.set_fault(Fault.NEGATIVE)
        after = decoded(meter)
        for quantity in ("flow_rate", "velocity", "volume_total", "volume_net", "volume_reverse"):
            if quantity in after:
                assert after[quantity] < 0
                assert after[quantity] == pytest.approx(-before[quantity], rel=2e-6), (name, quantity)


def test_stuck_zero_freezes_the_totalizer_then_it_moves_on() -> None:
    """stuck_zero: flow 0 and the total frozen; switched off, the total integrates again."""
    clock = FakeClock(MIDNIGHT_LOCAL + 8 * 3600)
    meter = SimMeter("tuf2000", 1, clock=clock)
    meter.set_fault(Fault.STUCK_ZERO)
    frozen = meter.values()
    clock.t += 3600
    assert meter.values() == frozen
    assert frozen["flow_rate"] == frozen["velocity"] == 0.0
    meter.set_fault(Fault.STUCK_ZERO, False)
    clock.t += 60
    assert meter.values()["volume_total"] > frozen["volume_total"]


def test_totalizer_reset_happens_once_per_switch_on() -> None:
    """totalizer_reset: totals restart from 0 when switched on, then integrate; again on the next switch-on."""
    clock = FakeClock(MIDNIGHT_LOCAL + 8 * 3600)
    meter = SimMeter("tuf2000", 1, clock=clock)
    assert meter.values()["volume_total"] > 1000
    meter.set_fault(Fault.TOTALIZER_RESET)
    assert meter.values()["volume_total"] == 0.0
    clock.t += 600
    grown = meter.values()["volume_total"]
    assert 0 < grown < 100
    meter.set_fault(Fault.TOTALIZER_RESET)  # already on: no second reset
    assert meter.values()["volume_total"] == grown
    meter.set_fault(Fault.TOTALIZER_RESET, False)
    meter.set_fault(Fault.TOTALIZER_RESET)
    assert meter.values()["volume_total"] == 0.0
    assert meter.faults_applied[Fault.TOTALIZER_RESET] == 2


def test_wire_faults_are_decided_and_counted() -> None:
    """no_answer and exception are counted here; bad_crc/short/stray are flags for the transport."""
    meter = SimMeter("tuf2000", 1, clock=FakeClock(), seed=4)
    meter.set_fault("no_answer")
    assert meter.answer(3, 0, 2).pdu is None
    meter.set_fault(Fault.NO_ANSWER, False)
    meter.set_fault(Fault.EXCEPTION)
    assert meter.answer(3, 0, 2).pdu == rtu.exception_pdu(3, 4)
    meter.clear_faults()
    for fault in (Fault.BAD_CRC, Fault.SHORT_ANSWER, Fault.STRAY_BYTES):
        meter.set_fault(fault)
    answer = meter.answer(3, 0, 2)
    assert answer.bad_crc and answer.short and 1 <= len(answer.stray) <= 4
    assert set(answer.stray) <= {0x00, 0xFF}
    assert meter.faults == {Fault.BAD_CRC, Fault.SHORT_ANSWER, Fault.STRAY_BYTES}
    assert meter.requests == 3
    assert meter.faults_applied[Fault.NO_ANSWER] == meter.faults_applied[Fault.EXCEPTION] == 1


def test_late_reply_sends_an_earlier_reply_of_another_count() -> None:
    """late_reply: the answer is an earlier reply, preferably of another count; none yet means silence."""
    meter = SimMeter("tuf2000", 1, clock=FakeClock())
    meter.set_fault(Fault.LATE_REPLY)
    assert meter.answer(3, 0, 2).pdu is None  # nothing earlier: this reply is the late one
    first = rtu.read_response_pdu(3, meter.registers(3, 0, 2))
    assert meter.answer(3, 4, 2).pdu == first  # only earlier reply, other address
    late = meter.answer(3, 8, 4).pdu
    assert late is not None and late[1] == 4  # 2 registers answering a read of 4
    late = meter.answer(3, 0, 2).pdu
    assert late is not None and late[1] == 8  # the 4-register reply, not a 2-register one
    assert meter.faults_applied[Fault.LATE_REPLY] == 4


def test_bad_arguments() -> None:
    """Unknown profiles and impossible units or sizes are refused."""
    with pytest.raises(KeyError):
        SimMeter("no_such_meter", 1)
    for unit in (0, 248):
        with pytest.raises(ValueError, match="unit"):
            SimMeter("tuf2000", unit)
    with pytest.raises(ValueError):
        SimMeter("tuf2000", 1, speed=0)
    with pytest.raises(ValueError):
        SimMeter("tuf2000", 1, pipe_diameter=-1)
