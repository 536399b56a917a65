"""What the SZY206 driver and simulator tests share: simulated meters and the endpoints they serve."""

from __future__ import annotations

import time
from typing import Any

from meterlink.drivers.params import SerialParams, TcpParams
from meterlink.sim.szy206_meter import SimSzy206Meter
from meterlink.sim.szy206_meter_server import Szy206SimServer
from support.loop import FakeClock
from support.szy206_frames import address


def wall_ms() -> int:
    """The system clock in ms: for links whose tests do not look at time stamps."""
    return time.time_ns() // 1_000_000


def sim_meter(station: int = 13, **kwargs: Any) -> SimSzy206Meter:
    """A simulated meter at ``address(station)`` on a fake clock stopped at START (unless given)."""
    kwargs.setdefault("clock", FakeClock())
    return SimSzy206Meter(address(station), **kwargs)


async def endpoint(server: Szy206SimServer, kind: str) -> SerialParams | TcpParams:
    """Serve ``server``'s meters on a new pty or TCP port; the params a link opens it with."""
    if kind == "pty":
        return SerialParams(device=server.start_pty())
    return TcpParams("127.0.0.1", await server.start_tcp())
