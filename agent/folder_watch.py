"""Whether a watched folder may hold something new, for the price of one ``stat``.

The manual-reading inbox is looked at twice a second for the agent's whole life and is nearly always
empty; listing it each time cost more than the rest of the idle agent's loop. A folder's mtime moves
whenever an entry is added, renamed in or removed, so the folder is listed only when its (inode,
mtime) differ from the last listing's. Filesystems stamp times from a coarse clock (a few ms on
ext4, 2 s on FAT), so an mtime that was still recent when the folder was listed proves nothing: an
entry added a moment later may carry the same stamp. Such a folder is listed again at every look
until its mtime has aged past ``SETTLE_NS``, and every folder is listed at least every
``RELIST_NS`` whatever its stamp says (a clock stepped back, a filesystem that keeps no mtime).
"""

from __future__ import annotations

import os
from pathlib import Path

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
