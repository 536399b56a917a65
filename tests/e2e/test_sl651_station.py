"""The agent as an SL651 station against simulated Modbus meters and the simulated centre, over TCP.

The centre's own record (every report it received, each once, and every answer) is what the
agent's store is checked against: reports sent, acknowledged, resent and lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from support.configs import write_site

from meterlink.agent import clock as agent_clock
from meterlink.agent import config as cfgmod
from meterlink.agent.service import Agent
from meterlink.agent.store import Store
from meterlink.agent.store_sl651 import Sl651Book
from meterlink.agent.uplinks.sl651_answers import ms_of, values_at_steps
from meterlink.sim.meter_model import SimMeter
from meterlink.sim.modbus_server import ModbusSimServer
from meterlink.sim.sl651_center import Center

pytestmark = pytest.mark.slow

ZONE = 8.0
SITE = """
[gateway]
id = "gw-sl651"
poll_interval = 1

[buses.tcp]
type = "tcp"
host = "127.0.0.1"
port = {modbus_port}
timeout = 0.3
retries = 0

[[meters]]
id = "intake"
bus = "tcp"
unit_id = 1
profile = "tuf2000"

[[meters]]
id = "outlet"
bus = "tcp"
unit_id = 2
profile = "emf_generic"

[store]
path = "state/meterlink.db"

[signing]
key = "keys/gateway.key"

[uplink.sl651]
host = "127.0.0.1"
port = {center_port}
center = 1
station = "0012345678"
password = "1234"
report_interval = 1
hourly = false
keepalive = 2
ack_timeout = 0.4
retries = 1
backfill_pace = 0
{extra}

[uplink.sl651.meters.intake]
flow = {{ id = "27" }}
volume = {{ id = "FF09", definition = "32" }}

[uplink.sl651.meters.outlet]
flow = {{ id = "28", unit = "m3/h" }}

[clock]
sync_check = "assume_synced"
"""


def centre_now() -> datetime:
    """The centre's wall clock in the frames' zone (UTC+8), whatever this machine's zone is."""
    return datetime.now(timezone(timedelta(hours=ZONE))).replace(tzinfo=None)


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def with_site(
    tmp_path: Path, centre: Center, body: Callable[[Agent, Center], Awaitable[None]], extra: str = ""
) -> Agent:
    sim = ModbusSimServer({1: SimMeter("tuf2000", 1, seed=1), 2: SimMeter("emf_generic", 2, seed=2)})
    modbus_port = await sim.start_tcp()
    centre_port = await centre.start()
    path = write_site(tmp_path / "site", SITE.format(modbus_port=modbus_port, center_port=centre_port, extra=extra))
    agent = Agent(cfgmod.load(path), backoff_max=0.3)
    task = asyncio.create_task(agent.run())
    try:
        ready = asyncio.create_task(agent.ready.wait())
        await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # start-up failed: show why
        await body(agent, centre)
    finally:
        agent.stop()
        await asyncio.wait_for(task, 20)
        await centre.stop()
        await sim.stop()
        agent_clock.set_offset(0)
    return agent


def key(view: dict[str, Any]) -> tuple[str, int, str]:
    """A report as the centre recorded it: function, serial, send time (every copy is the same frame)."""
    return view["function"], view["serial"], view["send_time"]


def element(view: dict[str, Any], ident: str) -> Any:
    return next(e["value"] for e in view["elements"] if e["id"] == ident)


def test_lost_ack_centre_restart_and_backfill_query_lose_nothing(tmp_path: Path) -> None:
    centres = [Center(drop_acks=2, clock=centre_now)]
    asked: dict[str, Any] = {}

    async def body(agent: Agent, first: Center) -> None:
        await until(lambda: len(first.reports) >= 3 and first.acks_dropped == 2, 10, "three reports")
        port = first.port
        await first.stop()
        await asyncio.sleep(3.5)  # three report slots with no centre
        second = Center(port=port, clock=centre_now)
        centres.append(second)
        asked["restart"] = agent_clock.now_ms()
        await second.start()
        await until(lambda: second.connections >= 1 and len(second.reports) >= 6, 15, "the backfill")
        hour = centre_now().replace(minute=0, second=0, microsecond=0)
        asked["at"] = agent_clock.now_ms()
        asked["period"] = (hour, hour + timedelta(hours=1))
        assert second.query(0x38, ident=0x27, definition=0x2B, step_minutes=1, period=asked["period"]) == 1
        await until(lambda: len(second.answers) >= 1, 5, "the period answer")
        await asyncio.sleep(1.5)

    agent = asyncio.run(with_site(tmp_path, centres[0], body))
    assert agent.parts is not None and agent.parts.sl651 is not None
    stats = agent.parts.sl651.stats
    store = Store(agent.parts.store.path, "gw-sl651")
    book = Sl651Book(store)
    kept = book.between(0, 2**62)
    received = {key(v): v for c in centres for v in c.reports}  # each centre counts a copy once
    sent_ever = [r for r in kept if r.serial is not None]
    acknowledged = [r for r in kept if r.confirmed]

    def as_sent(r: Any) -> tuple[str, int, str]:
        send_time = datetime.fromtimestamp(r.sent_at // 1000, timezone(timedelta(hours=ZONE)))
        return f"{r.function:02X}", r.serial, send_time.replace(tzinfo=None).isoformat()

    # Nothing counted delivered that the centre does not have; nothing kept before the last
    # acknowledged report is missing at the centre: lost = 0.
    assert all(as_sent(r) in received for r in acknowledged)
    last_acknowledged = max(r.slot for r in acknowledged)
    lost = [r for r in kept if r.slot <= last_acknowledged and (r.serial is None or as_sent(r) not in received)]
    assert lost == []
    # Every slot of the run was kept, the three without a centre too, and went out oldest first.
    slots = sorted(r.slot for r in kept if r.function == 0x32)
    assert slots == list(range(slots[0], slots[-1] + 1000, 1000))
    slot_of = {as_sent(r): r.slot for r in sent_ever}
    backfilled = [slot_of[key(v)] for v in centres[1].reports if slot_of[key(v)] < asked["restart"]]
    assert len(backfilled) >= 3 and backfilled == sorted(backfilled)
    # Two acknowledgements dropped: the first report was sent again, given up after its two tries,
    # kept, and sent again as the same frame; the centre counted it once.
    assert centres[0].acks_dropped == 2 and centres[0].repeats >= 2
    assert stats.reports_given_up == 1 and stats.resends >= 2
    assert stats.reports_acknowledged == len(acknowledged)
    assert len(received) == len(sent_ever)  # every report the agent sent is one record at the centres
    # Values: the intake's flow is its m3/h reading in m3/s, the outlet's stays m3/h.
    readings = {(r.meter, r.quantity, r.slot): r.value for r in store.readings(1, 10**9)}
    some = acknowledged[len(acknowledged) // 2]
    view = received[as_sent(some)]
    assert element(view, "27") == pytest.approx(round(readings[("intake", "flow_rate", some.slot)] / 3600, 3))
    assert element(view, "FF09") == pytest.approx(round(readings[("intake", "volume_total", some.slot)], 2))
    assert element(view, "28") == pytest.approx(round(readings[("outlet", "flow_rate", some.slot)], 3))
    # The period query: element 27 every minute of this hour, from the reports kept in the store.
    answer = centres[1].answers[0]
    assert answer["function"] == "38"
    start, end = (ms_of(t, ZONE) for t in asked["period"])
    expected = values_at_steps(book.between(start - 60_000, asked["at"]), 0x27, start, end, 60_000)
    got = element(answer, "27")
    until_asked = (asked["at"] - start) // 60_000 + 1  # steps up to the query; later ones were future
    assert got[:until_asked] == expected[:until_asked]
    assert any(v is not None for v in got)
    print(
        f"\nsl651 e2e: reports kept={len(kept)} sent={stats.reports_sent} acknowledged={stats.reports_acknowledged} "
        f"resent={stats.resends} given_up={stats.reports_given_up} lost={len(lost)} "
        f"centre_received={len(received)} centre_repeats={sum(c.repeats for c in centres)} "
        f"ever_sent={len(sent_ever)}"
    )


def test_queries_added_reports_and_serials_that_continue_across_a_restart(tmp_path: Path) -> None:
    records: list[dict[str, Any]] = []
    found: dict[str, Any] = {}

    def fast_centre() -> datetime:  # five minutes ahead of the agent: 4AH moves the agent's clock
        return centre_now() + timedelta(minutes=5)

    async def first_run(agent: Agent, centre: Center) -> None:
        await until(lambda: any(v["function"] == "33" for v in centre.reports), 10, "the added report")
        await until(lambda: len(centre.reports) >= 3, 10, "three reports")
        for function in (0x37, 0x51):
            centre.query(function)
        await until(lambda: len(centre.answers) >= 2, 5, "the answers")
        before = agent_clock.offset_ms()
        centre.query(0x4A)
        await until(lambda: len(centre.answers) >= 3, 5, "the clock set")
        found["offset"] = agent_clock.offset_ms() - before

    async def second_run(agent: Agent, centre: Center) -> None:
        await until(lambda: len(centre.reports) >= 2, 10, "reports after the restart")

    extra = 'added = ["agent_started"]\ntrust_center_time = true'
    first = Center(on_record=records.append, clock=fast_centre)
    asyncio.run(with_site(tmp_path, first, first_run, extra=extra))
    answers = {v["function"]: v for v in first.answers}
    assert set(answers) == {"37", "51", "4A"}
    assert element(answers["37"], "27") is not None and answers["37"]["station_type"] == "49"
    assert found["offset"] == pytest.approx(300_000, abs=2_000)
    last_serial = max(r["frame"]["serial"] for r in records if r["dir"] == "in")

    records.clear()
    second = Center(on_record=records.append, clock=centre_now)
    asyncio.run(with_site(tmp_path, second, second_run, extra=extra))
    inbound = [r["frame"] for r in records if r["dir"] == "in"]
    assert inbound[0]["function"] == "2F" and inbound[0]["serial"] == last_serial + 1  # numbering goes on
    assert sum(v["function"] == "33" for v in second.reports) == 1  # this run's agent_started, not the last's
