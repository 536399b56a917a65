"""CRC of SL651-2014 frames: CRC-16/MODBUS, sent high byte first.

Parameters (SL651-2014 6.3 and appendix; the same CRC as Modbus RTU): width 16, polynomial
8005H reflected (A001H), init FFFFH, input and output reflected, no final XOR; computed over
the frame from its start characters to its end character. Check value of ASCII "123456789" is
4B37H. Unlike Modbus, SL651 puts the high byte first on the wire.

Strategy: a short frame goes through a 256-entry table, one lookup per byte; a longer one
through a 65 536-entry table, one lookup per 16-bit word (a reflected CRC-16 shifts its whole
register out in two bytes, so ``crc = WORDS[crc ^ word]``), built on first use. Many frames at once
(:func:`crc16_many`, the reassembler's check of a read full of reports) use the CRC's
linearity, as the SZY206 CRC does: with init 0 the CRC of a message does not change with
leading zero bytes, and a byte d places before the end adds a fixed 16-bit share of itself. So
each frame is set right-aligned in a lane of ``_LANE`` bytes, the lanes are joined, and each
byte column is mapped by two ``bytes.translate`` tables to the low and high bytes of its share;
the Python work is per column, not per byte. The init FFFFH adds a term that depends only on the
length (:func:`_init_term`, cached).
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from functools import lru_cache
from itertools import repeat

POLY = 0xA001  # 8005H reflected


def _make_table() -> tuple[int, ...]:
    table = []
    for value in range(256):
        crc = value
        for _ in range(8):
            crc = (crc >> 1) ^ POLY if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


TABLE: tuple[int, ...] = _make_table()


_WORDS_FROM = 24 if sys.byteorder == "little" else 1 << 62  # words are read in host order


@lru_cache(maxsize=1)
def _words() -> tuple[int, ...]:
    """WORDS[x]: the register after two zero bytes from ``x`` (x = crc ^ little-endian word)."""
    table = TABLE
    words = []
    for value in range(1 << 16):
        step = (value >> 8) ^ table[value & 0xFF]
        words.append((step >> 8) ^ table[step & 0xFF])
    return tuple(words)


def crc16(data: bytes | bytearray | memoryview, crc: int = 0xFFFF) -> int:
    """CRC-16/MODBUS of ``data`` (as an int; the frame sends ``crc >> 8`` first)."""
    table = TABLE
    size = len(data)
    if size < _WORDS_FROM:
        for byte in data:
            crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
        return crc
    words = _words()
    # An array of host-order words iterates faster than a memoryview cast to "H".
    pairs = array("H")
    pairs.frombytes(data[: size & ~1])
    for word in pairs:
        crc = words[crc ^ word]
    if size & 1:
        crc = (crc >> 8) ^ table[(crc ^ data[-1]) & 0xFF]
    return crc


def crc16_reference(data: bytes | bytearray | memoryview) -> int:
    """Bit by bit, as the standard's appendix writes it; the tests compare :func:`crc16` with it."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ POLY if crc & 1 else crc >> 1
    return crc


@lru_cache(maxsize=4096)
def _init_term(length: int) -> int:
    """What init FFFFH adds to the init-0 CRC of a message of ``length`` bytes."""
    return crc16(bytes(length))


_LANE = 128  # bytes; longer frames are checked one by one


@lru_cache(maxsize=1)
def _columns() -> tuple[tuple[bytes, bytes], ...]:
    """(low, high) translate tables per lane column: a byte's share of the init-0 CRC."""
    share = list(TABLE)  # the last byte: table lookup of the byte alone
    columns = []
    for _ in range(_LANE):
        columns.append((bytes(s & 0xFF for s in share), bytes(s >> 8 for s in share)))
        share = [(s >> 8) ^ TABLE[s & 0xFF] for s in share]  # one zero byte after it
    columns.reverse()  # column 0 is the farthest from the end
    return tuple(columns)


def crc16_many(blocks: Sequence[bytes]) -> list[int]:
    """``[crc16(b) for b in blocks]``, faster for many blocks (see the module's strategy).
    ``blocks`` must be ``bytes`` objects."""
    count = len(blocks)
    if count == 0:
        return []
    widest = max(map(len, blocks))
    if widest > _LANE:
        return [crc16(block) for block in blocks]
    joined = b"".join(map(bytes.rjust, blocks, repeat(_LANE), repeat(b"\0")))
    from_bytes = int.from_bytes
    low = high = 0
    for column, (lo_table, hi_table) in enumerate(_columns()[_LANE - widest :], _LANE - widest):
        lane = joined[column::_LANE]
        low ^= from_bytes(lane.translate(lo_table), "big")
        high ^= from_bytes(lane.translate(hi_table), "big")
    lows = low.to_bytes(count, "big")
    highs = high.to_bytes(count, "big")
    terms = map(_init_term, map(len, blocks))
    return [(h << 8 | lo) ^ t for h, lo, t in zip(highs, lows, terms, strict=True)]
