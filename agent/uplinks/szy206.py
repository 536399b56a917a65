"""The agent as an SZY206 site terminal: log in to a central station, keep the link, self-report.

Every ``report_interval`` a report slot is closed: the flow/volume pair of each reporting meter, in
the order of its configured ``szy206_position`` (AA-filled when a meter has no fresh value), then
the alarm and status words (szy206_data.py). The slot's data area is committed to the store
first, so a slot missed during an outage is kept; it counts as delivered on this uplink only when
the station's confirm arrived. A report goes out as C0H (control DIR | FCB | type 3) with the
slot's time in the site's local time; with no confirm it is sent again with the FCB decremented,
at most ``retries`` times, then kept for the next attempt. After a reconnection, kept slots are
self-reported oldest first (``backfill``); the station can also pull them with B1H. Queries and
the station's time are szy206_answers.py's; the connection and its conversation (FCB, what
awaits which answer) szy206_session.py's.

Confirms carry no report slot, so one report is in flight at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from meterlink.protocols.szy206 import (
    AFN,
    CONFIRMED_AFNS,
    Answered,
    Direction,
    Frame,
    Misdirected,
    QueryReceived,
    Refused,
    Resend,
    SZY206Error,
    Unsolicited,
)
from meterlink.protocols.szy206.elements import FLOW_TYPE
from meterlink.protocols.szy206.fields import Address
from meterlink.protocols.szy206.messages import LinkKind, build_link

from ..clock import next_slot, now_ms
from ..latest import LatestValues
from ..outbox import Outbox
from ..tasks import cancel_and_wait
from .base import ConnectFailed, NotConnected, TimedOut, UplinkError, keep_connected
from .szy206_answers import Answers
from .szy206_config import Szy206UplinkConfig
from .szy206_data import ReportData
from .szy206_session import Heard, StationSession, TerminalStats

__all__ = ["SiteTerminal", "SlotReport", "TerminalStats"]

log = logging.getLogger("meterlink.szy206")

EventSink = Callable[[str, dict[str, Any]], Awaitable[None]]
BACKLOG_BATCH = 50


@dataclass(frozen=True, slots=True)
class SlotReport:
    """One report slot's self-report: its C0H data area; ``live`` when sent as its slot closes."""

    slot: int
    data: bytes
    live: bool = True


class SiteTerminal:
    def __init__(
        self,
        cfg: Szy206UplinkConfig,
        positions: dict[int, str],
        outbox: Outbox,
        latest: LatestValues,
        events: EventSink,
        *,
        clock: Callable[[], int] = now_ms,
        backoff_max: float = 60.0,
    ) -> None:
        self.cfg = cfg
        self.positions = positions
        self.outbox = outbox
        self.events = events
        self.clock = clock
        self.backoff_max = backoff_max
        self.address = Address(division=cfg.division, station=cfg.station)
        self.interval_ms = cfg.report_interval * 1000
        self.stats = TerminalStats()
        self.connected = asyncio.Event()
        self.data = ReportData(positions, latest, self.interval_ms, lambda meter: self.meter_failing(meter))
        self.answers = Answers(cfg, self.address, outbox, self.data, clock)
        self._session: StationSession | None = None
        self._in_flight = asyncio.Lock()
        self._backfill_wake = asyncio.Event()
        self._closing = False
        self._deliveries: set[asyncio.Task[None]] = set()
        self.on_confirmed: Callable[[int, bool], None] | None = None  # (slot, backfilled): the demo's lines
        # Whether a meter is failing its polls (the agent wires in its pollers' view). Only then does
        # a missing value raise the flow-meter-fault alarm: a meter not polled yet is no faulty one.
        self.meter_failing: Callable[[str], bool] = lambda _meter: True

    def report_data(self, slot: int | None = None) -> bytes:
        """The C0H data area: pairs in position order, then alarm and status words."""
        return self.data.area(slot)

    # -- report slots (run whether connected or not) --------------------------------------------

    async def run(self) -> None:
        """Close report slots and keep the station link up, until cancelled."""
        tasks = [
            asyncio.create_task(self._slot_loop(), name="meterlink.szy206.slots"),
            asyncio.create_task(self._link_loop(), name="meterlink.szy206.link"),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            await cancel_and_wait([*tasks, *self._deliveries])

    async def _slot_loop(self) -> None:
        # Close a slot a little after its boundary, when the polls of that slot are in.
        settle = min(self.interval_ms // 4, 10_000)
        while True:
            now = self.clock()
            slot = next_slot(now - settle, self.interval_ms)
            await asyncio.sleep(max(0.0, (slot + settle - now) / 1000))
            data = self.report_data(slot)
            try:
                fresh = await self.outbox.keep_report(slot, data, self.clock())
            except Exception as exc:  # a full disk: report live anyway, the slot just is not kept
                log.error("event=szy206_slot_not_kept slot=%d error=%r", slot, str(exc))
                fresh = True
            if fresh and self.connected.is_set():
                # In its own task: resends or a backfill ahead of it can take longer than a slot, and
                # the next boundary must still be closed on time (or its slot would never be kept).
                task = asyncio.create_task(self._deliver_live(slot, data), name="meterlink.szy206.report")
                self._deliveries.add(task)
                task.add_done_callback(self._deliveries.discard)

    async def _deliver_live(self, slot: int, data: bytes) -> None:
        try:
            await self.deliver(SlotReport(slot, data))
        except UplinkError:
            pass  # the slot stays kept: backfilled after the next (re)connection
        self._backfill_wake.set()

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
            "event=szy206_connect_failed station=%s:%d attempt=%d retry_in=%.1fs error=%r",
            self.cfg.host,
            self.cfg.port,
            state.attempt_number,
            wait,
            str(exc),
        )

    async def _connect(self) -> StationSession:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.cfg.host, self.cfg.port), self.cfg.confirm_timeout
            )
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(str(exc) or type(exc).__name__) from None
        session = StationSession(
            reader, writer, confirm_timeout=self.cfg.confirm_timeout, tries=self.cfg.retries + 1, stats=self.stats
        )
        self._session = session
        return session

    async def _serve(self, session: StationSession) -> None:
        tasks = [
            asyncio.create_task(session.read_loop(self._heard), name="meterlink.szy206.read"),
            asyncio.create_task(self._login_and_keepalive(session), name="meterlink.szy206.keepalive"),
            asyncio.create_task(self._backfill_loop(), name="meterlink.szy206.backfill"),
        ]
        try:
            reason = await session.lost
        finally:
            await cancel_and_wait(tasks)
            self._drop(session)
        if not self._closing:
            log.warning("event=szy206_disconnected station=%s:%d reason=%r", self.cfg.host, self.cfg.port, reason)

    def _drop(self, session: StationSession) -> None:
        self.connected.clear()
        if self._session is session:
            self._session = None
        session.drop()

    async def _login_and_keepalive(self, session: StationSession) -> None:
        reply = await session.ask(self._link_frame(LinkKind.LOGIN))
        self.stats.connections += 1
        self.connected.set()
        self._backfill_wake.set()
        log.info(
            "event=szy206_logged_in station=%s:%d address=%s:%d reply=%s",
            self.cfg.host,
            self.cfg.port,
            self.cfg.division,
            self.cfg.station,
            "yes" if reply else "none",
        )
        await self.events("szy206_connected", {"station": f"{self.cfg.host}:{self.cfg.port}"})
        if not self.cfg.keepalive:
            return
        missed = 0
        while True:
            await asyncio.sleep(self.cfg.keepalive)
            reply = await session.ask(self._link_frame(LinkKind.KEEPALIVE))
            missed = 0 if reply else missed + 1
            if missed >= 2:
                session.lose("two keep-alives without a reply")
                return

    def _link_frame(self, kind: LinkKind) -> Frame:
        return build_link(self.address, kind, tp=self.answers.tp(self.clock()))

    # -- what the station says --------------------------------------------------------------------

    async def _heard(self, event: Heard) -> None:
        """A frame from the station, in order: queries to answer, the time in confirms, the rest logged."""
        session = self._session
        try:
            if isinstance(event, QueryReceived) and session is not None:
                if await self.answers.answer(event.frame, session.send):
                    self.stats.queries_answered += 1
            elif isinstance(event, Answered | Unsolicited):
                if event.frame.afn in CONFIRMED_AFNS:
                    self.answers.confirm_time(event.frame)
                if isinstance(event, Unsolicited) and not self._closing:  # closing: our logout's reply
                    kind = "link" if event.frame.afn == AFN.LINK else "confirm"
                    log.info("event=szy206_unexpected kind=%s afn=%02X", kind, event.frame.afn)
            elif isinstance(event, Misdirected):
                log.info("event=szy206_uplink_frame_ignored afn=%02X", event.frame.afn)
            elif isinstance(event, Refused):
                raise SZY206Error(event.reason)
        except (SZY206Error, ValueError) as exc:
            self.stats.frames_rejected += 1
            log.warning("event=szy206_frame_refused afn=%02X error=%r", event.frame.afn, str(exc))

    # -- delivering reports -----------------------------------------------------------------------

    async def deliver(self, item: SlotReport) -> None:
        """Self-report one slot; return once the station confirmed it. FCB 3, then 2, 1, 0 on
        missing confirms. The slot stays kept in the store whatever happens.

        Raises:
            NotConnected: no station link, or it went down before the confirm.
            TimedOut: no confirm after every try.
        """
        slot, data, live = item.slot, item.data, item.live
        async with self._in_flight:
            session = self._session
            if session is None or not self.connected.is_set():
                raise NotConnected("not logged in to the station")
            tp = self.answers.tp(slot, delay=None if live else 0)
            report = Frame(
                direction=Direction.UP,
                fcb=3,
                function=FLOW_TYPE,
                address=self.address,
                afn=AFN.REPORT,
                data=data,
                tp=tp,
            )
            request, outcomes = session.start(report)
            try:
                frame = request.frame
                while True:
                    if not self.connected.is_set():
                        raise NotConnected("the station link went down")
                    await self.outbox.report_attempted(slot)
                    self.stats.reports_sent += 1
                    if frame.fcb < 3:
                        self.stats.resends += 1
                    await session.send(frame)
                    outcome = await outcomes.get()
                    if outcome is None:
                        raise NotConnected("the station link is going down")
                    if isinstance(outcome, Answered):
                        await self._confirmed(slot, frame.fcb, live)
                        return
                    log.warning("event=szy206_no_confirm slot=%d fcb=%d", slot, frame.fcb)
                    if not isinstance(outcome, Resend):
                        break
                    frame = outcome.frame
            except ConnectionError as exc:
                raise NotConnected(str(exc) or type(exc).__name__) from None
            finally:
                session.end(request)
            self.stats.reports_given_up += 1
            log.warning("event=szy206_report_kept slot=%d reason=no_confirm_after_%d_tries", slot, self.cfg.retries + 1)
            raise TimedOut(f"slot {slot}: no confirm after {self.cfg.retries + 1} tries")

    async def _confirmed(self, slot: int, fcb: int, live: bool) -> None:
        await self.outbox.confirm_report(slot, self.clock())
        self.stats.reports_confirmed += 1
        log.info("event=szy206_report_confirmed slot=%d fcb=%d backfill=%s", slot, fcb, "no" if live else "yes")
        if self.on_confirmed is not None:
            self.on_confirmed(slot, not live)

    async def _backfill_loop(self) -> None:
        """After (re)connecting: kept slots, oldest first, paced, before the current slot."""
        if not self.cfg.backfill:
            return
        while True:
            await self._backfill_wake.wait()
            self._backfill_wake.clear()
            await self.connected.wait()
            current = next_slot(self.clock(), self.interval_ms) - self.interval_ms
            while True:
                kept = await self.outbox.unconfirmed_reports(BACKLOG_BATCH, current)
                if not kept:
                    break
                for slot, data in kept:
                    try:
                        await self.deliver(SlotReport(slot, data, live=False))
                    except UplinkError:
                        break  # no confirm: try again at the next wake (next slot or reconnection)
                    if self.cfg.backfill_pace:
                        await asyncio.sleep(self.cfg.backfill_pace)
                else:
                    continue
                break

    async def close(self) -> None:
        self._closing = True
        session = self._session
        if session is not None and self.connected.is_set():
            try:
                await asyncio.wait_for(session.send(self._link_frame(LinkKind.LOGOUT)), 1.0)
            except (ConnectionError, TimeoutError):
                pass
        if session is not None:
            session.lose("closed")
            self._drop(session)
