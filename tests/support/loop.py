"""One clean event loop per test body, and a clock the test moves by hand."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
START = 1_717_200_000.0  # 2024-06-01 00:00 UTC, 08:00 at the site (UTC+8)


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
    """Seconds since the epoch, moved by the test: frozen between two requests."""

    def __init__(self, t: float = START) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t
