"""The agent reading SZY206 meters over a pty: B0H polls and the meters' own self-reports."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from support.configs import write_site

from meterlink.agent import config as cfgmod
from meterlink.agent.service import Agent
from meterlink.agent.store import Store
from meterlink.protocols.szy206.fields import Address
from meterlink.sim.szy206_meter import SimSzy206Meter
from meterlink.sim.szy206_meter_server import Szy206SimServer

pytestmark = pytest.mark.slow

SITE = """
[gateway]
id = "gw-szy-meters"
poll_interval = 1

[buses.line]
type = "serial"
protocol = "szy206"
device = "{pty}"
timeout = 0.4
retries = 1

[[meters]]
id = "well"
bus = "line"
address = "530381:13"

[[meters]]
id = "canal"
bus = "line"
address = "530381:14"
pairs = 2

[store]
path = "state/meterlink.db"

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "mqtt://127.0.0.1:1"

[clock]
sync_check = "assume_synced"
"""


def test_polls_and_self_reports_of_two_meters_on_one_line(tmp_path: Path) -> None:
    well = SimSzy206Meter(Address(division="530381", station=13), seed=1, report_interval=1.5)
    canal = SimSzy206Meter(Address(division="530381", station=14), pairs=2, seed=2)

    async def main() -> Agent:
        sim = Szy206SimServer([well, canal])
        pty = sim.start_pty()
        agent = Agent(cfgmod.load(write_site(tmp_path / "site", SITE.format(pty=pty))), backoff_max=0.5)
        task = asyncio.create_task(agent.run())
        await asyncio.sleep(5.5)
        agent.stop()
        await asyncio.wait_for(task, 20)
        await sim.stop()
        return agent

    agent = asyncio.run(main())
    assert agent.parts is not None
    store = Store(agent.parts.store.path, "gw-szy-meters")
    rows = store.readings(1, 10**9)
    well_rows = [r for r in rows if r.meter == "well"]
    canal_quantities = {r.quantity for r in rows if r.meter == "canal"}
    assert canal_quantities == {"flow_rate", "volume_total", "flow_rate_2", "volume_total_2"}
    polled = {r.slot for r in well_rows if r.slot % 1000 == 0}
    assert len(polled) >= 4  # every 1 s slot
    assert well.queries_answered >= 4 and canal.queries_answered >= 4
    assert well.reports_sent >= 2 and well.confirms_received >= 2  # self-reports confirmed ...
    assert len(well_rows) > 2 * len(polled)  # ... and captured beside the polls
    for r in well_rows:
        if r.quantity == "volume_total":
            assert r.value == int(r.value) and r.value > 0


LISTEN_SITE = """
[gateway]
id = "gw-szy-listen"
poll_interval = 3600

[buses.line]
type = "tcp"
protocol = "szy206"
host = "127.0.0.1"
port = {port}
timeout = 0.3
retries = 0

[[meters]]
id = "well"
bus = "line"
address = "530381:13"

[store]
path = "state/meterlink.db"

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "mqtt://127.0.0.1:1"

[clock]
sync_check = "assume_synced"
"""


def test_self_reports_are_heard_before_the_first_poll_and_after_a_lost_connection(tmp_path: Path) -> None:
    """Polled hourly, the line is still listened to from the start: the meter's reports are stored and
    confirmed. When the connection drops (the meter side restarts), the agent connects again by itself."""
    well = SimSzy206Meter(Address(division="530381", station=13), seed=3, report_interval=0.3)

    async def until(predicate: Callable[[], bool], timeout: float) -> bool:
        for _ in range(int(timeout / 0.05)):
            if predicate():
                return True
            await asyncio.sleep(0.05)
        return predicate()

    async def main() -> tuple[Agent, int, int]:
        sim = Szy206SimServer([well], confirm_timeout=0.5)
        port = await sim.start_tcp()
        agent = Agent(cfgmod.load(write_site(tmp_path / "site", LISTEN_SITE.format(port=port))), backoff_max=0.5)
        task = asyncio.create_task(agent.run())
        try:
            assert await until(lambda: well.confirms_received >= 3, 10), well.confirms_received
            first_life = well.confirms_received
            await sim.stop()  # the connection is gone; a new server takes the same port
            sim = Szy206SimServer([well], confirm_timeout=0.5)
            await sim.start_tcp(port=port)
            assert await until(lambda: sim.stats.tcp_connections >= 1, 10), "the agent did not connect again"
            assert await until(lambda: well.confirms_received >= first_life + 3, 10)
        finally:
            agent.stop()
            await asyncio.wait_for(task, 20)
            await sim.stop()
        return agent, first_life, well.confirms_received

    agent, first_life, confirmed = asyncio.run(main())
    assert agent.parts is not None
    store = Store(agent.parts.store.path, "gw-szy-listen")
    rows = [r for r in store.readings(1, 10**9) if r.meter == "well" and r.quantity == "volume_total"]
    store.close()
    assert well.queries_answered == 0  # no poll came: everything stored was reported by the meter
    assert len(rows) >= confirmed >= first_life + 3, (len(rows), confirmed)
