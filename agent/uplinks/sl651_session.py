"""One TCP connection of the SL651 station to its centre.

What is said on it follows one :class:`~meterlink.protocols.sl651.Conversation` in the station's
role (protocols/sl651/conversation.py: a report awaits the acknowledgement carrying its serial
number, is resent as the same frame when none comes in time or the centre says NAK, and is given
up after its tries). This module keeps the I/O: the stream, the clock that drives the
conversation's deadlines, the reports' outcome queues, and the read loop that hands every other
event, in order, to the station.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from meterlink.protocols.sl651 import NEED_DATA, Conversation, Frame, Role, encode
from meterlink.protocols.sl651.events import (
    Acknowledged,
    Event,
    GaveUp,
    Misdirected,
    QueryReceived,
    Refused,
    Request,
    Resend,
    Unsolicited,
)

log = logging.getLogger("meterlink.sl651")

Outcome = Acknowledged | Resend | GaveUp | None  # None: the connection is gone
Heard = QueryReceived | Unsolicited | Misdirected | Refused  # what a centre says besides acknowledgements


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


@dataclass
class StationStats:
    """What the station did since the agent started (the demo's and the tests' figures)."""

    connections: int = 0
    reports_sent: int = 0  # every frame of a report written, resends included
    reports_acknowledged: int = 0
    resends: int = 0  # frames written again: no acknowledgement in time, or NAK, or after a give-up
    reports_given_up: int = 0  # all tries unanswered: kept for the next attempt
    keep_alives: int = 0
    queries_answered: int = 0
    frames_rejected: int = 0
    last_error: str = ""


class CentreSession:
    """The conversation with the centre over one connection.

    Args:
        reader: the connection's stream.
        writer: its writer.
        ack_timeout: seconds a try waits for its acknowledgement.
        tries: tries of a report before it is given up.
        stats: the station's counts.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        ack_timeout: float,
        tries: int,
        stats: StationStats,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.stats = stats
        self.conversation = Conversation(Role.STATION, timeout_ms=max(1, round(ack_timeout * 1000)), tries=tries)
        self.lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._outcomes: dict[Request, asyncio.Queue[Outcome]] = {}
        self._heard: deque[Heard] = deque()
        self._deadline_moved = asyncio.Event()
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

    def start(self, report: Frame) -> asyncio.Queue[Outcome]:
        """Await the acknowledgement of ``report`` (write it next): its resends, acknowledgement or
        give-up come in the queue, None when the connection is gone. End with :meth:`end`."""
        request = self.conversation.request(report, monotonic_ms())
        outcomes: asyncio.Queue[Outcome] = asyncio.Queue()
        self._outcomes[request] = outcomes
        self._deadline_moved.set()
        return outcomes

    def end(self, report: Frame) -> None:
        """Stop awaiting ``report``."""
        for request in [r for r in self._outcomes if r.frame is report]:
            del self._outcomes[request]
            self.conversation.cancel(request)

    # -- receiving and the clock ------------------------------------------------------------------

    async def read_loop(self, heard: Callable[[Heard], Awaitable[None]]) -> None:
        """Read until the connection ends; every event that answers no report of ours goes to
        ``heard``, one at a time, in order."""
        while True:
            try:
                chunk = await self.reader.read(4096)
            except ConnectionError as exc:
                self.lose(str(exc))
                return
            if not chunk:
                self.lose("centre closed the connection")
                return
            self.conversation.receive_data(chunk, monotonic_ms())
            self._drain()
            while self._heard:
                await heard(self._heard.popleft())
            self._count_rejected()

    async def tick_loop(self) -> None:
        """Resends and give-ups when a report's deadline passes (the conversation has no clock)."""
        while True:
            deadline = self.conversation.next_deadline()
            self._deadline_moved.clear()
            wait = None if deadline is None else max(0.0, (deadline - monotonic_ms()) / 1000)
            try:
                await asyncio.wait_for(self._deadline_moved.wait(), wait)
                continue  # a new request: look at the deadlines again
            except TimeoutError:
                pass
            self.conversation.tick(monotonic_ms())
            self._drain()

    def _drain(self) -> None:
        while (event := self.conversation.next_event()) is not NEED_DATA:
            self._on_event(event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, Acknowledged | Resend | GaveUp):
            outcomes = self._outcomes.get(event.request)
            if outcomes is not None:
                outcomes.put_nowait(event)
        elif isinstance(event, QueryReceived | Unsolicited | Misdirected | Refused):
            self._heard.append(event)

    def _count_rejected(self) -> None:
        conversation = self.conversation
        if conversation.frames_rejected > self._rejected:
            log.warning(
                "event=sl651_bad_bytes discarded=%d rejected=%d",
                conversation.bytes_discarded,
                conversation.frames_rejected,
            )
            self.stats.frames_rejected += conversation.frames_rejected - self._rejected
            self._rejected = conversation.frames_rejected

    # -- the end ----------------------------------------------------------------------------------

    def lose(self, reason: str) -> None:
        """The connection is gone (or to be closed) for ``reason``."""
        if not self.lost.done():
            self.lost.set_result(reason)

    def drop(self) -> None:
        """Close the connection; what awaits an acknowledgement gets None."""
        for outcomes in self._outcomes.values():
            outcomes.put_nowait(None)
        self._outcomes.clear()
        self.writer.close()
