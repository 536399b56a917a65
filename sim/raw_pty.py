"""A pseudo-terminal that stands in for a serial line: the simulators' side of it.

Both ends are put in raw mode and the slave stays open here for the pty's whole life: otherwise the
line discipline echoes frames and turns 0x0D into 0D 0A until the agent opens its end, and closing
the last slave handle would hang the line up between two agent sessions.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import termios
import tty
from collections.abc import Callable

log = logging.getLogger("meterlink.sim.pty")

REOPEN_DELAY_S = 0.05  # wait before reading again after EIO (no one else has the slave open)
SPEEDS = {getattr(termios, f"B{rate}"): rate for rate in (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)}


class RawPty:
    """Open a raw pty on the running loop and pass every chunk read from it to ``on_data``.

    ``on_hangup`` is called each time the agent's end was found closed (reading pauses briefly).

    Raises:
        OSError: no pty can be opened.
    """

    def __init__(self, on_data: Callable[[bytes], None], on_hangup: Callable[[], None] = lambda: None) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_data = on_data
        self._on_hangup = on_hangup
        self.master, self.slave = os.openpty()
        try:
            tty.setraw(self.master)
            tty.setraw(self.slave)
            os.set_blocking(self.master, False)
            self.path = os.ttyname(self.slave)
        except OSError:
            os.close(self.master)
            os.close(self.slave)
            raise
        self._reading = False
        self._retry: asyncio.TimerHandle | None = None
        self._closed = False
        self._resume()

    def _resume(self) -> None:
        self._retry = None
        if not self._reading and not self._closed:
            self._loop.add_reader(self.master, self._readable)
            self._reading = True

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:
                log.error("event=sim_pty_read_failed path=%s error=%r", self.path, str(exc))
            data = b""
        if not data:
            # EIO: no one holds the slave but us. The fd stays readable, so pause instead of
            # spinning; the agent may reopen the port.
            self._on_hangup()
            self._loop.remove_reader(self.master)
            self._reading = False
            self._retry = self._loop.call_later(REOPEN_DELAY_S, self._resume)
            return
        self._on_data(data)

    def baudrate(self) -> int | None:
        """The speed the other end set on the line: a pty keeps it, though it carries bytes at any.

        (Parity it does not keep: Linux clears PARENB on a pty.)
        """
        try:
            return SPEEDS.get(termios.tcgetattr(self.slave)[5])
        except termios.error:
            return None

    def write(self, data: bytes) -> bool:
        """Write ``data`` whole; False (logged) when the line would not take it."""
        if self._closed:
            return False  # a held-back answer due after the server stopped
        try:
            written = os.write(self.master, data)
        except OSError as exc:
            written = 0
            log.warning("event=sim_pty_write_failed path=%s error=%r", self.path, str(exc))
        return written == len(data)

    def close(self) -> None:
        """Stop reading and close both ends; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
        if self._reading:
            self._loop.remove_reader(self.master)
        os.close(self.master)
        os.close(self.slave)
