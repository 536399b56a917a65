"""Builders of the frames meterlink sends or a test needs: station reports and keep-alives, the
centre's acknowledgement and queries; element builders for their bodies.

Every builder returns a :class:`~.frame.Frame` (``frame.encode`` makes the bytes) with its body
encoded; :func:`report_body` gives the :class:`~.body.Body` of a report for callers that keep it.
Times are the sender's local wall-clock time, passed in (this package reads no clock).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from .body import OBSERVED, STATION, Body, Element, encode_body
from .codes import ESC, ETX, REPORTS, STX, Function
from .errors import EncodeError
from .frame import Direction, Encoding, Frame
from .identifiers import GUIDE, STEP_ID, default_definition
from .values import definition_for, encode_number, encode_time


def station_element(station: bytes, station_type: int | None = None) -> Element:
    """F1F1: the station address, and the station type byte in reports."""
    tail = b"" if station_type is None else bytes((station_type,))
    return Element(STATION, None, station + tail)


def observed_element(when: datetime) -> Element:
    """F0F0: the observation time (to the minute)."""
    return Element(OBSERVED, None, encode_time(when, seconds=False))


def step_element(days: int = 0, hours: int = 0, minutes: int = 0) -> Element:
    """04 DRxnn: the time step of a series (day, hour, minute; at most one non-zero)."""
    if not (0 <= days <= 99 and 0 <= hours <= 99 and 0 <= minutes <= 99):
        raise EncodeError("time step fields are 0..99")
    return Element(STEP_ID, 0x18, bytes.fromhex(f"{days:02d}{hours:02d}{minutes:02d}"))


def number_element(ident: int, value: int | float | None, definition: int | None = None) -> Element:
    """A BCD element: ``ident`` (a byte, or FFxx), ``value`` (None: invalid, all FFH) with
    ``definition`` (default: the standard's type for ``ident``, else the smallest that fits).

    Raises:
        EncodeError: no definition can be found, or the value does not fit it.
    """
    if not 0 <= ident <= 0xFF and ident >> 8 != GUIDE:
        raise EncodeError(f"identifier {ident:X} is neither one byte nor FFxx")
    if definition is None:
        definition = default_definition(ident)
    if definition is None:
        if value is None:
            raise EncodeError(f"identifier {ident:X}: an invalid value needs a data definition")
        definition = definition_for(value, 0 if isinstance(value, int) else 3)
    return Element(ident, definition, encode_number(value, definition))


def series_element(ident: int, values: Sequence[int | float | None], definition: int) -> Element:
    """An element followed by several values of one definition (after a time step)."""
    return Element(ident, definition, b"".join(encode_number(v, definition) for v in values))


def report_body(
    *,
    serial: int,
    send_time: datetime,
    station: bytes,
    station_type: int,
    observed: datetime,
    elements: Sequence[Element],
) -> Body:
    """The body of a report: serial, send time, F1F1 with the type, F0F0, then ``elements``."""
    items = (station_element(station, station_type), observed_element(observed), *elements)
    return Body(serial, send_time, items)


def build_report(
    function: int,
    *,
    center: int,
    station: bytes,
    password: int,
    body: Body,
    end: int = ETX,
    encoding: Encoding = Encoding.HEX,
) -> Frame:
    """An uplink report (30H..36H) with ``body`` (see :func:`report_body`)."""
    if function not in REPORTS:
        raise EncodeError(f"function {function:02X}H is not a report")
    return _frame(function, Direction.UP, center, station, password, encode_body(body, encoding), end, encoding)


def build_keep_alive(*, center: int, station: bytes, password: int, serial: int, send_time: datetime) -> Frame:
    """2FH: link keep-alive (serial and send time only); the centre does not answer it."""
    body = encode_body(Body(serial, send_time))
    return _frame(Function.KEEP_ALIVE, Direction.UP, center, station, password, body, ETX)


def build_ack(report: Frame, serial: int, send_time: datetime, *, end: int = ESC) -> Frame:
    """The centre's acknowledgement of ``report``: a downlink frame of the same function carrying
    the report's serial number and the centre's send time. ``end``: ESC keeps the link online,
    EOT ends it, NAK asks for the report again."""
    body = encode_body(Body(serial, send_time), report.encoding)
    return _frame(
        report.function, Direction.DOWN, report.center, report.station, report.password, body, end, report.encoding
    )


def build_query(
    function: int,
    *,
    center: int,
    station: bytes,
    password: int,
    serial: int,
    send_time: datetime,
    elements: Sequence[Element] = (),
    prefix: bytes = b"",
) -> Frame:
    """A downlink query or command (37H real-time data, 3AH given elements, 4AH set clock to
    ``send_time``, 51H clock, 45H version, ...). ``elements`` for 3AH: identifiers with their
    definition and empty data."""
    body = encode_body(Body(serial, send_time, tuple(elements), prefix))
    return _frame(function, Direction.DOWN, center, station, password, body, 0x05)


def build_period_query(
    *,
    center: int,
    station: bytes,
    password: int,
    serial: int,
    send_time: datetime,
    start: datetime,
    end: datetime,
    step: Element,
    ident: int,
    definition: int,
) -> Frame:
    """38H: one element's values from ``start`` to ``end`` (to the hour) every ``step``."""
    prefix = encode_time(start)[:4] + encode_time(end)[:4]
    elements = (step, Element(ident, definition, b""))
    body = encode_body(Body(serial, send_time, elements, prefix))
    return _frame(Function.PERIOD_QUERY, Direction.DOWN, center, station, password, body, 0x05)


def build_answer(query: Frame, body: Body, *, end: int = ETX) -> Frame:
    """The station's answer to ``query``: an uplink frame of the same function."""
    return _frame(query.function, Direction.UP, query.center, query.station, query.password, encode_body(body), end)


def _frame(
    function: int,
    direction: Direction,
    center: int,
    station: bytes,
    password: int,
    body: bytes,
    end: int,
    encoding: Encoding = Encoding.HEX,
) -> Frame:
    return Frame(
        center=center,
        station=station,
        password=password,
        function=function,
        direction=direction,
        body=body,
        end=end,
        start=STX,
        encoding=encoding,
    )
