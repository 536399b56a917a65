"""sim/szy206_meter.py: values, totalizer, answers, reports, confirms and wire faults of one meter."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from support.loop import START, FakeClock
from support.szy206_frames import A13

from meterlink.protocols.szy206 import (
    AFN,
    INVALID,
    NEED_DATA,
    ChecksumError,
    Direction,
    Frame,
    Reassembler,
    TimeLabel,
    build_confirm,
    build_realtime_query,
    decode,
    encode,
    parse_flow_report,
)
from meterlink.sim.szy206_meter import Fault, SimSzy206Meter


def meter(clock: FakeClock | None = None, **kwargs: Any) -> SimSzy206Meter:
    return SimSzy206Meter(A13, clock=clock or FakeClock(), **kwargs)


def query(fcb: int = 3) -> Frame:
    return build_realtime_query(A13, fcb=fcb)


def frames(pieces: list[tuple[float, bytes]]) -> list[Frame]:
    rx = Reassembler()
    for _, chunk in pieces:
        rx.feed(chunk)
    out = []
    for _ in range(3):  # a fake header holds the frame back until the receiver gives up on it
        while (frame := rx.next_frame()) is not NEED_DATA:
            out.append(frame)
        if out:
            break
        rx.resync()
    return out


def test_values_are_repeatable_and_follow_the_day() -> None:
    """Same seed, same values; the morning peak (07:30 at the site) is well above the night."""
    a, b = meter(pairs=3, seed=4), meter(pairs=3, seed=4)
    assert a.values() == b.values()
    assert meter(seed=5).values() != a.values()[:1]
    night = meter(FakeClock(START - 5 * 3600), seed=4).values()[0].flow  # 03:00 at the site
    peak = meter(FakeClock(START - 1800), seed=4).values()[0].flow  # 07:30 at the site
    assert isinstance(night, float) and isinstance(peak, float)
    assert peak > 3 * night > 0
    for flow, volume in a.values():
        assert isinstance(flow, float) and round(flow, 3) == flow
        assert isinstance(volume, int) and volume >= 10_000


def test_totalizer_integrates_the_flow() -> None:
    """Volume after an hour = the flow's mean over that hour, in whole m3."""
    clock = FakeClock()
    sim = meter(clock)
    before = sim.values()[0].volume
    samples = []
    for _ in range(60):
        samples.append(sim.values()[0].flow)
        clock.t += 60
    samples.append(sim.values()[0].flow)
    after = sim.values()[0].volume
    assert isinstance(before, int) and isinstance(after, int)
    mean = sum(samples) / len(samples)  # type: ignore[arg-type]
    assert after - before == pytest.approx(mean, abs=1.5)


def test_speed_runs_simulated_time_faster() -> None:
    clock = FakeClock()
    sim = meter(clock, speed=60.0)
    clock.t += 60
    assert sim.now() == START + 3600


def test_value_faults() -> None:
    """negative flips the flow and stops the forward total; stuck_zero freezes; reset restarts at 0."""
    clock = FakeClock()
    sim = meter(clock)
    flow, volume = sim.values()[0]
    assert isinstance(flow, float) and isinstance(volume, int)
    sim.set_fault(Fault.NEGATIVE)
    clock.t += 3600
    negative = sim.values()[0]
    assert isinstance(negative.flow, float) and negative.flow < 0 and negative.volume == volume
    sim.set_fault(Fault.NEGATIVE, False)
    sim.set_fault(Fault.STUCK_ZERO)
    clock.t += 3600
    assert sim.values()[0] == (0.0, volume)
    sim.clear_faults()
    sim.set_fault(Fault.TOTALIZER_RESET)
    assert sim.values()[0].volume == 0
    sim.set_fault(Fault.TOTALIZER_RESET)  # already on: no second reset
    clock.t += 3600
    volume = sim.values()[0].volume
    assert isinstance(volume, int) and volume > 0
    sim.set_fault(Fault.INVALID)
    assert sim.values()[0] == (INVALID, INVALID)
    sim.clear_faults()
    sim.set_fault(Fault.NO_FLOW)
    assert sim.values()[0].flow is None
    assert sim.faults == {Fault.NO_FLOW}
    with pytest.raises(ValueError):
        sim.set_fault("melting")


@pytest.mark.parametrize("tp_len", [0, 5, 7])
def test_answer_to_b0h_echoes_the_fcb_and_carries_the_tp(tp_len: int) -> None:
    sim = meter(pairs=2, tp_len=tp_len)
    answer = sim.answer(query(fcb=1))
    assert answer is not None
    assert (answer.up, answer.afn, answer.fcb, answer.function) == (True, AFN.QUERY_REALTIME, 1, 3)
    report = parse_flow_report(decode(encode(answer)))
    assert report.meters == sim.last_values == sim.values()
    assert report.status & 0b11 == 2  # work mode: query/answer (no report interval)
    if tp_len:
        assert report.tp is not None and report.tp.size == tp_len
        assert (report.tp.day, report.tp.hour, report.tp.minute, report.tp.delay_min) == (1, 8, 0, 10)
    else:
        assert report.tp is None
    assert sim.queries_answered == 1 and list(sim.frames_seen) == [query(fcb=1)]


def test_no_answer_and_other_afns_are_silent() -> None:
    sim = meter()
    sim.set_fault(Fault.NO_ANSWER)
    assert sim.answer(query()) is None
    assert (sim.queries_ignored, sim.queries_answered) == (1, 0)
    sim.clear_faults()
    clock_query = Frame(direction=Direction.DOWN, address=A13, afn=AFN.READ_CLOCK)
    assert sim.answer(clock_query) is None and sim.unsupported == 1


def test_a_report_is_resent_with_fcb_counting_down_then_fails() -> None:
    sim = meter(report_interval=60.0)
    first = sim.start_report()
    assert (first.afn, first.fcb) == (AFN.REPORT, 3)
    assert parse_flow_report(first).status & 0b11 == 0  # work mode: self-report and query
    resent = [sim.resend(), sim.resend(), sim.resend()]
    assert [f.fcb for f in resent if f is not None] == [2, 1, 0]
    assert all(dataclasses.replace(f, fcb=3) == first for f in resent if f is not None)  # same content
    assert sim.resend() is None and sim.report_in_flight is None
    assert (sim.reports_sent, sim.report_resends, sim.reports_failed) == (1, 3, 1)


@pytest.mark.parametrize(
    ("work_mode", "tp", "function", "form"),
    [
        (0, TimeLabel(second=1, minute=2, hour=3, day=4, delay_min=10), None, "data=00 tp=5 type=3"),
        (1, None, None, "data=01 tp=0 type=3"),
        (None, None, 0, "data=- tp=0 type=0"),
        (0, TimeLabel(second=1, minute=2, hour=3, day=4, month=5, year=24), None, "data=00 tp=7 type=3"),
    ],
)
def test_every_confirm_form_is_accepted(
    work_mode: int | None, tp: TimeLabel | None, function: int | None, form: str
) -> None:
    sim = meter()
    report = sim.start_report()
    confirm = build_confirm(report, work_mode=work_mode, tp=tp, function=function)
    assert sim.accept_confirm(decode(encode(confirm)))
    assert sim.confirms_received == 1 and sim.confirm_forms == {form: 1}
    assert sim.last_confirm is not None and sim.last_confirm.work_mode == work_mode
    assert not sim.accept_confirm(confirm)  # nothing in flight any more
    assert sim.confirms_unexpected == 1


def test_ignore_confirm_and_no_confirm_needed() -> None:
    sim = meter()
    sim.set_fault(Fault.IGNORE_CONFIRM)
    report = sim.start_report()
    assert not sim.accept_confirm(build_confirm(report))
    assert sim.confirms_ignored == 1 and sim.report_in_flight is report
    sim.clear_faults()
    sim.set_fault(Fault.NO_CONFIRM_NEEDED)
    assert not sim.needs_confirm


def test_wire_faults() -> None:
    """bad_crc corrupts CS only; split_frames cuts 2-4 pieces; garbage puts noise first, often a fake header."""
    sim = meter()
    answer = sim.answer(query())
    assert answer is not None
    raw = encode(answer)
    assert sim.wire(answer) == [(0.0, raw)]

    sim.set_fault(Fault.BAD_CRC)
    ((_, corrupted),) = sim.wire(answer)
    assert corrupted[:-2] == raw[:-2] and corrupted[-1] == 0x16 and corrupted[-2] != raw[-2]
    with pytest.raises(ChecksumError):
        decode(corrupted)
    sim.clear_faults()

    sim.set_fault(Fault.SPLIT_FRAMES)
    for _ in range(10):
        pieces = sim.wire(answer)
        assert 2 <= len(pieces) <= 4 and b"".join(p for _, p in pieces) == raw
        assert pieces[0][0] == 0 and all(0 < pause < 0.05 for pause, _ in pieces[1:])
    sim.set_fault(Fault.GARBAGE)
    fake_headers = 0
    for _ in range(6):
        pieces = sim.wire(answer)
        noise = pieces[0][1]
        fake_headers += noise[0] == 0x68 and noise[2] == 0x68
        assert b"".join(p for _, p in pieces[1:]) == raw
        assert frames(pieces) == [decode(raw)]
    assert fake_headers == 3
    assert sim.faults_applied[Fault.GARBAGE] == 6 and sim.faults_applied[Fault.SPLIT_FRAMES] == 16


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pairs": 0}, "pairs"),
        ({"pairs": 24}, "pairs"),
        ({"tp_len": 6}, "tp_len"),
        ({"speed": 0}, "speed"),
        ({"report_interval": -1.0}, "report_interval"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        meter(**kwargs)
