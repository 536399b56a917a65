"""Group commit: poll cycles of all buses that end within a few milliseconds share one transaction.

Every bus polls at the same wall-clock slot, so their cycles end close together. A commit with
fsync costs about 0.3 ms of CPU; paid once per bus it would be most of a meter poll's cost. So
the first cycle to finish opens a short window; cycles that finish inside it join the same
transaction. A reading is *captured* when that transaction commits, never earlier.

Polled readings are handed over with :meth:`GroupCommit.submit` and nobody waits for them. If the
store refuses a commit (a full disk, an I/O error), they are kept here and tried again at the next
flush, every second or so, up to ``max_held`` readings; past that the oldest are dropped, counted and
logged. They were never captured, so no ``seq`` was spent on them: the platform sees missing slots,
and the log and the counters say why.

Readings that someone is told about (a meter's self-report, confirmed to the meter once it is ours)
go through :meth:`GroupCommit.commit`, which returns only after their transaction committed. If that
commit fails they are not kept: the caller is told, sends no confirm, and the meter keeps its copy and
sends it again, so holding ours too would store the report twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from meterlink.drivers.base import Reading

from .errors import StoreError
from .outbox import Outbox

log = logging.getLogger("meterlink.capture")

WINDOW_S = 0.05
RETRY_S = 1.0


@dataclass(slots=True, eq=False)
class _Parcel:
    """Readings handed over together; ``done`` is set for those whose caller waits for the commit."""

    readings: Sequence[Reading]
    done: asyncio.Future[tuple[int, int]] | None = None
    withdrawn: bool = field(default=False)  # its caller stopped waiting before the commit began


class GroupCommit:
    def __init__(self, outbox: Outbox, window: float = WINDOW_S, max_held: int = 100_000) -> None:
        self.outbox = outbox
        self.window = window
        self.max_held = max_held
        self._held: deque[_Parcel] = deque()  # waiting for the next commit
        self._held_readings = 0
        self._in_commit = 0  # readings in the commit that runs now
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
        if readings:
            self._hold(_Parcel(readings))

    async def commit(self, readings: Sequence[Reading]) -> tuple[int, int]:
        """Commit ``readings`` with the others of their window and return their (first, last) seq
        once the transaction is on disk.

        Raises:
            Exception: whatever the store raised (StoreFull, a full disk): nothing was stored, and
                nothing is kept for a retry.
        """
        if not readings:
            raise ValueError("nothing to commit")
        parcel = _Parcel(readings, asyncio.get_running_loop().create_future())
        self._hold(parcel)
        assert parcel.done is not None
        try:
            return await parcel.done
        except asyncio.CancelledError:
            parcel.withdrawn = True  # not committed yet: left out; in the commit that runs: stored anyway
            raise

    def _hold(self, parcel: _Parcel) -> None:
        self._held.append(parcel)
        self._held_readings += len(parcel.readings)
        while self._held_readings > self.max_held and len(self._held) > 1:
            oldest = self._held.popleft()
            self._held_readings -= len(oldest.readings)
            self.dropped += len(oldest.readings)
            log.error(
                "event=capture_dropped readings=%d total_dropped=%d reason=%r",
                len(oldest.readings),
                self.dropped,
                self.last_error,
            )
            if oldest.done is not None and not oldest.done.done():
                oldest.done.set_exception(StoreError(f"not stored, the store refuses commits ({self.last_error})"))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush_after(self.window), name="meterlink.capture"
            )

    @property
    def held(self) -> int:
        """Readings handed over and not yet committed (waiting, or in the commit that runs)."""
        return self._held_readings + self._in_commit

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
        # The parcels of this commit leave the queue while it runs: what arrives meanwhile, and
        # what overflow drops meanwhile, can never be mixed up with them.
        parcels = [p for p in self._held if not p.withdrawn]
        self._held.clear()
        self._held_readings = 0
        if not parcels:
            return
        batch = [r for p in parcels for r in p.readings]
        self._in_commit = len(batch)
        try:
            first, last = await self.outbox.append(batch)
        except Exception as exc:
            self._in_commit = 0
            self.failures += 1
            self.last_error = str(exc)
            told = self._give_back(parcels, exc)
            if self.failures == 1 or self.failures % 60 == 0:
                log.error(
                    "event=capture_failed readings_held=%d not_taken=%d error=%s detail=%r retry_in=%.0fs",
                    self._held_readings,
                    told,
                    type(exc).__name__,
                    str(exc),
                    RETRY_S,
                )
            if self._held and self._flusher is None:
                self._flusher = asyncio.get_running_loop().create_task(
                    self._flush_after(RETRY_S), name="meterlink.capture.retry"
                )
            return
        self._in_commit = 0
        seq = first
        for parcel in parcels:
            if parcel.done is not None and not parcel.done.done():
                parcel.done.set_result((seq, seq + len(parcel.readings) - 1))
            seq += len(parcel.readings)
        if self.failures:
            log.warning("event=capture_recovered after_failures=%d", self.failures)
            self.failures = 0
        self.commits += 1
        log.debug("event=captured readings=%d seq=%d-%d", len(batch), first, last)

    def _give_back(self, parcels: list[_Parcel], exc: Exception) -> int:
        """After a failed commit: polled readings go back to the head of the queue for the retry;
        readings whose caller waits are given up (the caller is told). Returns how many were."""
        told = 0
        for parcel in reversed(parcels):
            if parcel.done is None:
                self._held.appendleft(parcel)
                self._held_readings += len(parcel.readings)
            elif not parcel.done.done():
                parcel.done.set_exception(exc)
                told += len(parcel.readings)
        return told

    async def flush(self) -> None:
        """Wait until everything handed over so far is committed, or one attempt failed (shutdown)."""
        task = self._flusher
        if task is not None:
            task.cancel()  # skip the rest of the window
            await asyncio.gather(task, return_exceptions=True)
        await self._commit()  # what is still held, after any commit already running
