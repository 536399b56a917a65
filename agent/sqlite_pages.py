"""A SQLite database file read page by page, without SQLite: for a file SQLite itself gives up on.

``Pages`` lays the newest committed version of each page from the ``-wal`` over the main file, as
SQLite's recovery would (file format, section 4: frames whose salts and running checksum match,
up to the last commit frame), and yields the rowid and values of every cell on every table leaf
page that is not on the freelist (sections 1.5-1.6 for pages and cells, 2.1 for records, overflow
chains followed). It knows nothing of any schema: agent/salvage.py tells the store's rows apart.

Nothing here raises on bad bytes inside the file: a cell that cannot be parsed is skipped and
counted in ``problems``; only a file that cannot be opened raises (OSError, ValueError).
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from pathlib import Path

DEFAULT_PAGE_SIZE = 4096  # the store never sets page_size, so its files have SQLite's default


class Pages:
    """The pages of a database file as SQLite would see them after recovery: the file, with the newest
    version of each page from the committed part of the ``-wal`` laid over it."""

    def __init__(self, path: Path) -> None:
        self.problems: list[str] = []
        self._file = path.open("rb")
        try:
            size = path.stat().st_size
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        except (OSError, ValueError):
            self._file.close()
            raise
        header = self._map[:100] if self._map is not None else b""
        raw = int.from_bytes(header[16:18], "big") if len(header) >= 100 else 0
        page_size = 65536 if raw == 1 else raw
        self.wal: dict[int, bytes] = {}
        wal_size = self._read_wal(path.with_name(path.name + "-wal"))
        if wal_size:
            page_size = wal_size
        if page_size < 512 or page_size & (page_size - 1):
            # The header itself is damaged: the store always uses SQLite's default page size.
            self.problems.append(f"no usable page size in the header ({raw}): {DEFAULT_PAGE_SIZE} assumed")
            page_size = DEFAULT_PAGE_SIZE
        self.page_size = page_size
        first = self.page(1)
        reserved = first[20] if first.startswith(b"SQLite format 3\x00") else 0
        self.usable = page_size - reserved
        self.count = max(len(self._map) // page_size if self._map is not None else 0, max(self.wal, default=0))

    def __enter__(self) -> Pages:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
        self._file.close()

    def page(self, number: int) -> bytes:
        """Page ``number`` (1-based), b"" when it does not exist."""
        if number in self.wal:
            return self.wal[number]
        if self._map is None:
            return b""
        start = (number - 1) * self.page_size
        return bytes(self._map[start : start + self.page_size]) if start + self.page_size <= len(self._map) else b""

    def _read_wal(self, wal: Path) -> int:
        """Lay the committed frames of ``wal`` over the file; returns its page size (0: no usable WAL)."""
        try:
            data = wal.read_bytes()
        except OSError:
            return 0
        if len(data) < 32:
            return 0
        magic, _version, page_size, _ckpt, salt1, salt2, c1, c2 = struct.unpack(">8I", data[:32])
        if magic not in (0x377F0682, 0x377F0683) or page_size < 512 or page_size & (page_size - 1):
            self.problems.append("-wal header unusable: its frames are not read")
            return 0
        order = ">" if magic & 1 else "<"
        s0, s1 = _wal_checksum(data[:24], order, 0, 0)
        if (s0, s1) != (c1, c2):
            self.problems.append("-wal header checksum wrong: its frames are not read")
            return 0
        pending: dict[int, bytes] = {}
        frame = 24 + page_size
        for start in range(32, len(data) - frame + 1, frame):
            number, commit, f_salt1, f_salt2, f_c1, f_c2 = struct.unpack(">6I", data[start : start + 24])
            if (f_salt1, f_salt2) != (salt1, salt2):
                break
            s0, s1 = _wal_checksum(data[start : start + 8], order, s0, s1)
            s0, s1 = _wal_checksum(data[start + 24 : start + frame], order, s0, s1)
            if (s0, s1) != (f_c1, f_c2):
                break
            pending[number] = data[start + 24 : start + frame]
            if commit:  # a commit frame: everything up to here is part of the database
                self.wal.update(pending)
                pending.clear()
        return int(page_size)

    def freelist(self) -> set[int]:
        """Pages on the freelist (header offsets 32 and 36), as far as its chain can be followed."""
        first = self.page(1)
        if len(first) < 100:
            return set()
        trunk, total = struct.unpack(">II", first[32:40])
        free: set[int] = set()
        while trunk and trunk not in free and len(free) <= total:
            free.add(trunk)
            page = self.page(trunk)
            if len(page) < 8:
                break
            following, leaves = struct.unpack(">II", page[:8])
            for i in range(min(leaves, (len(page) - 8) // 4)):
                free.add(struct.unpack(">I", page[8 + 4 * i : 12 + 4 * i])[0])
            trunk = following
        return free

    def table_rows(self) -> Iterator[tuple[int, list[object]]]:
        """(rowid, values) of every cell on every table leaf page not on the freelist."""
        free = self.freelist()
        skipped = 0
        for number in range(1, self.count + 1):
            if number in free:
                continue
            page = self.page(number)
            offset = 100 if number == 1 else 0
            if len(page) <= offset + 8 or page[offset] != 0x0D:
                continue
            cells = int.from_bytes(page[offset + 3 : offset + 5], "big")
            for i in range(cells):
                at = offset + 8 + 2 * i
                if at + 2 > len(page):
                    skipped += 1
                    break
                try:
                    yield self._cell(page, int.from_bytes(page[at : at + 2], "big"))
                except (IndexError, ValueError, UnicodeDecodeError, struct.error):
                    skipped += 1
        if skipped:
            self.problems.append(f"{skipped} cells on table pages could not be parsed")

    def _cell(self, page: bytes, at: int) -> tuple[int, list[object]]:
        payload_size, at = _varint(page, at)
        rowid, at = _varint(page, at)
        if rowid >= 1 << 63:
            rowid -= 1 << 64
        payload = self._payload(page, at, payload_size)
        return rowid, _record(payload)

    def _payload(self, page: bytes, at: int, size: int) -> bytes:
        u = self.usable
        most = u - 35
        if size <= most:
            local = size
        else:
            least = ((u - 12) * 32 // 255) - 23
            local = least + (size - least) % (u - 4)
            if local > most:
                local = least
        data = page[at : at + local]
        if len(data) != local:
            raise ValueError("cell runs off its page")
        if local == size:
            return data
        parts = [data]
        remaining = size - local
        next_page = int.from_bytes(page[at + local : at + local + 4], "big")
        seen: set[int] = set()
        while remaining > 0:
            if next_page in seen or not 1 <= next_page <= self.count:
                raise ValueError("broken overflow chain")
            seen.add(next_page)
            overflow = self.page(next_page)
            chunk = overflow[4 : 4 + min(remaining, u - 4)]
            if not chunk:
                raise ValueError("overflow page missing")
            parts.append(chunk)
            remaining -= len(chunk)
            next_page = int.from_bytes(overflow[:4], "big")
        return b"".join(parts)


def _wal_checksum(data: bytes, order: str, s0: int, s1: int) -> tuple[int, int]:
    words = struct.unpack(f"{order}{len(data) // 4}I", data[: len(data) // 8 * 8])
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        byte = data[at + i]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + i + 1
    return (value << 8) | data[at + 8], at + 9


_INT_SIZES = {1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8}


def _record(payload: bytes) -> list[object]:
    """The values of one record (SQLite file format 2.1): header of serial types, then the bodies."""
    header_size, at = _varint(payload, 0)
    if not 1 <= header_size <= len(payload):
        raise ValueError("bad record header")
    types = []
    while at < header_size:
        serial, at = _varint(payload, at)
        types.append(serial)
    body = header_size
    values: list[object] = []
    for serial in types:
        if serial == 0:
            values.append(None)
        elif serial in _INT_SIZES:
            size = _INT_SIZES[serial]
            chunk = payload[body : body + size]
            if len(chunk) != size:
                raise ValueError("record runs short")
            values.append(int.from_bytes(chunk, "big", signed=True))
            body += size
        elif serial == 7:
            chunk = payload[body : body + 8]
            if len(chunk) != 8:
                raise ValueError("record runs short")
            values.append(struct.unpack(">d", chunk)[0])
            body += 8
        elif serial in (8, 9):
            values.append(serial - 8)
        elif serial >= 12:
            size = (serial - 12) // 2
            chunk = payload[body : body + size]
            if len(chunk) != size:
                raise ValueError("record runs short")
            values.append(chunk.decode("utf-8") if serial & 1 else bytes(chunk))
            body += size
        else:
            raise ValueError(f"reserved serial type {serial}")
    return values
