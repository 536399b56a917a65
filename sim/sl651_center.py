"""A simulated SL651 centre: the TCP server that stations (RTUs, meterlink) report to.

One :class:`Center` accepts any number of station connections, each with its own conversation in
the centre's role (protocols/sl651/conversation.py), so sticky, split and garbled TCP segments are
survived and counted. It answers as a centre does:

- reports (30H..36H): an acknowledgement of the same function carrying the report's serial
  number and the centre's time, ending in ESC (keep the link); a copy of a report acknowledged
  before (its acknowledgement lost) is acknowledged again and counted once. The first
  ``drop_acks`` acknowledgements are not sent, to make a station resend;
- keep-alives (2FH) and answers to its queries: recorded, not answered.

Queries go to every connected station on command (:meth:`Center.query`): the function code, the
centre's serial number and time, and for 38H a period (by default the last hour of element 39H
every five minutes; any element, definition, step and period on request). A
station's address, centre address and password become known from its first frame. Every frame,
in either direction, goes to ``on_record`` as the JSON of ``meterlink decode sl651``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from meterlink.protocols.sl651 import NEED_DATA, Conversation, Frame, Role, describe, encode
from meterlink.protocols.sl651.events import (
    Answered,
    Event,
    KeepAlive,
    ReportReceived,
    ReportRepeated,
)
from meterlink.protocols.sl651.messages import build_period_query, build_query, step_element

log = logging.getLogger("meterlink.sim.sl651_center")


def now_ms() -> int:
    return time.monotonic_ns() // 1_000_000


@dataclass
class _Link:
    """One station connection."""

    peer: str
    writer: asyncio.StreamWriter
    conversation: Conversation
    last: Frame | None = None  # the last frame from the station: whom to query
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Center:
    """The simulated centre (see the module docstring)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        drop_acks: int = 0,
        on_record: Callable[[dict[str, Any]], None] | None = None,
        clock: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.host, self.port = host, port
        self.drop_acks = drop_acks
        self.on_record = on_record
        self.clock = clock
        self.links: list[_Link] = []
        self.reports: list[dict[str, Any]] = []  # each report once, as JSON
        self.repeats = 0
        self.acks_sent = 0
        self.acks_dropped = 0
        self.keep_alives = 0
        self.answers: list[dict[str, Any]] = []
        self.frames_rejected = 0
        self.connections = 0
        self._serial = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen; returns the port (useful with port 0)."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        port: int = self._server.sockets[0].getsockname()[1]
        self.port = port
        return port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self.links):
            link.writer.close()  # its task then reads the end of the stream and ends by itself
            if link.task is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(link.task), 2)
                link.task.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def _record(self, direction: str, link: _Link, view: dict[str, Any]) -> None:
        if self.on_record is not None:
            self.on_record({"dir": direction, "peer": link.peer, "frame": view})

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = writer.get_extra_info("peername")[:2]
        link = _Link(f"{host}:{port}", writer, Conversation(Role.CENTRE, timeout_ms=None))
        link.task = asyncio.current_task()
        self.links.append(link)
        self.connections += 1
        try:
            while chunk := await reader.read(4096):
                link.conversation.receive_data(chunk, now_ms())
                while (event := link.conversation.next_event()) is not NEED_DATA:
                    self._handle(link, event)
                self.frames_rejected = sum(x.conversation.frames_rejected for x in self.links)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.links.remove(link)
            writer.close()

    def _handle(self, link: _Link, event: Event) -> None:
        if not isinstance(event, KeepAlive | Answered | ReportReceived | ReportRepeated):
            log.info("event=frame_ignored peer=%s kind=%s", link.peer, type(event).__name__)
            return
        frame = event.frame
        link.last = frame
        view = describe(frame, getattr(event, "body", None))
        self._record("in", link, view)
        if isinstance(event, KeepAlive):
            self.keep_alives += 1
        elif isinstance(event, Answered):
            self.answers.append(view)
        elif isinstance(event, ReportReceived | ReportRepeated):
            if isinstance(event, ReportReceived):
                self.reports.append(view)
            else:
                self.repeats += 1
            ack = link.conversation.acknowledge(frame, event.body, self.clock())
            if self.acks_dropped < self.drop_acks:
                self.acks_dropped += 1
                return
            self._send(link, ack)
            self.acks_sent += 1

    def _send(self, link: _Link, frame: Frame) -> None:
        link.writer.write(encode(frame))
        self._record("out", link, describe(frame))

    def _next_serial(self) -> int:
        self._serial = self._serial % 0xFFFF + 1
        return self._serial

    def query(
        self,
        function: int,
        *,
        ident: int = 0x39,
        definition: int = 0x23,
        step_minutes: int = 5,
        period: tuple[datetime, datetime] | None = None,
    ) -> int:
        """Send query ``function`` to every station heard on a live connection; returns how many.
        A 38H asks for element ``ident`` (with ``definition``) every ``step_minutes`` over
        ``period`` (start and end, to the hour; default: the last hour)."""
        sent = 0
        for link in self.links:
            if link.last is None:
                continue
            last, when = link.last, self.clock()
            if function == 0x38:
                frame = build_period_query(
                    center=last.center,
                    station=last.station,
                    password=last.password,
                    serial=self._next_serial(),
                    send_time=when,
                    start=period[0] if period else when - timedelta(hours=1),
                    end=period[1] if period else when,
                    step=step_element(hours=step_minutes // 60, minutes=step_minutes % 60),
                    ident=ident,
                    definition=definition,
                )
            else:
                frame = build_query(
                    function,
                    center=last.center,
                    station=last.station,
                    password=last.password,
                    serial=self._next_serial(),
                    send_time=when,
                )
            link.conversation.request(frame, now_ms())
            self._send(link, frame)
            sent += 1
        return sent
