"""What every driver shares: the Reading it returns, the Driver contract and the driver errors.

A driver talks to one kind of meter over one transport. It knows nothing about the store or the
uplinks: ``await driver.read(meter)`` returns readings or raises one of the errors below.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar, runtime_checkable

# A reading's flags are the wire format's vocabulary (their names travel in the payload); they are
# defined there and named here too, beside the Reading that carries them.
from meterlink.wire.flags import Flag as Flag


class Reading(NamedTuple):
    """One value of one meter at one moment.

    ``ts`` is the acquisition time and ``slot`` the scheduled poll slot it belongs to, both in
    milliseconds since the Unix epoch, UTC. The store assigns the ``seq``.

    A named tuple, not a frozen dataclass: every poll makes one per value, and a frozen
    dataclass's ``__init__`` (one ``object.__setattr__`` per field) costs about four times as much.
    Immutable either way; a copy with other flags is ``r._replace(flags=...)``.
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


if TYPE_CHECKING:
    # A bare ``Driver`` (a poller that does not care which kind) means ``Driver[Any]``: a type
    # parameter default (PEP 696), which ``typing`` itself takes from Python 3.13.
    from typing_extensions import TypeVar as _TypeVar

    M = _TypeVar("M", contravariant=True, default=Any)
else:
    M = TypeVar("M", contravariant=True)


class Driver(Protocol[M]):
    """Reads one meter of its bus: readings of every value, or one of the errors above.

    ``M`` is the meter as the driver knows it (its address, its read plan): ``ModbusDriver`` is a
    ``Driver[ModbusMeter]``, ``Szy206Driver`` a ``Driver[Szy206Meter]``.
    """

    async def read(self, meter: M, slot_ms: int, flags: int = 0) -> list[Reading]: ...

    async def close(self) -> None: ...


@runtime_checkable
class Listener(Protocol):
    """A driver whose meters also speak unasked (SZY206 self-reports): its line is listened to for
    the whole run, not only while a poll waits for an answer."""

    name: str

    async def listen(self) -> None: ...


# A meter's unasked report handed on: (meter id, readings), returning once the readings are
# durable, raising if they cannot be made so (the driver then sends the meter no confirm).
ReportCallback = Callable[[str, list[Reading]], Awaitable[object]]
