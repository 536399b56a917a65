"""A sans-I/O SZY206 conversation run from asyncio: its clock, its one timer, its events.

The :class:`~meterlink.protocols.szy206.Conversation` reads no clock and sets no timer. A
:class:`Pump` gives it the running loop's monotonic clock (in ms), keeps one timer at its next
deadline (a try that times out, a partial frame given up), and hands every event it produces,
from bytes or from time, to ``on_event`` in order. The caller keeps the pipe: it passes what it
reads to :meth:`Pump.feed` and writes the frames the conversation returns.

Used by every side that speaks SZY206 over asyncio: the meter link (drivers/szy206/link.py), the
agent's site terminal and the central-station simulator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from meterlink.protocols.szy206 import NEED_DATA, Conversation, Event, Frame, Request


def loop_ms() -> int:
    """A conversation's time: the running loop's monotonic clock, in ms (a wall-clock step, as when
    NTP first syncs or a trusted station's offset is taken, moves no retry or resync deadline)."""
    return int(asyncio.get_running_loop().time() * 1000)


class Pump:
    """Drives ``conversation`` from the running event loop.

    Args:
        conversation: the link's state.
        on_event: called with each event, from the loop, in order.
        on_drained: called after each batch of events (to sync counters, log what was thrown away).
    """

    def __init__(
        self,
        conversation: Conversation,
        on_event: Callable[[Event], None],
        on_drained: Callable[[], None] | None = None,
    ) -> None:
        self.conversation = conversation
        self.on_event = on_event
        self.on_drained = on_drained
        self._timer: asyncio.TimerHandle | None = None
        self._armed = 0  # the deadline the timer is set for

    @staticmethod
    def now() -> int:
        """The conversation's time (:func:`loop_ms`)."""
        return loop_ms()

    def feed(self, data: bytes) -> None:
        """Bytes read from the pipe: their events go to ``on_event`` before this returns."""
        self.conversation.receive_data(data, self.now())
        self.drain()

    def request(self, frame: Frame, *, tries: int | None = None) -> Request:
        """Start awaiting the answer to ``frame``; write ``request.frame`` next."""
        request = self.conversation.request(frame, self.now(), tries=tries)
        self._arm()
        return request

    def cancel(self, request: Request) -> None:
        """Stop awaiting ``request`` (the caller gave up, or the pipe is gone)."""
        self.conversation.cancel(request)
        self._arm()

    def drain(self) -> None:
        """Hand the events waiting in the conversation to ``on_event``; set the timer again."""
        conversation = self.conversation
        while (event := conversation.next_event()) is not NEED_DATA:
            self.on_event(event)
        if self.on_drained is not None:
            self.on_drained()
        self._arm()

    def stop(self) -> None:
        """Cancel the timer (the pipe is closed); the next feed or request sets it again."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        deadline = self.conversation.next_deadline()
        if self._timer is not None and deadline == self._armed:
            return
        self.stop()
        if deadline is not None:
            self._armed = deadline
            self._timer = asyncio.get_running_loop().call_at(deadline / 1000, self._fire)

    def _fire(self) -> None:
        self._timer = None
        # The loop may fire a timer up to its clock resolution early: it is due all the same.
        self.conversation.tick(max(self.now(), self._armed))
        self.drain()
