"""Group commit: poll cycles of all buses that end within a few milliseconds share one transaction.

Every bus polls at the same wall-clock slot, so their cycles end close together. A commit with
fsync costs about 0.3 ms of CPU; paid once per bus it would be most of a meter poll's cost. So
the first cycle to finish opens a short window; cycles that finish inside it join the same
transaction. A reading is *captured* when that transaction commits, never earlier.

If the store refuses a commit (a full disk, an I/O error), the readings are kept here and tried
again at the next flush, every second or so, up to ``max_held`` readings; past that the oldest are
dropped, counted and logged. They were never captured, so no ``seq`` was spent on them: the platform
sees missing slots, and the log and the counters say why.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence

from meterlink.drivers.base import Reading

from .outbox import Outbox

log = logging.getLogger("meterlink.capture")

WINDOW_S = 0.05
RETRY_S = 1.0


class GroupCommit:
    def __init__(self, outbox: Outbox, window: float = WINDOW_S, max_held: int = 100_000) -> None:
        self.outbox = outbox
        self.window = window
        self.max_held = max_held
        self._held: deque[Reading] = deque()
        self._flusher: asyncio.Task[None] | None = None
        # One commit at a time: a flush while the window's commit is running must wait for it, not
        # write the same held readings a second time under new seqs.
        self._committing = asyncio.Lock()
        self.commits = 0
        self.failures = 0
        self.dropped = 0
        self.last_error = ""

    def submit(self, readings: Sequence[Reading]) -> None:
        """Hand over one poll cycle; it is committed with the others of its window."""
        self._held.extend(readings)
        overflow = len(self._held) - self.max_held
        if overflow > 0:
            for _ in range(overflow):
                self._held.popleft()
            self.dropped += overflow
            log.error("event=capture_dropped readings=%d total_dropped=%d reason=%r",
                      overflow, self.dropped, self.last_error)
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_after(self.window),
                                                                   name="meterlink.capture")

    @property
    def held(self) -> int:
        return len(self._held)

    async def _flush_after(self, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
        finally:
            # Even when cancelled (shutdown), what was polled is written before the task ends.
            self._flusher = None
            await self._commit()

    async def _commit(self) -> None:
        async with self._committing:
            await self._commit_held()

    async def _commit_held(self) -> None:
        if not self._held:
            return
        batch = list(self._held)
        try:
            first, last = await self.outbox.call(self.outbox.store.append, batch)
        except Exception as exc:
            self.failures += 1
            self.last_error = str(exc)
            if self.failures == 1 or self.failures % 60 == 0:
                log.error("event=capture_failed readings_held=%d error=%s detail=%r retry_in=%.0fs",
                          len(self._held), type(exc).__name__, str(exc), RETRY_S)
            if self._flusher is None:
                self._flusher = asyncio.get_running_loop().create_task(self._flush_after(RETRY_S),
                                                                       name="meterlink.capture.retry")
            return
        for _ in range(len(batch)):
            self._held.popleft()
        if self.failures:
            log.warning("event=capture_recovered after_failures=%d", self.failures)
            self.failures = 0
        self.commits += 1
        log.debug("event=captured readings=%d seq=%d-%d", len(batch), first, last)

    async def flush(self) -> None:
        """Wait until everything handed over so far is committed, or one attempt failed (shutdown)."""
        task = self._flusher
        if task is not None:
            task.cancel()  # skip the rest of the window
            await asyncio.gather(task, return_exceptions=True)
        await self._commit()  # what is still held, after any commit already running
