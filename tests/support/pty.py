"""The agent's end of a simulator's pty, opened and read as raw bytes by a test."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Protocol


def open_slave(path: str) -> int:
    """Open the agent's end of the pty, as pyserial does (non-blocking)."""
    return os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)


async def read_slave(fd: int, size: int, wait: float = 2.0) -> bytes:
    """Read up to ``size`` bytes from a non-blocking fd, giving up after ``wait`` seconds."""
    data = b""
    for _ in range(int(wait / 0.01)):
        with contextlib.suppress(BlockingIOError):
            data += os.read(fd, size - len(data))
        if len(data) >= size:
            break
        await asyncio.sleep(0.01)
    return data


class PtyServer(Protocol):
    """A simulator that serves on a pty (sim/modbus_server.py, sim/szy206_meter_server.py)."""

    def start_pty(self) -> str: ...

    async def stop(self) -> None: ...


@contextlib.asynccontextmanager
async def pty_client(server: PtyServer) -> AsyncIterator[int]:
    """``server`` on a new pty with the agent's end open; on leaving, that end closed, the server stopped."""
    fd = open_slave(server.start_pty())
    try:
        yield fd
    finally:
        os.close(fd)
        await server.stop()
