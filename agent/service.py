"""The running agent: wires config, buses, pollers, store, signer, MQTT link and uploader together."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from meterlink.drivers.base import Driver, Flag, Listener, Reading
from meterlink.wire import jws

from . import keys, reload, rules_config
from .assembly import build_mqtt, build_pollers, build_rulebook, build_sl651, build_terminal, link_terminal_to_pollers
from .capture import GroupCommit
from .clock import ClockCheck, kernel_clock_offset_s, now_ms, offset_ms
from .config import Config
from .errors import StoreError
from .latest import LatestValues
from .manual import Inbox, evidence_dir
from .monitor import Monitor
from .outbox import Outbox
from .rulebook import Rulebook
from .runlock import RunLock
from .scheduler import BusPoller
from .store import Store
from .systemd import Notifier
from .tasks import cancel_and_wait, failures
from .upkeep import housekeeping, report_opening, watchdog
from .uplinks.base import Uplink
from .uplinks.mqtt import MqttLink
from .uploader import Uploader

if TYPE_CHECKING:
    from .uplinks.sl651 import Sl651Station
    from .uplinks.szy206 import SiteTerminal

log = logging.getLogger("meterlink.agent")


@dataclass
class Parts:
    """Everything the agent built from its config, exposed for tests and the status command."""

    store: Store
    outbox: Outbox
    capture: GroupCommit
    latest: LatestValues
    link: MqttLink | None
    uploader: Uploader | None
    terminal: SiteTerminal | None
    pollers: list[BusPoller]
    buses: list[Driver]  # the pollers' drivers, closed at stop
    rulebook: Rulebook | None = None
    sl651: Sl651Station | None = None

    def uplinks(self) -> dict[str, Uplink[Any]]:
        """The uplinks configured, by name."""
        named: dict[str, Uplink[Any] | None] = {"mqtt": self.link, "szy206": self.terminal, "sl651": self.sl651}
        return {name: uplink for name, uplink in named.items() if uplink is not None}


@dataclass
class _Tasks:
    """The tasks a reload replaces: polling, the rules, and the uplinks when their config changed."""

    polls: list[asyncio.Task[Any]]
    rules: asyncio.Task[None]
    uplinks: list[asyncio.Task[Any]]
    upload: asyncio.Task[Any]
    others: list[asyncio.Task[Any]] = field(default_factory=list)  # for the whole run

    def all(self) -> list[asyncio.Task[Any]]:
        return [*self.uplinks, self.upload, self.rules, *self.others, *self.polls]


class Agent:
    def __init__(
        self,
        config: Config,
        *,
        check_key_mode: bool = True,
        backoff_max: float = 60.0,
        config_path: Path | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path  # read again on reload (None: no reload)
        self.reload_requested = asyncio.Event()
        self.check_key_mode = check_key_mode
        self.backoff_max = backoff_max
        self.stop_requested = asyncio.Event()
        self.parts: Parts | None = None
        self.ready = asyncio.Event()
        self.notifier = Notifier()
        self._receipt_tasks: set[asyncio.Task[None]] = set()
        self.lock: RunLock | None = None
        self.monitor = Monitor(config, now_ms)  # the state file for status, and /metrics

    def build(self) -> Parts:
        cfg = self.config
        key = keys.load_private_key(cfg.signing.key, check_mode=self.check_key_mode)
        if self.lock is None:
            lock = RunLock(cfg.store.path)
            lock.acquire_or_fail()  # one agent per store: two would hand out the same seq
            self.lock = lock
        store = Store(
            cfg.store.path,
            cfg.gateway.id,
            retention_ms=int(cfg.store.retention_days * 86_400_000),
            capacity_bytes=cfg.store_capacity_bytes(),
            overflow=cfg.store.overflow,
            uploaded=cfg.uplink.mqtt is not None,
        )
        outbox = Outbox(store)
        self._clock_check = ClockCheck(cfg.clock.sync_check)
        pollers, buses = self._pollers()
        parts = Parts(store, outbox, GroupCommit(outbox), LatestValues(), None, None, None, pollers, buses)
        self._uplinks(key, parts)
        link_terminal_to_pollers(parts.terminal, pollers)
        parts.rulebook = self._rulebook(outbox, pollers)
        self.parts = parts
        log.info(
            "event=agent_started gateway=%s meters=%d buses=%d kid=%s store=%s next_seq=%d uplinks=%s",
            cfg.gateway.id,
            sum(len(p.meters) for p in pollers),
            len(pollers),
            jws.thumbprint(key.public_key()),
            cfg.store.path,
            outbox.next_seq,
            ",".join(self.parts.uplinks()),
        )
        return self.parts

    def _pollers(self) -> tuple[list[BusPoller], list[Driver]]:
        return build_pollers(self.config, self.monitor, self._sink, self._event, self._clock_check, self._self_report)

    def _rulebook(self, outbox: Outbox, pollers: list[BusPoller]) -> Rulebook:
        return build_rulebook(self.config, outbox, pollers, self._clock_offset, self._rules_recorded)

    def _uplinks(self, key: Ed25519PrivateKey, parts: Parts) -> None:
        """The uplinks the config asks for, into ``parts``."""
        cfg, outbox, latest, backoff = self.config, parts.outbox, parts.latest, self.backoff_max
        parts.link, parts.uploader = build_mqtt(cfg, key, outbox, self.monitor, self._on_receipt, backoff_max=backoff)
        parts.terminal = build_terminal(cfg, outbox, latest, self._event, backoff_max=backoff)
        parts.sl651 = build_sl651(cfg, outbox, latest, self._event, backoff_max=backoff)

    @property
    def built(self) -> Parts:
        """The parts, for the callbacks the parts themselves call (so never before :meth:`build`)."""
        if self.parts is None:
            raise StoreError("the agent is not running yet")
        return self.parts

    async def _sink(self, readings: Sequence[Reading]) -> None:
        parts = self.built
        if parts.terminal is not None or parts.sl651 is not None:  # the latest values' only readers
            parts.latest.observe(readings)
        parts.capture.submit(readings)
        if parts.rulebook is not None:
            parts.rulebook.observe(readings)

    def _clock_offset(self) -> tuple[float | None, str]:
        """How far the clock is off its time source: a trusted station's, else the kernel's NTP."""
        szy, sl651 = self.config.uplink.szy206, self.config.uplink.sl651
        trusted = (szy is not None and szy.trust_station_time) or (sl651 is not None and sl651.trust_center_time)
        if trusted and offset_ms():
            return offset_ms() / 1000, "station"
        return kernel_clock_offset_s(), "kernel"

    def _manual_stored(self, reading: Reading) -> None:
        """A manual reading the inbox stored: the rules see it, a registered meter change becomes the
        totalizer's new base for the quality check, and the uploader sends it now."""
        parts = self.parts
        if parts is None:
            return
        if parts.rulebook is not None:
            parts.rulebook.observe([reading])
        if reading.flags & Flag.REPLACEMENT:
            for poller in parts.pollers:
                for m in poller.meters:
                    if m.meter.id == reading.meter and m.quality is not None:
                        m.quality.rebase(reading)
        if parts.uploader is not None:
            parts.uploader.days_waiting_evidence = True
            parts.uploader.wake.set()

    def _rules_recorded(self) -> None:
        """Rule events or day summaries were stored: the uploader sends them now, not at its next slot."""
        uploader = self.parts.uploader if self.parts is not None else None
        if uploader is not None:
            uploader.days_waiting = True
            uploader.wake.set()

    async def _self_report(self, meter_id: str, readings: list[Reading]) -> None:
        """A meter's own report: returns once it is committed, and only then does the SZY206 link
        confirm it to the meter (which then drops its copy). Raises when it cannot be committed."""
        parts = self.built
        if not self._clock_check.synced():
            readings = [r._replace(flags=r.flags | Flag.CLOCK_UNSYNCED) for r in readings]
        if parts.terminal is not None or parts.sl651 is not None:
            parts.latest.observe(readings)
        await parts.capture.commit(readings)
        self.monitor.health.answered(meter_id, now_ms(), readings, poll=False)
        if parts.rulebook is not None:
            parts.rulebook.observe(readings)

    def _on_receipt(self, topic: str, payload: bytes) -> None:
        """A receipt from the platform (paho calls back on the event loop's thread)."""
        parts = self.parts
        if parts is None or parts.uploader is None or parts.uploader.receipts is None:
            return
        confirmed = parts.uploader.receipts.parse(payload)
        if confirmed is None:
            return
        first, last = confirmed
        task = asyncio.get_running_loop().create_task(self._mark_received(first, last))
        self._receipt_tasks.add(task)
        task.add_done_callback(self._receipt_tasks.discard)

    async def _mark_received(self, first: int, last: int) -> None:
        parts = self.built
        changed = await parts.outbox.confirm(first, last, now_ms())
        if parts.uploader is not None:
            parts.uploader.stats.readings += changed
        log.info("event=receipt seq=%d-%d marked=%d", first, last, changed)

    async def _event(self, kind: str, detail: dict[str, Any]) -> None:
        parts = self.built
        await parts.outbox.add_event(kind, now_ms(), detail)
        if parts.uploader is not None:
            parts.uploader.wake.set()  # events go out now, not at the next upload slot

    async def run(self, *, final_flush: bool = False) -> None:
        """Run until :meth:`stop`; then stop polling, finish the publish in flight, close.

        ``final_flush`` (the demo) also uploads what is pending once more before closing.
        """
        parts = self.parts if self.parts is not None else await asyncio.to_thread(self.build)
        await report_opening(parts.outbox.opening, self._event)
        await self._event("agent_started", {"host": socket.gethostname(), "pid": os.getpid()})
        inbox = Inbox(self.config.store.path, {m.id for m in self.config.meters}, self._manual_stored)
        tasks = _Tasks(self._start_polls(parts), await self._start_rules(parts), *self._start_uplinks(parts))
        tasks.others = [
            asyncio.create_task(inbox.run(parts.outbox), name="meterlink.manual"),
            asyncio.create_task(housekeeping(parts.outbox), name="meterlink.purge"),
            asyncio.create_task(self.monitor.run(parts), name="meterlink.monitor"),
        ]
        watchdog_task = asyncio.create_task(watchdog(self.notifier, parts), name="meterlink.watchdog")
        self.ready.set()
        # Everything built so far (config, profiles, libraries) lives as long as the process: move
        # it out of the collector's sight, so a full collection does not walk it again and again.
        gc.collect()
        gc.freeze()
        stop_wait = asyncio.create_task(self.stop_requested.wait())
        while True:
            reload_wait = asyncio.create_task(self.reload_requested.wait())
            done, _ = await asyncio.wait([stop_wait, reload_wait, *tasks.all()], return_when=asyncio.FIRST_COMPLETED)
            if done != {reload_wait}:
                reload_wait.cancel()
                break
            self.reload_requested.clear()
            await self._reload(parts, tasks, inbox)
        # Every task runs until stopped: one that ended by itself, even without an error, is a crash
        # (a non-zero exit, so systemd restarts the agent), never a quiet stop.
        crashed = [t for t in done if t is not stop_wait and t is not reload_wait]
        self.notifier.stopping()
        await cancel_and_wait([*tasks.polls, *tasks.others, watchdog_task, tasks.rules])
        self.monitor.stop()
        await self.monitor.write()  # status shows the meters as they were at the stop
        await parts.capture.flush()  # what was polled is captured before anything closes
        await self._stop_uplinks(parts, tasks.upload, final_flush)
        await cancel_and_wait(tasks.uplinks)
        for driver in parts.buses:
            await driver.close()
        await parts.outbox.close()
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        stop_wait.cancel()
        log.info("event=agent_stopped next_seq=%d", parts.outbox.next_seq)
        if crashed:
            task = crashed[0]
            error = None if task.cancelled() else task.exception()
            raise error or RuntimeError(f"task {task.get_name()} ended on its own")
        # A task that failed while stopping (a store error marking a last batch sent, say) is
        # never quiet: logged, and the exit is non-zero.
        failed = failures([*tasks.all(), watchdog_task])
        for ended, error in failed:
            log.error("event=task_failed_at_stop task=%s error=%r", ended.get_name(), error, exc_info=error)
        if failed:
            raise failed[0][1]

    def _start_polls(self, parts: Parts) -> list[asyncio.Task[Any]]:
        polls = [asyncio.create_task(p.run(), name=f"meterlink.poll.{p.name}") for p in parts.pollers]
        # SZY206 lines are listened to from the start: their meters report on their own.
        return polls + [
            asyncio.create_task(d.listen(), name=f"meterlink.listen.{d.name}")
            for d in parts.buses
            if isinstance(d, Listener)
        ]

    def _start_uplinks(self, parts: Parts) -> tuple[list[asyncio.Task[Any]], asyncio.Task[Any]]:
        uplinks = [asyncio.create_task(u.run(), name=f"meterlink.{name}") for name, u in parts.uplinks().items()]
        upload = asyncio.create_task(
            parts.uploader.run() if parts.uploader is not None else asyncio.Event().wait(), name="meterlink.upload"
        )
        return uplinks, upload

    def reload(self) -> None:
        """Read the site file again (SIGHUP); the running agent applies it between poll cycles."""
        self.reload_requested.set()

    async def _reload(self, parts: Parts, tasks: _Tasks, inbox: Inbox) -> None:
        """Apply a new site file: polling and the rules rebuilt, the uplinks only if their settings
        changed. Nothing polled is lost (captured before the buses close), the store and its seq
        numbering go on, and a publish in flight is confirmed before its link closes."""
        if self.config_path is None:
            log.warning("event=reload_refused problem='this agent was started without a config file'")
            return
        new, problems = await asyncio.to_thread(reload.load_new, self.config_path, self.config)
        if new is None:
            for problem in problems:
                log.error("event=reload_refused problem=%r", problem)
            log.error("event=reload_refused kept=running_configuration")
            return
        change = reload.changes(self.config, new)
        self.notifier.reloading()
        await reload.stop_between_cycles(parts.pollers, tasks.polls)
        await cancel_and_wait([*tasks.polls, tasks.rules])
        await parts.capture.flush()
        for driver in parts.buses:
            await driver.close()
        if change.uplinks:
            await self._stop_uplinks(parts, tasks.upload, final_flush=False)
            await cancel_and_wait(tasks.uplinks)
        self.config = new
        self._clock_check = ClockCheck(new.clock.sync_check)
        self.monitor.reconfigure(new)
        before = {m.meter.id: m for p in parts.pollers for m in p.meters}
        parts.pollers, parts.buses = self._pollers()
        reload.carry_over(before, parts.pollers, set(change.meters))
        if change.uplinks:
            key = await asyncio.to_thread(keys.load_private_key, new.signing.key, check_mode=self.check_key_mode)
            self._uplinks(key, parts)
            tasks.uplinks, tasks.upload = self._start_uplinks(parts)
        link_terminal_to_pollers(parts.terminal, parts.pollers)
        parts.rulebook = self._rulebook(parts.outbox, parts.pollers)
        tasks.rules = await self._start_rules(parts)
        inbox.meters = {m.id for m in new.meters}
        tasks.polls = self._start_polls(parts)
        self.notifier.ready(f"polling {sum(len(p.meters) for p in parts.pollers)} meters")
        log.info("event=reload_applied changed=%r meters=%d", change.describe(), len(new.enabled_meters))

    async def _start_rules(self, parts: Parts) -> asyncio.Task[None]:
        """The platform's rules: their tables, open conditions and the archive, then their task."""
        rulebook = parts.rulebook
        if rulebook is None:
            return asyncio.create_task(_forever(), name="meterlink.rules")
        await rulebook.start()
        if parts.uploader is not None:
            parts.uploader.daybook = rulebook.daybook
            parts.uploader.archive = rules_config.archive(self.config)
            m = self.config.uplink.mqtt
            if m is not None and m.evidence:
                parts.uploader.evidence_dir = evidence_dir(self.config.store.path)
        return asyncio.create_task(rulebook.run(), name="meterlink.rules")

    async def _stop_uplinks(self, parts: Parts, upload_task: asyncio.Task[Any], final_flush: bool) -> None:
        """Let the publish in flight finish (bounded by its timeout), then say goodbye."""
        uploader, link = parts.uploader, parts.link
        if uploader is not None and link is not None:
            uploader.stopping = True
            uploader.wake.set()
            if link.connected.is_set():  # without a connection nothing is in flight: no wait
                await asyncio.wait([upload_task], timeout=uploader.publish_timeout + 1)
            await cancel_and_wait([upload_task])
            if final_flush and link.connected.is_set():
                uploader.stopping = False
                try:
                    await asyncio.wait_for(uploader.upload_once(), uploader.publish_timeout + 1)
                except TimeoutError:
                    pass
            await link.close()
        else:
            await cancel_and_wait([upload_task])
        if parts.terminal is not None:
            await parts.terminal.close()
        if parts.sl651 is not None:
            await parts.sl651.close()

    def stop(self) -> None:
        self.stop_requested.set()


async def _forever() -> None:
    await asyncio.Event().wait()
