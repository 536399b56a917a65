"""The bus's own Modbus TCP client against a real socket server that misbehaves on purpose.

The simulated meters (tests/sim/test_sim_modbus_e2e.py) cover what a meter does wrong; here the
server does what a gateway or a network does wrong: answers under another transaction id, closes
the connection mid-request, sends bytes that are not Modbus TCP, or goes quiet with the
connection still open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from support.loop import run

from meterlink.drivers.base import BadFrame, MeterTimeout, TransportError
from meterlink.drivers.modbus import tcp_client
from meterlink.drivers.modbus.bus import ModbusBus
from meterlink.drivers.params import TcpParams
from meterlink.protocols.modbus import rtu, tcp
from meterlink.protocols.modbus.plan import ReadRequest

REQUEST = ReadRequest(3, 1, 2)
TIMEOUT = 0.2

# What the server does with request number n (counted from 0 over all connections): the frames to
# write back (each given the request's transaction id), or "close" to drop the connection.
Script = Callable[[int, int, int], list[bytes] | str]


def answer(tid: int, unit: int, registers: tuple[int, ...] = (11, 22)) -> bytes:
    return tcp.encode_mbap(tid, unit, rtu.read_response_pdu(3, registers))


class Gateway:
    """A loopback TCP server that reads MBAP requests and follows a script."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[int] = []  # transaction ids, in order of arrival
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[object]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                header = tcp.decode_mbap(await reader.readexactly(tcp.MBAP_SIZE))
                await reader.readexactly(header.pdu_size)
                n = len(self.requests)
                self.requests.append(header.transaction_id)
                action = self.script(n, header.transaction_id, header.unit)
                if isinstance(action, str):  # "close"
                    return
                for frame in action:
                    writer.write(frame)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def stop(self) -> None:
        for writer in list(self._writers):
            writer.close()
        assert self._server is not None
        self._server.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()


async def with_bus(script: Script, body: Callable[[ModbusBus, Gateway], object], retries: int = 0) -> None:
    gateway = Gateway(script)
    bus = ModbusBus("gw", TcpParams("127.0.0.1", await gateway.start()), timeout=TIMEOUT, retries=retries)
    try:
        result = body(bus, gateway)
        if asyncio.iscoroutine(result):
            await result
    finally:
        await bus.close()
        await gateway.stop()


def test_an_answer_under_another_transaction_id_is_dropped_and_the_right_one_taken() -> None:
    def script(n: int, tid: int, unit: int) -> list[bytes]:
        return [answer(tid ^ 0x5555, unit, (99, 99)), answer(tid, unit)]

    async def body(bus: ModbusBus, gateway: Gateway) -> None:
        assert await bus.read(1, REQUEST) == [11, 22]
        assert bus._tcp is not None and bus._tcp.dropped == 1

    run(lambda: with_bus(script, body))


def test_an_answer_for_another_unit_or_only_under_another_id_is_never_taken() -> None:
    def script(n: int, tid: int, unit: int) -> list[bytes]:
        return [answer(tid, unit + 1, (99, 99)), answer(tid + 1, unit, (98, 98))]

    async def body(bus: ModbusBus, gateway: Gateway) -> None:
        with pytest.raises(BadFrame, match="bytes received but no valid answer"):
            await bus.read(1, REQUEST)
        assert bus.counters.bad_frames == 1 and bus.counters.ok == 0

    run(lambda: with_bus(script, body))


def test_a_retry_goes_out_under_the_same_transaction_id_and_its_answer_is_taken() -> None:
    def script(n: int, tid: int, unit: int) -> list[bytes]:
        return [] if n == 0 else [answer(tid, unit)]

    async def body(bus: ModbusBus, gateway: Gateway) -> None:
        assert await bus.read(1, REQUEST) == [11, 22]
        assert len(gateway.requests) == 2 and gateway.requests[0] == gateway.requests[1]
        assert await bus.read(1, REQUEST) == [11, 22]
        assert gateway.requests[2] != gateway.requests[1], "each request has an id of its own"

    run(lambda: with_bus(script, body, retries=1))


def test_a_connection_closed_mid_request_fails_at_once_and_the_next_read_reconnects() -> None:
    def script(n: int, tid: int, unit: int) -> list[bytes] | str:
        return "close" if n == 1 else [answer(tid, unit)]

    async def body(bus: ModbusBus, gateway: Gateway) -> None:
        assert await bus.read(1, REQUEST) == [11, 22]
        started = asyncio.get_running_loop().time()
        with pytest.raises(TransportError, match="connection lost"):
            await bus.read(1, REQUEST)
        assert asyncio.get_running_loop().time() - started < TIMEOUT, "waited for the timeout"
        assert await bus.read(1, REQUEST) == [11, 22]
        assert gateway.connections == 2

    run(lambda: with_bus(script, body, retries=2))


def test_a_gateway_that_accepts_and_closes_is_not_reconnected_on_every_read() -> None:
    async def body(bus: ModbusBus, gateway: Gateway) -> None:
        with pytest.raises(TransportError, match="closed the connection"):
            await bus.read(1, REQUEST)
        for _ in range(5):
            with pytest.raises(TransportError, match="not connected"):
                await bus.read(1, REQUEST)
        assert gateway.connections == 1 and bus.counters.connect_failures == 1
        await asyncio.sleep(TIMEOUT)
        with pytest.raises(TransportError, match="closed the connection"):
            await bus.read(1, REQUEST)  # tried again once the timeout has passed
        assert gateway.connections == 2

    run(lambda: with_bus(lambda n, tid, unit: "close", body))


def test_an_answer_cut_short_is_finished_by_its_rest_or_drops_the_connection() -> None:
    """The rest of an answer that comes after its try timed out still completes it: the retry, sent
    under the same id, takes it. With no retry left the half frame means the stream's boundaries are
    lost: the connection is reopened, and the late rest can never be read as the next answer."""
    late: list[bytes] = []

    def script(n: int, tid: int, unit: int) -> list[bytes]:
        whole = answer(tid, unit)
        if n in (0, 2):
            late.append(whole[5:])
            return [whole[:5]]
        return [] if n == 1 else [whole]

    async def body(bus: ModbusBus, gateway: Gateway) -> None:
        async def send_rest_later() -> None:
            while not late:
                await asyncio.sleep(0.005)
            await asyncio.sleep(TIMEOUT * 1.2)  # after the first try gave up
            writer = next(iter(gateway._writers))
            writer.write(late.pop())

        rest = asyncio.create_task(send_rest_later())
        assert await bus.read(1, REQUEST) == [11, 22]  # try 1 cut short, its rest arrives during try 2
        await rest
        assert gateway.connections == 1
        bus.retries = 0
        with pytest.raises(BadFrame):
            await bus.read(1, REQUEST)  # request 3 (n == 2): cut short for good
        assert await bus.read(1, REQUEST) == [11, 22]
        assert gateway.connections == 2

    run(lambda: with_bus(script, body, retries=1))


def test_bytes_that_are_not_modbus_tcp_drop_the_connection_and_the_next_read_reconnects() -> None:
    def script(n: int, tid: int, unit: int) -> list[bytes]:
        return [b"HTTP/1.1 400 Bad Request\r\n\r\n"] if n == 1 else [answer(tid, unit)]

    async def body(bus: ModbusBus, gateway: Gateway) -> None:
        assert await bus.read(1, REQUEST) == [11, 22]
        with pytest.raises(TransportError, match="connection lost"):
            await bus.read(1, REQUEST)
        assert "not a Modbus TCP stream" in bus.counters.last_error
        assert await bus.read(1, REQUEST) == [11, 22]
        assert gateway.connections == 2

    run(lambda: with_bus(script, body))


def test_a_connection_silent_for_several_requests_is_opened_again() -> None:
    silent = tcp_client.DROP_AFTER_SILENT

    def script(n: int, tid: int, unit: int) -> list[bytes]:
        return [] if n < silent else [answer(tid, unit)]

    async def body(bus: ModbusBus, gateway: Gateway) -> None:
        for _ in range(silent):
            with pytest.raises(MeterTimeout):
                await bus.read(1, REQUEST)
        assert await bus.read(1, REQUEST) == [11, 22]
        assert gateway.connections == 2, "a half-open connection is never noticed unless dropped"

    run(lambda: with_bus(script, body))


def test_a_read_cancelled_while_waiting_stops_and_the_bus_reads_on() -> None:
    def script(n: int, tid: int, unit: int) -> list[bytes]:
        return [] if n == 0 else [answer(tid, unit)]

    async def body(bus: ModbusBus, gateway: Gateway) -> None:
        task = asyncio.create_task(bus.read(1, REQUEST))
        while not gateway.requests:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await bus.read(1, REQUEST) == [11, 22]
        assert gateway.connections == 1

    run(lambda: with_bus(script, body))


def test_a_gateway_that_refuses_connections_is_a_transport_error_naming_it() -> None:
    async def body() -> None:
        gateway = Gateway(lambda n, tid, unit: [])
        port = await gateway.start()
        await gateway.stop()  # nothing listens there now
        bus = ModbusBus("gw", TcpParams("127.0.0.1", port), timeout=TIMEOUT, retries=0)
        try:
            with pytest.raises(TransportError, match=f"cannot connect to .*:{port}: Connection refused$"):
                await bus.read(1, REQUEST)
            with pytest.raises(TransportError, match="not connected"):
                await bus.read(1, REQUEST)  # within the timeout: not tried again yet
            assert bus.counters.connect_failures == 1
        finally:
            await bus.close()

    run(body)


def test_a_host_name_no_resolver_takes_is_a_transport_error() -> None:
    async def body() -> None:
        bus = ModbusBus("gw", TcpParams("gw..site", 502), timeout=TIMEOUT, retries=0)
        with pytest.raises(TransportError, match="not a valid host name"):
            await bus.read(1, REQUEST)

    run(body)
