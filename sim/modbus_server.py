"""Serve simulated meters over Modbus TCP and over Modbus RTU on a pty, with their wire faults.

One :class:`ModbusSimServer` serves a set of meters keyed by unit id on any number of endpoints:

- TCP: MBAP framing, many clients at once. A request for a unit id that is not served is
  answered with exception 0B (gateway target device failed to respond), as a TCP/RTU gateway
  does, so a misconfigured unit id shows at once instead of as a timeout. A header with a protocol
  id other than 0 or an impossible length closes that connection (framing is lost on a stream).
- RTU on a pty: the agent opens the slave device (a :class:`RawPty`: raw at both ends, the slave
  held open, or the line discipline would echo requests and turn 0x0D into 0D 0A). Requests are
  found by hunting (garbage and bad CRCs are skipped and counted). Requests for other unit ids
  are ignored, as on a shared RS-485 bus. With a ``baudrate``, bytes sent while the other end has set
  the line to another speed are dropped unanswered: a meter on a real line would see only noise.

Wire faults decided by :meth:`SimMeter.answer` are carried out here. TCP has no CRC: ``bad_crc``
corrupts the MBAP transaction id instead (pymodbus drops that answer), and ``stray_bytes`` does
not apply (TCP delivers bytes intact; garbage there would desynchronise the stream for good).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from meterlink.protocols.modbus import rtu, tcp

from .listeners import close_listeners
from .meter_model import Answer, Fault, SimMeter
from .raw_pty import RawPty

log = logging.getLogger("meterlink.sim.modbus")

GATEWAY_TARGET_FAILED = 0x0B


@dataclass(slots=True)
class ServerStats:
    """What the server skipped; per-meter counts live on each :class:`SimMeter`."""

    tcp_connections: int = 0
    tcp_bad_headers: int = 0
    tcp_unknown_unit: int = 0
    rtu_dropped_bytes: int = 0
    rtu_bad_crc: int = 0
    rtu_other_units: int = 0
    rtu_hangups: int = 0
    rtu_wrong_speed: int = 0
    write_failures: int = 0
    requests_by_transport: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Pty:
    line: RawPty
    framer: rtu.RequestFramer


class ModbusSimServer:
    """Simulated meters on Modbus TCP and RTU-over-pty endpoints.

    Args:
        meters: a mapping unit id -> meter, or meters (keyed by their own unit id).
        baudrate: on a pty, answer only while the line is set to this speed (None: any).

    Raises:
        ValueError: two meters with the same unit id.
    """

    def __init__(self, meters: Mapping[int, SimMeter] | Iterable[SimMeter], *, baudrate: int | None = None) -> None:
        self.baudrate = baudrate
        if isinstance(meters, Mapping):
            self.meters: dict[int, SimMeter] = dict(meters)
        else:
            self.meters = {}
            for meter in meters:
                if meter.unit in self.meters:
                    raise ValueError(f"unit {meter.unit} is served twice")
                self.meters[meter.unit] = meter
        self.stats = ServerStats()
        self._tcp_servers: list[asyncio.Server] = []
        self._tcp_tasks: set[asyncio.Task[None]] = set()
        self._tcp_writers: set[asyncio.StreamWriter] = set()
        self._ptys: list[_Pty] = []

    @property
    def units(self) -> str:
        """Served unit ids, comma-separated, for start-up lines."""
        return ",".join(str(u) for u in sorted(self.meters))

    # --- Modbus TCP ------------------------------------------------------------------------------

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen for Modbus TCP clients; returns the port (useful with ``port=0``).

        Raises:
            OSError: the address cannot be bound.
        """
        server = await asyncio.start_server(self._tcp_client, host, port)
        self._tcp_servers.append(server)
        actual = int(server.sockets[0].getsockname()[1])
        log.info("event=sim_tcp_listening host=%s port=%d units=%s", host, actual, self.units)
        return actual

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tcp_tasks.add(task)
        self._tcp_writers.add(writer)
        self.stats.tcp_connections += 1
        peer = writer.get_extra_info("peername")
        log.info("event=sim_tcp_connected peer=%s", peer)
        try:
            while True:
                header = tcp.decode_mbap(await reader.readexactly(tcp.MBAP_SIZE))
                pdu = await reader.readexactly(header.pdu_size)
                frame, delay = self._tcp_answer(header, pdu)
                if frame and delay:
                    asyncio.get_running_loop().call_later(delay, _write_if_open, writer, frame)
                elif frame:
                    writer.write(frame)
                    await writer.drain()
        except rtu.FrameError as exc:
            self.stats.tcp_bad_headers += 1
            log.warning("event=sim_tcp_bad_header peer=%s error=%r", peer, str(exc))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._tcp_writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._tcp_tasks.discard(task)
            log.info("event=sim_tcp_closed peer=%s", peer)

    def _tcp_answer(self, header: tcp.MbapHeader, pdu: bytes) -> tuple[bytes, float]:
        """The frame to send (empty: stay silent) and how long to hold it back."""
        function = pdu[0] if pdu else 0
        meter = self.meters.get(header.unit)
        if meter is None:
            self.stats.tcp_unknown_unit += 1
            log.info("event=sim_unknown_unit transport=tcp unit=%d", header.unit)
            reply = rtu.exception_pdu(max(1, function & 0x7F), GATEWAY_TARGET_FAILED)
            return tcp.encode_mbap(header.transaction_id, header.unit, reply), 0.0
        try:
            request = rtu.parse_request_pdu(header.unit, pdu)
        except rtu.FrameError:
            meter.requests += 1
            reply = rtu.exception_pdu(max(1, function & 0x7F), 1)  # illegal function
            return tcp.encode_mbap(header.transaction_id, header.unit, reply), 0.0
        answer = self._answer(meter, request, "tcp")
        if answer.pdu is None:
            return b"", 0.0
        tid = header.transaction_id
        if answer.bad_crc:
            # No CRC on TCP: a garbled header is the nearest thing; pymodbus drops the answer.
            tid = tid ^ 0x8000 or 0x7FFF
            meter.note_fault(Fault.BAD_CRC)
        frame = tcp.encode_mbap(tid, header.unit, answer.pdu)
        if answer.short:
            frame = _truncate(frame)
            meter.note_fault(Fault.SHORT_ANSWER)
        return frame, answer.delay

    # --- Modbus RTU on a pty ---------------------------------------------------------------------

    def start_pty(self) -> str:
        """Open a pty and serve RTU on it; returns the slave device path for the agent.

        Call from a running event loop.

        Raises:
            OSError: no pty can be opened.
        """
        # The callback runs from the loop, after ``port`` exists.
        line = RawPty(lambda data: self._pty_received(port, data), self._pty_hung_up)
        port = _Pty(line, rtu.RequestFramer())
        self._ptys.append(port)
        log.info("event=sim_pty_open path=%s units=%s", line.path, self.units)
        return line.path

    def _pty_hung_up(self) -> None:
        self.stats.rtu_hangups += 1

    def _pty_received(self, port: _Pty, data: bytes) -> None:
        if self.baudrate is not None and port.line.baudrate() != self.baudrate:
            self.stats.rtu_wrong_speed += len(data)
            log.info("event=sim_rtu_wrong_speed path=%s dropped=%d", port.line.path, len(data))
            return
        framer = port.framer
        dropped, bad_crc = framer.dropped, framer.bad_crc
        framer.feed(data)
        while (request := framer.next_request()) is not rtu.NEED_DATA:
            self._rtu_request(port, request)
        if framer.dropped != dropped:
            self.stats.rtu_dropped_bytes += framer.dropped - dropped
            self.stats.rtu_bad_crc += framer.bad_crc - bad_crc
            log.info(
                "event=sim_rtu_garbage path=%s dropped=%d bad_crc=%d",
                port.line.path,
                framer.dropped - dropped,
                framer.bad_crc - bad_crc,
            )

    def _rtu_request(self, port: _Pty, request: rtu.Request) -> None:
        meter = self.meters.get(request.unit)
        if meter is None:
            self.stats.rtu_other_units += 1  # another station's request on a shared bus
            return
        answer = self._answer(meter, request, "rtu")
        if answer.pdu is None:
            return
        frame = rtu.with_pdu(request.unit, answer.pdu)
        if answer.bad_crc:
            frame = frame[:-2] + bytes(b ^ 0xFF for b in frame[-2:])
            meter.note_fault(Fault.BAD_CRC)
        if answer.short:
            frame = _truncate(frame)
            meter.note_fault(Fault.SHORT_ANSWER)
        if answer.stray:
            frame = answer.stray + frame
            meter.note_fault(Fault.STRAY_BYTES)
        if answer.delay:
            asyncio.get_running_loop().call_later(answer.delay, self._pty_write, port, frame)
        else:
            self._pty_write(port, frame)

    def _pty_write(self, port: _Pty, frame: bytes) -> None:
        if not port.line.write(frame):
            self.stats.write_failures += 1

    # --- shared ----------------------------------------------------------------------------------

    def _answer(self, meter: SimMeter, request: rtu.Request, transport: str) -> Answer:
        answer = meter.answer(request.function, request.address, request.count)
        self.stats.requests_by_transport[transport] = self.stats.requests_by_transport.get(transport, 0) + 1
        log.debug(
            "event=sim_request transport=%s unit=%d fc=%d addr=%d count=%d faults=%s answered=%s",
            transport,
            request.unit,
            request.function,
            request.address,
            request.count,
            ",".join(sorted(meter.faults)) or "-",
            answer.pdu is not None,
        )
        return answer

    async def stop(self) -> None:
        """Close every endpoint and connection; safe to call twice."""
        await close_listeners(self._tcp_servers, self._tcp_writers, self._tcp_tasks)
        self._tcp_servers.clear()
        for port in self._ptys:
            port.line.close()
            log.info("event=sim_pty_closed path=%s", port.line.path)
        self._ptys.clear()


def _write_if_open(writer: asyncio.StreamWriter, frame: bytes) -> None:
    if not writer.is_closing():
        writer.write(frame)


def _truncate(frame: bytes) -> bytes:
    """The first half of a frame: what arrives when a meter's answer is cut off."""
    return frame[: max(1, len(frame) // 2)]
