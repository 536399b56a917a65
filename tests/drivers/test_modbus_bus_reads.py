"""ModbusBus over TCP reads its connection a few KiB at a time, not asyncio's 256 KiB a recv.

A 256 KiB read buffer per answer can cost a mmap, mremap and munmap per request (drivers/modbus/bus.py
says when). The answers are the same whatever the read size: a frame split over several reads is
put together again.
"""

from __future__ import annotations

import asyncio

import pytest
from support.loop import FakeClock, run

from meterlink.drivers.modbus import bus as bus_module
from meterlink.drivers.modbus.bus import TCP_RECV_SIZE, ModbusBus
from meterlink.drivers.params import TcpParams
from meterlink.protocols.modbus.plan import ReadRequest
from meterlink.sim.meter_model import SimMeter
from meterlink.sim.modbus_server import ModbusSimServer

REQUEST = ReadRequest(3, 1, 7)  # the xintai water meter's one request per poll


def read_size(bus: ModbusBus) -> int:
    transport = bus._tcp.transport if bus._tcp is not None else None
    assert isinstance(transport, asyncio.Transport)
    return int(transport.max_size)  # type: ignore[attr-defined]


def read_twice_with_a_reconnect() -> tuple[list[int], list[int], list[int]]:
    """Two reads of the same registers, the bus closed and reopened between them."""
    sim = SimMeter("xintai_water_meter", 1, clock=FakeClock(), seed=3)

    async def body() -> tuple[list[int], list[int], list[int]]:
        server = ModbusSimServer([sim])
        bus = ModbusBus("tcp", TcpParams("127.0.0.1", await server.start_tcp()), timeout=1.0, retries=0)
        try:
            first = await bus.read(1, REQUEST)
            sizes = [read_size(bus)]
            await bus.close()
            second = await bus.read(1, REQUEST)
            sizes.append(read_size(bus))
            return first, second, sizes
        finally:
            await bus.close()
            await server.stop()

    first, second, sizes = run(body)
    return list(first), list(second), list(sizes)


def test_every_connection_reads_a_few_kib_at_a_time() -> None:
    first, second, sizes = read_twice_with_a_reconnect()
    assert sizes == [TCP_RECV_SIZE, TCP_RECV_SIZE], "asyncio's 256 KiB default read size is in use"
    assert len(first) == 7 and first == second


def test_an_answer_split_over_several_reads_is_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bus_module, "TCP_RECV_SIZE", 5)  # a 23-byte answer arrives in 5 reads
    first, second, sizes = read_twice_with_a_reconnect()
    assert sizes == [5, 5]
    reference, _, _ = read_twice_with_a_reconnect()
    assert first == second == reference
