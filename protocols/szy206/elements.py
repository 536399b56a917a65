"""Data elements of the SZY206 data area: BCD values, fill patterns, alarm and status words.

Every value is packed BCD sent low byte first (SL/T 427 tables 33-47, notes section 3), e.g. a flow
of 5.900 and a volume of 106182 m3::

    flow   00 59 00 00 00    BYTE1 .01 .001 | BYTE2 1 .1 | BYTE3 100 10 | BYTE4 1e4 1e3 | BYTE5 sign 1e5
    volume 82 61 10 00 00    BYTE1 10 1 | BYTE2 1e3 1e2 | BYTE3 1e5 1e4 | BYTE4 1e7 1e6 | BYTE5 hi 1e8

Strategy: reverse the bytes and hex them (both in C), so the digits read as a decimal string.
A value filled with AAH is absent (``None``: the meter does not measure it); one filled with FFH,
or carrying any other non-BCD digit, is :data:`INVALID`. Signs are the top nibble of the last byte:
0 positive, F negative; for flow SL/T 427 splits that nibble into D7-D6 sign (00/11) and D5-D4 unit
(00 m3/s, 11 m3/h), so a flow is negative when the nibble is F or its top two bits are 11.

Cumulative volume is read as a 10-digit unsigned integer (SL/T 427 keeps the top nibble 0 and the
range 0..799999999; the sources disagree on a sign there, so we do not read one).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from enum import IntEnum, IntFlag
from typing import Final, Literal, NamedTuple

from .errors import DataError, EncodeError


class _Invalid(enum.Enum):
    INVALID = "invalid"

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Final = _Invalid.INVALID
"""A value the meter sent as invalid (FFH fill or non-BCD digits)."""

InvalidType = Literal[_Invalid.INVALID]
Value = float | None | InvalidType
Count = int | None | InvalidType


class FlowUnit(IntEnum):
    """SL/T 427 unit bits D5-D4 of flow BYTE5."""

    M3_PER_S = 0b00
    M3_PER_H = 0b11


class Element:
    """One kind of BCD value: ``size`` bytes, ``decimals`` places, sign nibble or not."""

    __slots__ = ("decimals", "name", "scale", "signed", "size", "unit")

    def __init__(self, name: str, size: int, decimals: int, signed: bool, unit: str) -> None:
        self.name, self.size, self.decimals, self.signed, self.unit = name, size, decimals, signed, unit
        self.scale: int = 10**decimals

    def digits(self) -> int:
        return 2 * self.size - (1 if self.signed else 0)

    def maximum(self) -> float:
        top: int = 10 ** self.digits() - 1
        return top / self.scale

    def decode(self, raw: bytes) -> Value:
        return _decode_number(raw, self.size, self.scale, self.signed)

    def encode(self, value: Value) -> bytes:
        return _encode_number(value, self)


def _fill(size: int) -> tuple[bytes, bytes]:
    return b"\xaa" * size, b"\xff" * size


_FILLS = {n: _fill(n) for n in range(1, 9)}
_NEGATIVE_NIBBLES = frozenset("cdef")  # F (SZY206) or D7-D6 = 11 (SL/T 427)


def _decode_number(raw: bytes, size: int, scale: int, signed: bool) -> Value:
    if len(raw) != size:
        raise DataError(f"value needs {size} bytes, got {len(raw)}")
    text = raw[::-1].hex()
    if signed:
        sign, text = text[0], text[1:]
        if text.isdigit():
            number = int(text)
            return (-number if sign in _NEGATIVE_NIBBLES else number) / scale
    elif text.isdigit():
        return int(text) / scale
    return None if raw == _FILLS[size][0] else INVALID


def _encode_number(value: Value, element: Element, sign_nibble: int | None = None) -> bytes:
    size = element.size
    if value is None:
        return _FILLS[size][0]
    if value is INVALID:
        return _FILLS[size][1]
    number = round(value * element.scale)
    magnitude = abs(number)
    if magnitude >= 10 ** element.digits() or (number < 0 and not element.signed):
        raise EncodeError(f"{element.name} {value} is outside 0..{'±' if element.signed else ''}{element.maximum()}")
    text = f"{magnitude:0{2 * size}d}"
    if element.signed:
        nibble = sign_nibble if sign_nibble is not None else (0xF if number < 0 else 0)
        text = f"{nibble:x}" + text[1:]
    return bytes.fromhex(text)[::-1]


# The element of each C type code (notes section 3). Codes 7/8 differ between editions, 10/11/14
# are composite: those stay raw.
RAIN = Element("rain", 3, 1, False, "mm")
LEVEL = Element("water level", 4, 3, True, "m")
FLOW = Element("flow", 5, 3, True, "m3/s or m3/h")
VOLUME = Element("cumulative volume", 5, 0, False, "m3")
VELOCITY = Element("velocity", 3, 3, True, "m/s")
GATE = Element("gate position", 3, 2, False, "m")
POWER = Element("power", 3, 0, False, "kW")
WATER_TEMPERATURE = Element("water temperature", 2, 1, False, "degC")
EVAPORATION = Element("evaporation", 3, 1, False, "mm")
VOLTAGE = Element("supply voltage", 2, 2, False, "V")
PRESSURE = Element("water pressure", 4, 2, False, "kPa")

ELEMENTS: dict[int, Element] = {
    1: RAIN,
    2: LEVEL,
    4: VELOCITY,
    5: GATE,
    6: POWER,
    9: WATER_TEMPERATURE,
    12: EVAPORATION,
    13: VOLTAGE,
    15: PRESSURE,
}
FLOW_TYPE = 3  # C type code of flow/volume pairs

ITEM_SIZES: dict[int, int] = {code: e.size for code, e in ELEMENTS.items()} | {FLOW_TYPE: 10}
"""Bytes per item of a real-time data area, by C type code."""


def decode_flow(raw: bytes) -> Value:
    """5 bytes -> flow (3 decimals); sign from the F nibble or SL/T 427 bits D7-D6; unit ignored."""
    return _decode_number(raw, 5, 1000, True)


def flow_unit(raw: bytes) -> FlowUnit | None:
    """SL/T 427 reading of flow BYTE5 D5-D4; None when the bits are 01/10 or the value is a fill."""
    bits = (raw[4] >> 4) & 0b11
    if raw in _FILLS[5]:
        return None
    return FlowUnit.M3_PER_H if bits == 0b11 else FlowUnit.M3_PER_S if bits == 0 else None


def encode_flow(value: Value, *, unit: FlowUnit | None = None) -> bytes:
    """Flow -> 5 bytes. ``unit=None`` writes the SZY206 sign nibble (0 or F); a unit writes the
    SL/T 427 nibble (sign bits 00/11 in D7-D6, unit bits in D5-D4)."""
    if unit is None or value is None or value is INVALID:
        return _encode_number(value, FLOW)
    nibble = (0b1100 if value < 0 else 0) | int(unit)
    return _encode_number(value, FLOW, nibble)


def decode_volume(raw: bytes) -> Count:
    """5 bytes -> cumulative volume in m3 (integer, 10 digits, unsigned)."""
    if len(raw) != 5:
        raise DataError(f"volume needs 5 bytes, got {len(raw)}")
    text = raw[::-1].hex()
    if text.isdigit():
        return int(text)
    return None if raw == b"\xaa\xaa\xaa\xaa\xaa" else INVALID


def encode_volume(value: Count) -> bytes:
    """Cumulative volume in m3 (0..9999999999) -> 5 bytes."""
    if value is None:
        return b"\xaa" * 5
    if value is INVALID:
        return b"\xff" * 5
    if not 0 <= value <= 9_999_999_999:
        raise EncodeError(f"cumulative volume {value} is outside 0..9999999999")
    return bytes.fromhex(f"{value:010d}")[::-1]


def decode_level(raw: bytes) -> Value:
    return LEVEL.decode(raw)


def encode_level(value: Value) -> bytes:
    return LEVEL.encode(value)


def decode_pressure(raw: bytes) -> Value:
    return PRESSURE.decode(raw)


def encode_pressure(value: Value) -> bytes:
    return PRESSURE.encode(value)


def decode_velocity(raw: bytes) -> Value:
    return VELOCITY.decode(raw)


def encode_velocity(value: Value) -> bytes:
    return VELOCITY.encode(value)


class AlarmBit(IntFlag, boundary=enum.KEEP):
    """Alarm word (2 bytes, low byte first); a set bit is an alarm. SL/T 427 text; D14-D15 spare."""

    AC_POWER_OFF = 1 << 0
    BATTERY_LOW = 1 << 1
    LEVEL_OVER_LIMIT = 1 << 2
    FLOW_OVER_LIMIT = 1 << 3
    QUALITY_OVER_LIMIT = 1 << 4
    FLOW_METER_FAULT = 1 << 5
    PUMP_ON_OFF = 1 << 6
    LEVEL_METER_FAULT = 1 << 7
    PRESSURE_OVER_LIMIT = 1 << 8
    TEMPERATURE_OVER_LIMIT = 1 << 9
    IC_CARD = 1 << 10
    FIXED_VALUE_CONTROL = 1 << 11
    REMAINING_WATER_LOW = 1 << 12
    CABINET_DOOR = 1 << 13


class StatusBit(IntFlag, boundary=enum.KEEP):
    """Status word (2 bytes, low byte first). D1-D0 are the work mode (see :func:`work_mode`)."""

    IC_CARD_VALID = 1 << 2
    FIXED_VALUE_CONTROL_ON = 1 << 3
    PUMP_STOPPED = 1 << 4
    DOOR_CLOSED = 1 << 5
    ON_BATTERY = 1 << 6


class WorkMode(IntEnum):
    """Status D1-D0 (SL/T 427 wording)."""

    REPORT_AND_TELEMETRY = 0
    REPORT_WITH_CONFIRM = 1
    TELEMETRY = 2
    MAINTENANCE = 3


def work_mode(status: int) -> WorkMode:
    return WorkMode(status & 0b11)


def bit_names(word: int, flags: type[AlarmBit] | type[StatusBit]) -> list[str]:
    """Names of the set bits; bits without a name read ``D<n>``. The status work-mode bits are
    left out (read them with :func:`work_mode`)."""
    names = []
    for bit in range(16):
        mask = 1 << bit
        if not word & mask or (flags is StatusBit and bit < 2):
            continue
        try:
            names.append(flags(mask).name or f"D{bit}")
        except ValueError:  # pragma: no cover - KEEP boundary accepts any int
            names.append(f"D{bit}")
    return names


class Meter(NamedTuple):
    """One flow meter of a report: instantaneous flow and cumulative volume (a plain pair)."""

    flow: Value
    volume: Count


def encode_flow_pairs(meters: Sequence[tuple[Value, Count]], *, unit: FlowUnit | None = None) -> bytes:
    """flow1, volume1, flow2, volume2, ... (10 bytes per meter). ``None`` is AA-filled."""
    return b"".join(encode_flow(flow, unit=unit) + encode_volume(volume) for flow, volume in meters)


def encode_state(alarm: int, status: int) -> bytes:
    """The 4 bytes that close every real-time data area: alarm word, status word, low byte first."""
    if not (0 <= alarm <= 0xFFFF and 0 <= status <= 0xFFFF):
        raise EncodeError(f"alarm and status are 16-bit words, got {alarm}, {status}")
    return bytes((alarm & 0xFF, alarm >> 8, status & 0xFF, status >> 8))


def encode_flow_data(
    meters: Sequence[tuple[Value, Count]], alarm: int = 0, status: int = 0, *, unit: FlowUnit | None = None
) -> bytes:
    """A type-3 data area without Tp: the pairs, then alarm and status."""
    return encode_flow_pairs(meters, unit=unit) + encode_state(alarm, status)


_AA5 = "aa" * 5


def decode_flow_data(data: bytes) -> tuple[list[Meter], int, int]:
    """A type-3 data area without Tp -> (meters, alarm, status).

    Same readings as :func:`decode_flow` and :func:`decode_volume`, unrolled over one hex string
    of the reversed area (the hot path of every report).
    """
    size = len(data)
    body = size - 4
    if body < 0 or body % 10:
        raise DataError(f"flow data area is 10*N+4 bytes, got {size}")
    text = data[::-1].hex()  # meter k's bytes [10k, 10k+10) are chars [2*(size-10k) - 20, 2*(size-10k))
    meters = []
    negative = _NEGATIVE_NIBBLES
    for end in range(2 * size, 2 * size - 2 * body, -20):
        flow_text = text[end - 10 : end]
        digits = flow_text[1:]
        flow: Value
        if digits.isdigit():
            flow = (-int(digits) if flow_text[0] in negative else int(digits)) / 1000
        else:
            flow = None if flow_text == _AA5 else INVALID
        volume_text = text[end - 20 : end - 10]
        volume: Count = int(volume_text) if volume_text.isdigit() else None if volume_text == _AA5 else INVALID
        meters.append(Meter(flow, volume))
    return meters, data[body] | (data[body + 1] << 8), data[body + 2] | (data[body + 3] << 8)


def decode_values(function: int, data: bytes) -> tuple[list[Value], int, int]:
    """A real-time data area of one single-value element type -> (values, alarm, status)."""
    element = ELEMENTS.get(function)
    if element is None:
        raise DataError(f"type code {function} has no single-value element layout")
    size = element.size
    body = len(data) - 4
    if body < 0 or body % size:
        raise DataError(f"{element.name} data area is {size}*N+4 bytes, got {len(data)}")
    values = [element.decode(data[i : i + size]) for i in range(0, body, size)]
    return values, data[body] | (data[body + 1] << 8), data[body + 2] | (data[body + 3] << 8)


def encode_values(function: int, values: Sequence[Value], alarm: int = 0, status: int = 0) -> bytes:
    """Inverse of :func:`decode_values`."""
    element = ELEMENTS.get(function)
    if element is None:
        raise EncodeError(f"type code {function} has no single-value element layout")
    return b"".join(element.encode(v) for v in values) + encode_state(alarm, status)
