"""Polling on schedule: aligned slots, one bus never delays another, a dead meter costs its bus little."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from typing import Any

from meterlink.agent.clock import ClockCheck, current_slot, next_slot
from meterlink.agent.scheduler import BusPoller, ScheduledMeter
from meterlink.drivers.base import Flag, Reading
from meterlink.drivers.modbus import profiles
from meterlink.drivers.modbus.bus import ModbusBus, TcpParams
from meterlink.drivers.modbus.driver import ModbusDriver, ModbusMeter
from meterlink.sim.meter_model import Fault, SimMeter
from meterlink.sim.modbus_server import ModbusSimServer


def test_slots_align_to_the_wall_clock() -> None:
    assert next_slot(1_764_374_412_345, 60_000) == 1_764_374_460_000
    assert next_slot(1_764_374_460_000, 60_000) == 1_764_374_520_000  # strictly after
    assert current_slot(1_764_374_412_345, 900_000) == 1_764_374_400_000  # a quarter-hour boundary


class Unsynced(ClockCheck):
    def synced(self) -> bool:
        return False


def meter(mid: str, unit: int, profile: str = "xintai_water_meter") -> ModbusMeter:
    return ModbusMeter(mid, unit, profiles.load(profile).value_specs())


def test_a_dead_bus_and_a_dead_meter_do_not_delay_the_others() -> None:
    """Bus A: a live meter and a dead one (no answer). Bus B: nothing listening at all. Bus C: live.
    Live meters keep every 1 s slot; readings carry their slot and are flagged when the clock is unsynced."""

    async def main() -> dict[str, Any]:
        dead = SimMeter("xintai_water_meter", 2, seed=1)
        dead.set_fault(Fault.NO_ANSWER)
        sim_a = ModbusSimServer({1: SimMeter("xintai_water_meter", 1, seed=1), 2: dead})
        sim_c = ModbusSimServer({1: SimMeter("tuf2000", 1, seed=2)})
        port_a, port_c = await sim_a.start_tcp(), await sim_c.start_tcp()
        captured: list[Reading] = []
        events: list[tuple[str, dict[str, Any]]] = []

        async def sink(readings: Sequence[Reading]) -> None:
            captured.extend(readings)

        async def on_event(kind: str, detail: dict[str, Any]) -> None:
            events.append((kind, detail))

        def poller(name: str, port: int, meters: list[ModbusMeter], check: ClockCheck) -> BusPoller:
            bus = ModbusBus(name, TcpParams("127.0.0.1", port), timeout=0.3, retries=1)
            return BusPoller(name, ModbusDriver(bus), [ScheduledMeter(m, 1000) for m in meters], sink, on_event, check)

        a = poller("A", port_a, [meter("a-live", 1), meter("a-dead", 2)], ClockCheck("assume_synced"))
        b = poller("B", 1, [meter("b-nothing", 1)], ClockCheck("assume_synced"))  # port 1: refused
        c = poller("C", port_c, [meter("c-live", 1, "tuf2000")], Unsynced())
        tasks = [asyncio.create_task(p.run()) for p in (a, b, c)]
        await asyncio.sleep(4.6)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for p in (a, b, c):
            await p.driver.close()
        await sim_a.stop()
        await sim_c.stop()
        return {"captured": captured, "events": events, "pollers": (a, b, c)}

    started = time.time()
    out = asyncio.run(main())
    captured: list[Reading] = out["captured"]
    slots = {m: sorted({r.slot for r in captured if r.meter == m}) for m in ("a-live", "c-live")}
    for m, got in slots.items():
        assert len(got) >= 4, (m, got)  # about 4.6 s of 1 s slots
        assert all(s % 1000 == 0 for s in got)
        assert all(b - a == 1000 for a, b in itertools.pairwise(got)), (m, got)  # no slot skipped
        assert got[0] >= started * 1000 - 1000
    assert not any(r.meter in ("a-dead", "b-nothing") for r in captured)
    assert all(r.flags & Flag.CLOCK_UNSYNCED for r in captured if r.meter == "c-live")
    assert not any(r.flags for r in captured if r.meter == "a-live")
    a, b, c = out["pollers"]
    dead_state = a.meters[1].state
    assert dead_state.online is False and dead_state.failures.get("MeterTimeout", 0) >= 3
    assert b.meters[0].state.failures.get("TransportError", 0) >= 3
    kinds = [(k, d["meter"]) for k, d in out["events"]]
    assert ("meter_offline", "a-dead") in kinds and ("meter_offline", "b-nothing") in kinds
    assert a.meters[0].state.missed_slots == 0 and c.meters[0].state.missed_slots == 0


def test_a_poller_cancelled_mid_request_stops() -> None:
    """pymodbus turns a cancellation into its own exception; the poller must still stop."""

    async def main() -> None:
        dead = SimMeter("xintai_water_meter", 1, seed=1)
        dead.set_fault(Fault.NO_ANSWER)
        sim = ModbusSimServer({1: dead})
        port = await sim.start_tcp()

        async def sink(readings: Sequence[Reading]) -> None:
            pass

        async def on_event(kind: str, detail: dict[str, Any]) -> None:
            pass

        bus = ModbusBus("A", TcpParams("127.0.0.1", port), timeout=2.0, retries=0)
        poller = BusPoller("A", ModbusDriver(bus), [ScheduledMeter(meter("m", 1), 1000)], sink, on_event,
                           ClockCheck("assume_synced"))
        poller.meters[0].due = 0  # due now
        task = asyncio.create_task(poller.cycle())
        await asyncio.sleep(0.5)  # inside the request, waiting for an answer that never comes
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=3)
        assert done and task.cancelled()
        await bus.close()
        await sim.stop()

    asyncio.run(main())
