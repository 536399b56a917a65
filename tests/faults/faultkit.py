"""Helpers for the fault tests: seeds, result files, the agent's log, the store read from outside.

Imported by the tests in this folder as ``faultkit`` (the folder is put on ``sys.path`` by the tests
themselves: pytest's importlib mode does not do it).

Nothing here touches the product's code paths: the store is read with plain ``sqlite3``, the agent
is a real process, its log is parsed like a technician would grep it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / ".results"

# Logged by agent/capture.py at DEBUG after each group commit returned.
CAPTURED = re.compile(r"event=captured readings=(\d+) seq=(\d+)-(\d+)")
# The same, whole lines only: a line torn by a kill runs on into the next run's first line, whose
# timestamp would otherwise extend its last seq ("seq=120-1" + "2025-..." reads as 120-12025).
CAPTURED_LINE = re.compile(r"event=captured readings=(\d+) seq=(\d+)-(\d+)$", re.MULTILINE)
# Logged by agent/scheduler.py: the first failure of a streak and every 10th, and the recovery.
POLL_FAILED = re.compile(r"event=poll_failed bus=\S+ meter=(\S+) .* consecutive=(\d+)")
RECOVERED = re.compile(r"event=meter_recovered bus=\S+ meter=(\S+) after_failures=(\d+)")
STARTED = "event=agent_started"

Row = tuple[str, str, str, float, int, int, int]  # meter, quantity, unit, value, ts, slot, flags


def seed_from_env(default: int) -> int:
    """A fixed seed, printed by the caller; ``METERLINK_FAULT_SEED=N`` reruns another schedule."""
    text = os.environ.get("METERLINK_FAULT_SEED", "").strip()
    return int(text) if text else default


def write_results(name: str, figures: dict[str, Any]) -> Path:
    """``tests/faults/.results/NAME.json``; the folder ignores itself in git (its own .gitignore)."""
    RESULTS.mkdir(exist_ok=True)
    ignore = RESULTS / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# written by the fault tests on every run\n*\n")
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return path


# -- the agent's log ------------------------------------------------------------------------------


class AgentLog:
    """The agent's log file (appended to by every run), read in complete lines only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def text(self, since: int = 0, until: int | None = None) -> str:
        """Everything from byte offset ``since`` up to the last complete line (before ``until``).

        A process frozen or killed in the middle of writing a line leaves half a line behind
        ("seq=12-3" of "seq=12-345"): that must never be read as a fact.
        """
        try:
            with open(self.path, "rb") as f:
                f.seek(since)
                data = f.read() if until is None else f.read(max(0, until - since))
        except FileNotFoundError:
            return ""
        end = data.rfind(b"\n")
        return data[: end + 1].decode("utf-8", "replace") if end >= 0 else ""

    def has(self, needle: str, since: int = 0) -> bool:
        return needle in self.text(since)

    def count(self, needle: str, since: int = 0) -> int:
        return self.text(since).count(needle)

    def highest_captured(self, since: int = 0) -> int:
        """The highest seq the agent logged as committed (0 if none)."""
        return max((int(m.group(3)) for m in CAPTURED.finditer(self.text(since))), default=0)

    def captured_ranges(self, since: int = 0, until: int | None = None) -> list[tuple[int, int, int]]:
        """(readings, first seq, last seq) of every commit the agent logged whole, in log order."""
        text = self.text(since, until)
        return [(int(m.group(1)), int(m.group(2)), int(m.group(3))) for m in CAPTURED_LINE.finditer(text)]

    def poll_failures(self, until: int | None = None) -> Counter[str]:
        """Failed polls per meter id, from the start of the log up to byte offset ``until``.

        The scheduler logs the first failure of a streak and every 10th (with its length), and the
        length of a streak that ended (``meter_recovered``); a streak cut short by a kill counts as
        long as its last logged line says. So this undercounts only a streak longer than 10 that a
        kill cut between two of its lines.
        """
        failed: Counter[str] = Counter()
        streak: dict[str, int] = {}
        for line in self.text(0, until).splitlines():
            if STARTED in line:  # a new process: streaks of the last one ended with it
                failed.update(streak)
                streak = {}
            elif m := POLL_FAILED.search(line):
                streak[m.group(1)] = max(streak.get(m.group(1), 0), int(m.group(2)))
            elif m := RECOVERED.search(line):
                streak.pop(m.group(1), None)
                failed[m.group(1)] += int(m.group(2))
        failed.update(streak)
        return failed

    def tail(self, chars: int = 4000) -> str:
        return self.text()[-chars:]

    def watch(self, since: int | None = None) -> LogWatch:
        return LogWatch(self.path, self.size() if since is None else since)


class LogWatch:
    """Follows the log from an offset, reading only what is new (cheap to poll every few ms)."""

    def __init__(self, path: Path, since: int) -> None:
        self.path = path
        self.offset = since
        self.seen = ""

    def poll(self) -> str:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return self.seen
        end = data.rfind(b"\n")
        if end >= 0:
            self.seen += data[: end + 1].decode("utf-8", "replace")
            self.offset += end + 1
        return self.seen

    def has(self, needle: str) -> bool:
        return needle in self.poll()


# -- processes ------------------------------------------------------------------------------------


def kill9(proc: subprocess.Popen[bytes]) -> int | None:
    """SIGKILL and reap; returns the exit code the process had already, or None if it was killed alive."""
    code = proc.poll()
    if code is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    return code


def terminate(proc: subprocess.Popen[bytes], timeout: float = 25) -> int:
    """SIGTERM (a clean stop); SIGKILL only if it does not end in time (the test then fails on the code)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            return -999
    return proc.returncode


def thread_states(pid: int) -> list[str]:
    states = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        states.append(stat[stat.rfind(")") + 2])  # the field after "(comm)"
    return states


def freeze(pid: int, timeout: float = 5.0) -> None:
    """SIGSTOP, then wait until every thread of the process is really stopped (delivery is async)."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = thread_states(pid)
        if states and all(s in "Tt" for s in states):
            return
        time.sleep(0.001)
    raise AssertionError(f"process {pid} did not stop within {timeout} s: {thread_states(pid)}")


def thaw(pid: int) -> None:
    os.kill(pid, signal.SIGCONT)


# -- the store, from outside ----------------------------------------------------------------------


def connect_ro(db: Path) -> sqlite3.Connection:
    """Read-only, never creating anything: the agent's own file, watched while it runs."""
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)


def pending_and_last(db: Path) -> tuple[int, int]:
    """(readings not yet confirmed, highest seq), in one read transaction."""
    con = connect_ro(db)
    try:
        con.execute("BEGIN")
        pending = con.execute("SELECT count(*) FROM readings WHERE sent IS NULL").fetchone()[0]
        last = con.execute("SELECT coalesce(max(seq), 0) FROM readings").fetchone()[0]
        con.execute("COMMIT")
        return int(pending), int(last)
    finally:
        con.close()


@dataclass
class StoreView:
    """What a store file holds, read with plain sqlite3."""

    integrity: str
    journal_mode: str
    readings: dict[int, Row]
    pending: int
    meta: dict[str, Any]
    events: list[tuple[int, str, dict[str, Any]]]

    @property
    def seqs(self) -> list[int]:
        return sorted(self.readings)


def read_store(db: Path, *, readonly: bool = True) -> StoreView:
    """Open a store (the agent's, stopped, or a crash image copied without -shm) and read it all.

    A crash image is opened read-write on purpose: that is what the agent does after a power cut,
    and it lets SQLite rebuild the -shm and recover the -wal.
    """
    con = connect_ro(db) if readonly else sqlite3.connect(db, timeout=10)
    try:
        integrity = "; ".join(r[0] for r in con.execute("PRAGMA integrity_check").fetchall())
        mode = con.execute("PRAGMA journal_mode").fetchone()[0]
        rows = con.execute(
            "SELECT r.seq, s.meter, s.quantity, s.unit, r.value, r.ts, r.slot, r.flags, r.sent "
            "FROM readings r JOIN series s ON s.id = r.series ORDER BY r.seq"
        ).fetchall()
        orphans = con.execute("SELECT count(*) FROM readings WHERE series NOT IN (SELECT id FROM series)").fetchone()[0]
        if orphans:
            integrity += f"; {orphans} readings name no series"
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        events = [
            (seq, kind, json.loads(detail))
            for seq, kind, detail in con.execute("SELECT seq, kind, detail FROM events ORDER BY seq")
        ]
    finally:
        con.close()
    readings = {
        seq: (meter, q, unit, value, ts, slot, flags) for seq, meter, q, unit, value, ts, slot, flags, _ in rows
    }
    pending = sum(1 for *_, sent in rows if sent is None)
    return StoreView(integrity, mode, readings, pending, meta, events)


def copy_crash_image(db: Path, into: Path) -> list[str]:
    """The database and its -wal (never the -shm: shared memory is not on disk after a power cut)."""
    into.mkdir(parents=True)
    copied = []
    for suffix in ("", "-wal"):
        src = db.with_name(db.name + suffix)
        try:
            shutil.copyfile(src, into / src.name)
        except FileNotFoundError:
            continue  # no -wal right now (never written yet, or removed at a clean close)
        copied.append(src.name)
    return copied


def wal_tail(wal: Path) -> tuple[int, int]:
    """(committed transactions, frames written after the last commit frame) in a -wal file.

    Frames after the last commit frame (same salt as the header) belong to a transaction that was
    being written when the image was taken: recovery must ignore them. Checksums are not verified;
    this only tells how often an image caught a commit half-way.
    """
    try:
        data = wal.read_bytes()
    except FileNotFoundError:
        return 0, 0
    if len(data) < 32:
        return 0, 0
    page = int.from_bytes(data[8:12], "big")
    salt = data[16:24]
    commits = tail = 0
    pos = 32
    while pos + 24 + page <= len(data):
        header = data[pos : pos + 24]
        if header[8:16] != salt:
            break  # a frame of an earlier generation of the file: the log ends here
        if int.from_bytes(header[4:8], "big"):
            commits += 1
            tail = 0
        else:
            tail += 1
        pos += 24 + page
    return commits, tail


def wal_generation(wal: Path) -> int | None:
    """The -wal header's checkpoint sequence number: it changes each time the log starts over."""
    try:
        with open(wal, "rb") as f:
            header = f.read(16)
    except FileNotFoundError:
        return None
    return int.from_bytes(header[12:16], "big") if len(header) == 16 else None


def contiguous(seqs: list[int], start: int = 1) -> bool:
    return seqs == list(range(start, start + len(seqs)))


def missing_between(have: set[int], first: int, last: int, show: int = 20) -> list[int]:
    return [s for s in range(first, last + 1) if s not in have][:show]


def runs(seqs: set[int]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive numbers, as (first, last), in order."""
    out: list[tuple[int, int]] = []
    for seq in sorted(seqs):
        if out and out[-1][1] == seq - 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


def sim_stats_updated(path: Path) -> float:
    """When ``meterlink sim modbus --stats FILE`` last wrote FILE (epoch seconds; 0 if not yet)."""
    try:
        return datetime.fromisoformat(json.loads(path.read_text())["updated"]).timestamp()
    except FileNotFoundError:
        return 0.0


def read_sim_stats(path: Path) -> dict[int, dict[str, Any]]:
    """What ``meterlink sim modbus --stats FILE`` counted, by unit id."""
    units = json.loads(path.read_text())["units"]
    return {int(unit): counts for unit, counts in units.items()}
