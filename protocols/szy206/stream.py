"""Reassemble SZY206 frames from a byte stream (TCP): sticky packets, split packets, noise.

The caller owns the socket: it passes what it reads to :meth:`Reassembler.feed` and then calls
:meth:`Reassembler.next_frame` until it returns :data:`NEED_DATA` (h11's contract)::

    r = Reassembler()
    r.feed(chunk)
    while (frame := r.next_frame()) is not NEED_DATA:
        handle(frame)

Hunting (notes section 4, "TCP framing"): skip to the next 68H; require 68H again two bytes on;
take L + 5 bytes (or the picture length, frame.py) and accept them only if the last is 16H and the
CRC matches. Anything else - a bad CRC, a wrong end byte, an impossible length - rejects the
candidate and drops just its first byte, so a real frame that starts inside the rejected bytes is
still found. A frame whose bytes check out but whose PW/Tp do not fit the data area is dropped
whole. Garbage is skipped with ``bytes.find`` rather than byte by byte. A candidate whose L
(corrupted) claims more bytes than have arrived holds the frames behind it until they arrive;
the caller, who owns the clock, may give up on it with :meth:`Reassembler.resync`.

The buffer is bounded: :meth:`feed` raises :class:`BufferFullError` rather than hold more than
``max_buffer`` undrained bytes (a candidate frame is at most 65 550 bytes, a picture of 64 KiB).
"""

from __future__ import annotations

import enum
from typing import Final, Literal

from .crc import crc8
from .errors import BufferFullError, SZY206Error, UnsupportedError
from .frame import END, MIN_USER_LEN, START, Frame, parse_checked, picture_total


class _NeedData(enum.Enum):
    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData.NEED_DATA
"""Returned by :meth:`Reassembler.next_frame` when the buffer holds no complete frame."""

NeedData = Literal[_NeedData.NEED_DATA]

_START = bytes((START,))
# Short frames recur byte for byte (keep-alives, queries, confirms without Tp): a bounded memo
# of their decoded Frame (immutable, so shareable) skips the CRC and the split on a repeat.
_MEMO_LENGTH = 24  # L of frames worth remembering (a keep-alive has L = 8)
_MEMO_SIZE = 1024


class Reassembler:
    """Turns stream bytes into :class:`Frame` objects; counts what it throws away.

    ``tp_len`` and ``pw`` are passed to the frame decoder (see :func:`frame.decode`).

    Attributes the caller may read (and log):
        bytes_discarded: bytes dropped without becoming part of a returned frame.
        frames_rejected: candidates with a ``68H L 68H`` header that were refused (bad CRC, end
            byte or length, PW/Tp that do not fit, or given up with :meth:`resync`).
        frames_decoded: frames returned.
        last_error: the reason for the last rejection, or None.
    """

    def __init__(self, *, tp_len: int | None = None, pw: bool | None = None, max_buffer: int = 1 << 18) -> None:
        if tp_len not in (None, 0, 5, 7):
            raise UnsupportedError(f"tp_len must be None, 0, 5 or 7, got {tp_len}")
        if max_buffer < 65_550:
            raise UnsupportedError("max_buffer must hold the largest frame (65550 bytes)")
        self.tp_len = tp_len
        self.pw = pw
        self.max_buffer = max_buffer
        self._buf = b""
        self._pos = 0
        self.bytes_discarded = 0
        self.frames_rejected = 0
        self.frames_decoded = 0
        self.last_error: str | None = None
        self._memo: dict[bytes, Frame] = {}

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes (nothing is parsed until :meth:`next_frame`)."""
        pending = len(self._buf) - self._pos
        if pending + len(data) > self.max_buffer:
            raise BufferFullError(f"{pending} undrained bytes + {len(data)} new exceed {self.max_buffer}")
        self._buf = self._buf[self._pos :] + bytes(data) if pending else bytes(data)
        self._pos = 0

    def resync(self) -> None:
        """Give up on the frame being waited for: drop its first byte and hunt again.

        A corrupted L can make a candidate claim more bytes than will come soon, which holds back
        the frames behind it until enough bytes arrive. The reassembler has no clock; a caller
        that sees the link idle with bytes buffered calls this, then :meth:`next_frame` again.
        """
        if self._pos < len(self._buf):
            self._pos = self._reject(self._pos, "gave up waiting for the rest of a frame")

    def _reject(self, pos: int, reason: str, drop: int = 1) -> int:
        self.frames_rejected += 1
        self.bytes_discarded += drop
        self.last_error = reason
        return pos + drop

    def next_frame(self) -> Frame | NeedData:
        """The next complete frame, or NEED_DATA."""
        buf = self._buf
        size = len(buf)
        pos = self._pos
        while True:
            if pos >= size or buf[pos] != START:
                found = buf.find(_START, pos)
                if found < 0:
                    self.bytes_discarded += size - pos
                    self._buf, self._pos = b"", 0
                    return NEED_DATA
                self.bytes_discarded += found - pos
                pos = found
            if size - pos < 4:
                break
            if buf[pos + 2] != START:  # a stray 68H, not a frame header: plain noise
                self.bytes_discarded += 1
                pos += 1
                continue
            length = buf[pos + 1]
            if length >= MIN_USER_LEN + (1 if buf[pos + 3] & 0x40 else 0):
                end = pos + length + 5
                if end > size:
                    break
                if length <= _MEMO_LENGTH:
                    raw = buf[pos:end]
                    frame = self._memo.get(raw)
                    if frame is not None:  # the same bytes were checked and decoded before
                        self._pos = end
                        self.frames_decoded += 1
                        return frame
                if buf[end - 1] == END and crc8(buf[pos + 3 : end - 2]) == buf[end - 2]:
                    try:
                        frame = parse_checked(buf, pos, end, False, self.tp_len, self.pw)
                    except SZY206Error as exc:  # framing is sound: drop the whole frame
                        pos = self._reject(pos, str(exc), end - pos)
                        continue
                    if length <= _MEMO_LENGTH:
                        if len(self._memo) >= _MEMO_SIZE:
                            self._memo.clear()
                        self._memo[raw] = frame
                    self._pos = end
                    self.frames_decoded += 1
                    return frame
            # Not an ordinary frame here: perhaps a picture frame (L counts KiB).
            total = picture_total(buf, pos)
            if total == 0:
                break
            if total > 0:
                end = pos + total
                if end > size:
                    break
                if buf[end - 1] == END and crc8(buf[pos + 3 : end - 2]) == buf[end - 2]:
                    # Pictures carry no PW or Tp, so splitting them cannot fail.
                    self._pos = end
                    self.frames_decoded += 1
                    return parse_checked(buf, pos, end, True, None, None)
            pos = self._reject(pos, "bad check, end byte or length")
        self._pos = pos
        return NEED_DATA
