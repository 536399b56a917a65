"""The body of an SL651 frame <-> :class:`Body`: serial number, send time, elements.

Layout (SL651-2014 6.6; HEX/BCD)::

    serial 2 (HEX) | send time 6 (BCD YYMMDDHHMMSS) | element | element | ...

An element is ``identifier [definition] data``: most are one identifier byte, a data definition
byte and as many data bytes as it says. The exceptions, by identifier:

- ``F1F1`` station address, 5 bytes, then in reports and data answers (codes.TYPED) the station
  type byte; ``F0F0`` observation time, 5 bytes BCD; no definition byte.
- ``F2F2`` manual data (ASCII text) and ``F3F3`` picture: the rest of the body.
- ``F4`` and ``F5``..``FC`` (five-minute series): a definition byte, then always 12 or 24 bytes.
- ``FF xx``: a two-byte identifier (a province's own elements), then definition and data.
- After a time step ``04`` (functions 31H and 38H) the next element is a series: its data runs
  to the end of the body, as many values as fit.

Function-specific bodies: the version answer (45H) and the event counters (50H) follow the
station address with bytes of their own (``tail``); the centre's period query (38H) puts the
period's start and end (4 bytes each, YYMMDDHH) first (``prefix``); element queries (3AH, 41H,
43H down) list identifiers with their definition and no data. A packet after the first of a
multi-packet transfer is all ``tail``.

ASCII bodies hold the same in text: serial 4 hex digits, send time 12 digits, then
``MNEMONIC value`` pairs separated by spaces; :class:`Element` keeps the value's text as data.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple, cast

from .codes import TYPED
from .errors import BodyError, EncodeError
from .frame import Direction, Encoding, Frame
from .identifiers import (
    BY_CODE,
    ELEMENTS,
    GUIDE,
    MANUAL_ID,
    OBSERVED_ID,
    PICTURE_ID,
    SERIES_SIZES,
    STATION_ID,
    STEP_ID,
)
from .values import decode_send_time, decode_time, encode_time

STATION = 0xF1F1
OBSERVED = 0xF0F0
MANUAL = 0xF2F2
PICTURE = 0xF3F3
_LISTS = frozenset({0x3A, 0x41, 0x43})  # downlink bodies that list identifiers without data
_TAILS = frozenset({0x45, 0x50})  # uplink bodies with their own bytes after the address
# First bytes that _Reader.read may not take as "identifier, definition, data".
_SPECIAL_UP = frozenset({STATION_ID, OBSERVED_ID, MANUAL_ID, PICTURE_ID, GUIDE, STEP_ID, *SERIES_SIZES})
_ALL = frozenset(range(256))
_DOWN_SPECIAL = _LISTS | {0x38}  # downlink bodies _read leaves to _Reader
_ADDRESS_OR_TIME = frozenset({STATION_ID, OBSERVED_ID})


class Element(NamedTuple):
    """One element as sent: ``ident`` (one byte, or two: F0F0, F1F1, F2F2, F3F3, FFxx), the data
    definition byte (None where there is none) and the data bytes (ASCII: the value's text).
    A named tuple: a body holds many, and a tuple is built several times faster than a frozen
    dataclass."""

    ident: int
    definition: int | None
    data: bytes

    @property
    def id_text(self) -> str:
        return f"{self.ident:04X}" if self.ident > 0xFF else f"{self.ident:02X}"


class Body(NamedTuple):
    """A decoded body. ``serial`` and ``send_time`` are None only in a continuation packet. A
    named tuple, as :class:`Element`."""

    serial: int | None
    send_time: datetime | None
    elements: tuple[Element, ...] = ()
    prefix: bytes = b""
    tail: bytes = b""


def is_continuation(frame: Frame) -> bool:
    return frame.packet is not None and frame.packet[1] > 1


_UP, _ASCII = Direction.UP, Encoding.ASCII
# Element(...) and Body(...) run a Python-level __new__; tuple.__new__ builds them directly.
_element = cast(Callable[[type[Element], tuple[int, int | None, bytes]], Element], tuple.__new__)
_BodyFields = tuple[int, datetime, tuple[Element, ...], bytes, bytes]
_body = cast(Callable[[type[Body], _BodyFields], Body], tuple.__new__)


def parse_body(frame: Frame) -> Body:
    """The body of ``frame``.

    Raises:
        BodyError: the body does not have its function's layout.
    """
    packet = frame.packet
    if packet is not None and packet[1] > 1:
        return Body(None, None, tail=frame.body)
    if frame.encoding is _ASCII:
        return _parse_ascii(frame)
    data = frame.body
    if len(data) < 8:
        raise BodyError(f"body of {len(data)} bytes has no serial number and send time")
    send_time = decode_send_time(data, 2)
    up = frame.direction is _UP
    fn = frame.function
    if up or fn not in _DOWN_SPECIAL:
        prefix = b""
        elements, tail = _read(data, 8, fn, up)
    elif fn == 0x38:
        prefix = data[8:16]
        if len(prefix) < 8:
            raise BodyError("period query without its start and end times")
        elements, tail = _Reader(data, 16, fn, up).read([])
    else:
        prefix = b""
        elements, tail = _Reader(data, 8, fn, up).read([])
    fields = (data[0] << 8 | data[1], send_time, tuple(elements), prefix, tail)
    return _body(Body, fields)


def _read(data: bytes, at: int, function: int, up: bool) -> tuple[list[Element], bytes]:
    """The elements from ``at`` on, when neither a list of identifiers nor a period query: plain
    and FFxx elements, the station address and the observation time here (every report has
    them), the rest by :class:`_Reader` from the first other one on."""
    out: list[Element] = []
    append = out.append
    size = len(data)
    while at < size:
        first = data[at]
        if first not in _SPECIAL_UP and at + 1 < size:
            definition = data[at + 1]
            end = at + 2 + (definition >> 3)
            if end > size:
                raise BodyError(f"element {first:02X} runs past the end of the body ({end} > {size} bytes)")
            append(_element(Element, (first, definition, data[at + 2 : end])))
            at = end
        elif first in _ADDRESS_OR_TIME and at + 1 < size and data[at + 1] == first:
            station = first == STATION_ID
            end = at + 2 + (6 if station and up and function in TYPED else 5)
            if end > size:
                what = "station address" if station else "observation time"
                raise BodyError(f"{what} runs past the end of the body ({end} > {size} bytes)")
            append(_element(Element, (first << 8 | first, None, data[at + 2 : end])))
            at = end
            if station and up and function in _TAILS:
                return out, data[at:]
        elif first == GUIDE and at + 2 < size:
            ident = GUIDE << 8 | data[at + 1]
            definition = data[at + 2]
            end = at + 3 + (definition >> 3)
            if end > size:
                raise BodyError(f"element {ident:02X} runs past the end of the body ({end} > {size} bytes)")
            append(_element(Element, (ident, definition, data[at + 3 : end])))
            at = end
        else:
            return _Reader(data, at, function, up).read(out)
    return out, b""


class _Reader:
    """Reads the elements of one HEX body (see the module docstring), element by element."""

    def __init__(self, data: bytes, at: int, function: int, up: bool) -> None:
        self.data = data
        self.at = at
        self.function = function
        self.up = up
        self.lists = not up and function in _LISTS
        self.period = not up and function == 0x38  # the step has data, the element asked for none

    def take(self, count: int, what: str) -> bytes:
        end = self.at + count
        if end > len(self.data):
            raise BodyError(f"{what} runs past the end of the body ({end} > {len(self.data)} bytes)")
        out = self.data[self.at : end]
        self.at = end
        return out

    def read(self, out: list[Element]) -> tuple[list[Element], bytes]:
        """The elements from ``self.at`` on, after those in ``out``."""
        data = self.data
        size = len(data)
        series_next = False
        special = _SPECIAL_UP if not self.lists and not self.period else _ALL
        while self.at < size:
            at = self.at
            first = data[at]
            if first not in special and not series_next and at + 1 < size:
                # The common case inline: identifier, definition, data.
                definition = data[at + 1]
                end = at + 2 + (definition >> 3)
                if end > size:
                    raise BodyError(f"element {first:02X} runs past the end of the body ({end} > {size} bytes)")
                out.append(Element(first, definition, data[at + 2 : end]))
                self.at = end
                continue
            second = data[at + 1] if at + 1 < size else -1
            if first == second and first in (STATION_ID, OBSERVED_ID, MANUAL_ID, PICTURE_ID):
                self.at += 2
                out.append(self._paired(first))
                if first == STATION_ID and self.up and self.function in _TAILS:
                    return out, data[self.at :]
                continue
            element = self._element(first, series_next)
            out.append(element)
            series_next = element.ident == STEP_ID and self.function in (0x31, 0x38)
        return out, b""

    def _paired(self, first: int) -> Element:
        ident = first << 8 | first
        if first == STATION_ID:
            size = 6 if self.up and self.function in TYPED else 5
            return Element(ident, None, self.take(size, "station address"))
        if first == OBSERVED_ID:
            return Element(ident, None, self.take(5, "observation time"))
        return Element(ident, None, self.take(len(self.data) - self.at, ""))

    def _element(self, first: int, series: bool) -> Element:
        self.at += 1
        ident = first
        if first == GUIDE:
            ident = GUIDE << 8 | self.take(1, "identifier after FFH")[0]
        definition = self.take(1, f"definition of element {ident:02X}")[0]
        if self.lists or (self.period and ident != STEP_ID):
            return Element(ident, definition, b"")
        fixed = SERIES_SIZES.get(ident)
        if fixed is not None:
            count, width, _ = fixed
            return Element(ident, definition, self.take(count * width, f"element {ident:02X}"))
        size = definition >> 3
        if series and size:
            rest = len(self.data) - self.at
            return Element(ident, definition, self.take(rest - rest % size, ""))
        return Element(ident, definition, self.take(size, f"element {ident:02X}"))


def encode_body(body: Body, encoding: Encoding = Encoding.HEX) -> bytes:
    """The body bytes of ``body`` (ASCII: its text).

    Raises:
        EncodeError: a serial number or time out of range, an element ASCII cannot name.
    """
    if body.serial is None or body.send_time is None:
        return body.tail
    if not 0 <= body.serial <= 0xFFFF:
        raise EncodeError(f"serial number {body.serial} is outside 0..65535")
    if encoding is Encoding.ASCII:
        return _encode_ascii(body)
    parts = [body.serial.to_bytes(2, "big"), encode_time(body.send_time), body.prefix]
    for element in body.elements:
        ident = element.ident
        parts.append(ident.to_bytes(2 if ident > 0xFF else 1, "big"))
        if element.definition is not None:
            parts.append(bytes((element.definition,)))
        parts.append(element.data)
    parts.append(body.tail)
    return b"".join(parts)


def _encode_ascii(body: Body) -> bytes:
    assert body.serial is not None and body.send_time is not None
    words = [b"%04X%s" % (body.serial, body.send_time.strftime("%y%m%d%H%M%S").encode())]  # no space after
    for element in body.elements:
        ident = element.ident
        code = "ST" if ident == STATION else "TT" if ident == OBSERVED else None
        if code is None:
            info = ELEMENTS.get(ident)
            if info is None:
                raise EncodeError(f"element {element.id_text} has no ASCII mnemonic")
            code = info.code
        value = element.data
        if ident == STATION and len(value) == 11:
            value = value[:10] + b" " + value[10:]
        words.append(code.encode() + b" " + value + b" ")  # each element ends with a space
    return b"".join(words)


def _parse_ascii(frame: Frame) -> Body:
    text = frame.body
    if len(text) < 16:
        raise BodyError(f"ASCII body of {len(text)} characters has no serial number and send time")
    try:
        serial = int(text[:4].decode("ascii"), 16)
    except (UnicodeDecodeError, ValueError):
        raise BodyError(f"serial number {text[:4]!r} is not hex digits") from None
    if not text[4:16].isdigit():
        raise BodyError(f"send time {text[4:16]!r} is not digits")
    send_time = decode_time(bytes.fromhex(text[4:16].decode("ascii")))
    words = text[16:].split()
    elements: list[Element] = []
    at = 0
    while at < len(words):
        code = words[at].decode("ascii", "replace")
        if at + 1 >= len(words):
            raise BodyError(f"element {code} has no value")
        value = words[at + 1]
        at += 2
        if code == "ST":
            if at < len(words) and len(words[at]) == 1 and words[at].isalpha():
                value += words[at]
                at += 1
            elements.append(Element(STATION, None, value))
        elif code == "TT":
            elements.append(Element(OBSERVED, None, value))
        elif code in BY_CODE:
            elements.append(Element(BY_CODE[code], None, value))
        else:
            raise BodyError(f"unknown ASCII element {code!r}")
    return Body(serial, send_time, tuple(elements))
