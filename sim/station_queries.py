"""The queries the simulated central station starts: B0H real-time, B1H stored data, 11H set clock.

Each goes to the connection that last carried a frame from the terminal's address, as that
connection's conversation's request (one at a time per terminal: answers carry nothing to match
them by), and waits for the answers that conversation hands over (station_link.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timezone

from meterlink.drivers.szy206.pump import loop_ms
from meterlink.protocols.szy206 import (
    DEFAULT_PW,
    Address,
    Clock,
    Frame,
    TimeLabel,
    build_realtime_query,
    build_set_clock,
    build_stored_query,
)
from meterlink.protocols.szy206.elements import FLOW_TYPE
from meterlink.protocols.szy206.times import clock_at, utc_ms

from .station_link import StationConnection

log = logging.getLogger("meterlink.sim.station")

QUERY_TIMEOUT_S = 5.0
STORED_QUIET_S = 0.3  # B1H answers: the query ends this long after the last answer frame


class UnknownTerminal(LookupError):
    """No open connection has sent a frame from this address."""


def name(address: Address) -> str:
    """An address for log lines: division/station."""
    return f"{address.division}/{address.station}"


class StationQueries:
    """The station's queries; :class:`~.station.Station` provides the connections and the sending."""

    tz: timezone
    utc_offset_h: float
    _terminals: dict[Address, StationConnection]

    def now(self) -> datetime:
        raise NotImplementedError

    def _own_tp(self) -> TimeLabel | None:
        raise NotImplementedError

    async def _send(self, conn: StationConnection, frame: Frame) -> None:
        raise NotImplementedError

    def _connection(self, address: Address) -> StationConnection:
        conn = self._terminals.get(address)
        if conn is None:
            raise UnknownTerminal(f"no terminal {name(address)} is connected")
        return conn

    def _clock_of(self, when: datetime) -> Clock:
        """``when`` as a 6-byte clock in wire time; a naive ``when`` is wire time already."""
        aware = when if when.tzinfo is not None else when.replace(tzinfo=self.tz)
        return clock_at(utc_ms(aware), utc_offset_h=self.utc_offset_h)

    async def query_realtime(
        self, address: Address, timeout: float = QUERY_TIMEOUT_S, *, function: int = FLOW_TYPE
    ) -> Frame:
        """Send B0H to the terminal with ``address`` and return its B0H answer.

        Raises:
            UnknownTerminal: no connection has that address.
            TimeoutError: no answer within ``timeout`` seconds.
            ConnectionError: the connection closed first.
        """
        return await self._ask(address, build_realtime_query(address, function, tp=self._own_tp()), timeout)

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
            async with asyncio.timeout_at(deadline), conn.lock(address), self._asking(conn, query) as answers:
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
            raise ConnectionError(f"terminal {name(address)} disconnected before answering B1H")
        log.info("event=station_stored_answers address=%s frames=%d", name(address), len(frames))
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
        frame = build_set_clock(address, self._clock_of(when or self.now()), pw=pw, tp=self._own_tp())
        if timeout is None:
            await self._send(self._connection(address), frame)
            return None
        return await self._ask(address, frame, timeout)

    async def _ask(self, address: Address, query: Frame, timeout: float) -> Frame:
        """Send ``query`` to the terminal with ``address`` and return its first answer."""
        conn = self._connection(address)
        async with asyncio.timeout(timeout), conn.lock(address), self._asking(conn, query) as answers:
            answer = await answers.get()
        if answer is None:
            raise ConnectionError(f"terminal {name(address)} disconnected before answering {query.afn:02X}H")
        return answer

    @contextlib.asynccontextmanager
    async def _asking(self, conn: StationConnection, query: Frame) -> AsyncIterator[asyncio.Queue[Frame | None]]:
        """Send ``query`` as the conversation's request; yield the queue its answers arrive in."""
        with conn.waiting(query.address, query.afn) as answers:
            request = conn.conversation.request(query, loop_ms())
            try:
                await self._send(conn, request.frame)
                yield answers
            finally:
                conn.conversation.cancel(request)

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
                    log.warning("event=station_poll_failed address=%s error=%r", name(address), repr(result))
