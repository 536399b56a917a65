"""A meter value described by its registers, decoded from a register image and encoded back.

A value is one or more *parts* summed, then scaled: ``value = (sum(part * multiplier)) / 10**dp *
scale + offset``. One part covers the usual case (a float32 flow rate). Several parts cover the
"integer + fraction" totalizers of Chinese meters:

- TUF-2000: ``int32 @8 + float32 @10`` (both CDAB), the positive accumulator and its fraction;
- generic electromagnetic converter: ``uint32 @26 x 1e9 + uint32 @3 + float32 @5``.

``dp`` comes from a decimals register when the meter states its own resolution (QDY30A level
transmitters keep the number of decimal places in a register).

Pure: addresses here are wire (0-based PDU) addresses; numbering conventions are resolved before.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from operator import itemgetter

from .plan import Span
from .registers import STRUCT_CODE, DataType, RegisterError, WordOrder, encode


@dataclass(frozen=True, slots=True)
class Part:
    address: int
    dtype: DataType
    order: WordOrder = WordOrder.ABCD
    multiplier: float = 1.0

    def span(self, function: int) -> Span:
        return Span(function, self.address, self.dtype.words)

    def read(self, image: Mapping[int, int]) -> int | float:
        """This part's value from the image; the hot path of every poll, so precompiled per part."""
        addresses, pack, unpack = _compiled(self.address, self.dtype, self.order)
        try:
            words = [image[a] for a in addresses]
        except KeyError as exc:
            raise RegisterError(f"register {exc.args[0]} was not read") from None
        try:
            return unpack(pack(*words))
        except struct.error:
            raise RegisterError(f"registers {words} are not 16-bit words") from None


def byte_order(dtype: DataType, order: WordOrder) -> list[int]:
    """Where each byte of the canonical (ABCD...) value sits among the value's wire bytes: byte i
    of the value is wire byte ``byte_order(...)[i]``."""
    n = dtype.words
    perm = list(range(2 * n))
    if n > 1 and order.low_word_first:
        perm = [b for w in reversed(range(n)) for b in (2 * w, 2 * w + 1)]
    if order.bytes_swapped:
        perm = [perm[i ^ 1] for i in range(2 * n)]
    return perm


@lru_cache(maxsize=1024)
def _compiled(
    address: int, dtype: DataType, order: WordOrder
) -> tuple[range, Callable[..., bytes], Callable[[bytes], int | float]]:
    """Addresses to read, a packer of the wire words, and an unpacker that applies the word order."""
    n = dtype.words
    pack = struct.Struct(f">{n}H").pack
    perm = byte_order(dtype, order)
    fmt = struct.Struct(">" + STRUCT_CODE[dtype])
    if perm == list(range(2 * n)):
        return range(address, address + n), pack, lambda raw: fmt.unpack(raw)[0]
    pick = itemgetter(*perm)
    return range(address, address + n), pack, lambda raw: fmt.unpack(bytes(pick(raw)))[0]


@dataclass(frozen=True, slots=True)
class ValueSpec:
    """How one quantity of a meter is read."""

    quantity: str
    unit: str
    function: int
    parts: tuple[Part, ...]
    scale: float = 1.0
    offset: float = 0.0
    decimals_address: int | None = None
    # Built once from the fields above: decode() runs for every value of every poll.
    _decoder: Callable[[Mapping[int, int]], float] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_decoder", _plain_decoder(self) or self._decode_general)

    def spans(self) -> list[Span]:
        spans = [p.span(self.function) for p in self.parts]
        if self.decimals_address is not None:
            spans.append(Span(self.function, self.decimals_address, 1))
        return spans

    def decode(self, image: Mapping[int, int]) -> float:
        """Decode from a register image (wire address -> register value).

        Raises:
            RegisterError: a register is missing from the image, or the value is not finite.
        """
        return self._decoder(image)

    def _decode_general(self, image: Mapping[int, int]) -> float:
        """Any value: its parts summed, divided by its decimals, scaled (the reference decode)."""
        total = 0.0
        for part in self.parts:
            raw = part.read(image)
            if part.dtype is DataType.FLOAT32:
                # float32 holds about 7 significant digits; the rest is conversion noise that would
                # only cost bytes on the wire and suggest precision the meter does not have.
                raw = float(f"{raw:.7g}")
            total += raw * part.multiplier
        if self.decimals_address is not None:
            dp = _word(image, self.decimals_address)
            if not 0 <= dp <= 9:
                raise RegisterError(f"decimals register at {self.decimals_address} holds {dp}, not 0..9")
            total /= 10**dp
        # 15 significant digits drop binary noise of the sum and scaling (0.1 * 3), nothing real.
        value = float(f"{total * self.scale + self.offset:.15g}")
        if not math.isfinite(value):
            raise RegisterError(f"{self.quantity} decodes to {value}")
        return value

    def encode(self, value: float, decimals: int = 0) -> dict[int, int]:
        """Registers a meter would hold for ``value`` (used by the simulator).

        Integer parts take whole multiples, largest multiplier first; a float part takes the rest.
        """
        raw = (value - self.offset) / self.scale * 10**decimals
        image: dict[int, int] = {}
        if self.decimals_address is not None:
            image[self.decimals_address] = decimals
        remaining = raw
        for part in sorted(self.parts, key=lambda p: -p.multiplier):
            if part.dtype.is_float:
                piece: float = remaining / part.multiplier
            else:
                piece = math.trunc(round(remaining / part.multiplier, 9))
            remaining -= piece * part.multiplier
            for i, word in enumerate(encode(piece, part.dtype, part.order)):
                image[part.address + i] = word
        return image


def _word(image: Mapping[int, int], address: int) -> int:
    try:
        return image[address]
    except KeyError:
        raise RegisterError(f"register {address} was not read") from None


def plain_part(spec: ValueSpec) -> Part | None:
    """The one part of a usual value, read as is (no multiplier, decimals or scaling); None for any
    other value."""
    if len(spec.parts) != 1 or spec.decimals_address is not None or (spec.scale, spec.offset) != (1.0, 0.0):
        return None
    part = spec.parts[0]
    return part if part.multiplier == 1.0 else None


def plain_converter(dtype: DataType, quantity: str) -> Callable[[int | float], float]:
    """What turns a plain part's raw value into the value the general decode gives, chosen once per
    value (it runs for every value of every poll).

    The general decode's last rounding to 15 significant digits changes nothing here: an integer
    of at most 32 bits and a float32 already rounded to 7 digits come out of it unchanged. Adding
    0.0 keeps its one other effect, -0.0 read as 0.0.
    """
    if not dtype.is_float:
        return float
    digits = "%.7g" if dtype is DataType.FLOAT32 else "%.15g"
    isfinite = math.isfinite

    def convert(raw: int | float) -> float:
        value = float(digits % (raw + 0.0)) + 0.0
        if not isfinite(value):
            raise RegisterError(f"{quantity} decodes to {value}")
        return value

    return convert


def _plain_decoder(spec: ValueSpec) -> Callable[[Mapping[int, int]], float] | None:
    """A shortcut for a plain value (:func:`plain_part`), equal to the general decode for every
    input; None for any other value."""
    part = plain_part(spec)
    if part is None:
        return None
    addresses, pack, unpack = _compiled(part.address, part.dtype, part.order)
    convert = plain_converter(part.dtype, spec.quantity)

    def decode(image: Mapping[int, int]) -> float:
        try:
            words = [image[a] for a in addresses]
        except KeyError as exc:
            raise RegisterError(f"register {exc.args[0]} was not read") from None
        try:
            raw = unpack(pack(*words))
        except struct.error:
            raise RegisterError(f"registers {words} are not 16-bit words") from None
        return convert(raw)

    return decode
