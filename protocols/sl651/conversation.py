"""One SL651 link as a sans-I/O state machine: bytes and time in, events and frames out.

Strategy (h11's shape, as protocols/szy206/conversation.py): a :class:`Conversation` holds all the
state of one link - the bytes of a frame not yet complete, the requests that await an answer
(their deadline, their tries), the reports acknowledged lately, the next serial number - and
does no I/O. The caller owns the socket, the event loop and the clocks::

    conv.receive_data(chunk, now)          # bytes read at now (ms, a clock that does not jump)
    while (event := conv.next_event()) is not NEED_DATA:
        handle(event)                      # Acknowledged, Resend, ReportReceived, QueryReceived...
    request = conv.request(frame, now)     # then write encode(frame)
    conv.tick(now)                         # at conv.next_deadline(): resends, give-ups, resyncs

Two roles, one rule book (SL651-2014 section 6.5, docs/sl651.md):

- ``STATION`` sends reports (30H..36H) and keep-alives (2FH) and answers the centre's queries.
  A report awaits the centre's acknowledgement: a downlink frame of the same function carrying
  the report's serial number. Unanswered within ``timeout_ms`` it is sent again, the same frame
  with the same serial number, up to ``tries`` times in all; then :class:`GaveUp` - the report is
  not delivered and the caller keeps it. An acknowledgement ending in NAK asks for it again at
  once. Serial numbers run 1..65535 and wrap to 1 (:meth:`Conversation.next_serial`; the caller
  keeps the last one across restarts and passes it back as ``serial``).
- ``CENTRE`` receives reports and acknowledges them when told to (:meth:`acknowledge`, after the
  report is kept). A copy of a report acknowledged lately (same station, function, serial and
  send time: the station resent after a lost acknowledgement) is :class:`ReportRepeated`, to be
  acknowledged again and kept once. Its queries await the station's answer: the first uplink
  frame of the same station and function (the answer carries the station's own serial).
- A frame in this side's own direction is :class:`Misdirected`, never answered; a frame whose
  body cannot be read is :class:`Refused` and counted.
- A partial frame left idle for ``idle_ms`` is given up (the reassembler resyncs) at the next
  :meth:`tick`.
"""

from __future__ import annotations

import enum
from collections import OrderedDict, deque
from datetime import datetime

from .body import Body, parse_body
from .codes import ESC, NAK, REPORTS, Function
from .errors import LocalProtocolError, SL651Error
from .events import (
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
    Request,
    Resend,
    Unsolicited,
)
from .frame import Direction, Frame
from .messages import build_ack, build_answer
from .stream import NEED_DATA, NeedData, Reassembler

_Key = tuple[bytes, int, int]  # station, function, serial (the centre's answers: serial -1)


class Role(enum.Enum):
    STATION = "station"  # sends uplink frames
    CENTRE = "centre"  # sends downlink frames


class _Pending:
    __slots__ = ("deadline", "left", "request")

    def __init__(self, request: Request, deadline: int | None) -> None:
        self.request = request
        self.left = request.tries - 1
        self.deadline = deadline


class Conversation:
    """The state of one link, for either end (see the module docstring)."""

    def __init__(
        self,
        role: Role,
        *,
        timeout_ms: int | None = 10_000,
        tries: int = 3,
        idle_ms: int = 5_000,
        serial: int = 0,
        remembered: int = 256,
    ) -> None:
        if tries < 1:
            raise LocalProtocolError("tries must be at least 1")
        self.role = role
        self.timeout_ms = timeout_ms
        self.tries = tries
        self.idle_ms = idle_ms
        self.serial = serial
        self._mine = Direction.UP if role is Role.STATION else Direction.DOWN
        self._reader = Reassembler()
        self._events: deque[Event] = deque()
        self._pending: dict[_Key, _Pending] = {}
        self._acked: OrderedDict[tuple[bytes, int, int, object], None] = OrderedDict()
        self._remembered = remembered
        self._last_bytes: int | None = None
        self.frames_received = 0
        self.frames_refused = 0

    # -- counters -------------------------------------------------------------------------------

    @property
    def bytes_discarded(self) -> int:
        return self._reader.bytes_discarded

    @property
    def frames_rejected(self) -> int:
        return self._reader.frames_rejected + self.frames_refused

    @property
    def buffered(self) -> int:
        return self._reader.buffered

    def next_serial(self) -> int:
        """The serial number for the next frame this side starts (1..65535, then 1 again)."""
        self.serial = self.serial % 0xFFFF + 1
        return self.serial

    # -- input ----------------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview, now: int) -> None:
        """Bytes read from the link at ``now``."""
        self._reader.feed(data)
        self._last_bytes = now
        while (frame := self._reader.next_frame()) is not NEED_DATA:
            self._dispatch(frame, now)

    def receive_frame(self, frame: Frame, now: int) -> None:
        """A frame decoded elsewhere (a test, a replay)."""
        self._dispatch(frame, now)

    def next_event(self) -> Event | NeedData:
        return self._events.popleft() if self._events else NEED_DATA

    def tick(self, now: int) -> None:
        """Resend or give up requests whose deadline passed; give up an idle partial frame."""
        for key, pending in list(self._pending.items()):
            if pending.deadline is not None and now >= pending.deadline:
                self._expire(key, pending, now)
        if self._last_bytes is not None and self._reader.buffered and now - self._last_bytes >= self.idle_ms:
            while self._reader.buffered:
                self._reader.resync()
                while (frame := self._reader.next_frame()) is not NEED_DATA:
                    self._dispatch(frame, now)
            self._last_bytes = None

    def next_deadline(self) -> int | None:
        """When :meth:`tick` has something to do next, or None."""
        times = [p.deadline for p in self._pending.values() if p.deadline is not None]
        if self._last_bytes is not None and self._reader.buffered:
            times.append(self._last_bytes + self.idle_ms)
        return min(times, default=None)

    # -- output ---------------------------------------------------------------------------------

    def request(self, frame: Frame, now: int, *, tries: int | None = None) -> Request:
        """Register ``frame`` (a report from a station, a query from a centre), sent at ``now``,
        as awaiting its answer. The caller writes ``encode(frame)``."""
        if frame.direction is not self._mine:
            raise LocalProtocolError("a frame in the other side's direction")
        if self.role is Role.STATION and frame.function not in REPORTS:
            raise LocalProtocolError(f"function {frame.function:02X}H awaits no acknowledgement")
        body = parse_body(frame)
        serial = -1 if body.serial is None else body.serial
        key = self._key(frame, serial)
        if key in self._pending:
            raise LocalProtocolError("a request with the same key already awaits its answer")
        request = Request(frame, serial, self.tries if tries is None else tries)
        self._pending[key] = _Pending(request, self._deadline(now))
        return request

    def awaits(self, request: Request) -> bool:
        pending = self._pending.get(self._key(request.frame, request.serial))
        return pending is not None and pending.request is request

    def cancel(self, request: Request) -> None:
        if self.awaits(request):
            del self._pending[self._key(request.frame, request.serial)]

    def acknowledge(self, report: Frame, body: Body, send_time: datetime, *, end: int = ESC) -> Frame:
        """The centre's acknowledgement of ``report`` (remembered, so a copy is a repeat)."""
        if self.role is not Role.CENTRE or report.function not in REPORTS or body.serial is None:
            raise LocalProtocolError("only a centre acknowledges, and only reports")
        self._acked[(report.station, report.function, body.serial, body.send_time)] = None
        while len(self._acked) > self._remembered:
            self._acked.popitem(last=False)
        return build_ack(report, body.serial, send_time, end=end)

    def answer(self, query: Frame, body: Body) -> Frame:
        """The station's answer to ``query`` with ``body``."""
        if self.role is not Role.STATION:
            raise LocalProtocolError("only a station answers queries")
        return build_answer(query, body)

    # -- internals ------------------------------------------------------------------------------

    def _key(self, frame: Frame, serial: int) -> _Key:
        if frame.function in REPORTS:
            return (frame.station, frame.function, serial)
        return (frame.station, frame.function, -1)  # a query: answered with the station's serial

    def _deadline(self, now: int) -> int | None:
        return None if self.timeout_ms is None else now + self.timeout_ms

    def _expire(self, key: _Key, pending: _Pending, now: int) -> None:
        if pending.left <= 0:
            del self._pending[key]
            self._events.append(GaveUp(request=pending.request, at=now))
            return
        pending.left -= 1
        pending.deadline = self._deadline(now)
        self._events.append(Resend(request=pending.request, frame=pending.request.frame, at=now))

    def _dispatch(self, frame: Frame, now: int) -> None:
        self.frames_received += 1
        if frame.direction is self._mine:
            self._events.append(Misdirected(frame=frame, at=now))
            return
        try:
            body = parse_body(frame)
        except SL651Error as exc:
            self.frames_refused += 1
            self._events.append(Refused(frame=frame, reason=str(exc), at=now))
            return
        if self.role is Role.STATION:
            self._at_station(frame, body, now)
        else:
            self._at_centre(frame, body, now)

    def _at_station(self, frame: Frame, body: Body, now: int) -> None:
        serial = -1 if body.serial is None else body.serial
        pending = self._pending.get((frame.station, frame.function, serial))
        if frame.function in REPORTS and pending is not None:
            key = (frame.station, frame.function, serial)
            if frame.end == NAK:  # asked again: resend now, as a try
                self._expire(key, pending, now)
                return
            del self._pending[key]
            self._events.append(Acknowledged(request=pending.request, frame=frame, at=now))
        elif frame.function in REPORTS:
            self._events.append(Unsolicited(frame=frame, at=now))
        else:
            self._events.append(QueryReceived(frame=frame, body=body, at=now))

    def _at_centre(self, frame: Frame, body: Body, now: int) -> None:
        function = frame.function
        key = (frame.station, function, -1)
        pending = self._pending.get(key) if function not in REPORTS or function == Function.PICTURE else None
        if pending is not None:
            del self._pending[key]
            self._events.append(Answered(request=pending.request, frame=frame, body=body, at=now))
        elif function == Function.KEEP_ALIVE:
            self._events.append(KeepAlive(frame=frame, at=now))
        elif function in REPORTS:
            seen = (frame.station, function, body.serial, body.send_time) in self._acked
            event = ReportRepeated if seen else ReportReceived
            self._events.append(event(frame=frame, body=body, at=now))
        else:
            self._events.append(Unsolicited(frame=frame, at=now))
