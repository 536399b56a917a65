"""When a folder may hold a new entry: the manual-reading inbox, nearly always empty for the agent's
whole life.

:func:`arrivals` wakes the agent only when an entry arrives, by inotify: on this host a wake-up of
an idle loop costs about 0.27 ms of CPU, and a poll twice a second was a third of the agent's CPU at
32 meters every 10 s. Where inotify cannot be had (another kernel, its limits reached) it falls back
to a poll that costs one ``stat`` per look (:class:`FolderWatch`). A folder's mtime moves
whenever an entry is added, renamed in or removed, so the folder is listed only when its (inode,
mtime) differ from the last listing's. Filesystems stamp times from a coarse clock (a few ms on
ext4, 2 s on FAT), so an mtime that was still recent when the folder was listed proves nothing: an
entry added a moment later may carry the same stamp. Such a folder is listed again at every look
until its mtime has aged past ``SETTLE_NS``. Either way every folder is listed at least every
``RELIST_NS`` whatever inotify or the stamp says (a clock stepped back, an entry linked in).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from asyncinotify import Inotify

log = logging.getLogger("meterlink.agent")

SETTLE_NS = 3_000_000_000
RELIST_NS = 30_000_000_000


class FolderWatch:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._listed: tuple[int, int] | None = None  # (inode, mtime) when last listed
        self._settled = False  # that mtime was older than SETTLE_NS when listed
        self._listed_ns = 0

    def worth_a_look(self, now_ns: int) -> bool:
        """Whether to list the folder now (``now_ns``: the wall clock, as the filesystem's stamps).
        A folder that does not exist is never worth it; one that appears is."""
        try:
            st = os.stat(self.folder)
        except OSError:
            self._listed = None
            return False
        key = (st.st_ino, st.st_mtime_ns)
        if key == self._listed and self._settled and 0 <= now_ns - self._listed_ns < RELIST_NS:
            return False
        self._listed, self._listed_ns = key, now_ns
        self._settled = now_ns - st.st_mtime_ns > SETTLE_NS
        return True


async def arrivals(
    folder: Path, suffix: str, poll_s: float, relist_s: float = RELIST_NS / 1e9
) -> AsyncGenerator[None, None]:
    """Yields at once (for what the folder already holds), then whenever an entry whose name ends
    in ``suffix`` is renamed into it or written and closed there, and after ``relist_s`` without
    one (an entry that came another way: linked in, or an event lost). The folder is made if
    missing, and made again if removed. Run it under ``contextlib.aclosing`` so its watch closes
    with it."""
    while True:
        try:
            inotify = _watch(folder)
        except (ImportError, RuntimeError, OSError) as exc:  # no inotify here, or its limits reached
            log.info("event=folder_polled path=%s every_s=%s why=%r", folder, poll_s, str(exc))
            async for _ in _polled(folder, poll_s):
                yield
            return
        from asyncinotify import Mask

        with inotify:
            yield
            while True:
                try:
                    event = await asyncio.wait_for(inotify.get(), relist_s)
                except TimeoutError:
                    yield
                    continue
                if event.mask & (Mask.IGNORED | Mask.DELETE_SELF | Mask.MOVE_SELF):
                    break  # the folder was removed or moved away: make it again
                if event.mask & Mask.Q_OVERFLOW or (event.name is not None and event.name.name.endswith(suffix)):
                    yield
        await asyncio.sleep(poll_s)  # a folder removed again and again costs a look per poll, no more


def _watch(folder: Path) -> Inotify:
    from asyncinotify import Inotify, Mask  # the agent runs on Linux; elsewhere: the poll

    folder.mkdir(exist_ok=True)
    inotify = Inotify()
    try:
        inotify.add_watch(folder, Mask.MOVED_TO | Mask.CLOSE_WRITE | Mask.DELETE_SELF | Mask.MOVE_SELF)
    except OSError:
        inotify.close()
        raise
    return inotify


async def _polled(folder: Path, poll_s: float) -> AsyncGenerator[None, None]:
    watch = FolderWatch(folder)
    while True:
        if watch.worth_a_look(time.time_ns()):
            yield
        await asyncio.sleep(poll_s)
