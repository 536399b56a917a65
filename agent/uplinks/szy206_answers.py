"""What the site terminal answers when the central station asks, and what it makes of the station's time.

| from the station | answer |
|---|---|
| B0H real-time query | B0H with the latest values of every position, the alarm and status words, our time label |
| B1H stored-data query (two stamps) | one B1H frame per kept slot in that range, each with its slot's time label |
| 51H read clock | 51H with the agent's clock |
| 11H set clock | 11H with the agent's clock; the station's time becomes an offset when trusted |

Every answer echoes the query's FCB. The service may not set the system clock: a trusted station
time (``trust_station_time``, from an 11H whose PW matches, or from a confirm's time label) sets
an offset the agent applies to every timestamp it makes; untrusted, a drift of more than a minute
is logged only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from meterlink.protocols.szy206 import AFN, Address, Direction, Frame, TimeLabel
from meterlink.protocols.szy206.elements import FLOW_TYPE
from meterlink.protocols.szy206.messages import parse_confirm, parse_stored_query
from meterlink.protocols.szy206.settings import build_clock_answer, parse_clock, parse_pw
from meterlink.protocols.szy206.times import clock_at, clock_to_ms, label_to_ms, time_label_at

from ..clock import offset_ms, set_offset
from ..outbox import Outbox
from .szy206_config import Szy206UplinkConfig
from .szy206_data import ReportData

log = logging.getLogger("meterlink.szy206")

NEAREST_MS = 15 * 86_400_000  # a month-less station time is read as the moment within half a month of ours
Send = Callable[[Frame], Awaitable[None]]


class Answers:
    """The site terminal's side of the station's queries.

    Args:
        cfg: the uplink's settings (time label, zone, password, trust).
        address: the terminal's address.
        outbox: the store, for kept report slots.
        data: the data area of real-time answers.
        clock: the agent's time, ms since the epoch.
    """

    def __init__(
        self, cfg: Szy206UplinkConfig, address: Address, outbox: Outbox, data: ReportData, clock: Callable[[], int]
    ) -> None:
        self.cfg = cfg
        self.address = address
        self.outbox = outbox
        self.data = data
        self.clock = clock

    def tp(self, ms: int, delay: int | None = None) -> TimeLabel | None:
        """The time label of moment ``ms`` as configured (None with ``time_label = "none"``)."""
        if self.cfg.time_label == "none":
            return None
        return time_label_at(
            ms,
            tp_len=self.cfg.tp_len,
            utc_offset_h=self.cfg.utc_offset_hours,
            delay_min=self.cfg.tp_delay_min if delay is None else delay,
        )

    async def answer(self, query: Frame, send: Send) -> bool:
        """Answer one query or carry out one order; True for a query answered (B0H, B1H, 51H).

        Raises:
            SZY206Error: the query's data area does not read.
            ConnectionError: the answer could not be sent.
        """
        if query.afn == AFN.QUERY_REALTIME:
            await send(self._frame(query, AFN.QUERY_REALTIME, self.data.area(None), self.tp(self.clock())))
        elif query.afn == AFN.QUERY_STORED:
            await self._answer_stored(query, send)
        elif query.afn == AFN.SET_CLOCK:
            return await self._set_clock(query, send)
        elif query.afn == AFN.READ_CLOCK:
            await send(self._clock_answer(query))
        else:
            log.info("event=szy206_unsupported afn=%02X", query.afn)
            return False
        return True

    def _frame(self, query: Frame, afn: int, data: bytes, tp: TimeLabel | None) -> Frame:
        return Frame(
            direction=Direction.UP, fcb=query.fcb, function=FLOW_TYPE, address=self.address, afn=afn, data=data, tp=tp
        )

    def _clock_answer(self, query: Frame) -> Frame:
        clock = clock_at(self.clock(), utc_offset_h=self.cfg.utc_offset_hours)
        return build_clock_answer(self.address, clock, afn=query.afn, fcb=query.fcb)

    async def _answer_stored(self, query: Frame, send: Send) -> None:
        start, end = parse_stored_query(query)
        zone, now = self.cfg.utc_offset_hours, self.clock()
        first = clock_to_ms(start, now_ms=now, utc_offset_h=zone)
        last = clock_to_ms(end, now_ms=now, utc_offset_h=zone)
        kept = await self.outbox.reports_between(first, last)
        for slot, data in kept:
            await send(self._frame(query, AFN.QUERY_STORED, data, self.tp(slot, delay=0)))
        log.info("event=szy206_stored_query from=%d to=%d answered=%d", first, last, len(kept))

    async def _set_clock(self, query: Frame, send: Send) -> bool:
        if self.cfg.password is not None:
            expected = (int(self.cfg.password[0]), int(self.cfg.password[1:]))
            if query.pw is None or parse_pw(query.pw) != expected:
                log.warning("event=szy206_set_clock_refused reason=wrong_password")
                return False
        clock = parse_clock(query)
        self.station_time(clock_to_ms(clock, now_ms=self.clock(), utc_offset_h=self.cfg.utc_offset_hours), "set_clock")
        await send(self._clock_answer(query))
        return False  # an order carried out, not a query answered

    def confirm_time(self, confirm: Frame) -> None:
        """The station's time from a confirm's time label, if it has one.

        Raises:
            SZY206Error: the frame is no confirm.
        """
        tp = parse_confirm(confirm).tp
        if tp is None:
            return
        # A 5-byte label has no month: take the moment nearest to ours (the default, made for
        # reports that are at most a few minutes early, would read a station 11 min fast as a
        # month slow).
        station = label_to_ms(tp, now_ms=self.clock(), utc_offset_h=self.cfg.utc_offset_hours, ahead_ms=NEAREST_MS)
        self.station_time(station, "confirm")

    def station_time(self, station_ms: int, source: str) -> None:
        """The station says it is ``station_ms``: an offset when trusted, a log line otherwise."""
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
