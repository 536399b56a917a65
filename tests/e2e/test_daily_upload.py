"""Day summaries reach the platform signed: the agent summarises the day before from its store at its
first tick (here, a store of readings from before the rules ran, as after an upgrade) and sends it on
/daily, with the meter archive on /archive."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from support.configs import write_site

from meterlink.agent import config as cfgmod
from meterlink.agent.clock import now_ms
from meterlink.agent.keys import load_public_key
from meterlink.agent.rules.calendar import day_of, midnight
from meterlink.agent.service import Agent
from meterlink.agent.store import Store
from meterlink.drivers.base import Reading
from meterlink.sim.broker import LocalBroker
from meterlink.sim.platform import Platform
from meterlink.wire.jws import Verifier

pytestmark = pytest.mark.slow

GATEWAY = "gw-daily"
SITE = """
[gateway]
id = "{gateway}"
poll_interval = 600

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
[meters.archive]
serial = "TUF-0042"

[store]
path = "state/meterlink.db"

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "{broker}"
upload_interval = 1

[clock]
sync_check = "assume_synced"
"""


def test_yesterday_is_summarised_and_sent(tmp_path: Path, broker: LocalBroker) -> None:
    site = write_site(tmp_path / "site", SITE.format(gateway=GATEWAY, broker=broker.url))
    zone = ZoneInfo("Asia/Shanghai")
    yesterday = day_of(now_ms() - 10 * 60_000, zone) - timedelta(days=1)  # settled, whatever the hour
    start = midnight(yesterday, zone)
    db = site.parent / "state" / "meterlink.db"
    db.parent.mkdir()
    store = Store(db, GATEWAY)
    slots = [start + i * 600_000 for i in range(145)]  # 00:00 to the next 00:00, every 10 minutes
    store.append(
        [Reading("m1", "volume_total", 5000.0 + i, "m3", ts + 300, ts) for i, ts in enumerate(slots)]
        + [Reading("m1", "flow_rate", 6.0, "m3/h", ts + 300, ts) for ts in slots]
    )
    store.close()

    verifier = Verifier([load_public_key(site.parent / "keys" / "gateway.pub")])
    platform = Platform(broker.host, broker.port, verifier, gateway=GATEWAY, client_id="platform-daily")
    platform.start()

    async def main() -> None:
        agent = Agent(cfgmod.load(site), backoff_max=0.5)
        task = asyncio.create_task(agent.run())
        try:
            for _ in range(300):
                with platform.lock:
                    if platform.received.daily and platform.received.archive is not None:
                        break
                await asyncio.sleep(0.1)
        finally:
            agent.stop()
            await asyncio.wait_for(task, 30)

    try:
        asyncio.run(main())
    finally:
        platform.stop()
    days = [d for d in platform.received.daily if d["day"] == yesterday.isoformat()]
    assert len(days) == 1, platform.received.daily
    (day,) = days
    assert (day["meter"], day["volume"], day["start_total"], day["end_total"]) == ("m1", 144.0, 5000.0, 5144.0)
    assert (day["slots_expected"], day["slots_filled"], day["report_rate"]) == (144, 144, 1.0)
    assert (day["flow_mean"], day["version"], day["correction"]) == (6.0, 1, False)
    assert platform.received.archive == {"m1": {"serial": "TUF-0042", "transmission": "Modbus TCP over TCP/IP"}}
    assert platform.received.rejected == 0
