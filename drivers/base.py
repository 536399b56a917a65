"""What every driver shares: the Reading it returns, the Driver contract and the driver errors.

A driver talks to one kind of meter over one transport. It knows nothing about the store or the
uplinks: ``await driver.read(meter)`` returns readings or raises one of the errors below.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag
from typing import Any, Protocol


class Flag(IntFlag):
    """Quality flags a reading carries to the platform (names appear in the payload)."""

    NONE = 0
    CLOCK_UNSYNCED = 1  # taken while the system clock was not synchronised (no RTC, no NTP yet)
    SUSPECT = 4  # failed a plausibility rule: an abnormal jump, a negative totalizer (agent/quality)
    METER_RESET = 8  # a totalizer dropped: meter reset or replaced, not a negative volume
    WRAPPED = 16  # a totalizer wrapped around its register range
    MANUAL = 32  # entered by a technician (meterlink manual-reading), with photo evidence
    REPLACEMENT = 64  # a registered meter change: the totalizer starts again at this value

    def names(self) -> list[str]:
        return [f.name.lower() for f in Flag if f and f in self and f.name]


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one meter at one moment.

    ``ts`` is the acquisition time and ``slot`` the scheduled poll slot it belongs to, both in
    milliseconds since the Unix epoch, UTC. The store assigns the ``seq``.
    """

    meter: str
    quantity: str
    value: float
    unit: str
    ts: int
    slot: int
    flags: int = 0


class DriverError(Exception):
    """Root of the errors a driver raises for one read; the meter, not the agent, is at fault."""


class MeterTimeout(DriverError):
    """The meter did not answer within timeout x tries."""


class BadFrame(DriverError):
    """Bytes arrived but did not form a valid answer (bad CRC, short or stray frame)."""


class ExceptionResponse(DriverError):
    """The meter answered with a Modbus exception code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class DecodeError(DriverError):
    """A valid answer whose registers do not decode into the configured values."""


class TransportError(DriverError):
    """The port or connection itself is unusable (device missing, connection refused)."""


class Driver(Protocol):
    """Reads one meter of its bus: readings of every value, or one of the errors above."""

    async def read(self, meter: Any, slot_ms: int, flags: int = 0) -> list[Reading]: ...

    async def close(self) -> None: ...
