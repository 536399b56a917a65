"""A JSON view of a frame, for ``meterlink decode szy206 HEX`` and for logs.

Shape (every value is a JSON type)::

    {"crc_ok": true, "length": L, "direction": "up" | "down", "div": bool, "divs": int | null,
     "fcb": int, "function": int, "address": {"division": "530381", "station": 13},
     "afn": "C0", "data": {...}, "tp": {"second", "minute", "hour", "day", "delay_min"
                                         [, "month", "year"]} | null}

``data`` of a flow report (C0H, 81H, 82H, and the B0H and B1H answers) is ``{"meters": [{"flow": 5.9,
"volume": 106182}, ...], "alarm": int, "status": int}``. Values are numbers or null: null for an
absent (AAH) value and for an invalid (FFH) one, which the meter's ``"invalid"`` list also names
(``{"flow": null, "volume": 106182, "invalid": ["flow"]}``). A flow whose SL/T 427 unit bits are
unambiguous adds ``"flow_unit": "m3/h"`` or ``"m3/s"``. Other element types give ``"values"``, with
``"invalid"`` listing the positions of the invalid ones. Other AFNs
get the fields messages.py and settings.py can read plus ``hex`` (the raw data); when the data does
not read as its AFN says, only ``hex``. A PW, when present, is shown as ``data["pw"]`` (hex).
"""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import Any

from .elements import (
    ELEMENTS,
    FLOW_TYPE,
    INVALID,
    AlarmBit,
    Count,
    Meter,
    Value,
    bit_names,
    decode_flow_data,
    decode_values,
)
from .errors import SZY206Error
from .fields import Address, Clock, TimeLabel, address_from_bytes, clock_from_bytes
from .frame import Frame, decode, frame_length
from .layout import AFN, PICTURE_AFNS, REPORT_AFNS
from .messages import LinkKind, parse_picture, parse_stored_query
from .settings import parse_kinds

JSON = dict[str, Any]
_CONFIRMED_AFNS = REPORT_AFNS | {AFN.PICTURE_REPORT, AFN.VOLTAGE_REPORT}
_LINK_NAMES = {LinkKind.LOGIN: "login", LinkKind.LOGOUT: "logout", LinkKind.KEEPALIVE: "keep-alive"}


def _number(value: Value | Count) -> float | int | None:
    return None if value is INVALID else value


# Flow BYTE5 high nibbles whose SL/T 427 unit bits are certain. 0 and F are also the SZY206-2016
# plus and minus signs, which name no unit, so they get no "flow_unit".
_FLOW_UNIT_NIBBLES = {0x3: "m3/h", 0xC: "m3/s"}


def _meter(meter: Meter, raw_flow: bytes) -> JSON:
    """One flow/volume pair: numbers or null, with the invalid ones (FFH) named apart."""
    out: JSON = {"flow": _number(meter.flow), "volume": _number(meter.volume)}
    unit = _FLOW_UNIT_NIBBLES.get(raw_flow[4] >> 4)
    if unit is not None and out["flow"] is not None:
        out["flow_unit"] = unit
    invalid = [name for name, value in (("flow", meter.flow), ("volume", meter.volume)) if value is INVALID]
    if invalid:
        out["invalid"] = invalid
    return out


def _flow_data(data: bytes) -> JSON:
    meters, alarm, status = decode_flow_data(data)
    return {
        "meters": [_meter(m, data[10 * k : 10 * k + 5]) for k, m in enumerate(meters)],
        "alarm": alarm,
        "status": status,
    }


def _tp(tp: TimeLabel | None) -> JSON | None:
    if tp is None:
        return None
    out: JSON = {"second": tp.second, "minute": tp.minute, "hour": tp.hour, "day": tp.day, "delay_min": tp.delay_min}
    if tp.month is not None:
        out["month"], out["year"] = tp.month, tp.year
    return out


def _clock(clock: Clock) -> JSON:
    return {
        "year": clock.year,
        "month": clock.month,
        "day": clock.day,
        "hour": clock.hour,
        "minute": clock.minute,
        "second": clock.second,
        "weekday": clock.weekday,
    }


def _address(address: Address) -> JSON:
    return {"division": address.division, "station": address.station}


def _realtime(frame: Frame) -> JSON | None:
    if frame.function == FLOW_TYPE:
        return _flow_data(frame.data)
    if frame.function in ELEMENTS:
        values, alarm, status = decode_values(frame.function, frame.data)
        element = ELEMENTS[frame.function]
        out: JSON = {"element": element.name, "unit": element.unit, "values": [_number(v) for v in values]}
        invalid = [i for i, v in enumerate(values) if v is INVALID]
        if invalid:
            out["invalid"] = invalid  # positions in "values"
        return out | {"alarm": alarm, "status": status, "hex": frame.data.hex().upper()}
    return None


def _link(frame: Frame) -> JSON:
    out: JSON = {}
    if len(frame.data) == 1:
        code = frame.data[0]
        out["code"] = f"{code:02X}"
        if code in _LINK_NAMES:
            out["link"] = _LINK_NAMES[LinkKind(code)]
    return out


def _confirm(frame: Frame) -> JSON | None:
    if len(frame.data) > 1:
        return None
    return {"work_mode": frame.data[0] if frame.data else None}


def _kinds(frame: Frame) -> JSON:
    kinds = parse_kinds(frame)
    out: JSON = {"kinds": kinds.kinds, "kind_bits": [b for b in range(16) if kinds.kinds >> b & 1]}
    if frame.afn in (AFN.SET_REPORT_KINDS, AFN.READ_REPORT_KINDS):
        out["intervals_min"] = list(kinds.intervals_min)
    return out


def _stored_query(frame: Frame) -> JSON:
    start, end = parse_stored_query(frame)
    return {"start": _clock(start), "end": _clock(end)}


def _picture(frame: Frame) -> JSON:
    return {"image_bytes": len(parse_picture(frame))}


def _state(frame: Frame) -> JSON | None:
    if len(frame.data) != 4:
        return None
    alarm, status = frame.data[0] | frame.data[1] << 8, frame.data[2] | frame.data[3] << 8
    return {"alarm": alarm, "alarms": bit_names(alarm, AlarmBit), "status": status}


def _clock_data(frame: Frame) -> JSON:
    return {"clock": _clock(clock_from_bytes(frame.data))}


def _picture_number(frame: Frame) -> JSON:
    return {"picture": frame.data[0]}


def _new_address(frame: Frame) -> JSON:
    return {"new_address": _address(address_from_bytes(frame.data))}


def _work_mode(frame: Frame) -> JSON:
    return {"work_mode": frame.data[0]}


_KINDS_AFNS = (AFN.SET_QUERY_KINDS, AFN.SET_REPORT_KINDS, AFN.READ_QUERY_KINDS, AFN.READ_REPORT_KINDS)


def _handler(frame: Frame) -> Callable[[Frame], JSON | None] | None:
    """Which reader fits this frame, if any."""
    afn, up, size = frame.afn, frame.up, len(frame.data)
    if afn in REPORT_AFNS or afn == AFN.QUERY_REALTIME or (afn == AFN.QUERY_STORED and up):
        # A B1H answer carries one stored slot laid out as a C0H report.
        if up:
            return _realtime if size else None
        return _confirm if afn in _CONFIRMED_AFNS else None
    if afn in _CONFIRMED_AFNS and not up:
        return _confirm
    if afn == AFN.LINK:
        return _link
    if afn in (AFN.SET_CLOCK, AFN.READ_CLOCK):
        return _clock_data if size == 6 else None
    if afn in _KINDS_AFNS:
        return _kinds if size else None
    if afn == AFN.QUERY_STORED:
        return _stored_query
    if afn in PICTURE_AFNS:
        return _picture if up else (_picture_number if size == 1 else None)
    if afn in (AFN.SET_ADDRESS, AFN.READ_ADDRESS):
        return _new_address if size == 5 else None
    if afn in (AFN.SET_WORK_MODE, AFN.READ_WORK_MODE):
        return _work_mode if size == 1 else None
    if afn == AFN.READ_STATUS and up:
        return _state
    return None


def _data(frame: Frame) -> JSON:
    handler = _handler(frame)
    out: JSON | None = None
    if handler is not None:
        try:
            out = handler(frame)
        except SZY206Error:  # the data does not read as its AFN says: show the bytes only
            out = None
    if out is None:
        out = {}
    if "meters" not in out:
        out.setdefault("hex", frame.data.hex().upper())
    if frame.pw is not None:
        out["pw"] = frame.pw.hex().upper()
    return out


def describe(frame: Frame, *, length: int | None = None) -> JSON:
    """The JSON view of ``frame``. ``length`` is L as received (default: L as encode() writes it)."""
    return {
        "crc_ok": True,
        "length": frame_length(frame) if length is None else length,
        "direction": "up" if frame.up else "down",
        "div": frame.div,
        "divs": frame.divs,
        "fcb": frame.fcb,
        "function": frame.function,
        "address": _address(frame.address),
        "afn": f"{frame.afn:02X}",
        "data": _data(frame),
        "tp": _tp(frame.tp),
    }


def _from_hex(text: str) -> bytes:
    digits = "".join(text.split())
    try:
        return bytes.fromhex(digits)
    except ValueError:
        # A digit too few or too many is a likelier slip than a stray letter: say which it was.
        if len(digits) % 2 and all(c in string.hexdigits for c in digits):
            raise SZY206Error(f"odd number of hex digits ({len(digits)})") from None
        raise SZY206Error("input is not hexadecimal text") from None


def decode_report(data: bytes | bytearray | str, *, tp_len: int | None = None, pw: bool | None = None) -> JSON:
    """Decode one frame (bytes, or hex text with any whitespace) and describe it.

    Raises the codec's errors unchanged, so the caller can print ``type(exc).reason`` - e.g.
    "wrong check (CRC)", "wrong length", "missing end byte 16H" - and the message.
    """
    raw = _from_hex(data) if isinstance(data, str) else bytes(data)
    frame = decode(raw, tp_len=tp_len, pw=pw)
    return describe(frame, length=raw[1])
