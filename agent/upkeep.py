"""The running agent's upkeep: the systemd watchdog fed only while healthy, the hourly purge, and
what the store found when it opened, told once at start."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .clock import now_ms
from .outbox import Opening, Outbox
from .systemd import Notifier

if TYPE_CHECKING:
    from .service import Parts

log = logging.getLogger("meterlink.agent")

PURGE_EVERY_S = 3600


def healthy(parts: Parts) -> str | None:
    """None when polling and the store are healthy, else what is wrong (the watchdog then starves)."""
    now = now_ms()
    for poller in parts.pollers:
        slowest = max(m.interval_ms for m in poller.meters)
        worst_case = sum(m.meter_cost_ms for m in poller.meters)
        if now - poller.last_cycle_end > 2 * slowest + worst_case + 30_000:
            return f"bus {poller.name} has not finished a poll cycle for {(now - poller.last_cycle_end) // 1000} s"
    if parts.capture.failures:
        return f"the store refuses commits ({parts.capture.last_error})"
    return None


async def watchdog(notifier: Notifier, parts: Parts) -> None:
    """READY=1 at start, then WATCHDOG=1 at half the watchdog period, but only while healthy
    (``parts`` is read each time: a reload replaces the pollers)."""
    notifier.ready(f"polling {sum(len(p.meters) for p in parts.pollers)} meters")
    if notifier.watchdog_s is None:
        return
    period = notifier.watchdog_s / 2
    while True:
        problem = healthy(parts)
        if problem is None:
            notifier.watchdog()
        else:
            log.error("event=watchdog_starved reason=%r", problem)
        await asyncio.sleep(period)


async def housekeeping(outbox: Outbox) -> None:
    while True:
        await asyncio.sleep(PURGE_EVERY_S)
        purged = await outbox.purge(now_ms())
        if purged:
            log.info("event=purged readings=%d", purged)


async def report_opening(opening: Opening, event: Callable[[str, dict[str, Any]], Awaitable[None]]) -> None:
    """What the store found when it opened: a corrupt store moved aside, salvaged, replaced."""
    if opening.moved_aside is not None:
        where, why = opening.moved_aside
        log.error("event=store_corrupt moved_to=%s error=%r", where, why)
        await event("store_corrupt", {"moved_to": str(where), "error": why})
        saved = opening.salvaged
        if saved is not None:  # its counts are in the store_salvaged event too
            log.warning(
                "event=store_salvaged readings=%d events=%d unreadable=%d unreadable_events=%d problems=%r",
                saved.readings,
                len(saved.events),
                saved.unreadable,
                saved.unreadable_events,
                "; ".join(saved.problems[:5]),
            )
    if opening.seq_jump is not None:  # its event was committed with the new store itself
        _, continued = opening.seq_jump
        log.warning("event=store_replaced seq_continues_at=%d", continued)
