"""Self-reports of the meters on one link: decoded, made durable, then confirmed; resends not repeated.

A report (C0H, 81H, 82H) of a configured meter is decoded and handed to ``on_report``, a coroutine
that returns once its readings are committed to disk (the agent's store, with fsync). Only then is
the report confirmed: the meter drops its copy on our confirm, so a confirm sent earlier would lose
the report to a kill, a power cut or a full disk inside the commit. Its readings carry the report's
own time: the Tp converted to UTC (protocols/szy206/times.py), or the arrival time when it has none.
A resent report (same content, FCB one lower: the meter missed our confirm, or our commit was slow)
is not handed over twice: if it is already durable it is confirmed again at once, if its commit is
still running the confirm that follows the commit answers the resend's FCB. Telling copies apart
is the link's conversation's (protocols/szy206/conversation.py: ``take``, ``confirm``,
``abandon``); this module runs the commits.

Confirm form (notes section 4, the sources differ): same AFN, DIR = 0, the report's FCB and type
code echoed, data = one work-mode byte, 00H "compatible" by default. 00H keeps the meter
answering our B0H queries; 01H would ask it to self-report only. When the report carried a Tp,
the confirm carries our clock in the same edition (5 or 7 bytes, site time) and the report's
delay, since SL/T 427 terminals set their clock from it.

What is not confirmed: reports that cannot be decoded, reports whose commit failed (a full disk, a
store that refuses readings at its cap), reports nobody takes (no ``on_report``: ``meterlink read``
only looks) and, in the link, reports of unknown addresses. Left unconfirmed, the meter resends and
keeps the data for whoever can take it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from meterlink.drivers.base import DecodeError, Reading, ReportCallback
from meterlink.protocols.szy206 import (
    AFN,
    AlarmBit,
    Conversation,
    Frame,
    ReportReceived,
    ReportRepeated,
    SZY206Error,
    Taking,
    parse_flow_report,
)
from meterlink.protocols.szy206.errors import DataError
from meterlink.protocols.szy206.times import label_to_ms, reply_label

from .counters import LinkCounters
from .meter import Szy206Meter, report_readings

log = logging.getLogger("meterlink.szy206")

REPORT_AFNS = frozenset({AFN.REPORT, AFN.ALARM_REPORT, AFN.MANUAL_REPORT})
Send = Callable[[Frame, Szy206Meter, str], bool]  # (frame, meter, what) -> written


class SelfReports:
    """The self-report side of one link (see the module docstring).

    Args:
        link: the link's name in logs.
        counters: the link's counters (self_reports, duplicate_reports, confirms_sent, ...).
        conversation: the link's conversation: which copies are new, the confirm to send.
        send: writes a frame on the link; False when it could not.
        on_report: awaited with (meter id, readings); returns once they are durable. None: nobody
            takes reports here, so none is confirmed (the meter keeps them for the agent).
        clock: our time, ms since the epoch (a confirm's Tp).
        utc_offset_h: the site's time zone.
        tp_ahead_s: how far ahead of ours a meter's clock may be.
    """

    def __init__(
        self,
        link: str,
        counters: LinkCounters,
        conversation: Conversation,
        send: Send,
        on_report: ReportCallback | None,
        *,
        clock: Callable[[], int],
        utc_offset_h: float,
        tp_ahead_s: float,
    ) -> None:
        self.link = link
        self.counters = counters
        self.conversation = conversation
        self.send = send
        self.on_report = on_report
        self.clock = clock
        self.utc_offset_h = utc_offset_h
        self.tp_ahead_s = tp_ahead_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._alarms: dict[str, int] = {}
        self._tp_warned: set[str] = set()

    def handle(self, meter: Szy206Meter, event: ReportReceived | ReportRepeated, arrived: int) -> None:
        """Take one report of ``meter`` that arrived at ``arrived`` (ms). Never raises.

        Called from the link's receive path; the commit and the confirm run in a task of their own.
        """
        self.counters.self_reports += 1
        frame = event.frame
        if isinstance(event, ReportRepeated):
            self.counters.duplicate_reports += 1
            if event.committing:  # the confirm after the commit answers this copy
                log.info(
                    "event=szy206_report_resent link=%s meter=%s fcb=%d committing=1", self.link, meter.id, frame.fcb
                )
            else:  # the meter missed our confirm and sent the same report again (FCB one lower)
                log.info("event=szy206_report_resent link=%s meter=%s fcb=%d", self.link, meter.id, frame.fcb)
                self._confirm(meter, frame)
            return
        try:
            report = parse_flow_report(frame)
            ts = self._report_time(meter, frame, arrived)
            readings = report_readings(meter, report, ts, ts)
        except (SZY206Error, DecodeError) as exc:
            self.counters.unconfirmed_reports += 1
            log.warning("event=szy206_report_undecodable link=%s meter=%s error=%r", self.link, meter.id, str(exc))
            return
        self.note_alarm(meter, report.alarm)
        if self.on_report is None:
            self.counters.unconfirmed_reports += 1
            log.info(
                "event=szy206_report_not_taken link=%s meter=%s reason=%r",
                self.link,
                meter.id,
                "no store here: left with the meter, unconfirmed",
            )
            return
        taking = self.conversation.take(frame)
        task = asyncio.get_running_loop().create_task(
            self._take(self.on_report, meter, readings, taking), name=f"meterlink.szy206.report.{meter.id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _take(
        self, on_report: ReportCallback, meter: Szy206Meter, readings: list[Reading], taking: Taking
    ) -> None:
        try:
            await on_report(meter.id, readings)
        except asyncio.CancelledError:
            self.conversation.abandon(taking)
            raise
        except Exception as exc:
            # Not remembered: a resend of a report we failed to take is new to us.
            self.conversation.abandon(taking)
            self.counters.unconfirmed_reports += 1
            log.warning(
                "event=szy206_report_not_stored link=%s meter=%s error=%r action=%r",
                self.link,
                meter.id,
                f"{type(exc).__name__}: {exc}",
                "not confirmed: the meter keeps it and sends it again",
            )
            return
        self._confirm(meter, taking)

    @property
    def taking(self) -> int:
        """Reports whose commit is still running (not yet confirmed)."""
        return len(self._tasks)

    async def close(self) -> None:
        """Stop taking reports: a commit still running is abandoned unconfirmed (the meter resends)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _report_time(self, meter: Szy206Meter, frame: Frame, arrived: int) -> int:
        tp = frame.tp
        size = 0 if tp is None else tp.size
        if meter.tp_len is not None and size != meter.tp_len and meter.id not in self._tp_warned:
            self._tp_warned.add(meter.id)
            log.warning("event=szy206_tp_mismatch meter=%s tp_len=%d configured=%d", meter.id, size, meter.tp_len)
        if tp is None:
            return arrived
        try:
            return label_to_ms(tp, now_ms=arrived, utc_offset_h=self.utc_offset_h, ahead_ms=int(self.tp_ahead_s * 1000))
        except DataError:
            log.warning("event=szy206_bad_time_label meter=%s tp=%r using=arrival", meter.id, tp)
            return arrived

    def _confirm(self, meter: Szy206Meter, report: Frame | Taking) -> None:
        """Confirm now: our clock in the report's Tp edition, with its delay (every copy has the same Tp)."""
        first = report.frame if isinstance(report, Taking) else report
        tp = reply_label(first.tp, self.clock(), utc_offset_h=self.utc_offset_h)
        if self.send(self.conversation.confirm(report, tp=tp), meter, "confirm"):
            self.counters.confirms_sent += 1

    def note_alarm(self, meter: Szy206Meter, alarm: int) -> None:
        """Log a meter's alarm word when it changes (one line per change)."""
        if self._alarms.get(meter.id, 0) != alarm:
            names = ",".join(f.name or "" for f in AlarmBit(alarm)) or "-"
            log.warning("event=szy206_alarm meter=%s alarm=0x%04X bits=%s", meter.id, alarm, names)
        self._alarms[meter.id] = alarm
