"""A 7-day outage of 64 meters at 1-minute polling, drained: nothing lost, live readings not held back.

About 645,000 readings wait in the store (injected, as if the broker had been away for a week)
when the agent starts; a live meter keeps being polled meanwhile. The backlog drains oldest first,
paced, flagged ``backfilled``; live readings go out at every upload slot while it drains; a kill -9
in the middle of the drain changes nothing. Counted against the store, read from outside: every seq
up to the last one it holds arrived; and against the clock: the live meter's every slot arrived,
complete, but for those lost to the restart.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from support.configs import write_site
from support.outage import inject_outage
from support.procs import start_agent, start_sim, wait_until
from support.store_probe import last_and_pending

from meterlink.agent.clock import now_ms
from meterlink.agent.keys import load_public_key
from meterlink.sim.broker import LocalBroker
from meterlink.sim.platform import Platform
from meterlink.wire.jws import Verifier

pytestmark = pytest.mark.slow

LIVE_QUANTITIES = 4  # xintai_water_meter: volume_total, volume_reverse, flow_rate, pipe_status

SITE = """
[gateway]
id = "gw-outage"
poll_interval = 1

[buses.tcp]
type = "tcp"
host = "127.0.0.1"
port = {port}
timeout = 0.3
retries = 0

[[meters]]
id = "live"
bus = "tcp"
unit_id = 1
profile = "xintai_water_meter"

[store]
path = "state/meterlink.db"
capacity_mb = 200

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "{broker}"
upload_interval = 2
batch_size = 2000
backfill_rate = {rate}

[clock]
sync_check = "assume_synced"
"""


def test_a_week_long_outage_drains_with_nothing_lost(tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path / "broker", persistent=True)
    broker.start()
    sim = start_sim("--tcp", "0", "--meter", "xintai_water_meter:1")
    site = write_site(tmp_path / "site", SITE.format(port=sim.tcp_port, broker=broker.url, rate=60_000))
    injected = inject_outage(
        tmp_path / "site" / "state" / "meterlink.db", "gw-outage", meters=64, days=7, end_ms=now_ms()
    )
    assert injected == 64 * 7 * 24 * 60  # 645,120
    verifier = Verifier([load_public_key(tmp_path / "site" / "keys" / "gateway.pub")])
    order: list[tuple[str, int]] = []  # (kind of message, its first seq), in the order they arrived

    def on_batch(kind: str, payload: dict, new: int) -> None:  # type: ignore[type-arg]
        rows = payload.get("readings", [])
        if rows:
            order.append(("live" if rows[0]["meter"] == "live" else "backlog", rows[0]["seq"]))

    platform = Platform(
        broker.host, broker.port, verifier, gateway="gw-outage", client_id="platform-outage", on_batch=on_batch
    )
    platform.start()
    log = tmp_path / "agent.log"
    db = tmp_path / "site" / "state" / "meterlink.db"
    agent = start_agent(site, log)
    try:
        # Part of the way into the drain, kill -9 and start again: nothing may change.
        assert wait_until(lambda: len(platform.received.readings) > injected // 3, 120), log.read_text()[-2000:]
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        killed_at = now_ms()
        agent = start_agent(site, log)
        assert wait_until(lambda: len(platform.received.readings) >= injected + 20, 240), log.read_text()[-2000:]
        # The meter goes quiet, so the store's last seq is final: every reading up to it must arrive.
        sim.stop()
        assert wait_until(lambda: last_and_pending(db)[1] == 0, 60), log.read_text()[-2000:]
        last = last_and_pending(db)[0]
        assert platform.wait_for(lambda r: ("gw-outage", last) in r.readings, 30), log.read_text()[-2000:]
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(20)
        except subprocess.TimeoutExpired:
            agent.kill()
        platform.stop()
        sim.stop()
        broker.stop(graceful=True)
    got = platform.received
    seqs = got.seqs("gw-outage")
    assert seqs == list(range(1, last + 1)), "a reading is missing, or the last ones in the store never arrived"
    assert last_and_pending(db) == (last, 0)
    assert got.rejected == 0 and got.conflicts == 0
    backlog = [key for key, r in got.readings.items() if r["meter"] != "live"]
    live = [key for key, r in got.readings.items() if r["meter"] == "live"]
    assert len(backlog) == injected
    assert all(key in got.backfilled for key in backlog)  # each arrived in a "backfill": true message
    assert live and sum(key in got.backfilled for key in live) < len(live) // 2
    # Oldest first: within the backlog, seqs arrive in increasing order (apart from the restart's resend).
    firsts = [seq for kind, seq in order if kind == "backlog"]
    assert sum(b < a for a, b in itertools.pairwise(firsts)) <= 3
    # Live readings were not held back behind the backlog: some arrived before its last message.
    last_backlog = max(i for i, (kind, _) in enumerate(order) if kind == "backlog")
    assert any(kind == "live" for kind, _ in order[:last_backlog])
    # Polling went on throughout the drain, in both runs: every slot of the live meter arrived, with
    # all its quantities, but for those the restart cost (a gap around the kill).
    live_slots = Counter(got.readings[key]["slot"] for key in live)
    assert set(live_slots.values()) == {LIVE_QUANTITIES}, live_slots
    slots = sorted(live_slots)
    gaps = [(a, b) for a, b in itertools.pairwise(slots) if b - a != 1000]
    assert all(a < killed_at < b for a, b in gaps), (gaps, killed_at)
    assert slots[0] < killed_at < slots[-1], "the live meter was not polled in both runs"
