"""Reassemble SZY206 frames from a byte stream (TCP): sticky packets, split packets, noise.

The caller owns the socket: it passes what it reads to :meth:`Reassembler.feed` and then calls
:meth:`Reassembler.next_frame` until it returns :data:`NEED_DATA` (h11's contract)::

    r = Reassembler()
    r.feed(chunk)
    while (frame := r.next_frame()) is not NEED_DATA:
        handle(frame)

Two layers. The split layer finds frames and checks their framing and CRC without decoding them:
:meth:`Reassembler.next_raw` returns the wire bytes of one frame, :meth:`Reassembler.frames_raw`
those of every complete frame at once (for a caller that stores, forwards or filters frames).
:meth:`Reassembler.next_frame` decodes what the split layer returns, lazily, one frame at a time.

Hunting rules (notes section 4, "TCP framing"): skip to the next 68H; require 68H again two bytes
on; take L + 5 bytes (or the picture length, frame.py) and accept them only if the last is 16H and
the CRC matches. Anything else - a bad CRC, a wrong end byte, an impossible length - rejects the
candidate and drops just its first byte, so a real frame that starts inside the rejected bytes is
still found. A candidate whose L (corrupted) claims more bytes than have arrived holds the frames
behind it until they arrive; the caller, who owns the clock, may give up on it with
:meth:`Reassembler.resync`. A frame whose bytes check out but whose PW/Tp do not fit the data
area is dropped whole by :meth:`next_frame` (the raw methods return it: its framing is sound).

Strategy: the split layer returns the same frames, and counts the same bytes and rejections, as
those rules applied position by position (the tests hold it to them), but does its per-byte work
in C:

- Cut: one regular expression, 68H followed by either ``L 68H C .{L} 16H`` (a branch for each L
  from 7 to 255) or a lookahead for 68H two bytes on, ``split``s the buffer into garbage and
  candidates. A candidate of L + 5 bytes is an ordinary frame in all but its CRC; a 1-byte one (a
  marker) is any other ``68H ? 68H``: a picture frame, a wrong end byte or length, a frame not
  all arrived. What lies between is garbage the rules would skip byte by byte: no 68H, or 68H
  not followed by 68H two bytes on.
- Check: the CRCs of the run of candidates before the next marker are checked together
  (crc.crc8_many: one ``bytes.translate`` per byte column of all the frames), or one by one for
  a short run; the good ones before the first bad one are taken as they are.
- At a marker or a bad CRC the rules decide that one position (take a picture frame, reject, or
  wait). When they go on inside the garbage after the candidate (past a dropped marker byte, a
  picture), the cut still holds from there: a leftmost match does not depend on where the scan
  started. Otherwise the rest is cut again, over a window of twice the bytes consumed that
  doubles while windows end clean; after a refusal with no good frame before it, the rules hunt
  on their own, position by position, until four frames in a row check out. Hostile input so
  costs time in proportion to its length.
- A 68H among the last three bytes, or a marker whose frame has not all arrived, waits for
  :meth:`feed`.
- Frames cut wait in a queue for :meth:`next_raw` and :meth:`next_frame`, so the garbage counts
  may run ahead of the frames handed out; they agree with the rules whenever :data:`NEED_DATA`
  has been returned. :meth:`resync` drops a byte of what follows the queue. CRC checks are never
  memoized; :meth:`next_frame` memoizes the decoded Frame of short frames (keep-alives, queries,
  confirms without Tp recur byte for byte) whose bytes passed the checks.

The buffer is bounded: :meth:`feed` raises :class:`BufferFullError` rather than hold more than
``max_buffer`` undrained bytes (a candidate frame is at most 65 550 bytes, a picture of 64 KiB).
"""

from __future__ import annotations

import enum
import re
from itertools import repeat
from operator import getitem
from typing import Final, Literal

from .crc import TABLE, crc8, crc8_many
from .errors import BufferFullError, SZY206Error, UnsupportedError
from .frame import END, MIN_USER_LEN, START, Frame, parse_checked, picture_total


class _NeedData(enum.Enum):
    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData.NEED_DATA
"""Returned by :meth:`Reassembler.next_frame` (and ``next_raw``) when no complete frame is buffered."""

NeedData = Literal[_NeedData.NEED_DATA]

_MARK = bytes((START,))  # a marker, and what garbage is searched for
_USER_DATA_AND_CS = slice(3, -1)  # of a frame; its CRC is 0 when CS is right
_BATCH_FROM = 48  # runs of this many candidates get crc8_many, shorter ones a loop per frame
_LOOP_BELOW = 40  # in that loop, frames shorter than this get the per-byte table loop
_MIN_WINDOW = 64  # bytes cut after a recut or a hunt; each window that ends clean doubles it
_HUNT_STREAK = 4  # a hunt ends after this many good frames in a row
_WAIT = -1  # _cut/_hunt: the rest waits for more bytes
_HUNT = -2  # _cut: go on with the reference rules

# Short frames recur byte for byte: a bounded memo of their decoded Frame (immutable, so
# shareable) spares next_frame the decoding on a repeat. Keys are bytes that passed the checks.
_MEMO_FRAME = 29  # frames of at most this many bytes (L <= 24) are remembered (a keep-alive: 13)
_MEMO_SIZE = 1024


def _cut_pattern() -> re.Pattern[bytes]:
    """68H, then either an ordinary frame (but for its CRC) or, as a 1-byte marker, ``? 68H``."""
    start, end = rb"\x%02x" % START, rb"\x%02x" % END
    ordinary = []
    for length in range(MIN_USER_LEN, 256):
        # L counts C [DIVS] A AFN D...: with DIV (C bit D6) set, it is at least 8.
        control = rb"[\x00-\x3f\x80-\xbf]" if length == MIN_USER_LEN else rb"."
        ordinary.append(rb"\x%02x%s%s.{%d}%s" % (length, start, control, length, end))
    return re.compile(rb"(%s(?:%s|(?=.%s)))" % (start, rb"|".join(ordinary), start), re.DOTALL)


_cut_candidates = _cut_pattern().split


class Reassembler:
    """Turns stream bytes into checked frames (:class:`Frame` objects or wire bytes); counts what
    it throws away.

    ``tp_len`` and ``pw`` are passed to the frame decoder (see :func:`frame.decode`).

    Attributes the caller may read (and log):
        bytes_discarded: bytes dropped without becoming part of a returned frame.
        frames_rejected: candidates with a ``68H L 68H`` header that were refused (bad CRC, end
            byte or length, PW/Tp that do not fit, or given up with :meth:`resync`).
        frames_decoded: frames returned, by :meth:`next_frame`, :meth:`next_raw` or
            :meth:`frames_raw`.
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
        self._pos = 0  # _buf[:_pos] is consumed
        self._stuck = False  # _buf[_pos:] was cut and waits for bytes: no use cutting it again
        self._ready: list[bytes] = []  # checked frames cut from _buf ...
        self._taken = 0  # ... of which this many were handed out
        self.bytes_discarded = 0
        self.frames_rejected = 0
        self.frames_decoded = 0
        self.last_error: str | None = None
        self._memo: dict[bytes, Frame] = {}

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed (complete frames not yet handed out included)."""
        ready = self._ready
        waiting = sum(map(len, ready[self._taken :])) if self._taken < len(ready) else 0
        return len(self._buf) - self._pos + waiting

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
        """Give up on the frame being waited for: drop its first byte and hunt again.

        A corrupted L can make a candidate claim more bytes than will come soon, which holds back
        the frames behind it until enough bytes arrive. The reassembler has no clock; a caller
        that sees the link idle with bytes buffered calls this, then :meth:`next_frame` again.
        Complete frames not yet handed out are not affected.
        """
        if self._pos < len(self._buf):
            self._pos += 1
            self._stuck = False
            self.bytes_discarded += 1
            self._rejected("gave up waiting for the rest of a frame")

    def _rejected(self, reason: str) -> None:
        self.frames_rejected += 1
        self.last_error = reason

    # -- decode layer ---------------------------------------------------------------------------

    def next_frame(self) -> Frame | NeedData:
        """The next complete frame, decoded, or NEED_DATA."""
        memo = self._memo
        while True:
            ready = self._ready
            taken = self._taken
            if taken == len(ready):
                ready = self._ready = self._split()
                self._taken = taken = 0
                if not ready:
                    return NEED_DATA
            self._taken = taken + 1
            raw = ready[taken]
            size = len(raw)
            if size <= _MEMO_FRAME:
                frame = memo.get(raw)
                if frame is not None:  # the same bytes were decoded before
                    self.frames_decoded += 1
                    return frame
            try:
                # A picture frame is never L + 5 bytes long: it would have been taken as ordinary.
                frame = parse_checked(raw, 0, size, size != raw[1] + 5, self.tp_len, self.pw)
            except SZY206Error as exc:  # framing is sound: drop the whole frame
                self.bytes_discarded += size
                self._rejected(str(exc))
                continue
            if size <= _MEMO_FRAME:
                if len(memo) >= _MEMO_SIZE:
                    memo.clear()
                memo[raw] = frame
            self.frames_decoded += 1
            return frame

    # -- split layer ----------------------------------------------------------------------------

    def next_raw(self) -> bytes | NeedData:
        """The wire bytes of the next complete frame, or NEED_DATA.

        Start bytes, length, end byte and CRC are checked; PW and Tp are not looked at, so
        :meth:`next_frame` may still refuse a frame this returns.
        """
        ready = self._ready
        taken = self._taken
        if taken == len(ready):
            ready = self._ready = self._split()
            self._taken = taken = 0
            if not ready:
                return NEED_DATA
        self._taken = taken + 1
        self.frames_decoded += 1
        return ready[taken]

    def frames_raw(self) -> list[bytes]:
        """The wire bytes of every complete frame buffered: what :meth:`next_raw` would return
        until NEED_DATA (an empty list when it would return NEED_DATA at once)."""
        frames = self._ready[self._taken :]
        frames += self._split()
        self._ready = []
        self._taken = 0
        self.frames_decoded += len(frames)
        return frames

    def _split(self) -> list[bytes]:
        """Take every checked frame from ``_buf[_pos:]``; leave ``_pos`` where bytes are missing."""
        if self._stuck:
            return []
        self._stuck = True
        buf = self._buf
        pos = begin = self._pos
        frames: list[bytes] = []
        window = 0  # bytes the next cut looks at; 0: all
        while window != _WAIT:
            if window == _HUNT:
                pos, window = self._hunt(buf, pos, frames)
            else:
                pos, window = self._cut(buf, pos, window, frames)
        self._pos = pos
        # Every byte consumed is in a frame or discarded (rejected candidates included).
        self.bytes_discarded += pos - begin - sum(map(len, frames))
        return frames

    def _cut(self, buf: bytes, pos: int, window: int, frames: list[bytes]) -> tuple[int, int]:
        """Cut ``buf[pos:pos + window]`` (``window`` 0: to the end) and append its checked frames to
        ``frames``. Returns where to go on and how (a window, _HUNT or _WAIT)."""
        size = len(buf)
        if pos >= size:
            return pos, _WAIT
        stop_at = pos + window if window and pos + window < size else size
        # parts: garbage, candidate, garbage, candidate, ..., garbage.
        parts = _cut_candidates(memoryview(buf)[pos:stop_at] if pos or stop_at < size else buf)
        candidates = parts[1::2]
        count = len(candidates)
        first = 0  # the next candidate to look at ...
        at = pos  # ... and where the garbage before it starts
        skip = 0  # bytes at the start of that garbage consumed already
        while True:
            try:
                marker = candidates.index(_MARK, first)
            except ValueError:
                marker = count
            good = 0
            if marker > first:
                run = candidates[first:marker]
                if len(run) >= _BATCH_FROM:
                    checks = crc8_many(list(map(getitem, run, repeat(_USER_DATA_AND_CS))))
                    good = len(checks) - len(checks.lstrip(b"\0"))
                else:
                    table = TABLE
                    for raw in run:
                        if len(raw) < _LOOP_BELOW:
                            crc = 0
                            for byte in raw[3:-1]:
                                crc = table[crc ^ byte]
                        else:
                            crc = crc8(raw[3:-1])
                        if crc:
                            break
                        good += 1
                if good:
                    frames += run if good == len(run) else run[:good]
            stop = first + good
            start = at + sum(map(len, parts[2 * first : 2 * stop + 1]))
            if stop == count:  # garbage up to the end of the window
                rest = parts[-1]
                # A 68H in the last three bytes may start a frame: go on from there.
                keep = rest.find(_MARK, max(len(rest) - 3, skip if stop == first else 0))
                end = stop_at if keep < 0 else start - len(rest) + keep
                return end, (_WAIT if stop_at == size else 2 * window)
            done, frame = self._reference_step(buf, start, size)
            if done == start:
                return start, _WAIT
            if frame is not None:
                frames.append(frame)
            elif not good:  # refused twice in a row (or at once): noisy bytes, hunt through them
                return done, _HUNT
            after = start + len(candidates[stop])  # where the cut went on
            if after <= done <= after + len(parts[2 * stop + 2]):  # inside the garbage after it
                first, at, skip = stop + 1, after, done - after
                continue
            return done, max(2 * (done - pos), _MIN_WINDOW)

    def _hunt(self, buf: bytes, pos: int, frames: list[bytes]) -> tuple[int, int]:
        """The hunting rules, position by position, until a few frames in a row check out."""
        size = len(buf)
        streak = 0
        while True:
            pos = buf.find(_MARK, pos)
            if pos < 0:
                return size, _WAIT
            if size - pos < 4:
                return pos, _WAIT
            if buf[pos + 2] != START:  # a stray 68H, not a frame header: plain noise
                pos += 1
                continue
            done, frame = self._reference_step(buf, pos, size)
            if done == pos:
                return pos, _WAIT
            if frame is None:
                streak = 0
            else:
                frames.append(frame)
                streak += 1
                if streak == _HUNT_STREAK:
                    return done, _MIN_WINDOW
            pos = done

    def _reference_step(self, buf: bytes, start: int, size: int) -> tuple[int, bytes | None]:
        """The hunting rules at a ``68H ? 68H`` candidate: (end, frame) to take a frame, (start + 1,
        None) to reject it, (start, None) to wait for bytes. Counts rejections, not their bytes."""
        if size - start < 4:
            return start, None
        length = buf[start + 1]
        if length >= MIN_USER_LEN + (1 if buf[start + 3] & 0x40 else 0):
            end = start + length + 5
            if end > size:
                return start, None
            if buf[end - 1] == END and not crc8(buf[start + 3 : end - 1]):
                return end, buf[start:end]
        # Not an ordinary frame here: perhaps a picture frame (L counts KiB).
        total = picture_total(buf, start)
        if total == 0:
            return start, None
        if total > 0:
            end = start + total
            if end > size:
                return start, None
            if buf[end - 1] == END and not crc8(buf[start + 3 : end - 1]):
                return end, buf[start:end]
        self._rejected("bad check, end byte or length")
        return start + 1, None
