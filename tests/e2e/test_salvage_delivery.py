"""A store with one page overwritten: the agent salvages it at start and delivers what was readable.

The store is made by the agent's own Store with 10,000 pending readings, closed, and one leaf page of
its readings is overwritten with noise, as a bad SD card would. The agent (a real process) moves the
file aside, salvages into a new store, and uploads to a verifying platform over a real mosquitto.
What the platform receives is compared with what the store held before the damage.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from pathlib import Path

import pytest
from support.configs import write_site
from support.procs import start_agent, wait_until

from meterlink.agent.keys import load_public_key
from meterlink.agent.store import Store
from meterlink.drivers.base import Reading
from meterlink.sim.broker import LocalBroker
from meterlink.sim.platform import Platform
from meterlink.wire.jws import Verifier

pytestmark = pytest.mark.slow

GATEWAY = "gw-salvage"
T0 = 1_764_374_400_000
PENDING = 10_000

SITE = """
[gateway]
id = "{gateway}"
poll_interval = 3600

[buses.tcp]
type = "tcp"
host = "127.0.0.1"
port = 9
timeout = 0.2
retries = 0

[[meters]]
id = "m1"
bus = "tcp"
unit_id = 1
profile = "tuf2000"

[store]
path = "state/meterlink.db"

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "{broker}"
upload_interval = 1
batch_size = 500

[clock]
sync_check = "assume_synced"
"""


def test_a_store_with_an_overwritten_page_is_salvaged_and_delivered(tmp_path: Path, broker: LocalBroker) -> None:
    started = time.monotonic()
    site = write_site(tmp_path / "site", SITE.format(gateway=GATEWAY, broker=broker.url))
    db = site.parent / "state" / "meterlink.db"
    db.parent.mkdir()
    store = Store(db, GATEWAY)
    readings = [
        Reading(f"m{i % 4}", "volume_total", 1000.0 + i, "m3", T0 + i * 60_000, T0 + i * 60_000) for i in range(PENDING)
    ]
    for i in range(0, PENDING, 1000):
        store.append(readings[i : i + 1000])
    before = {r.seq: (r.meter, r.value, r.ts) for r in store.readings(1, 10**9)}
    store.close()
    con = sqlite3.connect(db)
    leaves = [
        n
        for (n,) in con.execute(
            "SELECT pageno FROM dbstat WHERE name = 'readings' AND pagetype = 'leaf' ORDER BY pageno"
        )
    ]
    con.close()
    with db.open("r+b") as f:
        f.seek((leaves[len(leaves) // 2] - 1) * 4096)
        f.write(random.Random(7).randbytes(4096))

    verifier = Verifier([load_public_key(site.parent / "keys" / "gateway.pub")])
    platform = Platform(broker.host, broker.port, verifier, gateway=GATEWAY, client_id="platform-salvage")
    platform.start()
    log = tmp_path / "agent.log"
    agent = start_agent(site, log)
    try:

        def replaced() -> list[dict[str, object]]:
            with platform.lock:
                return [e for e in platform.received.events if e["kind"] == "store_salvaged"]

        assert wait_until(lambda: bool(replaced()), 30), log.read_text()[-3000:]
        detail = replaced()[0]  # an event's members sit beside its kind
        salvaged = detail["salvaged"]
        assert isinstance(salvaged, int), detail
        assert wait_until(lambda: len(platform.received.readings) >= salvaged, 60), log.read_text()[-3000:]
    finally:
        agent.terminate()
        agent.wait(30)
        platform.stop()
    got = {seq: (r["meter"], r["value"], r["ts"]) for (_, seq), r in platform.received.readings.items()}
    figures = {
        "pending_before": PENDING,
        "salvaged": salvaged,
        "unreadable": detail["unreadable"],
        "delivered": len(got),
        "conflicts": platform.received.conflicts,
        "seconds": round(time.monotonic() - started, 1),
    }
    print(f"\n[salvage delivered] {json.dumps(figures)}")
    assert got == {seq: before[seq] for seq in got}, "a reading arrived with another seq or content"
    assert len(got) == salvaged and salvaged + int(detail["unreadable"]) == PENDING  # type: ignore[call-overload]
    assert PENDING - salvaged <= 250  # one page's worth
    assert platform.received.conflicts == 0 and platform.received.rejected == 0
    assert "event=store_corrupt" in log.read_text()
