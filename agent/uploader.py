"""Uploading: pending readings from the store, signed, published, and marked sent on PUBACK.

At every upload slot the uploader drains what is pending, oldest first, in batches of at most
``batch_size`` readings. A few batches may be in flight at once (a window) so a backlog drains at
the broker's pace rather than one round trip at a time. A batch is marked sent only after its
PUBACK with a success code; any failure ends the round and the readings stay pending for the next.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from .clock import next_slot, now_ms
from .outbox import Outbox
from .payload import StoredReading, events_message, readings_message
from .signing import Signer
from .uplinks.base import UplinkError
from .uplinks.mqtt import MqttLink

log = logging.getLogger("meterlink.upload")

BATCH_BLOCK = 1000  # batch numbers reserved per store write


@dataclass(slots=True)
class UploadStats:
    messages: int = 0
    readings: int = 0
    bytes: int = 0
    failures: int = 0
    events: int = 0
    last_error: str = ""


class Uploader:
    def __init__(
        self,
        outbox: Outbox,
        link: MqttLink,
        signer: Signer,
        *,
        gateway: str,
        topic_prefix: str,
        interval_s: float,
        batch_size: int,
        publish_timeout: float,
        window: int = 4,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.outbox = outbox
        self.link = link
        self.signer = signer
        self.gateway = gateway
        self.readings_topic = f"{topic_prefix}/{gateway}/readings"
        self.events_topic = f"{topic_prefix}/{gateway}/events"
        self.interval_ms = int(interval_s * 1000)
        self.batch_size = batch_size
        self.publish_timeout = publish_timeout
        self.window = window
        self.clock = clock
        self.stats = UploadStats()
        self.stopping = False
        self._batch_next = 0
        self._batch_end = 0
        self.wake = asyncio.Event()
        self.events_waiting = True  # checked once at start; then set by whoever adds an event

    async def run(self) -> None:
        while not self.stopping:
            await self.link.connected.wait()
            await self.upload_once()
            # Upload a little after each slot boundary, when that slot's polls are in the store.
            offset = min(self.interval_ms // 4, 10_000)
            now = self.clock()
            target = next_slot(now - offset, self.interval_ms) + offset
            try:
                await asyncio.wait_for(self.wake.wait(), max(0.0, (target - now) / 1000))
            except TimeoutError:
                pass
            self.wake.clear()

    async def upload_once(self) -> int:
        """Drain everything pending now. Returns the number of readings confirmed."""
        try:
            sent = await self._drain_readings()
            await self._drain_events()
        except UplinkError as exc:
            self.stats.failures += 1
            self.stats.last_error = str(exc)
            log.warning("event=upload_failed error=%s detail=%r", type(exc).__name__, str(exc))
            return 0
        return sent

    async def _batch_number(self) -> int:
        if self._batch_next >= self._batch_end:
            first = await self.outbox.call(self.outbox.store.reserve_batches, BATCH_BLOCK)
            self._batch_next, self._batch_end = first, first + BATCH_BLOCK
        batch = self._batch_next
        self._batch_next += 1
        return batch

    async def _drain_readings(self) -> int:
        store = self.outbox.store
        after = 0
        inflight: set[asyncio.Task[int]] = set()
        confirmed = 0
        try:
            while not self.stopping:
                rows = await self.outbox.call(store.pending, self.batch_size, after)
                if not rows:
                    break
                after = rows[-1].seq
                batch = await self._batch_number()
                message = self.signer.sign(readings_message(self.gateway, batch, self.clock(), rows))
                inflight.add(asyncio.create_task(self._send(batch, rows, message), name=f"meterlink.batch.{batch}"))
                if len(inflight) >= self.window:
                    done, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                    confirmed += sum(t.result() for t in done)  # re-raises the first failure
        finally:
            if inflight:
                results = await asyncio.gather(*inflight, return_exceptions=True)
                for r in results:
                    if isinstance(r, int):
                        confirmed += r
                errors = [r for r in results if isinstance(r, BaseException)]
                if errors and not isinstance(errors[0], asyncio.CancelledError):
                    raise errors[0]
        return confirmed

    async def _send(self, batch: int, rows: list[StoredReading], message: bytes) -> int:
        await self.link.publish(self.readings_topic, message, timeout=self.publish_timeout)
        first, last = rows[0].seq, rows[-1].seq
        await self.outbox.call(self.outbox.store.mark_sent, first, last, self.clock())
        self.stats.messages += 1
        self.stats.readings += len(rows)
        self.stats.bytes += len(message)
        log.info("event=uploaded batch=%d readings=%d seq=%d-%d bytes=%d", batch, len(rows), first, last, len(message))
        return len(rows)

    async def _drain_events(self) -> None:
        if not self.events_waiting:
            return  # spares a store round trip per upload: events are rare
        self.events_waiting = False
        store = self.outbox.store
        while not self.stopping:
            try:
                events = await self.outbox.call(store.pending_events, 100)
            except BaseException:
                self.events_waiting = True
                raise
            if not events:
                return
            batch = await self._batch_number()
            message = self.signer.sign(events_message(self.gateway, batch, self.clock(), events))
            try:
                await self.link.publish(self.events_topic, message, timeout=self.publish_timeout)
            except BaseException:
                self.events_waiting = True
                raise
            await self.outbox.call(store.mark_events_sent, events[0].seq, events[-1].seq, self.clock())
            self.stats.events += len(events)
            log.info("event=events_uploaded batch=%d events=%d", batch, len(events))
