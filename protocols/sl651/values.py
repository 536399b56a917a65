"""Values inside an SL651 body: BCD numbers with their data definition, times, hex words.

Data definition byte (SL651-2014 6.6.2): high five bits the value's length in bytes, low three
its decimal places. A value is BCD, high digits first; a negative one has FFH as its first byte
and the magnitude in the rest; a value whose bytes are all FFH is invalid (missing).
Times are BCD too: YYMMDDHHMMSS (send time, 6 bytes), YYMMDDHHMM (observation time, 5 bytes),
years 2000-2099, the station's local time.
"""

from __future__ import annotations

from datetime import datetime

from .errors import BodyError, EncodeError

MAX_BYTES = 31  # five bits of length


def split_definition(definition: int) -> tuple[int, int]:
    """(bytes, decimals) of a data definition byte."""
    return definition >> 3, definition & 7


def bcd_digits(data: bytes) -> int | None:
    """The BCD digits of ``data`` as an int, or None if a nibble is above 9."""
    text = data.hex()
    return int(text) if text.isdigit() else None if text else 0


def decode_number(data: bytes, decimals: int) -> int | float | None:
    """A BCD value with its decimals applied; None when invalid (all FFH) or not BCD."""
    if not data or data.count(0xFF) == len(data):
        return None
    sign = 1
    if data[0] == 0xFF:
        sign, data = -1, data[1:]
    digits = bcd_digits(data)
    if digits is None:
        return None
    return sign * digits / 10**decimals if decimals else sign * digits


def encode_number(value: int | float | None, definition: int) -> bytes:
    """The BCD bytes of ``value`` for ``definition`` (None: all FFH).

    Raises:
        EncodeError: the value does not fit (a negative value has one byte less for digits).
    """
    size, decimals = split_definition(definition)
    if value is None:
        return b"\xff" * size
    scaled = round(abs(value) * 10**decimals)
    negative = value < 0 and scaled != 0
    width = size - 1 if negative else size
    text = str(scaled)
    if width < 0 or len(text) > 2 * width:
        raise EncodeError(f"{value} does not fit {size} bytes with {decimals} decimals")
    digits = bytes.fromhex(text.rjust(2 * width, "0")) if width else b""
    return b"\xff" + digits if negative else digits


def definition_for(value: int | float, decimals: int) -> int:
    """The smallest data definition that holds ``value`` with ``decimals`` places."""
    digits = len(str(round(abs(value) * 10**decimals)))
    size = (digits + 1) // 2 + (1 if value < 0 else 0)
    if size > MAX_BYTES or not 0 <= decimals <= 7:
        raise EncodeError(f"{value} with {decimals} decimals has no data definition")
    return size << 3 | decimals


BCD: tuple[int, ...] = tuple(
    (byte >> 4) * 10 + (byte & 0xF) if byte >> 4 <= 9 and byte & 0xF <= 9 else -1 for byte in range(256)
)
"""BCD[byte]: the two-digit value of a BCD byte, -1 where a nibble is above 9."""


def decode_time(data: bytes) -> datetime:
    """A 5-byte (YYMMDDHHMM) or 6-byte (YYMMDDHHMMSS) BCD time.

    Raises:
        BodyError: not BCD, or no such date.
    """
    size = len(data)
    if (size == 6 or size == 5) and BCD[data[0]] >= 0:
        # Every frame has a send time: by table. A -1 past the year makes datetime refuse; the
        # careful reading below then says what is wrong.
        try:
            return datetime(
                2000 + BCD[data[0]],
                BCD[data[1]],
                BCD[data[2]],
                BCD[data[3]],
                BCD[data[4]],
                BCD[data[5]] if size == 6 else 0,
            )
        except ValueError:
            pass
    text = data.hex()
    if not text.isdigit():
        raise BodyError(f"time {text.upper()} is not BCD")
    parts = [int(text[i : i + 2]) for i in range(0, len(text), 2)] + [0]
    if len(parts) < 5:
        raise BodyError(f"time {text} is too short")
    try:
        return datetime(2000 + parts[0], parts[1], parts[2], parts[3], parts[4], parts[5])
    except ValueError:
        raise BodyError(f"time {text} is no date") from None


def decode_send_time(data: bytes, at: int) -> datetime:
    """``decode_time(data[at : at + 6])`` without the slice (every body has a send time), for
    ``data`` of at least ``at + 6`` bytes."""
    bcd = BCD
    if bcd[data[at]] >= 0:
        try:
            return datetime(
                2000 + bcd[data[at]],
                bcd[data[at + 1]],
                bcd[data[at + 2]],
                bcd[data[at + 3]],
                bcd[data[at + 4]],
                bcd[data[at + 5]],
            )
        except ValueError:
            pass  # decode_time says what is wrong
    return decode_time(data[at : at + 6])


def encode_time(when: datetime, *, seconds: bool = True) -> bytes:
    """``when`` as YYMMDDHHMMSS (or YYMMDDHHMM) BCD."""
    if not 2000 <= when.year <= 2099:
        raise EncodeError(f"year {when.year} is outside 2000..2099")
    text = when.strftime("%y%m%d%H%M%S" if seconds else "%y%m%d%H%M")
    return bytes.fromhex(text)
