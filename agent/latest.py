"""The latest values of every (meter, quantity), as polled: what a station's queries and the SZY206
self-reports are answered with."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from meterlink.drivers.base import Reading

# Values kept per (meter, quantity). A report slot is closed a little after its boundary (at most
# 10 s), by when faster polls have already brought newer values; this covers 1 s polling.
HISTORY = 16


class LatestValues:
    """The readings themselves are kept (they are immutable): nothing is copied per poll."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str], deque[Reading]] = {}

    def observe(self, readings: Iterable[Reading]) -> None:
        values = self._values
        for r in readings:
            known = values.get((r.meter, r.quantity))
            if known is None:
                known = values[r.meter, r.quantity] = deque(maxlen=HISTORY)
            elif r.slot < known[-1].slot:  # a late poll never replaces a newer value
                continue
            known.append(r)

    def get(self, meter: str, quantity: str) -> Reading | None:
        """The newest reading (its ``value``, ``ts`` and ``slot``)."""
        known = self._values.get((meter, quantity))
        return known[-1] if known else None

    def at(self, meter: str, quantity: str, slot: int, window_ms: int) -> Reading | None:
        """The newest reading polled for a slot in ``(slot - window_ms, slot]``, if any is still kept."""
        for latest in reversed(self._values.get((meter, quantity), ())):
            if latest.slot <= slot:
                return latest if latest.slot > slot - window_ms else None
        return None
