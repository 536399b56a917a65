"""Uploading: pending readings from the store, signed, published, and marked sent on confirmation.

Two streams share the MQTT link:

- **live**: at every upload slot (a little after each ``upload_interval`` boundary), the readings
  captured since the previous slot go out at once, whatever else is happening;
- **backlog**: readings left over from earlier slots (an outage, a failed batch, a restart) drain
  oldest first, paced at ``backfill_rate`` readings per second, between and alongside live slots.

Readings sent after the end of the upload slot that should have carried them go out in messages
marked ``"backfill": true`` (补报), apart from timely ones: the mark belongs to the message, so a
reading sent again carries exactly the content of its first copy. A batch is marked sent when the
broker's PUBACK carried a success code, or, with receipts enabled, when the platform's receipt for
that batch arrived (see :mod:`receipts`); any failure leaves its readings pending for a later
attempt. A few batches may be in flight at once (a window), so a backlog drains at the broker's
pace.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from meterlink.wire.jws import Signer
from meterlink.wire.payload import (
    StoredReading,
    archive_message,
    daily_message,
    events_message,
    evidence_message,
    readings_message,
)

from .clock import current_slot, next_slot, now_ms
from .daybook import Daybook
from .outbox import Outbox
from .receipts import ReceiptBook
from .tasks import cancel_and_wait
from .uplinks.base import Publication, Uplink, UplinkError

log = logging.getLogger("meterlink.upload")

BATCH_BLOCK = 1000  # batch numbers reserved per store write


@dataclass(slots=True)
class UploadStats:
    messages: int = 0
    readings: int = 0
    backfilled: int = 0
    bytes: int = 0
    failures: int = 0
    events: int = 0
    last_error: str = ""


class Uploader:
    def __init__(
        self,
        outbox: Outbox,
        link: Uplink[Publication],
        signer: Signer,
        *,
        gateway: str,
        topic_prefix: str,
        interval_s: float,
        batch_size: int,
        publish_timeout: float,
        backfill_rate: float = 0.0,
        receipts: ReceiptBook | None = None,
        window: int = 4,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.outbox = outbox
        self.link = link
        self.signer = signer
        self.gateway = gateway
        self.readings_topic = f"{topic_prefix}/{gateway}/readings"
        self.events_topic = f"{topic_prefix}/{gateway}/events"
        self.daily_topic = f"{topic_prefix}/{gateway}/daily"
        self.archive_topic = f"{topic_prefix}/{gateway}/archive"
        # Set by the agent when the platform's rules run: day summaries to send, upload slots to count.
        self.daybook: Daybook | None = None
        self.days_waiting = True
        # The meter archive, published retained at start and whenever it changes (None: nothing to send).
        self.archive: dict[str, object] | None = None
        self._archive_sent: dict[str, object] | None = None
        # Photos of manual readings: sent from this folder when the config says so (None: never).
        self.evidence_dir: Path | None = None
        self.evidence_prefix = f"{topic_prefix}/{gateway}/evidence"
        self.days_waiting_evidence = True
        self._last_ok = False
        self.interval_ms = int(interval_s * 1000)
        self.settle_ms = min(self.interval_ms // 4, 10_000)
        self.batch_size = batch_size
        self.publish_timeout = publish_timeout
        self.backfill_rate = backfill_rate
        self.receipts = receipts
        self.window = window
        self.clock = clock
        self.stats = UploadStats()
        # Called with the seconds from publishing a message of readings to its confirmation.
        self.on_delivered: Callable[[float], None] | None = None
        self.stopping = False
        self._batch_next = 0
        self._batch_end = 0
        self.wake = asyncio.Event()
        self.events_waiting = True  # at start, and after a failed attempt: look in the store
        self._events_seen = 0  # the outbox's events_added when last looked: it moves with every event
        # Readings with seq >= live_from were captured since the last upload slot; below it, backlog.
        self.live_from = outbox.next_seq
        self._backlog_wake = asyncio.Event()
        self._slots = asyncio.Semaphore(window)

    # -- the two streams --------------------------------------------------------------------------

    async def run(self) -> None:
        backlog = asyncio.create_task(self._backlog_loop(), name="meterlink.upload.backlog")
        try:
            while not self.stopping:
                await self.link.connected.wait()
                boundary = self.outbox.next_seq
                await self._upload(self._live_rows(self.live_from), "live")
                self.live_from = boundary
                if self._last_ok and self.daybook is not None:  # the gateway's own report rate
                    slot = current_slot(self.clock() - self.settle_ms, self.interval_ms)
                    await self.outbox.call(self.daybook.upload_confirmed, slot)
                self._backlog_wake.set()
                await self._sleep_until_next_slot()
        finally:
            # The backlog's publishes in flight get their publish timeout to be acknowledged.
            await cancel_and_wait([backlog], every=self.publish_timeout + 1)

    def next_upload_ms(self, now: int) -> int:
        """When the next upload slot's upload starts (a slot's readings settle first)."""
        return next_slot(now - self.settle_ms, self.interval_ms) + self.settle_ms

    async def _sleep_until_next_slot(self) -> None:
        now = self.clock()
        target = self.next_upload_ms(now)
        try:
            await asyncio.wait_for(self.wake.wait(), max(0.0, (target - now) / 1000))
        except TimeoutError:
            pass
        self.wake.clear()

    async def _backlog_loop(self) -> None:
        while not self.stopping:
            await self._backlog_wake.wait()
            self._backlog_wake.clear()
            await self.link.connected.wait()
            sent = await self._upload(self._backlog_rows(), "backlog", pace=True)
            if sent:
                log.info("event=backlog_sent readings=%d", sent)

    async def upload_once(self) -> int:
        """Send everything pending now, oldest first, unpaced. Returns readings confirmed."""
        return await self._upload(self._backlog_rows(below=None), "drain")

    async def _upload(self, rows: _Rows, stream: str, *, pace: bool = False) -> int:
        self._last_ok = False
        try:
            sent = await self._drain(rows, pace)
            await self._drain_events()
            await self._drain_days()
            await self._drain_evidence()
            await self._publish_archive()
        except UplinkError as exc:
            self.stats.failures += 1
            self.stats.last_error = str(exc)
            log.warning("event=upload_failed stream=%s error=%s detail=%r", stream, type(exc).__name__, str(exc))
            return 0
        self._last_ok = True
        return sent

    def _live_rows(self, first_seq: int) -> _Rows:
        return _Rows(self, after=first_seq - 1, below=None)

    def _backlog_rows(self, below: int | None = -1) -> _Rows:
        return _Rows(self, after=0, below=self.live_from if below == -1 else below)

    # -- sending batches --------------------------------------------------------------------------

    def _publication(self, topic: str, message: bytes, *, retain: bool = False) -> Publication:
        return Publication(topic, message, retain=retain, timeout=self.publish_timeout)

    async def _batch_number(self) -> int:
        if self._batch_next >= self._batch_end:
            first = await self.outbox.reserve_batches(BATCH_BLOCK)
            self._batch_next, self._batch_end = first, first + BATCH_BLOCK
        batch = self._batch_next
        self._batch_next += 1
        return batch

    async def _drain(self, rows: _Rows, pace: bool) -> int:
        inflight: set[asyncio.Task[int]] = set()
        confirmed = 0
        try:
            while not self.stopping:
                batch_rows = await rows.next()
                if not batch_rows:
                    break
                sent_at = self.clock()
                for group, backfill in self._split_late(batch_rows, sent_at):
                    batch = await self._batch_number()
                    message = self.signer.sign(readings_message(self.gateway, batch, sent_at, group, backfill=backfill))
                    await self._slots.acquire()
                    task = asyncio.create_task(self._send(batch, group, message), name=f"meterlink.batch.{batch}")
                    task.add_done_callback(lambda _: self._slots.release())
                    inflight.add(task)
                if len(inflight) >= self.window:
                    done, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                    confirmed += sum(t.result() for t in done)  # re-raises the first failure
                if pace and self.backfill_rate > 0:
                    await asyncio.sleep(len(batch_rows) / self.backfill_rate)
        finally:
            if inflight:
                results = await asyncio.gather(*inflight, return_exceptions=True)
                confirmed += sum(r for r in results if isinstance(r, int))
                errors = [r for r in results if isinstance(r, BaseException)]
                if errors and not isinstance(errors[0], asyncio.CancelledError):
                    raise errors[0]
        return confirmed

    def _split_late(self, rows: list[StoredReading], sent_at: int) -> list[tuple[list[StoredReading], bool]]:
        """Timely readings and late ones (after the upload slot that should have carried them), apart."""
        interval = self.interval_ms
        late_before = sent_at - interval - self.settle_ms
        timely: list[StoredReading] = []
        late: list[StoredReading] = []
        for r in rows:  # every reading of every upload: next_slot(r.slot, interval), inlined
            (late if (r.slot // interval + 1) * interval < late_before else timely).append(r)
        self.stats.backfilled += len(late)
        return [(group, group is late) for group in (late, timely) if group]

    async def _send(self, batch: int, rows: list[StoredReading], message: bytes) -> int:
        first, last = rows[0].seq, rows[-1].seq
        if self.receipts is not None:
            self.receipts.expect(batch, first, last, self.clock())
        sent = time.monotonic()
        await self.link.deliver(self._publication(self.readings_topic, message))
        if self.on_delivered is not None:
            self.on_delivered(time.monotonic() - sent)
        self.stats.messages += 1
        self.stats.bytes += len(message)
        if self.receipts is None:
            await self.outbox.confirm(first, last, self.clock())
            self.stats.readings += len(rows)
        log.info("event=uploaded batch=%d readings=%d seq=%d-%d bytes=%d", batch, len(rows), first, last, len(message))
        return len(rows)

    async def _drain_events(self) -> None:
        outbox = self.outbox
        if not self.events_waiting and outbox.events_added == self._events_seen:
            return  # spares a store round trip per upload: events are rare
        self.events_waiting = False
        self._events_seen = outbox.events_added
        while not self.stopping:
            try:
                events = await outbox.pending_events(100)
            except BaseException:
                self.events_waiting = True
                raise
            if not events:
                return
            batch = await self._batch_number()
            message = self.signer.sign(events_message(self.gateway, batch, self.clock(), events))
            try:
                await self.link.deliver(self._publication(self.events_topic, message))
            except BaseException:
                self.events_waiting = True
                raise
            await outbox.confirm_events(events[0].seq, events[-1].seq, self.clock())
            self.stats.events += len(events)
            log.info("event=events_uploaded batch=%d events=%d", batch, len(events))

    async def _drain_days(self) -> None:
        """Day summaries not yet sent (new days, corrections), oldest first, on ``/daily``."""
        daybook = self.daybook
        if daybook is None or not self.days_waiting:
            return
        while not self.stopping:
            days = await self.outbox.call(daybook.unsent_days, 100)
            if not days:
                self.days_waiting = False
                return
            batch = await self._batch_number()
            message = self.signer.sign(daily_message(self.gateway, batch, self.clock(), [d.summary for d in days]))
            await self.link.deliver(self._publication(self.daily_topic, message))
            await self.outbox.call(daybook.mark_days_sent, days, self.clock())
            log.info("event=daily_uploaded batch=%d days=%d", batch, len(days))

    async def _drain_evidence(self) -> None:
        """Photos of manual readings, when the config sends them, each on ``/evidence/<sha256>``."""
        daybook = self.daybook
        if daybook is None or self.evidence_dir is None or not self.days_waiting_evidence:
            return
        while not self.stopping:
            photos = await self.outbox.call(daybook.unsent_evidence, 10)
            if not photos:
                self.days_waiting_evidence = False
                return
            for sha256, media_type, size in photos:
                try:
                    data = (self.evidence_dir / sha256).read_bytes()
                except OSError as exc:  # the photo was removed by hand: say so once, keep the digest
                    log.error("event=evidence_missing sha256=%s error=%r", sha256, str(exc))
                    await self.outbox.call(daybook.mark_evidence_sent, sha256, -1)
                    continue
                batch = await self._batch_number()
                body = evidence_message(self.gateway, batch, self.clock(), sha256, media_type, data)
                topic = f"{self.evidence_prefix}/{sha256}"
                await self.link.deliver(self._publication(topic, self.signer.sign(body)))
                await self.outbox.call(daybook.mark_evidence_sent, sha256, self.clock())
                log.info("event=evidence_uploaded batch=%d sha256=%s bytes=%d", batch, sha256, size)

    async def _publish_archive(self) -> None:
        """The meter archive, retained, once per change (and once per start)."""
        if self.archive is None or self.archive == self._archive_sent:
            return
        document = self.archive
        batch = await self._batch_number()
        message = self.signer.sign(archive_message(self.gateway, batch, self.clock(), document))
        await self.link.deliver(self._publication(self.archive_topic, message, retain=True))
        self._archive_sent = document
        log.info("event=archive_uploaded batch=%d meters=%d", batch, len(document))


class _Rows:
    """Pending readings in seq order, batch by batch, skipping what awaits a receipt."""

    def __init__(self, uploader: Uploader, *, after: int, below: int | None) -> None:
        self.uploader = uploader
        self.after = after
        self.below = below

    async def next(self) -> list[StoredReading]:
        up = self.uploader
        while True:
            rows = await up.outbox.pending(up.batch_size, self.after, self.below)
            if not rows:
                return []
            self.after = rows[-1].seq
            if up.receipts is not None:
                now = up.clock()
                rows = [r for r in rows if not up.receipts.awaiting(r.seq, now)]
                if not rows:
                    continue
            return rows
