"""Fault test: the agent is killed (SIGKILL) the moment an SZY206 meter takes its confirm.

An SZY206 meter drops a self-report once it is confirmed: from then on the agent's store is the only
copy. So the confirm may only leave after the report's readings are committed with fsync. Here a
real ``meterlink sim szy206-meter --print-confirms`` self-reports over a pty, and a reader thread
sends SIGKILL to the agent the instant the simulator prints that a confirm arrived, before the agent
can do anything else. Round after round, the agent is started again on the same store. At the end
one more life uploads everything to a verifying platform over a real mosquitto.

Every report the meter saw confirmed (the simulator's record, which the agent cannot rewrite) must be
in the store, as a report's readings (``ts == slot``, the report's own time), and at the platform.
A confirm sent before the commit loses nearly every round's report.

Polling is hourly, so between kills only self-reports reach the store. Figures go to stdout (``-s``)
and to ``tests/faults/.results/kill_at_confirm.json``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.configs import write_site
from support.procs import METERLINK, start_agent, wait_until

from meterlink.agent.keys import load_public_key
from meterlink.sim.broker import LocalBroker
from meterlink.sim.platform import Platform
from meterlink.wire.jws import Verifier

sys.path.insert(0, str(Path(__file__).parent))
import faultkit

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ROUNDS = 25
GATEWAY = "gw-confirm"

SITE = """
[gateway]
id = "{gateway}"
poll_interval = 3600

[buses.line]
type = "serial"
protocol = "szy206"
device = "{pty}"
timeout = 0.5
retries = 0

[[meters]]
id = "well"
bus = "line"
address = "530381:13"
pairs = 2

[store]
path = "state/meterlink.db"

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "{broker}"
upload_interval = 1

[clock]
sync_check = "assume_synced"

[log]
level = "debug"
"""

CONFIRMED = re.compile(r"confirmed (\S+) afn=(\w\w) fcb=(\d) pairs=(.*)")
Report = tuple[tuple[float, float], ...]  # (flow, volume) per pair


@dataclass
class Confirms:
    """The simulator's own record of the confirms it took, and a trigger that kills on the next one."""

    seen: list[tuple[str, Report]] = field(default_factory=list)
    at_kill: list[int] = field(default_factory=list)  # index into ``seen`` of the confirm each kill answered
    target: subprocess.Popen[bytes] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def arm(self, agent: subprocess.Popen[bytes]) -> None:
        with self.lock:
            self.target = agent

    def take(self, line: str) -> None:
        m = CONFIRMED.match(line)
        if m is None:
            return
        pairs = tuple((float(f), float(v)) for f, v in (p.split("/") for p in m.group(4).split()))
        with self.lock:
            self.seen.append((m.group(1), pairs))
            agent, self.target = self.target, None
            if agent is not None and agent.poll() is None:
                os.kill(agent.pid, signal.SIGKILL)  # before the agent can take another step
                self.at_kill.append(len(self.seen) - 1)


@pytest.fixture
def meter_sim() -> Iterator[tuple[subprocess.Popen[str], str, Confirms]]:
    proc = subprocess.Popen(
        [
            *METERLINK,
            "sim",
            "szy206-meter",
            "--pty",
            "--meter",
            "530381:13:2",
            "--report-interval",
            "0.5",
            "--confirm-timeout",
            "1.5",
            "--tp",
            "7",
            "--print-confirms",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    m = re.match(r"szy206 pty (\S+) ", first)
    assert m, first
    confirms = Confirms()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            confirms.take(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield proc, m.group(1), confirms
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(5)


def reports(rows: list[tuple[str, str, float, int, int]], meter: str) -> set[Report]:
    """The self-reports among ``rows`` (meter, quantity, value, ts, slot; in seq order) of ``meter``, each
    as its (flow, volume) pairs. A report's readings carry its own time as both ts and slot, and sit
    together under consecutive seqs, pair 1 first; two reports may share one second."""
    found: list[dict[str, float]] = []
    for m, quantity, value, ts, slot in rows:
        if m != meter or ts != slot:
            continue
        if quantity == "flow_rate" or not found:
            found.append({})
        found[-1][quantity] = value
    return {
        ((q["flow_rate"], q["volume_total"]), (q["flow_rate_2"], q["volume_total_2"])) for q in found if len(q) == 4
    }


def store_reports(view: faultkit.StoreView, meter: str) -> set[Report]:
    return reports([(m, q, v, ts, slot) for _, (m, q, _u, v, ts, slot, _f) in sorted(view.readings.items())], meter)


def platform_reports(platform: Platform, meter: str) -> set[Report]:
    with platform.lock:
        got = sorted(platform.received.readings.items())
    return reports([(r["meter"], r["quantity"], r["value"], r["ts"], r["slot"]) for _, r in got], meter)


def test_every_confirmed_report_survives_a_kill_at_its_confirm(
    tmp_path: Path, broker: LocalBroker, meter_sim: tuple[subprocess.Popen[str], str, Confirms]
) -> None:
    started = time.monotonic()
    _, pty, confirms = meter_sim
    site = write_site(tmp_path / "site", SITE.format(gateway=GATEWAY, pty=pty, broker=broker.url))
    db = site.parent / "state" / "meterlink.db"
    log = faultkit.AgentLog(tmp_path / "agent.log")
    verifier = Verifier([load_public_key(site.parent / "keys" / "gateway.pub")])
    platform = Platform(broker.host, broker.port, verifier, gateway=GATEWAY, client_id="platform-confirm")
    platform.start()
    agent: subprocess.Popen[bytes] | None = None
    killed = 0
    try:
        for _ in range(ROUNDS):
            agent = start_agent(site, log.path)
            confirms.arm(agent)
            # The next confirm kills it; a meter that reports every 0.5 s gives one soon after start.
            assert wait_until(lambda a=agent: a.poll() is not None, 30), log.tail()
            assert agent.returncode == -signal.SIGKILL, log.tail()
            killed += 1
        # One more life, not killed: it uploads what the store still holds.
        agent = start_agent(site, log.path)
        with confirms.lock:
            wanted = {pairs for _, pairs in confirms.seen}
        arrived = wait_until(lambda: wanted <= platform_reports(platform, "well"), 30)
        code = faultkit.terminate(agent)
        agent = None
        at_platform = platform_reports(platform, "well")
        received = platform.received
    finally:
        if agent is not None:
            faultkit.kill9(agent)
        platform.stop()

    view = faultkit.read_store(db)
    with confirms.lock:
        seen = list(confirms.seen)
        at_kill = list(confirms.at_kill)
    stored = store_reports(view, "well")
    confirmed_at_kill = [seen[i][1] for i in at_kill]
    lost_from_store = [pairs for _, pairs in seen if pairs not in stored]
    lost_at_kill = [pairs for pairs in confirmed_at_kill if pairs not in stored]
    missing_at_platform = [pairs for pairs in confirmed_at_kill if pairs not in at_platform]
    figures = {
        "rounds": ROUNDS,
        "kills_at_a_confirm": len(at_kill),
        "reports_confirmed": len(seen),
        "confirmed_reports_in_store": len(seen) - len(lost_from_store),
        "confirmed_at_kill_lost": len(lost_at_kill),
        "confirmed_at_kill_missing_at_platform": len(missing_at_platform),
        "platform_conflicts": received.conflicts,
        "platform_rejected": received.rejected,
        "seconds": round(time.monotonic() - started, 1),
    }
    where = faultkit.write_results("kill_at_confirm", figures)
    print(f"\n[kill_at_confirm] {json.dumps(figures, sort_keys=True)} -> {where}")

    assert killed == ROUNDS and len(at_kill) == ROUNDS, "every round must end in a kill at a confirm"
    assert not lost_at_kill, f"{len(lost_at_kill)} of {len(at_kill)} reports confirmed at the kill were lost"
    assert not lost_from_store, f"confirmed reports missing from the store: {lost_from_store}"
    assert code == 0, log.tail()
    assert arrived and not missing_at_platform, f"not at the platform: {missing_at_platform}"
    assert received.conflicts == 0 and received.rejected == 0
    assert view.integrity == "ok"
