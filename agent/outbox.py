"""The store seen from the event loop: named operations, each run on one worker thread, in order.

SQLite calls block (a commit waits for fsync); on the event loop they would stall polling and the
MQTT keep-alive. One thread owns the store, so no two calls ever overlap, and the loop never reads
the store's own state: what the loop needs (the next ``seq``, whether events were added, what the
store found when it opened) is handed back by the worker thread with every operation's result and
kept here, on the loop's side.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from meterlink.drivers.base import Reading
from meterlink.wire.payload import StoredEvent, StoredReading

from .store import Store, StoreStats

if TYPE_CHECKING:
    from .salvage import Salvage

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Opening:
    """What the store found when it opened: set once, before any operation, never changed after."""

    moved_aside: tuple[Path, str] | None  # (where, why) when a corrupt store was replaced
    seq_jump: tuple[int, int] | None  # (had, continued at) when the store was replaced
    salvaged: Salvage | None  # what was read from the corrupt store it replaced


class Outbox:
    """The agent's only way to the store. Built before the worker thread first touches the store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="meterlink-store")
        self.opening = Opening(store.moved_aside, store.seq_jump, store.salvaged)
        self.path = store.path
        # The loop's copies, refreshed by the worker after every operation (see _seen).
        self.next_seq = store.next_seq  # the seq the next reading will get
        self.events_added = store.events_added  # moves whenever an event is written
        self._seen = (self.next_seq, self.events_added)

    # -- running on the worker thread -------------------------------------------------------------

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` on the store's thread: for the store's companions (the daybook, manual entries)."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._in_worker, lambda: fn(*args, **kwargs))
        finally:
            self.next_seq, self.events_added = self._seen

    async def with_store(self, fn: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(store, ...)`` on the store's thread (a companion built on the store, a unit of work)."""
        return await self.call(fn, self._store, *args, **kwargs)

    def _in_worker(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        finally:
            # Written by the worker, read by the loop once the operation's future is done.
            self._seen = (self._store.next_seq, self._store.events_added)

    # -- readings ---------------------------------------------------------------------------------

    async def append(self, readings: Sequence[Reading]) -> tuple[int, int]:
        """Commit one poll cycle; the (first, last) seq given out (see :meth:`Store.append`)."""
        return await self.call(self._store.append, readings)

    async def pending(self, limit: int, after: int = 0, below: int | None = None) -> list[StoredReading]:
        """The oldest pending readings with ``after`` < seq < ``below``, in seq order."""
        return await self.call(self._store.pending, limit, after, below)

    async def confirm(self, first: int, last: int, when: int) -> int:
        """Readings first..last were confirmed by the far side; how many changed state."""
        return await self.call(self._store.mark_sent, first, last, when)

    async def reserve_batches(self, count: int) -> int:
        """``count`` message numbers never used before; the first of them."""
        return await self.call(self._store.reserve_batches, count)

    # -- events -----------------------------------------------------------------------------------

    async def add_event(self, kind: str, ts: int, detail: dict[str, Any] | None = None) -> int:
        """Commit an event; its seq."""
        return await self.call(self._store.add_event, kind, ts, detail)

    async def pending_events(self, limit: int) -> list[StoredEvent]:
        return await self.call(self._store.pending_events, limit)

    async def confirm_events(self, first: int, last: int, when: int) -> int:
        return await self.call(self._store.mark_events_sent, first, last, when)

    # -- SZY206 report slots ----------------------------------------------------------------------

    async def keep_report(self, slot: int, data: bytes, created: int) -> bool:
        """Keep one slot's report (once); False if that slot is already kept."""
        return await self.call(self._store.add_report, slot, data, created)

    async def report_attempted(self, slot: int) -> None:
        await self.call(self._store.report_attempted, slot)

    async def confirm_report(self, slot: int, when: int) -> None:
        await self.call(self._store.confirm_report, slot, when)

    async def unconfirmed_reports(self, limit: int, before: int | None = None) -> list[tuple[int, bytes]]:
        """Reports the station has not confirmed, oldest first."""
        return await self.call(self._store.unconfirmed_reports, limit, before)

    async def reports_between(self, first: int, last: int) -> list[tuple[int, bytes]]:
        return await self.call(self._store.reports_between, first, last)

    # -- housekeeping -----------------------------------------------------------------------------

    async def stats(self, *, count_rows: bool = True) -> StoreStats:
        return await self.call(self._store.stats, count_rows=count_rows)

    async def purge(self, now_ms: int) -> int:
        """Delete what the retention period lets go; how many readings."""
        return await self.call(self._store.purge, now_ms)

    async def close(self) -> None:
        await self.call(self._store.close)
        self._executor.shutdown(wait=True)
