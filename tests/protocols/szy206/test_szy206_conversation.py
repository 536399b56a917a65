"""protocols/szy206/conversation.py: one link's rules, a centre and a terminal talking through bytes."""

from __future__ import annotations

import pytest
from support.szy206_frames import A13, TP5

from meterlink.protocols.szy206 import (
    AFN,
    NEED_DATA,
    Answered,
    Conversation,
    Direction,
    Event,
    Frame,
    GaveUp,
    LinkCheck,
    LinkKind,
    LocalProtocolError,
    Misdirected,
    QueryReceived,
    Refused,
    ReportReceived,
    ReportRepeated,
    Resend,
    Role,
    Unsolicited,
    build_confirm,
    build_flow_report,
    build_link,
    build_link_reply,
    build_realtime_query,
    encode,
    parse_confirm,
)

TIMEOUT = 1000


def events(conv: Conversation) -> list[Event]:
    out = []
    while (event := conv.next_event()) is not NEED_DATA:
        out.append(event)
    return out


def report(volume: int = 42, *, fcb: int = 3, afn: int = AFN.REPORT) -> Frame:
    return build_flow_report(A13, [(1.5, volume)], tp=TP5, fcb=fcb, afn=afn)


def centre(**kwargs: object) -> Conversation:
    return Conversation(Role.CENTRE, timeout_ms=TIMEOUT, **kwargs)  # type: ignore[arg-type]


def terminal(**kwargs: object) -> Conversation:
    return Conversation(Role.TERMINAL, timeout_ms=TIMEOUT, **kwargs)  # type: ignore[arg-type]


def test_a_report_goes_out_with_fcb_3_and_its_confirm_answers_it() -> None:
    """Terminal -> centre -> terminal, through bytes: the confirm echoes AFN, address and FCB."""
    term, cent = terminal(), centre()
    request = term.request(report(fcb=1), 0)
    assert request.frame.fcb == 3 and term.awaits(request)
    cent.receive_data(encode(request.frame), 5)
    (received,) = events(cent)
    assert isinstance(received, ReportReceived) and received.frame == request.frame and received.at == 5
    confirm = cent.confirm(received.frame, tp=TP5)
    assert (confirm.up, confirm.afn, confirm.fcb, confirm.address, confirm.data, confirm.tp) == (
        False,
        AFN.REPORT,
        3,
        A13,
        b"\x00",
        TP5,
    )
    term.receive_data(encode(confirm), 9)
    assert events(term) == [Answered(request=request, frame=confirm, at=9)]
    assert not term.awaits(request) and term.next_deadline() is None


def test_tries_are_resent_with_the_fcb_counting_down_then_the_request_gives_up() -> None:
    term = terminal()
    request = term.request(report(), 0)
    assert term.next_deadline() == TIMEOUT
    term.tick(TIMEOUT - 1)
    assert events(term) == []
    sent = []
    now = 0
    for _ in range(3):
        now = term.next_deadline() or 0
        term.tick(now)
        (resend,) = events(term)
        assert isinstance(resend, Resend) and resend.request is request
        sent.append(resend.frame.fcb)
        assert resend.frame.data == request.frame.data
    assert sent == [2, 1, 0]
    term.tick(now + TIMEOUT)
    assert events(term) == [GaveUp(request=request, noise=0, at=now + TIMEOUT)]
    assert term.next_deadline() is None


def test_a_line_that_spoke_garbage_gives_up_with_noise() -> None:
    """GaveUp counts what was thrown away meanwhile: a bad CRC is not silence."""
    cent = centre(tries=1)
    request = cent.request(build_realtime_query(A13), 0)
    bad = bytearray(encode(report(afn=AFN.QUERY_REALTIME)))
    bad[-2] ^= 0xFF
    cent.receive_data(bytes(bad), 10)
    cent.tick(TIMEOUT)
    (gave_up,) = events(cent)
    assert isinstance(gave_up, GaveUp) and gave_up.request is request and gave_up.noise > 0


def test_an_answer_with_any_fcb_is_taken_and_a_late_one_is_unsolicited() -> None:
    cent = centre(tries=2)
    request = cent.request(build_realtime_query(A13), 0)
    answer = report(afn=AFN.QUERY_REALTIME, fcb=0)
    cent.receive_data(encode(answer), 1)
    assert events(cent) == [Answered(request=request, frame=answer, at=1)]
    cent.receive_data(encode(answer), 2)  # the same answer again: nothing awaits it
    assert events(cent) == [Unsolicited(frame=answer, at=2)]


def test_a_copy_of_a_report_being_committed_is_answered_by_its_confirm() -> None:
    """take: the FCB-2 copy that comes during the commit is not new; the confirm answers its FCB."""
    cent = centre()
    cent.receive_data(encode(report(fcb=3)), 0)
    (first,) = events(cent)
    assert isinstance(first, ReportReceived)
    taking = cent.take(first.frame)
    cent.receive_data(encode(report(fcb=2)), 1)
    assert events(cent) == [ReportRepeated(frame=report(fcb=2), at=1, committing=True)]
    confirm = cent.confirm(taking)
    assert confirm.fcb == 2
    # The sender missed that confirm too: its FCB-1 copy is a repeat, to be confirmed again.
    cent.receive_data(encode(report(fcb=1)), 2)
    assert events(cent) == [ReportRepeated(frame=report(fcb=1), at=2, committing=False)]
    # The same report with FCB 3 again is a new report (a meter without Tp whose values did not move).
    cent.receive_data(encode(report(fcb=3)), 3)
    assert events(cent) == [ReportReceived(frame=report(fcb=3), at=3)]


def test_a_report_abandoned_or_never_taken_comes_out_new_again() -> None:
    cent = centre()
    cent.receive_data(encode(report(fcb=3)), 0)
    (first,) = events(cent)
    assert isinstance(first, ReportReceived)
    cent.abandon(cent.take(first.frame))
    cent.receive_data(encode(report(fcb=2)), 1)
    assert events(cent) == [ReportReceived(frame=report(fcb=2), at=1)]
    cent.receive_data(encode(report(fcb=1)), 2)  # not taken, not confirmed: remembered by nobody
    assert events(cent) == [ReportReceived(frame=report(fcb=1), at=2)]


def test_a_newer_report_during_a_commit_leaves_the_older_commit_its_own_confirm() -> None:
    cent = centre()
    cent.receive_data(encode(report(1)), 0)
    (old,) = events(cent)
    assert isinstance(old, ReportReceived)
    old_taking = cent.take(old.frame)
    cent.receive_data(encode(report(1, fcb=2)) + encode(report(2)), 1)
    repeat, new = events(cent)
    assert isinstance(repeat, ReportRepeated) and isinstance(new, ReportReceived)
    cent.take(new.frame)
    assert cent.confirm(old_taking).fcb == 2  # the older report's latest copy
    cent.receive_data(encode(report(2, fcb=2)), 2)  # the newer one still commits
    assert events(cent) == [ReportRepeated(frame=report(2, fcb=2), at=2, committing=True)]


def test_what_a_terminal_hears() -> None:
    """Queries come out as queries; a confirm of nothing is unsolicited; a bad confirm is refused
    and leaves its request waiting; its own direction is misdirected."""
    term = terminal()
    query = build_realtime_query(A13, fcb=2)
    term.receive_data(encode(query), 0)
    assert events(term) == [QueryReceived(frame=query, at=0)]
    stray = build_confirm(report())
    term.receive_data(encode(stray), 1)
    assert events(term) == [Unsolicited(frame=stray, at=1)]
    request = term.request(report(), 2)
    bad = Frame(direction=Direction.DOWN, function=3, address=A13, afn=AFN.REPORT, data=b"\x00\x01")
    term.receive_data(encode(bad), 3)
    (refused,) = events(term)
    assert isinstance(refused, Refused) and "at most 1 byte" in refused.reason and term.awaits(request)
    term.receive_data(encode(report()), 4)
    assert events(term) == [Misdirected(frame=report(), at=4)]
    login = term.request(build_link(A13, LinkKind.LOGIN), 5, tries=1)
    reply = build_link_reply(login.frame)
    term.receive_data(encode(reply), 6)
    assert events(term) == [Answered(request=login, frame=reply, at=6)]


def test_what_a_centre_hears() -> None:
    cent = centre()
    login = build_link(A13, LinkKind.LOGIN)
    echo = build_realtime_query(A13)
    answer = report(afn=AFN.QUERY_REALTIME)
    cent.receive_data(encode(login) + encode(echo) + encode(answer), 0)
    assert events(cent) == [
        LinkCheck(frame=login, at=0),
        Misdirected(frame=echo, at=0),
        Unsolicited(frame=answer, at=0),
    ]


def test_what_the_caller_may_not_ask() -> None:
    cent, term = centre(), terminal()
    with pytest.raises(LocalProtocolError):
        cent.request(report(), 0)  # a centre sends downlink frames
    with pytest.raises(LocalProtocolError):
        term.request(build_realtime_query(A13), 0)
    term.request(report(1), 0)
    with pytest.raises(LocalProtocolError):
        term.request(report(2), 0)  # the confirm would not say which of the two it confirms
    with pytest.raises(LocalProtocolError):
        term.confirm(report())
    with pytest.raises(LocalProtocolError):
        cent.confirm(build_link(A13, LinkKind.LOGIN))
    with pytest.raises(ValueError, match="tries"):
        Conversation(Role.CENTRE, tries=5)
    with pytest.raises(ValueError, match="confirm_work_mode"):
        Conversation(Role.CENTRE, confirm_work_mode=4)


def test_confirm_forms() -> None:
    """The work-mode byte comes from the conversation; a confirm without data when it is None."""
    for mode, data in ((0, b"\x00"), (1, b"\x01"), (None, b"")):
        confirm = Conversation(Role.CENTRE, confirm_work_mode=mode).confirm(report())
        assert confirm.data == data and parse_confirm(confirm).work_mode == mode and confirm.function == 3


def test_caller_timed_tries_and_cancel() -> None:
    """Without a timeout the caller times the tries: retry() gives the next FCB, None after the last."""
    term = Conversation(Role.TERMINAL)
    request = term.request(report(), 0)
    assert term.next_deadline() is None
    assert [f.fcb for f in (term.retry(request), term.retry(request), term.retry(request)) if f] == [2, 1, 0]
    assert term.retry(request) is None and not term.awaits(request)
    again = term.request(report(), 0)
    term.cancel(again)
    term.receive_data(encode(build_confirm(report())), 1)
    assert isinstance(events(term)[0], Unsolicited)


def test_an_idle_partial_frame_is_given_up_and_the_frames_behind_it_come_out() -> None:
    cent = centre(resync_after_ms=200)
    login = build_link(A13, LinkKind.LOGIN)
    cent.receive_data(b"\x68\xff\x68" + encode(login), 100)
    assert events(cent) == [] and cent.next_deadline() == 300
    cent.tick(299)
    assert events(cent) == []
    cent.tick(300)
    assert events(cent) == [LinkCheck(frame=login, at=300)]
    assert (cent.resyncs, cent.frames_rejected, cent.frames_received, cent.buffered) == (1, 1, 1, 0)
    assert cent.next_deadline() is None


def test_bytes_held_from_an_earlier_connection_are_dropped() -> None:
    cent = centre()
    login = encode(build_link(A13, LinkKind.LOGIN))
    cent.receive_data(login[:5], 0)
    assert cent.drop_buffered() == 5 and cent.bytes_discarded == 0
    cent.receive_data(login, 1)
    assert len(events(cent)) == 1
    cent.receive_data(login[:5], 2)
    assert cent.drop_buffered(count=True) == 5 and cent.bytes_discarded == 5
