"""sim/station.py driven by a minimal terminal over real loopback TCP: link, confirms, queries, garbage."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from support.loop import run
from support.szy206_frames import A13, A14, TP5

from meterlink.protocols.szy206 import (
    AFN,
    DEFAULT_PW,
    NEED_DATA,
    Address,
    Clock,
    Direction,
    Frame,
    LinkKind,
    Reassembler,
    TimeLabel,
    build_clock_answer,
    build_flow_report,
    build_link,
    encode,
    parse_clock,
    parse_confirm,
    parse_flow_report,
    parse_link_reply,
    parse_stored_query,
)
from meterlink.sim.station import Station, UnknownTerminal

NOW = datetime(2026, 3, 5, 1, 2, 3, tzinfo=UTC).timestamp()  # 09:02:03 on the 5th at UTC+8 (a Thursday)
TP7 = TimeLabel(second=0, minute=45, hour=8, day=9, month=3, year=26, delay_min=10)
WAIT = 2.0


class Terminal:
    """The terminal side, written with the codec only: send frames or raw bytes, read frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.reassembler = Reassembler()

    @classmethod
    async def connect(cls, port: int) -> Terminal:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, *items: Frame | bytes) -> None:
        for item in items:
            self.writer.write(item if isinstance(item, bytes) else encode(item))
            await self.writer.drain()

    async def recv(self) -> Frame:
        async with asyncio.timeout(WAIT):
            while (frame := self.reassembler.next_frame()) is NEED_DATA:
                data = await self.reader.read(4096)
                if not data:
                    raise ConnectionError("station closed the connection")
                self.reassembler.feed(data)
        return frame

    async def login(self, address: Address = A13) -> Frame:
        await self.send(build_link(address, LinkKind.LOGIN))
        return await self.recv()

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


def report(volume: int = 106182, *, tp: TimeLabel | None = TP5, fcb: int = 3, afn: int = AFN.REPORT) -> Frame:
    return build_flow_report(A13, [(5.9, volume)], alarm=0x1001, status=0x0060, tp=tp, fcb=fcb, afn=afn)


async def started(**options: Any) -> Station:
    station = Station(clock=lambda: NOW, **options)
    await station.start()
    return station


# --- link and confirms --------------------------------------------------------------------------


def test_login_keepalive_logout_get_link_replies_and_are_recorded() -> None:
    """Each 02H frame gets a downlink 02H reply with data 00H; the station learns the address."""
    seen: list[tuple[str, dict[str, Any]]] = []

    async def body() -> None:
        station = await started(on_frame=lambda d, view: seen.append((d, view)))
        term = await Terminal.connect(station.port)
        try:
            reply = await term.login()
            assert (reply.afn, reply.direction, reply.address) == (AFN.LINK, Direction.DOWN, A13)
            assert parse_link_reply(reply) == 0 and reply.tp is None
            assert station.terminals == [A13]
            for kind in (LinkKind.KEEPALIVE, LinkKind.KEEPALIVE, LinkKind.LOGOUT):
                await term.send(build_link(A13, kind))
                assert parse_link_reply(await term.recv()) == 0
            assert [a for a, _ in station.logins] == [A13]
            assert len(station.keepalives) == 2 and len(station.logouts) == 1
            assert station.logins[0][1] == NOW
        finally:
            await term.close()
            await station.stop()

    run(body)
    assert [d for d, _ in seen] == ["in", "out"] * 4
    assert seen[0][1]["data"]["link"] == "login" and seen[0][1]["address"] == {"division": "530381", "station": 13}
    assert seen[1][1]["direction"] == "down" and seen[1][1]["afn"] == "02"


def test_link_echo_and_tp_follow_the_request() -> None:
    """With link_echo the reply echoes F2H; a keep-alive with a Tp gets the station's time back."""

    async def body() -> None:
        station = await started(link_echo=True)
        term = await Terminal.connect(station.port)
        try:
            await term.send(build_link(A13, LinkKind.KEEPALIVE, tp=TP5))
            reply = await term.recv()
            assert parse_link_reply(reply) == 0xF2
            assert reply.tp == TimeLabel(second=3, minute=2, hour=9, day=5, delay_min=0)
        finally:
            await term.close()
            await station.stop()

    run(body)


@pytest.mark.parametrize(
    ("options", "tp", "mode", "confirm_tp"),
    [
        ({}, TP5, 1, TimeLabel(second=3, minute=2, hour=9, day=5)),
        ({}, TP7, 1, TimeLabel(second=3, minute=2, hour=9, day=5, month=3, year=26)),
        ({}, None, 1, None),
        ({"confirm_tp": False}, TP5, 1, None),
        ({"confirm_mode": None}, TP5, None, TimeLabel(second=3, minute=2, hour=9, day=5)),
        ({"confirm_mode": 0, "utc_offset_h": 0.0}, TP5, 0, TimeLabel(second=3, minute=2, hour=1, day=5)),
    ],
)
def test_report_is_confirmed_in_the_configured_form(
    options: dict[str, Any], tp: TimeLabel | None, mode: int | None, confirm_tp: TimeLabel | None
) -> None:
    """C0H -> confirm: same AFN, DIR 0, FCB echoed, the work-mode byte or none, Tp in the report's edition."""

    async def body() -> None:
        station = await started(**options)
        term = await Terminal.connect(station.port)
        try:
            await term.login()
            await term.send(report(tp=tp, fcb=2))
            confirm = await term.recv()
            assert (confirm.afn, confirm.direction, confirm.fcb, confirm.address) == (0xC0, Direction.DOWN, 2, A13)
            assert parse_confirm(confirm).work_mode == mode
            assert confirm.data == (b"" if mode is None else bytes((mode,)))
            assert confirm.tp == confirm_tp
            (address, flow_report, at), *_ = station.reports
            assert (address, at) == (A13, NOW)
            assert flow_report.meters[0].volume == 106182 and flow_report.alarm == 0x1001 and flow_report.tp == tp
            assert station.confirms_sent == 1
        finally:
            await term.close()
            await station.stop()

    run(body)


def test_alarm_manual_and_unreadable_reports_are_confirmed_too() -> None:
    """81H, 82H and a C0H whose data does not read are confirmed and kept apart from the flow reports."""

    async def body() -> None:
        station = await started()
        term = await Terminal.connect(station.port)
        try:
            for afn in (AFN.ALARM_REPORT, AFN.MANUAL_REPORT):
                await term.send(report(afn=afn))
                assert (await term.recv()).afn == afn
            unreadable = Frame(direction=Direction.UP, function=3, address=A13, afn=AFN.REPORT, data=b"\x01\x02\x03")
            await term.send(unreadable)
            assert (await term.recv()).afn == AFN.REPORT  # intact frame, unreadable data: confirmed, set apart
            assert station.reports == [] and [f.afn for _, f, _ in station.other_reports] == [0x81, 0x82, 0xC0]
            assert station.confirms_sent == 3
        finally:
            await term.close()
            await station.stop()

    run(body)


def test_drop_confirms_drops_exactly_n_and_can_be_set_at_runtime() -> None:
    """The first N reports get no confirm (a keep-alive reply comes first); setting it later drops more."""

    async def body() -> None:
        station = await started(drop_confirms=2)
        term = await Terminal.connect(station.port)
        try:
            await term.send(report(1), report(2), build_link(A13, LinkKind.KEEPALIVE), report(3))
            assert (await term.recv()).afn == AFN.LINK  # reports 1 and 2 were not confirmed
            assert (await term.recv()).afn == AFN.REPORT
            assert (station.confirms_dropped, station.confirms_sent, station.drop_confirms) == (2, 1, 0)
            station.drop_confirms = 1
            await term.send(report(4), build_link(A13, LinkKind.KEEPALIVE), report(5))
            assert (await term.recv()).afn == AFN.LINK
            assert (await term.recv()).afn == AFN.REPORT
            assert (station.confirms_dropped, station.confirms_sent) == (3, 2)
            assert [r.meters[0].volume for _, r, _ in station.reports] == [1, 2, 3, 4, 5]
            with pytest.raises(ValueError):
                station.drop_confirms = -1
        finally:
            await term.close()
            await station.stop()

    run(body)


# --- a damaged stream ---------------------------------------------------------------------------


def test_garbage_split_and_sticky_frames_are_survived_and_counted() -> None:
    """Noise, a bad CRC, a frame written byte by byte and two frames in one write: all good frames answered."""

    async def body() -> None:
        station = await started()
        term = await Terminal.connect(station.port)
        try:
            keepalive = encode(build_link(A13, LinkKind.KEEPALIVE))
            bad_crc = bytearray(encode(report(7)))
            bad_crc[-2] ^= 0xFF
            await term.send(b"\x00\xff noise \x68\x01", bytes(bad_crc), keepalive)
            assert (await term.recv()).afn == AFN.LINK
            for byte in encode(report(8)):
                await term.send(bytes((byte,)))
            assert (await term.recv()).afn == AFN.REPORT
            await term.send(keepalive + encode(report(9)))
            assert (await term.recv()).afn == AFN.LINK
            assert (await term.recv()).afn == AFN.REPORT
            assert [r.meters[0].volume for _, r, _ in station.reports] == [8, 9]
            assert station.frames_rejected >= 1 and station.bytes_discarded > 0
        finally:
            await term.close()
            await station.stop()
        assert station.frames_rejected >= 1  # kept after the connection closed

    run(body)


def test_a_header_with_a_huge_length_is_given_up_when_the_link_goes_idle() -> None:
    """68H FFH 68H holds the frames behind it until the link idles; then the station hunts again."""

    async def body() -> None:
        station = await started()
        station.resync_after_s = 0.05
        term = await Terminal.connect(station.port)
        try:
            await term.send(b"\x68\xff\x68" + encode(build_link(A13, LinkKind.LOGIN)))
            assert (await term.recv()).afn == AFN.LINK
            assert station.frames_rejected == 1 and len(station.logins) == 1
        finally:
            await term.close()
            await station.stop()

    run(body)


# --- life cycle ---------------------------------------------------------------------------------


def test_restart_listens_on_the_same_port_and_keeps_records() -> None:
    """stop() closes terminals; start() again binds the same port; counters carry on."""

    async def body() -> None:
        station = await started()
        port = station.port
        term = await Terminal.connect(port)
        await term.login()
        await station.stop()
        with pytest.raises(ConnectionError):
            await term.recv()
        await term.close()
        assert station.connected == 0 and station.terminals == []
        assert await station.start() == port
        term = await Terminal.connect(port)
        try:
            await term.login()
            await station.wait_for(lambda s: s.connected == 1)
            assert (station.connections, len(station.logins)) == (2, 2)
            with pytest.raises(RuntimeError):
                await station.start()
        finally:
            await term.close()
            await station.stop()
            await station.stop()  # twice is fine

    run(body)


def test_wait_for_times_out_and_many_terminals_are_served() -> None:
    """Two terminals on two connections; wait_for raises TimeoutError for a condition never met."""

    async def body() -> None:
        station = await started()
        one, two = await Terminal.connect(station.port), await Terminal.connect(station.port)
        try:
            await one.login(A13)
            await two.login(A14)
            await station.wait_for(lambda s: len(s.logins) == 2)
            assert sorted(a.station for a in station.terminals) == [13, 14] and station.connected == 2
            with pytest.raises(TimeoutError):
                await station.wait_for(lambda s: len(s.reports) > 0, timeout=0.05)
        finally:
            await one.close()
            await two.close()
            await station.stop()

    run(body)


def test_bad_options_are_refused() -> None:
    bad: list[dict[str, Any]] = [{"tp_len": 6}, {"confirm_mode": 4}, {"drop_confirms": -1}, {"query_interval": 0}]
    for options in bad:
        with pytest.raises(ValueError):
            Station(**options)


# --- queries ------------------------------------------------------------------------------------


async def answer_queries(term: Terminal, answers: dict[int, list[Frame]]) -> list[Frame]:
    """Answer each downlink query by its AFN (none left: stay silent) until the station closes."""
    received: list[Frame] = []
    while True:
        try:
            query = await term.recv()
        except (ConnectionError, TimeoutError):
            return received
        received.append(query)
        await term.send(*answers.get(query.afn, []))


def test_query_realtime_round_trip() -> None:
    """B0H goes to the terminal with that address; its answer is returned and recorded."""

    async def body() -> None:
        station = await started(tp_len=5)  # every terminal frame carries a 5-byte Tp, and so do queries
        term = await Terminal.connect(station.port)
        try:
            await term.send(build_link(A13, LinkKind.LOGIN, tp=TP5))
            assert (await term.recv()).afn == AFN.LINK
            answer = report(4242, afn=AFN.QUERY_REALTIME)
            answering = asyncio.create_task(answer_queries(term, {AFN.QUERY_REALTIME: [answer]}))
            got = await station.query_realtime(A13, timeout=WAIT)
            assert got.afn == AFN.QUERY_REALTIME and parse_flow_report(got).meters[0].volume == 4242
            assert [r.meters[0].volume for _, r, _ in station.realtime] == [4242]
            assert station.confirms_sent == 0 and station.reports == []
            with pytest.raises(UnknownTerminal):
                await station.query_realtime(A14, timeout=WAIT)
            await term.close()
            (query,) = await answering
            assert (query.afn, query.direction, query.function, query.data) == (0xB0, Direction.DOWN, 3, b"")
            assert query.tp == TimeLabel(second=3, minute=2, hour=9, day=5)
        finally:
            await term.close()
            await station.stop()

    run(body)


def test_query_realtime_times_out_or_fails_on_disconnect() -> None:
    """A silent terminal: TimeoutError; a terminal that hangs up while asked: ConnectionError."""

    async def body() -> None:
        station = await started()
        term = await Terminal.connect(station.port)
        try:
            await term.login()
            with pytest.raises(TimeoutError):
                await station.query_realtime(A13, timeout=0.1)
            asking = asyncio.create_task(station.query_realtime(A13, timeout=WAIT))
            assert (await term.recv()).afn == AFN.QUERY_REALTIME  # the timed-out query
            assert (await term.recv()).afn == AFN.QUERY_REALTIME
            await term.close()
            with pytest.raises(ConnectionError):
                await asking
        finally:
            await term.close()
            await station.stop()

    run(body)


def test_query_stored_collects_every_answer_frame() -> None:
    """B1H carries both stamps (aware datetimes converted to wire time); three answers come back."""

    async def body() -> None:
        station = await started()
        term = await Terminal.connect(station.port)
        try:
            await term.login()
            chunks = [
                Frame(direction=Direction.UP, address=A13, afn=AFN.QUERY_STORED, function=3, data=bytes([i] * 14))
                for i in range(3)
            ]
            answering = asyncio.create_task(answer_queries(term, {AFN.QUERY_STORED: chunks}))
            start = datetime(2026, 3, 1, 0, 0, 0, tzinfo=UTC)
            frames = await station.query_stored(A13, start, datetime(2026, 3, 2, 8, 30), timeout=WAIT, quiet=0.2)
            assert [f.data for f in frames] == [c.data for c in chunks]
            assert [f.afn for _, f, _ in station.answers] == [0xB1] * 3
            await term.close()
            (query,) = await answering
            first, last = parse_stored_query(query)
            assert (first.year, first.month, first.day, first.hour) == (26, 3, 1, 8)
            assert (last.day, last.hour, last.minute) == (2, 8, 30)
        finally:
            await term.close()
            await station.stop()

    run(body)


def test_query_stored_without_answers_returns_nothing() -> None:
    async def body() -> None:
        station = await started()
        term = await Terminal.connect(station.port)
        try:
            await term.login()
            assert await station.query_stored(A13, datetime(2026, 3, 1), datetime(2026, 3, 2), timeout=0.1) == []
        finally:
            await term.close()
            await station.stop()

    run(body)


def test_set_clock_sends_a_valid_11h_and_can_wait_for_the_echo() -> None:
    """11H with PW and the station's clock (weekday set); with a timeout the terminal's echo is returned."""

    async def body() -> None:
        station = await started()
        term = await Terminal.connect(station.port)
        try:
            await term.login()
            assert await station.set_clock(A13) is None
            sent = await term.recv()
            assert (sent.afn, sent.direction, sent.pw) == (AFN.SET_CLOCK, Direction.DOWN, DEFAULT_PW)
            assert parse_clock(sent) == Clock(second=3, minute=2, hour=9, day=5, month=3, year=26, weekday=4)
            when = datetime(2027, 12, 31, 23, 59, 58)
            echo = build_clock_answer(A13, Clock(second=58, minute=59, hour=23, day=31, month=12, year=27), afn=0x11)
            answering = asyncio.create_task(answer_queries(term, {AFN.SET_CLOCK: [echo]}))
            answer = await station.set_clock(A13, when, timeout=WAIT)
            assert answer is not None and answer.up and parse_clock(answer).year == 27
            await term.close()
            (sent,) = await answering
            assert parse_clock(sent) == Clock(second=58, minute=59, hour=23, day=31, month=12, year=27, weekday=5)
        finally:
            await term.close()
            await station.stop()

    run(body)


def test_query_interval_polls_every_terminal() -> None:
    """With query_interval the station asks B0H by itself; answers pile up in ``realtime``."""

    async def body() -> None:
        station = await started(query_interval=0.05)
        term = await Terminal.connect(station.port)
        answer = report(77, tp=None, afn=AFN.QUERY_REALTIME)
        answering = asyncio.create_task(answer_queries(term, {AFN.QUERY_REALTIME: [answer]}))
        try:
            await term.send(build_link(A13, LinkKind.LOGIN))
            await station.wait_for(lambda s: len(s.realtime) >= 2)
        finally:
            await station.stop()
            await answering
            await term.close()

    run(body)


def test_a_reconnected_terminal_is_queried_on_its_new_connection() -> None:
    async def body() -> None:
        station = await started()
        old = await Terminal.connect(station.port)
        new = await Terminal.connect(station.port)
        try:
            await old.login()
            await new.login()
            answer = report(5, tp=None, afn=AFN.QUERY_REALTIME)
            answering = asyncio.create_task(answer_queries(new, {AFN.QUERY_REALTIME: [answer]}))
            assert parse_flow_report(await station.query_realtime(A13, timeout=WAIT)).meters[0].volume == 5
            await new.close()
            await answering
            await station.wait_for(lambda s: s.connected == 1)
            assert station.terminals == []  # the old connection no longer owns the address
        finally:
            await old.close()
            await new.close()
            await station.stop()

    run(body)
