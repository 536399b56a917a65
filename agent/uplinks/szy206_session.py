"""One TCP connection of the site terminal to its central station.

What is said on it follows one :class:`~meterlink.protocols.szy206.Conversation` in the
terminal's role (protocols/szy206/conversation.py: FCB countdown, confirms and link replies
matched to what awaits them), run by a :class:`~meterlink.drivers.szy206.Pump` on the loop's
clock. This module keeps the I/O: the stream, the requests' outcome queues, and the read loop
that hands every other event, in order, to the terminal.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from meterlink.drivers.szy206 import Pump
from meterlink.protocols.szy206 import (
    Answered,
    Conversation,
    Event,
    Frame,
    GaveUp,
    Misdirected,
    QueryReceived,
    Refused,
    Request,
    Resend,
    Role,
    Unsolicited,
    encode,
)

log = logging.getLogger("meterlink.szy206")

Outcome = Answered | Resend | GaveUp | None  # None: the connection is gone
Heard = Answered | QueryReceived | Unsolicited | Misdirected | Refused  # what a station says


@dataclass
class TerminalStats:
    connections: int = 0
    reports_sent: int = 0
    reports_confirmed: int = 0
    resends: int = 0
    reports_given_up: int = 0
    queries_answered: int = 0
    frames_rejected: int = 0
    last_error: str = ""


class StationSession:
    """The conversation with the station over one connection.

    Args:
        reader: the connection's stream.
        writer: its writer.
        confirm_timeout: seconds a try waits for its confirm or link reply.
        tries: tries of a report (FCB 3 down to 4 - tries).
        stats: the terminal's counts (frames rejected).
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        confirm_timeout: float,
        tries: int,
        stats: TerminalStats,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.stats = stats
        # What we send follows time_label; what stations send varies (queries often carry no Tp).
        self.conversation = Conversation(Role.TERMINAL, timeout_ms=max(1, round(confirm_timeout * 1000)), tries=tries)
        self.pump = Pump(self.conversation, self._on_event)
        self.lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._outcomes: dict[Request, asyncio.Queue[Outcome]] = {}
        self._heard: deque[Heard] = deque()
        self._rejected = 0

    # -- sending ----------------------------------------------------------------------------------

    async def send(self, frame: Frame) -> None:
        """Write one frame.

        Raises:
            ConnectionError: the connection is gone (and is then lost).
        """
        if self.writer.is_closing():
            raise ConnectionError("not connected")
        self.writer.write(encode(frame))
        try:
            await self.writer.drain()
        except ConnectionError as exc:
            self.lose(str(exc))
            raise

    def start(self, frame: Frame, *, tries: int | None = None) -> tuple[Request, asyncio.Queue[Outcome]]:
        """Await the answer to ``frame`` (send ``request.frame`` next); its resends, answer or
        give-up come in the queue, None when the connection is gone. End with :meth:`end`."""
        request = self.pump.request(frame, tries=tries)
        outcomes: asyncio.Queue[Outcome] = asyncio.Queue()
        self._outcomes[request] = outcomes
        return request, outcomes

    def end(self, request: Request) -> None:
        """Stop awaiting ``request``."""
        self._outcomes.pop(request, None)
        self.pump.cancel(request)

    async def ask(self, frame: Frame) -> Frame | None:
        """Send ``frame`` once and return its answer, None when none came in time.

        Raises:
            ConnectionError: the connection is gone.
        """
        request, outcomes = self.start(frame, tries=1)
        try:
            await self.send(request.frame)
            outcome = await outcomes.get()
        finally:
            self.end(request)
        if outcome is None:
            raise ConnectionError("link closed")
        return outcome.frame if isinstance(outcome, Answered) else None

    # -- receiving --------------------------------------------------------------------------------

    async def read_loop(self, heard: Callable[[Heard], Awaitable[None]]) -> None:
        """Read until the connection ends; every event that answers no request of ours goes to
        ``heard``, one at a time, in order (confirms and link replies go there too, after
        their request had them)."""
        conversation = self.conversation
        while True:
            try:
                chunk = await self.reader.read(4096)
            except ConnectionError as exc:
                self.lose(str(exc))
                return
            if not chunk:
                self.lose("station closed the connection")
                return
            self.pump.feed(chunk)
            while self._heard:
                await heard(self._heard.popleft())
            if conversation.frames_rejected > self._rejected:
                log.warning(
                    "event=szy206_bad_bytes discarded=%d rejected=%d last=%r",
                    conversation.bytes_discarded,
                    conversation.frames_rejected,
                    conversation.last_error,
                )
                self.stats.frames_rejected += conversation.frames_rejected - self._rejected
                self._rejected = conversation.frames_rejected

    def _on_event(self, event: Event) -> None:
        if isinstance(event, Answered | Resend | GaveUp):
            outcomes = self._outcomes.get(event.request)
            if outcomes is not None:
                outcomes.put_nowait(event)
        if isinstance(event, Answered | QueryReceived | Unsolicited | Misdirected | Refused):
            self._heard.append(event)

    # -- the end ----------------------------------------------------------------------------------

    def lose(self, reason: str) -> None:
        """The connection is gone (or to be closed) for ``reason``."""
        if not self.lost.done():
            self.lost.set_result(reason)

    def drop(self) -> None:
        """Close the connection; what awaits an answer gets None."""
        self.pump.stop()
        for outcomes in self._outcomes.values():
            outcomes.put_nowait(None)
        self._outcomes.clear()
        self.writer.close()
