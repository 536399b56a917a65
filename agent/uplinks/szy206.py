"""The agent as an SZY206 site terminal: log in to a central station, keep the link, self-report.

Every ``report_interval`` a report slot is closed: the flow/volume pair of each reporting meter, in
the order of its configured ``szy206_position`` (AA-filled when a meter has no fresh value), then
the alarm and status words. The slot's data area is committed to the store first, so a slot
missed during an outage is kept; it counts as delivered on this uplink only when the station's
confirm arrived. A report goes out as C0H (control DIR | FCB | type 3) with the slot's time in the
site's local time; with no confirm it is sent again with the FCB decremented, at most ``retries``
times, then kept for the next attempt. After a reconnection, kept slots are self-reported oldest
first (``backfill``); the station can also pull them with B1H. B0H is answered with the latest
values, 51H with the agent's clock; 11H and confirm time labels set an offset the agent applies to
its own clock when ``trust_station_time`` is set (the service may not set the system clock).

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
    NEED_DATA,
    AlarmBit,
    Frame,
    Reassembler,
    SZY206Error,
    encode,
    encode_flow_data,
)
from meterlink.protocols.szy206.fields import Address, TimeLabel
from meterlink.protocols.szy206.messages import LinkKind, build_link, parse_confirm, parse_stored_query
from meterlink.protocols.szy206.settings import build_clock_answer, parse_clock, parse_pw
from meterlink.protocols.szy206.times import clock_at, clock_to_ms, label_to_ms, time_label_at

from ..clock import next_slot, now_ms, offset_ms, set_offset
from ..config import Szy206UplinkConfig
from ..latest import LatestValues
from ..outbox import Outbox
from ..tasks import cancel_and_wait
from .base import ConnectFailed, keep_connected

log = logging.getLogger("meterlink.szy206")

NEAREST_MS = 15 * 86_400_000  # a month-less station time is read as the moment within half a month of ours

EventSink = Callable[[str, dict[str, Any]], Awaitable[None]]
FLOW_TYPE = 3
STATUS_SELF_REPORT = 1  # status word D1-D0: self-report with confirm
BACKLOG_BATCH = 50


@dataclass
class TerminalStats:
    connections: int = 0
    reports_sent: int = 0
    reports_confirmed: int = 0
    resends: int = 0
    reports_given_up: int = 0
    queries_answered: int = 0
    frames_rejected: int = 0
    last_error: str = ""


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
        self.latest = latest
        self.events = events
        self.clock = clock
        self.backoff_max = backoff_max
        self.address = Address(division=cfg.division, station=cfg.station)
        self.interval_ms = cfg.report_interval * 1000
        self.stats = TerminalStats()
        self.connected = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._lost: asyncio.Future[str] | None = None
        self._waiting: dict[str, asyncio.Future[Frame]] = {}
        self._in_flight = asyncio.Lock()
        self._backfill_wake = asyncio.Event()
        self._closing = False
        self._deliveries: set[asyncio.Task[None]] = set()
        self.on_confirmed: Callable[[int, bool], None] | None = None  # (slot, backfilled): the demo's lines
        # Whether a meter is failing its polls (the agent wires in its pollers' view). Only then does
        # a missing value raise the flow-meter-fault alarm: a meter not polled yet is no faulty one.
        self.meter_failing: Callable[[str], bool] = lambda _meter: True

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
                fresh = await self.outbox.call(self.outbox.store.add_report, slot, data, self.clock())
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
        await self._deliver(slot, data, live=True)
        self._backfill_wake.set()

    def report_data(self, slot: int | None = None) -> bytes:
        """The C0H data area: pairs in position order, then alarm and status words."""
        count = max(self.positions) if self.positions else 0
        pairs: list[tuple[Any, Any]] = []
        fault = False
        for position in range(1, count + 1):
            meter = self.positions.get(position)
            flow = self._value(meter, "flow_rate", slot) if meter else None
            volume = self._value(meter, "volume_total", slot) if meter else None
            if meter and flow is None and volume is None and self.meter_failing(meter):
                fault = True
            pairs.append((_fit_flow(flow), _fit_volume(volume)))
        alarm = int(AlarmBit.FLOW_METER_FAULT) if fault else 0
        return encode_flow_data(pairs, alarm, STATUS_SELF_REPORT)

    def _value(self, meter: str, quantity: str, slot: int | None) -> float | None:
        if slot is None:  # a real-time query: the newest value
            latest = self.latest.get(meter, quantity)
        else:  # a report slot: what was polled for it, never a later poll's value nor a stale one
            latest = self.latest.at(meter, quantity, slot, self.interval_ms)
        return None if latest is None else latest.value

    # -- the link ---------------------------------------------------------------------------------

    async def _link_loop(self) -> None:
        await keep_connected(self._connect, self._serve, backoff_max=self.backoff_max, on_retry=self._log_retry,
                             closing=lambda: self._closing)

    def _log_retry(self, state: Any) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self.stats.last_error = str(exc)
        wait = state.next_action.sleep if state.next_action else 0
        log.warning("event=szy206_connect_failed station=%s:%d attempt=%d retry_in=%.1fs error=%r",
                    self.cfg.host, self.cfg.port, state.attempt_number, wait, str(exc))

    async def _connect(self) -> asyncio.StreamReader:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.cfg.host, self.cfg.port), self.cfg.confirm_timeout
            )
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(str(exc) or type(exc).__name__) from None
        self._writer = writer
        self._lost = asyncio.get_running_loop().create_future()
        return reader

    async def _serve(self, reader: asyncio.StreamReader) -> None:
        read_task = asyncio.create_task(self._read_loop(reader), name="meterlink.szy206.read")
        work = [asyncio.create_task(self._login_and_keepalive(), name="meterlink.szy206.keepalive"),
                asyncio.create_task(self._backfill_loop(), name="meterlink.szy206.backfill")]
        assert self._lost is not None
        try:
            reason = await self._lost
        finally:
            await cancel_and_wait([read_task, *work])
            self._drop("link closed")
        if not self._closing:
            log.warning("event=szy206_disconnected station=%s:%d reason=%r", self.cfg.host, self.cfg.port, reason)

    def _lose(self, reason: str) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(reason)

    def _drop(self, why: str) -> None:
        self.connected.clear()
        for fut in self._waiting.values():
            if not fut.done():
                # An error, not a cancellation: a CancelledError here would end the task waiting for
                # a confirm (the report slot loop), as if the terminal itself were being stopped.
                fut.set_exception(ConnectionError(why))
        self._waiting.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def _login_and_keepalive(self) -> None:
        reply = await self._request("link", build_link(self.address, LinkKind.LOGIN, tp=self._tp(self.clock())))
        self.stats.connections += 1
        self.connected.set()
        self._backfill_wake.set()
        log.info("event=szy206_logged_in station=%s:%d address=%s:%d reply=%s", self.cfg.host, self.cfg.port,
                 self.cfg.division, self.cfg.station, "yes" if reply else "none")
        await self.events("szy206_connected", {"station": f"{self.cfg.host}:{self.cfg.port}"})
        if not self.cfg.keepalive:
            return
        missed = 0
        while True:
            await asyncio.sleep(self.cfg.keepalive)
            reply = await self._request("link", build_link(self.address, LinkKind.KEEPALIVE, tp=self._tp(self.clock())))
            missed = 0 if reply else missed + 1
            if missed >= 2:
                self._lose("two keep-alives without a reply")
                return

    async def _request(self, kind: str, frame: Frame, fcb: int | None = None) -> Frame | None:
        """Send a frame and wait for the station's answer of that kind; None on timeout."""
        fut: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._waiting[kind] = fut
        try:
            await self._send(frame)
            return await asyncio.wait_for(fut, self.cfg.confirm_timeout)
        except TimeoutError:
            return None
        finally:
            if self._waiting.get(kind) is fut:
                del self._waiting[kind]

    async def _send(self, frame: Frame) -> None:
        writer = self._writer
        if writer is None:
            raise ConnectionError("not connected")
        writer.write(encode(frame))
        try:
            await writer.drain()
        except ConnectionError as exc:
            self._lose(str(exc))
            raise

    # -- reading frames from the station ----------------------------------------------------------

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        # What we send follows time_label; what stations send varies (queries often carry no Tp).
        stream = Reassembler(tp_len=None)
        while True:
            try:
                chunk = await reader.read(4096)
            except ConnectionError as exc:
                self._lose(str(exc))
                return
            if not chunk:
                self._lose("station closed the connection")
                return
            stream.feed(chunk)
            while (frame := stream.next_frame()) is not NEED_DATA:
                assert isinstance(frame, Frame)
                try:
                    await self._dispatch(frame)
                except (SZY206Error, ValueError) as exc:
                    self.stats.frames_rejected += 1
                    log.warning("event=szy206_frame_refused afn=%02X error=%r", frame.afn, str(exc))
            if stream.frames_rejected > self.stats.frames_rejected:
                log.warning("event=szy206_bad_bytes discarded=%d rejected=%d last=%r", stream.bytes_discarded,
                            stream.frames_rejected, stream.last_error)
                self.stats.frames_rejected = stream.frames_rejected

    async def _dispatch(self, frame: Frame) -> None:
        if frame.direction == 1:
            log.info("event=szy206_uplink_frame_ignored afn=%02X", frame.afn)
            return
        if frame.afn == AFN.LINK:
            self._resolve("link", frame)
        elif frame.afn in (AFN.REPORT, AFN.ALARM_REPORT):
            confirm = parse_confirm(frame)
            self._resolve("confirm", frame)
            if confirm.tp is not None:
                # A 5-byte label has no month: take the moment nearest to ours (the default, made for
                # reports that are at most a few minutes early, would read a station 11 min fast as
                # a month slow).
                station = label_to_ms(confirm.tp, now_ms=self.clock(), utc_offset_h=self.cfg.utc_offset_hours,
                                      ahead_ms=NEAREST_MS)
                self._station_time(station, "confirm")
        elif frame.afn == AFN.QUERY_REALTIME:
            await self._answer_realtime(frame)
        elif frame.afn == AFN.QUERY_STORED:
            await self._answer_stored(frame)
        elif frame.afn == AFN.SET_CLOCK:
            await self._set_clock(frame)
        elif frame.afn == AFN.READ_CLOCK:
            now = self.clock()
            await self._send(build_clock_answer(self.address, clock_at(now, utc_offset_h=self.cfg.utc_offset_hours),
                                                afn=AFN.READ_CLOCK, fcb=frame.fcb))
            self.stats.queries_answered += 1
        else:
            log.info("event=szy206_unsupported afn=%02X", frame.afn)

    def _resolve(self, kind: str, frame: Frame) -> None:
        fut = self._waiting.get(kind)
        if fut is not None and not fut.done():
            fut.set_result(frame)
        elif not self._closing:  # closing, the station's reply to our logout is no surprise
            log.info("event=szy206_unexpected kind=%s afn=%02X", kind, frame.afn)

    async def _answer_realtime(self, query: Frame) -> None:
        now = self.clock()
        frame = Frame(direction=1, fcb=query.fcb, function=FLOW_TYPE, address=self.address,
                      afn=AFN.QUERY_REALTIME, data=self.report_data(None), tp=self._tp(now))
        await self._send(frame)
        self.stats.queries_answered += 1

    async def _answer_stored(self, query: Frame) -> None:
        start, end = parse_stored_query(query)
        zone = self.cfg.utc_offset_hours
        first, last = clock_to_ms(start, utc_offset_h=zone), clock_to_ms(end, utc_offset_h=zone)
        kept = await self.outbox.call(self.outbox.store.reports_between, first, last)
        for slot, data in kept:
            await self._send(Frame(direction=1, fcb=query.fcb, function=FLOW_TYPE, address=self.address,
                                   afn=AFN.QUERY_STORED, data=data, tp=self._tp(slot, delay=0)))
        self.stats.queries_answered += 1
        log.info("event=szy206_stored_query from=%d to=%d answered=%d", first, last, len(kept))

    async def _set_clock(self, frame: Frame) -> None:
        if self.cfg.password is not None:
            expected = (int(self.cfg.password[0]), int(self.cfg.password[1:]))
            if frame.pw is None or parse_pw(frame.pw) != expected:
                log.warning("event=szy206_set_clock_refused reason=wrong_password")
                return
        clock = parse_clock(frame)
        self._station_time(clock_to_ms(clock, utc_offset_h=self.cfg.utc_offset_hours), "set_clock")
        now = self.clock()
        await self._send(build_clock_answer(self.address, clock_at(now, utc_offset_h=self.cfg.utc_offset_hours),
                                            afn=AFN.SET_CLOCK, fcb=frame.fcb))

    def _station_time(self, station_ms: int, source: str) -> None:
        drift = station_ms - self.clock()
        if not self.cfg.trust_station_time:
            if abs(drift) > 60_000:
                log.warning("event=szy206_station_time_differs source=%s drift_ms=%d trusted=no", source, drift)
            return
        if abs(drift) < 1000:
            return  # the label has one-second resolution
        new = offset_ms() + drift
        set_offset(new)
        log.warning("event=clock_offset_set source=szy206_%s drift_ms=%d offset_ms=%d", source, drift, new)

    # -- delivering reports -----------------------------------------------------------------------

    def _tp(self, ms: int, delay: int | None = None) -> TimeLabel | None:
        if self.cfg.time_label == "none":
            return None
        return time_label_at(ms, tp_len=self.cfg.tp_len, utc_offset_h=self.cfg.utc_offset_hours,
                             delay_min=self.cfg.tp_delay_min if delay is None else delay)

    async def _deliver(self, slot: int, data: bytes, *, live: bool) -> bool:
        """Self-report one slot; True when confirmed. FCB 3, then 2, 1, 0 on missing confirms."""
        async with self._in_flight:
            tp = self._tp(slot, delay=None if live else 0)
            for attempt in range(self.cfg.retries + 1):
                if not self.connected.is_set():
                    return False
                frame = Frame(direction=1, fcb=3 - attempt, function=FLOW_TYPE, address=self.address,
                              afn=AFN.REPORT, data=data, tp=tp)
                await self.outbox.call(self.outbox.store.report_attempted, slot)
                self.stats.reports_sent += 1
                if attempt:
                    self.stats.resends += 1
                try:
                    confirm = await self._request("confirm", frame)
                except ConnectionError:
                    return False  # the link is going down; the slot stays kept
                if confirm is not None:
                    await self.outbox.call(self.outbox.store.confirm_report, slot, self.clock())
                    self.stats.reports_confirmed += 1
                    log.info("event=szy206_report_confirmed slot=%d fcb=%d backfill=%s", slot, 3 - attempt,
                             "no" if live else "yes")
                    if self.on_confirmed is not None:
                        self.on_confirmed(slot, not live)
                    return True
                log.warning("event=szy206_no_confirm slot=%d fcb=%d", slot, 3 - attempt)
            self.stats.reports_given_up += 1
            log.warning("event=szy206_report_kept slot=%d reason=no_confirm_after_%d_tries", slot,
                        self.cfg.retries + 1)
            return False

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
                kept = await self.outbox.call(self.outbox.store.unconfirmed_reports, BACKLOG_BATCH, current)
                if not kept:
                    break
                for slot, data in kept:
                    if not await self._deliver(slot, data, live=False):
                        break  # no confirm: try again at the next wake (next slot or reconnection)
                    if self.cfg.backfill_pace:
                        await asyncio.sleep(self.cfg.backfill_pace)
                else:
                    continue
                break

    async def close(self) -> None:
        self._closing = True
        if self._writer is not None and self.connected.is_set():
            try:
                logout = build_link(self.address, LinkKind.LOGOUT, tp=self._tp(self.clock()))
                await asyncio.wait_for(self._send(logout), 1.0)
            except (ConnectionError, TimeoutError):
                pass
        self._lose("closed")
        self._drop("closed")


def _fit_flow(value: float | None) -> float | None:
    """A flow the 5-byte field can carry (3 decimals, |x| <= 999999.999), else absent."""
    if value is None or not abs(value) <= 999_999.999:
        return None
    return round(value, 3)


def _fit_volume(value: float | None) -> int | None:
    """Cumulative volume is a whole number of m3 in SZY206; negative cannot be sent."""
    if value is None or value < 0 or value > 9_999_999_999:
        return None
    return int(value)

