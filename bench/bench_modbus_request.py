"""What one Modbus TCP request costs the agent's process: ModbusBus's own client against pymodbus's
and against a floor.

    .venv/bin/python bench/bench_modbus_request.py [--requests 4000]

One simulated meter (``meterlink sim modbus``, its own process) answers FC03 reads of 7 registers,
the xintai_water_meter's one request per poll. Each figure is the process's CPU time (user +
system) per request, requests sent one after the other as a bus sends them, best of 3 rounds:

- ``ModbusBus.read``: what the agent runs (drivers/modbus/tcp_client.py under the bus's checks);
- ``... asyncio's 256 KiB reads``: the same with asyncio's default TCP read size, which maps and
  unmaps a 256 KiB buffer for every answer (drivers/modbus/bus.py reads 4 KiB at a time);
- ``pymodbus's client``: pymodbus's AsyncModbusTcpClient as TCP buses used it before (4 KiB reads,
  a packet trace hook), for the ratio that made the bus use its own;
- ``bare asyncio protocol``: the floor, the same bytes through an asyncio Protocol (reading 4 KiB
  at a time too) and the project's own MBAP and PDU codecs, one future per request: no retries, no
  timeout, no checks.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

from _common import figure, header
from pymodbus.client import AsyncModbusTcpClient
from support.procs import start_sim

from meterlink.drivers.modbus import bus as bus_module
from meterlink.drivers.modbus.bus import ModbusBus
from meterlink.drivers.params import TcpParams
from meterlink.protocols.modbus import rtu, tcp
from meterlink.protocols.modbus.plan import ReadRequest

REQUEST = ReadRequest(3, 1, 7)


def cpu() -> float:
    return time.process_time()  # user + system, at the clock's resolution (os.times has 10 ms)


async def per_request(read: Callable[[], Awaitable[object]], n: int) -> float:
    """CPU seconds per request, best of 3 rounds of ``n``."""
    best = float("inf")
    for _ in range(3):
        started = cpu()
        for _ in range(n):
            await read()
        best = min(best, (cpu() - started) / n)
    return best


class BareClient(asyncio.Protocol):
    """One request at a time over the project's codecs: the least any client can do."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.tid = 0
        self.answer: asyncio.Future[list[int]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.max_size = bus_module.TCP_RECV_SIZE  # type: ignore[attr-defined]  # as the bus reads
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) < tcp.MBAP_SIZE:
            return
        header = tcp.decode_mbap(self.buffer)
        end = tcp.MBAP_SIZE + header.pdu_size
        if len(self.buffer) < end:
            return
        reply = rtu.parse_response_pdu(header.unit, self.buffer[tcp.MBAP_SIZE : end])
        self.buffer = self.buffer[end:]
        if self.answer is not None and not self.answer.done() and isinstance(reply, rtu.ReadResponse):
            self.answer.set_result(list(reply.registers))

    async def read(self, unit: int, request: ReadRequest) -> list[int]:
        assert self.transport is not None
        self.tid = (self.tid + 1) & 0xFFFF
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(
            tcp.encode_mbap(self.tid, unit, rtu.request_pdu(request.function, request.address, request.count))
        )
        return await self.answer


async def pymodbus_per_request(port: int, n: int) -> float:
    """pymodbus's client as a TCP bus drove it: 4 KiB reads, a trace hook, no retries."""
    seen = [0]

    def trace(sending: bool, data: bytes) -> bytes:
        seen[0] += 0 if sending else len(data)
        return data

    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1.0, retries=0, reconnect_delay=0, trace_packet=trace)
    await client.connect()
    client.ctx.transport.max_size = bus_module.TCP_RECV_SIZE  # type: ignore[attr-defined]
    try:
        await client.read_holding_registers(REQUEST.address, count=REQUEST.count, device_id=1)
        return await per_request(
            lambda: client.read_holding_registers(REQUEST.address, count=REQUEST.count, device_id=1), n
        )
    finally:
        client.close()


async def measure(port: int, n: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    for name, size in (("ModbusBus.read (own client)", bus_module.TCP_RECV_SIZE), ("... asyncio's 256 KiB reads", 0)):
        saved = bus_module.TCP_RECV_SIZE
        bus_module.TCP_RECV_SIZE = size or 256 * 1024
        bus = ModbusBus("bench", TcpParams("127.0.0.1", port), timeout=1.0, retries=0)
        try:
            await bus.read(1, REQUEST)
            figures[name] = await per_request(lambda: bus.read(1, REQUEST), n)  # noqa: B023 - awaited here
        finally:
            await bus.close()
            bus_module.TCP_RECV_SIZE = saved
    figures["pymodbus's client (AsyncModbusTcpClient)"] = await pymodbus_per_request(port, n)
    transport, client = await asyncio.get_running_loop().create_connection(BareClient, "127.0.0.1", port)
    try:
        await client.read(1, REQUEST)
        figures["bare asyncio protocol, own codecs (the floor)"] = await per_request(lambda: client.read(1, REQUEST), n)
    finally:
        transport.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000, help="requests per round (3 rounds each)")
    args = parser.parse_args()
    header(
        f"one Modbus TCP request (FC03, 7 registers) to a simulated meter, CPU per request, best of 3 x {args.requests}"
    )
    sim = start_sim("--tcp", "0", "--meter", "xintai_water_meter:1")
    try:
        assert sim.tcp_port is not None
        started = time.monotonic()
        figures = asyncio.run(measure(sim.tcp_port, args.requests))
    finally:
        sim.stop()
    floor = figures["bare asyncio protocol, own codecs (the floor)"]
    for name, seconds in figures.items():
        figure(name, seconds * 1e6, "us")
    ours, theirs = figures["ModbusBus.read (own client)"], figures["pymodbus's client (AsyncModbusTcpClient)"]
    figure("ModbusBus.read above the floor", (ours - floor) * 1e6, "us")
    figure("pymodbus's client above the floor", (theirs - floor) * 1e6, "us")
    figure("ModbusBus.read / pymodbus's client", ours / theirs, "x")
    print(f"   ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
