"""Serve simulated SZY206 meters on a pty (a shared serial line) and/or TCP (the meter listens).

One :class:`Szy206SimServer` holds a set of :class:`SimSzy206Meter` keyed by address and serves
them on any number of endpoints:

- pty: the agent opens the slave device (a :class:`RawPty`: raw at both ends, the slave held
  open, or the line discipline would turn 0x0D of station 13 into 0D 0A).
- TCP: the meters are the server and the agent connects as a client, as to a serial server.

Every endpoint is a shared line: a frame is handled only by the meter it is addressed to, frames
for other addresses and uplink frames are counted and ignored. Input goes through the codec's
:class:`LineReader` (noise skipped and counted, a partial frame given up after a pause). B0H
queries are answered on the endpoint they came from; self-reports go to every endpoint (every
connected agent), and each is resent with a lower FCB when no confirm comes within
``confirm_timeout`` (FCB 3, 2, 1, 0, then it failed: the meter's conversation counts the tries).
Output goes through one writer task per endpoint, so the pauses of ``split_frames`` never let two
frames interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from meterlink.protocols.szy206 import AFN, NEED_DATA, Address, Frame, LineReader
from meterlink.protocols.szy206.layout import REPORT_AFNS

from .listeners import close_listeners
from .raw_pty import RawPty
from .szy206_meter import SimSzy206Meter

log = logging.getLogger("meterlink.sim.szy206")

RESYNC_AFTER_MS = 200  # give up a partial frame after this long without a byte
Pieces = list[tuple[float, bytes]]


@dataclass(slots=True)
class ServerStats:
    """What the server skipped or could not do; per-meter counts live on each meter."""

    tcp_connections: int = 0
    bytes_discarded: int = 0
    frames_rejected: int = 0
    other_addresses: int = 0  # frames for meters not served here (a shared line)
    uplink_frames: int = 0
    resyncs: int = 0
    pty_hangups: int = 0
    write_failures: int = 0


class _Endpoint:
    """One line: a reader for what arrives, a writer task for what leaves."""

    def __init__(self, name: str, stats: ServerStats) -> None:
        self.name = name
        self.stats = stats
        self.rx = LineReader(resync_after_ms=RESYNC_AFTER_MS)
        self.seen = (0, 0)  # the reader's (discarded, rejected) already added to the stats
        self.resync: asyncio.TimerHandle | None = None
        self._queue: asyncio.Queue[Pieces] = asyncio.Queue()
        self._writer = asyncio.create_task(self._write_loop(), name=f"szy206-sim-writer {name}")

    def send(self, pieces: Pieces) -> None:
        self._queue.put_nowait(pieces)

    async def _write_loop(self) -> None:
        while True:
            pieces = await self._queue.get()
            for pause, chunk in pieces:
                if pause:
                    await asyncio.sleep(pause)
                self.write(chunk)

    def write(self, chunk: bytes) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        if self.resync is not None:
            self.resync.cancel()
        self._writer.cancel()
        await asyncio.wait({self._writer})


class _PtyEndpoint(_Endpoint):
    def __init__(self, line: RawPty, stats: ServerStats) -> None:
        super().__init__(f"pty {line.path}", stats)
        self.line = line

    def write(self, chunk: bytes) -> None:
        if not self.line.write(chunk):
            self.stats.write_failures += 1

    async def close(self) -> None:
        await super().close()
        self.line.close()


class _TcpEndpoint(_Endpoint):
    def __init__(self, writer: asyncio.StreamWriter, stats: ServerStats) -> None:
        super().__init__(f"tcp {writer.get_extra_info('peername')}", stats)
        self.writer = writer

    def write(self, chunk: bytes) -> None:
        if self.writer.is_closing():
            self.stats.write_failures += 1
            return
        self.writer.write(chunk)


class Szy206SimServer:
    """Simulated SZY206 meters on pty and TCP endpoints.

    Args:
        meters: the meters; their self-reports start with the first endpoint.
        confirm_timeout: seconds a meter waits for the confirm of a self-report before resending.
        on_confirmed: called with (meter, report) the moment a confirm of a report in flight arrives:
            from then on the meter no longer holds that report.

    Raises:
        ValueError: two meters with the same address.
    """

    def __init__(
        self,
        meters: Iterable[SimSzy206Meter],
        *,
        confirm_timeout: float = 3.0,
        on_confirmed: Callable[[SimSzy206Meter, Frame], None] | None = None,
    ) -> None:
        self.meters: dict[Address, SimSzy206Meter] = {}
        for meter in meters:
            if meter.address in self.meters:
                raise ValueError(f"{meter.name} is served twice")
            self.meters[meter.address] = meter
        self.confirm_timeout = confirm_timeout
        self.on_confirmed = on_confirmed
        self.stats = ServerStats()
        self._endpoints: list[_Endpoint] = []
        self._servers: list[asyncio.Server] = []
        self._tcp_tasks: set[asyncio.Task[None]] = set()
        self._report_tasks: list[asyncio.Task[None]] = []
        self._report_locks = {address: asyncio.Lock() for address in self.meters}
        self._confirmed = {address: asyncio.Event() for address in self.meters}

    @property
    def stations(self) -> str:
        """Served addresses, comma-separated, for start-up lines: ``530381:13,530381:14``."""
        return ",".join(
            m.name for m in sorted(self.meters.values(), key=lambda m: (m.address.division, m.address.station))
        )

    # --- endpoints -------------------------------------------------------------------------------

    def start_pty(self) -> str:
        """Open a pty and serve on it; returns the slave device path for the agent.

        Call from a running event loop.

        Raises:
            OSError: no pty can be opened.
        """
        # The callback runs from the loop, after ``endpoint`` exists.
        line = RawPty(lambda data: self._received(endpoint, data), self._pty_hung_up)
        endpoint = _PtyEndpoint(line, self.stats)
        self._endpoints.append(endpoint)
        self._start_reporting()
        log.info("event=sim_szy206_pty_open path=%s stations=%s", line.path, self.stations)
        return line.path

    def _pty_hung_up(self) -> None:
        self.stats.pty_hangups += 1

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen for agents; returns the port (useful with ``port=0``).

        Raises:
            OSError: the address cannot be bound.
        """
        server = await asyncio.start_server(self._tcp_client, host, port)
        self._servers.append(server)
        self._start_reporting()
        actual = int(server.sockets[0].getsockname()[1])
        log.info("event=sim_szy206_tcp_listening host=%s port=%d stations=%s", host, actual, self.stations)
        return actual

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tcp_tasks.add(task)
        self.stats.tcp_connections += 1
        endpoint = _TcpEndpoint(writer, self.stats)
        self._endpoints.append(endpoint)
        log.info("event=sim_szy206_tcp_connected endpoint=%r", endpoint.name)
        try:
            while data := await reader.read(4096):
                self._received(endpoint, data)
        except ConnectionError:
            pass
        finally:
            self._endpoints.remove(endpoint)
            await endpoint.close()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._tcp_tasks.discard(task)
            log.info("event=sim_szy206_tcp_closed endpoint=%r", endpoint.name)

    # --- frames in -------------------------------------------------------------------------------

    def _received(self, endpoint: _Endpoint, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        rx = endpoint.rx
        rx.feed(data, int(loop.time() * 1000))
        try:
            while (frame := rx.next_frame()) is not NEED_DATA:
                self._handle(endpoint, frame)
        except Exception:
            # A bug, not bad bytes: log it and go on serving with a fresh buffer.
            log.exception("event=sim_szy206_receive_failed endpoint=%r", endpoint.name)
            rx.drop_buffered()
        self._count_garbage(endpoint)
        if endpoint.resync is not None:
            endpoint.resync.cancel()
            endpoint.resync = None
        deadline = rx.deadline()
        if deadline is not None:
            endpoint.resync = loop.call_at(deadline / 1000, self._give_up, endpoint, deadline)

    def _count_garbage(self, endpoint: _Endpoint) -> None:
        rx = endpoint.rx
        discarded, rejected = endpoint.seen
        if rx.bytes_discarded != discarded:
            self.stats.bytes_discarded += rx.bytes_discarded - discarded
            self.stats.frames_rejected += rx.frames_rejected - rejected
            log.info(
                "event=sim_szy206_garbage endpoint=%r discarded=%d rejected=%d reason=%r",
                endpoint.name,
                rx.bytes_discarded - discarded,
                rx.frames_rejected - rejected,
                rx.last_error,
            )
        endpoint.seen = (rx.bytes_discarded, rx.frames_rejected)

    def _give_up(self, endpoint: _Endpoint, deadline: int) -> None:
        endpoint.resync = None
        if endpoint.rx.tick(deadline):
            self.stats.resyncs += 1
        self._received(endpoint, b"")

    def _handle(self, endpoint: _Endpoint, frame: Frame) -> None:
        if frame.up:
            self.stats.uplink_frames += 1
            return
        meter = self.meters.get(frame.address)
        if meter is None:
            self.stats.other_addresses += 1
            return
        if frame.afn in REPORT_AFNS:
            if meter.accept_confirm(frame):
                self._confirmed[meter.address].set()
                if self.on_confirmed is not None and meter.last_confirmed is not None:
                    self.on_confirmed(meter, meter.last_confirmed)
            log.debug("event=sim_szy206_confirm station=%s fcb=%d", meter.name, frame.fcb)
            return
        reply = meter.answer(frame)
        log.debug(
            "event=sim_szy206_request station=%s afn=%02X fcb=%d answered=%s",
            meter.name,
            frame.afn,
            frame.fcb,
            reply is not None,
        )
        if reply is not None:
            endpoint.send(meter.wire(reply))

    # --- self-reports ----------------------------------------------------------------------------

    def _start_reporting(self) -> None:
        if self._report_tasks:
            return
        for meter in self.meters.values():
            if meter.report_interval:
                task = asyncio.create_task(self._report_loop(meter), name=f"szy206-sim-report {meter.name}")
                self._report_tasks.append(task)

    async def _report_loop(self, meter: SimSzy206Meter) -> None:
        assert meter.report_interval is not None
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due = max(due + meter.report_interval, loop.time())
            await asyncio.sleep(due - loop.time())
            await self.send_report(meter)

    async def send_report(self, meter: SimSzy206Meter, afn: int = AFN.REPORT) -> bool:
        """Send one self-report of ``meter`` to every endpoint and wait for its confirm.

        Resent with FCB 2, 1, 0 after each ``confirm_timeout`` without a confirm. Returns True
        once confirmed, False when every send went unconfirmed (or no confirm is needed).
        """
        async with self._report_locks[meter.address]:
            confirmed = self._confirmed[meter.address]
            confirmed.clear()
            frame: Frame | None = meter.start_report(afn)
            while frame is not None:
                self._broadcast(meter.wire(frame))
                if not meter.needs_confirm:
                    meter.forget_report()
                    return False
                try:
                    async with asyncio.timeout(self.confirm_timeout):
                        await confirmed.wait()
                    return True
                except TimeoutError:
                    frame = meter.resend()
            log.warning("event=sim_szy206_report_unconfirmed station=%s", meter.name)
            return False

    def _broadcast(self, pieces: Pieces) -> None:
        for endpoint in self._endpoints:
            endpoint.send(pieces)

    # --- shutdown --------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Close every endpoint and connection and stop the reports; safe to call twice."""
        for task in self._report_tasks:
            task.cancel()
        if self._report_tasks:
            await asyncio.wait(self._report_tasks)
        self._report_tasks.clear()
        writers = [e.writer for e in self._endpoints if isinstance(e, _TcpEndpoint)]
        await close_listeners(self._servers, writers, self._tcp_tasks)
        self._servers.clear()
        for endpoint in list(self._endpoints):
            if isinstance(endpoint, _PtyEndpoint):
                await endpoint.close()
                self._endpoints.remove(endpoint)
                log.info("event=sim_szy206_pty_closed path=%s", endpoint.line.path)
