"""What the simulated central station saw: every frame, report, answer and link frame, for tests
and for ``meterlink sim station``'s JSON lines; and waiting until what it saw meets a condition."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

from meterlink.protocols.szy206 import Address, FlowReport, Frame, SZY206Error, describe

log = logging.getLogger("meterlink.sim.station")

JSON = dict[str, Any]
HISTORY = 10_000  # frames kept in Station.frames (a long CLI run must not grow without bound)


@dataclass(frozen=True, slots=True)
class FrameRecord:
    """One frame seen by the station, in either direction."""

    direction: str  # "in" (terminal -> station) or "out"
    peer: str
    frame: Frame
    view: JSON  # describe(frame)
    at: float  # station clock

    def to_json(self) -> JSON:
        """``{"dir", "peer", "frame"}``: the line ``meterlink sim station`` prints."""
        return {"dir": self.direction, "peer": self.peer, "frame": self.view}


class StationRecords:
    """The station's records (see :class:`~.station.Station` for each attribute).

    Args:
        on_frame: called with ("in" | "out", describe(frame)) for every frame.
        on_record: called with the :class:`FrameRecord` of every frame (it also names the peer).
        history: how many frames :attr:`frames` keeps.
    """

    def __init__(
        self,
        *,
        on_frame: Callable[[str, JSON], None] | None,
        on_record: Callable[[FrameRecord], None] | None,
        history: int,
    ) -> None:
        self.on_frame = on_frame
        self.on_record = on_record
        self.frames: deque[FrameRecord] = deque(maxlen=history)
        self.reports: list[tuple[Address, FlowReport, float]] = []
        self.other_reports: list[tuple[Address, Frame, float]] = []
        self.realtime: list[tuple[Address, FlowReport, float]] = []
        self.answers: list[tuple[Address, Frame, float]] = []
        self.logins: list[tuple[Address, float]] = []
        self.logouts: list[tuple[Address, float]] = []
        self.keepalives: list[tuple[Address, float]] = []
        self.confirms_sent = 0
        self.confirms_dropped = 0
        self.connections = 0
        self.frames_unexpected = 0
        self.callback_errors = 0
        self._changed: set[asyncio.Future[None]] = set()

    async def wait_for(self, predicate: Callable[[Self], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate(self)`` is true; it is checked after every frame and connection event.

        Raises:
            TimeoutError: still false after ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while not predicate(self):
                changed: asyncio.Future[None] = loop.create_future()
                self._changed.add(changed)
                try:
                    await changed
                finally:
                    self._changed.discard(changed)

    def _notify(self) -> None:
        for changed in self._changed:
            if not changed.done():
                changed.set_result(None)

    def _record(self, direction: str, peer: str, frame: Frame, at: float) -> None:
        try:
            view = describe(frame)
        except SZY206Error as exc:  # describe reads what the codec decoded; keep the loop alive regardless
            view = {"afn": f"{frame.afn:02X}", "error": str(exc)}
        record = FrameRecord(direction, peer, frame, view, at)
        self.frames.append(record)
        log.debug("event=station_frame dir=%s peer=%s afn=%02X", direction, peer, frame.afn)
        try:
            if self.on_frame is not None:
                self.on_frame(direction, view)
            if self.on_record is not None:
                self.on_record(record)
        except Exception:  # the caller's code: log it, keep serving
            self.callback_errors += 1
            log.exception("event=station_callback_failed dir=%s peer=%s", direction, peer)
        self._notify()
