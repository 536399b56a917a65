"""meterlink manual-reading with no agent running: checked first, then stored with its evidence.

Each refused case must leave the store exactly as it was (readings, events, evidence), and say
what is wrong in one line with exit 1.
"""

from __future__ import annotations

import hashlib
import sqlite3
import struct
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.configs import write_site

from meterlink.agent import clock as agent_clock
from meterlink.agent.manual import media_type
from meterlink.cli.main import main
from meterlink.drivers.base import Flag

SITE = """
[gateway]
id = "gw-manual"

[[meters]]
id = "well-3"

[store]
path = "state/meterlink.db"

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "mqtt://127.0.0.1:1"
evidence = true
evidence_max_kb = 64
"""


def png(width: int = 4, height: int = 3) -> bytes:
    """A real (tiny) PNG, as a phone would send a photo."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x80\x80\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = write_site(tmp_path / "site", SITE)
    (tmp_path / "display.png").write_bytes(png())
    return path


def state(site: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[str]]:
    db_path = site.parent / "state" / "meterlink.db"
    if not db_path.exists():
        return [], [], []
    db = sqlite3.connect(db_path)
    try:
        readings = db.execute(
            "SELECT r.seq, s.meter, s.quantity, r.value, r.flags FROM readings r "
            "JOIN series s ON s.id = r.series ORDER BY r.seq"
        ).fetchall()
        events = db.execute("SELECT kind, detail FROM events WHERE kind = 'manual_reading' ORDER BY seq").fetchall()
    finally:
        db.close()
    photos = (
        sorted(p.name for p in (site.parent / "state" / "evidence").glob("*"))
        if (site.parent / "state" / "evidence").exists()
        else []
    )
    return readings, events, photos


def run(site: Path, *args: str) -> int:
    return main(["manual-reading", "-c", str(site), *args])


def test_a_reading_is_stored_with_its_photo_and_an_event(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo = site.parent.parent / "display.png"
    assert (
        run(
            site,
            "--meter",
            "well-3",
            "--value",
            "1234.5",
            "--evidence",
            str(photo),
            "--by",
            "Li Wei",
            "--at",
            "2026-11-03T08:30",
        )
        == 0
    )
    out = capsys.readouterr().out
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()
    assert f"as seq 1, evidence sha256 {digest}" in out
    readings, events, photos = state(site)
    assert readings == [(1, "well-3", "volume_total", 1234.5, int(Flag.MANUAL))]
    assert photos == [digest]
    assert (site.parent / "state" / "evidence" / digest).read_bytes() == photo.read_bytes()
    ((_, detail),) = events
    assert isinstance(detail, str)
    assert '"sha256":"' + digest in detail and '"by":"Li Wei"' in detail and '"seq":1' in detail
    at = datetime(2026, 11, 3, 0, 30, tzinfo=UTC)  # 08:30 at the site, UTC+8
    assert f'"at":{int(at.timestamp() * 1000)}' in detail


def test_a_replacement_may_start_lower_and_is_flagged(site: Path) -> None:
    photo = str(site.parent.parent / "display.png")
    assert run(site, "--meter", "well-3", "--value", "500", "--evidence", photo) == 0
    assert run(site, "--meter", "well-3", "--value", "12", "--evidence", photo, "--replacement") == 0
    readings, _, _ = state(site)
    assert [r[4] for r in readings] == [int(Flag.MANUAL), int(Flag.MANUAL | Flag.REPLACEMENT)]


def test_the_reading_and_its_event_are_timed_by_the_agents_clock(site: Path) -> None:
    """With a trusted station's offset in effect, "now" is the agent's time, not the system clock's."""
    offset = 6 * 3600_000
    agent_clock.set_offset(offset)  # the conftest puts it back after the test
    photo = str(site.parent.parent / "display.png")
    before = time.time_ns() // 1_000_000 + offset
    assert run(site, "--meter", "well-3", "--value", "500", "--evidence", photo) == 0
    after = time.time_ns() // 1_000_000 + offset
    db = sqlite3.connect(site.parent / "state" / "meterlink.db")
    try:
        ((reading_ts,),) = db.execute("SELECT ts FROM readings").fetchall()
        ((event_ts,),) = db.execute("SELECT ts FROM events WHERE kind = 'manual_reading'").fetchall()
    finally:
        db.close()
    assert before <= reading_ts <= after
    assert before <= event_ts <= after


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--meter", "nope", "--value", "1"], "--meter: no meter 'nope' in the config (meters: well-3)"),
        (["--meter", "well-3", "--value", "12,5"], "--value: '12,5' is not a number"),
        (["--meter", "well-3", "--value", "nan"], "--value: 'nan' is not a finite number"),
        (
            ["--meter", "well-3", "--value", "400"],
            "--value: 400 is below well-3's last reading (500); if the meter "
            "was replaced or reset, say so with --replacement",
        ),
        (
            ["--meter", "well-3", "--value", "600", "--at", "3026-01-01T00:00"],
            "--at: 3026-01-01T00:00 is in the future",
        ),
        (["--meter", "well-3", "--value", "600", "--at", "tuesday"], "--at: 'tuesday' is not a time"),
    ],
)
def test_mistakes_are_one_line_and_store_nothing(
    site: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    photo = str(site.parent.parent / "display.png")
    assert run(site, "--meter", "well-3", "--value", "500", "--evidence", photo) == 0
    before = state(site)
    capsys.readouterr()
    assert run(site, *args, "--evidence", photo) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"meterlink: {says}"), err
    assert state(site) == before


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (None, "does not exist"),
        (lambda p: p.write_text("not a photo\n"), "is not a photo (JPEG, PNG, HEIC, WebP, GIF, TIFF or BMP)"),
        (lambda p: p.mkdir(), "is a folder, not a photo"),
        (lambda p: p.write_bytes(png(200, 200) + bytes(70_000)), "KB, more than uplink.mqtt.evidence_max_kb (64 KB)"),
    ],
)
def test_a_photo_that_cannot_serve_as_evidence_stores_nothing(
    site: Path, capsys: pytest.CaptureFixture[str], make: object, says: str
) -> None:
    photo = site.parent.parent / "bad.jpg"
    if make is not None:
        make(photo)  # type: ignore[operator]
    assert run(site, "--meter", "well-3", "--value", "1", "--evidence", str(photo)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err
    assert state(site) == ([], [], [])


def test_photo_formats_are_told_by_their_first_bytes() -> None:
    assert media_type(b"\xff\xd8\xff\xe0\x00\x10JFIF") == "image/jpeg"
    assert media_type(png()[:16]) == "image/png"
    assert media_type(b"RIFF\x10\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert media_type(b"\x00\x00\x00\x18ftypheic\x00\x00") == "image/heic"
    assert media_type(b"%PDF-1.7") is None and media_type(b"") is None
