"""A simulated SZY206 central station: the TCP server that site terminals (meterlink) connect to.

One :class:`Station` accepts any number of terminal connections. Each connection has its own
conversation in the centre's role (station_link.py, protocols/szy206/conversation.py), so sticky,
split and garbled TCP segments are survived and counted. The station answers as a centre does
(notes section 4):

- 02H login (F0H), logout (F1H), keep-alive (F2H): a link reply (data 00H, or the echoed code).
- C0H, 81H, 82H self-reports (and 83H/84H, which the codec confirms the same way): a confirm with
  the same AFN, DIR cleared, FCB echoed, data = the work-mode byte ``confirm_mode`` (None: no
  data), and a Tp carrying the station's time in the report's Tp edition when ``confirm_tp`` is
  set and the report carried one.
- Every other uplink frame (B0H and B1H answers, 11H/51H clock answers, ...) is recorded and
  handed to the query waiting for it; nothing is confirmed.

Tp on downlink frames: replies (link replies, confirms) follow the request's edition; frames the
station starts (queries, set clock) carry a Tp only when ``tp_len`` is 5 or 7, because a terminal
that decodes with a fixed Tp length rejects frames without one. The delay byte is 0, which
disables the receiver's validity check, so a station whose clock is set apart on purpose (to test
clock setting from confirms) is still heard.

A terminal's address becomes known from its first frame; every uplink frame re-binds the address
to the connection it arrived on, so a terminal that reconnects is queried on its new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from meterlink.drivers.szy206.pump import loop_ms
from meterlink.protocols.szy206 import (
    AFN,
    NEED_DATA,
    Address,
    Answered,
    Event,
    Frame,
    LinkCheck,
    LinkKind,
    Misdirected,
    ReportReceived,
    ReportRepeated,
    SZY206Error,
    TimeLabel,
    Unsolicited,
    build_link_reply,
    parse_flow_report,
    parse_link,
)
from meterlink.protocols.szy206.elements import FLOW_TYPE
from meterlink.protocols.szy206.times import reply_label, time_label_at

from .listeners import close_listeners
from .station_link import StationConnection
from .station_queries import StationQueries, UnknownTerminal, name
from .station_records import HISTORY, JSON, FrameRecord, StationRecords

__all__ = ["FrameRecord", "Station", "UnknownTerminal"]

log = logging.getLogger("meterlink.sim.station")

TP_DELAY_MIN = 0  # 0 disables the receiver's |now - Tp| check (notes section 1)
READ_SIZE = 4096
RESYNC_AFTER_S = 1.0  # idle time after which a half-received candidate frame is given up


class Station(StationRecords, StationQueries):
    """A simulated central station: asyncio TCP server for SZY206 site terminals.

    Args:
        host: address to listen on.
        port: port to listen on (0: any free port; a restart keeps the port first bound).
        tp_len: Tp length of terminal frames (0, 5 or 7), None to infer it per frame; with 5 or 7
            the frames the station starts carry a Tp of that length too.
        confirm_tp: put the station's time into confirms of reports that carried a Tp.
        confirm_mode: work-mode byte of confirms (0..3), None for confirms without data.
        drop_confirms: drop the next N confirms the station would send (lost-confirm tests).
        query_interval: seconds between B0H queries of every connected terminal; None: never.
        utc_offset_h: time zone of the wire time (Tp, clock, B1H stamps), hours east of UTC.
        clock: the station's clock, seconds since the epoch.
        on_frame: called with ("in" | "out", describe(frame)) for every frame.
        on_record: called with the :class:`FrameRecord` of every frame (it also names the peer).
        link_echo: link replies echo the request code (F0H/F1H/F2H) instead of sending 00H.
        history: how many frames :attr:`frames` keeps.

    Attributes (records for tests; lists grow for the station's life and survive a restart):
        frames: the last ``history`` :class:`FrameRecord` objects.
        reports: (address, FlowReport, received_at) of every C0H flow report.
        other_reports: (address, frame, received_at) of other self-reports (81H-84H, C0H of
            other type codes or with unreadable data).
        realtime: (address, FlowReport, received_at) of every B0H flow answer.
        answers: (address, frame, received_at) of every other uplink frame (B0H, B1H, 11H, ...).
        logins, logouts, keepalives: (address, received_at) per 02H frame.
        confirms_sent, confirms_dropped: confirms written / withheld by ``drop_confirms``.
        connections: connections accepted so far.
        frames_unexpected: downlink (DIR=0) or unreadable link frames from terminals.
        callback_errors: exceptions raised by ``on_frame``/``on_record`` (logged, then ignored).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tp_len: int | None = None,
        confirm_tp: bool = True,
        confirm_mode: int | None = 1,
        drop_confirms: int = 0,
        query_interval: float | None = None,
        utc_offset_h: float = 8.0,
        clock: Callable[[], float] = time.time,
        on_frame: Callable[[str, JSON], None] | None = None,
        on_record: Callable[[FrameRecord], None] | None = None,
        link_echo: bool = False,
        history: int = HISTORY,
    ) -> None:
        if tp_len not in (None, 0, 5, 7):
            raise ValueError(f"tp_len must be None, 0, 5 or 7, got {tp_len}")
        if confirm_mode is not None and not 0 <= confirm_mode <= 3:
            raise ValueError(f"confirm_mode must be 0..3 or None, got {confirm_mode}")
        if query_interval is not None and not query_interval > 0:
            raise ValueError(f"query_interval must be positive, got {query_interval}")
        if not -14 <= utc_offset_h <= 14:
            raise ValueError(f"utc_offset_h must be -14..14, got {utc_offset_h}")
        super().__init__(on_frame=on_frame, on_record=on_record, history=history)
        self.host = host
        self.port = port
        self.tp_len = tp_len
        self.confirm_tp = confirm_tp
        self.confirm_mode = confirm_mode
        self.drop_confirms = drop_confirms
        self.query_interval = query_interval
        self.utc_offset_h = utc_offset_h
        self.tz = timezone(timedelta(hours=utc_offset_h))
        self.clock = clock
        self.link_echo = link_echo
        self.resync_after_s = RESYNC_AFTER_S
        self._closed_rejected = 0
        self._closed_discarded = 0
        self._server: asyncio.Server | None = None
        self._conns: set[StationConnection] = set()
        self._terminals: dict[Address, StationConnection] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._poller: asyncio.Task[None] | None = None

    # --- settings and counts --------------------------------------------------------------------

    @property
    def drop_confirms(self) -> int:
        """Confirms still to be dropped; set it at any time to drop the next N."""
        return self._drop_confirms

    @drop_confirms.setter
    def drop_confirms(self, count: int) -> None:
        if count < 0:
            raise ValueError(f"drop_confirms must be >= 0, got {count}")
        self._drop_confirms = count

    @property
    def frames_rejected(self) -> int:
        """Candidate frames the reassemblers refused (bad CRC, end byte, length...), all connections."""
        return self._closed_rejected + sum(c.conversation.frames_rejected for c in self._conns)

    @property
    def bytes_discarded(self) -> int:
        """Bytes the reassemblers dropped, all connections."""
        return self._closed_discarded + sum(c.conversation.bytes_discarded for c in self._conns)

    @property
    def connected(self) -> int:
        """Connections open now."""
        return len(self._conns)

    @property
    def terminals(self) -> list[Address]:
        """Addresses of the terminals connected now."""
        return list(self._terminals)

    def now(self) -> datetime:
        """The station's time in the wire time zone."""
        return datetime.fromtimestamp(self.clock(), self.tz)

    # --- life cycle ------------------------------------------------------------------------------

    async def start(self) -> int:
        """Listen; returns the port. After :meth:`stop`, listens again on the same port.

        Raises:
            OSError: the address cannot be bound.
            RuntimeError: already started.
        """
        if self._server is not None:
            raise RuntimeError("station already started")
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        if self.query_interval is not None:
            self._poller = asyncio.create_task(self._poll(self.query_interval), name="szy206-station.poll")
        log.info("event=station_listening host=%s port=%d", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        """Close the listener and every connection; safe to call twice."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        server, self._server = self._server, None
        servers = [] if server is None else [server]
        await close_listeners(servers, [conn.writer for conn in self._conns], self._tasks)
        if server is not None:
            log.info("event=station_stopped port=%d", self.port)

    # --- connections -----------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        name = writer.get_extra_info("peername")
        peer = f"{name[0]}:{name[1]}" if isinstance(name, tuple) else str(name)
        conn = StationConnection(
            reader, writer, peer, tp_len=self.tp_len, confirm_mode=self.confirm_mode, resync_after_s=self.resync_after_s
        )
        self._conns.add(conn)
        self.connections += 1
        log.info("event=station_connected peer=%s connections=%d", peer, len(self._conns))
        self._notify()
        try:
            await self._read_loop(conn)
        except (ConnectionError, OSError) as exc:
            log.info("event=station_connection_error peer=%s error=%r", peer, str(exc))
        finally:
            self._close(conn)
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)
            self._notify()

    async def _read_loop(self, conn: StationConnection) -> None:
        conversation = conn.conversation
        while True:
            rejected, discarded = conversation.frames_rejected, conversation.bytes_discarded
            data = await conn.read(READ_SIZE)  # None: the link went idle inside a candidate frame
            if data == b"":
                return
            if data:
                conversation.receive_data(data, loop_ms())
            while (event := conversation.next_event()) is not NEED_DATA:
                await self._received(conn, event)
            if conversation.frames_rejected != rejected or conversation.bytes_discarded != discarded:
                log.warning(
                    "event=station_garbage peer=%s rejected=%d discarded_bytes=%d reason=%r",
                    conn.peer,
                    conversation.frames_rejected - rejected,
                    conversation.bytes_discarded - discarded,
                    conversation.last_error,
                )
                self._notify()

    def _close(self, conn: StationConnection) -> None:
        if conn.closed:
            return
        conn.close()
        self._conns.discard(conn)
        conversation = conn.conversation
        self._closed_rejected += conversation.frames_rejected
        self._closed_discarded += conversation.bytes_discarded
        for address in conn.addresses:
            if self._terminals.get(address) is conn:
                del self._terminals[address]
        log.info(
            "event=station_closed peer=%s frames=%d rejected=%d",
            conn.peer,
            conversation.frames_received,
            conversation.frames_rejected,
        )

    # --- frames in -------------------------------------------------------------------------------

    async def _received(self, conn: StationConnection, event: Event) -> None:
        if not isinstance(event, Misdirected | LinkCheck | ReportReceived | ReportRepeated | Answered | Unsolicited):
            return  # the station times its queries itself: no Resend or GaveUp comes
        frame = event.frame
        at = self.clock()
        self._record("in", conn.peer, frame, at)
        if isinstance(event, Misdirected):
            self.frames_unexpected += 1
            log.warning("event=station_downlink_from_terminal peer=%s afn=%02X", conn.peer, frame.afn)
            self._notify()
            return
        self._bind(conn, frame.address)
        if isinstance(event, LinkCheck):
            await self._link(conn, frame, at)
        elif isinstance(event, ReportReceived | ReportRepeated):
            await self._report(conn, frame, at)
        else:
            self._answer(conn, frame, at)
        self._notify()

    def _bind(self, conn: StationConnection, address: Address) -> None:
        """Every uplink frame binds its address to the connection it came on (a terminal reconnects)."""
        previous = self._terminals.get(address)
        if previous is conn:
            return
        if previous is not None:
            log.info("event=station_address_moved address=%s from=%s to=%s", name(address), previous.peer, conn.peer)
        self._terminals[address] = conn
        conn.addresses.add(address)
        log.info("event=station_terminal peer=%s address=%s", conn.peer, name(address))

    async def _link(self, conn: StationConnection, frame: Frame, at: float) -> None:
        try:
            kind = parse_link(frame)
        except SZY206Error as exc:
            self.frames_unexpected += 1
            log.warning("event=station_bad_link peer=%s error=%r", conn.peer, str(exc))
            return
        records = {LinkKind.LOGIN: self.logins, LinkKind.LOGOUT: self.logouts, LinkKind.KEEPALIVE: self.keepalives}
        records[kind].append((frame.address, at))
        log.info("event=station_link peer=%s address=%s kind=%s", conn.peer, name(frame.address), kind.name.lower())
        await self._send_quietly(conn, build_link_reply(frame, echo=self.link_echo, tp=self._reply_tp(frame)))

    async def _report(self, conn: StationConnection, frame: Frame, at: float) -> None:
        report = None
        if frame.afn == AFN.REPORT and frame.function == FLOW_TYPE:
            try:
                report = parse_flow_report(frame)
            except SZY206Error as exc:
                log.warning("event=station_bad_report peer=%s error=%r", conn.peer, str(exc))
        if report is not None:
            self.reports.append((frame.address, report, at))
        else:
            self.other_reports.append((frame.address, frame, at))
        log.info("event=station_report peer=%s address=%s afn=%02X", conn.peer, name(frame.address), frame.afn)
        # A report that arrived intact is confirmed even if its data does not read: the confirm
        # acknowledges receipt, and other_reports shows the problem to the test.
        if self._drop_confirms:
            self._drop_confirms -= 1
            self.confirms_dropped += 1
            log.info(
                "event=station_confirm_dropped peer=%s afn=%02X left=%d", conn.peer, frame.afn, self._drop_confirms
            )
            return
        confirm = conn.conversation.confirm(frame, tp=self._reply_tp(frame))
        if await self._send_quietly(conn, confirm):
            self.confirms_sent += 1

    def _answer(self, conn: StationConnection, frame: Frame, at: float) -> None:
        address = frame.address
        if frame.afn == AFN.QUERY_REALTIME and frame.function == FLOW_TYPE:
            try:
                self.realtime.append((address, parse_flow_report(frame), at))
            except SZY206Error as exc:
                log.warning("event=station_bad_answer peer=%s afn=B0 error=%r", conn.peer, str(exc))
        self.answers.append((address, frame, at))
        awaited = conn.hand_over(frame)
        log.info(
            "event=station_answer peer=%s address=%s afn=%02X awaited=%s", conn.peer, name(address), frame.afn, awaited
        )

    # --- frames out ------------------------------------------------------------------------------

    async def _send(self, conn: StationConnection, frame: Frame) -> None:
        if conn.closed or conn.writer.is_closing():
            raise ConnectionError(f"connection to {conn.peer} is closed")
        self._record("out", conn.peer, frame, self.clock())
        conn.write(frame)
        await conn.writer.drain()

    async def _send_quietly(self, conn: StationConnection, frame: Frame) -> bool:
        """Reply from the read loop: a failed write is logged; the read loop sees the close."""
        try:
            await self._send(conn, frame)
        except (ConnectionError, OSError) as exc:
            log.info("event=station_send_failed peer=%s afn=%02X error=%r", conn.peer, frame.afn, str(exc))
            return False
        return True

    def _wall_ms(self) -> int:
        return math.floor(self.clock() * 1000)

    def _reply_tp(self, request: Frame) -> TimeLabel | None:
        """Tp of a reply (link reply, confirm): the station's time in the request's edition, when
        ``confirm_tp`` is set and the request carried one."""
        if not self.confirm_tp:
            return None
        return reply_label(request.tp, self._wall_ms(), utc_offset_h=self.utc_offset_h, delay_min=TP_DELAY_MIN)

    def _own_tp(self) -> TimeLabel | None:
        """Tp of frames the station starts: only when the terminals' Tp length is configured."""
        if not self.tp_len:
            return None
        return time_label_at(
            self._wall_ms(), tp_len=self.tp_len, utc_offset_h=self.utc_offset_h, delay_min=TP_DELAY_MIN
        )
