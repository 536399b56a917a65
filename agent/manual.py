"""Manual readings: a technician's reading of a meter's display, with a photo as evidence.

Sites without an online meter report by hand, and any site may need to register a meter change. A
manual reading goes through the same store, ``seq`` and uplinks as a polled one, flagged ``manual``
(and ``replacement`` for a registered meter change: the totalizer starts again at this value). Its
photo is kept beside the store under its SHA-256, named by a ``manual_reading`` event committed with
the reading, and sent on ``<prefix>/<gateway>/evidence/<sha256>`` when the config asks for it.

With no agent running (its lock is free), the reading goes straight into the store, the lock held
meanwhile. With an agent running, it goes into the agent's inbox (a folder beside the store) and the
agent stores it within a second or so: only the agent may hand out ``seq`` numbers while it runs.
Everything is checked before anything is written: an unknown meter, a value that is not a number, a
totalizer reading below the last one without ``replacement``, a photo that is missing, unreadable or
not an image.

This module holds the reading, its checks, how it is written and the running agent's inbox; the
``meterlink manual-reading`` command that uses them is agent/manual_command.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sqlite3
import time
import uuid
from contextlib import aclosing
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from meterlink.drivers.base import Flag, Reading

from . import clock
from .config import Config
from .config_meters import MeterConfig, ModbusMeterConfig
from .errors import MeterlinkError
from .folder_watch import arrivals
from .store import Store

log = logging.getLogger("meterlink.manual")

VOLUME = "volume_total"
# Leading bytes of the photo formats a phone or camera writes.
_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"BM", "image/bmp"),
)
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif"}


class ManualError(MeterlinkError):
    """A manual reading that cannot be taken: one line saying why; nothing was stored."""


@dataclass(frozen=True, slots=True)
class Evidence:
    sha256: str
    size: int
    media_type: str


@dataclass(frozen=True, slots=True)
class ManualEntry:
    """A checked manual reading, as the inbox carries it to a running agent."""

    meter: str
    quantity: str
    unit: str
    value: float
    ts: int
    replacement: bool
    by: str
    evidence: Evidence

    def reading(self) -> Reading:
        flags = Flag.MANUAL | (Flag.REPLACEMENT if self.replacement else 0)
        return Reading(self.meter, self.quantity, self.value, self.unit, self.ts, self.ts, int(flags))

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> ManualEntry:
        data = json.loads(text)
        return cls(**{**data, "evidence": Evidence(**data["evidence"])})


def media_type(head: bytes) -> str | None:
    """The image format ``head`` (a file's first bytes) starts, or None: not a photo."""
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "image/avif" if head[8:12] == b"avif" else "image/heic"
    return None


def load_photo(path: Path, max_bytes: int | None) -> tuple[Evidence, bytes]:
    """Read the evidence photo.

    Raises:
        ManualError: missing, unreadable, not an image, or larger than ``max_bytes``.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ManualError(f"--evidence: {path} does not exist") from None
    except IsADirectoryError:
        raise ManualError(f"--evidence: {path} is a folder, not a photo") from None
    except OSError as exc:
        raise ManualError(f"--evidence: cannot read {path}: {exc.strerror or exc}") from None
    kind = media_type(data[:16])
    if kind is None:
        raise ManualError(f"--evidence: {path} is not a photo (JPEG, PNG, HEIC, WebP, GIF, TIFF or BMP)")
    if max_bytes is not None and len(data) > max_bytes:
        raise ManualError(
            f"--evidence: {path} is {len(data) / 1024:.0f} KB, more than uplink.mqtt.evidence_max_kb "
            f"({max_bytes // 1024} KB) allows: send a smaller photo"
        )
    return Evidence(hashlib.sha256(data).hexdigest(), len(data), kind), data


def parse_value(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ManualError(f"--value: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ManualError(f"--value: {text!r} is not a finite number")
    return value


def parse_at(text: str | None, zone: ZoneInfo, now_ms: int) -> int:
    """``--at`` (ISO 8601; without an offset, the site's local time) in ms; now when absent."""
    if text is None:
        return now_ms
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ManualError(f"--at: {text!r} is not a time (YYYY-MM-DDTHH:MM, site time)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    ts = int(moment.timestamp() * 1000)
    if ts > now_ms + 60_000:
        raise ManualError(f"--at: {text} is in the future")
    return ts


def unit_of(meter: MeterConfig, quantity: str) -> str:
    """The unit the meter's polled readings of ``quantity`` carry (m3 for a totalizer read by hand)."""
    if isinstance(meter, ModbusMeterConfig):
        for spec in meter.register_map().registers:
            if spec.quantity == quantity:
                return str(spec.unit)
    if quantity.startswith("flow"):
        return "m3/h" if isinstance(meter, ModbusMeterConfig) else meter.flow_unit
    return "m3"


def prepare(
    config: Config,
    *,
    meter: str,
    value: str,
    photo: Path,
    at: str | None,
    by: str | None,
    replacement: bool,
    quantity: str,
    now_ms: int,
) -> tuple[ManualEntry, bytes]:
    """Check everything a manual reading needs, before anything is written.

    Raises:
        ManualError: one line saying what is wrong.
    """
    known = {m.id: m for m in config.meters}
    mc = known.get(meter)
    if mc is None:
        raise ManualError(f"--meter: no meter {meter!r} in the config (meters: {', '.join(known)})")
    number = parse_value(value)
    ts = parse_at(at, config.gateway.zone, now_ms)
    mqtt = config.uplink.mqtt
    max_bytes = mqtt.evidence_max_kb * 1024 if mqtt is not None and mqtt.evidence else None
    evidence, data = load_photo(photo, max_bytes)
    who = by if by is not None else os.environ.get("SUDO_USER") or os.environ.get("USER") or ""
    entry = ManualEntry(meter, quantity, unit_of(mc, quantity), number, ts, replacement, who, evidence)
    return entry, data


def last_total(db: sqlite3.Connection, meter: str, quantity: str, before: int) -> float | None:
    """The meter's last stored reading of ``quantity`` taken at or before ``before``."""
    row = db.execute(
        "SELECT r.value FROM readings r JOIN series s ON s.id = r.series WHERE s.meter = ? AND s.quantity = ? "
        "AND r.ts <= ? ORDER BY r.seq DESC LIMIT 1",
        (meter, quantity, before),
    ).fetchone()
    return None if row is None else float(row[0])


def check_not_below(entry: ManualEntry, last: float | None) -> None:
    """A totalizer never goes back, except at a meter change, which must be said (``--replacement``)."""
    if entry.quantity.startswith("volume") and last is not None and entry.value < last and not entry.replacement:
        raise ManualError(
            f"--value: {entry.value:g} is below {entry.meter}'s last reading ({last:g}); if the meter "
            "was replaced or reset, say so with --replacement"
        )


# -- writing ----------------------------------------------------------------------------------------


def evidence_dir(store_path: Path) -> Path:
    return store_path.parent / "evidence"


def inbox_dir(store_path: Path) -> Path:
    return store_path.parent / "inbox"


def keep_photo(store_path: Path, evidence: Evidence, data: bytes) -> Path:
    """The photo beside the store under its digest, on disk before the reading that names it."""
    folder = evidence_dir(store_path)
    folder.mkdir(exist_ok=True)
    target = folder / evidence.sha256
    if not target.exists():
        _write_durably(target, data)
    return target


def _write_durably(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def store_entry(store: Store, entry: ManualEntry) -> int:
    """Commit the reading, its ``manual_reading`` event and its evidence row as one transaction;
    returns the reading's seq. (The photo must already be kept: :func:`keep_photo`.)"""
    from .daybook import Daybook

    daybook = Daybook(store)
    last = last_total(store.db, entry.meter, entry.quantity, entry.ts)
    check_not_below(entry, last)
    with store.transaction():
        seq, _ = store.append([entry.reading()])
        store.add_event(
            "manual_reading",
            clock.now_ms(),
            {
                "meter": entry.meter,
                "quantity": entry.quantity,
                "value": entry.value,
                "unit": entry.unit,
                "at": entry.ts,
                "seq": seq,
                "replacement": entry.replacement,
                "by": entry.by,
                "sha256": entry.evidence.sha256,
                "size": entry.evidence.size,
                "media_type": entry.evidence.media_type,
            },
        )
        daybook.keep_evidence(entry.evidence.sha256, entry.evidence.media_type, entry.evidence.size)
    return seq


def submit(store_path: Path, entry: ManualEntry) -> Path:
    """Hand the entry to the running agent (its photo kept first); returns the inbox file."""
    folder = inbox_dir(store_path)
    folder.mkdir(exist_ok=True)
    target = folder / f"{clock.now_ms()}-{uuid.uuid4().hex[:12]}.json"
    _write_durably(target, entry.to_json().encode("utf-8"))
    return target


def wait_for_agent(entry_file: Path, timeout: float) -> dict[str, Any] | None:
    """The running agent's answer to an inbox entry ({"seq": n} or {"error": "..."}), None on timeout."""
    answer = entry_file.with_suffix(".done")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result: dict[str, Any] = json.loads(answer.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            time.sleep(0.1)
            continue
        answer.unlink(missing_ok=True)
        return result
    return None


# -- the running agent's side ------------------------------------------------------------------------


class Inbox:
    """Takes manual readings handed to the running agent: each is stored like :func:`store_entry` on
    the store's thread, answered in a ``.done`` file beside it, then passed to ``on_stored``."""

    POLL_S = 0.5  # only where inotify cannot be had (agent/folder_watch.py)

    def __init__(self, store_path: Path, meters: set[str], on_stored: Any = None) -> None:
        self.folder = inbox_dir(store_path)
        self.meters = meters
        self.on_stored = on_stored  # called with the stored Reading (rules, quality, uploader)
        self.taken = 0

    async def run(self, outbox: Any) -> None:
        async with aclosing(arrivals(self.folder, ".json", self.POLL_S)) as looks:
            async for _ in looks:
                for entry_file in sorted(self.folder.glob("*.json")):
                    await self._take(entry_file, outbox)

    async def _take(self, entry_file: Path, outbox: Any) -> None:
        answer: dict[str, Any]
        try:
            entry = ManualEntry.from_json(entry_file.read_text(encoding="utf-8"))
            if entry.meter not in self.meters:
                raise ManualError(
                    f"--meter: the running agent has no meter {entry.meter!r} (restart it after changing the config)"
                )
            seq = await outbox.with_store(store_entry, entry)
        except ManualError as exc:
            answer = {"error": str(exc)}
            log.warning("event=manual_reading_refused file=%s reason=%r", entry_file.name, str(exc))
        except (ValueError, TypeError, KeyError, OSError) as exc:
            answer = {"error": f"{entry_file.name} is not a manual reading: {exc}"}
            log.warning("event=manual_reading_refused file=%s reason=%r", entry_file.name, str(exc))
        else:
            answer = {"seq": seq}
            self.taken += 1
            log.info(
                "event=manual_reading meter=%s value=%s seq=%d sha256=%s",
                entry.meter,
                entry.value,
                seq,
                entry.evidence.sha256,
            )
            if self.on_stored is not None:
                self.on_stored(entry.reading())
        _write_durably(entry_file.with_suffix(".done"), json.dumps(answer).encode("utf-8"))
        entry_file.unlink(missing_ok=True)
