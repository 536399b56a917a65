"""Shutting down the simulators' TCP listeners and the connections they accepted."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable

STOP_TIMEOUT_S = 2.0  # a connection handler gets this long to end by itself before it is cancelled


async def close_listeners(
    servers: Collection[asyncio.Server],
    writers: Iterable[asyncio.StreamWriter],
    handlers: Collection[asyncio.Task[None]],
) -> None:
    """Close ``servers`` and every connection, then wait for the connections' ``handlers``."""
    for server in servers:
        server.close()
    # Closing a connection ends its handler at its next read; cancelling the handler instead would
    # make asyncio's stream callback log the CancelledError as unhandled.
    for writer in list(writers):
        writer.close()
    if handlers:
        _, pending = await asyncio.wait(set(handlers), timeout=STOP_TIMEOUT_S)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
    for server in servers:
        await server.wait_closed()
