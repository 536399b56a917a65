"""sim/szy206_meter_server.py with raw clients: a shared pty line, TCP, reports, faults, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import os

import pytest
from support.loop import run
from support.pty import pty_client
from support.szy206 import sim_meter
from support.szy206_frames import A13, A14

from meterlink.protocols.szy206 import (
    AFN,
    NEED_DATA,
    Address,
    Frame,
    Reassembler,
    build_confirm,
    build_flow_report,
    build_realtime_query,
    encode,
    parse_flow_report,
)
from meterlink.sim.szy206_meter import Fault
from meterlink.sim.szy206_meter_server import Szy206SimServer


async def read_frames(fd: int, count: int, wait: float = 1.0) -> tuple[list[Frame], Reassembler]:
    """Read from a non-blocking fd until ``count`` frames arrived or ``wait`` seconds passed."""
    rx = Reassembler()
    got: list[Frame] = []
    for _ in range(int(wait / 0.01)):
        with contextlib.suppress(BlockingIOError):
            rx.feed(os.read(fd, 4096))
        while (frame := rx.next_frame()) is not NEED_DATA:
            got.append(frame)
        if len(got) >= count:
            break
        await asyncio.sleep(0.01)
    return got, rx


def test_pty_answers_only_its_own_addresses() -> None:
    """Noise, another station's query and an uplink frame are skipped and counted; each meter answers once."""
    meters = [sim_meter(13), sim_meter(14, pairs=2)]

    async def body() -> None:
        server = Szy206SimServer(meters)
        async with pty_client(server) as fd:
            other = build_realtime_query(Address(division="530381", station=99))
            uplink = build_flow_report(A13, [(1.0, 2)])
            noise = b"\x0d\x0a\xff\x68\x00"
            wire = noise + encode(other) + encode(uplink) + encode(build_realtime_query(A13, fcb=2))
            os.write(fd, wire + encode(build_realtime_query(A14, fcb=1)))
            got, _ = await read_frames(fd, 2)
            assert [(f.address, f.fcb, f.afn) for f in got] == [(A13, 2, AFN.QUERY_REALTIME), (A14, 1, 0xB0)]
            assert parse_flow_report(got[0]).meters == meters[0].last_values
            assert len(parse_flow_report(got[1]).meters) == 2
            assert (await read_frames(fd, 1, wait=0.1))[0] == []  # one answer each
            stats = server.stats
            assert (stats.other_addresses, stats.uplink_frames, stats.bytes_discarded) == (1, 1, len(noise))

    run(body)


def test_split_frames_keep_their_order_on_the_line() -> None:
    """Answers written in pieces with pauses never interleave, even when queries come back to back."""
    meters = [sim_meter(13), sim_meter(14)]
    for m in meters:
        m.set_fault(Fault.SPLIT_FRAMES)

    async def body() -> None:
        server = Szy206SimServer(meters)
        async with pty_client(server) as fd:
            queries = [build_realtime_query(a, fcb=fcb) for fcb in (3, 2) for a in (A13, A14)]
            os.write(fd, b"".join(encode(q) for q in queries))
            got, rx = await read_frames(fd, 4)
            assert [(f.address, f.fcb) for f in got] == [(q.address, q.fcb) for q in queries]
            assert rx.bytes_discarded == 0

    run(body)


def test_a_partial_query_is_given_up_and_the_next_one_answered() -> None:
    """A fake header whose L claims more bytes than come holds the line only until the resync pause."""
    meter = sim_meter()

    async def body() -> None:
        server = Szy206SimServer([meter])
        async with pty_client(server) as fd:
            os.write(fd, b"\x68\xf0\x68\x00" + encode(build_realtime_query(A13)))
            got, _ = await read_frames(fd, 1)
            assert len(got) == 1 and server.stats.resyncs >= 1

    run(body)


def test_tcp_answers_and_reports_to_the_connected_agent() -> None:
    """Over TCP: a query is answered on its connection; a report goes out, is resent, then confirmed."""
    meter = sim_meter(report_interval=None)

    async def body() -> None:
        server = Szy206SimServer([meter], confirm_timeout=0.1)
        port = await server.start_tcp()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        rx = Reassembler()

        async def next_frame() -> Frame:
            while (frame := rx.next_frame()) is NEED_DATA:
                rx.feed(await asyncio.wait_for(reader.read(4096), 1.0))
            return frame

        try:
            writer.write(encode(build_realtime_query(A13, fcb=3)))
            answer = await next_frame()
            assert (answer.afn, answer.fcb) == (AFN.QUERY_REALTIME, 3)
            pending = asyncio.create_task(server.send_report(meter))
            first, second = await next_frame(), await next_frame()  # no confirm: resent with FCB 2
            assert (first.afn, first.fcb, second.fcb) == (AFN.REPORT, 3, 2)
            assert first.tp == second.tp and first.data == second.data
            writer.write(encode(build_confirm(second, work_mode=0)))
            assert await pending
            assert (meter.reports_sent, meter.report_resends, meter.confirms_received) == (1, 1, 1)
        finally:
            writer.close()
            await writer.wait_closed()
            await server.stop()

    run(body)


def test_periodic_reports_start_with_the_first_endpoint_and_stop_with_the_server() -> None:
    meter = sim_meter(report_interval=0.02)
    meter.set_fault(Fault.NO_CONFIRM_NEEDED)

    async def body() -> None:
        server = Szy206SimServer([meter])
        async with pty_client(server) as fd:
            got, _ = await read_frames(fd, 3)
            assert len(got) >= 3 and {f.afn for f in got} == {AFN.REPORT}
            assert {f.fcb for f in got} == {3}
        sent = meter.reports_sent
        await asyncio.sleep(0.05)
        assert meter.reports_sent == sent

    run(body)


def test_two_meters_with_one_address_are_refused() -> None:
    with pytest.raises(ValueError, match="530381:13 is served twice"):
        Szy206SimServer([sim_meter(), sim_meter()])


def test_stop_twice_and_stations() -> None:
    server = Szy206SimServer([sim_meter(14), sim_meter(13)])
    assert server.stations == "530381:13,530381:14"

    async def body() -> None:
        server.start_pty()
        await server.start_tcp()
        await server.stop()
        await server.stop()

    run(body)
