"""Bad lines and bad meters: a dead meter, a dead bus, noise of every kind, a reset totalizer.

Real parts: simulated meters on pty pairs (RS-485 as the agent's pyserial sees it) and on TCP,
the agent's own pollers and drivers. Nothing here is mocked.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Sequence
from typing import Any

import pytest

from meterlink.agent.clock import ClockCheck
from meterlink.agent.quality import QualityCheck
from meterlink.agent.scheduler import BusPoller, ScheduledMeter
from meterlink.drivers.base import Flag, Reading
from meterlink.drivers.modbus import profiles
from meterlink.drivers.modbus.bus import ModbusBus
from meterlink.drivers.modbus.driver import ModbusDriver, ModbusMeter
from meterlink.drivers.params import SerialParams, TcpParams
from meterlink.sim.meter_model import Fault, SimMeter
from meterlink.sim.modbus_server import ModbusSimServer

pytestmark = pytest.mark.slow
PROFILE = "tuf2000"


def meter(mid: str, unit: int) -> ModbusMeter:
    p = profiles.load(PROFILE)
    return ModbusMeter(mid, unit, p.value_specs(), max_gap=p.max_gap)


class Recorder:
    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def sink(self, readings: Sequence[Reading]) -> None:
        self.readings.extend(readings)

    async def event(self, kind: str, detail: dict[str, Any]) -> None:
        self.events.append((kind, detail))

    def slots(self, meter_id: str) -> list[int]:
        return sorted({r.slot for r in self.readings if r.meter == meter_id})


def poller(
    name: str, params: SerialParams | TcpParams, meters: list[ModbusMeter], rec: Recorder, quality: bool = False
) -> BusPoller:
    bus = ModbusBus(name, params, timeout=0.15, retries=1)
    scheduled = [ScheduledMeter(m, 1000, quality=QualityCheck(m.id, m.specs) if quality else None) for m in meters]
    return BusPoller(name, ModbusDriver(bus), scheduled, rec.sink, rec.event, ClockCheck("assume_synced"))


async def run_for(pollers: list[BusPoller], seconds: float) -> None:
    tasks = [asyncio.create_task(p.run()) for p in pollers]
    await asyncio.sleep(seconds)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for p in pollers:
        await p.driver.close()


def consecutive(slots: list[int]) -> bool:
    return all(b - a == 1000 for a, b in itertools.pairwise(slots))


def test_one_dead_meter_of_eight_on_an_rs485_line_and_one_dead_bus_of_three() -> None:
    rec = Recorder()

    async def main() -> list[BusPoller]:
        line_a = {u: SimMeter(PROFILE, u, seed=u) for u in range(1, 9)}
        line_a[5].set_fault(Fault.NO_ANSWER)
        sim_a = ModbusSimServer(line_a)
        sim_b = ModbusSimServer({1: SimMeter(PROFILE, 1, seed=11), 2: SimMeter(PROFILE, 2, seed=12)})
        pty_a = sim_a.start_pty()
        port_b = await sim_b.start_tcp()
        pollers = [
            poller("rs485", SerialParams(pty_a, 9600), [meter(f"a{u}", u) for u in range(1, 9)], rec),
            poller("tcp", TcpParams("127.0.0.1", port_b), [meter("b1", 1), meter("b2", 2)], rec),
            poller("dead", SerialParams("/dev/ttyUSB-not-plugged-in", 9600), [meter("c1", 1)], rec),
        ]
        await run_for(pollers, 5.6)
        await sim_a.stop()
        await sim_b.stop()
        return pollers

    pollers = asyncio.run(main())
    alive = [f"a{u}" for u in range(1, 9) if u != 5] + ["b1", "b2"]
    lengths = {m: len(rec.slots(m)) for m in alive}
    for m in alive:
        assert consecutive(rec.slots(m)), (m, rec.slots(m))  # no slot lost to the dead meter or bus
        assert lengths[m] >= 4, lengths
    line_lengths = {lengths[f"a{u}"] for u in range(1, 9) if u != 5}
    assert len(line_lengths) == 1, lengths  # the seven live meters of the line kept the same slots
    assert rec.slots("a5") == [] and rec.slots("c1") == []
    line = pollers[0]
    dead = line.meters[4].state
    assert dead.failures.get("MeterTimeout", 0) >= 4 and dead.online is False
    assert all(m.state.missed_slots == 0 for p in pollers[:2] for m in p.meters)
    assert pollers[2].meters[0].state.failures.get("TransportError", 0) >= 4
    assert {d["meter"] for k, d in rec.events if k == "meter_offline"} == {"a5", "c1"}


@pytest.mark.parametrize("fault", [Fault.BAD_CRC, Fault.SHORT_ANSWER, Fault.STRAY_BYTES, Fault.LATE_REPLY])
def test_noise_is_retried_counted_and_never_decoded(fault: Fault) -> None:
    rec = Recorder()
    truth: dict[int, SimMeter] = {}

    async def main() -> BusPoller:
        meters = {u: SimMeter(PROFILE, u, seed=u) for u in (1, 2, 3)}
        truth.update(meters)
        meters[2].set_fault(fault)
        sim = ModbusSimServer(meters)
        pty = sim.start_pty()
        p = poller("rs485", SerialParams(pty, 9600), [meter(f"m{u}", u) for u in (1, 2, 3)], rec)
        await run_for([p], 4.6)
        await sim.stop()
        return p

    p = asyncio.run(main())
    state = p.meters[1].state
    failed = sum(state.failures.values())
    if fault is Fault.STRAY_BYTES:
        # RTU hunting skips garbage before a valid answer: values still decode, nothing is lost.
        assert failed == 0 and len(rec.slots("m2")) >= 4
    else:
        assert failed >= 4, state.failures
        assert rec.slots("m2") == [], "a garbled answer was decoded into a value"
        assert "MeterTimeout" in state.failures or "BadFrame" in state.failures
    for m in ("m1", "m3"):
        assert len(rec.slots(m)) >= 4 and consecutive(rec.slots(m))
    for r in rec.readings:
        assert math.isfinite(r.value)
        if r.quantity == "volume_total":
            # A stray answer decoded as this meter would show another meter's totalizer.
            true_total = truth[int(r.meter[1:])].values()["volume_total"]
            assert abs(r.value - true_total) < 0.01 * true_total


def test_a_reset_totalizer_is_flagged_and_reported() -> None:
    rec = Recorder()

    async def main() -> None:
        sim_meter = SimMeter(PROFILE, 1, seed=1, speed=60)
        sim = ModbusSimServer({1: sim_meter})
        pty = sim.start_pty()
        p = poller("rs485", SerialParams(pty, 9600), [meter("m1", 1)], rec, quality=True)
        task = asyncio.create_task(p.run())

        def totals() -> int:
            return sum(r.quantity == "volume_total" for r in rec.readings)

        try:
            # Two totals before the reset (each is judged against the one before), two after it.
            async with asyncio.timeout(20):
                while totals() < 2:
                    await asyncio.sleep(0.05)
                sim_meter.set_fault(Fault.TOTALIZER_RESET)
                while totals() < 4:
                    await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await p.driver.close()
            await sim.stop()

    asyncio.run(main())
    totals = [r for r in rec.readings if r.quantity == "volume_total"]
    assert any(r.flags & Flag.METER_RESET for r in totals)
    assert not any(r.flags & Flag.WRAPPED for r in totals)
    assert [k for k, _ in rec.events].count("totalizer_reset") >= 1
