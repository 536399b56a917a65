"""Cut the power under a running agent again and again; check each disk it leaves, and restart on it.

One life: the agent starts (with the shim) on the store's folder as the last cut left it; at a
random moment it is SIGKILLed; the folder is rebuilt from what was durable (:mod:`model`) and
checked against everything the agent had acknowledged to the outside world before the cut, in any
of its lives: readings it logged as committed (``event=captured``, logged after the commit
returned), readings PUBACKed and marked (``event=uploaded``), readings the verifying platform holds.
The rebuilt folder then replaces the store's folder and the next life starts on it.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faultkit  # tests/faults is on sys.path: the tests put it there

from meterlink.agent.seqmark import SeqMark
from meterlink.agent.store import Store
from meterlink.sim.platform import Platform

from . import model

UPLOADED = re.compile(r"event=uploaded batch=\d+ readings=\d+ seq=(\d+)-(\d+)")
UNSAFE_AGENT = Path(__file__).with_name("unsafe_agent.py")
DB = "meterlink.db"
MODES = ("opening", "after_wal_sync", "any")
LATE_S = 3.0  # the longest a cut waits for the sync events it is aimed at


def agent_command(variant: str | None) -> list[str]:
    """The agent as a process: the product itself, or (test of the test) an unsafe variant of it."""
    if variant is None:
        return [sys.executable, "-m", "meterlink"]
    return [sys.executable, str(UNSAFE_AGENT), variant]


def seq_ranges(pattern: re.Pattern[str], text: str, group: int = 1) -> set[int]:
    seqs: set[int] = set()
    for m in pattern.finditer(text):
        seqs.update(range(int(m.group(group)), int(m.group(group + 1)) + 1))
    return seqs


@dataclass
class Acknowledged:
    """What the agent told the outside world, over all its lives."""

    captured: set[int] = field(default_factory=set)  # logged as committed
    uploaded: set[int] = field(default_factory=set)  # PUBACKed and marked sent
    received: dict[int, dict[str, Any]] = field(default_factory=dict)  # verified by the platform

    def seqs(self) -> set[int]:
        return self.captured | self.uploaded | set(self.received)

    def highest(self) -> int:
        return max(self.seqs(), default=0)


@dataclass
class Cut:
    """One power cut and what the disk held afterwards."""

    n: int
    mode: str
    life_seconds: float
    wal_syncs: int  # fdatasync/fsync of the -wal the shim saw in this life
    files: dict[str, int]  # the rebuilt folder: name -> size
    held: int  # readings in the rebuilt store
    lost: list[int]  # acknowledged seqs the rebuilt store does not hold
    marks_lost: list[int]  # logged as uploaded, pending in the rebuilt store: sent again (marks are not fsynced)
    seqmark: int
    handed_out: int  # the highest seq the outside world had seen
    problems: list[str]

    @property
    def seqmark_behind(self) -> bool:
        return self.handed_out > 0 and self.seqmark <= self.handed_out


@dataclass
class PowerCuts:
    """The agent of ``site``, its store in ``state``, cut again and again; ``work`` holds each life."""

    site: Path
    state: Path
    shim: Path
    work: Path
    platform: Platform
    gateway: str
    rng: random.Random
    variant: str | None = None
    ack: Acknowledged = field(default_factory=Acknowledged)
    cuts: list[Cut] = field(default_factory=list)
    restarts_below: list[str] = field(default_factory=list)  # lives that began at or below a seq handed out
    lives: int = 0

    # -- one life -------------------------------------------------------------------------------

    def start(self) -> tuple[subprocess.Popen[bytes], Path]:
        self.lives += 1
        out = self.work / f"life-{self.lives:02d}"
        self.state.mkdir(exist_ok=True)
        model.record_start(self.state, out)
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "LD_PRELOAD": str(self.shim),
            "POWERCUT_DIR": str(self.state.resolve()),
            "POWERCUT_OUT": str(out),
        }
        with open(out / "agent.log", "ab") as log:
            proc = subprocess.Popen(
                [*agent_command(self.variant), "run", "-c", str(self.site)], stdout=log, stderr=log, env=env
            )
        return proc, out

    def cut_once(self, mode: str | None = None) -> Cut:
        """One life, ended by a power cut at a moment chosen by ``mode`` (random if None)."""
        mode = mode or self.rng.choice(MODES)
        before = self.ack.highest()
        proc, out = self.start()
        started = time.monotonic()
        try:
            mode = self._wait_for_moment(mode, proc, out)
            code = faultkit.kill9(proc)
        finally:
            if proc.poll() is None:
                faultkit.kill9(proc)
        life_seconds = time.monotonic() - started
        problems = [] if code is None else [f"the agent ended by itself (exit {code}): {self._tail(out)}"]
        if "Traceback" in faultkit.AgentLog(out / "agent.log").text():
            problems.append(f"a traceback in life {self.lives}: {self._tail(out)}")
        self._learn(out, before)
        journal = model.read_journal(out)
        disk = out / "disk"
        files = model.reconstruct(out, disk)
        cut = self._check(len(self.cuts) + 1, mode, life_seconds, journal, disk, files, problems)
        self.cuts.append(cut)
        # The next life starts on the disk this cut left.
        shutil.rmtree(self.state)
        shutil.copytree(disk, self.state)
        if not cut.problems and not cut.lost and not cut.seqmark_behind:
            shutil.rmtree(out / "snap")  # keeps tmp small; a failing life keeps everything
        return cut

    def final_life(self, ready: Callable[[str], bool], timeout: float = 30) -> tuple[int | None, str]:
        """One more life on the last disk, stopped cleanly once ``ready(log)``; (exit code, log)."""
        before = self.ack.highest()
        proc, out = self.start()
        try:
            faultkit_log = faultkit.AgentLog(out / "agent.log")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and proc.poll() is None and not ready(faultkit_log.text()):
                time.sleep(0.05)
            code: int | None = faultkit.terminate(proc)
        finally:
            if proc.poll() is None:
                faultkit.kill9(proc)
        self._learn(out, before)
        return code, faultkit.AgentLog(out / "agent.log").text()

    def _wait_for_moment(self, mode: str, proc: subprocess.Popen[bytes], out: Path) -> str:
        """Returns when the power is to be cut, and the moment as it came (``+late``: the sync events
        awaited did not come within a few seconds, as with an agent that hardly syncs, so the cut
        came then)."""
        log = faultkit.AgentLog(out / "agent.log")
        events = model.events_file(out)

        def lines() -> list[str]:
            return [ln for ln in events.read_text().splitlines() if not ln.startswith(f"L {model.START_PID} ")]

        def wal_syncs() -> int:
            return sum(1 for ln in lines() if ln.startswith("S ") and ln.endswith("-wal"))

        def wait(until: Callable[[], bool], pause: float, limit: float) -> bool:
            deadline = time.monotonic() + limit
            while not until():
                if proc.poll() is not None or time.monotonic() > deadline:
                    return False  # an agent that ended by itself is reported by the caller
                time.sleep(pause)
            return True

        if mode == "opening":
            # Right after one of the first sync events of this life: a new store being made (its
            # rollback journal, the switch to WAL, the first commit), or an old one reopened, its
            # seq mark rewritten, the first commits.
            k = self.rng.randint(1, 16)
            return mode if wait(lambda: len(lines()) >= k, 0.0005, LATE_S) else f"{mode}+late"
        if not wait(lambda: "event=captured" in log.text(), 0.01, 30) and proc.poll() is None:
            raise AssertionError(f"life {self.lives}: nothing captured in 30 s: {self._tail(out)}")
        if mode == "after_wal_sync":
            # Right after a commit's fsync returned: before the agent could log it, or amid a checkpoint.
            target = wal_syncs() + self.rng.randint(1, 6)
            if not wait(lambda: wal_syncs() >= target, 0.0005, LATE_S):
                return f"{mode}+late"
            until = time.monotonic() + self.rng.choice([0.0, self.rng.uniform(0, 0.003)])
            while time.monotonic() < until:
                pass
        else:
            time.sleep(self.rng.uniform(0.0, 1.0))
        return mode

    def _learn(self, out: Path, highest_before: int) -> None:
        text = faultkit.AgentLog(out / "agent.log").text()
        captured = seq_ranges(faultkit.CAPTURED, text, 2)
        if captured and min(captured) <= highest_before:
            self.restarts_below.append(
                f"life {self.lives} captured seq {min(captured)}, "
                f"but seq {highest_before} was handed out before it started"
            )
        self.ack.captured |= captured
        self.ack.uploaded |= seq_ranges(UPLOADED, text)
        with self.platform.lock:
            for (gateway, seq), reading in self.platform.received.readings.items():
                if gateway == self.gateway:
                    self.ack.received[seq] = reading

    # -- the disk a cut left --------------------------------------------------------------------

    def _check(
        self,
        n: int,
        mode: str,
        life_seconds: float,
        journal: model.Journal,
        disk: Path,
        files: dict[str, int],
        problems: list[str],
    ) -> Cut:
        held: dict[int, tuple[Any, ...]] = {}
        pending: set[int] = set()
        if files.get(DB, 0) > 0:
            held, pending = self._read_image(disk, n, problems)
        acknowledged = self.ack.seqs()
        for seq, reading in self.ack.received.items():
            row = held.get(seq)
            if (
                row is not None
                and (
                    reading["meter"],
                    reading["quantity"],
                    reading["unit"],
                    reading["value"],
                    reading["ts"],
                    reading["slot"],
                )
                != row[:6]
            ):
                problems.append(f"seq {seq}: the platform has {reading}, the store {row}")
                break
        return Cut(
            n=n,
            mode=mode,
            life_seconds=round(life_seconds, 2),
            wal_syncs=journal.syncs_of("-wal"),
            files=files,
            held=len(held),
            lost=sorted(acknowledged - set(held)),
            marks_lost=sorted(self.ack.uploaded & pending),
            seqmark=SeqMark(disk / f"{DB}.seqmark").reserved,
            handed_out=self.ack.highest(),
            problems=problems,
        )

    def _read_image(self, disk: Path, n: int, problems: list[str]) -> tuple[dict[int, tuple[Any, ...]], set[int]]:
        """The rebuilt store's readings and pending seqs, read from copies (opening one recovers it)."""
        by_sqlite, by_store = self.work / f"check-{n:02d}" / "sqlite", self.work / f"check-{n:02d}" / "store"
        shutil.copytree(disk, by_sqlite)
        shutil.copytree(disk, by_store)
        held: dict[int, tuple[Any, ...]] = {}
        pending: set[int] = set()
        try:
            con = sqlite3.connect(by_sqlite / DB)
            try:
                # No table yet: the cut came before the store's first commit; the agent starts it afresh.
                empty = con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
                if not empty:
                    pending = {seq for (seq,) in con.execute("SELECT seq FROM readings WHERE sent IS NULL")}
            finally:
                con.close()
            view = None if empty else faultkit.read_store(by_sqlite / DB, readonly=False)
        except sqlite3.DatabaseError as exc:
            problems.append(f"does not open: {type(exc).__name__}: {exc}")
        else:
            if view is not None:
                held = dict(view.readings)
                if view.integrity != "ok":
                    problems.append(f"integrity_check: {view.integrity}")
                if view.journal_mode != "wal":
                    problems.append(f"journal_mode {view.journal_mode}")
        try:
            store = Store(by_store / DB, self.gateway)
            try:
                if store.moved_aside is not None:
                    problems.append(f"the agent's Store moved it aside: {store.moved_aside[1]}")
                elif held and store.next_seq <= max(held):
                    problems.append(f"the agent's Store would continue at {store.next_seq}, below {max(held)}")
            finally:
                store.close()
        except Exception as exc:
            problems.append(f"the agent's Store does not open it: {type(exc).__name__}: {exc}")
        shutil.rmtree(self.work / f"check-{n:02d}")
        return held, pending

    def _tail(self, out: Path) -> str:
        return faultkit.AgentLog(out / "agent.log").tail(1500)
