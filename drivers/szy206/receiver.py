"""Bytes in, frames out, for one link: the codec's Reassembler plus what it needs from a clock.

The reassembler finds frames split across reads, glued together or wrapped in noise, and counts
what it throws away; those counts are added to the link's and logged here, one line per batch
of rejected candidates. It has no clock, so giving up on a partial frame is done here: when no
byte has arrived for ``resync_after`` seconds and bytes are still held (a corrupted L that claims
more bytes than will come holds back every frame behind it), the candidate is dropped and the
hunt goes on. Nothing here raises into the event loop: bad bytes are counted, and a bug in
handling a frame is logged and leaves a fresh buffer behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from meterlink.protocols.szy206 import NEED_DATA, BufferFullError, Frame, Reassembler

if TYPE_CHECKING:
    from .link import LinkCounters

log = logging.getLogger("meterlink.szy206")


class Receiver:
    """Feeds one link's bytes through a :class:`Reassembler` and hands each frame to ``on_frame``.

    Args:
        link: the link's name in logs.
        counters: the link's counters (frames_ok, bad_frames, bytes_discarded, resyncs).
        on_frame: called with every valid frame, in order.
        resync_after: seconds without a byte before a partial frame is given up.
    """

    def __init__(
        self, link: str, counters: LinkCounters, on_frame: Callable[[Frame], None], resync_after: float
    ) -> None:
        self.link = link
        self.counters = counters
        self.on_frame = on_frame
        self.resync_after = resync_after
        self._rx = Reassembler()
        self._seen = (0, 0)  # the reassembler's (discarded, rejected) already added to the counters
        self._timer: asyncio.TimerHandle | None = None

    @property
    def buffered(self) -> int:
        """Bytes held that are not (yet) part of a frame."""
        return int(self._rx.buffered)

    def feed(self, data: bytes) -> None:
        """Take bytes read from the pipe; called by the event loop, never raises."""
        try:
            try:
                self._rx.feed(data)
            except BufferFullError:
                log.warning("event=szy206_buffer_full link=%s buffered=%d", self.link, self._rx.buffered)
                self.reset(discard=True)
                self._rx.feed(data)
            while (frame := self._rx.next_frame()) is not NEED_DATA:
                self.counters.frames_ok += 1
                self.on_frame(frame)
            self.sync()
        except Exception:
            # A bug, not bad bytes (those are counted): keep the link alive on a fresh buffer.
            log.exception("event=szy206_dispatch_failed link=%s", self.link)
            self.reset(discard=True)
        self.stop()
        if self._rx.buffered:
            self._timer = asyncio.get_running_loop().call_later(self.resync_after, self._give_up)

    def _give_up(self) -> None:
        self._timer = None
        if not self._rx.buffered:
            return
        self.counters.resyncs += 1
        log.info("event=szy206_resync link=%s buffered=%d reason=%r", self.link, self._rx.buffered, "idle")
        self._rx.resync()
        self.feed(b"")

    def stop(self) -> None:
        """Cancel the pending give-up (the pipe was closed or more bytes came)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def reset(self, discard: bool = False) -> None:
        """Start on an empty buffer (a new connection); ``discard`` counts what was held as discarded."""
        self.sync()
        if discard:
            self.counters.bytes_discarded += self._rx.buffered
        self._rx = Reassembler()
        self._seen = (0, 0)

    def sync(self) -> None:
        """Add what the reassembler threw away since the last call to the link's counters."""
        rx = self._rx
        discarded, rejected = self._seen
        if rx.bytes_discarded == discarded and rx.frames_rejected == rejected:
            return
        new_bad = rx.frames_rejected - rejected
        self.counters.bytes_discarded += rx.bytes_discarded - discarded
        self.counters.bad_frames += new_bad
        if new_bad:
            log.warning(
                "event=szy206_bad_frame link=%s rejected=%d discarded=%d reason=%r",
                self.link,
                new_bad,
                rx.bytes_discarded - discarded,
                rx.last_error,
            )
        self._seen = (rx.bytes_discarded, rx.frames_rejected)
