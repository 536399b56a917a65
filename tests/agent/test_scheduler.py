"""Polling on schedule: aligned slots, one bus never delays another, a dead meter costs its bus little."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from meterlink.agent import clock
from meterlink.agent.clock import ClockCheck, current_slot, next_slot
from meterlink.agent.scheduler import BusPoller, ScheduledMeter
from meterlink.drivers.base import Flag, Reading
from meterlink.drivers.modbus import profiles
from meterlink.drivers.modbus.bus import ModbusBus
from meterlink.drivers.modbus.driver import ModbusDriver, ModbusMeter
from meterlink.drivers.params import SerialParams, TcpParams
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


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
def test_a_poller_cancelled_mid_request_stops(transport: str) -> None:
    """The poller stops when cancelled mid-request, on either bus (a serial bus goes through
    pymodbus, which turns a cancellation into its own exception)."""

    async def main() -> None:
        dead = SimMeter("xintai_water_meter", 1, seed=1)
        dead.set_fault(Fault.NO_ANSWER)
        sim = ModbusSimServer({1: dead})
        params = (
            SerialParams(device=sim.start_pty())
            if transport == "rtu"
            else TcpParams("127.0.0.1", await sim.start_tcp())
        )

        async def sink(readings: Sequence[Reading]) -> None:
            pass

        async def on_event(kind: str, detail: dict[str, Any]) -> None:
            pass

        bus = ModbusBus("A", params, timeout=2.0, retries=0)
        poller = BusPoller(
            "A", ModbusDriver(bus), [ScheduledMeter(meter("m", 1), 1000)], sink, on_event, ClockCheck("assume_synced")
        )
        poller.meters[0].due = 0  # due now
        task = asyncio.create_task(poller.cycle())
        async with asyncio.timeout(5):  # until the meter has the request: the poller now waits for an answer
            while dead.requests == 0:
                await asyncio.sleep(0.01)
        assert not task.done()
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=3)
        assert done and task.cancelled()
        await bus.close()
        await sim.stop()

    asyncio.run(main())


HOUR_MS = 3_600_000


class SlotDriver:
    """Answers every read at once with one reading labelled with its slot; ``during`` runs inside a read."""

    def __init__(self, during: Callable[[int], None] = lambda n: None) -> None:
        self.reads = 0
        self.during = during

    async def read(self, meter: Any, slot_ms: int, flags: int = 0) -> list[Reading]:
        self.reads += 1
        self.during(self.reads)
        return [Reading(meter.id, "flow", 1.0, "m3/h", clock.now_ms(), slot_ms, flags)]

    async def close(self) -> None:
        pass


@pytest.fixture
def offset() -> Iterator[None]:
    yield
    clock.set_offset(0)


def run_poller(
    driver: SlotDriver, seconds: float, jump_at: float | None = None, jump_ms: int = 0, polls_after: int = 0
) -> tuple[BusPoller, list[Reading]]:
    """Poll one meter every 500 ms for ``seconds``; shift the agent clock by ``jump_ms`` at ``jump_at`` s.

    ``polls_after``: also wait (up to 20 s more, for a loaded machine) until that many readings
    came after the jump."""

    async def main() -> tuple[BusPoller, list[Reading]]:
        captured: list[Reading] = []

        async def sink(readings: Sequence[Reading]) -> None:
            captured.extend(readings)

        async def on_event(kind: str, detail: dict[str, Any]) -> None:
            pass

        poller = BusPoller(
            "A", driver, [ScheduledMeter(meter("m", 1), 500)], sink, on_event, ClockCheck("assume_synced")
        )
        task = asyncio.create_task(poller.run())
        if jump_at is not None:
            await asyncio.sleep(jump_at)
            clock.set_offset(jump_ms)
            seconds_left = seconds - jump_at
        else:
            seconds_left = seconds
        at_jump = len(captured)
        await asyncio.sleep(seconds_left)
        for _ in range(200):
            if len(captured) - at_jump >= polls_after:
                break
            await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return poller, captured

    return asyncio.run(main())


def jump_lines(caplog: pytest.LogCaptureFixture, event: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"event={event} ")]


@pytest.mark.parametrize("jump_ms", [-HOUR_MS, HOUR_MS])
def test_a_clock_jump_during_the_wait_realigns_the_slots(
    jump_ms: int, offset: None, caplog: pytest.LogCaptureFixture
) -> None:
    """A trusted station shifts the agent clock by an hour while the poller sleeps: polling goes on in
    slots of the new clock, within an interval, and the jump is logged once, not as missed slots."""
    caplog.set_level(logging.INFO, logger="meterlink.poll")
    poller, captured = run_poller(SlotDriver(), 2.5, jump_at=1.1, jump_ms=jump_ms, polls_after=3)
    new = [r for r in captured if abs(r.ts - clock.now_ms()) < HOUR_MS / 2]  # taken on the new clock
    assert len(new) >= 2, captured
    # From the first poll after the jump, in slots of the new clock: no catching up on the old ones.
    assert all(abs(r.slot - r.ts) < 500 for r in new), new
    after = [r.slot for r in new]
    assert all(s % 500 == 0 for s in after) and all(b - a == 500 for a, b in itertools.pairwise(after))
    assert poller.meters[0].state.missed_slots == 0
    assert not jump_lines(caplog, "slots_missed")
    [line] = jump_lines(caplog, "clock_jump")
    assert "bus=A" in line and abs(int(line.split("by_ms=")[1].split()[0]) - jump_ms) < 200, line


def test_a_clock_jump_during_a_poll_is_not_taken_for_an_overrun(offset: None, caplog: pytest.LogCaptureFixture) -> None:
    """The offset moves forward an hour while a meter answers (the SZY206 uplink sets it at any time)."""
    caplog.set_level(logging.INFO, logger="meterlink.poll")
    driver = SlotDriver(during=lambda n: clock.set_offset(HOUR_MS) if n == 2 else None)
    poller, captured = run_poller(driver, 2.0)
    assert poller.meters[0].state.missed_slots == 0
    assert not jump_lines(caplog, "slots_missed")
    assert len(jump_lines(caplog, "clock_jump")) == 1
    later = [r.slot for r in captured[2:]]
    assert later and all(s > captured[1].slot + HOUR_MS - 1000 for s in later), captured
