"""sim/modbus_server.py with raw clients: hunting on the pty, TCP framing, unit routing, shutdown."""

from __future__ import annotations

import asyncio
import os

from support.loop import START, run
from support.pty import open_slave, pty_client, read_slave

from meterlink.protocols.modbus import rtu, tcp
from meterlink.sim.meter_model import Fault, SimMeter
from meterlink.sim.modbus_server import ModbusSimServer


def meter(unit: int, name: str = "tuf2000") -> SimMeter:
    """A meter with a frozen clock."""
    return SimMeter(name, unit, clock=lambda: START)


def test_pty_hunts_through_garbage_and_bad_crc() -> None:
    """Garbage, a bad-CRC request and another unit's request are skipped and counted; the good one answered."""
    sim = meter(13)  # 0x0D: a cooked pty would turn it into 0D 0A

    async def body() -> None:
        server = ModbusSimServer({13: sim})
        async with pty_client(server) as fd:
            bad = bytearray(rtu.build_request(13, 3, 0, 2))
            bad[-2] ^= 0x01
            garbage = b"\x0d\x0a\xff\x00\x03\x13"
            os.write(fd, garbage + bytes(bad) + rtu.build_request(2, 3, 0, 2) + rtu.build_request(13, 3, 0, 2))
            expected = rtu.build_response(13, 3, sim.registers(3, 0, 2))
            assert await read_slave(fd, len(expected)) == expected
            assert await read_slave(fd, 1, wait=0.1) == b""  # one answer only
            assert server.stats.rtu_bad_crc >= 1  # 00 03 in the garbage also looked like a frame start
            assert server.stats.rtu_dropped_bytes == len(garbage) + len(bad)
            assert server.stats.rtu_other_units == 1
            assert sim.requests == 1

    run(body)


def test_pty_exceptions_for_bad_requests() -> None:
    """A read of 0 registers is exception 03, an address outside the map 02, a write (FC06) 01."""
    sim = meter(1)

    async def body() -> None:
        server = ModbusSimServer([sim])
        async with pty_client(server) as fd:
            zero = bytes([1, 3, 0, 0, 0, 0])
            cases = [
                (zero + rtu.crc_bytes(zero), rtu.build_exception(1, 3, 3)),
                (rtu.build_request(1, 3, 900, 2), rtu.build_exception(1, 3, 2)),
                (rtu.build_request(1, 6, 0, 1), rtu.build_exception(1, 6, 1)),
            ]
            for request, answer in cases:
                os.write(fd, request)
                assert await read_slave(fd, len(answer)) == answer

    run(body)


def test_pty_wire_faults_on_the_raw_frame() -> None:
    """bad_crc flips the CRC, short_answer sends half a frame, stray_bytes puts 0x00/0xFF noise first."""
    sim = meter(1)

    async def body() -> None:
        server = ModbusSimServer([sim])
        async with pty_client(server) as fd:
            good = rtu.build_response(1, 3, sim.registers(3, 0, 2))
            sim.set_fault(Fault.BAD_CRC)
            os.write(fd, rtu.build_request(1, 3, 0, 2))
            got = await read_slave(fd, len(good))
            assert got[:-2] == good[:-2] and not rtu.check_crc(got)
            sim.clear_faults()
            sim.set_fault(Fault.SHORT_ANSWER)
            os.write(fd, rtu.build_request(1, 3, 0, 2))
            assert await read_slave(fd, len(good), wait=0.2) == good[: len(good) // 2]
            sim.clear_faults()
            sim.set_fault(Fault.STRAY_BYTES)
            os.write(fd, rtu.build_request(1, 3, 0, 2))
            got = await read_slave(fd, len(good) + 4, wait=0.3)
            assert got.endswith(good) and set(got[: -len(good)]) <= {0, 0xFF} and len(got) > len(good)

    run(body)


def test_pty_keeps_serving_after_eio() -> None:
    """With no one holding the slave, reads fail with EIO; the server pauses, then serves a new opener.

    White-box: the server's own slave fd is swapped out so that the slave is really closed.
    """
    sim = meter(1)

    async def body() -> None:
        server = ModbusSimServer([sim])
        path = server.start_pty()
        line = server._ptys[0].line
        os.close(line.slave)
        line.slave = os.open(os.devnull, os.O_RDONLY)  # closed by stop() instead
        fd = open_slave(path)
        os.close(fd)  # hang up: the master now reads EIO
        for _ in range(100):
            if server.stats.rtu_hangups >= 2:
                break
            await asyncio.sleep(0.01)
        assert server.stats.rtu_hangups >= 2  # paused, retried, still hung up: no busy loop, no crash
        fd = open_slave(path)
        try:
            os.write(fd, rtu.build_request(1, 3, 0, 2))
            expected = rtu.build_response(1, 3, sim.registers(3, 0, 2))
            assert await read_slave(fd, len(expected)) == expected
        finally:
            os.close(fd)
            await server.stop()

    run(body)


async def tcp_exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tid: int, unit: int, pdu: bytes
) -> tuple[tcp.MbapHeader, bytes]:
    """Send one MBAP frame and read one back."""
    writer.write(tcp.encode_mbap(tid, unit, pdu))
    await writer.drain()
    header = tcp.decode_mbap(await asyncio.wait_for(reader.readexactly(tcp.MBAP_SIZE), 2))
    return header, await asyncio.wait_for(reader.readexactly(header.pdu_size), 2)


def test_tcp_routing_and_exceptions() -> None:
    """Units are routed by MBAP unit id; unknown unit -> 0B; unknown function -> 01; tid echoed."""
    sims = {1: meter(1), 2: meter(2, "qdy30a_level")}

    async def body() -> None:
        server = ModbusSimServer(sims)
        port = await server.start_tcp()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            header, pdu = await tcp_exchange(reader, writer, 77, 2, rtu.request_pdu(3, 3, 2))
            assert (header.transaction_id, header.unit) == (77, 2)
            assert rtu.parse_response_pdu(2, pdu) == rtu.ReadResponse(2, 3, tuple(sims[2].registers(3, 3, 2)))
            _, pdu = await tcp_exchange(reader, writer, 78, 9, rtu.request_pdu(3, 0, 2))
            assert pdu == rtu.exception_pdu(3, 0x0B)
            _, pdu = await tcp_exchange(reader, writer, 79, 1, bytes([0x2B, 0x0E, 0x01, 0x00]))
            assert pdu == rtu.exception_pdu(0x2B, 1)
            sims[1].set_fault(Fault.BAD_CRC)
            header, _ = await tcp_exchange(reader, writer, 80, 1, rtu.request_pdu(3, 0, 2))
            assert header.transaction_id not in (0, 80)
            assert server.stats.tcp_unknown_unit == 1
        finally:
            writer.close()
            await writer.wait_closed()
            await server.stop()

    run(body)


def test_tcp_bad_header_closes_only_that_connection() -> None:
    """A header that is not Modbus loses the stream's framing: that connection closes, others go on."""
    sim = meter(1)

    async def body() -> None:
        server = ModbusSimServer([sim])
        port = await server.start_tcp()
        bad_reader, bad_writer = await asyncio.open_connection("127.0.0.1", port)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            bad_writer.write(bytes.fromhex("0001 0001 0006 01") + rtu.request_pdu(3, 0, 2))
            assert await asyncio.wait_for(bad_reader.read(100), 2) == b""
            _, pdu = await tcp_exchange(reader, writer, 5, 1, rtu.request_pdu(3, 0, 2))
            assert rtu.parse_response_pdu(1, pdu) == rtu.ReadResponse(1, 3, tuple(sim.registers(3, 0, 2)))
            assert server.stats.tcp_bad_headers == 1
        finally:
            for w in (bad_writer, writer):
                w.close()
                await w.wait_closed()
            await server.stop()

    run(body)


def test_stop_closes_connected_clients_and_ptys() -> None:
    """stop() with clients still connected ends their handlers and closes every fd; twice is fine."""

    async def body() -> None:
        server = ModbusSimServer([meter(1)])
        port = await server.start_tcp()
        server.start_pty()
        server.start_pty()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(5):  # until the server has the client: stop() must end its handler
            while server.stats.tcp_connections == 0:
                await asyncio.sleep(0.01)
        await server.stop()
        assert await asyncio.wait_for(reader.read(10), 2) == b""
        writer.close()
        await writer.wait_closed()
        await server.stop()

    run(body)
