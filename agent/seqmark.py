"""Durable high-water marks for the store's counters, kept beside the store but outside it.

The store keeps the exact next reading ``seq``, message ``batch`` and event ``seq``. If the store
is lost (a corrupt SD card, a file moved aside), numbering must not start again at 1: a receiver
would see old numbers with new content, and a replayed old message would look like a new one. So
before the store hands out numbers beyond a mark, the mark moves ahead by a block and the file is
written with fsync. After a loss the new store continues at the marks; the gap the platform then
sees covers what was lost with the store and, at most, one block of numbers never used.

The file is one line of ``name=number`` pairs, e.g. ``seq=20001 batch=1001 event=1001``: every
number below a mark may have been used. A file of one bare number (older meterlink) is the ``seq``
mark alone.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("meterlink.store")

# Numbers reserved per write of the file: one fsync per block, at most a block skipped after a loss.
BLOCKS = {"seq": 10_000, "batch": 1_000, "event": 1_000}


class SeqMark:
    def __init__(self, path: Path, block: int | None = None) -> None:
        self.path = path
        self.blocks = dict(BLOCKS)
        if block is not None:
            self.blocks["seq"] = block
        self.marks = self._read()

    @property
    def reserved(self) -> int:
        """The reading ``seq`` mark."""
        return self.marks["seq"]

    def _read(self) -> dict[str, int]:
        marks = dict.fromkeys(BLOCKS, 0)
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return marks  # no store was ever numbered here
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("event=seqmark_unreadable path=%s error=%r", self.path, str(exc))
            return marks
        if text.isdigit():
            marks["seq"] = int(text)
            return marks
        for pair in text.split():
            name, _, number = pair.partition("=")
            if name in marks and number.isdigit():
                marks[name] = int(number)
        if text and not any(marks.values()):
            # A torn or foreign file: the store's own numbers still count, but say so.
            log.warning("event=seqmark_unreadable path=%s content=%r", self.path, text[:40])
        return marks

    def ensure(self, upto: int, counter: str = "seq") -> None:
        """Make sure every number below ``upto`` of ``counter`` is covered by the durable mark."""
        if upto > self.marks[counter]:  # else nothing to do: the hot path of every commit
            self.ensure_all({counter: upto})

    def ensure_all(self, upto: dict[str, int]) -> None:
        """:meth:`ensure` for several counters with at most one write of the file."""
        behind = {name: n for name, n in upto.items() if n > self.marks[name]}
        if not behind:
            return
        marks = dict(self.marks)
        for name, n in behind.items():
            marks[name] = n + self.blocks[name]
        self._write(marks)
        self.marks = marks

    def _write(self, marks: dict[str, int]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, (" ".join(f"{name}={n}" for name, n in marks.items()) + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
