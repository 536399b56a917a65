"""Typed builders and parsers for parameter messages: PW, clock (11H/51H), report kinds
(A0H/A1H set, 54H/53H read). Same conventions as messages.py.

Layouts (notes section 1, AFN list; SL/T 427 tables 9 and 10):

- PW, 2 bytes: D15-D12 key 1 (one BCD digit), D11-D0 key 2 (three BCD digits, 0-999)::

      byte 1: key1 | key2 hundreds     byte 2: key2 tens | key2 units

- Clock, 6 bytes: second, minute, hour, day (BCD), weekday/month (D7-D5 weekday 1-7 or 0, D4-D0
  month BCD), year (BCD). One public encoder writes the month in binary, which agrees for months
  1-9 only; we follow the BCD reading of GB/T 18657-style week/month bytes.
- A0H/54H: a 2-byte kinds bitmap (low byte first). A1H/53H: the bitmap, then one report
  interval in minutes per configured kind, 2 BCD bytes each, low byte first. Bits are kept as
  numbers because the sources number them differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import DataError, EncodeError
from .fields import Address, Clock, TimeLabel, bcd_byte, bcd_value, clock_from_bytes
from .frame import Direction, Frame
from .layout import AFN
from .messages import expect

_UP, _DOWN = Direction.UP, Direction.DOWN
DEFAULT_PW = b"\x00\x00"
"""PW sent when the caller gives none (keys 0 and 000)."""


def make_pw(key1: int, key2: int) -> bytes:
    """PW from its keys (SL/T 427 table 9): D15-D12 key 1 (one BCD digit), D11-D0 key 2 (three)."""
    if not (0 <= key1 <= 9 and 0 <= key2 <= 999):
        raise EncodeError(f"PW keys are 0..9 and 0..999, got {key1}, {key2}")
    return bytes(((key1 << 4) | (key2 // 100), bcd_byte(key2 % 100)))


def parse_pw(pw: bytes) -> tuple[int, int]:
    """PW -> (key 1, key 2)."""
    if len(pw) != 2 or pw[0] >> 4 > 9 or pw[0] & 0x0F > 9:
        raise DataError(f"PW {pw.hex().upper()} is not two BCD keys")
    return pw[0] >> 4, (pw[0] & 0x0F) * 100 + bcd_value(pw[1])


# -- clock: 11H set, 51H read --------------------------------------------------------------------


def build_set_clock(
    address: Address, clock: Clock, *, pw: bytes = DEFAULT_PW, tp: TimeLabel | None = None, fcb: int = 3
) -> Frame:
    return Frame(direction=_DOWN, fcb=fcb, address=address, afn=AFN.SET_CLOCK, data=clock.clock_bytes(), pw=pw, tp=tp)


def build_read_clock(address: Address, *, fcb: int = 3, tp: TimeLabel | None = None) -> Frame:
    return Frame(direction=_DOWN, fcb=fcb, address=address, afn=AFN.READ_CLOCK, tp=tp)


def build_clock_answer(address: Address, clock: Clock, *, afn: int = AFN.READ_CLOCK, fcb: int = 3) -> Frame:
    """The terminal's answer to 51H (or its echo of an 11H set)."""
    return Frame(direction=_UP, fcb=fcb, address=address, afn=afn, data=clock.clock_bytes())


def parse_clock(frame: Frame) -> Clock:
    """The clock of an 11H set (either direction) or a 51H answer."""
    if frame.afn != AFN.SET_CLOCK:
        expect(frame, {AFN.READ_CLOCK}, True, "clock")
    return clock_from_bytes(frame.data)


# -- report kinds: A0H/54H, A1H/53H --------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Kinds:
    """A kinds bitmap and, for A1H/53H, the report interval (minutes) of each configured kind."""

    kinds: int
    intervals_min: tuple[int, ...] = ()


def build_set_query_kinds(
    address: Address, kinds: int, *, pw: bytes = DEFAULT_PW, tp: TimeLabel | None = None, fcb: int = 3
) -> Frame:
    """A0H: which real-time kinds the centre will query."""
    return Frame(
        direction=_DOWN, fcb=fcb, address=address, afn=AFN.SET_QUERY_KINDS, data=_kinds_bytes(kinds), pw=pw, tp=tp
    )


def build_set_report_kinds(
    address: Address,
    kinds: int,
    intervals_min: Sequence[int],
    *,
    pw: bytes = DEFAULT_PW,
    tp: TimeLabel | None = None,
    fcb: int = 3,
) -> Frame:
    """A1H: which kinds the terminal self-reports, and the interval of each, in minutes."""
    data = _kinds_bytes(kinds) + b"".join(_interval_bytes(v) for v in intervals_min)
    return Frame(direction=_DOWN, fcb=fcb, address=address, afn=AFN.SET_REPORT_KINDS, data=data, pw=pw, tp=tp)


def _kinds_bytes(kinds: int) -> bytes:
    if not 0 <= kinds <= 0xFFFF:
        raise EncodeError(f"kinds is a 16-bit bitmap, got {kinds}")
    return kinds.to_bytes(2, "little")


def _interval_bytes(minutes: int) -> bytes:
    if not 0 <= minutes <= 9999:
        raise EncodeError(f"report interval must be 0..9999 minutes, got {minutes}")
    return bytes((bcd_byte(minutes % 100), bcd_byte(minutes // 100)))


_KINDS_AFNS = {AFN.SET_QUERY_KINDS, AFN.SET_REPORT_KINDS, AFN.READ_QUERY_KINDS, AFN.READ_REPORT_KINDS}


def parse_kinds(frame: Frame) -> Kinds:
    """A0H/A1H (set, either direction) or 54H/53H answers."""
    expect(frame, _KINDS_AFNS, None, "report kinds")
    data = frame.data
    with_intervals = frame.afn in (AFN.SET_REPORT_KINDS, AFN.READ_REPORT_KINDS)
    if len(data) < 2 or (len(data) % 2 if with_intervals else len(data) != 2):
        raise DataError(f"kinds data of AFN {frame.afn:02X}H has the wrong length {len(data)}")
    intervals = tuple(bcd_value(data[i]) + 100 * bcd_value(data[i + 1]) for i in range(2, len(data), 2))
    return Kinds(kinds=data[0] | (data[1] << 8), intervals_min=intervals)
