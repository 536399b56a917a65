"""Reassemble SL651 frames from a byte stream (TCP, serial): sticky packets, split packets, noise.

The caller owns the socket: it passes what it reads to :meth:`Reassembler.feed`, then calls
:meth:`Reassembler.next_frame` until it returns :data:`NEED_DATA` (h11's contract)::

    r = Reassembler()
    r.feed(chunk)
    while (frame := r.next_frame()) is not NEED_DATA:
        handle(frame)

Hunting rules: skip to the next ``7E7E`` (HEX) or SOH followed by 22 hex digits and a start
character (ASCII); read the length field; take that many bytes and accept them only if the end
character is one of the standard's and the CRC matches. Anything else - a start character that is
neither STX nor SYN, a wrong end character, a bad CRC - rejects the candidate and drops just its
first byte, so a real frame that starts inside the rejected bytes is still found. A candidate
whose (corrupted) length claims more bytes than have arrived holds the frames behind it until
they arrive; the caller, who owns the clock, may give up on it with :meth:`Reassembler.resync`.

Strategy: the split layer walks the buffer taking candidates back to back, assuming each is good,
and checks the CRCs of the whole run at once (crc.crc16_many); at the first bad one it drops that
candidate's first byte and walks again from there. Garbage between frames is skipped by one
regular-expression search (C speed). Frames cut wait in a queue for :meth:`next_frame` and
:meth:`next_raw`; the counters agree with the rules whenever :data:`NEED_DATA` was returned.

The buffer is bounded: :meth:`feed` raises :class:`BufferFullError` rather than hold more than
``max_buffer`` undrained bytes (a frame is at most 4 124 bytes).
"""

from __future__ import annotations

import enum
import re
from typing import Final, Literal

from .codes import END_CHARS, START_CHARS
from .crc import crc16, crc16_many
from .errors import BufferFullError, SL651Error
from .frame import ASCII_OVERHEAD, HEX_OVERHEAD, MAX_LENGTH, Frame, decode, from_checked_hex


class _NeedData(enum.Enum):
    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData.NEED_DATA
"""Returned by :meth:`Reassembler.next_frame` (and ``next_raw``) when no complete frame is buffered."""

NeedData = Literal[_NeedData.NEED_DATA]

_HEX_START = b"\x7e\x7e"
_START = re.compile(rb"\x7e\x7e|\x01")
_HEX_ONLY = re.compile(rb"\x7e\x7e")
_ASCII_HEAD = re.compile(rb"\x01[0-9A-F]{22}[\x02\x16]")
_HEX_DIGITS = re.compile(rb"[0-9A-F]*")
_ENDS = bytes(1 if b in END_CHARS else 0 for b in range(256))  # a lookup per candidate
_WAIT = -1
_REJECT = -2


class Reassembler:
    """Turns stream bytes into checked frames; counts what it throws away.

    Attributes the caller may read (and log):
        bytes_discarded: bytes dropped without becoming part of a returned frame.
        frames_rejected: candidates refused (bad start/end character, CRC, header) or given up
            with :meth:`resync`.
        frames_decoded: frames returned.
        last_error: the reason for the last rejection, or None.
    """

    def __init__(self, *, ascii_frames: bool = True, max_buffer: int = 1 << 18) -> None:
        if max_buffer < MAX_LENGTH + ASCII_OVERHEAD + 6:
            raise ValueError("max_buffer must hold the largest frame")
        self.max_buffer = max_buffer
        self._search = (_START if ascii_frames else _HEX_ONLY).search
        self._buf = b""
        self._pos = 0
        self._stuck = False  # _buf[_pos:] was walked and waits for bytes
        self._ready: list[bytes] = []
        self._taken = 0
        self.bytes_discarded = 0
        self.frames_rejected = 0
        self.frames_decoded = 0
        self.last_error: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes received and not yet handed out (complete frames not yet taken included)."""
        return len(self._buf) - self._pos + sum(map(len, self._ready[self._taken :]))

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes (nothing is parsed until a frame is asked for)."""
        pending = self.buffered
        if pending + len(data) > self.max_buffer:
            raise BufferFullError(f"{pending} undrained bytes + {len(data)} new exceed {self.max_buffer}")
        rest = len(self._buf) - self._pos
        self._buf = self._buf[self._pos :] + bytes(data) if rest else bytes(data)
        self._pos = 0
        self._stuck = False

    def resync(self) -> None:
        """Give up on the frame being waited for: drop its first byte and hunt again."""
        if self._pos < len(self._buf):
            self._pos += 1
            self._stuck = False
            self.bytes_discarded += 1
            self._rejected("gave up waiting for the rest of a frame")

    def _rejected(self, reason: str) -> None:
        self.frames_rejected += 1
        self.last_error = reason

    def next_raw(self) -> bytes | NeedData:
        """The wire bytes of the next checked frame, or NEED_DATA."""
        if self._taken == len(self._ready):
            self._ready = self._split()
            self._taken = 0
            if not self._ready:
                return NEED_DATA
        raw = self._ready[self._taken]
        self._taken += 1
        self.frames_decoded += 1
        return raw

    def next_frame(self) -> Frame | NeedData:
        """The next complete frame, decoded, or NEED_DATA."""
        while True:
            raw = self.next_raw()
            if raw is NEED_DATA:
                return NEED_DATA
            try:
                return from_checked_hex(raw) if raw[0] == 0x7E else decode(raw)
            except SL651Error as exc:  # sound framing, impossible header: drop it whole
                self.frames_decoded -= 1
                self.bytes_discarded += len(raw)
                self._rejected(str(exc))

    def frames_raw(self) -> list[bytes]:
        """The wire bytes of every complete frame buffered (empty when NEED_DATA)."""
        frames = self._ready[self._taken :] + self._split()
        self._ready, self._taken = [], 0
        self.frames_decoded += len(frames)
        return frames

    # -- split layer ----------------------------------------------------------------------------

    def _split(self) -> list[bytes]:
        if self._stuck:
            return []
        self._stuck = True
        buf, begin = self._buf, self._pos
        pos, frames = begin, []
        while True:
            pos, run, good = self._walk(buf, pos)
            frames += run[:good] if good < len(run) else run
            if good == len(run):
                break
            self._rejected("bad CRC")
            pos += 1  # _walk stopped at the bad candidate's start: drop its first byte
        self._pos = pos
        self.bytes_discarded += pos - begin - sum(map(len, frames))
        return frames

    def _walk(self, buf: bytes, pos: int) -> tuple[int, list[bytes], int]:
        """Take candidates from ``pos`` until bytes are missing, then CRC-check them together.
        Returns (where to go on, candidates, how many lead them with a good CRC); after a bad
        one, where to go on is that candidate's start."""
        size = len(buf)
        search = self._search
        run: list[bytes] = []
        starts: list[int] = []
        while True:
            if buf.startswith(_HEX_START, pos):
                start = pos
            else:
                match = search(buf, pos)
                if match is None:
                    # A last 7E may start a frame: keep it, unless it is behind pos (a resync).
                    pos = size - 1 if pos < size and buf[-1] == 0x7E else size
                    break
                start = match.start()
            step = self._candidate(buf, start, size)
            if step == _WAIT:
                pos = start
                break
            if step == _REJECT:
                pos = start + 1
                continue
            run.append(buf[start:step])
            starts.append(start)
            pos = step
        good = self._check(run)
        return (starts[good] if good < len(run) else pos), run, good

    def _candidate(self, buf: bytes, start: int, size: int) -> int:
        """The end of the candidate at ``start`` (CRC unchecked), _WAIT or _REJECT."""
        if buf[start] == 0x7E:
            if size - start < 14:
                return _WAIT
            if buf[start + 13] not in START_CHARS:
                self._rejected("start character is neither STX nor SYN")
                return _REJECT
            end = start + HEX_OVERHEAD + ((buf[start + 11] << 8 | buf[start + 12]) & MAX_LENGTH)
            if end > size:
                return _WAIT
            if not _ENDS[buf[end - 3]]:
                self._rejected("wrong end character")
                return _REJECT
            return end
        if size - start < 24:
            return _WAIT if _HEX_DIGITS.fullmatch(buf, start + 1) else _REJECT
        if not _ASCII_HEAD.match(buf, start):
            return _REJECT  # a stray SOH: plain noise
        end = start + ASCII_OVERHEAD + (int(buf[start + 19 : start + 23], 16) & MAX_LENGTH)
        if end > size:
            return _WAIT
        if not _ENDS[buf[end - 5]]:
            self._rejected("wrong end character")
            return _REJECT
        return end

    def _check(self, run: list[bytes]) -> int:
        """How many candidates lead ``run`` with a good CRC."""
        if not run:
            return 0
        hexes = [raw for raw in run if raw[0] == 0x7E]
        if len(hexes) == len(run) and len(run) > 8:
            crcs = crc16_many([raw[:-2] for raw in run])
            for index, (raw, crc) in enumerate(zip(run, crcs, strict=True)):
                if crc != (raw[-2] << 8 | raw[-1]):
                    return index
            return len(run)
        for index, raw in enumerate(run):
            if not _crc_ok(raw):
                return index
        return len(run)


def _crc_ok(raw: bytes) -> bool:
    if raw[0] == 0x7E:
        return crc16(memoryview(raw)[:-2]) == (raw[-2] << 8 | raw[-1])
    try:
        return crc16(memoryview(raw)[:-4]) == int(raw[-4:], 16)
    except ValueError:
        return False
