"""drivers/szy206 link against a scripted TCP peer: frames the simulator never sends."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from support.loop import run
from support.szy206 import wall_ms
from support.szy206_frames import A13

from meterlink.drivers.base import DecodeError, MeterTimeout, Reading, TransportError
from meterlink.drivers.params import TcpParams
from meterlink.drivers.szy206 import Szy206Driver, Szy206Link, Szy206Meter
from meterlink.protocols.szy206 import (
    AFN,
    NEED_DATA,
    Address,
    Frame,
    LinkKind,
    Reassembler,
    build_flow_report,
    build_link,
    build_readings,
    encode,
    parse_link_reply,
)

Script = Callable[[Frame, asyncio.StreamWriter], Awaitable[None]]


class Peer:
    """A TCP meter whose every reaction to a downlink frame is the test's ``script``."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.received: list[Frame] = []
        self.writers: list[asyncio.StreamWriter] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> TcpParams:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return TcpParams("127.0.0.1", self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.writers.append(writer)
        rx = Reassembler()
        try:
            while data := await reader.read(4096):
                rx.feed(data)
                while (frame := rx.next_frame()) is not NEED_DATA:
                    self.received.append(frame)
                    await self.script(frame, writer)
        except ConnectionError:
            pass
        finally:
            writer.close()
            self._handlers.discard(task)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self.writers:
            writer.close()
        if self._handlers:
            await asyncio.wait(set(self._handlers))
        await self._server.wait_closed()


def answer(fcb: int = 3, flow: float = 1.5, volume: int = 42) -> bytes:
    return encode(build_flow_report(A13, [(flow, volume)], fcb=fcb, afn=AFN.QUERY_REALTIME))


def values(readings: list[Reading]) -> dict[str, float]:
    return {r.quantity: r.value for r in readings}


def test_a_late_answer_is_not_taken_for_the_next_query() -> None:
    """The first answer comes after the timeout: MeterTimeout, the late frame counted stray, the next read fresh."""
    timed_out = asyncio.Event()
    count = 0

    async def script(frame: Frame, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        count += 1
        if count == 1:
            await timed_out.wait()  # answer only once the driver has given up
            writer.write(answer(flow=1.0, volume=1))
        else:
            writer.write(answer(flow=2.0, volume=2))

    async def body() -> None:
        peer = Peer(script)
        link = Szy206Link("t", await peer.start(), timeout=0.2, retries=0, clock=wall_ms)
        driver = Szy206Driver(link)
        meter = Szy206Meter("m", A13)
        try:
            with pytest.raises(MeterTimeout):
                await driver.read(meter, 0)
            timed_out.set()
            for _ in range(100):
                if link.counters.stray_frames:
                    break
                await asyncio.sleep(0.01)
            assert link.counters.stray_frames == 1
            assert values(await driver.read(meter, 0)) == {"flow_rate": 2.0, "volume_total": 2.0}
        finally:
            await driver.close()
            await peer.stop()

    run(body)


def test_an_echo_of_our_own_query_is_skipped() -> None:
    """An RS-485 adapter echoing what we send: the downlink copy is counted, the answer taken."""

    async def script(frame: Frame, writer: asyncio.StreamWriter) -> None:
        writer.write(encode(frame) + answer(fcb=frame.fcb))

    async def body() -> None:
        peer = Peer(script)
        link = Szy206Link("t", await peer.start(), timeout=0.2, clock=wall_ms)
        driver = Szy206Driver(link)
        try:
            assert values(await driver.read(Szy206Meter("m", A13), 0)) == {"flow_rate": 1.5, "volume_total": 42.0}
            assert link.counters.stray_frames == 1
        finally:
            await driver.close()
            await peer.stop()

    run(body)


def test_an_answer_without_flow_data_is_a_decode_error() -> None:
    """A valid B0H answer carrying water levels (type 2), not flow/volume pairs: DecodeError."""

    async def script(frame: Frame, writer: asyncio.StreamWriter) -> None:
        writer.write(encode(build_readings(A13, 2, [1.25], afn=AFN.QUERY_REALTIME, fcb=frame.fcb)))

    async def body() -> None:
        peer = Peer(script)
        driver = Szy206Driver(Szy206Link("t", await peer.start(), timeout=0.2, clock=wall_ms))
        try:
            with pytest.raises(DecodeError, match="type code 2"):
                await driver.read(Szy206Meter("m", A13), 0)
        finally:
            await driver.close()
            await peer.stop()

    run(body)


def test_link_checks_of_a_known_meter_are_answered() -> None:
    """A terminal's 02H login and keep-alive get a reply with data 00H; an unknown one's get none."""

    async def script(frame: Frame, writer: asyncio.StreamWriter) -> None:
        pass

    async def body() -> None:
        peer = Peer(script)
        link = Szy206Link("t", await peer.start(), timeout=0.2, clock=wall_ms, meters=[Szy206Meter("m", A13)])
        try:
            await link.open()
            for _ in range(50):
                if peer.writers:
                    break
                await asyncio.sleep(0.01)
            stranger = Address(division="530381", station=99)
            for address, kind in ((A13, LinkKind.LOGIN), (stranger, LinkKind.LOGIN), (A13, LinkKind.KEEPALIVE)):
                peer.writers[0].write(encode(build_link(address, kind)))
            for _ in range(50):
                if len(peer.received) == 2:
                    break
                await asyncio.sleep(0.01)
            assert [(f.address, f.afn, parse_link_reply(f)) for f in peer.received] == [(A13, AFN.LINK, 0)] * 2
            assert link.counters.link_checks == 2 and link.counters.unknown_frames == 1
        finally:
            await link.close()
            await peer.stop()

    run(body)


def test_close_ends_a_waiting_query() -> None:
    """Closing the link while a query waits ends that query at once with TransportError."""

    async def script(frame: Frame, writer: asyncio.StreamWriter) -> None:
        pass  # never answers

    async def body() -> None:
        peer = Peer(script)
        link = Szy206Link("t", await peer.start(), timeout=5.0, clock=wall_ms)
        driver = Szy206Driver(link)
        try:
            read = asyncio.create_task(driver.read(Szy206Meter("m", A13), 0))
            for _ in range(50):
                if peer.received:
                    break
                await asyncio.sleep(0.01)
            await link.close()
            with pytest.raises(TransportError, match="closed"):
                await read
        finally:
            await driver.close()
            await peer.stop()

    run(body)
