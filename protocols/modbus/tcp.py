"""The MBAP header of Modbus TCP: what a PDU carries instead of the RTU unit byte and CRC.

Frame (Modbus Messaging on TCP/IP Implementation Guide V1.0b, 3.1.3)::

    [transaction id][protocol id][length][unit id][PDU: function code, data]
          2b             2b          2b       1b      1 + up to 252 bytes

``protocol id`` is 0 for Modbus; ``length`` counts the unit id and the PDU. There is no CRC: TCP
checks the bytes, and the transaction id pairs an answer with its request.

Pure: no I/O, no logging. Errors are :class:`~meterlink.protocols.modbus.rtu.FrameError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .rtu import FrameError

MBAP_SIZE: Final = 7
MAX_LENGTH: Final = 254  # unit id + a PDU of at most 253 bytes


@dataclass(frozen=True, slots=True)
class MbapHeader:
    """A decoded MBAP header. ``pdu_size`` is how many bytes follow it."""

    transaction_id: int
    protocol_id: int
    length: int
    unit: int

    @property
    def pdu_size(self) -> int:
        return self.length - 1


def encode_mbap(transaction_id: int, unit: int, pdu: bytes) -> bytes:
    """A whole Modbus TCP frame: the MBAP header for ``pdu``, then ``pdu``.

    Raises:
        FrameError: a field out of range, or an empty or oversized PDU.
    """
    if not 0 <= transaction_id <= 0xFFFF:
        raise FrameError(f"transaction id {transaction_id} is outside 0..65535")
    if not 0 <= unit <= 0xFF:
        raise FrameError(f"unit {unit} is outside 0..255")
    length = len(pdu) + 1
    if not 2 <= length <= MAX_LENGTH:
        raise FrameError(f"PDU of {len(pdu)} bytes")
    return transaction_id.to_bytes(2, "big") + b"\x00\x00" + length.to_bytes(2, "big") + bytes([unit]) + pdu


def decode_mbap(header: bytes) -> MbapHeader:
    """Decode the first :data:`MBAP_SIZE` bytes of a frame.

    Raises:
        FrameError: too few bytes, a protocol id other than 0, or a length outside 2..254.
    """
    if len(header) < MBAP_SIZE:
        raise FrameError(f"MBAP header needs {MBAP_SIZE} bytes, got {len(header)}")
    tid = int.from_bytes(header[0:2], "big")
    protocol = int.from_bytes(header[2:4], "big")
    length = int.from_bytes(header[4:6], "big")
    if protocol != 0:
        raise FrameError(f"protocol id {protocol} is not Modbus (0)")
    if not 2 <= length <= MAX_LENGTH:
        raise FrameError(f"MBAP length {length} is outside 2..{MAX_LENGTH}")
    return MbapHeader(tid, protocol, length, header[6])


@dataclass(frozen=True, slots=True)
class TcpReply:
    """One whole answer off the stream: its transaction id, unit and PDU (not yet parsed)."""

    transaction_id: int
    unit: int
    pdu: bytes


class ReplyFramer:
    """Cuts a Modbus TCP byte stream into frames, however the bytes were split into reads.

    Feed bytes with :meth:`feed`, take frames with :meth:`next_reply` until it returns None. A
    header that cannot be Modbus (protocol id, length) raises FrameError: on a stream the frame
    boundaries are then lost for good, and the owner of the connection closes it.
    """

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> None:
        self._buffer = self._buffer + data if self._buffer else data

    @property
    def pending(self) -> int:
        """Bytes held that are not yet a whole frame."""
        return len(self._buffer)

    def next_reply(self) -> TcpReply | None:
        """The next whole frame, or None until more bytes arrive.

        Raises:
            FrameError: the header at the front of the stream is not a Modbus TCP header.
        """
        buffer = self._buffer
        if len(buffer) < MBAP_SIZE:
            return None
        header = decode_mbap(buffer)
        end = MBAP_SIZE + header.pdu_size
        if len(buffer) < end:
            return None
        self._buffer = buffer[end:]
        return TcpReply(header.transaction_id, header.unit, buffer[MBAP_SIZE:end])
