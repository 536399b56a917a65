"""Group commit: poll cycles of all buses that end within a few milliseconds share one transaction.

Every bus polls at the same wall-clock slot, so their cycles end close together. A commit with
fsync costs about 0.3 ms of CPU; paid once per bus it would be most of a meter poll's cost. So
the first cycle to finish opens a short window; cycles that finish inside it join the same
transaction. Each caller still waits for its own commit: when ``append`` returns, the readings are
on disk (captured), never earlier.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from meterlink.drivers.base import Reading

from .outbox import Outbox

WINDOW_S = 0.05


class GroupCommit:
    def __init__(self, outbox: Outbox, window: float = WINDOW_S) -> None:
        self.outbox = outbox
        self.window = window
        self._waiting: list[tuple[Sequence[Reading], asyncio.Future[tuple[int, int]]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.commits = 0

    async def append(self, readings: Sequence[Reading]) -> tuple[int, int]:
        """Store ``readings``; returns their (first, last) seq once the transaction committed."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[int, int]] = loop.create_future()
        self._waiting.append((readings, fut))
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush_after_window(), name="meterlink.capture")
        return await fut

    async def _flush_after_window(self) -> None:
        try:
            await asyncio.sleep(self.window)
        finally:
            # Even when cancelled (shutdown), what was polled is written before the task ends.
            waiting, self._waiting = self._waiting, []
            self._flusher = None
            await self._commit(waiting)

    async def _commit(self, waiting: list[tuple[Sequence[Reading], asyncio.Future[tuple[int, int]]]]) -> None:
        everything = [r for readings, _ in waiting for r in readings]
        try:
            first, _ = await self.outbox.call(self.outbox.store.append, everything)
        except Exception as exc:
            for _, fut in waiting:
                if not fut.done():
                    fut.set_exception(exc)
            return
        self.commits += 1
        for readings, fut in waiting:
            if not fut.done():
                fut.set_result((first, first + len(readings) - 1))
            first += len(readings)

    async def flush(self) -> None:
        """Wait until every cycle handed over so far is committed (used at shutdown)."""
        while self._flusher is not None:
            await asyncio.shield(self._flusher)
