"""Modbus register values: from 16-bit registers to numbers and back.

Strategy: a value of N registers is turned into bytes in "ABCD" order (most significant byte first),
then unpacked with :mod:`struct`. The four word orders seen on real meters are two independent
swaps, applied to a copy of the registers, never to the caller's list:

=====  ==========================  =================================================
order  wire bytes of a 32-bit value  meaning
=====  ==========================  =================================================
ABCD   [A B] [C D]                 high word first, big-endian bytes (Modbus default)
CDAB   [C D] [A B]                 low word first ("word swap": TUF-2000 REAL4/LONG)
BADC   [B A] [D C]                 bytes swapped inside each word
DCBA   [D C] [B A]                 fully little-endian (Xintai water meter floats)
=====  ==========================  =================================================

For 64-bit values the same two swaps generalise (word order reversed, bytes in each word swapped).
For 16-bit values only the byte swap applies: ABCD/CDAB read a register as is, BADC/DCBA swap it.

Pure: no I/O, no logging. Errors are :class:`RegisterError` (a ``ValueError``).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from enum import StrEnum


class RegisterError(ValueError):
    """Registers that cannot hold, or be decoded into, the requested value."""


class DataType(StrEnum):
    UINT16 = "uint16"
    INT16 = "int16"
    UINT32 = "uint32"
    INT32 = "int32"
    FLOAT32 = "float32"
    FLOAT64 = "float64"

    @property
    def words(self) -> int:
        """How many 16-bit registers a value of this type occupies."""
        return _WORDS[self]

    @property
    def is_float(self) -> bool:
        return self in (DataType.FLOAT32, DataType.FLOAT64)


class WordOrder(StrEnum):
    ABCD = "ABCD"
    CDAB = "CDAB"
    BADC = "BADC"
    DCBA = "DCBA"

    @property
    def low_word_first(self) -> bool:
        return self in (WordOrder.CDAB, WordOrder.DCBA)

    @property
    def bytes_swapped(self) -> bool:
        return self in (WordOrder.BADC, WordOrder.DCBA)


_WORDS = {
    DataType.UINT16: 1,
    DataType.INT16: 1,
    DataType.UINT32: 2,
    DataType.INT32: 2,
    DataType.FLOAT32: 2,
    DataType.FLOAT64: 4,
}
# A value's struct code, big-endian once its bytes are in canonical (ABCD...) order.
STRUCT_CODE = {
    DataType.UINT16: "H",
    DataType.INT16: "h",
    DataType.UINT32: "I",
    DataType.INT32: "i",
    DataType.FLOAT32: "f",
    DataType.FLOAT64: "d",
}
_STRUCT = {dtype: struct.Struct(">" + code) for dtype, code in STRUCT_CODE.items()}
_SWAP16 = struct.Struct(">H")


def _swap16(word: int) -> int:
    return ((word & 0xFF) << 8) | (word >> 8)


def _to_canonical(words: Sequence[int], order: WordOrder) -> list[int]:
    """Registers as sent by the meter -> registers in ABCD order (a new list)."""
    out = list(words)
    if len(out) > 1 and order.low_word_first:
        out.reverse()
    if order.bytes_swapped:
        out = [_swap16(w) for w in out]
    return out


def decode(registers: Sequence[int], dtype: DataType, order: WordOrder = WordOrder.ABCD) -> int | float:
    """Decode one value from exactly ``dtype.words`` registers.

    Raises:
        RegisterError: wrong number of registers, or a register outside 0..65535.
    """
    if len(registers) != dtype.words:
        raise RegisterError(f"{dtype} needs {dtype.words} registers, got {len(registers)}")
    for word in registers:
        if not 0 <= word <= 0xFFFF:
            raise RegisterError(f"register value {word} is not a 16-bit word")
    canonical = _to_canonical(registers, order)
    raw = b"".join(_SWAP16.pack(w) for w in canonical)
    value: int | float = _STRUCT[dtype].unpack(raw)[0]
    return value


def encode(value: int | float, dtype: DataType, order: WordOrder = WordOrder.ABCD) -> tuple[int, ...]:
    """Encode one value into registers as the meter would send them (the inverse of :func:`decode`).

    Raises:
        RegisterError: the value does not fit the type.
    """
    if dtype.is_float:
        if dtype is DataType.FLOAT32 and math.isfinite(value) and abs(value) > 3.4028234663852886e38:
            raise RegisterError(f"{value} does not fit float32")
        raw = _STRUCT[dtype].pack(float(value))
    else:
        if isinstance(value, float) and not value.is_integer():
            raise RegisterError(f"{value} is not an integer for {dtype}")
        try:
            raw = _STRUCT[dtype].pack(int(value))
        except (struct.error, OverflowError) as exc:
            raise RegisterError(f"{value} does not fit {dtype}") from exc
    canonical = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    # Both swaps are their own inverse, so the canonical -> wire transform is the same function.
    return tuple(_to_canonical(canonical, order))
