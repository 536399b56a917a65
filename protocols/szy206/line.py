"""Frames from one byte stream, and the one thing finding them needs a clock for.

:class:`LineReader` wraps the :class:`~.stream.Reassembler` (frames split across reads, glued
together or wrapped in line noise) and adds what depends on time, which the caller passes in: a
candidate frame whose corrupted L claims more bytes than will come holds back every frame behind
it, so once no byte has arrived for ``resync_after_ms`` while bytes are still held, the candidate
is given up and the hunt goes on (the reassembler's ``resync``).

Its counters add up across :meth:`LineReader.drop_buffered`, so a link that reconnects keeps one
tally. Bytes are taken in slices, frames cut after each, so one read of any size stays within
the reassembler's bound; should the bytes held still overflow it, they are dropped, counted,
never raised. Times are ms on a clock that does not jump (the caller's monotonic clock); nothing
here reads one.
"""

from __future__ import annotations

from collections import deque

from .errors import BufferFullError
from .frame import Frame
from .stream import NEED_DATA, NeedData, Reassembler

SLICE = 1 << 16  # bytes fed to the reassembler at a time: a whole frame fits, the bound is never near


class LineReader:
    """Checked frames out of one stream's bytes; counts what it throws away.

    Args:
        resync_after_ms: ms without a byte after which a partial frame is given up; None: never
            (the caller gives up by other means, such as dropping the connection).
        tp_len: the Tp length of the frames, None to infer it per frame (see ``frame.decode``).
        pw: whether frames carry PW, None for the default policy.

    Attributes the caller may read (and log), totals since the reader was made:
        bytes_discarded: bytes dropped without becoming part of a frame.
        frames_rejected: candidate frames refused (bad CRC, end byte, length, Tp; given up).
        frames_received: frames found (returned by :meth:`next_frame`, or waiting there).
        resyncs: partial frames given up for idleness.
    """

    def __init__(
        self, *, resync_after_ms: int | None = None, tp_len: int | None = None, pw: bool | None = None
    ) -> None:
        if resync_after_ms is not None and resync_after_ms <= 0:
            raise ValueError(f"resync_after_ms must be positive, got {resync_after_ms}")
        self.resync_after_ms = resync_after_ms
        self._tp_len = tp_len
        self._pw = pw
        self._rx = Reassembler(tp_len=tp_len, pw=pw)
        self._ready: deque[Frame] = deque()
        self._earlier = (0, 0, 0)  # (discarded, rejected, received) of reassemblers dropped
        self._last_byte_at: int | None = None
        self._error: str | None = None
        self.resyncs = 0

    @property
    def bytes_discarded(self) -> int:
        return self._earlier[0] + int(self._rx.bytes_discarded)

    @property
    def frames_rejected(self) -> int:
        return self._earlier[1] + int(self._rx.frames_rejected)

    @property
    def frames_received(self) -> int:
        return self._earlier[2] + int(self._rx.frames_decoded)

    @property
    def last_error(self) -> str | None:
        """Why the last candidate (or the last held bytes) was thrown away."""
        return self._rx.last_error or self._error

    @property
    def buffered(self) -> int:
        """Bytes held that are not (yet) part of a frame."""
        return int(self._rx.buffered)

    def feed(self, data: bytes | bytearray | memoryview, now: int) -> None:
        """Take bytes read at ``now``; frames come out of :meth:`next_frame`."""
        if not data:
            return
        self._last_byte_at = now
        view = memoryview(data)
        for start in range(0, len(view), SLICE):
            piece = view[start : start + SLICE]
            try:
                self._rx.feed(piece)
            except BufferFullError as exc:
                self.drop_buffered(count=True, reason=str(exc))
                self._rx.feed(piece)
            self._cut()

    def next_frame(self) -> Frame | NeedData:
        """The next complete frame, or NEED_DATA."""
        return self._ready.popleft() if self._ready else NEED_DATA

    def _cut(self) -> None:
        rx, ready = self._rx, self._ready
        while (frame := rx.next_frame()) is not NEED_DATA:
            ready.append(frame)

    def deadline(self) -> int | None:
        """When :meth:`tick` will give up on the bytes held, or None (nothing held, or never)."""
        if self.resync_after_ms is None or self._last_byte_at is None or not self._rx.buffered:
            return None
        return self._last_byte_at + self.resync_after_ms

    def tick(self, now: int) -> bool:
        """Let time pass; True when a partial frame was given up (read :meth:`next_frame` again)."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return False
        self.resyncs += 1
        self._rx.resync()
        self._last_byte_at = now  # what is still held gets its own time from here
        self._cut()
        return True

    def drop_buffered(self, *, count: bool = False, reason: str = "dropped") -> int:
        """Start on an empty buffer (a new connection); ``count``: add what was held to the
        discarded bytes. Frames already complete are kept. Returns the bytes dropped."""
        held = self.buffered
        rx = self._rx
        self._earlier = (
            self._earlier[0] + int(rx.bytes_discarded) + (held if count else 0),
            self._earlier[1] + int(rx.frames_rejected),
            self._earlier[2] + int(rx.frames_decoded),
        )
        self._error = reason if count and held else (rx.last_error or self._error)
        self._rx = Reassembler(tp_len=self._tp_len, pw=self._pw)
        self._last_byte_at = None
        return held
