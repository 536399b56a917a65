"""Reading one Modbus meter: plan its requests once, read them on its bus, decode every value."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from meterlink.drivers.base import DecodeError, Reading
from meterlink.protocols.modbus.block import BlockDecoder, block_decoder
from meterlink.protocols.modbus.plan import ReadRequest, plan_reads
from meterlink.protocols.modbus.registers import RegisterError
from meterlink.protocols.modbus.values import ValueSpec

from .bus import ModbusBus


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class ModbusMeter:
    """A meter on a bus, with its read plan computed once at start-up."""

    id: str
    unit_id: int
    specs: list[ValueSpec]
    max_gap: int = 0
    requests: list[ReadRequest] = field(init=False)
    # Set when one request reads every value and each is plain: the whole block decodes at once.
    block: BlockDecoder | None = field(init=False)

    def __post_init__(self) -> None:
        self.requests = plan_reads((span for spec in self.specs for span in spec.spans()), max_gap=self.max_gap)
        self.block = block_decoder(self.specs, self.requests[0]) if len(self.requests) == 1 else None


class ModbusDriver:
    """Reads meters on one bus. ``clock`` returns ms since the epoch (injected by tests)."""

    def __init__(self, bus: ModbusBus, clock: Callable[[], int] = now_ms) -> None:
        self.bus = bus
        self.clock = clock

    async def read(self, meter: ModbusMeter, slot_ms: int, flags: int = 0) -> list[Reading]:
        """Read every value of ``meter``; raise a DriverError if any request fails.

        A meter that times out on one request is not asked its remaining requests this cycle: a
        dead meter costs its bus at most timeout x tries per cycle (on a serial bus, plus the short
        quiet time that follows a failure, see bus.py).
        """
        if meter.block is not None:
            registers = await self.bus.read(meter.unit_id, meter.requests[0])
            ts = self.clock()
            try:
                values = meter.block(registers)
            except RegisterError as exc:
                raise DecodeError(str(exc)) from exc
            mid = meter.id
            return [
                Reading(mid, spec.quantity, value, spec.unit, ts, slot_ms, flags)
                for spec, value in zip(meter.specs, values, strict=True)
            ]
        image: dict[int, int] = {}
        for request in meter.requests:
            registers = await self.bus.read(meter.unit_id, request)
            image.update(zip(range(request.address, request.end), registers, strict=True))
        ts = self.clock()
        readings = []
        for spec in meter.specs:
            try:
                value = spec.decode(image)
            except RegisterError as exc:
                raise DecodeError(f"{spec.quantity}: {exc}") from exc
            readings.append(Reading(meter.id, spec.quantity, value, spec.unit, ts, slot_ms, flags))
        return readings

    async def close(self) -> None:
        await self.bus.close()
