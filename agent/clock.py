"""Wall-clock time, poll slots and whether the clock can be trusted.

UTC milliseconds inside. Slots are aligned to the wall clock (a 60 s interval polls at :00 of each
minute, a 900 s interval at :00, :15, :30, :45), so readings from different sites line up and a
platform can tell a missing slot from a late one. Waiting uses the monotonic clock, computed
afresh for every slot, so a clock step (NTP sync after boot) does not stall or flood polling.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from functools import cache

TIME_ERROR = 5  # adjtimex(2): the kernel clock is not synchronised


_offset_ms = 0  # set from a trusted central station's time (the service may not set the system clock)


def now_ms() -> int:
    """The agent's time: the system clock plus any offset learnt from a trusted station."""
    return time.time_ns() // 1_000_000 + _offset_ms


def set_offset(offset_ms: int) -> None:
    global _offset_ms
    _offset_ms = offset_ms


def offset_ms() -> int:
    return _offset_ms


def next_slot(now: int, interval_ms: int) -> int:
    """The first slot boundary strictly after ``now`` (ms)."""
    return (now // interval_ms + 1) * interval_ms


def current_slot(now: int, interval_ms: int) -> int:
    return now // interval_ms * interval_ms


class _Timex(ctypes.Structure):
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("padding", ctypes.c_int * 11),
    ]


@cache
def _adjtimex() -> object | None:
    path = ctypes.util.find_library("c")
    if path is None:
        return None
    fn = getattr(ctypes.CDLL(path, use_errno=True), "adjtimex", None)
    return fn


def kernel_clock_synced() -> bool | None:
    """The kernel's view (read-only adjtimex): True, False, or None when it cannot be asked.

    A Raspberry Pi has no RTC: until NTP (or a GPS) disciplines the clock, it reports TIME_ERROR,
    and readings taken then carry the ``clock_unsynced`` flag.
    """
    fn = _adjtimex()
    if fn is None:
        return None
    tx = _Timex()  # modes = 0: read only, needs no privilege
    state = fn(ctypes.byref(tx))  # type: ignore[operator]
    if state < 0:
        return None
    return bool(state != TIME_ERROR)


STA_NANO = 0x2000  # adjtimex(2): the offset is in nanoseconds, not microseconds


def kernel_clock_offset_s() -> float | None:
    """How far the kernel's NTP discipline says the clock is off its source, in seconds (None: the
    clock is not synchronised, so the offset is unknown, or the kernel cannot be asked)."""
    fn = _adjtimex()
    if fn is None:
        return None
    tx = _Timex()
    state = fn(ctypes.byref(tx))  # type: ignore[operator]
    if state < 0 or state == TIME_ERROR:
        return None
    return float(tx.offset) / (1e9 if tx.status & STA_NANO else 1e6)


class ClockCheck:
    """Decides whether a reading gets the ``clock_unsynced`` flag. Re-asks the kernel at most every 10 s."""

    def __init__(self, mode: str = "kernel") -> None:
        self.mode = mode
        self._checked = -1e9
        self._synced = True

    def synced(self) -> bool:
        if self.mode == "assume_synced":
            return True
        now = time.monotonic()
        if now - self._checked > 10:
            self._checked = now
            state = kernel_clock_synced()
            self._synced = bool(state) if state is not None else True
        return self._synced
