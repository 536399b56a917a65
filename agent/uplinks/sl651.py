"""The agent as an SL651-2014 telemetry station (遥测站) reporting to a centre over TCP.

Reports, each kept in the store before it is sent (agent/store_sl651.py), so one missed in an
outage is sent later with its own observation time and values:

- 32H scheduled report every ``report_interval`` seconds and 34H hourly report at every full hour,
  closed a little after the slot's boundary, when that slot's polls are in; their elements are
  the mapped meters' flow and accumulated volume polled for the slot (sl651_data.py);
- 33H added report when the agent records an event of a kind listed in ``added``, with the
  newest values, observed at the event's time.

A report counts as delivered only when the centre acknowledged it (a downlink frame of the same
function carrying its serial number). Unacknowledged within ``ack_timeout`` it is sent again, the
same frame, ``retries`` times (the conversation's rule, sl651_session.py); then it stays kept and
goes out again after the next (re)connection, oldest first, before the reports made since. Its
serial number and send time are given at its first attempt and kept, so every later copy is the
same frame and a centre that saw it already counts it once. Serial numbers continue across
restarts (kept in the store).

On the link: a keep-alive (2FH) on connecting (the centre learns the station from it) and every
``keepalive`` seconds; answers to the centre's queries (sl651_answers.py). One report is in
flight at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from meterlink.protocols.sl651 import Element, Function, SL651Error
from meterlink.protocols.sl651.events import Acknowledged, GaveUp, Misdirected, QueryReceived, Refused
from meterlink.protocols.sl651.messages import build_keep_alive, build_report, report_body

from ..clock import current_slot, next_slot, now_ms
from ..latest import LatestValues
from ..outbox import Outbox
from ..store_sl651 import KeptReport, Sl651Book
from ..tasks import cancel_and_wait
from .base import ConnectFailed, NotConnected, TimedOut, UplinkError, keep_connected
from .sl651_answers import Answers, local_time
from .sl651_config import Sl651UplinkConfig
from .sl651_data import ReportElements
from .sl651_session import CentreSession, Heard, StationStats

__all__ = ["Sl651Station", "StationStats"]

log = logging.getLogger("meterlink.sl651")

EventSink = Callable[[str, dict[str, Any]], Awaitable[None]]
BACKLOG_BATCH = 50
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
EVENTS_EVERY_S = 2.0  # how often the store's events are looked at for added reports


class Sl651Station:
    """The station: report slots, added reports, and the link to the centre (module docstring)."""

    def __init__(
        self,
        cfg: Sl651UplinkConfig,
        outbox: Outbox,
        latest: LatestValues,
        events: EventSink,
        *,
        clock: Callable[[], int] = now_ms,
        backoff_max: float = 60.0,
    ) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.events = events
        self.clock = clock
        self.backoff_max = backoff_max
        self.interval_ms = cfg.report_interval * 1000
        self.stats = StationStats()
        self.connected = asyncio.Event()
        self.data = ReportElements(cfg.meters, latest)
        self._book: Sl651Book | None = None
        self._answers: Answers | None = None
        self._session: CentreSession | None = None
        self._in_flight = asyncio.Lock()
        self._backfill_wake = asyncio.Event()
        self._closing = False
        self._deliveries: set[asyncio.Task[None]] = set()
        self.on_acknowledged: Callable[[KeptReport, bool], None] | None = None  # (report, backfilled): the demo

    @property
    def book(self) -> Sl651Book:
        if self._book is None:
            raise UplinkError("the SL651 station is not running")
        return self._book

    def local(self, ms: int) -> Any:
        return local_time(ms, self.cfg.utc_offset_hours)

    # -- reports (made whether connected or not) ------------------------------------------------

    async def run(self) -> None:
        """Make reports and keep the centre link up, until cancelled."""
        self._book = book = await self.outbox.with_store(Sl651Book)
        self._answers = Answers(self.cfg, self.outbox, book, self.data, self.clock)
        loops = [self._link_loop()]
        if self.interval_ms:
            loops.append(self._slot_loop(Function.SCHEDULED, self.interval_ms))
        if self.cfg.hourly:
            loops.append(self._slot_loop(Function.HOURLY, HOUR_MS))
        if self.cfg.added:
            loops.append(self._added_loop())
        tasks = [asyncio.create_task(loop, name=f"meterlink.sl651.{i}") for i, loop in enumerate(loops)]
        try:
            await asyncio.gather(*tasks)
        finally:
            await cancel_and_wait([*tasks, *self._deliveries])

    async def _slot_loop(self, function: int, interval_ms: int) -> None:
        # Close a slot a little after its boundary, when the polls of that slot are in.
        settle = min(interval_ms // 4, 10_000)
        purged = 0
        while True:
            now = self.clock()
            slot = next_slot(now - settle, interval_ms)
            await asyncio.sleep(max(0.0, (slot + settle - now) / 1000))
            await self._keep_and_send(function, slot, self.data.elements(slot, interval_ms))
            # Once a day, by one of the loops: acknowledged reports past the store's retention go.
            if (function == Function.HOURLY or not self.cfg.hourly) and self.clock() - purged > DAY_MS:
                purged = self.clock()
                await self.outbox.call(self.book.purge, purged)

    async def _keep_and_send(self, function: int, slot: int, elements: list[Element]) -> None:
        try:
            fresh = await self.outbox.call(self.book.keep, function, slot, elements, self.clock())
        except Exception as exc:  # a full disk: nothing kept, nothing to send (it could not be tracked)
            log.error("event=sl651_report_not_kept function=%02X slot=%d error=%r", function, slot, str(exc))
            return
        if fresh and self.connected.is_set():
            # In its own task: resends or a backfill ahead of it can take longer than a slot, and
            # the next boundary must still be closed on time (or its report would never be kept).
            report = KeptReport(function, slot, tuple(elements))
            task = asyncio.create_task(self._deliver_live(report), name="meterlink.sl651.report")
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)

    async def _deliver_live(self, report: KeptReport) -> None:
        try:
            await self.deliver(report)
        except UplinkError:
            pass  # it stays kept: sent again after the next (re)connection
        self._backfill_wake.set()

    async def _added_loop(self) -> None:
        """Events of the configured kinds become added reports (33H), observed at the event."""
        await self.outbox.call(self.book.start_events_at, self.clock() - DAY_MS)
        while True:
            for seq, ts, kind, detail in await self.outbox.call(self.book.new_events, self.cfg.added):
                elements = self.data.elements(None)
                fresh = await self.outbox.call(self.book.keep_added, seq, ts, elements, self.clock())
                log.info("event=sl651_added_report kind=%s seq=%d detail=%s new=%s", kind, seq, detail, fresh)
                if fresh and self.connected.is_set():
                    task = asyncio.create_task(
                        self._deliver_live(KeptReport(Function.ADDED, ts, tuple(elements))),
                        name="meterlink.sl651.added",
                    )
                    self._deliveries.add(task)
                    task.add_done_callback(self._deliveries.discard)
            await asyncio.sleep(EVENTS_EVERY_S)

    # -- the link ---------------------------------------------------------------------------------

    async def _link_loop(self) -> None:
        await keep_connected(
            self._connect,
            self._serve,
            backoff_max=self.backoff_max,
            on_retry=self._log_retry,
            closing=lambda: self._closing,
        )

    def _log_retry(self, state: Any) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self.stats.last_error = str(exc)
        wait = state.next_action.sleep if state.next_action else 0
        log.warning(
            "event=sl651_connect_failed center=%s:%d attempt=%d retry_in=%.1fs error=%r",
            self.cfg.host,
            self.cfg.port,
            state.attempt_number,
            wait,
            str(exc),
        )

    async def _connect(self) -> CentreSession:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.cfg.host, self.cfg.port), self.cfg.ack_timeout
            )
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(str(exc) or type(exc).__name__) from None
        session = CentreSession(
            reader, writer, ack_timeout=self.cfg.ack_timeout, tries=self.cfg.retries + 1, stats=self.stats
        )
        self._session = session
        return session

    async def _serve(self, session: CentreSession) -> None:
        tasks = [
            asyncio.create_task(session.read_loop(self._heard), name="meterlink.sl651.read"),
            asyncio.create_task(session.tick_loop(), name="meterlink.sl651.tick"),
            asyncio.create_task(self._keepalive(session), name="meterlink.sl651.keepalive"),
            asyncio.create_task(self._backfill_loop(), name="meterlink.sl651.backfill"),
        ]
        try:
            reason = await session.lost
        finally:
            await cancel_and_wait(tasks)
            self._drop(session)
        if not self._closing:
            log.warning("event=sl651_disconnected center=%s:%d reason=%r", self.cfg.host, self.cfg.port, reason)

    def _drop(self, session: CentreSession) -> None:
        self.connected.clear()
        if self._session is session:
            self._session = None
        session.drop()

    async def _keepalive(self, session: CentreSession) -> None:
        """A keep-alive at once (the centre learns who we are), then every ``keepalive`` seconds."""
        await self._send_keep_alive(session)
        self.stats.connections += 1
        self.connected.set()
        self._backfill_wake.set()
        log.info(
            "event=sl651_connected center=%s:%d station=%s serial=%d",
            self.cfg.host,
            self.cfg.port,
            self.cfg.station.upper(),
            await self.outbox.call(self.book.last_serial),
        )
        await self.events("sl651_connected", {"center": f"{self.cfg.host}:{self.cfg.port}"})
        while self.cfg.keepalive:
            await asyncio.sleep(self.cfg.keepalive)
            await self._send_keep_alive(session)

    async def _send_keep_alive(self, session: CentreSession) -> None:
        serial = await self.outbox.call(self.book.take_serial)
        frame = build_keep_alive(
            center=self.cfg.center,
            station=self.cfg.station_bytes,
            password=self.cfg.password_word,
            serial=serial,
            send_time=self.local(self.clock()),
        )
        try:
            await session.send(frame)
        except ConnectionError:
            return  # the session is lost: the link loop reconnects
        self.stats.keep_alives += 1

    async def _heard(self, event: Heard) -> None:
        """A frame from the centre that acknowledges nothing of ours: queries are answered."""
        session, answers = self._session, self._answers
        if isinstance(event, QueryReceived) and session is not None and answers is not None:
            try:
                if await answers.answer(event.frame, event.body, session.send):
                    self.stats.queries_answered += 1
            except ConnectionError:
                pass  # the session is lost: the link loop reconnects
            except (SL651Error, ValueError) as exc:
                self.stats.frames_rejected += 1
                log.warning("event=sl651_query_refused function=%02X error=%r", event.frame.function, str(exc))
        elif isinstance(event, Refused):
            log.warning("event=sl651_frame_refused function=%02X error=%r", event.frame.function, event.reason)
        elif isinstance(event, Misdirected):
            log.info("event=sl651_uplink_frame_ignored function=%02X", event.frame.function)
        elif not self._closing:  # an acknowledgement of nothing in flight: late, after a give-up
            log.info("event=sl651_unexpected function=%02X", event.frame.function)

    # -- delivering reports -----------------------------------------------------------------------

    async def deliver(self, item: KeptReport) -> None:
        """Send one kept report; return once the centre acknowledged it (at once if it already had).

        Raises:
            NotConnected: no centre link, or it went down before the acknowledgement.
            TimedOut: no acknowledgement after every try.
        """
        async with self._in_flight:
            session = self._session
            if session is None or not self.connected.is_set():
                raise NotConnected("not connected to the centre")
            given = await self.outbox.call(self.book.attempt, item.function, item.slot, self.clock())
            if given is None:
                return  # acknowledged meanwhile (a live send and a backfill of the same report)
            serial, sent_at = given
            body = report_body(
                serial=serial,
                send_time=self.local(sent_at),
                station=self.cfg.station_bytes,
                station_type=self.cfg.type_byte,
                observed=self.local(item.slot),
                elements=item.elements,
            )
            frame = build_report(
                item.function,
                center=self.cfg.center,
                station=self.cfg.station_bytes,
                password=self.cfg.password_word,
                body=body,
            )
            again = item.serial is not None  # sent before this attempt: every frame now is a resend
            try:
                outcomes = session.start(frame)
                while True:
                    self.stats.reports_sent += 1
                    self.stats.resends += again
                    again = True
                    await session.send(frame)
                    outcome = await outcomes.get()
                    if outcome is None:
                        raise NotConnected("the centre link went down")
                    if isinstance(outcome, Acknowledged):
                        await self._acknowledged(item, serial)
                        return
                    log.warning("event=sl651_no_ack function=%02X slot=%d serial=%d", item.function, item.slot, serial)
                    if isinstance(outcome, GaveUp):
                        break
            except ConnectionError as exc:
                raise NotConnected(str(exc) or type(exc).__name__) from None
            finally:
                session.end(frame)
            self.stats.reports_given_up += 1
            log.warning("event=sl651_report_kept slot=%d reason=no_ack_after_%d_tries", item.slot, self.cfg.retries + 1)
            raise TimedOut(f"report {item.function:02X}H of slot {item.slot}: no acknowledgement")

    async def _acknowledged(self, item: KeptReport, serial: int) -> None:
        await self.outbox.call(self.book.confirm, item.function, item.slot, self.clock())
        self.stats.reports_acknowledged += 1
        backfilled = item.serial is not None or item.slot < current_slot(self.clock(), self._backfill_interval())
        log.info(
            "event=sl651_report_acknowledged function=%02X slot=%d serial=%d backfill=%s",
            item.function,
            item.slot,
            serial,
            "yes" if backfilled else "no",
        )
        if self.on_acknowledged is not None:
            self.on_acknowledged(item, backfilled)

    def _backfill_interval(self) -> int:
        return self.interval_ms or HOUR_MS

    async def _backfill_loop(self) -> None:
        """After (re)connecting and after a report failed: kept reports, oldest first, paced, before
        the current slot's (which goes out live)."""
        if not self.cfg.backfill:
            return
        while True:
            await self._backfill_wake.wait()
            self._backfill_wake.clear()
            await self.connected.wait()
            before = current_slot(self.clock(), self._backfill_interval())
            while kept := await self.outbox.call(self.book.unconfirmed, BACKLOG_BATCH, before):
                try:
                    for report in kept:
                        await self.deliver(report)
                        if self.cfg.backfill_pace:
                            await asyncio.sleep(self.cfg.backfill_pace)
                except UplinkError:
                    break  # try again at the next wake (next failure or reconnection)

    async def close(self) -> None:
        self._closing = True
        session = self._session
        if session is not None:
            session.lose("closed")
            self._drop(session)
