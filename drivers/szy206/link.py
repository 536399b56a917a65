"""An SZY206 link: one serial port or TCP endpoint, one query at a time, self-reports confirmed.

The link is the centre of its bus. What it says and hears follows one sans-I/O
:class:`~meterlink.protocols.szy206.Conversation` (FCB countdown, answers matched to queries,
which copies of a report to confirm, partial frames given up), run from asyncio by a
:class:`~.pump.Pump`. This module keeps the I/O: the pipe, the bus lock, and what to do with
each event:

- the answer a query waits for ends it; a query whose last try timed out ends in
  :class:`MeterTimeout`, or :class:`BadFrame` when bytes arrived but none made a valid answer;
- a self-report (C0H, 81H, 82H) of a configured meter goes to :class:`SelfReports` (reports.py:
  handed to ``on_report``, confirmed once that says it is durable);
- a link check (02H) of a configured meter is answered with data 00H;
- anything else is counted: frames of unknown addresses (logged once per address), answers nobody
  waits for any more (late), downlink frames (an RS-485 adapter's echo, another master).

Failures follow drivers/modbus/bus.py: the pipe is (re)opened on the next request after it was
lost, and a failed open is retried at most once per timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from meterlink.drivers.base import BadFrame, MeterTimeout, ReportCallback, TransportError
from meterlink.drivers.params import SerialParams, TcpParams, describe
from meterlink.protocols.szy206 import (
    Address,
    Answered,
    Conversation,
    Event,
    Frame,
    GaveUp,
    LinkCheck,
    Misdirected,
    ReportReceived,
    ReportRepeated,
    Request,
    Resend,
    Role,
    Unsolicited,
    build_link_reply,
    encode,
)
from meterlink.protocols.szy206.times import SKEW_MS

from .counters import LinkCounters
from .meter import Szy206Meter, address_text
from .pump import Pump
from .reports import REPORT_AFNS, SelfReports
from .transport import SerialTransport, TcpTransport, open_transport

log = logging.getLogger("meterlink.szy206")

SITE_UTC_OFFSET_H = 8.0  # Chinese sites keep their clocks in UTC+8
DEFAULT_AHEAD_S = SKEW_MS / 1000

MAX_TRIES = 4  # FCB 3, 2, 1, 0: "when FCB reaches 0 the transfer has failed"
KEEP_OPEN_CHECK_S = 1.0  # how often a listening link looks whether its pipe is still open


@dataclass(frozen=True, slots=True)
class Answer:
    """A query's answer and its arrival time (ms since the epoch)."""

    frame: Frame
    ts: int


@dataclass(slots=True)
class _Waiter:
    request: Request
    future: asyncio.Future[Answer]
    fcbs: set[int] = field(default_factory=lambda: {3})


class Szy206Link:
    """One bus: a serial port or a TCP endpoint, shared by the SZY206 meters on it.

    Args:
        name: the link's name in logs.
        params: the serial port or TCP endpoint.
        clock: the time readings and confirms carry, ms since the epoch: the agent passes its
            own (with the offset a trusted station set), tests a fake one.
        timeout: seconds to wait for an answer, per try; also the pause after a failed open.
        retries: tries after the first, each with the FCB one lower (0..3).
        meters: meters known from the start (the driver adds each meter it reads).
        on_report: awaited with (meter id, readings) for each self-report of a configured meter;
            the report is confirmed after it returns (the readings are durable), not if it
            raises. None: reports are left unconfirmed, with the meter.
        utc_offset_h: the site's time zone, for time labels.
        tp_ahead_s: how far ahead of ours a meter's clock may be (5-byte Tp, see protocols/szy206/times.py).
        confirm_work_mode: the work-mode byte of confirms (0..3), None for a confirm without data.
        resync_after: seconds without a byte after which a partial frame is given up
            (default: half the timeout).

    Raises:
        ValueError: retries outside 0..3, a timeout that is not positive, a bad work mode.
    """

    def __init__(
        self,
        name: str,
        params: SerialParams | TcpParams,
        *,
        clock: Callable[[], int],
        timeout: float = 1.0,
        retries: int = 3,
        meters: Iterable[Szy206Meter] = (),
        on_report: ReportCallback | None = None,
        utc_offset_h: float = SITE_UTC_OFFSET_H,
        tp_ahead_s: float = DEFAULT_AHEAD_S,
        confirm_work_mode: int | None = 0,
        resync_after: float | None = None,
    ) -> None:
        if not 0 <= retries < MAX_TRIES:
            raise ValueError(f"retries must be 0..{MAX_TRIES - 1} (FCB counts down from 3), got {retries}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if confirm_work_mode is not None and not 0 <= confirm_work_mode <= 3:
            raise ValueError(f"confirm_work_mode must be 0..3 or None, got {confirm_work_mode}")
        self.name = name
        self.params = params
        self.timeout = timeout
        self.retries = retries
        self.clock = clock
        self.resync_after = timeout / 2 if resync_after is None else resync_after
        self.counters = LinkCounters()
        self.conversation = Conversation(
            Role.CENTRE,
            timeout_ms=max(1, round(timeout * 1000)),
            tries=1 + retries,
            resync_after_ms=max(1, round(self.resync_after * 1000)),
            confirm_work_mode=confirm_work_mode,
        )
        self._pump = Pump(self.conversation, self._on_event, self._sync_counters)
        self.reports = SelfReports(
            name,
            self.counters,
            self.conversation,
            self._send_quietly,
            on_report,
            clock=clock,
            utc_offset_h=utc_offset_h,
            tp_ahead_s=tp_ahead_s,
        )
        self.lock = asyncio.Lock()
        self._meters: dict[Address, Szy206Meter] = {}
        for meter in meters:
            self.add_meter(meter)
        self._transport: SerialTransport | TcpTransport | None = None
        self._next_open = 0.0
        self._waiter: _Waiter | None = None
        self._seen = (0, 0, 0)  # the conversation's (discarded, rejected, resyncs) already logged
        self._warned: set[Address] = set()  # unknown addresses already logged at WARNING

    @property
    def tries(self) -> int:
        return 1 + self.retries

    @property
    def connected(self) -> bool:
        return self._transport is not None

    def add_meter(self, meter: Szy206Meter) -> None:
        """Make ``meter`` known: its self-reports are confirmed and handed to ``on_report``.

        Raises:
            ValueError: another meter id already has this address on the link.
        """
        known = self._meters.get(meter.address)
        if known is not None and known.id != meter.id:
            raise ValueError(f"link {self.name}: {address_text(meter.address)} is already meter {known.id}")
        self._meters[meter.address] = meter

    def describe(self) -> str:
        return describe(self.params)

    # --- opening and closing ---------------------------------------------------------------------

    async def open(self) -> None:
        """Open the pipe now if it is not open (a link that only receives reports needs this).

        Raises:
            TransportError: it cannot be opened, or a failed open was less than a timeout ago.
        """
        async with self.lock:
            await self._ensure_open()

    async def keep_open(self) -> None:
        """Keep the pipe open, so self-reports arrive between queries; runs until cancelled.

        Queries open the pipe themselves, but a meter that reports every few minutes and is polled
        hourly would go unheard until the first poll, and after a lost connection until the next.
        A failed open is logged by the open itself and tried again after the timeout.
        """
        while True:
            if self._transport is None:
                try:
                    await self.open()
                except TransportError:
                    pass
            await asyncio.sleep(max(self.timeout, KEEP_OPEN_CHECK_S))

    async def _ensure_open(self) -> SerialTransport | TcpTransport:
        if self._transport is not None:
            return self._transport
        if time.monotonic() < self._next_open:
            raise TransportError(f"link {self.name}: not connected ({self.counters.last_error})")
        try:
            transport = await open_transport(self.params, self._feed, self._on_lost, self.timeout)
        except OSError as exc:
            # Try again at most once per timeout, so a missing adapter does not spin.
            self._next_open = time.monotonic() + self.timeout
            self.counters.connect_failures += 1
            self.counters.last_error = f"cannot open {self.describe()}: {exc}"
            log.warning("event=szy206_open_failed link=%s endpoint=%s error=%r", self.name, self.describe(), str(exc))
            raise TransportError(f"link {self.name}: cannot open {self.describe()}: {exc}") from exc
        self.conversation.drop_buffered()  # bytes of an earlier connection never join this one's
        self._transport = transport
        self.counters.connects += 1
        log.info("event=szy206_link_open link=%s endpoint=%s", self.name, self.describe())
        return transport

    def _on_lost(self, transport: object, error: Exception | None) -> None:
        if transport is not self._transport:
            return
        self._transport = None
        self.conversation.drop_buffered()
        self.counters.disconnects += 1
        self.counters.last_error = f"connection lost: {error or 'closed by the other end'}"
        log.warning("event=szy206_link_lost link=%s error=%r", self.name, str(error or "eof"))
        self._fail_waiter("connection lost")

    def _fail_waiter(self, why: str) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.future.done():
            waiter.future.set_exception(TransportError(f"link {self.name}: {why}"))

    async def close(self) -> None:
        """Close the pipe and log the link's counters; the link opens again on the next query.

        Reports whose commit still runs are left unconfirmed: the meter sends them again.
        """
        self._pump.stop()
        await self.reports.close()
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        self._fail_waiter("closed")
        log.info("event=szy206_link_stats link=%s %s", self.name, self.counters.summary())

    # --- queries ---------------------------------------------------------------------------------

    async def query(self, frame: Frame) -> Answer:
        """Send ``frame`` and wait for the uplink answer with its AFN from its address.

        The first try has FCB 3; each retry the next lower FCB. An answer with any FCB is taken:
        a slow meter's answer to the first try is as good as its answer to the second, and some
        terminals do not echo the FCB at all.

        Raises:
            MeterTimeout: nothing valid from the meter in timeout x tries, and no stray bytes.
            BadFrame: bytes arrived but no valid answer (bad CRC, noise, a cut frame).
            TransportError: the pipe cannot be opened, or was lost while waiting.
        """
        async with self.lock:
            await self._ensure_open()
            request = self._pump.request(frame)
            waiter = _Waiter(request, asyncio.get_running_loop().create_future())
            self._waiter = waiter
            self.counters.requests += 1
            try:
                self._write(encode(request.frame))
                answer = await waiter.future
            finally:
                self._waiter = None
                self._pump.cancel(request)
                if not waiter.future.done():
                    waiter.future.cancel()
            self.counters.answers += 1
            return answer

    def _gave_up(self, waiter: _Waiter, noise: int) -> None:
        where = f"{address_text(waiter.request.address)} on {self.name}"
        if noise:
            self.counters.bad_answers += 1
            self.counters.last_error = f"no valid answer from {where}"
            error: Exception = BadFrame(f"{noise} bad bytes from {where}, no valid answer in {self.tries} tries")
        else:
            self.counters.timeouts += 1
            self.counters.last_error = f"no answer from {where}"
            error = MeterTimeout(f"no answer from {where} in {self.timeout:g} s x {self.tries} tries")
        waiter.future.set_exception(error)

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None:
            raise TransportError(f"link {self.name}: connection lost")
        try:
            transport.write(data)
        except OSError as exc:
            self.counters.last_error = f"write failed: {exc}"
            transport.close()
            self._on_lost(transport, exc)
            raise TransportError(f"link {self.name}: write failed") from exc

    # --- what arrives ----------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        """Bytes from the pipe, from the event loop: never raises."""
        try:
            self._pump.feed(data)
        except Exception:
            # A bug, not bad bytes (those are counted): keep the link alive on a fresh buffer.
            log.exception("event=szy206_receive_failed link=%s", self.name)
            self.conversation.drop_buffered(count=True)

    def _on_event(self, event: Event) -> None:
        try:
            if isinstance(event, Resend | GaveUp | Answered):
                self._answer(event)
            elif isinstance(event, ReportReceived | ReportRepeated | LinkCheck | Unsolicited | Misdirected):
                self._heard(event)
        except Exception:
            # A bug, not bad bytes (those are counted): log it, keep the link alive.
            log.exception("event=szy206_dispatch_failed link=%s", self.name)

    def _answer(self, event: Resend | GaveUp | Answered) -> None:
        """What becomes of the query that waits: its next try, its failure, its answer."""
        waiter = self._waiter
        if waiter is None or event.request is not waiter.request or waiter.future.done():
            return
        if isinstance(event, Resend):
            self.counters.retries += 1
            waiter.fcbs.add(event.frame.fcb)
            try:
                self._write(encode(event.frame))
            except TransportError:
                pass  # the waiter has failed with the pipe
        elif isinstance(event, GaveUp):
            self._gave_up(waiter, event.noise)
        else:
            if event.frame.fcb not in waiter.fcbs:
                log.debug(
                    "event=szy206_fcb_not_echoed link=%s fcb=%d sent=%s",
                    self.name,
                    event.frame.fcb,
                    sorted(waiter.fcbs),
                )
            waiter.future.set_result(Answer(event.frame, self.clock()))

    def _heard(self, event: ReportReceived | ReportRepeated | LinkCheck | Unsolicited | Misdirected) -> None:
        """A frame that answers no query of ours."""
        frame = event.frame
        if isinstance(event, Misdirected):
            self.counters.stray_frames += 1
            log.debug("event=szy206_downlink_seen link=%s afn=%02X", self.name, frame.afn)
            return
        meter = self._meters.get(frame.address)
        if meter is None:
            self.counters.unknown_frames += 1
            level = logging.DEBUG if frame.address in self._warned else logging.WARNING
            self._warned.add(frame.address)
            log.log(
                level,
                "event=szy206_unknown_address link=%s address=%s afn=%02X",
                self.name,
                address_text(frame.address),
                frame.afn,
            )
        elif isinstance(event, ReportReceived | ReportRepeated) and frame.afn in REPORT_AFNS:
            self.reports.handle(meter, event, self.clock())
        elif isinstance(event, LinkCheck):
            self.counters.link_checks += 1
            self._send_quietly(build_link_reply(frame), meter, "link_reply")
        else:
            self.counters.stray_frames += 1
            log.info(
                "event=szy206_stray_frame link=%s meter=%s afn=%02X fcb=%d", self.name, meter.id, frame.afn, frame.fcb
            )

    def _sync_counters(self) -> None:
        """Copy what the conversation threw away into the counters; log new rejections."""
        conv, counters = self.conversation, self.counters
        counters.frames_ok = conv.frames_received
        counters.resyncs = conv.resyncs
        counters.bytes_discarded = conv.bytes_discarded
        counters.bad_frames = conv.frames_rejected
        discarded, rejected, resyncs = self._seen
        if conv.resyncs != resyncs:
            log.info("event=szy206_resync link=%s buffered=%d reason=%r", self.name, conv.buffered, "idle")
        if conv.frames_rejected != rejected:
            log.warning(
                "event=szy206_bad_frame link=%s rejected=%d discarded=%d reason=%r",
                self.name,
                conv.frames_rejected - rejected,
                conv.bytes_discarded - discarded,
                conv.last_error,
            )
        self._seen = (conv.bytes_discarded, conv.frames_rejected, conv.resyncs)

    def _send_quietly(self, frame: Frame, meter: Szy206Meter, what: str) -> bool:
        try:
            self._write(encode(frame))
        except TransportError as exc:
            log.warning(
                "event=szy206_send_failed link=%s meter=%s what=%s error=%r", self.name, meter.id, what, str(exc)
            )
            return False
        return True
