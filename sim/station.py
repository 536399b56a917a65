"""A simulated SZY206 central station: the TCP server that site terminals (meterlink) connect to.

One :class:`Station` accepts any number of terminal connections. Each connection has its own
:class:`Reassembler`, so sticky, split and garbled TCP segments are survived and counted. The
station answers as a centre does (notes section 4):

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
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from meterlink.protocols.szy206 import (
    AFN,
    DEFAULT_PW,
    NEED_DATA,
    Address,
    BufferFullError,
    Clock,
    FlowReport,
    Frame,
    LinkKind,
    Reassembler,
    SZY206Error,
    TimeLabel,
    build_confirm,
    build_link_reply,
    build_realtime_query,
    build_set_clock,
    build_stored_query,
    describe,
    encode,
    parse_flow_report,
    parse_link,
)
from meterlink.protocols.szy206.elements import FLOW_TYPE

from .listeners import close_listeners

log = logging.getLogger("meterlink.sim.station")

JSON = dict[str, Any]
CONFIRMED_AFNS = frozenset({AFN.REPORT, AFN.ALARM_REPORT, AFN.MANUAL_REPORT, AFN.PICTURE_REPORT, AFN.VOLTAGE_REPORT})
TP_DELAY_MIN = 0  # 0 disables the receiver's |now - Tp| check (notes section 1)
READ_SIZE = 4096
RESYNC_AFTER_S = 1.0  # idle time after which a half-received candidate frame is given up
QUERY_TIMEOUT_S = 5.0
STORED_QUIET_S = 0.3  # B1H answers: the query ends this long after the last answer frame
HISTORY = 10_000  # frames kept in Station.frames (a long CLI run must not grow without bound)


class UnknownTerminal(LookupError):
    """No open connection has sent a frame from this address."""


@dataclass(frozen=True, slots=True)
class FrameRecord:
    """One frame seen by the station, in either direction."""

    direction: str  # "in" (terminal -> station) or "out"
    peer: str
    frame: Frame
    view: JSON  # describe(frame)
    at: float  # station clock

    def to_json(self) -> JSON:
        """``{"dir", "peer", "frame"}``: the line ``meterlink sim station`` prints."""
        return {"dir": self.direction, "peer": self.peer, "frame": self.view}


@dataclass(eq=False)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    peer: str
    reassembler: Reassembler
    addresses: set[Address] = field(default_factory=set)
    waiters: dict[tuple[Address, int], list[asyncio.Queue[Frame | None]]] = field(default_factory=dict)
    locks: dict[Address, asyncio.Lock] = field(default_factory=dict)
    closed: bool = False

    def lock(self, address: Address) -> asyncio.Lock:
        # One query at a time per terminal: answers carry no sequence number to match them by.
        return self.locks.setdefault(address, asyncio.Lock())

    @contextlib.contextmanager
    def waiting(self, address: Address, afn: int) -> Iterator[asyncio.Queue[Frame | None]]:
        """A queue that receives this terminal's uplink frames of ``afn`` (None: connection closed)."""
        queue: asyncio.Queue[Frame | None] = asyncio.Queue()
        queues = self.waiters.setdefault((address, afn), [])
        queues.append(queue)
        try:
            yield queue
        finally:
            queues.remove(queue)
            if not queues:
                del self.waiters[(address, afn)]


class Station:
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
        self.host = host
        self.port = port
        self.tp_len = tp_len
        self.confirm_tp = confirm_tp
        self.confirm_mode = confirm_mode
        self.drop_confirms = drop_confirms
        self.query_interval = query_interval
        self.tz = timezone(timedelta(hours=utc_offset_h))
        self.clock = clock
        self.on_frame = on_frame
        self.on_record = on_record
        self.link_echo = link_echo
        self.resync_after_s = RESYNC_AFTER_S
        self.frames: deque[FrameRecord] = deque(maxlen=history)
        self.reports: list[tuple[Address, FlowReport, float]] = []
        self.other_reports: list[tuple[Address, Frame, float]] = []
        self.realtime: list[tuple[Address, FlowReport, float]] = []
        self.answers: list[tuple[Address, Frame, float]] = []
        self.logins: list[tuple[Address, float]] = []
        self.logouts: list[tuple[Address, float]] = []
        self.keepalives: list[tuple[Address, float]] = []
        self.confirms_sent = 0
        self.confirms_dropped = 0
        self.connections = 0
        self.frames_unexpected = 0
        self.callback_errors = 0
        self._closed_rejected = 0
        self._closed_discarded = 0
        self._server: asyncio.Server | None = None
        self._conns: set[_Connection] = set()
        self._terminals: dict[Address, _Connection] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._changed: set[asyncio.Future[None]] = set()

    # --- settings and records --------------------------------------------------------------------

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
        return self._closed_rejected + sum(int(c.reassembler.frames_rejected) for c in self._conns)

    @property
    def bytes_discarded(self) -> int:
        """Bytes the reassemblers dropped, all connections."""
        return self._closed_discarded + sum(int(c.reassembler.bytes_discarded) for c in self._conns)

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

    async def wait_for(self, predicate: Callable[[Station], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate(self)`` is true; it is checked after every frame and connection event.

        Raises:
            TimeoutError: still false after ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while not predicate(self):
                changed: asyncio.Future[None] = loop.create_future()
                self._changed.add(changed)
                try:
                    await changed
                finally:
                    self._changed.discard(changed)

    def _notify(self) -> None:
        for changed in self._changed:
            if not changed.done():
                changed.set_result(None)

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
        conn = _Connection(reader, writer, peer, Reassembler(tp_len=self.tp_len))
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

    async def _read_loop(self, conn: _Connection) -> None:
        reassembler = conn.reassembler
        while True:
            try:
                if reassembler.buffered:
                    async with asyncio.timeout(self.resync_after_s):
                        data = await conn.reader.read(READ_SIZE)
                else:
                    data = await conn.reader.read(READ_SIZE)
            except TimeoutError:
                # The link went idle inside a candidate frame (a corrupted L?): give it up.
                reassembler.resync()
                data = None
            if data == b"":
                return
            rejected, discarded = reassembler.frames_rejected, reassembler.bytes_discarded
            if data:
                try:
                    reassembler.feed(data)
                except BufferFullError as exc:  # cannot happen with frames below 64 KiB; never loop on it
                    log.warning("event=station_buffer_full peer=%s error=%r", conn.peer, str(exc))
                    return
            while (frame := reassembler.next_frame()) is not NEED_DATA:
                await self._received(conn, frame)
            if reassembler.frames_rejected != rejected or reassembler.bytes_discarded != discarded:
                log.warning(
                    "event=station_garbage peer=%s rejected=%d discarded_bytes=%d reason=%r",
                    conn.peer,
                    reassembler.frames_rejected - rejected,
                    reassembler.bytes_discarded - discarded,
                    reassembler.last_error,
                )
                self._notify()

    def _close(self, conn: _Connection) -> None:
        if conn.closed:
            return
        conn.closed = True
        conn.writer.close()
        self._conns.discard(conn)
        self._closed_rejected += conn.reassembler.frames_rejected
        self._closed_discarded += conn.reassembler.bytes_discarded
        for address in conn.addresses:
            if self._terminals.get(address) is conn:
                del self._terminals[address]
        for queues in conn.waiters.values():
            for queue in queues:
                queue.put_nowait(None)
        log.info(
            "event=station_closed peer=%s frames=%d rejected=%d",
            conn.peer,
            conn.reassembler.frames_decoded,
            conn.reassembler.frames_rejected,
        )

    # --- frames in -------------------------------------------------------------------------------

    async def _received(self, conn: _Connection, frame: Frame) -> None:
        at = self.clock()
        self._record("in", conn, frame, at)
        address = frame.address
        if not frame.up:
            self.frames_unexpected += 1
            log.warning("event=station_downlink_from_terminal peer=%s afn=%02X", conn.peer, frame.afn)
            self._notify()
            return
        if self._terminals.get(address) is not conn:
            previous = self._terminals.get(address)
            if previous is not None:
                log.info(
                    "event=station_address_moved address=%s from=%s to=%s", _name(address), previous.peer, conn.peer
                )
            self._terminals[address] = conn
            conn.addresses.add(address)
            log.info("event=station_terminal peer=%s address=%s", conn.peer, _name(address))
        if frame.afn == AFN.LINK:
            await self._link(conn, frame, at)
        elif frame.afn in CONFIRMED_AFNS:
            await self._report(conn, frame, at)
        else:
            self._answer(conn, frame, at)
        self._notify()

    async def _link(self, conn: _Connection, frame: Frame, at: float) -> None:
        try:
            kind = parse_link(frame)
        except SZY206Error as exc:
            self.frames_unexpected += 1
            log.warning("event=station_bad_link peer=%s error=%r", conn.peer, str(exc))
            return
        records = {LinkKind.LOGIN: self.logins, LinkKind.LOGOUT: self.logouts, LinkKind.KEEPALIVE: self.keepalives}
        records[kind].append((frame.address, at))
        log.info("event=station_link peer=%s address=%s kind=%s", conn.peer, _name(frame.address), kind.name.lower())
        tp = self._tp(frame.tp.size) if self.confirm_tp and frame.tp is not None else None
        await self._send_quietly(conn, build_link_reply(frame, echo=self.link_echo, tp=tp))

    async def _report(self, conn: _Connection, frame: Frame, at: float) -> None:
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
        log.info("event=station_report peer=%s address=%s afn=%02X", conn.peer, _name(frame.address), frame.afn)
        # A report that arrived intact is confirmed even if its data does not read: the confirm
        # acknowledges receipt, and other_reports shows the problem to the test.
        if self._drop_confirms:
            self._drop_confirms -= 1
            self.confirms_dropped += 1
            log.info(
                "event=station_confirm_dropped peer=%s afn=%02X left=%d", conn.peer, frame.afn, self._drop_confirms
            )
            return
        tp = self._tp(frame.tp.size) if self.confirm_tp and frame.tp is not None else None
        if await self._send_quietly(conn, build_confirm(frame, work_mode=self.confirm_mode, tp=tp)):
            self.confirms_sent += 1

    def _answer(self, conn: _Connection, frame: Frame, at: float) -> None:
        address = frame.address
        if frame.afn == AFN.QUERY_REALTIME and frame.function == FLOW_TYPE:
            try:
                self.realtime.append((address, parse_flow_report(frame), at))
            except SZY206Error as exc:
                log.warning("event=station_bad_answer peer=%s afn=B0 error=%r", conn.peer, str(exc))
        self.answers.append((address, frame, at))
        queues = conn.waiters.get((address, frame.afn), [])
        for queue in queues:
            queue.put_nowait(frame)
        log.info(
            "event=station_answer peer=%s address=%s afn=%02X awaited=%s",
            conn.peer,
            _name(address),
            frame.afn,
            bool(queues),
        )

    # --- frames out ------------------------------------------------------------------------------

    def _record(self, direction: str, conn: _Connection, frame: Frame, at: float) -> None:
        try:
            view = describe(frame)
        except SZY206Error as exc:  # describe reads what the codec decoded; keep the loop alive regardless
            view = {"afn": f"{frame.afn:02X}", "error": str(exc)}
        record = FrameRecord(direction, conn.peer, frame, view, at)
        self.frames.append(record)
        log.debug("event=station_frame dir=%s peer=%s afn=%02X", direction, conn.peer, frame.afn)
        try:
            if self.on_frame is not None:
                self.on_frame(direction, view)
            if self.on_record is not None:
                self.on_record(record)
        except Exception:  # the caller's code: log it, keep serving
            self.callback_errors += 1
            log.exception("event=station_callback_failed dir=%s peer=%s", direction, conn.peer)
        self._notify()

    async def _send(self, conn: _Connection, frame: Frame) -> None:
        if conn.closed or conn.writer.is_closing():
            raise ConnectionError(f"connection to {conn.peer} is closed")
        raw = encode(frame)
        self._record("out", conn, frame, self.clock())
        conn.writer.write(raw)
        await conn.writer.drain()

    async def _send_quietly(self, conn: _Connection, frame: Frame) -> bool:
        """Reply from the read loop: a failed write is logged; the read loop sees the close."""
        try:
            await self._send(conn, frame)
        except (ConnectionError, OSError) as exc:
            log.info("event=station_send_failed peer=%s afn=%02X error=%r", conn.peer, frame.afn, str(exc))
            return False
        return True

    def _tp(self, size: int) -> TimeLabel:
        """The station's time as a Tp of ``size`` (5 or 7) bytes."""
        now = self.now()
        if size == 7:
            return TimeLabel(
                second=now.second,
                minute=now.minute,
                hour=now.hour,
                day=now.day,
                month=now.month,
                year=now.year % 100,
                delay_min=TP_DELAY_MIN,
            )
        return TimeLabel(second=now.second, minute=now.minute, hour=now.hour, day=now.day, delay_min=TP_DELAY_MIN)

    def _own_tp(self) -> TimeLabel | None:
        """Tp of frames the station starts: only when the terminals' Tp length is configured."""
        return self._tp(self.tp_len) if self.tp_len else None

    def _clock_of(self, when: datetime) -> Clock:
        local = when.astimezone(self.tz) if when.tzinfo is not None else when
        return Clock(
            second=local.second,
            minute=local.minute,
            hour=local.hour,
            day=local.day,
            month=local.month,
            year=local.year % 100,
            weekday=local.isoweekday(),
        )

    def _connection(self, address: Address) -> _Connection:
        conn = self._terminals.get(address)
        if conn is None:
            raise UnknownTerminal(f"no terminal {_name(address)} is connected")
        return conn

    # --- queries ---------------------------------------------------------------------------------

    async def query_realtime(
        self, address: Address, timeout: float = QUERY_TIMEOUT_S, *, function: int = FLOW_TYPE
    ) -> Frame:
        """Send B0H to the terminal with ``address`` and return its B0H answer.

        Raises:
            UnknownTerminal: no connection has that address.
            TimeoutError: no answer within ``timeout`` seconds.
            ConnectionError: the connection closed first.
        """
        conn = self._connection(address)
        async with asyncio.timeout(timeout), conn.lock(address):
            with conn.waiting(address, AFN.QUERY_REALTIME) as answers:
                await self._send(conn, build_realtime_query(address, function, tp=self._own_tp()))
                answer = await answers.get()
        if answer is None:
            raise ConnectionError(f"terminal {_name(address)} disconnected before answering B0H")
        return answer

    async def query_stored(
        self,
        address: Address,
        start: datetime,
        end: datetime,
        timeout: float = QUERY_TIMEOUT_S,
        *,
        quiet: float = STORED_QUIET_S,
        function: int = FLOW_TYPE,
    ) -> list[Frame]:
        """Send B1H for [start, end] and collect the B1H answer frames.

        Collection ends ``quiet`` seconds after the last answer frame, or at ``timeout`` overall.
        Naive datetimes are taken as wire time (``utc_offset_h``); aware ones are converted.

        Returns:
            The answer frames in arrival order; empty when the terminal sent none in time.

        Raises:
            UnknownTerminal: no connection has that address.
            ConnectionError: the connection closed before any answer came.
        """
        conn = self._connection(address)
        frames: list[Frame] = []
        closed = False
        query = build_stored_query(
            address, self._clock_of(start), self._clock_of(end), function=function, tp=self._own_tp()
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline), conn.lock(address):
                with conn.waiting(address, AFN.QUERY_STORED) as answers:
                    await self._send(conn, query)
                    while True:
                        if frames:
                            wait = min(quiet, deadline - loop.time())
                            async with asyncio.timeout(max(wait, 0)):
                                answer = await answers.get()
                        else:
                            answer = await answers.get()
                        if answer is None:
                            closed = True
                            break
                        frames.append(answer)
        if closed and not frames:
            raise ConnectionError(f"terminal {_name(address)} disconnected before answering B1H")
        log.info("event=station_stored_answers address=%s frames=%d", _name(address), len(frames))
        return frames

    async def set_clock(
        self,
        address: Address,
        when: datetime | None = None,
        *,
        timeout: float | None = None,
        pw: bytes = DEFAULT_PW,
    ) -> Frame | None:
        """Send 11H setting the terminal's clock to ``when`` (default: the station's clock).

        A naive ``when`` is taken as wire time (``utc_offset_h``); an aware one is converted. With
        ``timeout``, wait for the terminal's 11H answer and return it; without, return None
        once sent.

        Raises:
            UnknownTerminal: no connection has that address.
            TimeoutError: ``timeout`` given and no answer in time.
            ConnectionError: the connection closed first.
        """
        conn = self._connection(address)
        frame = build_set_clock(address, self._clock_of(when or self.now()), pw=pw, tp=self._own_tp())
        if timeout is None:
            await self._send(conn, frame)
            return None
        async with asyncio.timeout(timeout), conn.lock(address):
            with conn.waiting(address, AFN.SET_CLOCK) as answers:
                await self._send(conn, frame)
                answer = await answers.get()
        if answer is None:
            raise ConnectionError(f"terminal {_name(address)} disconnected before answering 11H")
        return answer

    async def _poll(self, interval: float) -> None:
        """Query B0H of every connected terminal every ``interval`` seconds (answers land in records)."""
        while True:
            await asyncio.sleep(interval)
            addresses = list(self._terminals)
            results = await asyncio.gather(
                *(self.query_realtime(a, min(interval, QUERY_TIMEOUT_S)) for a in addresses), return_exceptions=True
            )
            for address, result in zip(addresses, results, strict=True):
                if isinstance(result, BaseException):
                    log.warning("event=station_poll_failed address=%s error=%r", _name(address), repr(result))


def _name(address: Address) -> str:
    """An address for log lines: division/station."""
    return f"{address.division}/{address.station}"
