"""Raw DEFLATE (RFC 1951) of a payload, announced by ``"cty": "json+deflate"`` in the JWS header.

``cty`` is a registered JWS header (RFC 7515 4.1.10), so strict JOSE libraries accept it, where the
JWE-only ``zip`` header would be refused. docs/wire-format.md section 3.4 has the figures.
"""

from __future__ import annotations

import zlib

from .errors import WireError

DEFLATED = "json+deflate"  # the cty of a compressed payload
MAX_INFLATED = 16 * 1024 * 1024  # a receiver never inflates a message past this (zip bombs)


class InflateError(WireError):
    """Compressed bytes that do not inflate, are truncated, or would inflate past the limit."""


def deflate(data: bytes) -> bytes:
    """``data`` as raw DEFLATE, without zlib header or checksum."""
    # Level 6: within 8 % of level 9's size at a third of its CPU time.
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


def inflate(data: bytes, limit: int = MAX_INFLATED) -> bytes:
    """The bytes ``data`` deflates, at most ``limit`` of them.

    Raises:
        InflateError: ``data`` is not raw DEFLATE, ends early, or holds more than ``limit`` bytes.
    """
    unpacker = zlib.decompressobj(-15)
    try:
        out = unpacker.decompress(data, limit)
    except zlib.error:
        raise InflateError("payload does not inflate (cty json+deflate)") from None
    if unpacker.unconsumed_tail or not unpacker.eof:
        raise InflateError("compressed payload is truncated or too large")
    return out
