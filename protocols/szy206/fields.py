"""Fixed fields of an SZY206 frame: address A, time label Tp, and the clock/stamp layouts.

Address A (5 bytes, SL/T 427 tables 7 and 8)::

    +----+----+----+--------+--------+
    | A1 division code, BCD | A2 station, binary |
    | 53 | 03 | 81 |  0D    |  00    |   = division "530381", station 13 (low byte first)
    +----+----+----+--------+--------+

Mode 2 addresses (first byte 00H, then 8 hex digits of an SL 502 station code) decode through the
same path: ``division`` keeps the three A1 bytes as upper-case hex, so any 5 bytes round-trip, and
:attr:`Address.sl502_code` recovers the 8 digits.

Time label Tp (notes section 1): 5 bytes in SZY206-2016 frames (second, minute, hour, day as BCD,
then the allowed delay in minutes, binary) or 7 bytes in SL/T 427-2021 (second, minute, hour, day,
month, year as BCD, then the delay). ``year`` is the two BCD digits on the wire; the caller adds
the century, and for 5-byte labels the month and year too.

Clock (AFN 11H set, 51H read) is 6 bytes: second, minute, hour, day (BCD), a weekday/month byte
(D7-D5 weekday 1-7 or 0, D4-D0 month as BCD, as in GB/T 18657-style week/month bytes), then year
(BCD). Stamps (our B1H layout) are 6 BCD bytes: second, minute, hour, day, month, year.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import DataError, EncodeError

_HEX_DIGITS = frozenset("0123456789ABCDEF")


def bcd_byte(value: int) -> int:
    """0..99 -> one packed BCD byte."""
    return ((value // 10) << 4) | (value % 10)


def bcd_value(byte: int) -> int:
    """One packed BCD byte -> 0..99; a nibble above 9 is a :class:`DataError`."""
    high, low = byte >> 4, byte & 0x0F
    if high > 9 or low > 9:
        raise DataError(f"{byte:02X}H is not a BCD byte")
    return high * 10 + low


# BCD byte -> value, None where a nibble is above 9: one lookup on the decode path.
_BCD: tuple[int | None, ...] = tuple(
    (b >> 4) * 10 + (b & 0x0F) if (b >> 4) < 10 and (b & 0x0F) < 10 else None for b in range(256)
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Address:
    """Terminal address: division code (6 digits, display order) and station number."""

    division: str
    station: int

    def __post_init__(self) -> None:
        if len(self.division) != 6 or not _HEX_DIGITS.issuperset(self.division):
            raise EncodeError(f"division code must be 6 digits, got {self.division!r}")
        if not 0 <= self.station <= 0xFFFF:
            raise EncodeError(f"station number must be 0..65535, got {self.station}")

    def to_bytes(self) -> bytes:
        return bytes.fromhex(self.division) + self.station.to_bytes(2, "little")

    @property
    def sl502_code(self) -> str | None:
        """The 8 hex digits of a mode-2 address (first byte 00H), else None."""
        if not self.division.startswith("00"):
            return None
        return self.division[2:] + self.station.to_bytes(2, "little").hex().upper()


# Decode caches (bounded: cleared at 4096 entries). Module attributes so frame.py can probe them
# inline on its hot path; values are immutable, so sharing them is safe.
address_cache: dict[bytes, Address] = {}
_new = object.__new__
_set_division = Address.__dict__["division"].__set__
_set_station = Address.__dict__["station"].__set__


def address_from_bytes(raw: bytes) -> Address:
    """5 wire bytes -> Address. Cached: a gateway sees the same few addresses over and over."""
    found = address_cache.get(raw)
    if found is None:
        found = _new(Address)
        # Any 5 bytes form a valid Address, so skip __init__'s checks.
        _set_division(found, raw[:3].hex().upper())
        _set_station(found, raw[3] | (raw[4] << 8))
        if len(address_cache) >= 4096:
            address_cache.clear()
        address_cache[bytes(raw)] = found
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeLabel:
    """Tp. ``month``/``year`` are both None in the 5-byte SZY206 form, both set in the 7-byte form."""

    second: int
    minute: int
    hour: int
    day: int
    delay_min: int = 0
    month: int | None = None
    year: int | None = None

    def __post_init__(self) -> None:
        _check_range("second", self.second, 0, 59)
        _check_range("minute", self.minute, 0, 59)
        _check_range("hour", self.hour, 0, 23)
        _check_range("day", self.day, 1, 31)
        _check_range("delay_min", self.delay_min, 0, 255)
        if (self.month is None) != (self.year is None):
            raise EncodeError("a time label has both month and year (7 bytes) or neither (5 bytes)")
        if self.month is not None and self.year is not None:
            _check_range("month", self.month, 1, 12)
            _check_range("year", self.year, 0, 99)

    @property
    def size(self) -> int:
        return 5 if self.month is None else 7

    def to_bytes(self) -> bytes:
        head = bytes((bcd_byte(self.second), bcd_byte(self.minute), bcd_byte(self.hour), bcd_byte(self.day)))
        if self.month is None or self.year is None:
            return head + bytes((self.delay_min,))
        return head + bytes((bcd_byte(self.month), bcd_byte(self.year), self.delay_min))


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise EncodeError(f"{name} must be {low}..{high}, got {value}")


_TP_SETTERS = tuple(
    TimeLabel.__dict__[name].__set__ for name in ("second", "minute", "hour", "day", "delay_min", "month", "year")
)


label_cache: dict[bytes, TimeLabel] = {}


def time_label_from_bytes(raw: bytes) -> TimeLabel | None:
    """5 or 7 wire bytes -> TimeLabel, or None if they are not a plausible label.

    Cached: terminals that report on a schedule send the same label many times.
    """
    label = label_cache.get(raw)
    if label is None:
        label = _time_label(raw)
        if label is not None:
            if len(label_cache) >= 4096:
                label_cache.clear()
            label_cache[bytes(raw)] = label
    return label


def _time_label(raw: bytes) -> TimeLabel | None:
    bcd = _BCD
    second, minute, hour, day = bcd[raw[0]], bcd[raw[1]], bcd[raw[2]], bcd[raw[3]]
    if (
        second is None
        or minute is None
        or hour is None
        or day is None
        or second > 59
        or minute > 59
        or hour > 23
        or not 1 <= day <= 31
    ):
        return None
    if len(raw) == 5:
        month = year = None
    else:
        month, year = bcd[raw[4]], bcd[raw[5]]
        if month is None or year is None or not 1 <= month <= 12:
            return None
    # Every field is checked above: build it without __post_init__ (this is the decode hot path).
    label = _new(TimeLabel)
    s_second, s_minute, s_hour, s_day, s_delay, s_month, s_year = _TP_SETTERS
    s_second(label, second)
    s_minute(label, minute)
    s_hour(label, hour)
    s_day(label, day)
    s_delay(label, raw[-1])
    s_month(label, month)
    s_year(label, year)
    return label


@dataclass(frozen=True, slots=True, kw_only=True)
class Clock:
    """A full date and time on the wire: clock of AFN 11H/51H and the stamps of our B1H query.

    ``year`` is the two-digit wire year; ``weekday`` is 1 (Monday) to 7, or 0 when not given.
    """

    second: int
    minute: int
    hour: int
    day: int
    month: int
    year: int
    weekday: int = 0

    def __post_init__(self) -> None:
        _check_range("second", self.second, 0, 59)
        _check_range("minute", self.minute, 0, 59)
        _check_range("hour", self.hour, 0, 23)
        _check_range("day", self.day, 1, 31)
        _check_range("month", self.month, 1, 12)
        _check_range("year", self.year, 0, 99)
        _check_range("weekday", self.weekday, 0, 7)

    def clock_bytes(self) -> bytes:
        """The 6-byte clock of AFN 11H/51H (weekday in D7-D5 of the month byte)."""
        week_month = (self.weekday << 5) | bcd_byte(self.month)
        return bytes(
            (
                bcd_byte(self.second),
                bcd_byte(self.minute),
                bcd_byte(self.hour),
                bcd_byte(self.day),
                week_month,
                bcd_byte(self.year),
            )
        )

    def stamp_bytes(self) -> bytes:
        """The 6-byte BCD stamp (second .. year) of our B1H query; the weekday is not sent."""
        return bytes(bcd_byte(v) for v in (self.second, self.minute, self.hour, self.day, self.month, self.year))


def clock_from_bytes(raw: bytes) -> Clock:
    """6 bytes of AFN 11H/51H -> Clock."""
    if len(raw) != 6:
        raise DataError(f"a clock is 6 bytes, got {len(raw)}")
    week_month = raw[4]
    try:
        return Clock(
            second=bcd_value(raw[0]),
            minute=bcd_value(raw[1]),
            hour=bcd_value(raw[2]),
            day=bcd_value(raw[3]),
            month=bcd_value(week_month & 0x1F),
            year=bcd_value(raw[5]),
            weekday=week_month >> 5,
        )
    except EncodeError as exc:  # a field out of range: the bytes are at fault, not the caller
        raise DataError(f"clock {raw.hex().upper()}: {exc}") from None


def stamp_from_bytes(raw: bytes) -> Clock:
    """6 BCD bytes (second .. year) -> Clock with weekday 0."""
    if len(raw) != 6:
        raise DataError(f"a time stamp is 6 bytes, got {len(raw)}")
    try:
        second, minute, hour, day, month, year = (bcd_value(b) for b in raw)
        return Clock(second=second, minute=minute, hour=hour, day=day, month=month, year=year)
    except EncodeError as exc:
        raise DataError(f"time stamp {raw.hex().upper()}: {exc}") from None
