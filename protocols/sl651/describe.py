"""A frame as the JSON object ``meterlink decode sl651`` prints and the centre simulator logs.

Keys: ``crc_ok``, ``encoding`` ("hex"/"ascii"), ``direction`` ("up"/"down"), ``center`` (int),
``station`` (10 hex digits), ``password`` (4 hex digits), ``function`` (2 upper-case hex digits),
``length`` (the body length field), ``start`` and ``end`` (2 hex digits), ``serial``,
``send_time`` ("YYYY-MM-DDTHH:MM:SS", the station's local time), ``observation_time`` (the first
F0F0, "YYYY-MM-DDTHH:MM", or null), ``station_type`` (2 hex digits or null) and ``elements``:
``id`` (2 or 4 hex digits), ``value``, ``raw`` (the digits as sent) and ``name`` where the
standard names the identifier. Values: a number with the decimals applied (negative where the
first byte is FFH), null when invalid (all FFH); status words and configuration entries as hex
digits; series (F4, F5..FC, the values after a time step) as arrays. Where they apply:
``packet`` (count, number), ``period`` (38H down), ``version`` (45H), ``events`` (50H),
``tail`` (bytes of a continuation packet).
"""

from __future__ import annotations

import re
from typing import Any

from .body import MANUAL, OBSERVED, PICTURE, STATION, Body, Element, parse_body
from .codes import FUNCTION_NAMES
from .errors import HeaderError
from .frame import Direction, Encoding, Frame, decode
from .identifiers import CONFIG_FUNCTIONS, SERIES_SIZES, STATUS_ID, element_name
from .values import decode_number, decode_time, split_definition

_HEX_VALUED = CONFIG_FUNCTIONS | {0x49}  # configuration entries and passwords: digits, not numbers
_NOT_HEX = re.compile(rb"[^0-9A-Fa-f]")


def describe(frame: Frame, body: Body | None = None) -> dict[str, Any]:
    """The JSON object of ``frame`` (its body parsed unless given).

    Raises:
        BodyError: the body does not have its function's layout.
    """
    body = parse_body(frame) if body is None else body
    elements = [_element(e, frame) for e in body.elements]
    view: dict[str, Any] = {
        "crc_ok": True,  # decode() refuses a frame whose CRC does not match
        "encoding": frame.encoding.value,
        "direction": "up" if frame.direction is Direction.UP else "down",
        "center": frame.center,
        "station": frame.station_hex,
        "password": f"{frame.password:04X}",
        "function": f"{frame.function:02X}",
        "function_name": FUNCTION_NAMES.get(frame.function),
        "length": frame.length,
        "start": f"{frame.start:02X}",
        "end": f"{frame.end:02X}",
        "serial": body.serial,
        "send_time": None if body.send_time is None else body.send_time.isoformat(timespec="seconds"),
        "observation_time": next((e["value"] for e in elements if e["id"] == "F0F0"), None),
        "station_type": _station_type(body.elements, frame.encoding),
        "elements": elements,
    }
    if frame.packet is not None:
        view["packet"] = {"count": frame.packet[0], "number": frame.packet[1]}
    _extras(view, frame, body)
    return view


def _station_type(elements: tuple[Element, ...], encoding: Encoding) -> str | None:
    for element in elements:
        if element.ident == STATION:
            size = 11 if encoding is Encoding.ASCII else 6
            return f"{element.data[-1]:02X}" if len(element.data) == size else None
    return None


def _extras(view: dict[str, Any], frame: Frame, body: Body) -> None:
    if body.prefix:
        view["period"] = {"from": _hour(body.prefix[:4]), "to": _hour(body.prefix[4:8])}
    if not body.tail:
        return
    if body.serial is None:
        view["tail"] = body.tail.hex().upper()
    elif frame.function == 0x45:
        size = body.tail[0]
        view["version"] = body.tail[1 : 1 + size].decode("ascii", "replace")
    elif frame.function == 0x50:
        tail = body.tail
        view["events"] = [tail[i] << 8 | tail[i + 1] for i in range(0, len(tail) - 1, 2)]


def _hour(data: bytes) -> str:
    return decode_time(data + b"\x00").isoformat(timespec="minutes")


def _minute(text: str) -> str:
    return decode_time(bytes.fromhex(text)).isoformat(timespec="minutes")


def _element(element: Element, frame: Frame) -> dict[str, Any]:
    ident = element.ident
    out: dict[str, Any] = {"id": element.id_text}
    ascii_frame = frame.encoding is Encoding.ASCII
    raw = element.data.decode("ascii", "replace") if ascii_frame else element.data.hex().upper()
    if ident == STATION:
        out["value"] = raw[:10]
    elif ident == OBSERVED:
        out["value"] = _minute(raw if ascii_frame else element.data.hex())
    elif ident == MANUAL:
        out["value"] = element.data.decode("gbk", "replace")
    elif ident == PICTURE:
        out["value"] = None
        out["bytes"] = len(element.data)
    elif ascii_frame:
        out["value"] = _ascii_number(raw)
    else:
        out["value"] = _hex_value(element, frame.function)
        if element.definition is not None:
            out["def"] = f"{element.definition:02X}"
    out["raw"] = raw
    name = element_name(ident, frame.function) if ident <= 0xFF else element_name(ident >> 8, 0)
    if name is not None and ident not in (0xFFFF,) and not (0xFF00 <= ident < 0xFFFF):
        out["name"] = name
    return out


def _hex_value(element: Element, function: int) -> Any:
    ident, data = element.ident, element.data
    if element.definition is None or (not data and element.definition):
        return None  # an identifier listed in a query: no value
    if function in _HEX_VALUED or ident == STATUS_ID:
        return data.hex().upper()
    fixed = SERIES_SIZES.get(ident)
    if fixed is not None:
        _, width, decimals = fixed
        return [_hex_number(data[i : i + width], decimals) for i in range(0, len(data), width)]
    size, decimals = split_definition(element.definition)
    if size and len(data) > size:  # a series after a time step
        return [decode_number(data[i : i + size], decimals) for i in range(0, len(data), size)]
    return decode_number(data, decimals)


def _hex_number(data: bytes, decimals: int) -> int | float | None:
    if data.count(0xFF) == len(data):
        return None
    value = int.from_bytes(data, "big")
    return value / 10**decimals if decimals else value


def _ascii_number(text: str) -> int | float | None:
    try:
        return int(text) if text.lstrip("-").isdigit() else float(text)
    except ValueError:
        return None


def decode_input(data: bytes | str) -> dict[str, Any]:
    """What ``meterlink decode sl651`` prints for ``data``: hex text (spaces allowed), or a
    file's bytes (a raw HEX frame, an ASCII frame as text, or hex text).

    Raises:
        SL651Error: the frame is broken; the subclass says how.
    """
    frame_bytes = _frame_bytes(data)
    return describe(decode(frame_bytes))


def _frame_bytes(data: bytes | str) -> bytes:
    if isinstance(data, bytes):
        if data[:2] == b"\x7e\x7e":
            return data
        if data[:1] == b"\x01":
            return data.rstrip(b"\r\n")  # an ASCII frame saved as a line of text
        data = data.decode("ascii", "replace")
    digits = "".join(data.split())
    if not digits:
        raise HeaderError("no frame given")
    if _NOT_HEX.search(digits.encode()):
        raise HeaderError("input is not hexadecimal")
    if len(digits) % 2:
        raise HeaderError(f"odd number of hex digits ({len(digits)})")
    return bytes.fromhex(digits)
