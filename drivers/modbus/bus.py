"""A Modbus bus: one serial port or one TCP endpoint, one request at a time.

A serial bus talks through pymodbus; a TCP bus through the project's own client (tcp_client.py,
which says why). pymodbus is pinned to one minor version and used only in this folder. Facts of
that version we rely on:

- the unit argument is ``device_id=``; retries are pymodbus's own (we add none, or they multiply);
- a frame with a bad CRC is dropped silently by its RTU framer, so a request that received bytes but
  no valid answer is told apart from silence through the ``trace_packet`` hook;
- automatic reconnection is off (``reconnect_delay=0``): the bus reconnects on the next request, so a
  meter that comes back is polled at its next slot, not after pymodbus's growing back-off;
- a cancelled request surfaces as ``ModbusIOException``, so cancellation is re-raised here;
- a reply that arrives while no request is outstanding is dropped. RTU answers carry no transaction
  id, so after a failed request on a serial bus the line is left quiet for a moment (QUIET_AFTER_FAILURE_S)
  before the next one: a slow meter's late answer lands then and is dropped, instead of being taken
  for the answer to the next request (of the same size, nothing else could tell them apart).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

from meterlink.drivers.base import BadFrame, ExceptionResponse, MeterTimeout, TransportError
from meterlink.drivers.params import SerialParams, TcpParams, describe
from meterlink.drivers.serialport import diagnose
from meterlink.protocols.modbus import rtu
from meterlink.protocols.modbus.plan import ReadRequest

from .tcp_client import ConnectionLost, NoAnswer, TcpClient

if TYPE_CHECKING:  # pymodbus is imported only where a serial bus is opened: a TCP site never loads it
    from pymodbus.client import AsyncModbusSerialClient

log = logging.getLogger("meterlink.modbus")

QUIET_AFTER_FAILURE_S = 0.5  # at most; never longer than the bus's own timeout

# asyncio reads a TCP socket with recv(256 KiB): for every answer (260 bytes at most in Modbus TCP)
# a 256 KiB buffer is allocated and shrunk, which glibc serves with mmap, mremap and munmap (and a
# page fault) per request until a larger free happens to raise its mmap threshold: about 25 us of
# CPU per request then (bench/bench_modbus_request.py). 4 KiB holds any answer; more bytes, if
# ever, are read on the loop's next turn.
TCP_RECV_SIZE = 4096

# pymodbus logs every timeout and dropped frame at WARNING/ERROR on its own logger; the bus counts
# and logs those per meter itself, in one line, so pymodbus is kept quiet.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}


@dataclass(slots=True)
class BusCounters:
    """What the bus saw, for logs, events and commissioning output."""

    requests: int = 0
    ok: int = 0
    timeouts: int = 0
    bad_frames: int = 0
    exceptions: int = 0
    connect_failures: int = 0
    last_error: str = ""
    per_unit_errors: dict[int, int] = field(default_factory=dict)


class ModbusBus:
    """One physical bus. All requests on it are serialised by one lock."""

    def __init__(
        self,
        name: str,
        params: SerialParams | TcpParams,
        *,
        timeout: float = 1.0,
        retries: int = 2,
    ) -> None:
        self.name = name
        self.params = params
        self.timeout = timeout
        self.retries = retries
        self.counters = BusCounters()
        self.lock = asyncio.Lock()
        self._rx_bytes = 0
        self._client: AsyncModbusSerialClient | None = None  # a serial bus
        self._tcp: TcpClient | None = None  # a TCP bus
        self._next_connect = 0.0
        self._quiet_until = 0.0  # serial: no request before this (monotonic), after a failed one

    @property
    def tries(self) -> int:
        return 1 + self.retries

    def _make_client(self, params: SerialParams) -> AsyncModbusSerialClient:
        from pymodbus.client import AsyncModbusSerialClient
        from pymodbus.framer import FramerType

        return AsyncModbusSerialClient(
            params.device,
            framer=FramerType.RTU,
            baudrate=params.baudrate,
            parity=params.parity,
            stopbits=params.stopbits,
            bytesize=params.bytesize,
            timeout=self.timeout,
            retries=self.retries,
            reconnect_delay=0,
            trace_packet=self._trace,
            name=self.name,
        )

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self._rx_bytes += len(data)
        return data

    def _may_connect(self) -> None:
        if time.monotonic() < self._next_connect:
            raise TransportError(f"bus {self.name}: not connected ({self.counters.last_error})")

    def _connect_failed(self, why: str) -> TransportError:
        # Try again at most once per timeout, so a missing adapter or a dead gateway does not spin.
        self._next_connect = time.monotonic() + self.timeout
        self.counters.connect_failures += 1
        self.counters.last_error = why
        return TransportError(f"bus {self.name}: {why}")

    async def _serial(self, params: SerialParams) -> AsyncModbusSerialClient:
        if self._client is not None and self._client.connected:
            return self._client
        self._may_connect()
        if self._client is None:
            self._client = self._make_client(params)
        if not await self._client.connect():
            fault = diagnose(params.device)  # pymodbus only says that the port did not open
            raise self._connect_failed(fault.text if fault else f"cannot open {self.describe()}")
        log.info("event=bus_connected bus=%s endpoint=%s", self.name, self.describe())
        return self._client

    async def _tcp_client(self, params: TcpParams) -> TcpClient:
        if self._tcp is not None and self._tcp.connected:
            return self._tcp
        self._may_connect()
        try:
            self._tcp = await TcpClient.open(params.host, params.port, self.timeout, TCP_RECV_SIZE)
        except (OSError, TimeoutError, UnicodeError) as exc:  # UnicodeError: a host name no resolver takes
            self._tcp = None
            raise self._connect_failed(f"cannot connect to {self.describe()}: {_why_not(exc)}") from None
        log.info("event=bus_connected bus=%s endpoint=%s", self.name, self.describe())
        return self._tcp

    def describe(self) -> str:
        return str(describe(self.params))

    async def read(self, unit_id: int, request: ReadRequest) -> list[int]:
        """Read one block of registers from one unit. Caller holds no lock; this takes the bus lock.

        Raises:
            MeterTimeout: no answer within timeout x tries.
            BadFrame: bytes arrived but no valid answer (bad CRC, short or stray frame, wrong count).
            ExceptionResponse: the meter answered with a Modbus exception.
            TransportError: the port cannot be opened or the connection is gone.
        """
        async with self.lock:
            self.counters.requests += 1
            if isinstance(self.params, TcpParams):
                registers = await self._read_tcp(self.params, unit_id, request)
            else:
                registers = await self._read_serial(self.params, unit_id, request)
            return self._checked(unit_id, request, registers)

    async def _read_tcp(self, params: TcpParams, unit_id: int, request: ReadRequest) -> list[int]:
        client = await self._tcp_client(params)
        try:
            answer = await client.read(
                unit_id, request.function, request.address, request.count, self.timeout, self.tries
            )
        except ConnectionLost as exc:
            if not client.answered:
                # Accepted, then closed before answering anything (a gateway out of connection
                # slots does this): reconnected at once, it would be opened again on every read.
                raise self._connect_failed(f"{self.describe()} closed the connection ({exc})") from exc
            self.counters.last_error = str(exc)
            raise TransportError(f"bus {self.name}: connection lost") from exc
        except NoAnswer as exc:
            self._rx_bytes = exc.received
            return self._fail(unit_id, exc)
        if isinstance(answer, rtu.ExceptionReply):
            self._exception(unit_id, answer.code)
        return list(answer.registers)

    async def _read_serial(self, params: SerialParams, unit_id: int, request: ReadRequest) -> list[int]:
        from pymodbus.exceptions import ConnectionException, ModbusException

        client = await self._serial(params)
        if self._quiet_until:
            quiet = self._quiet_until - time.monotonic()
            if quiet > 0:
                await asyncio.sleep(quiet)
        self._rx_bytes = 0
        call = client.read_holding_registers if request.function == 3 else client.read_input_registers
        try:
            response = await call(request.address, count=request.count, device_id=unit_id)
        except ConnectionException as exc:
            self.counters.last_error = str(exc)
            raise TransportError(f"bus {self.name}: connection lost") from exc
        except ModbusException as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # pymodbus turns a cancellation into ModbusIOException("Request cancelled outside
                # pymodbus"); swallowed, a poller cancelled at shutdown would go on polling forever.
                raise asyncio.CancelledError() from exc
            return self._fail(unit_id, exc)
        if response.isError():
            self._exception(unit_id, int(getattr(response, "exception_code", 0)))
        return list(response.registers)

    def _exception(self, unit_id: int, code: int) -> NoReturn:
        self.counters.exceptions += 1
        self._count_unit(unit_id)
        raise ExceptionResponse(code, f"exception {code:02X} ({EXCEPTION_NAMES.get(code, 'unknown')})")

    def _checked(self, unit_id: int, request: ReadRequest, registers: list[int]) -> list[int]:
        if len(registers) != request.count:
            # A late answer to an earlier request, or a truncated one: never decode it.
            self.counters.bad_frames += 1
            self._count_unit(unit_id)
            self._keep_quiet()
            raise BadFrame(f"asked for {request.count} registers, got {len(registers)}")
        self.counters.ok += 1
        return registers

    def _keep_quiet(self) -> None:
        if isinstance(self.params, SerialParams):
            self._quiet_until = time.monotonic() + min(self.timeout, QUIET_AFTER_FAILURE_S)

    def _fail(self, unit_id: int, exc: Exception) -> NoReturn:
        self._count_unit(unit_id)
        self._keep_quiet()
        self.counters.last_error = str(exc)
        if self._rx_bytes:
            self.counters.bad_frames += 1
            raise BadFrame(f"{self._rx_bytes} bytes received but no valid answer (bad CRC or noise)") from exc
        self.counters.timeouts += 1
        raise MeterTimeout(f"no answer in {self.timeout:g} s x {self.tries} tries") from exc

    def _count_unit(self, unit_id: int) -> None:
        self.counters.per_unit_errors[unit_id] = self.counters.per_unit_errors.get(unit_id, 0) + 1

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._tcp is not None:
            self._tcp.close()
            self._tcp = None


def _why_not(exc: OSError | TimeoutError | UnicodeError) -> str:
    """Why a connection failed, in the system's words."""
    if isinstance(exc, TimeoutError):
        return "no answer"
    if isinstance(exc, UnicodeError):
        return f"not a valid host name ({exc})"
    if isinstance(exc, socket.gaierror) or not exc.errno:
        return exc.strerror or str(exc)  # a name that does not resolve: the resolver's words
    return os.strerror(exc.errno)  # asyncio words a refusal "Connect call failed (...)": the errno says more
