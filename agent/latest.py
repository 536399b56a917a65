"""The latest values of every (meter, quantity), as polled: what a station's queries and the SZY206
self-reports are answered with."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from meterlink.drivers.base import Reading

# Values kept per (meter, quantity). A report slot is closed a little after its boundary (at most
# 10 s), by when faster polls have already brought newer values; this covers 1 s polling.
HISTORY = 16


@dataclass(frozen=True, slots=True)
class Latest:
    value: float
    ts: int
    slot: int


class LatestValues:
    def __init__(self) -> None:
        self._values: dict[tuple[str, str], deque[Latest]] = {}

    def observe(self, readings: Iterable[Reading]) -> None:
        for r in readings:
            key = (r.meter, r.quantity)
            known = self._values.get(key)
            if known is None:
                known = self._values[key] = deque(maxlen=HISTORY)
            if not known or r.slot >= known[-1].slot:  # a late poll never replaces a newer value
                known.append(Latest(r.value, r.ts, r.slot))

    def get(self, meter: str, quantity: str) -> Latest | None:
        """The newest value."""
        known = self._values.get((meter, quantity))
        return known[-1] if known else None

    def at(self, meter: str, quantity: str, slot: int, window_ms: int) -> Latest | None:
        """The newest value polled for a slot in ``(slot - window_ms, slot]``, if any is still kept."""
        for latest in reversed(self._values.get((meter, quantity), ())):
            if latest.slot <= slot:
                return latest if latest.slot > slot - window_ms else None
        return None
