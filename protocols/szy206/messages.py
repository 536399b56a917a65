"""Typed builders and parsers for the messages meterlink exchanges (notes sections 1, 3, 4).

Each ``build_*`` returns a :class:`Frame` (encode it with :func:`frame.encode`); each ``parse_*``
takes a decoded Frame and raises :class:`UnsupportedError` for a frame of another kind or
:class:`DataError` for a data area of the wrong shape.

Choices where the sources leave room (notes section 8):

- Link (02H): the terminal sends F0H login, F1H logout, F2H keep-alive with type code 0. The
  centre's reply copies C with DIR cleared, the address and AFN; its data is 00H by default or an
  echo of the request code (``echo=True``). Parsing a reply accepts 00H, an echo, or no data.
- Confirm of a self-report (C0H, 81H, 82H, 83H, 84H): same AFN, DIR cleared, FCB and DIV/DIVS
  echoed; the type code is echoed by default (as in the notes' constructed confirm, vector 5) or
  given (0 = "send/confirm, command"); data is one work-mode byte (00H compatible .. 03H
  maintenance) or none; Tp optional (the SL/T 427 terminal sets its clock from it). Parsing
  accepts all of these.
- B1H stored-data query: two 6-byte BCD stamps, start then end (second, minute, hour, day, month,
  year, low byte first like every other field); the answer is kept raw.
- Picture (61H up, 83H): 2-byte image byte count (low byte first) then the image chunk; a query
  (61H down) carries one picture-number byte.

PW, clock and report-kinds messages live in settings.py.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass
from enum import IntEnum

from .elements import (
    ELEMENTS,
    FLOW_TYPE,
    AlarmBit,
    Count,
    FlowUnit,
    Meter,
    StatusBit,
    Value,
    WorkMode,
    decode_flow_data,
    decode_values,
    encode_flow_data,
    encode_values,
    work_mode,
)
from .errors import DataError, EncodeError, UnsupportedError
from .fields import Address, Clock, TimeLabel, stamp_from_bytes
from .frame import PICTURE_UNIT, Direction, Frame, make_frame
from .layout import AFN, PICTURE_AFNS, REPORT_AFNS

_UP, _DOWN = Direction.UP, Direction.DOWN
_REALTIME_AFNS = REPORT_AFNS | {AFN.QUERY_REALTIME}


class LinkKind(IntEnum):
    LOGIN = 0xF0
    LOGOUT = 0xF1
    KEEPALIVE = 0xF2


def expect(frame: Frame, afns: Set[int], up: bool | None, what: str) -> None:
    """Raise UnsupportedError unless ``frame`` has one of ``afns`` (and direction ``up``)."""
    if frame.afn not in afns or (up is not None and frame.up != up):
        side = "" if up is None else (" uplink" if up else " downlink")
        raise UnsupportedError(f"not a{side} {what} frame: AFN {frame.afn:02X}H, DIR {int(frame.direction)}")


# -- link (02H) --------------------------------------------------------------------------------


def build_link(address: Address, kind: LinkKind, *, fcb: int = 3, tp: TimeLabel | None = None) -> Frame:
    return Frame(direction=_UP, fcb=fcb, address=address, afn=AFN.LINK, data=bytes((kind,)), tp=tp)


def parse_link(frame: Frame) -> LinkKind:
    expect(frame, {AFN.LINK}, True, "link")
    if len(frame.data) != 1 or frame.data[0] not in (0xF0, 0xF1, 0xF2):
        raise DataError(f"link data must be F0H, F1H or F2H, got {frame.data.hex().upper()}")
    return LinkKind(frame.data[0])


def build_link_reply(request: Frame, *, echo: bool = False, tp: TimeLabel | None = None) -> Frame:
    data = request.data[:1] if echo else b"\x00"
    return make_frame(
        _DOWN, request.div, request.divs, request.fcb, request.function, request.address, AFN.LINK, data, None, tp
    )


def parse_link_reply(frame: Frame) -> int | None:
    """The reply's data byte (00H or the echoed code), None when it has none."""
    expect(frame, {AFN.LINK}, False, "link reply")
    if len(frame.data) > 1:
        raise DataError(f"link reply data is at most 1 byte, got {len(frame.data)}")
    return frame.data[0] if frame.data else None


# -- real-time data: C0H report, 81H alarm report, 82H manual entry, B0H answer ------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowReport:
    """Type-3 data area: (flow, volume) per meter, alarm and status words, and the Tp."""

    meters: tuple[Meter, ...]
    alarm: int = 0
    status: int = 0
    tp: TimeLabel | None = None

    @property
    def alarms(self) -> AlarmBit:
        return AlarmBit(self.alarm)

    @property
    def status_bits(self) -> StatusBit:
        return StatusBit(self.status & ~0b11)

    @property
    def work_mode(self) -> WorkMode:
        return work_mode(self.status)


def build_flow_report(
    address: Address,
    meters: Sequence[tuple[Value, Count]],
    *,
    alarm: int = 0,
    status: int = 0,
    tp: TimeLabel | None = None,
    fcb: int = 3,
    afn: int = AFN.REPORT,
    unit: FlowUnit | None = None,
) -> Frame:
    """A C0H report (or 81H/82H, or the B0H answer with ``afn=AFN.QUERY_REALTIME``)."""
    if afn not in _REALTIME_AFNS:
        raise EncodeError(f"AFN {afn:02X}H does not carry real-time data")
    data = encode_flow_data(meters, alarm, status, unit=unit)
    return Frame(direction=_UP, fcb=fcb, function=FLOW_TYPE, address=address, afn=afn, data=data, tp=tp)


_REPORT_SETTERS = tuple(FlowReport.__dict__[name].__set__ for name in ("meters", "alarm", "status", "tp"))


def parse_flow_report(frame: Frame) -> FlowReport:
    if frame.afn not in _REALTIME_AFNS or frame.direction != _UP:
        expect(frame, _REALTIME_AFNS, True, "real-time data")
    if frame.function != FLOW_TYPE:
        raise UnsupportedError(f"type code {frame.function} is not flow/volume (3)")
    meters, alarm, status = decode_flow_data(frame.data)
    # Decoded values are valid by construction: skip the dataclass __init__ (decode hot path).
    report = object.__new__(FlowReport)
    set_meters, set_alarm, set_status, set_tp = _REPORT_SETTERS
    set_meters(report, tuple(meters))
    set_alarm(report, alarm)
    set_status(report, status)
    set_tp(report, frame.tp)
    return report


@dataclass(frozen=True, slots=True, kw_only=True)
class Readings:
    """Real-time data of a single-value element type (level, velocity, pressure, ...)."""

    function: int
    values: tuple[Value, ...]
    alarm: int = 0
    status: int = 0
    tp: TimeLabel | None = None


def build_readings(
    address: Address,
    function: int,
    values: Sequence[Value],
    *,
    alarm: int = 0,
    status: int = 0,
    tp: TimeLabel | None = None,
    fcb: int = 3,
    afn: int = AFN.REPORT,
) -> Frame:
    if afn not in _REALTIME_AFNS:
        raise EncodeError(f"AFN {afn:02X}H does not carry real-time data")
    data = encode_values(function, values, alarm, status)
    return Frame(direction=_UP, fcb=fcb, function=function, address=address, afn=afn, data=data, tp=tp)


def parse_readings(frame: Frame) -> Readings:
    expect(frame, _REALTIME_AFNS, True, "real-time data")
    if frame.function not in ELEMENTS:
        raise UnsupportedError(f"type code {frame.function} has no single-value element layout")
    values, alarm, status = decode_values(frame.function, frame.data)
    return Readings(function=frame.function, values=tuple(values), alarm=alarm, status=status, tp=frame.tp)


# -- confirm of a self-report -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Confirm:
    work_mode: int | None
    tp: TimeLabel | None


_CONFIRM_AFNS = REPORT_AFNS | {AFN.PICTURE_REPORT, AFN.VOLTAGE_REPORT}


def build_confirm(
    report: Frame,
    *,
    work_mode: int | None = 0,
    tp: TimeLabel | None = None,
    function: int | None = None,
) -> Frame:
    """The centre's confirm of ``report``: data = the work-mode byte (None: no data)."""
    if work_mode is None:
        data = b""
    elif 0 <= work_mode <= 3:
        data = bytes((work_mode,))
    else:
        raise EncodeError(f"work mode must be 0..3, got {work_mode}")
    if function is None:
        function = report.function
    elif not 0 <= function <= 15:
        raise EncodeError(f"function (type code) must be 0..15, got {function}")
    return make_frame(_DOWN, report.div, report.divs, report.fcb, function, report.address, report.afn, data, None, tp)


def parse_confirm(frame: Frame) -> Confirm:
    expect(frame, _CONFIRM_AFNS, False, "confirm")
    if len(frame.data) > 1:
        raise DataError(f"confirm data is at most 1 byte, got {len(frame.data)}")
    return Confirm(work_mode=frame.data[0] if frame.data else None, tp=frame.tp)


# -- queries: B0H real-time, B1H stored data -----------------------------------------------------


def build_realtime_query(
    address: Address, function: int = FLOW_TYPE, *, fcb: int = 3, tp: TimeLabel | None = None
) -> Frame:
    return Frame(direction=_DOWN, fcb=fcb, function=function, address=address, afn=AFN.QUERY_REALTIME, tp=tp)


def build_stored_query(
    address: Address,
    start: Clock,
    end: Clock,
    *,
    function: int = FLOW_TYPE,
    fcb: int = 3,
    tp: TimeLabel | None = None,
) -> Frame:
    data = start.stamp_bytes() + end.stamp_bytes()
    return Frame(direction=_DOWN, fcb=fcb, function=function, address=address, afn=AFN.QUERY_STORED, data=data, tp=tp)


def parse_stored_query(frame: Frame) -> tuple[Clock, Clock]:
    expect(frame, {AFN.QUERY_STORED}, False, "stored-data query")
    if len(frame.data) != 12:
        raise DataError(f"B1H query data is 12 bytes (two stamps), got {len(frame.data)}")
    return stamp_from_bytes(frame.data[:6]), stamp_from_bytes(frame.data[6:])


# -- pictures: 61H, 83H --------------------------------------------------------------------------


def build_picture_query(address: Address, picture: int = 1, *, fcb: int = 3) -> Frame:
    if not 0 <= picture <= 255:
        raise EncodeError(f"picture number must be 0..255, got {picture}")
    return Frame(direction=_DOWN, fcb=fcb, address=address, afn=AFN.PICTURE, data=bytes((picture,)))


def build_picture_frames(
    address: Address, image: bytes, *, afn: int = AFN.PICTURE, fcb: int = 3, chunk: int = PICTURE_UNIT
) -> list[Frame]:
    """An image as uplink picture frames: DIV set and DIVS counting down to 1 when it takes more
    than one frame."""
    if afn not in PICTURE_AFNS:
        raise EncodeError(f"AFN {afn:02X}H is not a picture AFN")
    if not 0 < chunk <= 0xFFFF:
        raise EncodeError(f"chunk must be 1..65535 bytes, got {chunk}")
    parts = [image[i : i + chunk] for i in range(0, len(image), chunk)] or [b""]
    if len(parts) > 255:
        raise EncodeError(f"an image of {len(image)} bytes needs {len(parts)} frames, at most 255")
    many = len(parts) > 1
    return [
        Frame(
            direction=_UP,
            div=many,
            divs=len(parts) - i if many else None,
            fcb=fcb,
            address=address,
            afn=afn,
            data=len(part).to_bytes(2, "little") + part,
        )
        for i, part in enumerate(parts)
    ]


def parse_picture(frame: Frame) -> bytes:
    """The image bytes of one uplink picture frame."""
    expect(frame, PICTURE_AFNS, True, "picture")
    data = frame.data
    if len(data) < 2 or data[0] | (data[1] << 8) != len(data) - 2:
        raise DataError("picture data is a 2-byte count then that many image bytes")
    return data[2:]
