"""Finding the Modbus devices on a bus: which unit ids answer, and at which line settings.

What to try is pure and lives in the first half (settings in the order worth trying, unit ranges,
what an answer means, how long a sweep may take); the second half asks the bus, one unit at a time,
through pymodbus like bus.py does.

A unit counts as present when it answers at all: registers, or a Modbus exception (a meter without
register 0 answers "illegal data address", which proves it is there). Exceptions 0A and 0B are the
exception: a TCP gateway sends them for a unit id behind it that did not answer, so they mean "no
device". Each unit is asked once (no retries): a sweep of N units at one setting takes at most
N x timeout, plus a second request (FC 04) for each unit found.
"""

from __future__ import annotations

import asyncio
import termios
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, cast

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.framer import FramerType

from ..base import TransportError
from ..params import SerialParams, TcpParams, describe
from ..serialport import diagnose
from .bus import EXCEPTION_NAMES

# The settings most meters leave the factory with come first: 9600 8N1, then the Modbus default
# 19200 8E1's neighbours. Every rate a Pi's UART offers is reachable with --baud.
DEFAULT_BAUDRATES = (9600, 19200, 4800, 38400, 2400, 57600, 115200)
DEFAULT_PARITIES = ("N", "E", "O")
DEFAULT_TIMEOUT_S = 0.2  # a request and its answer at 2400 baud, with 130 ms for the meter to turn round
SERIAL_UNITS = range(1, 248)
TCP_UNITS = range(0, 256)
NO_DEVICE = frozenset({0x0A, 0x0B})  # gateway path unavailable, gateway target failed to respond
CONNECT_S = 0.1  # pymodbus waits this long after opening a port or connection

Where: TypeAlias = SerialParams | TcpParams
Parity: TypeAlias = Literal["N", "E", "O"]


class UsageError(ValueError):
    """A scan option that cannot be used; the message names it."""


class LineRefused(TransportError):
    """The port will not take this line setting (some adapters and ptys refuse a parity)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What one request got: registers, an exception code, silence, or bytes that made no answer."""

    kind: Literal["registers", "exception", "timeout", "noise"]
    registers: tuple[int, ...] = ()
    code: int = 0

    @property
    def present(self) -> bool:
        """Does this answer prove a device at that unit id?"""
        return self.kind == "registers" or (self.kind == "exception" and self.code not in NO_DEVICE)

    def describe(self) -> str:
        if self.kind == "registers":
            return " ".join(f"0x{r:04X} ({r})" for r in self.registers)
        if self.kind == "exception":
            return f"exception {self.code:02X} ({EXCEPTION_NAMES.get(self.code, 'unknown')})"
        return "no answer" if self.kind == "timeout" else "garbled answer"

    def to_json(self) -> dict[str, Any]:
        if self.kind == "registers":
            return {"registers": list(self.registers)}
        if self.kind == "exception":
            return {"exception": self.code, "name": EXCEPTION_NAMES.get(self.code, "unknown")}
        return {"error": self.kind}


@dataclass(frozen=True, slots=True)
class Found:
    """A device that answered: its unit id, where and at which line settings, and what it said."""

    unit: int
    where: Where
    fc03: Answer
    fc04: Answer

    def line(self) -> str:
        answers = f"fc03@0: {self.fc03.describe()}; fc04@0: {self.fc04.describe()}"
        return f"unit {self.unit:<3} {setting_name(self.where):<9} {answers}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"unit": self.unit}
        if isinstance(self.where, SerialParams):
            w = self.where
            out |= {"device": w.device, "baudrate": w.baudrate, "parity": w.parity}
            out |= {"bytesize": w.bytesize, "stopbits": w.stopbits, "line": setting_name(w)}
        else:
            out |= {"host": self.where.host, "port": self.where.port}
        return out | {"fc03": self.fc03.to_json(), "fc04": self.fc04.to_json()}


def setting_name(where: Where) -> str:
    """``9600 8N1`` for a serial setting, ``tcp`` for an endpoint."""
    return (
        f"{where.baudrate} {where.bytesize}{where.parity}{where.stopbits}" if isinstance(where, SerialParams) else "tcp"
    )


def parse_units(text: str, allowed: range) -> list[int]:
    """``1-247`` or ``1,5,10-20`` -> sorted unit ids, each within ``allowed``.

    Raises:
        UsageError: a malformed part or a unit outside ``allowed``.
    """
    units: set[int] = set()
    for part in text.split(","):
        low_text, dash, high_text = part.strip().partition("-")
        try:
            low = int(low_text)
            high = int(high_text) if dash else low
        except ValueError:
            raise UsageError(f"--units {text}: {part.strip()!r} is not a unit id or a range like 1-247") from None
        if low > high:
            raise UsageError(f"--units {text}: {part.strip()} runs backwards")
        for unit in (low, high):
            if unit not in allowed:
                raise UsageError(f"--units {text}: {unit} is outside {allowed.start}..{allowed.stop - 1}")
        units.update(range(low, high + 1))
    return sorted(units)


def parse_list(text: str, option: str, known: Iterable[str]) -> list[str]:
    """A comma-separated option (``--parity N,E``) checked against ``known``, order kept.

    Raises:
        UsageError: an empty or unknown item.
    """
    names = list(known)
    items = [item.strip().upper() for item in text.split(",")]
    for item in items:
        if item not in names:
            raise UsageError(f"{option} {text}: {item!r} is not one of {', '.join(names)}")
    return list(dict.fromkeys(items))


def serial_settings(device: str, baudrates: Sequence[int], parities: Sequence[str]) -> list[SerialParams]:
    """Every (baud rate, parity) pair, rates outermost: a bus is usually at the first rate tried."""
    # parse_list has checked each parity against "NEO".
    return [
        SerialParams(device, baudrate=b, parity=cast(Parity, p), stopbits=1, bytesize=8)
        for b in baudrates
        for p in parities
    ]


def compact(units: Sequence[int]) -> str:
    """Sorted unit ids as ranges: ``1-20,195-205``."""
    parts: list[str] = []
    start = prev = None
    for unit in [*units, None]:
        if prev is not None and unit == prev + 1:
            prev = unit
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = unit
    return ",".join(parts)


def sweep_seconds(units: int, timeout: float) -> float:
    """The longest one setting's sweep takes when nothing answers: one timeout per unit, plus opening."""
    return units * timeout + CONNECT_S


# -- I/O --------------------------------------------------------------------------------------------


class Prober:
    """One pymodbus client at one setting, asking one unit at a time, once (no retries).

    Raises (from :meth:`open`):
        TransportError: the port will not open or the endpoint refuses.
    """

    def __init__(self, where: Where, timeout: float) -> None:
        self.where = where
        self._rx = 0
        common: dict[str, Any] = {"timeout": timeout, "retries": 0, "reconnect_delay": 0, "trace_packet": self._trace}
        self._client: AsyncModbusSerialClient | AsyncModbusTcpClient
        if isinstance(where, SerialParams):
            self._client = AsyncModbusSerialClient(
                where.device,
                framer=FramerType.RTU,
                baudrate=where.baudrate,
                parity=where.parity,
                stopbits=where.stopbits,
                bytesize=where.bytesize,
                **common,
            )
        else:
            self._client = AsyncModbusTcpClient(where.host, port=where.port, **common)
        # pymodbus closes the connection after a few requests in a row go unanswered; in a sweep
        # most do, and reopening the port each time would only cost time.
        self._client.set_max_no_responses(1 << 30)

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self._rx += len(data)
        return data

    async def open(self) -> None:
        try:
            opened = await self._client.connect()
        except termios.error as exc:  # pyserial's tcsetattr, passed through by pymodbus
            raise LineRefused(f"{describe(self.where)}: the port refuses this line setting ({exc.args[-1]})") from None
        if not opened:
            fault = diagnose(self.where.device) if isinstance(self.where, SerialParams) else None
            raise TransportError(fault.text if fault else f"cannot open {describe(self.where)}")

    async def ask(self, unit: int, function: int) -> Answer:
        """Read register 0 of ``unit`` with function 3 or 4."""
        if not self._client.connected and not await self._client.connect():
            raise TransportError(f"{describe(self.where)}: connection lost")
        call = self._client.read_holding_registers if function == 3 else self._client.read_input_registers
        self._rx = 0
        try:
            response = await call(0, count=1, device_id=unit)
        except ConnectionException as exc:
            raise TransportError(f"{describe(self.where)}: connection lost") from exc
        except ModbusException as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError() from exc  # pymodbus turns a cancellation into an error
            return Answer("noise" if self._rx else "timeout")
        if response.isError():
            return Answer("exception", code=int(getattr(response, "exception_code", 0)))
        return Answer("registers", registers=tuple(response.registers))

    def close(self) -> None:
        self._client.close()


# After each unit: its id, what it answered to FC 03, and the device if that proved one is there.
Progress = Callable[[int, Answer, Found | None], None]


async def sweep(where: Where, units: Sequence[int], timeout: float, progress: Progress) -> list[Found]:
    """Ask each unit at one setting; return the devices that answered.

    Raises:
        TransportError: the port or endpoint cannot be used.
    """
    prober = Prober(where, timeout)
    found: list[Found] = []
    try:
        await prober.open()
        for unit in units:
            fc03 = await prober.ask(unit, 3)
            device = None
            if fc03.present:
                device = Found(unit, where, fc03, await prober.ask(unit, 4))
                found.append(device)
            progress(unit, fc03, device)
    finally:
        prober.close()
    return found
