"""All of a meter's values decoded from the registers of its one read at once.

Most meters answer every value in one request, and every value is plain (one part, read as is:
see :func:`~.values.plain_part`). Their values are then one struct unpack of the block, its bytes
first put in each value's canonical order by one permutation, instead of a register image built
per poll and a lookup, pack and unpack per value. The result equals each value's own decode for
every block of 16-bit words (a property test holds them to it).

Pure, like the rest of this package: registers in, floats out.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from operator import itemgetter

from .plan import ReadRequest
from .registers import STRUCT_CODE, RegisterError
from .values import ValueSpec, byte_order, plain_converter, plain_part

BlockDecoder = Callable[[Sequence[int]], list[float]]


def block_decoder(specs: Sequence[ValueSpec], request: ReadRequest) -> BlockDecoder | None:
    """A decoder of ``specs`` from the registers ``request`` reads; None unless every value is plain
    and lies inside that block (such a meter decodes value by value)."""
    address, count = request.address, request.count
    perm: list[int] = []
    codes = ">"
    converters: list[Callable[[int | float], float]] = []
    for spec in specs:
        part = plain_part(spec)
        if (
            part is None
            or spec.function != request.function
            or part.address < address
            or part.address + part.dtype.words > address + count
        ):
            return None
        first = 2 * (part.address - address)
        perm.extend(first + b for b in byte_order(part.dtype, part.order))
        codes += STRUCT_CODE[part.dtype]
        converters.append(plain_converter(part.dtype, spec.quantity))
    if not converters:
        return None
    pack = struct.Struct(f">{count}H").pack
    pick = itemgetter(*perm)  # every value is 2 bytes at least: a tuple, never a lone int
    unpack = struct.Struct(codes).unpack

    def decode(words: Sequence[int]) -> list[float]:
        try:
            raws = unpack(bytes(pick(pack(*words))))
        except struct.error:
            raise RegisterError(f"registers {list(words)} are not {count} 16-bit words") from None
        return [convert(raw) for convert, raw in zip(converters, raws, strict=True)]

    return decode
