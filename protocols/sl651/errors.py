"""Errors of the SL651 codec: one root, one subclass per way a frame can be wrong.

Everything this package raises on bad input is an :class:`SL651Error` (a ``ValueError``), so a
caller that feeds it bytes from the network needs one ``except`` clause. Each subclass carries a
short ``reason`` for the one line that ``meterlink decode sl651`` prints.
"""

from __future__ import annotations


class SL651Error(ValueError):
    """Root of every error raised by :mod:`meterlink.protocols.sl651`."""

    reason = "invalid SL651 frame"


class StartError(SL651Error):
    """The frame does not open with ``7E7E`` (HEX) or SOH (ASCII), or its start character after
    the header is neither STX nor SYN."""

    reason = "wrong start characters"


class EndCharError(SL651Error):
    """The byte before the CRC is none of ETX, ETB, ENQ, EOT, ACK, NAK, ESC."""

    reason = "wrong end character"


class LengthError(SL651Error):
    """The body length field does not match the bytes of the frame."""

    reason = "wrong length"


class ChecksumError(SL651Error):
    """The CRC-16/MODBUS over the frame does not match the one sent."""

    reason = "wrong CRC"

    def __init__(self, message: str, *, expected: int, found: int) -> None:
        super().__init__(message)
        self.expected = expected
        self.found = found


class HeaderError(SL651Error):
    """A header field that cannot be read (direction bits, BCD address digits, ASCII hex)."""

    reason = "bad header"


class BodyError(SL651Error):
    """The body does not have the layout its function calls for (an element runs past the end,
    a BCD digit above 9, a time that is no date)."""

    reason = "bad body"


class EncodeError(SL651Error):
    """A value or field that cannot be put on the wire (out of range, too long)."""

    reason = "cannot encode"


class BufferFullError(SL651Error):
    """The stream reassembler holds more undrained bytes than its bound allows."""

    reason = "receive buffer full"


class LocalProtocolError(SL651Error):
    """The caller asked a :class:`~.conversation.Conversation` for something the protocol does not
    allow (a report from the centre, an acknowledgement of a frame that needs none)."""

    reason = "not allowed in this conversation"
