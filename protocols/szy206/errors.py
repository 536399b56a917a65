"""Errors of the SZY206 codec: one root, one subclass per way a frame can be wrong.

Everything this package raises on bad input is a :class:`SZY206Error` (a ``ValueError``), so a
caller that feeds it bytes from the network needs one ``except`` clause. The subclasses let a
caller (the ``meterlink decode szy206`` command, the uplink's logs) say in one line *why* a frame
was refused; each carries a short ``reason`` for that line.
"""

from __future__ import annotations


class SZY206Error(ValueError):
    """Root of every error raised by :mod:`meterlink.protocols.szy206`."""

    reason = "invalid SZY206 frame"


class FramingError(SZY206Error):
    """The bytes around the user data are wrong (start or end character)."""

    reason = "bad framing"


class StartByteError(FramingError):
    """The frame does not open with ``68H L 68H``."""

    reason = "missing start bytes 68H"


class EndByteError(FramingError):
    """The byte after the check is not ``16H``."""

    reason = "missing end byte 16H"


class LengthError(SZY206Error):
    """L does not match the number of bytes, or no frame can have this length."""

    reason = "wrong length"


class ChecksumError(SZY206Error):
    """The CRC-8 over the user data does not match CS."""

    reason = "wrong check (CRC)"

    def __init__(self, message: str, *, expected: int, found: int) -> None:
        super().__init__(message)
        self.expected = expected
        self.found = found


class DataError(SZY206Error):
    """The data area (or PW/Tp) does not have the layout the frame's AFN calls for."""

    reason = "bad data area"


class UnsupportedError(SZY206Error):
    """A well-formed frame that the helper asked for does not handle (other AFN, type code)."""

    reason = "unsupported frame"


class EncodeError(SZY206Error):
    """A value or field that cannot be put on the wire (out of range, wrong size)."""

    reason = "cannot encode"


class BufferFullError(SZY206Error):
    """The stream reassembler holds more undrained bytes than its bound allows."""

    reason = "receive buffer full"


class LocalProtocolError(SZY206Error):
    """The caller asked a :class:`~.conversation.Conversation` for something the protocol does not
    allow: a second request while one awaits the same answer, a frame in the other side's
    direction, a confirm of a frame that is no report."""

    reason = "not allowed in this conversation"
