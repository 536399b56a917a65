"""Modbus RTU frames for the register functions, and a request framer that hunts through line noise.

Strategy: a frame is built from a PDU (function code + data, the part Modbus TCP shares) by putting
the unit id in front and the CRC behind. Parsing checks the CRC first, then the PDU. The server
side reads a byte stream with no reliable silent intervals (a pty or a USB adapter), so
:class:`RequestFramer` looks for 8-byte requests and, when a candidate fails its CRC or names a
function it does not know, drops one byte and tries again ("hunting"), counting what it drops.

Frames (Modbus over Serial Line V1.02, 2.5.1; Modbus Application Protocol V1.1b3, 6.3, 6.4, 6.6, 7)::

    request  FC03/04/06  [unit][fc][address hi lo][count or value hi lo][crc lo hi]   8 bytes
    response FC03/04     [unit][fc][byte count n][n bytes: registers hi lo ...][crc lo hi]
    response FC06        the request, echoed
    exception            [unit][fc | 0x80][exception code][crc lo hi]                 5 bytes

The CRC is CRC-16/MODBUS (polynomial 0xA001 reflected, initial value 0xFFFF), sent low byte first.

Pure: no I/O, no clock, no logging. Every error is a :class:`FrameError` (a ``ValueError``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal

READ_HOLDING: Final = 3
READ_INPUT: Final = 4
WRITE_SINGLE: Final = 6
READ_FUNCTIONS: Final = frozenset({READ_HOLDING, READ_INPUT})
REQUEST_FUNCTIONS: Final = frozenset({READ_HOLDING, READ_INPUT, WRITE_SINGLE})
MAX_READ_COUNT: Final = 125  # Application Protocol 6.3: 1..125 registers per FC03/FC04 request
REQUEST_SIZE: Final = 8
EXCEPTION_SIZE: Final = 5
MAX_FRAME_SIZE: Final = 256  # Serial Line 2.5.1: unit + PDU (at most 253 bytes) + CRC


class FrameError(ValueError):
    """Bytes that are not a valid frame, or arguments that cannot make one."""


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE: Final = _make_table()


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS of ``data`` as a number (its low byte goes first on the wire)."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def crc_bytes(data: bytes) -> bytes:
    """The two CRC bytes to append to ``data``, low byte first."""
    return crc16(data).to_bytes(2, "little")


def check_crc(frame: bytes) -> bool:
    """True if the last two bytes of ``frame`` are the CRC of the bytes before them."""
    return len(frame) >= 3 and crc_bytes(frame[:-2]) == frame[-2:]


@dataclass(frozen=True, slots=True)
class Request:
    """A request of function 3, 4 or 6. For function 6, ``count`` is the value to write."""

    unit: int
    function: int
    address: int
    count: int


@dataclass(frozen=True, slots=True)
class ReadResponse:
    """The registers a server answered to a read."""

    unit: int
    function: int
    registers: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ExceptionReply:
    """A Modbus exception: ``function`` is the requested function code (without the 0x80 bit)."""

    unit: int
    function: int
    code: int


def _check_byte(name: str, value: int, low: int = 0, high: int = 255) -> None:
    if not low <= value <= high:
        raise FrameError(f"{name} {value} is outside {low}..{high}")


def _check_word(name: str, value: int) -> None:
    _check_byte(name, value, 0, 0xFFFF)


# --- PDU level: shared with Modbus TCP -----------------------------------------------------------


def request_pdu(function: int, address: int, count: int) -> bytes:
    """PDU of a request of function 3, 4 or 6 (``count`` is the value for 6)."""
    if function not in REQUEST_FUNCTIONS:
        raise FrameError(f"function {function} is not one of 3, 4, 6")
    _check_word("address", address)
    if function in READ_FUNCTIONS:
        _check_byte("count", count, 1, MAX_READ_COUNT)
    else:
        _check_word("value", count)
    return bytes([function]) + address.to_bytes(2, "big") + count.to_bytes(2, "big")


def parse_request_pdu(unit: int, pdu: bytes) -> Request:
    """Parse the PDU of a function 3, 4 or 6 request.

    A read count outside 1..125 is still a well-formed frame: the server answers it with
    exception 03 (illegal data value), so it is returned, not refused.

    Raises:
        FrameError: another function or a wrong length.
    """
    if len(pdu) != REQUEST_SIZE - 3 or pdu[0] not in REQUEST_FUNCTIONS:
        raise FrameError(f"not a function 3/4/6 request PDU: {pdu.hex(' ')}")
    return Request(unit, pdu[0], int.from_bytes(pdu[1:3], "big"), int.from_bytes(pdu[3:5], "big"))


def read_response_pdu(function: int, registers: tuple[int, ...] | list[int]) -> bytes:
    """PDU answering a read of function 3 or 4 with ``registers``."""
    if function not in READ_FUNCTIONS:
        raise FrameError(f"function {function} is not a register read")
    _check_byte("register count", len(registers), 1, MAX_READ_COUNT)
    for word in registers:
        _check_word("register", word)
    data = b"".join(word.to_bytes(2, "big") for word in registers)
    return bytes([function, len(data)]) + data


def exception_pdu(function: int, code: int) -> bytes:
    """PDU of exception ``code`` answering ``function``."""
    _check_byte("function", function, 1, 0x7F)
    _check_byte("exception code", code, 1, 255)
    return bytes([function | 0x80, code])


def parse_response_pdu(unit: int, pdu: bytes) -> ReadResponse | ExceptionReply:
    """Parse the PDU of a function 3/4 response or of an exception response.

    Raises:
        FrameError: another function, or a byte count that does not match the length.
    """
    if len(pdu) < 2:
        raise FrameError(f"response PDU of {len(pdu)} bytes")
    function = pdu[0]
    if function & 0x80:
        if len(pdu) != 2:
            raise FrameError(f"exception PDU of {len(pdu)} bytes, expected 2")
        return ExceptionReply(unit, function & 0x7F, pdu[1])
    if function not in READ_FUNCTIONS:
        raise FrameError(f"function {function} is not a register read")
    size = pdu[1]
    if size == 0 or size % 2 or size != len(pdu) - 2:
        raise FrameError(f"byte count {size} does not match {len(pdu) - 2} data bytes")
    return ReadResponse(unit, function, struct.unpack(f">{size // 2}H", pdu[2:]))


# --- RTU ADU level -------------------------------------------------------------------------------


def _adu(unit: int, pdu: bytes) -> bytes:
    _check_byte("unit", unit)
    frame = bytes([unit]) + pdu
    return frame + crc_bytes(frame)


def _split(frame: bytes, minimum: int) -> tuple[int, bytes]:
    if len(frame) < minimum or len(frame) > MAX_FRAME_SIZE:
        raise FrameError(f"frame of {len(frame)} bytes")
    if not check_crc(frame):
        raise FrameError(f"bad CRC in {frame.hex(' ')}")
    return frame[0], frame[1:-2]


def build_request(unit: int, function: int, address: int, count: int) -> bytes:
    """RTU frame of a request of function 3, 4 or 6."""
    return _adu(unit, request_pdu(function, address, count))


def parse_request(frame: bytes) -> Request:
    """Parse one whole 8-byte RTU request frame.

    Raises:
        FrameError: bad length, bad CRC, or not a function 3/4/6 request.
    """
    if len(frame) != REQUEST_SIZE:
        raise FrameError(f"request frame of {len(frame)} bytes, expected {REQUEST_SIZE}")
    unit, pdu = _split(frame, REQUEST_SIZE)
    return parse_request_pdu(unit, pdu)


def build_response(unit: int, function: int, registers: tuple[int, ...] | list[int]) -> bytes:
    """RTU frame answering a read of function 3 or 4."""
    return _adu(unit, read_response_pdu(function, registers))


def build_exception(unit: int, function: int, code: int) -> bytes:
    """RTU frame of an exception response."""
    return _adu(unit, exception_pdu(function, code))


def parse_response(frame: bytes) -> ReadResponse | ExceptionReply:
    """Parse one whole RTU response frame (function 3/4 or exception).

    Raises:
        FrameError: bad length, bad CRC, or a PDU that is neither.
    """
    unit, pdu = _split(frame, EXCEPTION_SIZE)
    return parse_response_pdu(unit, pdu)


def with_pdu(unit: int, pdu: bytes) -> bytes:
    """RTU frame around an already built PDU (unit id in front, CRC behind)."""
    return _adu(unit, pdu)


# --- request framer ------------------------------------------------------------------------------


class _Need(Enum):
    NEED_DATA = "need_data"


NEED_DATA: Final = _Need.NEED_DATA
"""Returned by :meth:`RequestFramer.next_request` when the buffer holds no whole request yet."""


class RequestFramer:
    """Finds 8-byte function 3/4/6 requests in a byte stream, hunting through garbage.

    Feed bytes as they arrive with :meth:`feed`, then call :meth:`next_request` until it returns
    :data:`NEED_DATA`. A candidate whose function is unknown or whose CRC is wrong costs one byte
    (``dropped``); a wrong CRC on a known function is also counted in ``bad_crc``. The buffer is
    bounded: past ``max_buffer`` bytes the oldest are dropped and counted.
    """

    def __init__(self, max_buffer: int = 4096) -> None:
        self._buffer = bytearray()
        self._max_buffer = max(max_buffer, REQUEST_SIZE)
        self.dropped = 0
        self.bad_crc = 0
        self.frames = 0

    def feed(self, data: bytes) -> None:
        """Append received bytes (the caller owns the port)."""
        self._buffer += data
        excess = len(self._buffer) - self._max_buffer
        if excess > 0:
            del self._buffer[:excess]
            self.dropped += excess

    @property
    def pending(self) -> int:
        """Bytes held that are not yet a whole request."""
        return len(self._buffer)

    def next_request(self) -> Request | Literal[_Need.NEED_DATA]:
        """The next whole request in the buffer, or :data:`NEED_DATA`."""
        while len(self._buffer) >= REQUEST_SIZE:
            candidate = bytes(self._buffer[:REQUEST_SIZE])
            if candidate[1] in REQUEST_FUNCTIONS:
                if check_crc(candidate):
                    del self._buffer[:REQUEST_SIZE]
                    self.frames += 1
                    return parse_request_pdu(candidate[0], candidate[1:-2])
                self.bad_crc += 1
            del self._buffer[0]
            self.dropped += 1
        return NEED_DATA
