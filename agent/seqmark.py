"""A durable high-water mark for ``seq``, kept beside the store but outside it.

The store keeps the exact next ``seq``. If the store is lost (a corrupt SD card, a file moved
aside), numbering must not start again at 1: a receiver would see old numbers with new content.
So before the store hands out numbers beyond the mark, the mark moves ahead by a block and is
written with fsync. After a loss the store continues at the mark; the gap the platform then sees
covers the readings that were lost with the store and, at most, one block of numbers never used.

The file holds one decimal integer: every seq below it may have been used.
"""

from __future__ import annotations

import os
from pathlib import Path

BLOCK = 10_000


class SeqMark:
    def __init__(self, path: Path, block: int = BLOCK) -> None:
        self.path = path
        self.block = block
        self.reserved = self._read()

    def _read(self) -> int:
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return 0
        except (OSError, UnicodeDecodeError):
            return 0
        return int(text) if text.isdigit() else 0

    def ensure(self, upto: int) -> None:
        """Make sure every seq below ``upto`` is covered by the durable mark."""
        if upto <= self.reserved:
            return
        target = upto + self.block
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, f"{target}\n".encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self.reserved = target
