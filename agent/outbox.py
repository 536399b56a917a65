"""The store seen from the event loop: every call runs on one worker thread, in order.

SQLite calls block (a commit waits for fsync); on the event loop they would stall polling and the
MQTT keep-alive. One thread owns the connection, so no two calls ever overlap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from .store import Store

P = ParamSpec("P")
T = TypeVar("T")


class Outbox:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="meterlink-store")

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def close(self) -> None:
        await self.call(self.store.close)
        self._executor.shutdown(wait=True)
