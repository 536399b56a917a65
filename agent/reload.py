"""Reading the site file again on SIGHUP (`systemctl reload meterlink`): what may change while the
agent runs, and what a reload must rebuild.

The new file passes the same checks as at start (``check-config``'s), or it is refused line by line
and the running configuration stays. The gateway id and the store path cannot change under a running
agent (the seq numbering and the store belong to them): a restart is needed, and the reload says so.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import config as cfgmod
from . import preflight
from .errors import ConfigError, MeterlinkError
from .scheduler import BusPoller, ScheduledMeter

log = logging.getLogger("meterlink.agent")


@dataclass(frozen=True, slots=True)
class Changes:
    """What differs between the running configuration and the new one."""

    uplinks: bool  # [uplink.*], [signing] or anything the uplinks are built from
    metrics: bool
    meters: tuple[str, ...]  # added, removed or changed meters, by id

    def describe(self) -> str:
        parts = [f"meters {','.join(self.meters)}" if self.meters else "no meter"]
        parts += ["uplinks"] * self.uplinks + ["metrics"] * self.metrics
        return " ".join(parts)


def load_new(path: Path, running: cfgmod.Config) -> tuple[cfgmod.Config | None, list[str]]:
    """The new configuration, or None and the lines saying why it is refused."""
    try:
        new = cfgmod.load(path)
    except ConfigError as exc:
        return None, exc.lines or [str(exc)]
    except MeterlinkError as exc:  # unreadable, not TOML
        return None, [str(exc)]
    refused = []
    if new.gateway.id != running.gateway.id:
        refused.append(
            f"gateway.id: {running.gateway.id!r} -> {new.gateway.id!r} needs a restart "
            "(the seq numbering is the gateway's)"
        )
    if _resolved(new.store.path) != _resolved(running.store.path):
        refused.append(f"store.path: {running.store.path} -> {new.store.path} needs a restart")
    if refused:
        return None, refused
    found = preflight.check(new)
    if found.errors:
        return None, found.errors
    return new, []


def changes(old: cfgmod.Config, new: cfgmod.Config) -> Changes:
    before = {m.id: m for m in old.meters}
    after = {m.id: m for m in new.meters}
    meters = sorted(
        i
        for i in before.keys() | after.keys()
        if before.get(i) != after.get(i) or _bus_of(old, before.get(i)) != _bus_of(new, after.get(i))
    )
    positions_old = {m.szy206_position: m.id for m in old.enabled_meters if m.szy206_position}
    positions_new = {m.szy206_position: m.id for m in new.enabled_meters if m.szy206_position}
    uplinks = (
        old.uplink != new.uplink
        or old.signing != new.signing
        or (new.uplink.szy206 is not None and positions_old != positions_new)
    )
    return Changes(uplinks=uplinks, metrics=old.metrics != new.metrics, meters=tuple(meters))


def _bus_of(config: cfgmod.Config, meter: cfgmod.MeterConfig | None) -> object:
    if meter is None or meter.bus is None:
        return None
    return config.buses.get(meter.bus)


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path


async def stop_between_cycles(pollers: list[BusPoller], polls: list[asyncio.Task[Any]]) -> None:
    """Cancel each poller while it waits for its next slot, never in the middle of a poll (whose
    slot would be lost); one stuck longer than its worst-case cycle is cancelled anyway."""

    async def when_idle(poller: BusPoller, task: asyncio.Task[Any]) -> None:
        while not poller.idle.is_set():
            await poller.idle.wait()
        task.cancel()  # in the same step as the check: the poller cannot have started a cycle

    for poller, task in zip(pollers, polls, strict=False):
        worst = sum(m.meter_cost_ms for m in poller.meters) / 1000 + 1
        try:
            await asyncio.wait_for(when_idle(poller, task), worst)
        except TimeoutError:
            log.warning("event=reload_cut_poll bus=%s waited_s=%.1f", poller.name, worst)
            task.cancel()


def carry_over(before: dict[str, ScheduledMeter], pollers: list[BusPoller], changed: set[str]) -> None:
    """A meter whose settings a reload left alone keeps its next slot, health and quality state, so
    no slot is skipped or polled twice and no offline/online event repeats."""
    for poller in pollers:
        for m in poller.meters:
            old = before.get(m.meter.id)
            if old is not None and m.meter.id not in changed and old.interval_ms == m.interval_ms:
                m.due, m.state, m.quality = old.due, old.state, old.quality
