"""A Modbus TCP client: one connection, one request at a time, over the project's own codecs.

pymodbus serves the serial buses; on TCP this client takes its place, for cost. The request is the
largest single part of a poll's cost at scale, and pymodbus's client costs about 1.3 to 1.8 x what
the request itself needs (bench/bench_modbus_request.py): a PDU object and its string for a debug line that
is never printed, a trace of every packet, and ``asyncio.wait_for``, which on Python 3.11 adds a
turn of the event loop to every answer. Here an answer is matched and resolved in the callback
that received it, and the timeout is one timer.

The transaction id pairs an answer with its request: an answer under another id (a late one, to
a request already given up on) is dropped and counted, never taken for the current one. Retries
resend the request under the same id, so an answer to an earlier try is still the answer.

Errors are the caller's to word (``ModbusBus``): :class:`NoAnswer` (with the bytes that came, if
any), :class:`ConnectionLost`, and OSError from connecting.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from meterlink.protocols.modbus import rtu, tcp

# Consecutive requests without an answer after which the connection is dropped and opened again at
# the next request: a half-open TCP connection (a gateway restarted behind NAT) never fails by itself.
# pymodbus, which served TCP buses before, did the same after retries + 3.
DROP_AFTER_SILENT = 3


class NoAnswer(Exception):
    """No valid answer in timeout x tries; ``received`` bytes came meanwhile (0: silence)."""

    def __init__(self, received: int) -> None:
        super().__init__(f"{received} bytes received but no valid answer" if received else "no answer")
        self.received = received


class ConnectionLost(Exception):
    """The connection closed, or its byte stream lost its framing, while a request waited."""


@dataclass(slots=True)
class _Waiting:
    transaction_id: int
    unit: int
    function: int
    answer: asyncio.Future[rtu.ReadResponse | rtu.ExceptionReply]


class TcpClient(asyncio.Protocol):
    """Use :meth:`open`, then :meth:`read` one request at a time (the bus's lock sees to that)."""

    def __init__(self, read_size: int) -> None:
        self.read_size = read_size
        self.transport: asyncio.Transport | None = None
        self.framer = tcp.ReplyFramer()
        self.next_tid = 0
        self.silent = 0  # requests in a row that got no answer
        self.received = 0  # bytes received since the current request was sent
        self.dropped = 0  # whole frames dropped: another transaction id or unit, or not parseable
        self.answered = 0  # requests answered on this connection
        self._waiting: _Waiting | None = None

    @classmethod
    async def open(cls, host: str, port: int, timeout: float, read_size: int) -> TcpClient:
        """Connect.

        Raises:
            OSError: the connection was refused or failed.
            TimeoutError: no connection within ``timeout``.
        """
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            _, client = await loop.create_connection(lambda: cls(read_size), host, port)
        return client

    @property
    def connected(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        # asyncio reads a socket 256 KiB at a time by default; see bus.py's TCP_RECV_SIZE.
        if isinstance(getattr(transport, "max_size", None), int):
            transport.max_size = self.read_size  # type: ignore[attr-defined]
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(ConnectionLost(f"connection closed ({exc})" if exc else "connection closed by the other end"))

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        self.framer.feed(data)
        while True:
            try:
                reply = self.framer.next_reply()
            except rtu.FrameError as exc:
                # Frame boundaries are lost on a stream: only a new connection finds them again.
                self._fail(ConnectionLost(f"not a Modbus TCP stream ({exc})"))
                if self.transport is not None:
                    self.transport.close()
                return
            if reply is None:
                return
            self._take(reply)

    def _take(self, reply: tcp.TcpReply) -> None:
        waiting = self._waiting
        if waiting is None or reply.transaction_id != waiting.transaction_id or reply.unit != waiting.unit:
            self.dropped += 1  # an answer nobody waits for any more
            return
        try:
            answer = rtu.parse_response_pdu(reply.unit, reply.pdu)
        except rtu.FrameError:
            self.dropped += 1
            return
        if answer.function != waiting.function:
            self.dropped += 1
            return
        if not waiting.answer.done():
            waiting.answer.set_result(answer)

    def _fail(self, exc: Exception) -> None:
        waiting = self._waiting
        if waiting is not None and not waiting.answer.done():
            waiting.answer.set_exception(exc)

    # -- requests ------------------------------------------------------------------------------------

    async def read(
        self, unit: int, function: int, address: int, count: int, timeout: float, tries: int
    ) -> rtu.ReadResponse | rtu.ExceptionReply:
        """Ask once, and again up to ``tries`` in all while no answer comes within ``timeout``.

        Raises:
            NoAnswer: no valid answer to any try.
            ConnectionLost: the connection closed while waiting (or was already closed).
        """
        self.next_tid = self.next_tid % 0xFFFF + 1
        frame = tcp.encode_mbap(self.next_tid, unit, rtu.request_pdu(function, address, count))
        loop = asyncio.get_running_loop()
        self.received = 0
        for _ in range(tries):
            transport = self.transport
            if transport is None or transport.is_closing():
                raise ConnectionLost("not connected")
            answer: asyncio.Future[rtu.ReadResponse | rtu.ExceptionReply] = loop.create_future()
            self._waiting = _Waiting(self.next_tid, unit, function, answer)
            timer = loop.call_later(timeout, _expire, answer)
            try:
                transport.write(frame)
                reply = await answer
            except TimeoutError:
                continue
            finally:
                timer.cancel()
                self._waiting = None
            self.silent = 0
            self.answered += 1
            return reply
        self.silent += 1
        # A frame left half-received: its rest may still come, or never (a truncated answer). Either
        # way the stream's frame boundaries are no longer known, and a new connection finds them.
        if (self.silent >= DROP_AFTER_SILENT or self.framer.pending) and self.transport is not None:
            self.transport.close()
        raise NoAnswer(self.received)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None


def _expire(answer: asyncio.Future[rtu.ReadResponse | rtu.ExceptionReply]) -> None:
    if not answer.done():
        answer.set_exception(TimeoutError())
