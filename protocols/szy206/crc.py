"""CS of SZY206 / SL/T 427 frames: CRC-8, polynomial E5H, over the user data only.

Parameters (notes section 2; the SL/T 427 text writes the polynomial as x^7+x^6+x^5+x^2+1 and
implementations use the byte E5H with x^8 implicit): width 8, init 00H, MSB first (left shift),
no reflection, no final XOR. Check value of ASCII "123456789" is F7H.

Strategy: short inputs (most frames) go through a 256-entry table, one lookup per byte. Longer
ones are read as one integer M and reduced in C-implemented integer operations:

- fold: the order of x modulo the polynomial 1E5H is 126, so x^(8*63) = x^504 = 1 (mod P) and a
  message has the same CRC as the XOR of its 504-bit blocks aligned at its end (a picture frame's
  1 KiB folds in five shift/XOR steps, each halving its length);
- parity: the CRC is linear in the bits of M. Bit r of the CRC is the parity of M AND mask_r,
  where mask_r has bit m set when x^(m+8) mod P has bit r; eight AND + bit_count pairs.

Many inputs at once (:func:`crc8_many`, the reassembler's check of every frame of a read): each
input is set right-aligned in a 63-byte lane (leading zeros do not change a CRC; a longer input
is folded to 63 bytes first), the lanes are joined, and for each of the 63 byte columns one
``bytes.translate`` maps the bytes of every lane to their share of the CRC (the CRC is linear: a
byte d places before the end adds byte * x^(8d+8) mod P). The shares of the columns are XORed as
integers, one byte per lane. The Python work is per column, not per byte or per input.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat

POLY = 0xE5


def _make_table() -> tuple[int, ...]:
    table = []
    for value in range(256):
        crc = value
        for _ in range(8):
            crc = ((crc << 1) ^ POLY) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return tuple(table)


TABLE: tuple[int, ...] = _make_table()

_BLOCK_BITS = 8 * 63  # x^504 == 1 mod 1E5H: blocks of this many bits fold onto each other
# Masks of 504 * 2**k bits, enough for the biggest picture frame (64 KiB); longer inputs make theirs.
_FOLD_MASKS = tuple((1 << (_BLOCK_BITS << k)) - 1 for k in range(11))
_BIG_FROM = 36  # from this many bytes on, the integer path beats the per-byte loop


def _parity_masks() -> tuple[int, ...]:
    def times_x(residue: int) -> int:
        residue <<= 1
        return residue ^ (0x100 | POLY) if residue & 0x100 else residue

    residue = 1
    for _ in range(8):  # the CRC is M(x) * x^8 mod P
        residue = times_x(residue)
    residues = []
    for _ in range(_BLOCK_BITS):  # x^(m+8) mod P for bit m = 0, 1, ... of M
        residues.append(residue)
        residue = times_x(residue)
    return tuple(sum(1 << m for m, res in enumerate(residues) if res >> r & 1) for r in range(8))


_M0, _M1, _M2, _M3, _M4, _M5, _M6, _M7 = _parity_masks()


def _fold(value: int) -> int:
    """A value below 2**504 with the same CRC: the XOR of its 504-bit blocks aligned at the end."""
    nbits = value.bit_length()
    while nbits > _BLOCK_BITS:
        # The largest shift 504 * 2**k below nbits: both halves then fit in `shift` bits.
        k = ((nbits - 1) // _BLOCK_BITS).bit_length() - 1
        shift = _BLOCK_BITS << k
        mask = _FOLD_MASKS[k] if k < len(_FOLD_MASKS) else (1 << shift) - 1
        value = (value >> shift) ^ (value & mask)
        nbits = shift
    return value


def crc8(data: bytes | bytearray | memoryview) -> int:
    """CRC-8/E5 of ``data`` (the user data area: C, DIVS, A, AFN, D, PW, Tp)."""
    if len(data) < _BIG_FROM:
        crc = 0
        table = TABLE
        for byte in data:
            crc = table[crc ^ byte]
        return crc
    value = _fold(int.from_bytes(data, "big"))
    return (
        ((value & _M0).bit_count() & 1)
        | ((value & _M1).bit_count() & 1) << 1
        | ((value & _M2).bit_count() & 1) << 2
        | ((value & _M3).bit_count() & 1) << 3
        | ((value & _M4).bit_count() & 1) << 4
        | ((value & _M5).bit_count() & 1) << 5
        | ((value & _M6).bit_count() & 1) << 6
        | ((value & _M7).bit_count() & 1) << 7
    )


_LANE = _BLOCK_BITS // 8  # bytes


def _column_tables() -> tuple[tuple[int, bytes], ...]:
    """(column, table) for each column of a lane: table[byte] is the byte's share of the CRC."""
    step = bytes(TABLE)  # byte * x^8 mod P: the share of the last byte
    shares = [step]
    for _ in range(_LANE - 1):  # one byte further from the end: times x^8 again
        shares.append(shares[-1].translate(step))
    return tuple((column, shares[_LANE - 1 - column]) for column in range(_LANE))


_COLUMNS = _column_tables()


def _lane(block: bytes) -> bytes:
    return _fold(int.from_bytes(block, "big")).to_bytes(_LANE, "big")


def crc8_many(blocks: Sequence[bytes]) -> bytes:
    """The CRC-8/E5 of each block, one byte each, i.e. ``bytes(map(crc8, blocks))``; faster from
    a few dozen blocks on (see the module's strategy). ``blocks`` must be ``bytes`` objects."""
    widest = max(map(len, blocks), default=0)
    lanes = list(map(bytes.rjust, blocks, repeat(_LANE), repeat(b"\0")))
    if widest > _LANE:
        lanes = [lane if len(lane) == _LANE else _lane(lane) for lane in lanes]
        widest = _LANE
    joined = b"".join(lanes)
    from_bytes = int.from_bytes
    shares = 0
    for column, table in _COLUMNS[_LANE - widest :]:  # the columns before hold only zeros
        shares ^= from_bytes(joined[column::_LANE].translate(table), "big")
    return shares.to_bytes(len(lanes), "big")


def crc8_reference(data: bytes | bytearray | memoryview) -> int:
    """Bit-by-bit CRC-8/E5, as the notes write it; the tests compare :func:`crc8` against it."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ POLY) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc
