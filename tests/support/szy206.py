"""What the SZY206 tests share: a clean event loop per test, fake clocks, meters and endpoints."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from meterlink.drivers.params import SerialParams, TcpParams
from meterlink.protocols.szy206 import Address
from meterlink.sim.szy206_meter import SimSzy206Meter
from meterlink.sim.szy206_meter_server import Szy206SimServer

T = TypeVar("T")
START = 1_717_200_000.0  # 2024-06-01 00:00 UTC, 08:00 at the site (UTC+8)
DIVISION = "530381"


def run(body: Callable[[], Awaitable[T]]) -> T:
    """Run one test body in a fresh loop; fail if it leaves tasks or file descriptors behind."""
    fds = set(os.listdir("/proc/self/fd"))

    async def wrapped() -> T:
        result = await body()
        await asyncio.sleep(0)
        leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
        assert not leftovers, leftovers
        return result

    result = asyncio.run(wrapped())
    assert set(os.listdir("/proc/self/fd")) <= fds, "file descriptors leaked"
    return result


class FakeClock:
    """Seconds since the epoch, moved by the test."""

    def __init__(self, t: float = START) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def wall_ms() -> int:
    """The system clock in ms: for links whose tests do not look at time stamps."""
    return time.time_ns() // 1_000_000


def address(station: int = 13) -> Address:
    return Address(division=DIVISION, station=station)


def sim_meter(station: int = 13, **kwargs: object) -> SimSzy206Meter:
    """A simulated meter at ``address(station)`` on a fake clock stopped at START (unless given)."""
    kwargs.setdefault("clock", FakeClock())
    return SimSzy206Meter(address(station), **kwargs)  # type: ignore[arg-type]


async def endpoint(server: Szy206SimServer, kind: str) -> SerialParams | TcpParams:
    """Serve ``server``'s meters on a new pty or TCP port; the params a link opens it with."""
    if kind == "pty":
        return SerialParams(device=server.start_pty())
    return TcpParams("127.0.0.1", await server.start_tcp())
