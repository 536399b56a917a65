"""The latest value of every (meter, quantity), as polled: what a station's real-time query is answered with."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from meterlink.drivers.base import Reading


@dataclass(frozen=True, slots=True)
class Latest:
    value: float
    ts: int
    slot: int


class LatestValues:
    def __init__(self) -> None:
        self._values: dict[tuple[str, str], Latest] = {}

    def observe(self, readings: Iterable[Reading]) -> None:
        for r in readings:
            key = (r.meter, r.quantity)
            known = self._values.get(key)
            if known is None or r.slot >= known.slot:
                self._values[key] = Latest(r.value, r.ts, r.slot)

    def get(self, meter: str, quantity: str) -> Latest | None:
        return self._values.get((meter, quantity))
