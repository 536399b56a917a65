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

Then the agent runs once more, the meters go quiet, and everything drains. Checked: every seq from
1 to the last one in the store reached the platform, with the content the store holds; nothing was
rejected; a seq that arrived twice arrived with the same content (docs/wire-format.md 5.2: "a
reading sent again carries the same seq and the same content"); the store is intact, its seqs
contiguous; the agent never ended on its own.

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

from meterlink.agent import signing
from meterlink.drivers.base import Flag
from meterlink.sim.broker import LocalBroker
from meterlink.sim.platform import Platform

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
MARKERS = {"running": "event=agent_started", "connected": "event=mqtt_connected",
           "uploaded": "event=uploaded", "captured": "event=captured"}

# The live upload runs at each upload slot plus a settling time of a quarter of the interval
# (agent/uploader.py, settle_ms), by the wall clock.
LIVE_UPLOAD_AT = 0.250


@pytest.fixture
def sims() -> Iterator[tuple[SimProcess, SimProcess]]:
    tcp = start_sim("--tcp", "0", *[a for bus, u, p in METERS if bus == "tcp" for a in ("--meter", f"{p}:{u}")])
    try:
        rtu = start_sim("--pty", *[a for bus, u, p in METERS if bus == "line" for a in ("--meter", f"{p}:{u}")])
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
    self_exits: list[tuple[int, int | None, str]] = field(default_factory=list)  # (run, code, its log)
    kills: Counter[str] = field(default_factory=Counter)
    marker_timeouts: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    def spawn(self) -> tuple[subprocess.Popen[bytes], faultkit.LogWatch]:
        watch = self.log.watch()
        return start_agent(self.site, self.log.path), watch

    def kill(self, run: int, agent: subprocess.Popen[bytes], watch: faultkit.LogWatch, mode: str) -> None:
        code = faultkit.kill9(agent)
        if code is not None:  # it was not alive any more: it ended on its own
            self.self_exits.append((run, code, watch.poll()[-3000:]))
        self.kills[mode] += 1


def make_rig(name: str, tmp_path: Path, broker: LocalBroker, sims: tuple[SimProcess, SimProcess]) -> Rig:
    gateway = f"gw-{name}"
    tcp, rtu = sims
    meters = "".join(METER.format(bus=bus, unit=u, profile=p) for bus, u, p in METERS)
    site = write_site(tmp_path / "site", SITE.format(gateway=gateway, tcp_port=tcp.tcp_port, pty=rtu.pty,
                                                     broker=broker.url, meters=meters))
    verifier = signing.Verifier([signing.load_public_key(site.parent / "keys" / "gateway.pub")])
    ledger = Ledger()
    # A fixed client id: the broker keeps the platform's queue, as a production platform's would be.
    platform = Platform(broker.host, broker.port, verifier, gateway=gateway, client_id=f"platform-{name}",
                        on_batch=ledger.on_batch)
    platform.start()
    return Rig(name, gateway, site, site.parent / "state" / "meterlink.db", faultkit.AgentLog(tmp_path / "agent.log"),
               platform, ledger, sims)


def drain(rig: Rig) -> tuple[int, float]:
    """Run the agent once more, silence the meters, wait until nothing is pending and the platform
    has every seq; stop the agent cleanly. Returns (last seq, seconds)."""
    t0 = time.monotonic()
    agent, watch = rig.spawn()
    try:
        assert wait_until(lambda: watch.has("event=captured") and watch.has("event=uploaded"), 30), \
            watch.poll()[-4000:]
        # The meters go quiet: nothing new is captured, so "nothing pending" becomes final.
        for sim in rig.sims:
            sim.stop()
        state: dict[str, int] = {}

        def drained() -> bool:
            pending, last = faultkit.pending_and_last(rig.db)
            stable = pending == 0 and state.get("last") == last
            state["last"] = last
            return stable

        assert wait_until(drained, 60, interval=1.0), f"still pending: {faultkit.pending_and_last(rig.db)}"
        last = state["last"]
        gw = rig.gateway
        rig.platform.wait_for(lambda r: all((gw, s) in r.readings for s in range(1, last + 1)), 30)
        code = faultkit.terminate(agent)
        assert code == 0, watch.poll()[-4000:]
    finally:
        faultkit.kill9(agent)
        rig.platform.stop()
    return last, time.monotonic() - t0


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
        stored = {"seq": seq, "meter": meter, "quantity": quantity, "value": value, "unit": unit, "ts": ts,
                  "slot": slot, **({"flags": Flag(flags).names()} if flags else {})}
        if r != stored:
            differing.append((seq, stored, r))
    conflicts = rig.ledger.conflicts()
    full_log = rig.log.text()
    figures = {
        "seed": extra.pop("seed"),
        "kills": sum(rig.kills.values()),
        "kills_by_mode": dict(rig.kills),
        "marker_timeouts": dict(rig.marker_timeouts),
        "agent_exited_on_its_own": len(rig.self_exits),
        "commits_logged": full_log.count("event=captured"),
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
    print(f"[{rig.name}] survived {figures['kills']} SIGKILLs: {last} readings, {last - len(missing)} arrived "
          f"(missing {len(missing)}), {got.duplicates} duplicates with the same content, {got.conflicts} with "
          f"different content, {got.rejected} rejected")

    assert not rig.self_exits, f"the agent ended on its own (run, code, log): {rig.self_exits[:3]}"
    assert store.integrity == "ok"
    assert faultkit.contiguous(store.seqs), \
        f"store seqs not 1..N, gaps at {faultkit.missing_between(set(store.seqs), 1, max(store.seqs))}"
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
    assert "Traceback" not in full_log, full_log[full_log.index("Traceback") - 500:][:3000]


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
                if not wait_until(lambda w=watch, a=agent: w.has("event=captured") or a.poll() is not None, 15,
                                  interval=0.003):
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
