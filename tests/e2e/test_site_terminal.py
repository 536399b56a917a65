"""The agent as an SZY206 site terminal against the simulated central station, over real TCP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from support.configs import write_site

from meterlink.agent import clock as agent_clock
from meterlink.agent import config as cfgmod
from meterlink.agent.service import Agent
from meterlink.agent.store import Store
from meterlink.protocols.szy206.elements import AlarmBit, decode_flow_data
from meterlink.protocols.szy206.fields import Address
from meterlink.protocols.szy206.messages import LinkKind
from meterlink.protocols.szy206.times import label_to_ms
from meterlink.sim.meter_model import Fault, SimMeter
from meterlink.sim.modbus_server import ModbusSimServer
from meterlink.sim.station import Station

pytestmark = pytest.mark.slow

SITE = """
[gateway]
id = "gw-szy"
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
szy206_position = 2

[[meters]]
id = "outlet"
bus = "tcp"
unit_id = 2
profile = "emf_generic"
szy206_position = 1

[store]
path = "state/meterlink.db"

[signing]
key = "keys/gateway.key"

[uplink.szy206]
host = "127.0.0.1"
port = {station_port}
division = "430100"
station = 7
report_interval = 1
keepalive = 2
confirm_timeout = 0.4
backfill_pace = 0
{extra}

[clock]
sync_check = "assume_synced"
"""

ADDRESS = Address(division="430100", station=7)


async def with_site(
    tmp_path: Path,
    station: Station,
    body: Callable[[Agent, Station], Awaitable[None]],
    extra: str = "",
    report_interval: int = 1,
    dead_units: tuple[int, ...] = (),
) -> Agent:
    sim = ModbusSimServer({1: SimMeter("tuf2000", 1, seed=1), 2: SimMeter("emf_generic", 2, seed=2)})
    for unit in dead_units:
        sim.meters[unit].set_fault(Fault.NO_ANSWER)
    modbus_port = await sim.start_tcp()
    station_port = await station.start()
    site = SITE.format(modbus_port=modbus_port, station_port=station_port, extra=extra)
    site = site.replace("report_interval = 1\n", f"report_interval = {report_interval}\n")
    path = write_site(tmp_path / "site", site)
    agent = Agent(cfgmod.load(path), backoff_max=0.5)
    task = asyncio.create_task(agent.run())
    try:
        ready = asyncio.create_task(agent.ready.wait())
        await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # start-up failed: show why
        await body(agent, station)
    finally:
        agent.stop()
        await asyncio.wait_for(task, 20)
        await station.stop()
        await sim.stop()
        agent_clock.set_offset(0)
    return agent


def slot_of(report: object) -> int:
    tp = report.tp  # type: ignore[attr-defined]
    return label_to_ms(tp, now_ms=agent_clock.now_ms())


def test_login_reports_in_position_order_and_confirms(tmp_path: Path) -> None:
    async def body(agent: Agent, station: Station) -> None:
        await station.wait_for(lambda s: len(s.logins) >= 1, 5)
        await station.wait_for(lambda s: len(s.reports) >= 3, 8)
        assert agent.parts is not None and agent.parts.terminal is not None
        await asyncio.sleep(0.2)
        assert agent.parts.terminal.stats.reports_confirmed >= 3

    station = Station()
    agent = asyncio.run(with_site(tmp_path, station, body))
    assert agent.parts is not None
    store = Store(agent.parts.store.path, "gw-szy")  # the agent closed its own at stop
    address, report, _ = station.reports[-1]
    assert address == ADDRESS
    assert len(report.meters) == 2  # positions 1 and 2
    slot = slot_of(report)
    assert slot % 1000 == 0
    readings = {(r.meter, r.quantity): r for r in store.readings(1, 10**9) if r.slot == slot}
    outlet, intake = report.meters  # position 1 is the outlet meter, position 2 the intake
    assert outlet.flow == pytest.approx(round(readings[("outlet", "flow_rate")].value, 3), abs=0.0011)
    assert intake.volume == int(readings[("intake", "volume_total")].value)
    assert report.alarm == 0 and report.status & 0b11 == 1


def test_lost_confirms_resend_with_the_fcb_counting_down(tmp_path: Path) -> None:
    async def body(agent: Agent, station: Station) -> None:
        await station.wait_for(lambda s: len(s.reports) >= 1, 8)
        station.drop_confirms = 2
        await station.wait_for(lambda s: s.confirms_dropped >= 2 and len(s.reports) >= 5, 10)

    station = Station()
    asyncio.run(with_site(tmp_path, station, body))
    fcbs: dict[bytes, list[int]] = {}
    for record in station.frames:
        if record.direction == "in" and record.frame.afn == 0xC0:
            assert record.frame.tp is not None
            fcbs.setdefault(record.frame.data + bytes(record.frame.tp.to_bytes()), []).append(record.frame.fcb)
    assert [3, 2, 1] in fcbs.values(), fcbs


def test_a_station_restart_backfills_the_missed_slots_oldest_first(tmp_path: Path) -> None:
    async def body(agent: Agent, station: Station) -> None:
        await station.wait_for(lambda s: len(s.reports) >= 2, 8)
        await station.stop()
        await asyncio.sleep(3.5)  # about three report slots with no station
        await station.start()
        await station.wait_for(lambda s: s.connections >= 2, 10)
        await asyncio.sleep(3)

    station = Station()
    agent = asyncio.run(with_site(tmp_path, station, body))
    assert agent.parts is not None
    slots = [slot_of(r) for _, r, _ in station.reports]
    # Every slot from the first report on reached the station, the missed ones too.
    span = range(min(slots), max(slots) + 1000, 1000)
    assert set(span) <= set(slots), sorted(set(span) - set(slots))
    # Backfilled reports (time label with no transmission delay allowed, as they are old) went out
    # oldest first; live ones carry the configured delay.
    backfilled = [slot_of(r) for _, r, _ in station.reports if r.tp is not None and r.tp.delay_min == 0]
    assert len(backfilled) >= 2
    assert backfilled == sorted(backfilled), "backfill goes oldest first"
    confirmed, _ = Store(agent.parts.store.path, "gw-szy").report_counts()
    assert confirmed >= len(span) - 1


def test_queries_real_time_stored_and_clock(tmp_path: Path) -> None:
    results: dict[str, Any] = {}

    async def body(agent: Agent, station: Station) -> None:
        await station.wait_for(lambda s: len(s.reports) >= 3, 8)
        results["b0"] = await station.query_realtime(ADDRESS, timeout=2)
        end = station.now()
        results["b1"] = await station.query_stored(ADDRESS, end - timedelta(seconds=30), end, timeout=2)
        before = agent_clock.offset_ms()
        results["clock"] = await station.set_clock(ADDRESS, station.now() + timedelta(minutes=5), timeout=2)
        results["offset"] = agent_clock.offset_ms() - before

    station = Station()
    asyncio.run(with_site(tmp_path, station, body, extra="trust_station_time = true"))
    b0 = results["b0"]
    assert b0.afn == 0xB0 and b0.direction == 1 and len(b0.data) == 2 * 10 + 4
    b1 = results["b1"]
    assert len(b1) >= 3 and all(f.afn == 0xB1 for f in b1)
    assert results["clock"] is not None
    assert 295_000 <= results["offset"] <= 305_000  # trusted: the agent's clock moved


def test_a_station_lost_while_a_report_awaits_its_confirm_is_only_a_lost_link(tmp_path: Path) -> None:
    """The station goes away during a confirm wait: the slot is kept, the agent runs on, and the
    reports resume when the station is back (the agent must not stop, let alone with exit 0)."""

    async def body(agent: Agent, station: Station) -> None:
        await station.wait_for(lambda s: len(s.reports) >= 1, 8)
        station.drop_confirms = 100
        await station.wait_for(lambda s: s.confirms_dropped >= 1, 5)
        await station.stop()  # inside the 0.4 s the report waits for its confirm
        await asyncio.sleep(1.5)
        station.drop_confirms = 0
        before = len(station.reports)
        await station.start()
        await station.wait_for(lambda s: len(s.reports) >= before + 3, 10)

    asyncio.run(with_site(tmp_path, Station(), body))


def test_reports_carry_the_values_polled_for_their_slot_when_polls_are_faster(tmp_path: Path) -> None:
    """Polls every second, reports every 6 s: by the time a slot is closed (1.5 s after it), newer polls have come in;
    the report still carries the slot's own values, not AA with a meter-fault alarm."""

    async def body(agent: Agent, station: Station) -> None:
        await station.wait_for(lambda s: len(s.reports) >= 3, 25)

    station = Station()
    asyncio.run(with_site(tmp_path, station, body, report_interval=6))
    reports = [r for _, r, _ in station.reports]
    # The first slot may close before the first poll: its values are then absent, but no meter is
    # faulty for that, so no report raises the alarm.
    assert reports and all(r.alarm == 0 for r in reports), [r.alarm for r in reports]
    later = reports[1:]
    assert later and all(m.flow is not None and m.volume is not None for r in later for m in r.meters)


def test_a_meter_that_does_not_answer_is_absent_with_the_flow_meter_fault_alarm(tmp_path: Path) -> None:
    async def body(agent: Agent, station: Station) -> None:
        await station.wait_for(lambda s: len(s.reports) >= 4, 15)

    station = Station()
    # Slots of 2 s close 0.5 s after their boundary, after the dead meter's 0.3 s timeout.
    asyncio.run(with_site(tmp_path, station, body, dead_units=(1,), report_interval=2))  # unit 1: intake
    later = [r for _, r, _ in station.reports][2:]  # once its first poll has failed
    assert later
    for report in later:
        outlet, intake = report.meters
        assert intake.flow is None and intake.volume is None
        assert outlet.flow is not None and outlet.volume is not None
        assert report.alarm & AlarmBit.FLOW_METER_FAULT, report.alarm


def test_slots_are_kept_while_a_report_is_being_resent(tmp_path: Path) -> None:
    """Four tries of 0.4 s outlast a 1 s slot: the boundaries in between are still closed and kept."""

    async def body(agent: Agent, station: Station) -> None:
        await station.wait_for(lambda s: len(s.reports) >= 1, 8)
        station.drop_confirms = 4
        await station.wait_for(lambda s: s.confirms_dropped >= 4, 10)
        await asyncio.sleep(2)

    agent = asyncio.run(with_site(tmp_path, Station(), body))
    assert agent.parts is not None
    store = Store(agent.parts.store.path, "gw-szy")
    slots = [slot for slot, _ in store.reports_between(0, 2**62)]
    assert slots == list(range(slots[0], slots[-1] + 1000, 1000)), slots


@pytest.mark.parametrize("ahead_s", [3600, -3600])
def test_a_trusted_station_an_hour_off_moves_the_clock_by_an_hour(tmp_path: Path, ahead_s: int) -> None:
    """A 5-byte time label has no month: a station an hour fast must read as an hour fast (not as
    a month slow), and the terminal logs out with a time label too."""

    async def body(agent: Agent, station: Station) -> None:
        await station.wait_for(lambda s: len(s.reports) >= 2, 8)
        offsets.append(agent_clock.offset_ms())

    offsets: list[int] = []
    station = Station(clock=lambda: time.time() + ahead_s)
    asyncio.run(with_site(tmp_path, station, body, extra="trust_station_time = true"))
    assert abs(offsets[0] - ahead_s * 1000) < 5_000, offsets
    logouts = [
        r.frame
        for r in station.frames
        if r.direction == "in" and r.frame.afn == 0x02 and r.frame.data == bytes([LinkKind.LOGOUT])
    ]
    assert logouts and all(f.tp is not None for f in logouts)


def test_the_fault_alarm_follows_the_pollers_view_of_a_meter(tmp_path: Path) -> None:
    """Wired as the agent builds it: a meter not polled yet (a slot closed before the first poll
    after a start) is absent without the alarm; a meter failing its polls raises it."""
    path = write_site(tmp_path / "site", SITE.format(modbus_port=1, station_port=1, extra=""))
    parts = Agent(cfgmod.load(path)).build()
    assert parts.terminal is not None
    slot = 1_764_374_400_000
    meters, alarm, _ = decode_flow_data(parts.terminal.report_data(slot))
    assert [(m.flow, m.volume) for m in meters] == [(None, None), (None, None)]
    assert alarm == 0
    intake = next(m for p in parts.pollers for m in p.meters if m.meter.id == "intake")
    intake.state.online = False  # what the poller records when a poll fails
    _, alarm, _ = decode_flow_data(parts.terminal.report_data(slot))
    assert alarm & AlarmBit.FLOW_METER_FAULT
    parts.store.close()
