"""What the SL651 station answers when the centre asks, and what it makes of the centre's time.

- 37H real-time data: the newest value of every mapped element, observed now.
- 38H period data (start and end hour, a time step, one element): that element's value at every
  step of the period, from the reports kept in the store (invalid where none was kept); this is
  how a centre backfills.
- 4AH set clock (its send time is the time to set): the station's clock after the order; the
  centre's time becomes an offset when trusted.
- 51H clock: the station's clock (the answer's send time).

Every answer is an uplink frame of the query's function with a serial number of the station's
own. The service may not set the system clock: a trusted centre's time (``trust_center_time``,
from a 4AH whose password matches) sets an offset the agent applies to every timestamp it makes
(agent/clock.py, as the SZY206 station's time does); untrusted, a drift of more than a minute is
logged only. Other queries are logged and not answered.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta, timezone

from meterlink.protocols.sl651 import Body, Element, Frame, Function
from meterlink.protocols.sl651.messages import (
    build_answer,
    observed_element,
    series_element,
    station_element,
)
from meterlink.protocols.sl651.values import decode_time, encode_number, split_definition

from ..clock import offset_ms, set_offset
from ..outbox import Outbox
from ..store_sl651 import KeptReport, Sl651Book
from .sl651_config import Sl651UplinkConfig
from .sl651_data import ReportElements, element_value

log = logging.getLogger("meterlink.sl651")

Send = Callable[[Frame], Awaitable[None]]
MAX_VALUES = 720  # a 38H answer's series: a month of hours, a day of two-minute steps (the body holds 4095 bytes)
STEP_ID = 0x04


def local_time(ms: int, utc_offset_h: float) -> datetime:
    """The frames' local wall-clock time of ``ms`` (to the second)."""
    zone = timezone(timedelta(hours=utc_offset_h))
    return datetime.fromtimestamp(ms // 1000, zone).replace(tzinfo=None)


def ms_of(when: datetime, utc_offset_h: float) -> int:
    """``when``, a frame's local time, in ms since the epoch."""
    return int(when.replace(tzinfo=timezone(timedelta(hours=utc_offset_h))).timestamp() * 1000)


def step_ms(step: Element) -> int:
    """The length of a time step element (04, DDHHMM) in ms; 0 if it is none."""
    text = step.data.hex()
    if len(text) != 6 or not text.isdigit():
        return 0
    days, hours, minutes = int(text[0:2]), int(text[2:4]), int(text[4:6])
    return ((days * 24 + hours) * 60 + minutes) * 60_000


def values_at_steps(
    reports: Sequence[KeptReport], ident: int, first: int, last: int, step: int
) -> list[float | int | None]:
    """Element ``ident``'s value at first, first + step, ... last: the newest kept value in
    (t - step, t] for each step time t, None where none was kept."""
    seen = sorted((r.slot, e) for r in reports for e in r.elements if e.ident == ident)
    out: list[float | int | None] = []
    at = 0
    newest: tuple[int, Element] | None = None
    t = first
    while t <= last and len(out) < MAX_VALUES:
        while at < len(seen) and seen[at][0] <= t:
            newest = seen[at]
            at += 1
        out.append(element_value(newest[1]) if newest is not None and newest[0] > t - step else None)
        t += step
    return out


class Answers:
    """The station's side of the centre's queries.

    Args:
        cfg: the uplink's settings (addresses, zone, password, trust).
        outbox: the store, for kept reports and serial numbers.
        book: the SL651 tables (run through ``outbox.call``).
        data: the elements of real-time answers.
        clock: the agent's time, ms since the epoch.
    """

    def __init__(
        self,
        cfg: Sl651UplinkConfig,
        outbox: Outbox,
        book: Sl651Book,
        data: ReportElements,
        clock: Callable[[], int],
    ) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.book = book
        self.data = data
        self.clock = clock

    def local(self, ms: int) -> datetime:
        return local_time(ms, self.cfg.utc_offset_hours)

    async def answer(self, query: Frame, body: Body, send: Send) -> bool:
        """Answer one query or carry out one order; True when answered.

        Raises:
            ConnectionError: the answer could not be sent.
        """
        function = query.function
        station = self.cfg.station_bytes
        if function == Function.REALTIME_QUERY:
            now = self.clock()
            items = (station_element(station, self.cfg.type_byte), observed_element(self.local(now)))
            elements: tuple[Element, ...] = (*items, *self.data.elements(None))
        elif function == Function.PERIOD_QUERY:
            found = await self._period(body)
            if found is None:
                return False
            elements = found
        elif function == Function.SET_CLOCK:
            self._set_clock(query, body)
            elements = (station_element(station),)
        elif function == Function.CLOCK_QUERY:
            elements = (station_element(station),)
        else:
            log.info("event=sl651_unsupported function=%02X", function)
            return False
        serial = await self.outbox.call(self.book.take_serial)
        await send(build_answer(query, Body(serial, self.local(self.clock()), elements)))
        return True

    async def _period(self, body: Body) -> tuple[Element, ...] | None:
        """The elements of a 38H answer: address, start, step, then the asked element's series."""
        if len(body.prefix) != 8 or len(body.elements) != 2 or body.elements[0].ident != STEP_ID:
            log.warning("event=sl651_period_query_unread elements=%d", len(body.elements))
            return None
        step, asked = body.elements
        zone = self.cfg.utc_offset_hours
        try:
            start = decode_time(body.prefix[:4] + b"\x00")
            end = decode_time(body.prefix[4:] + b"\x00")
        except ValueError as exc:
            log.warning("event=sl651_period_query_unread error=%r", str(exc))
            return None
        every = step_ms(step)
        first, last = ms_of(start, zone), ms_of(end, zone)
        if every <= 0 or last < first:
            log.warning("event=sl651_period_query_unread step=%s", step.data.hex())
            return None
        kept = await self.outbox.call(self.book.between, first - every, last)
        values = values_at_steps(kept, asked.ident, first, last, every)
        definition = asked.definition or self._definition_of(asked.ident)
        if definition is None:
            log.warning("event=sl651_period_query_unknown_element id=%X", asked.ident)
            return None
        log.info(
            "event=sl651_period_query id=%X from=%d to=%d step_ms=%d values=%d kept=%d",
            asked.ident,
            first,
            last,
            every,
            len(values),
            sum(v is not None for v in values),
        )
        series = series_element(asked.ident, [_fits(v, definition) for v in values], definition)
        items = (station_element(self.cfg.station_bytes, self.cfg.type_byte), observed_element(start))
        return (*items, step, series)

    def _definition_of(self, ident: int) -> int | None:
        for mapped in self.cfg.meters.values():
            for element in (mapped.flow, mapped.volume):
                if element is not None and element.ident == ident:
                    return element.definition_byte
        return None

    # -- the centre's time ------------------------------------------------------------------------

    def _set_clock(self, query: Frame, body: Body) -> None:
        if body.send_time is None:
            return
        if query.password != self.cfg.password_word:
            log.warning("event=sl651_set_clock_refused reason=wrong_password")
            return
        self.center_time(ms_of(body.send_time, self.cfg.utc_offset_hours), "set_clock")

    def center_time(self, center_ms: int, source: str) -> None:
        """The centre says it is ``center_ms``: an offset when trusted, a log line otherwise."""
        drift = center_ms - self.clock()
        if not self.cfg.trust_center_time:
            if abs(drift) > 60_000:
                log.warning("event=sl651_center_time_differs source=%s drift_ms=%d trusted=no", source, drift)
            return
        if abs(drift) < 1000:
            return  # the frame's time has one-second resolution
        new = offset_ms() + drift
        set_offset(new)
        log.warning("event=clock_offset_set source=sl651_%s drift_ms=%d offset_ms=%d", source, drift, new)


def _fits(value: float | int | None, definition: int) -> float | int | None:
    """``value`` if ``definition`` can hold it, else None (sent as invalid)."""
    if value is None:
        return None
    try:
        encode_number(value, definition)
    except ValueError:
        return None
    _, decimals = split_definition(definition)
    return round(value, decimals)
