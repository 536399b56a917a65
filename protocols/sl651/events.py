"""What a :class:`~.conversation.Conversation` reports, and the handle it gives out.

Events are frozen value objects (h11's shape), built only by the conversation. ``at`` is the time
the caller passed with the bytes (or the tick) that caused the event, in the caller's ms.
:class:`Request` (a frame that awaits an answer) compares by identity: the caller hands it back.
"""

from __future__ import annotations

from dataclasses import dataclass

from .body import Body
from .frame import Frame


@dataclass(frozen=True, slots=True, eq=False)
class Request:
    """A frame sent that awaits an answer: a station's report (the centre's acknowledgement) or a
    centre's query (the station's answer). ``serial`` is the body's serial number."""

    frame: Frame
    serial: int
    tries: int

    @property
    def function(self) -> int:
        return self.frame.function


class Event:
    """Base of everything a conversation reports."""

    __slots__ = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Acknowledged(Event):
    """The centre acknowledged the report ``request`` (``frame`` is the acknowledgement)."""

    request: Request
    frame: Frame
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Answered(Event):
    """The station answered the query ``request``."""

    request: Request
    frame: Frame
    body: Body
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Resend(Event):
    """A try of ``request`` got no answer in time, or the centre asked again (NAK): send
    ``frame`` (the same frame, same serial number) now."""

    request: Request
    frame: Frame
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class GaveUp(Event):
    """Every try of ``request`` went unanswered: a report stays undelivered (the caller keeps it
    and sends it again later, with its own times)."""

    request: Request
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportReceived(Event):
    """A station's report (30H..36H) the centre had not seen: acknowledge it once it is kept."""

    frame: Frame
    body: Body
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportRepeated(Event):
    """A copy of a report already acknowledged (its acknowledgement was lost): acknowledge it
    again, keep nothing twice."""

    frame: Frame
    body: Body
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class KeepAlive(Event):
    """A station's link keep-alive (2FH); nothing to answer."""

    frame: Frame
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryReceived(Event):
    """A centre's query or command (a downlink frame that is no acknowledgement): answer it
    with :meth:`~.conversation.Conversation.answer`."""

    frame: Frame
    body: Body
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Unsolicited(Event):
    """A frame from the other side that nothing awaits (a late answer, an acknowledgement of
    nothing sent)."""

    frame: Frame
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Misdirected(Event):
    """A frame in this side's own direction (an echo, another master): never answered."""

    frame: Frame
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Refused(Event):
    """A frame whose framing and CRC are sound but whose body is not (``reason`` says why)."""

    frame: Frame
    reason: str
    at: int
