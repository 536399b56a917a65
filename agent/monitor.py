"""What the running agent tells about itself: the state file `meterlink status` reads, and the
Prometheus endpoint when ``[metrics]`` is set.

Polls are seen as they happen (:class:`~.observe.ObservedDriver`); the rest (what the store holds,
what the uplinks delivered) is gathered every few seconds from the parts' own counters and the
store's statistics, then the state file is replaced and the metrics brought up to date. Monitoring
never stops the agent: a state file that cannot be written or an address that cannot be bound is
logged, and polling goes on.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from meterlink.drivers.base import Driver

from .config import Config
from .health import HealthBook
from .observe import EventSink, ObservedDriver, observed_events
from .state_file import state_path, write_state

if TYPE_CHECKING:
    from .metrics import Metrics, MetricsServer
    from .outbox import Outbox
    from .service import Parts
    from .uplinks.mqtt import MqttLink
    from .uplinks.szy206 import SiteTerminal
    from .uploader import Uploader

log = logging.getLogger("meterlink.agent")

TICK_S = 5.0
# The store's figures (pending, oldest, size) every third tick: a look into the store costs its
# thread a query, and Prometheus scrapes every 15 s by default.
STORE_EVERY_TICKS = 3


class Monitor:
    def __init__(self, config: Config, clock: Callable[[], int]) -> None:
        self.config, self.clock = config, clock
        self.health = HealthBook(clock(), config.gateway.zone)
        self.metrics: Metrics | None = None
        if config.metrics is not None:
            from .metrics import Metrics  # prometheus-client only where metrics are wanted

            self.metrics = Metrics(config.gateway.id)
            self.metrics.store_capacity.set(config.store_capacity_bytes())
        self.path = state_path(config.store.path)
        self.server: MetricsServer | None = None
        self._seen: dict[str, int] = {}
        self._write_failed = False
        self._ticks = 0

    # -- hooks the agent wires in ---------------------------------------------------------------

    def observe(self, bus: str, driver: Driver, meters: list[tuple[str, int, int]]) -> ObservedDriver:
        """``driver`` with its polls counted; ``meters``: (id, poll interval ms, report requirement ms)."""
        for meter, interval_ms, no_data_after_ms in meters:
            self.health.add_meter(meter, bus, interval_ms, no_data_after_ms)
        return ObservedDriver(driver, bus, self.health, self.metrics, self.clock)

    def events(self, sink: EventSink) -> EventSink:
        return observed_events(sink, self.health, self.clock)

    def delivered(self, seconds: float) -> None:
        """An upload confirmed by the far side, ``seconds`` after it was sent."""
        now = self.clock()
        self.health.uploaded(now)
        if self.metrics is not None:
            self.metrics.puback_latency.observe(seconds)
            self.metrics.last_upload.set(now / 1000)

    # -- the task -------------------------------------------------------------------------------

    def start_server(self) -> None:
        metrics, cfg = self.metrics, self.config.metrics
        if metrics is None or cfg is None:
            return
        from .metrics import serve

        try:
            self.server = serve(metrics, cfg.host, cfg.port)
        except OSError as exc:
            log.error("event=metrics_unavailable listen=%s error=%r", cfg.listen, exc.strerror or str(exc))
            return
        log.info("event=metrics_serving listen=%s", cfg.listen)

    def reconfigure(self, config: Config) -> None:
        """A reloaded site file: meters no longer configured leave the book (the pollers built next
        add the new ones and keep the health of those that stay); a changed endpoint moves."""
        moved = config.metrics != self.config.metrics
        self.config = config
        self.health.retain({m.id for m in config.enabled_meters})
        if not moved:
            return
        self.stop()
        if config.metrics is not None and self.metrics is None:
            from .metrics import Metrics

            self.metrics = Metrics(config.gateway.id)
        if self.metrics is not None:
            self.metrics.store_capacity.set(config.store_capacity_bytes())
        self.start_server()

    async def run(self, parts: Parts) -> None:
        """Every few seconds until cancelled; ``parts`` is read each time (a reload replaces some)."""
        self._seen["stored"] = parts.outbox.next_seq  # readings stored from here on
        self.start_server()
        failing = False
        while True:
            try:
                await self.tick(parts)
            except Exception as exc:  # a store that refuses a read: status goes stale, polling goes on
                if not failing:
                    log.warning("event=monitor_failed error=%r", exc)
                failing = True
            else:
                failing = False
            await asyncio.sleep(TICK_S)

    async def tick(self, parts: Parts) -> None:
        uploader, terminal = parts.uploader, parts.terminal
        if uploader is not None:
            self.health.next_upload_ms = uploader.next_upload_ms(self.clock())
        if terminal is not None and self._grew("szy206_confirmed", terminal.stats.reports_confirmed):
            self.health.uploaded(self.clock())
        if self.metrics is not None:
            await self._update_metrics(self.metrics, parts.outbox, uploader, parts.link, terminal)
        await self.write()

    async def write(self) -> None:
        snapshot = self.health.snapshot(self.clock(), os.getpid())
        try:
            await asyncio.to_thread(write_state, self.path, snapshot)
        except OSError as exc:
            if not self._write_failed:  # once, not every tick
                log.warning("event=state_file_failed path=%s error=%r", self.path, exc.strerror or str(exc))
            self._write_failed = True
            return
        self._write_failed = False

    def _grew(self, name: str, value: int) -> int:
        """How much a counter of the parts grew since the last tick."""
        before = self._seen.get(name, 0)
        self._seen[name] = value
        return max(0, value - before)

    async def _update_metrics(
        self,
        m: Metrics,
        outbox: Outbox,
        uploader: Uploader | None,
        link: MqttLink | None,
        terminal: SiteTerminal | None,
    ) -> None:
        m.readings_stored.inc(self._grew("stored", outbox.next_seq))  # the loop's own copy: no query
        self._update_uplinks(m, uploader, link, terminal)
        self._ticks += 1
        if self._ticks % STORE_EVERY_TICKS != 1:
            return
        stats = await outbox.stats(count_rows=False)
        now = self.clock()
        m.readings_dropped.inc(self._grew("dropped", stats.dropped))
        m.readings_pending.set(stats.pending)
        m.oldest_pending_age.set(0 if stats.oldest_pending_ts is None else max(0, now - stats.oldest_pending_ts) / 1000)
        m.store_bytes.set(stats.file_bytes)

    def _update_uplinks(
        self, m: Metrics, uploader: Uploader | None, link: MqttLink | None, terminal: SiteTerminal | None
    ) -> None:
        if uploader is not None and link is not None:
            m.messages_published.labels(uplink="mqtt").inc(self._grew("mqtt_messages", uploader.stats.messages))
            m.readings_published.labels(uplink="mqtt").inc(self._grew("mqtt_readings", uploader.stats.readings))
            m.uplink_connected.labels(uplink="mqtt").set(1 if link.connected.is_set() else 0)
        if terminal is not None:
            s = terminal.stats
            m.szy206_confirmed.inc(self._grew("szy206_reports", s.reports_confirmed))
            m.szy206_resent.inc(self._grew("szy206_resent", s.resends))
            m.uplink_connected.labels(uplink="szy206").set(1 if terminal.connected.is_set() else 0)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def meter_rows(config: Config, bus: str) -> list[tuple[str, int, int]]:
    """(id, poll interval ms, report requirement ms) of the enabled meters on ``bus``."""
    rows = []
    for mc in config.enabled_meters:
        if mc.bus == bus:
            interval = config.poll_interval(mc) * 1000
            no_data = mc.no_data_after * 1000 if mc.no_data_after else 2 * interval  # as the no_data rule
            rows.append((mc.id, int(interval), int(no_data)))
    return rows
