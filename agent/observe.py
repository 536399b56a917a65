"""Watching the poll loop from outside it: each poll's outcome goes to the health book and the
metrics, without the scheduler or the drivers knowing.

:class:`ObservedDriver` wraps a bus's driver; the scheduler calls it as it would the driver. The
cost per poll is a clock read and a few dict updates (the metric children are looked up once per
meter, not per poll).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from meterlink.drivers.base import Driver, DriverError, Reading

from .health import HealthBook

if TYPE_CHECKING:
    from .metrics import Metrics  # prometheus-client only where [metrics] is set

EventSink = Callable[[str, dict[str, Any]], Awaitable[None]]

# The quality findings about one meter's data (agent/quality.py) that status shows among the day's
# flags; the rules' conditions (volume_zero, no_data, ...) are shown as the open warnings.
FLAG_EVENTS = frozenset({"totalizer_wrapped", "totalizer_reset", "abnormal_jump", "negative_total"})


class ObservedDriver:
    """A driver whose polls are counted: answered or failed, how long, what came back."""

    def __init__(
        self, inner: Driver, bus: str, health: HealthBook, metrics: Metrics | None, clock: Callable[[], int]
    ) -> None:
        self.inner, self.bus, self.health, self.metrics, self.clock = inner, bus, health, metrics, clock
        self._children: dict[str, tuple[Any, Any]] = {}
        self._duration = None if metrics is None else metrics.poll_duration.labels(bus=bus)

    async def read(self, meter: Any, slot_ms: int, flags: int = 0) -> list[Reading]:
        started = time.perf_counter()
        try:
            readings = await self.inner.read(meter, slot_ms, flags)
        except DriverError as exc:
            self._count(meter.id, started, type(exc).__name__)
            self.health.failed(meter.id, self.clock(), f"{type(exc).__name__}: {exc}")
            raise
        self._count(meter.id, started, None)
        self.health.answered(meter.id, self.clock(), readings)
        return readings

    def _count(self, meter: str, started: float, error: str | None) -> None:
        if self.metrics is None or self._duration is None:
            return
        self._duration.observe(time.perf_counter() - started)
        children = self._children.get(meter)
        if children is None:
            children = self._children[meter] = (self.metrics.polls.labels(bus=self.bus, meter=meter), {})
        children[0].inc()
        if error is not None:
            failures = children[1]
            if error not in failures:
                failures[error] = self.metrics.poll_failures.labels(bus=self.bus, meter=meter, error=error)
            failures[error].inc()

    async def close(self) -> None:
        await self.inner.close()


def observed_events(sink: EventSink, health: HealthBook, clock: Callable[[], int]) -> EventSink:
    """``sink``, with the events about a meter's data also noted among its flags of the day."""

    async def events(kind: str, detail: dict[str, Any]) -> None:
        if kind in FLAG_EVENTS:
            meter = detail.get("meter")
            if isinstance(meter, str):
                health.flag(meter, kind, clock())
        await sink(kind, detail)

    return events
