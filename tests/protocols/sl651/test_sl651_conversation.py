"""protocols/sl651/conversation.py: one link's rules, a station and a centre talking through bytes."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from meterlink.protocols.sl651 import (
    NEED_DATA,
    Body,
    Conversation,
    Direction,
    Frame,
    LocalProtocolError,
    Role,
    encode,
    parse_body,
)
from meterlink.protocols.sl651.codes import ESC, NAK, Function
from meterlink.protocols.sl651.events import (
    Acknowledged,
    Answered,
    Event,
    GaveUp,
    KeepAlive,
    Misdirected,
    QueryReceived,
    Refused,
    ReportReceived,
    ReportRepeated,
    Resend,
    Unsolicited,
)
from meterlink.protocols.sl651.messages import (
    build_ack,
    build_keep_alive,
    build_query,
    build_report,
    number_element,
    report_body,
)

TIMEOUT = 1000
STATION = bytes.fromhex("0012345678")
T0 = datetime(2026, 3, 1, 8, 0)


def events(conv: Conversation) -> list[Event]:
    out = []
    while (event := conv.next_event()) is not NEED_DATA:
        out.append(event)
    return out


def report(serial: int, *, function: int = Function.SCHEDULED, minutes: int = 0, level: float = 1.5) -> Frame:
    body = report_body(
        serial=serial,
        send_time=T0 + timedelta(minutes=minutes),
        station=STATION,
        station_type=0x48,
        observed=T0,
        elements=[number_element(0x39, level)],
    )
    return build_report(function, center=1, station=STATION, password=0x1234, body=body)


def station(**kwargs: int) -> Conversation:
    return Conversation(Role.STATION, timeout_ms=TIMEOUT, **kwargs)


def centre(**kwargs: int) -> Conversation:
    return Conversation(Role.CENTRE, timeout_ms=TIMEOUT, **kwargs)


def received(cent: Conversation, frame: Frame, now: int) -> Event:
    cent.receive_data(encode(frame), now)
    (event,) = events(cent)
    return event


def test_a_report_goes_to_the_centre_and_its_acknowledgement_ends_it() -> None:
    """Station -> centre -> station, through bytes: the acknowledgement carries the report's
    function and serial number, downward, ending ESC."""
    term, cent = station(), centre()
    request = term.request(report(7), 0)
    assert request.serial == 7 and term.awaits(request) and term.next_deadline() == TIMEOUT
    got = received(cent, request.frame, 5)
    assert isinstance(got, ReportReceived) and got.frame == request.frame and got.at == 5
    assert got.body.serial == 7
    ack = cent.acknowledge(got.frame, got.body, T0)
    assert (ack.direction, ack.function, ack.station, ack.end) == (Direction.DOWN, Function.SCHEDULED, STATION, ESC)
    assert parse_body(ack).serial == 7
    term.receive_data(encode(ack), 9)
    assert events(term) == [Acknowledged(request=request, frame=ack, at=9)]
    assert not term.awaits(request) and term.next_deadline() is None
    term.tick(10 * TIMEOUT)
    assert events(term) == []


def test_an_unacknowledged_report_is_resent_unchanged_until_out_of_tries() -> None:
    term = station(tries=3)
    request = term.request(report(7), 0)
    term.tick(TIMEOUT - 1)
    assert events(term) == []
    sent = [encode(request.frame)]
    for now in (TIMEOUT, 2 * TIMEOUT):
        term.tick(now)
        (resend,) = events(term)
        assert isinstance(resend, Resend) and resend.request is request and resend.at == now
        assert parse_body(resend.frame).serial == 7
        sent.append(encode(resend.frame))
        assert term.next_deadline() == now + TIMEOUT
    assert len(set(sent)) == 1, "a resend is the same frame, same serial number"
    term.tick(3 * TIMEOUT)
    assert events(term) == [GaveUp(request=request, at=3 * TIMEOUT)]
    assert not term.awaits(request) and term.next_deadline() is None
    term.tick(10 * TIMEOUT)
    assert events(term) == [], "nothing about a report after it ended"


def test_an_acknowledgement_after_a_resend_ends_the_report() -> None:
    term = station(tries=3)
    request = term.request(report(7), 0)
    term.tick(TIMEOUT)
    assert [type(e) for e in events(term)] == [Resend]
    ack = build_ack(request.frame, 7, T0)
    term.receive_data(encode(ack), TIMEOUT + 50)
    assert events(term) == [Acknowledged(request=request, frame=ack, at=TIMEOUT + 50)]
    term.tick(10 * TIMEOUT)
    assert events(term) == []


def test_a_nak_asks_for_the_report_again_at_once_and_counts_as_a_try() -> None:
    term = station(tries=2)
    request = term.request(report(7), 0)
    nak = encode(build_ack(request.frame, 7, T0, end=NAK))
    term.receive_data(nak, 100)
    assert events(term) == [Resend(request=request, frame=request.frame, at=100)]
    assert term.next_deadline() == 100 + TIMEOUT
    term.receive_data(nak, 200)
    assert events(term) == [GaveUp(request=request, at=200)]


def test_an_acknowledgement_of_another_serial_or_function_acknowledges_nothing() -> None:
    term = station()
    request = term.request(report(7), 0)
    for ack in (build_ack(report(8), 8, T0), build_ack(report(7, function=Function.HOURLY), 7, T0)):
        term.receive_data(encode(ack), 10)
        assert events(term) == [Unsolicited(frame=ack, at=10)]
    assert term.awaits(request)


def test_reports_of_different_serials_await_their_acknowledgements_side_by_side() -> None:
    term = station()
    first, second = term.request(report(1), 0), term.request(report(2, minutes=1), 10)
    ack = build_ack(second.frame, 2, T0)
    term.receive_data(encode(ack), 20)
    assert events(term) == [Acknowledged(request=second, frame=ack, at=20)]
    assert term.awaits(first) and not term.awaits(second)


def test_the_centre_reports_a_copy_of_an_acknowledged_report_as_a_repeat() -> None:
    """The station resends after a lost acknowledgement: the copy is to be acknowledged again
    and kept once. A copy before the acknowledgement is not yet one (nothing was kept)."""
    cent = centre()
    frame = report(7)
    first = received(cent, frame, 0)
    assert isinstance(first, ReportReceived)
    assert isinstance(received(cent, frame, 1), ReportReceived), "not acknowledged yet: not a repeat"
    cent.acknowledge(frame, parse_body(frame), T0)
    for now in (2, 3):
        copy = received(cent, frame, now)
        assert isinstance(copy, ReportRepeated) and copy.frame == frame and copy.body == first.body
        cent.acknowledge(copy.frame, copy.body, T0)
    # Another serial, another function, or the same serial sent at another time: new reports.
    for other in (report(8), report(7, function=Function.HOURLY), report(7, minutes=1)):
        assert isinstance(received(cent, other, 4), ReportReceived)


def test_the_centre_remembers_the_latest_acknowledged_reports_only() -> None:
    cent = centre(remembered=2)
    frames = [report(n, minutes=n) for n in (1, 2, 3)]
    for frame in frames:
        cent.acknowledge(frame, parse_body(frame), T0)
    assert isinstance(received(cent, frames[0], 0), ReportReceived)
    assert all(isinstance(received(cent, f, 0), ReportRepeated) for f in frames[1:])


def test_the_centre_query_is_answered_by_the_station() -> None:
    term, cent = station(), centre()
    query = build_query(Function.CLOCK_QUERY, center=1, station=STATION, password=0x1234, serial=3, send_time=T0)
    request = cent.request(query, 0)
    got = received(term, query, 5)
    assert isinstance(got, QueryReceived) and got.frame == query and got.body.serial == 3
    answer = term.answer(got.frame, Body(term.next_serial(), T0 + timedelta(seconds=5)))
    assert (answer.direction, answer.function) == (Direction.UP, Function.CLOCK_QUERY)
    cent.receive_data(encode(answer), 9)
    (answered,) = events(cent)
    assert isinstance(answered, Answered) and answered.request is request and answered.frame == answer
    cent.receive_data(encode(answer), 10)
    assert events(cent) == [Unsolicited(frame=answer, at=10)], "a second answer answers nothing"


def test_an_unanswered_query_is_resent_then_given_up() -> None:
    cent = centre(tries=2)
    query = build_query(Function.CLOCK_QUERY, center=1, station=STATION, password=0x1234, serial=3, send_time=T0)
    request = cent.request(query, 0)
    cent.tick(TIMEOUT)
    assert events(cent) == [Resend(request=request, frame=query, at=TIMEOUT)]
    cent.tick(2 * TIMEOUT)
    assert events(cent) == [GaveUp(request=request, at=2 * TIMEOUT)]


def test_keep_alives_echoes_and_unreadable_bodies() -> None:
    term, cent = station(), centre()
    alive = build_keep_alive(center=1, station=STATION, password=0x1234, serial=1, send_time=T0)
    assert received(cent, alive, 0) == KeepAlive(frame=alive, at=0)
    echo = report(7)
    assert received(term, echo, 1) == Misdirected(frame=echo, at=1)
    short = Frame(1, STATION, 0x1234, Function.SCHEDULED, Direction.UP, b"\x00\x07", 0x03)
    refused = received(cent, short, 2)
    assert isinstance(refused, Refused) and "serial number" in refused.reason
    assert (cent.frames_received, cent.frames_refused, cent.frames_rejected) == (2, 1, 1)


def test_a_partial_frame_left_idle_is_given_up_at_the_next_tick() -> None:
    cent = centre(idle_ms=500)
    wire = encode(report(7))
    cent.receive_data(wire[:20], 0)
    assert events(cent) == [] and cent.buffered == 20 and cent.next_deadline() == 500
    cent.tick(499)
    assert cent.buffered == 20
    cent.tick(500)
    assert cent.buffered == 0 and cent.bytes_discarded == 20 and cent.next_deadline() is None
    cent.receive_data(wire, 600)
    assert [type(e) for e in events(cent)] == [ReportReceived]


def test_serial_numbers_run_from_1_to_65535_and_wrap_to_1() -> None:
    term = station(serial=65534)
    assert [term.next_serial() for _ in range(3)] == [65535, 1, 2]


def test_what_the_protocol_does_not_allow_is_refused_locally() -> None:
    term, cent = station(), centre()
    query = build_query(Function.CLOCK_QUERY, center=1, station=STATION, password=0x1234, serial=3, send_time=T0)
    alive = build_keep_alive(center=1, station=STATION, password=0x1234, serial=1, send_time=T0)
    frame = report(7)
    with pytest.raises(LocalProtocolError):
        Conversation(Role.STATION, tries=0)
    with pytest.raises(LocalProtocolError, match="awaits no acknowledgement"):
        term.request(alive, 0)
    with pytest.raises(LocalProtocolError, match="other side's direction"):
        term.request(query, 0)
    with pytest.raises(LocalProtocolError, match="other side's direction"):
        cent.request(frame, 0)
    term.request(frame, 0)
    with pytest.raises(LocalProtocolError, match="already awaits"):
        term.request(frame, 1)
    with pytest.raises(LocalProtocolError, match="only a centre"):
        term.acknowledge(frame, parse_body(frame), T0)
    with pytest.raises(LocalProtocolError, match="only reports"):
        cent.acknowledge(alive, parse_body(alive), T0)
    with pytest.raises(LocalProtocolError, match="only a station"):
        cent.answer(query, Body(1, T0))
