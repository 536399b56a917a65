"""One SZY206 link as a sans-I/O state machine: bytes and time in, events and frames out.

Strategy (h11's shape): a :class:`Conversation` holds all the state of one link - the bytes held
of a frame not yet complete, the requests that await an answer (their FCB, their deadline), the
self-reports being committed and the last one confirmed - and does no I/O. The caller owns the
socket or serial port, the event loop and the clocks::

    conv.receive_data(chunk, now)          # bytes read at now (ms)
    while (event := conv.next_event()) is not NEED_DATA:
        handle(event)                      # Answered, Resend, ReportReceived, QueryReceived, ...
    request = conv.request(frame, now)     # then write encode(request.frame)
    conv.tick(now)                         # at conv.next_deadline(): resends, give-ups, resyncs

Times are ms on a clock that does not jump (a monotonic one); wall-clock time appears only in
what the caller passes to build a frame (a confirm's Tp). Frames go out only as return values
(:meth:`Conversation.request`, :meth:`Conversation.confirm`) and :class:`~.events.Resend` events.

Two roles, one rule book (docs/szy206.md; SZY206-2016 section 4, notes section 4):

- ``CENTRE`` sends downlink frames: queries, confirms, link replies. The meter driver (it polls
  meters and confirms their self-reports) and the central-station simulator.
- ``TERMINAL`` sends uplink frames: self-reports, link checks, answers. The site terminal (the
  agent reporting to a station) and the meter simulator.

The rules:

- A request goes out with FCB 3; a try that gets no answer within ``timeout_ms`` is sent again
  with the FCB one lower, up to ``tries`` times (3, 2, 1, 0: "when FCB reaches 0 the transfer
  has failed"), then the request gave up. With ``timeout_ms=None`` the caller times the tries
  and asks for the next with :meth:`Conversation.retry`.
- The answer is the first frame from the other side with the request's address and AFN, with
  any FCB: a slow answer to the first try is as good as one to the second, and some terminals
  do not echo the FCB. A confirm must read as one (at most one data byte). One request per
  (address, AFN) at a time: answers carry nothing else to match them by.
- The centre confirms a self-report only when told to (:meth:`Conversation.confirm`); a caller
  that must first make it durable :meth:`~Conversation.take` s it, so that a copy arriving
  while the commit runs is answered by the confirm that follows (with that copy's FCB) instead
  of being handed over again. A copy with a lower FCB than the one confirmed last is the sender
  resending after a lost confirm: it is reported as a repeat, to be confirmed again. A report
  nobody confirms is remembered by nobody: its copies come out as new.
- A frame in this side's own direction (an echo, another master) is reported, never answered.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, replace

from .errors import LocalProtocolError, SZY206Error
from .events import (
    Answered,
    Event,
    GaveUp,
    LinkCheck,
    Misdirected,
    QueryReceived,
    Refused,
    ReportReceived,
    ReportRepeated,
    Request,
    Resend,
    Taking,
    Unsolicited,
)
from .fields import Address, TimeLabel
from .frame import Frame
from .layout import AFN
from .line import LineReader
from .messages import build_confirm, parse_confirm
from .stream import NEED_DATA, NeedData

MAX_TRIES = 4  # FCB 3, 2, 1, 0
FIRST_FCB = 3
CONFIRMED_AFNS = frozenset({AFN.REPORT, AFN.ALARM_REPORT, AFN.MANUAL_REPORT, AFN.PICTURE_REPORT, AFN.VOLTAGE_REPORT})
"""Uplink AFNs a centre answers with a confirm of the same AFN."""

_Content = tuple[int, int, bytes, TimeLabel | None]  # what makes two copies one report


class Role(enum.Enum):
    """Which way this side sends."""

    CENTRE = "centre"  # downlink: queries, confirms, link replies
    TERMINAL = "terminal"  # uplink: self-reports, link checks, answers


@dataclass(slots=True)
class _Pending:
    request: Request
    fcb: int
    deadline: int | None
    noise_mark: int  # line noise counted when the request went out


@dataclass(slots=True)
class _Commit:
    content: _Content
    latest: Frame  # the last copy that arrived


def _content(frame: Frame) -> _Content:
    return frame.afn, frame.function, frame.data, frame.tp


class Conversation:
    """The state of one SZY206 link, for one side of it (see the module docstring).

    Args:
        role: the side this conversation speaks for.
        timeout_ms: how long each try of a request waits for its answer; None: the caller times
            the tries (:meth:`retry`).
        tries: tries per request, 1..4, unless a request says otherwise.
        resync_after_ms: idle ms after which a partial frame is given up; None: never.
        tp_len: the Tp length of received frames, None to infer it per frame.
        pw: whether received frames carry PW, None for the default policy.
        confirm_work_mode: the work-mode byte of the centre's confirms (0..3), None for none.

    Raises:
        ValueError: a setting out of range.
    """

    def __init__(
        self,
        role: Role,
        *,
        timeout_ms: int | None = None,
        tries: int = MAX_TRIES,
        resync_after_ms: int | None = None,
        tp_len: int | None = None,
        pw: bool | None = None,
        confirm_work_mode: int | None = 0,
    ) -> None:
        if timeout_ms is not None and timeout_ms <= 0:
            raise ValueError(f"timeout_ms must be positive, got {timeout_ms}")
        _check_tries(tries)
        if confirm_work_mode is not None and not 0 <= confirm_work_mode <= 3:
            raise ValueError(f"confirm_work_mode must be 0..3 or None, got {confirm_work_mode}")
        self.role = role
        self.timeout_ms = timeout_ms
        self.tries = tries
        self.confirm_work_mode = confirm_work_mode
        self._line = LineReader(resync_after_ms=resync_after_ms, tp_len=tp_len, pw=pw)
        self._events: deque[Event] = deque()
        self._awaiting: dict[tuple[Address, int], _Pending] = {}
        self._commits: dict[Taking, _Commit] = {}
        self._committing: dict[Address, Taking] = {}  # the latest report taken of each sender
        self._confirmed: dict[Address, tuple[_Content, int]] = {}  # content and FCB confirmed last

    # -- what was thrown away (the line's counters) ---------------------------------------------

    @property
    def bytes_discarded(self) -> int:
        return self._line.bytes_discarded

    @property
    def frames_rejected(self) -> int:
        return self._line.frames_rejected

    @property
    def frames_received(self) -> int:
        return self._line.frames_received

    @property
    def resyncs(self) -> int:
        return self._line.resyncs

    @property
    def last_error(self) -> str | None:
        return self._line.last_error

    @property
    def buffered(self) -> int:
        return self._line.buffered

    def drop_buffered(self, *, count: bool = False) -> int:
        """Forget the bytes held (a new connection: they never join its bytes). Requests and
        reports are kept. ``count``: add them to the discarded bytes. Returns how many."""
        return self._line.drop_buffered(count=count)

    # -- input ----------------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview, now: int) -> None:
        """Take bytes read at ``now``; what they complete comes out of :meth:`next_event`."""
        self._line.feed(data, now)
        self._read_frames(now)

    def receive_frame(self, frame: Frame, now: int) -> None:
        """Take a frame found by a reader of the caller's own (a line shared by several
        conversations), as if its bytes had arrived at ``now``."""
        self._dispatch(frame, now)

    def tick(self, now: int) -> None:
        """Let time pass: a partial frame idle too long is given up (frames behind it come out),
        then each try whose time is up is resent or its request gives up."""
        if self._line.tick(now):
            self._read_frames(now)
        for pending in list(self._awaiting.values()):
            if pending.deadline is not None and pending.deadline <= now:
                self._expire(pending, now)

    def next_deadline(self) -> int | None:
        """The earliest time :meth:`tick` has something to do, or None."""
        deadlines = [p.deadline for p in self._awaiting.values() if p.deadline is not None]
        line = self._line.deadline()
        if line is not None:
            deadlines.append(line)
        return min(deadlines, default=None)

    def next_event(self) -> Event | NeedData:
        """The next event, or NEED_DATA when there is none until more bytes or time come."""
        return self._events.popleft() if self._events else NEED_DATA

    # -- requests -------------------------------------------------------------------------------

    def request(self, frame: Frame, now: int, *, tries: int | None = None) -> Request:
        """Send ``frame`` (as ``request.frame``, FCB 3) and await its answer.

        Raises:
            LocalProtocolError: the frame goes the other side's way, or an answer with its
                address and AFN is awaited already.
            ValueError: ``tries`` outside 1..4.
        """
        self._check_direction(frame)
        key = (frame.address, frame.afn)
        if key in self._awaiting:
            raise LocalProtocolError(f"an answer with AFN {frame.afn:02X}H from this address is awaited already")
        count = self.tries if tries is None else _check_tries(tries)
        first = frame if frame.fcb == FIRST_FCB else replace(frame, fcb=FIRST_FCB)
        request = Request(first, count)
        deadline = None if self.timeout_ms is None else now + self.timeout_ms
        self._awaiting[key] = _Pending(request, FIRST_FCB, deadline, self._noise())
        return request

    def retry(self, request: Request, now: int = 0) -> Frame | None:
        """The caller timed a try out: the next try's frame (FCB one lower), or None when that
        was the last (the request gave up; no event). ``now`` times the next try, if timed."""
        pending = self._awaiting.get((request.address, request.afn))
        if pending is None or pending.request is not request:
            return None
        return self._next_try(pending, now)

    def cancel(self, request: Request) -> None:
        """Stop awaiting ``request``'s answer (the caller gave up, or the link is gone)."""
        key = (request.address, request.afn)
        pending = self._awaiting.get(key)
        if pending is not None and pending.request is request:
            del self._awaiting[key]

    def awaits(self, request: Request) -> bool:
        """Whether ``request`` still awaits its answer."""
        pending = self._awaiting.get((request.address, request.afn))
        return pending is not None and pending.request is request

    def _next_try(self, pending: _Pending, now: int) -> Frame | None:
        request = pending.request
        if FIRST_FCB - pending.fcb + 1 >= request.tries:
            del self._awaiting[(request.address, request.afn)]
            return None
        pending.fcb -= 1
        if pending.deadline is not None:
            pending.deadline = now + (self.timeout_ms or 0)
        return replace(request.frame, fcb=pending.fcb)

    def _expire(self, pending: _Pending, now: int) -> None:
        request = pending.request
        frame = self._next_try(pending, now)
        if frame is None:
            noise = self._noise() - pending.noise_mark + self._line.buffered
            self._events.append(GaveUp(request=request, noise=noise, at=now))
        else:
            self._events.append(Resend(request=request, frame=frame, at=now))

    def _noise(self) -> int:
        return self._line.bytes_discarded + self._line.frames_rejected

    # -- self-reports (centre) ------------------------------------------------------------------

    def take(self, report: Frame) -> Taking:
        """The caller starts making ``report`` durable: until :meth:`confirm` or :meth:`abandon`,
        its copies are :class:`~.events.ReportRepeated` with ``committing`` set.

        Raises:
            LocalProtocolError: this side is no centre, or ``report`` is no uplink report.
        """
        self._check_report(report)
        taking = Taking(report)
        self._commits[taking] = _Commit(_content(report), report)
        self._committing[report.address] = taking
        return taking

    def confirm(self, report: Frame | Taking, *, tp: TimeLabel | None = None) -> Frame:
        """The confirm to send for a report (for a taken one, of its latest copy): same AFN,
        address and FCB, DIR 0, the type code echoed, the work-mode byte, ``tp``.

        From now on a copy of it with a lower FCB is a repeat, to be confirmed again.

        Raises:
            LocalProtocolError: this side is no centre, or ``report`` is no uplink report.
        """
        if isinstance(report, Taking):
            commit = self._end_commit(report)
            frame = report.frame if commit is None else commit.latest
        else:
            frame = report
        self._check_report(frame)
        self._confirmed[frame.address] = (_content(frame), frame.fcb)
        return build_confirm(frame, work_mode=self.confirm_work_mode, tp=tp)

    def abandon(self, taking: Taking) -> None:
        """The report could not be made durable: no confirm; its copies are new again."""
        self._end_commit(taking)

    def _end_commit(self, taking: Taking) -> _Commit | None:
        if self._committing.get(taking.frame.address) is taking:
            del self._committing[taking.frame.address]
        return self._commits.pop(taking, None)

    def _report(self, frame: Frame, now: int) -> None:
        address, content = frame.address, _content(frame)
        taking = self._committing.get(address)
        commit = None if taking is None else self._commits.get(taking)
        if commit is not None and commit.content == content:
            commit.latest = frame
            self._events.append(ReportRepeated(frame=frame, at=now, committing=True))
            return
        last = self._confirmed.get(address)
        if last is not None and last[0] == content and frame.fcb < last[1]:
            self._confirmed[address] = (content, frame.fcb)
            self._events.append(ReportRepeated(frame=frame, at=now, committing=False))
            return
        self._events.append(ReportReceived(frame=frame, at=now))

    # -- what arrives ---------------------------------------------------------------------------

    def _read_frames(self, now: int) -> None:
        line = self._line
        while (frame := line.next_frame()) is not NEED_DATA:
            self._dispatch(frame, now)

    def _dispatch(self, frame: Frame, now: int) -> None:
        centre = self.role is Role.CENTRE
        if frame.up != centre:
            self._events.append(Misdirected(frame=frame, at=now))
            return
        if not centre and frame.afn in CONFIRMED_AFNS:
            try:
                parse_confirm(frame)
            except SZY206Error as exc:
                self._events.append(Refused(frame=frame, at=now, reason=str(exc)))
                return
        pending = self._awaiting.pop((frame.address, frame.afn), None)
        if pending is not None:
            self._events.append(Answered(request=pending.request, frame=frame, at=now))
        elif centre and frame.afn in CONFIRMED_AFNS:
            self._report(frame, now)
        elif centre and frame.afn == AFN.LINK:
            self._events.append(LinkCheck(frame=frame, at=now))
        elif centre or frame.afn in CONFIRMED_AFNS or frame.afn == AFN.LINK:
            self._events.append(Unsolicited(frame=frame, at=now))
        else:
            self._events.append(QueryReceived(frame=frame, at=now))

    # -- checks ---------------------------------------------------------------------------------

    def _check_direction(self, frame: Frame) -> None:
        if frame.up != (self.role is Role.TERMINAL):
            raise LocalProtocolError(f"a {self.role.value} sends {'downlink' if frame.up else 'uplink'} frames only")

    def _check_report(self, frame: Frame) -> None:
        if self.role is not Role.CENTRE:
            raise LocalProtocolError("only a centre confirms self-reports")
        if not frame.up or frame.afn not in CONFIRMED_AFNS:
            raise LocalProtocolError(f"AFN {frame.afn:02X}H (DIR {int(frame.direction)}) is no self-report to confirm")


def _check_tries(tries: int) -> int:
    if not 1 <= tries <= MAX_TRIES:
        raise ValueError(f"tries must be 1..{MAX_TRIES} (FCB counts down from 3), got {tries}")
    return tries
