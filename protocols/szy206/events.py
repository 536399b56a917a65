"""What a :class:`~.conversation.Conversation` reports, and the handles it gives out.

Events are frozen value objects (h11's shape), built only by the conversation. ``at`` is the time
the caller passed with the bytes (or the tick) that caused the event, in the caller's ms.

Handles compare by identity: :class:`Request` (a frame that awaits an answer) and :class:`Taking`
(a self-report whose commit runs) are keys the caller hands back to the conversation.
"""

from __future__ import annotations

from dataclasses import dataclass

from .fields import Address
from .frame import Frame


@dataclass(frozen=True, slots=True, eq=False)
class Request:
    """A frame sent that awaits an answer: the first try, with FCB 3, and how many tries it gets."""

    frame: Frame
    tries: int

    @property
    def address(self) -> Address:
        return self.frame.address

    @property
    def afn(self) -> int:
        """The AFN of the request, and of its answer."""
        return self.frame.afn


@dataclass(frozen=True, slots=True, eq=False)
class Taking:
    """A self-report the centre has taken: copies that arrive while it is committed are answered
    by its confirm."""

    frame: Frame


class Event:
    """Base of everything a conversation reports."""

    __slots__ = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Answered(Event):
    """The answer ``request`` awaited (a confirm, a link reply, a query's answer) arrived."""

    request: Request
    frame: Frame
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Resend(Event):
    """A try of ``request`` timed out: send ``frame`` (the request with the FCB one lower) now."""

    request: Request
    frame: Frame
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class GaveUp(Event):
    """The last try of ``request`` timed out: it failed.

    ``noise`` counts the bytes and refused candidate frames thrown away since the request was
    sent, and the bytes still held: a line that spoke without saying anything valid (a bad CRC,
    garbage) rather than a silent one.
    """

    request: Request
    noise: int
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportReceived(Event):
    """Centre: a self-report (C0H, 81H-84H) new to this conversation. Confirm it, or take it
    (:meth:`~.conversation.Conversation.take`) and confirm it once it is durable."""

    frame: Frame
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportRepeated(Event):
    """Centre: a copy of a report already taken (``committing``: its confirm, still to come,
    answers this copy) or already confirmed (the sender missed our confirm: confirm it again)."""

    frame: Frame
    at: int
    committing: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkCheck(Event):
    """Centre: a terminal's link frame (02H: login, logout, keep-alive)."""

    frame: Frame
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryReceived(Event):
    """Terminal: a downlink query or command (B0H, B1H, 11H, 51H, ...) to answer or refuse."""

    frame: Frame
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Unsolicited(Event):
    """A reply nothing awaits: an answer after its request gave up or was cancelled, a confirm
    or link reply of nothing, an uplink frame the centre did not ask for."""

    frame: Frame
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Misdirected(Event):
    """A frame going the way this side sends: an RS-485 adapter's echo, another master, a
    terminal that sends downlink frames."""

    frame: Frame
    at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Refused(Event):
    """Terminal: a confirm that does not read as one (more than one data byte); it answers nothing."""

    frame: Frame
    at: int
    reason: str
