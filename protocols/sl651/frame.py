"""One SL651-2014 frame <-> :class:`Frame` (SL651-2014 section 6.3 and 6.4), both encodings.

HEX/BCD frame (byte widths; a downlink frame swaps the two addresses)::

    7E 7E | centre 1 | station 5 | password 2 | function 1 | dir+len 2 | STX/SYN 1 |
      [packets 3, after SYN] | body len-3 or len | end char 1 | CRC 2 (high byte first)

``dir+len``: the high four bits 0000 (up, station to centre) or 1000 (down), the low twelve the
body length, counted from the packet word (after SYN) or the body (after STX) to the end
character. The packet word: high twelve bits the packet count, low twelve this packet's number
(from 1). ASCII frames have the same fields as hex digits (the body as text), between SOH and
the end character, and the CRC as four hex digits::

    SOH | centre 2 | station 10 | password 4 | function 2 | dir+len 4 | STX/SYN | [packets 6] |
      body len-6 or len | end char | CRC 4

The CRC (crc.py) covers everything from the first start character to the end character.

Decoding checks, in this order: start characters, length (the length field against the bytes
there are), end character, CRC; each failure is its own error class (errors.py). The body is not
looked at: body.py reads it.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from typing import NamedTuple, cast

from .codes import END_CHARS, HEX_START, SOH, START_CHARS, STX, SYN
from .crc import crc16
from .errors import ChecksumError, EncodeError, EndCharError, HeaderError, LengthError, StartError

HEX_HEADER = 14  # 7E7E through the start character
HEX_OVERHEAD = HEX_HEADER + 3  # + end character and CRC
ASCII_HEADER = 24  # SOH through the start character
ASCII_OVERHEAD = ASCII_HEADER + 5
MAX_LENGTH = 0xFFF  # twelve bits


class Direction(enum.IntEnum):
    """The high four bits of the dir+len word."""

    UP = 0x0  # station to centre
    DOWN = 0x8  # centre to station


class Encoding(enum.Enum):
    HEX = "hex"
    ASCII = "ascii"


class Frame(NamedTuple):
    """One frame. ``station`` is the 5-byte address as sent; ``body`` the body bytes after the
    start character and packet word (ASCII frames: the body text, as bytes); ``packet`` is
    (count, number) after SYN, else None. A named tuple: immutable like a frozen dataclass, and
    built by the decoder in a fifth of the time (``_frame``)."""

    center: int
    station: bytes
    password: int
    function: int
    direction: Direction
    body: bytes
    end: int
    start: int = STX
    packet: tuple[int, int] | None = None
    encoding: Encoding = Encoding.HEX

    @property
    def length(self) -> int:
        """The body length field: the body, and the packet word after SYN."""
        word = 0 if self.packet is None else (3 if self.encoding is Encoding.HEX else 6)
        return len(self.body) + word

    @property
    def station_hex(self) -> str:
        return self.station.hex().upper()


def encode(frame: Frame) -> bytes:
    """The wire bytes of ``frame``, CRC included.

    Raises:
        EncodeError: a field out of range, a body too long, a start or end character that is
            none of the standard's.
    """
    center, station, password, function, direction, body, end, start, packet, encoding = frame
    # The common frame (STX, fields in range) passes one expression; anything else, _check.
    if not (
        start == STX
        and packet is None
        and 0 <= center <= 0xFF
        and 0 <= password <= 0xFFFF
        and 0 <= function <= 0xFF
        and len(station) == 5
        and end in END_CHARS
        and len(body) <= MAX_LENGTH
    ):
        _check(frame)
    if encoding is Encoding.ASCII:
        return _encode_ascii(frame)
    if packet is None:
        word, packed = direction << 12 | len(body), b""
    else:
        word, packed = direction << 12 | (len(body) + 3), (packet[0] << 12 | packet[1]).to_bytes(3, "big")
    if direction is Direction.DOWN:
        head = _HEAD_DOWN(HEX_START, station, center, password, function, word, start)
    else:
        head = _HEAD_UP(HEX_START, center, station, password, function, word, start)
    data = b"".join((head, packed, body, _BYTE[end]))
    return data + _WORD(crc16(data))


# 7E7E, the two addresses (up: centre first), password, function, dir+len, start character.
_HEAD_UP = struct.Struct(">2sB5sHBHB").pack
_HEAD_DOWN = struct.Struct(">2s5sBHBHB").pack
_WORD = struct.Struct(">H").pack  # the CRC, high byte first
_BYTE = tuple(bytes((value,)) for value in range(256))


def _encode_ascii(frame: Frame) -> bytes:
    ends = b"%02X" % frame.center
    station = frame.station.hex().upper().encode()
    addresses = station + ends if frame.direction is Direction.DOWN else ends + station
    packet = b"" if frame.packet is None else b"%06X" % (frame.packet[0] << 12 | frame.packet[1])
    data = b"%c%s%04X%02X%04X%c%s%s%c" % (
        SOH,
        addresses,
        frame.password,
        frame.function,
        frame.direction << 12 | frame.length,
        frame.start,
        packet,
        frame.body,
        frame.end,
    )
    return data + b"%04X" % crc16(data)


def _check(frame: Frame) -> None:
    if not 0 <= frame.center <= 0xFF:
        raise EncodeError(f"centre address {frame.center} is outside 0..255")
    if len(frame.station) != 5:
        raise EncodeError(f"station address must be 5 bytes, got {len(frame.station)}")
    if not 0 <= frame.password <= 0xFFFF or not 0 <= frame.function <= 0xFF:
        raise EncodeError("password or function code out of range")
    if frame.start not in START_CHARS or frame.end not in END_CHARS:
        raise EncodeError(f"start {frame.start:02X}H / end {frame.end:02X}H is not a control character")
    if (frame.start == SYN) != (frame.packet is not None):
        raise EncodeError("a packet count and number go with SYN, and only with it")
    if frame.packet is not None and not (1 <= frame.packet[1] <= frame.packet[0] <= 0xFFF):
        raise EncodeError(f"packet {frame.packet[1]} of {frame.packet[0]} is impossible")
    if frame.length > MAX_LENGTH:
        raise EncodeError(f"body of {frame.length} bytes exceeds {MAX_LENGTH}")


def decode(data: bytes | bytearray | memoryview) -> Frame:
    """The frame in ``data`` (exactly one frame, HEX or ASCII by its first byte).

    Raises:
        StartError, LengthError, EndCharError, ChecksumError, HeaderError: what is wrong first.
    """
    if type(data) is not bytes:
        data = bytes(data)
    if data[:2] == HEX_START:
        return _decode_hex(data)
    if data[:1] == b"\x01":
        return _decode_ascii(data)
    raise StartError("a frame starts with 7E7E (HEX) or SOH 01 (ASCII)")


def hex_size(header: bytes | bytearray | memoryview) -> int:
    """The whole frame's size from its first 14 bytes (the length field)."""
    return HEX_OVERHEAD + ((header[11] << 8 | header[12]) & MAX_LENGTH)


def _decode_hex(data: bytes) -> Frame:
    size = len(data)
    if size < HEX_OVERHEAD:
        raise LengthError(f"{size} bytes: shorter than any frame ({HEX_OVERHEAD})")
    start = data[13]
    if start not in START_CHARS:
        raise StartError(f"start character {start:02X}H is neither STX 02H nor SYN 16H")
    expected = HEX_OVERHEAD + ((data[11] << 8 | data[12]) & MAX_LENGTH)
    if size != expected:
        raise LengthError(f"length field {expected - HEX_OVERHEAD} makes {expected} bytes, got {size}")
    end = data[-3]
    if end not in END_CHARS:
        raise EndCharError(f"end character {end:02X}H is none of ETX, ETB, ENQ, EOT, ACK, NAK, ESC")
    found = data[-2] << 8 | data[-1]
    crc = crc16(data[:-2])
    if crc != found:
        raise ChecksumError(f"CRC {found:04X} sent, {crc:04X} computed", expected=crc, found=found)
    return from_checked_hex(data)


_UP, _DOWN, _HEX = Direction.UP, Direction.DOWN, Encoding.HEX
_FrameFields = tuple[int, bytes, int, int, Direction, bytes, int, int, tuple[int, int] | None, Encoding]
# Frame(...) runs a Python-level __new__; tuple.__new__ builds the same named tuple directly.
_frame = cast(Callable[[type[Frame], _FrameFields], Frame], tuple.__new__)


def from_checked_hex(data: bytes) -> Frame:
    """A :class:`Frame` from HEX bytes whose start, length, end and CRC were checked."""
    bits = data[11] >> 4
    if bits == 0:
        direction, center, station = _UP, data[2], data[3:8]
    elif bits == 8:
        direction, center, station = _DOWN, data[7], data[2:7]
    else:
        raise HeaderError(f"direction bits {bits:X}H are neither 0 (up) nor 8 (down)")
    start = data[13]
    packet = None
    body_at = HEX_HEADER
    if start == SYN:
        if len(data) < HEX_OVERHEAD + 3:
            raise LengthError("SYN frame without its packet count and number")
        value = data[14] << 16 | data[15] << 8 | data[16]
        packet = (value >> 12, value & 0xFFF)
        body_at += 3
    body = data[body_at:-3]
    fields = (center, station, data[8] << 8 | data[9], data[10], direction, body, data[-3], start, packet, _HEX)
    return _frame(Frame, fields)


def _hex_field(data: bytes, begin: int, end: int, what: str) -> int:
    try:
        return int(data[begin:end].decode("ascii"), 16)
    except (UnicodeDecodeError, ValueError):
        raise HeaderError(f"{what} {data[begin:end]!r} is not hex digits") from None


def _decode_ascii(data: bytes) -> Frame:
    size = len(data)
    if size < ASCII_OVERHEAD:
        raise LengthError(f"{size} bytes: shorter than any ASCII frame ({ASCII_OVERHEAD})")
    start = data[ASCII_HEADER - 1]
    if start not in START_CHARS:
        raise StartError(f"start character {start:02X}H is neither STX 02H nor SYN 16H")
    word = _hex_field(data, 19, 23, "dir+len")
    expected = ASCII_OVERHEAD + (word & MAX_LENGTH)
    if size != expected:
        raise LengthError(f"length field {word & MAX_LENGTH} makes {expected} bytes, got {size}")
    end = data[-5]
    if end not in END_CHARS:
        raise EndCharError(f"end character {end:02X}H is none of ETX, ETB, ENQ, EOT, ACK, NAK, ESC")
    found = _hex_field(data, size - 4, size, "CRC")
    crc = crc16(memoryview(data)[:-4])
    if crc != found:
        raise ChecksumError(f"CRC {found:04X} sent, {crc:04X} computed", expected=crc, found=found)
    if word >> 12 not in (0, 8):
        raise HeaderError(f"direction bits {word >> 12:X}H are neither 0 (up) nor 8 (down)")
    direction = Direction(word >> 12)
    first, second = (1, 3) if direction is Direction.UP else (11, 1)
    center = _hex_field(data, first, first + 2, "centre address")
    station_text = data[second : second + 10]
    _hex_field(data, second, second + 10, "station address")
    body_at, packet = ASCII_HEADER, None
    if start == SYN:
        value = _hex_field(data, body_at, body_at + 6, "packet word")
        packet = (value >> 12, value & 0xFFF)
        body_at += 6
    return Frame(
        center=center,
        station=bytes.fromhex(station_text.decode("ascii")),
        password=_hex_field(data, 13, 17, "password"),
        function=_hex_field(data, 17, 19, "function code"),
        direction=direction,
        body=data[body_at:-5],
        end=end,
        start=start,
        packet=packet,
        encoding=Encoding.ASCII,
    )
