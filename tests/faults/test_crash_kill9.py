"""Fault test: the agent is killed with SIGKILL again and again; no reading is ever lost silently.

The real agent (``meterlink run``) polls ten simulated meters on Modbus TCP and RTU (a pty) every
second and uploads every second, in small batches so that several are in flight at once, to a real
mosquitto (persistent), where a verifying platform with a persistent session checks every
signature. The agent is killed with SIGKILL at random moments and restarted:

- ``test_no_reading_lost_across_repeated_sigkill``: 50 kills, restarted at once each time, timed
  to land while Python is still importing or the store is being opened, right after it connected
  to the broker (the backlog is going out), right after a batch was confirmed (the next ones are
  in flight), right after a commit, and at any moment of a running agent.
- ``test_a_reading_sent_again_after_a_crash_carries_the_same_content``: kills aimed at the live
  upload a little after each second, restarted after a pause as systemd does (``RestartSec``), so
  the readings confirmed by the broker but not yet marked sent go out again later.

Then the agent runs once more, the meters go quiet, and everything drains. What reached the platform
is counted against two records the agent cannot rewrite:

- the commits the agent logged (``event=captured readings=N seq=A-B``, written after the commit
  returned, appended to by every run): every seq in them reached the platform, each with one content
  (docs/wire-format.md 5.2: "a reading sent again carries the same seq and the same content");
- the simulators' own count of the reads they answered with values (``sim modbus --stats``): every
  poll they answered arrived, complete, except at most the poll cycle in flight at each kill (answered,
  not yet committed), the one in flight when the meters were stopped, and polls the agent logged as
  failed (an answer later than its timeout). The last run is never killed, so of its polls only the
  one in flight when the meters were stopped may be missing: a steady loss shows there at once.

So readings lost together with their seq, or a store that forgot commits and numbered again, fail
here even though the store would look whole. The store is also checked against the platform (same
content, nothing it does not hold), intact, its seqs contiguous; nothing was rejected; the agent
never ended on its own.

The kill schedule comes from a fixed seed, printed; ``METERLINK_FAULT_SEED=N`` runs another one.
Figures go to stdout (``pytest -s``) and to ``tests/faults/.results/crash_kill9*.json``.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support.configs import write_site
from support.procs import SimProcess, start_agent, start_sim, wait_until

from meterlink.agent.keys import load_public_key
from meterlink.drivers.base import Flag
from meterlink.drivers.modbus import profiles
from meterlink.sim.broker import LocalBroker
from meterlink.sim.platform import Platform
from meterlink.wire.jws import Verifier

sys.path.insert(0, str(Path(__file__).parent))
import faultkit

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DEFAULT_SEED = 20251129
KILLS = 50
LIVE_KILLS = 12

SITE = """
[gateway]
id = "{gateway}"
poll_interval = 1

[buses.tcp]
type = "tcp"
host = "127.0.0.1"
port = {tcp_port}
timeout = 0.3
retries = 0

[buses.line]
type = "serial"
device = "{pty}"
timeout = 0.3
retries = 0
{meters}
[store]
path = "state/meterlink.db"

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "{broker}"
upload_interval = 1
# Small batches: a slot's readings and a restart's backlog go out as several messages, up to 4 in
# flight at once, so kills land between a PUBACK and the commit that marks its readings sent.
batch_size = 10
publish_timeout = 3

[clock]
sync_check = "assume_synced"

[log]
level = "debug"
"""

# (bus, unit, profile): 8 meters on Modbus TCP, 2 on Modbus RTU; 41 readings per second.
METERS = [("tcp", u, p) for u, p in enumerate(["tuf2000", "emf_generic", "mfe600h"] * 2 + ["tuf2000", "mfe600h"], 1)]
METERS += [("line", 1, "emf_generic"), ("line", 2, "qdy30a_level")]

METER = """
[[meters]]
id = "{bus}-{unit}"
bus = "{bus}"
unit_id = {unit}
profile = "{profile}"
"""

# How a storm kill is timed. Each picks a moment in a different phase of the agent's life.
MODES = {
    "early": 0.2,  # a delay from spawn: imports, config, store open, first connect
    "running": 0.2,  # a delay after the store is open (event=agent_started): anything
    "connected": 0.2,  # just after CONNACK: status publish and the backlog upload
    "uploaded": 0.25,  # just after a batch was confirmed: the next ones are in flight
    "captured": 0.15,  # just after a commit: that slot's live upload follows
}
MARKERS = {
    "running": "event=agent_started",
    "connected": "event=mqtt_connected",
    "uploaded": "event=uploaded",
    "captured": "event=captured",
}

# The live upload runs at each upload slot plus a settling time of a quarter of the interval
# (agent/uploader.py, settle_ms), by the wall clock.
LIVE_UPLOAD_AT = 0.250

# Commits the last, unkilled run makes before the meters go quiet: its polls are counted against
# the meters' answers with no kill to excuse a loss.
DRAIN_COMMITS = 4


def sim_stats(tmp_path: Path) -> dict[str, Path]:
    """Where each bus's simulator writes its counts (``--stats``), by bus name."""
    return {"tcp": tmp_path / "sim-tcp-stats.json", "line": tmp_path / "sim-line-stats.json"}


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[tuple[SimProcess, SimProcess]]:
    stats = sim_stats(tmp_path)
    tcp = start_sim(
        "--tcp",
        "0",
        "--stats",
        str(stats["tcp"]),
        *[a for bus, u, p in METERS if bus == "tcp" for a in ("--meter", f"{p}:{u}")],
    )
    try:
        rtu = start_sim(
            "--pty",
            "--stats",
            str(stats["line"]),
            *[a for bus, u, p in METERS if bus == "line" for a in ("--meter", f"{p}:{u}")],
        )
    except BaseException:
        tcp.stop()
        raise
    try:
        yield tcp, rtu
    finally:
        tcp.stop()
        rtu.stop()


@pytest.fixture
def persistent_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    b = LocalBroker(tmp_path / "broker", persistent=True)
    b.start()
    try:
        yield b
    finally:
        b.stop()


class Ledger:
    """Every distinct version of every reading the platform received, by seq (paho's thread)."""

    def __init__(self) -> None:
        self.versions: dict[int, list[dict[str, Any]]] = {}

    def on_batch(self, kind: str, payload: dict[str, Any], new: int) -> None:
        for r in payload.get("readings", []):
            seen = self.versions.setdefault(r["seq"], [])
            if r not in seen:
                seen.append(r)

    def conflicts(self) -> dict[int, list[dict[str, Any]]]:
        return {seq: v for seq, v in self.versions.items() if len(v) > 1}


@dataclass
class Rig:
    """Simulated meters, a persistent mosquitto, a verifying platform, and the agent's site folder."""

    name: str
    gateway: str
    site: Path
    db: Path
    log: faultkit.AgentLog
    platform: Platform
    ledger: Ledger
    sims: tuple[SimProcess, SimProcess]
    sim_stats: dict[str, Path]
    self_exits: list[tuple[int, int | None, str]] = field(default_factory=list)  # (run, code, its log)
    kills: Counter[str] = field(default_factory=Counter)
    kills_while_polling: int = 0  # of runs that had logged agent_started: polling had begun
    marker_timeouts: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    quiet_at: int = 0  # log offset at which the meters were stopped
    drain_from: int = 0  # log offset at which the last run started
    killed_at: float = 0.0  # wall clock of the last kill
    answered_before_drain: dict[str, dict[str, int]] = field(default_factory=dict)  # meter -> read -> answers

    def spawn(self) -> tuple[subprocess.Popen[bytes], faultkit.LogWatch]:
        watch = self.log.watch()
        return start_agent(self.site, self.log.path), watch

    def kill(self, run: int, agent: subprocess.Popen[bytes], watch: faultkit.LogWatch, mode: str) -> None:
        code = faultkit.kill9(agent)
        if code is not None:  # it was not alive any more: it ended on its own
            self.self_exits.append((run, code, watch.poll()[-3000:]))
        self.kills[mode] += 1
        self.killed_at = time.time()
        if watch.has("event=agent_started"):  # logged before the pollers start; read after the kill
            self.kills_while_polling += 1


def make_rig(name: str, tmp_path: Path, broker: LocalBroker, sims: tuple[SimProcess, SimProcess]) -> Rig:
    gateway = f"gw-{name}"
    tcp, rtu = sims
    meters = "".join(METER.format(bus=bus, unit=u, profile=p) for bus, u, p in METERS)
    site = write_site(
        tmp_path / "site",
        SITE.format(gateway=gateway, tcp_port=tcp.tcp_port, pty=rtu.pty, broker=broker.url, meters=meters),
    )
    verifier = Verifier([load_public_key(site.parent / "keys" / "gateway.pub")])
    ledger = Ledger()
    # A fixed client id: the broker keeps the platform's queue, as a production platform's would be.
    platform = Platform(
        broker.host, broker.port, verifier, gateway=gateway, client_id=f"platform-{name}", on_batch=ledger.on_batch
    )
    platform.start()
    return Rig(
        name,
        gateway,
        site,
        site.parent / "state" / "meterlink.db",
        faultkit.AgentLog(tmp_path / "agent.log"),
        platform,
        ledger,
        sims,
        sim_stats(tmp_path),
    )


def drain(rig: Rig) -> tuple[int, float]:
    """Run the agent once more, silence the meters, wait until nothing is pending and the platform
    has every seq; stop the agent cleanly. Returns (last seq, seconds)."""
    t0 = time.monotonic()
    # The meters' counts once settled after the last kill (a request the killed agent sent may be
    # answered just after its death): the last run's polls are counted from here.
    rig.answered_before_drain = settled_answers(rig)
    rig.drain_from = rig.log.size()
    agent, watch = rig.spawn()
    try:
        assert wait_until(
            lambda: watch.poll().count("event=captured") >= DRAIN_COMMITS and watch.has("event=uploaded"), 30
        ), watch.poll()[-4000:]
        # The meters go quiet: nothing new is captured, so "nothing pending" becomes final. Their
        # final counts are written as they stop.
        rig.quiet_at = rig.log.size()
        for sim in rig.sims:
            sim.stop()
        state: dict[str, int] = {}

        def drained() -> bool:
            pending, last = faultkit.pending_and_last(rig.db)
            stable = pending == 0 and state.get("last") == last
            state["last"] = last
            return stable

        assert wait_until(drained, 60, interval=0.5), f"still pending: {faultkit.pending_and_last(rig.db)}"
        last = state["last"]
        gw = rig.gateway
        wanted = set(range(1, last + 1)) | logged_seqs(rig.log.captured_ranges())
        rig.platform.wait_for(lambda r: all((gw, s) in r.readings for s in wanted), 30)
        code = faultkit.terminate(agent)
        assert code == 0, watch.poll()[-4000:]
    finally:
        faultkit.kill9(agent)
        rig.platform.stop()
    return last, time.monotonic() - t0


def logged_seqs(ranges: list[tuple[int, int, int]]) -> set[int]:
    return {seq for _, first, last in ranges for seq in range(first, last + 1)}


def answered_reads(rig: Rig) -> dict[str, dict[str, int]]:
    """The simulators' counts, as last written: meter -> read -> answers with values."""
    return {
        f"{bus}-{unit}": counts["answered_by_read"]
        for bus, path in rig.sim_stats.items()
        for unit, counts in faultkit.read_sim_stats(path).items()
    }


def settled_answers(rig: Rig) -> dict[str, dict[str, int]]:
    """:func:`answered_reads` once two writes of the simulators after the last kill agree."""
    seen: list[tuple[float, dict[str, dict[str, int]]]] = []

    def settled() -> bool:
        written = min(faultkit.sim_stats_updated(p) for p in rig.sim_stats.values())
        if written >= rig.killed_at and (not seen or written > seen[-1][0]):
            seen.append((written, answered_reads(rig)))
        return len(seen) >= 2 and seen[-1][1] == seen[-2][1]

    assert wait_until(settled, 15), f"the simulators' counts did not settle: {seen[-2:]}"
    return seen[-1][1]


@dataclass
class AnsweredPolls:
    """A meter's polls as its simulator answered them, against those that reached the platform."""

    meter: str
    arrived: Counter[str]  # readings per quantity
    answered: dict[str, int]  # answers with values per read (the simulator's count)
    failures: int  # polls the agent logged as failed (before the meters went quiet)
    allowance: int  # answered polls that may be missing: see answered_polls

    @property
    def polls_arrived(self) -> int:
        return max(self.arrived.values(), default=0)

    def not_arrived(self) -> dict[str, int]:
        """Per read: answered by the meter, yet in no poll that arrived."""
        return {read: n - self.polls_arrived for read, n in self.answered.items()}

    def beyond(self) -> bool:
        """More polls arrived than were answered, or more are missing than may be."""
        return any(n < 0 or n > self.allowance + self.failures for n in self.not_arrived().values())


def answered_polls(
    arrived_readings: list[dict[str, Any]], answered: dict[str, dict[str, int]], failures: Counter[str], allowance: int
) -> list[AnsweredPolls]:
    """Per meter: what the simulator answered beside the readings that arrived of that meter."""
    arrived: dict[str, Counter[str]] = {meter: Counter() for meter in answered}
    for r in arrived_readings:
        arrived.setdefault(r["meter"], Counter())[r["quantity"]] += 1
    return [
        AnsweredPolls(meter, arrived[meter], reads, failures[meter], allowance) for meter, reads in answered.items()
    ]


def verdict(rig: Rig, last: int, extra: dict[str, Any]) -> None:
    """Figures (printed, written to .results/) and the assertions both tests share."""
    store = faultkit.read_store(rig.db)
    got = rig.platform.received
    gw = rig.gateway
    received = {seq for g, seq in got.readings if g == gw}
    missing = faultkit.missing_between(received, 1, last, show=10**9)
    phantoms = sorted(s for s in received if s not in store.readings)
    foreign = sorted({g for g, _ in got.readings} - {gw})
    # What arrived must be exactly what the store holds ("backfill" belongs to the message, not to
    # the reading, so a reading sent again carries the content of its first copy).
    differing = []
    for seq, (meter, quantity, unit, value, ts, slot, flags) in store.readings.items():
        r = got.readings.get((gw, seq))
        if r is None:
            continue
        stored = {
            "seq": seq,
            "meter": meter,
            "quantity": quantity,
            "value": value,
            "unit": unit,
            "ts": ts,
            "slot": slot,
            **({"flags": Flag(flags).names()} if flags else {}),
        }
        if r != stored:
            differing.append((seq, stored, r))
    conflicts = rig.ledger.conflicts()
    full_log = rig.log.text()
    kills = sum(rig.kills.values())
    # Record 1: the commits the agent logged. Each must have reached the platform, with one content.
    ranges = rig.log.captured_ranges()
    logged = logged_seqs(ranges)
    miscounted = [r for r in ranges if r[0] != r[2] - r[1] + 1]
    logged_twice = sum(n for n, _, _ in ranges) - len(logged)  # a seq committed again: numbering restarted
    logged_not_arrived = sorted(s for s in logged if (gw, s) not in got.readings)
    logged_two_contents = sorted(s for s in logged if len(rig.ledger.versions.get(s, [])) > 1)
    # A commit whose log line a kill cut off arrived unlogged: at most one commit per kill.
    unlogged_runs = faultkit.runs(received - logged)
    # Record 2: what the simulators answered, against the complete polls that arrived. Lost between
    # a meter's answer and the commit may be: the poll cycle in flight at each kill of a polling
    # agent, a poll whose answer came after the agent's timeout (logged as failed), and the one in
    # flight when the meters were stopped.
    answered = answered_reads(rig)
    arrived = [r for (g, _), r in got.readings.items() if g == gw]
    failed = rig.log.poll_failures(until=rig.quiet_at)
    polls = answered_polls(arrived, answered, failed, rig.kills_while_polling + 1)
    expected_quantities = {f"{bus}-{u}": {s.quantity for s in profiles.load(p).value_specs()} for bus, u, p in METERS}
    incomplete = {
        p.meter: dict(p.arrived)
        for p in polls
        if set(p.arrived) != expected_quantities[p.meter] or len(set(p.arrived.values())) != 1
    }
    beyond = {p.meter: (p.not_arrived(), p.allowance + p.failures) for p in polls if p.beyond()}
    # The last run is never killed: of what the meters answered it, only the poll in flight when
    # they were stopped may be missing (or one the agent logged as failed).
    drain_seqs = logged_seqs(rig.log.captured_ranges(since=rig.drain_from))
    drain_polls = answered_polls(
        [r for (g, seq), r in got.readings.items() if g == gw and seq in drain_seqs],
        {
            m: {read: n - rig.answered_before_drain.get(m, {}).get(read, 0) for read, n in reads.items()}
            for m, reads in answered.items()
        },
        failed - rig.log.poll_failures(until=rig.drain_from),
        1,
    )
    drain_beyond = {p.meter: (p.not_arrived(), p.allowance + p.failures) for p in drain_polls if p.beyond()}
    figures = {
        "seed": extra.pop("seed"),
        "kills": sum(rig.kills.values()),
        "kills_by_mode": dict(rig.kills),
        "marker_timeouts": dict(rig.marker_timeouts),
        "agent_exited_on_its_own": len(rig.self_exits),
        "commits_logged": len(ranges),
        "seqs_in_logged_commits": len(logged),
        "logged_seqs_not_arrived": len(logged_not_arrived),
        "logged_seqs_with_two_contents": len(logged_two_contents),
        "logged_seqs_committed_twice": logged_twice,
        "arrived_without_log_line": len(received - logged),
        "polls_answered_by_meters": sum(max(p.answered.values(), default=0) for p in polls),
        "polls_arrived": sum(p.polls_arrived for p in polls),
        "answered_polls_not_arrived": {p.meter: max(p.not_arrived().values(), default=0) for p in polls},
        "last_run_polls_arrived": sum(p.polls_arrived for p in drain_polls),
        "last_run_answered_polls_not_arrived": {p.meter: max(p.not_arrived().values(), default=0) for p in drain_polls},
        "failed_polls_logged": sum(p.failures for p in polls),
        "kills_while_polling": rig.kills_while_polling,
        "uploads_logged": full_log.count("event=uploaded"),
        "readings": last,
        "store_rows": len(store.readings),
        "store_integrity": store.integrity,
        "messages_received": got.messages,
        "verified": got.verified,
        "rejected": got.rejected,
        "received_in_backfill_messages": len(got.backfilled),
        "duplicates_same_content": got.duplicates,
        "conflicts": got.conflicts,
        "conflicting_seqs": len(conflicts),
        "missing": len(missing),
        "phantoms": len(phantoms),
        "content_differs_from_store": len(differing),
        **extra,
        "total_seconds": round(time.monotonic() - rig.started, 1),
    }
    where = faultkit.write_results(rig.name, figures)
    print(f"[{rig.name}] {json.dumps(figures, sort_keys=True)}")
    print(f"[{rig.name}] figures written to {where}")
    print(
        f"[{rig.name}] survived {figures['kills']} SIGKILLs: {last} readings, {last - len(missing)} arrived "
        f"(missing {len(missing)}), {got.duplicates} duplicates with the same content, {got.conflicts} with "
        f"different content, {got.rejected} rejected"
    )
    print(
        f"[{rig.name}] against the log: {len(logged)} seqs in {len(ranges)} logged commits, "
        f"{len(logged_not_arrived)} not arrived; against the meters: {figures['polls_answered_by_meters']} polls "
        f"answered, {figures['polls_arrived']} arrived, per meter not arrived "
        f"{figures['answered_polls_not_arrived']} (allowed: {rig.kills_while_polling} kills while polling + failed "
        f"polls + 1)"
    )

    assert not rig.self_exits, f"the agent ended on its own (run, code, log): {rig.self_exits[:3]}"
    assert len(ranges) >= 10, "too few commits logged for the test to mean anything"
    assert not miscounted, f"logged commits whose count and seq range disagree: {miscounted[:5]}"
    assert logged_twice == 0, f"{logged_twice} seqs logged as committed more than once"
    assert not logged_not_arrived, (
        f"{len(logged_not_arrived)} seqs logged as committed never arrived, first: {logged_not_arrived[:20]}"
    )
    assert not logged_two_contents, f"logged seqs arrived with two contents: {logged_two_contents[:20]}"
    assert len(unlogged_runs) <= kills, f"more commits arrived unlogged than there were kills: {unlogged_runs}"
    assert not incomplete, f"polls arrived incomplete (readings per quantity): {incomplete}"
    assert all(p.polls_arrived > 0 for p in polls), [p.meter for p in polls if not p.polls_arrived]
    assert not beyond, f"answered polls not arrived (per read) beyond the allowance: {beyond}"
    assert all(p.polls_arrived >= 2 for p in drain_polls), {p.meter: dict(p.arrived) for p in drain_polls}
    assert not drain_beyond, f"last run: answered polls not arrived (per read), allowance: {drain_beyond}"
    assert store.integrity == "ok"
    assert faultkit.contiguous(store.seqs), (
        f"store seqs not 1..N, gaps at {faultkit.missing_between(set(store.seqs), 1, max(store.seqs))}"
    )
    assert store.seqs[-1] == last and store.pending == 0
    assert int(store.meta["next_seq"]) == last + 1
    assert got.rejected == 0, got.reject_reasons[:5]
    assert not missing, f"{len(missing)} seqs never arrived, first: {missing[:20]}"
    assert not phantoms, f"seqs arrived that the store does not hold: {phantoms[:20]}"
    assert not foreign, foreign
    assert not differing, f"arrived content differs from the store: {differing[:3]}"
    example = next(iter(conflicts.items()), None)
    assert got.conflicts == 0, (
        f"{got.conflicts} duplicates with different content ({len(conflicts)} seqs), e.g. seq {example}"
    )
    assert "Traceback" not in full_log, full_log[full_log.index("Traceback") - 500 :][:3000]


def storm_delay(rng: random.Random, mode: str) -> float:
    """Seconds to wait (from spawn for "early", else from the mode's log line) before SIGKILL."""
    if mode == "early":
        return rng.uniform(0.0, 1.2)
    if mode == "running":
        return rng.uniform(0.0, 1.0)
    if mode == "connected":
        return rng.uniform(0.0, 0.15)
    if mode == "uploaded":
        return rng.uniform(0.0, 0.03)
    return rng.uniform(0.0, 0.15)  # captured


def test_no_reading_lost_across_repeated_sigkill(
    tmp_path: Path, persistent_broker: LocalBroker, sims: tuple[SimProcess, SimProcess]
) -> None:
    seed = faultkit.seed_from_env(DEFAULT_SEED)
    rng = random.Random(seed)
    print(f"\n[crash_kill9] seed={seed} (rerun with METERLINK_FAULT_SEED={seed})")
    rig = make_rig("crash_kill9", tmp_path, persistent_broker, sims)
    try:
        modes, weights = zip(*MODES.items(), strict=True)
        for run in range(1, KILLS + 1):
            mode = rng.choices(modes, weights)[0]
            delay = storm_delay(rng, mode)
            agent, watch = rig.spawn()
            try:
                if mode != "early" and not wait_until(
                    lambda m=MARKERS[mode], w=watch, a=agent: w.has(m) or a.poll() is not None, 15, interval=0.003
                ):
                    rig.marker_timeouts[mode] += 1
                time.sleep(delay)
            finally:
                rig.kill(run, agent, watch, mode)
        storm_s = time.monotonic() - rig.started
        print(f"[crash_kill9] {KILLS} kills in {storm_s:.1f} s: {dict(rig.kills)}")
    except BaseException:
        rig.platform.stop()
        raise
    last, drain_s = drain(rig)
    assert last >= 300, "too few readings for the test to mean anything"
    verdict(rig, last, {"seed": seed, "storm_seconds": round(storm_s, 1), "drain_seconds": round(drain_s, 1)})


def test_a_reading_sent_again_after_a_crash_carries_the_same_content(
    tmp_path: Path, persistent_broker: LocalBroker, sims: tuple[SimProcess, SimProcess]
) -> None:
    """Killed while a slot's readings are in flight, restarted a little later (systemd waits
    RestartSec=5 in deploy/meterlink.service; 1.2-1.6 s here): what the broker had confirmed but the
    store had not marked goes out again, and must carry exactly what it carried the first time."""
    seed = faultkit.seed_from_env(DEFAULT_SEED) + 1
    rng = random.Random(seed)
    print(f"\n[crash_kill9_live] seed={seed} (rerun with METERLINK_FAULT_SEED={seed - 1})")
    rig = make_rig("crash_kill9_live", tmp_path, persistent_broker, sims)
    try:
        for run in range(1, LIVE_KILLS + 1):
            agent, watch = rig.spawn()
            try:
                if not wait_until(
                    lambda w=watch, a=agent: w.has("event=captured") or a.poll() is not None, 15, interval=0.003
                ):
                    rig.marker_timeouts["captured"] += 1
                # A few ms into the next live upload: its batches are in flight.
                now = time.time()
                target = math.floor(now) + LIVE_UPLOAD_AT + rng.uniform(0.002, 0.010)
                if target - now < 0.02:
                    target += 1
                time.sleep(max(0.0, target - time.time()))
            finally:
                rig.kill(run, agent, watch, "live_upload")
            time.sleep(rng.uniform(1.2, 1.6))
        storm_s = time.monotonic() - rig.started
    except BaseException:
        rig.platform.stop()
        raise
    last, drain_s = drain(rig)
    verdict(rig, last, {"seed": seed, "storm_seconds": round(storm_s, 1), "drain_seconds": round(drain_s, 1)})
