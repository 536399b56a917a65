"""End to end: the agent's real ModbusDriver against the simulator, over a pty (RTU) and over TCP.

Every built-in profile decodes to the model's values, and every fault switch is seen from the
client side as the agent will see it. Retries are 0; a read that should succeed gets a generous
timeout (it costs nothing when the answer comes), a fault that ends in silence a short one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from support.loop import FakeClock, run

from meterlink.drivers.base import BadFrame, ExceptionResponse, MeterTimeout, Reading
from meterlink.drivers.modbus import profiles
from meterlink.drivers.modbus.bus import ModbusBus
from meterlink.drivers.modbus.driver import ModbusDriver, ModbusMeter
from meterlink.drivers.params import SerialParams, TcpParams
from meterlink.protocols.modbus.plan import ReadRequest
from meterlink.sim.meter_model import Fault, SimMeter
from meterlink.sim.modbus_server import ModbusSimServer

MORNING = 1_717_171_200.0 + 8 * 3600  # 2024-06-01 08:00 at UTC+8: flow near its peak
TIMEOUT = 1.0  # reads expected to succeed
FAULT_TIMEOUT = 0.25  # reads expected to end in silence or an incomplete frame


@contextlib.asynccontextmanager
async def serving(
    meters: list[SimMeter], transport: str, timeout: float = TIMEOUT
) -> AsyncIterator[tuple[ModbusSimServer, ModbusDriver]]:
    """A server with ``meters`` and a driver connected to it over ``transport`` ("rtu" or "tcp")."""
    server = ModbusSimServer(meters)
    try:
        if transport == "rtu":
            params: SerialParams | TcpParams = SerialParams(device=server.start_pty())
        else:
            params = TcpParams("127.0.0.1", await server.start_tcp())
        driver = ModbusDriver(ModbusBus(f"sim-{transport}", params, timeout=timeout, retries=0))
        try:
            yield server, driver
        finally:
            await driver.close()
    finally:
        await server.stop()


def as_meter(sim: SimMeter) -> ModbusMeter:
    """The agent's view of a simulated meter."""
    return ModbusMeter(f"m{sim.unit}", sim.unit, sim.profile.value_specs())


def by_quantity(readings: list[Reading]) -> dict[str, float]:
    """Readings as quantity -> value."""
    return {r.quantity: r.value for r in readings}


def assert_matches(readings: list[Reading], sim: SimMeter) -> None:
    """Decoded values equal the model's within float32 precision."""
    expected = sim.values()
    got = by_quantity(readings)
    assert set(got) == set(expected)
    for quantity, value in got.items():
        assert value == pytest.approx(expected[quantity], rel=2e-6, abs=1e-6), quantity


TRANSPORTS = ["rtu", "tcp"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("name", profiles.names())
def test_every_profile_decodes_to_the_model(name: str, transport: str) -> None:
    """Each built-in profile read by the real driver gives the model's values."""
    sim = SimMeter(name, 1, clock=FakeClock(MORNING), seed=11)

    async def body() -> None:
        async with serving([sim], transport) as (_, driver):
            readings = await driver.read(as_meter(sim), slot_ms=0)
            assert_matches(readings, sim)
            assert sim.requests == len(as_meter(sim).requests)

    run(body)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_several_meters_on_one_bus(transport: str) -> None:
    """One pty (an RS-485 bus) or one TCP gateway serves several units; unit 13 (0x0D) included."""
    clock = FakeClock(MORNING)
    sims = [
        SimMeter("tuf2000", 13, clock=clock),
        SimMeter("emf_generic", 2, clock=clock),
        SimMeter("qdy30a_level", 3, clock=clock),
    ]

    async def body() -> None:
        async with serving(sims, transport) as (_, driver):
            for _ in range(2):
                for sim in sims:
                    assert_matches(await driver.read(as_meter(sim), slot_ms=0), sim)
                clock.t += 300

    run(body)


def test_unknown_unit_is_silent_on_rtu_and_gateway_exception_on_tcp() -> None:
    """RTU: another unit id gets no answer (shared bus). TCP: exception 0B, gateway target failed."""
    sim = SimMeter("tuf2000", 1, clock=FakeClock(MORNING))
    other = ModbusMeter("ghost", 9, sim.profile.value_specs())

    async def body() -> None:
        async with serving([sim], "rtu", timeout=FAULT_TIMEOUT) as (server, driver):
            with pytest.raises(MeterTimeout):
                await driver.read(other, slot_ms=0)
            assert server.stats.rtu_other_units == 1
        async with serving([sim], "tcp") as (server, driver):
            with pytest.raises(ExceptionResponse) as info:
                await driver.read(other, slot_ms=0)
            assert info.value.code == 0x0B
            assert server.stats.tcp_unknown_unit == 1

    run(body)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_two_clients_at_once(transport: str) -> None:
    """TCP serves concurrent clients; on RTU one bus serialises concurrent reads."""
    clock = FakeClock(MORNING)
    sims = [SimMeter("tuf2000", 1, clock=clock), SimMeter("mfe600h", 2, clock=clock)]

    async def body() -> None:
        async with serving(sims, transport) as (_, driver):
            second = driver
            if isinstance(driver.bus.params, TcpParams):
                second = ModbusDriver(ModbusBus("second", driver.bus.params, timeout=TIMEOUT, retries=0))
            try:
                results = await asyncio.gather(*(d.read(as_meter(s), 0) for d in (driver, second) for s in sims))
            finally:
                if second is not driver:
                    await second.close()
            for readings, sim in zip(results, sims * 2, strict=True):
                assert_matches(readings, sim)

    run(body)


def test_agent_closes_and_reopens_the_pty() -> None:
    """The agent may close its serial port and open it again; the simulator keeps serving."""
    sim = SimMeter("xintai_water_meter", 4, clock=FakeClock(MORNING))

    async def body() -> None:
        async with serving([sim], "rtu") as (server, driver):
            assert_matches(await driver.read(as_meter(sim), 0), sim)
            await driver.close()
            await asyncio.sleep(0.05)
            assert_matches(await driver.read(as_meter(sim), 0), sim)
            assert server.stats.write_failures == 0

    run(body)


# --- faults, seen from the client --------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.NO_ANSWER, MeterTimeout),  # silence
        (Fault.BAD_CRC, BadFrame),  # RTU: CRC fails; TCP: transaction id garbled, answer dropped
        (Fault.SHORT_ANSWER, BadFrame),  # bytes came, the frame never completed
        (Fault.EXCEPTION, ExceptionResponse),
    ],
)
def test_fault_raises(fault: Fault, error: type[Exception], transport: str) -> None:
    """Faults that make a read fail raise the agent's own error; the meter recovers when cleared."""
    sim = SimMeter("tuf2000", 1, clock=FakeClock(MORNING))
    sim.set_fault(fault)

    async def body() -> None:
        async with serving([sim], transport, timeout=FAULT_TIMEOUT) as (_, driver):
            with pytest.raises(error) as info:
                await driver.read(as_meter(sim), 0)
            if isinstance(info.value, ExceptionResponse):
                assert info.value.code == 4
            sim.clear_faults()
            assert_matches(await driver.read(as_meter(sim), 0), sim)
            assert sim.faults_applied[fault] == 1

    run(body)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_meter_that_was_silent_for_many_polls_comes_back(transport: str) -> None:
    """After enough timeouts pymodbus drops the connection; the bus reopens it at the next read."""
    sim = SimMeter("emf_generic", 1, clock=FakeClock(MORNING))
    sim.set_fault(Fault.NO_ANSWER)

    async def body() -> None:
        async with serving([sim], transport, timeout=0.15) as (_, driver):
            for _ in range(6):
                with pytest.raises(MeterTimeout):
                    await driver.read(as_meter(sim), 0)
            sim.clear_faults()
            assert_matches(await driver.read(as_meter(sim), 0), sim)

    run(body)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_stray_bytes(transport: str) -> None:
    """RTU: noise before the answer is hunted through by pymodbus and values decode correctly.
    TCP: the fault does not apply (TCP delivers bytes intact) and is not counted."""
    clock = FakeClock(MORNING)
    sim = SimMeter("tuf2000", 7, clock=clock, seed=5)
    sim.set_fault(Fault.STRAY_BYTES)

    async def body() -> None:
        async with serving([sim], transport) as (_, driver):
            for _ in range(5):
                assert_matches(await driver.read(as_meter(sim), 0), sim)
                clock.t += 60
        assert sim.faults_applied[Fault.STRAY_BYTES] == (5 * 5 if transport == "rtu" else 0)

    run(body)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_negative_values(transport: str) -> None:
    """negative: flow, velocity and totals arrive negative (uint32 totals via their float part)."""
    sims = [SimMeter("tuf2000", 1, clock=FakeClock(MORNING)), SimMeter("emf_generic", 2, clock=FakeClock(MORNING))]
    for sim in sims:
        sim.set_fault(Fault.NEGATIVE)

    async def body() -> None:
        async with serving(sims, transport) as (_, driver):
            for sim in sims:
                readings = await driver.read(as_meter(sim), 0)
                assert_matches(readings, sim)
                values = by_quantity(readings)
                assert values["flow_rate"] < 0 and values["volume_total"] < 0

    run(body)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_stuck_zero_and_totalizer_reset(transport: str) -> None:
    """stuck_zero: flow 0 and a frozen total across polls. totalizer_reset: the total restarts at 0."""
    clock = FakeClock(MORNING)
    sim = SimMeter("tuf2000", 1, clock=clock)

    async def body() -> None:
        async with serving([sim], transport) as (_, driver):
            meter = as_meter(sim)
            sim.set_fault(Fault.STUCK_ZERO)
            first = by_quantity(await driver.read(meter, 0))
            clock.t += 3600
            second = by_quantity(await driver.read(meter, 0))
            assert first["flow_rate"] == second["flow_rate"] == 0.0
            assert first["volume_total"] == second["volume_total"] > 1000
            sim.clear_faults()
            sim.set_fault(Fault.TOTALIZER_RESET)
            reset = by_quantity(await driver.read(meter, 0))
            assert reset["volume_total"] == 0.0 and reset["flow_rate"] > 0
            clock.t += 600
            later = by_quantity(await driver.read(meter, 0))
            assert 0 < later["volume_total"] < 50
            assert sim.faults_applied[Fault.TOTALIZER_RESET] == 1

    run(body)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_late_reply_is_never_decoded_as_the_current_request(transport: str) -> None:
    """late_reply: an earlier reply of another count is refused as BadFrame, never decoded.

    On TCP the earlier reply comes under the current transaction id, as a TCP/RTU gateway forwards a
    late serial reply; only the register count tells it apart.
    """
    clock = FakeClock(MORNING)
    sim = SimMeter("tuf2000", 1, clock=clock)
    reads = [ReadRequest(3, 0, 2), ReadRequest(3, 71, 1), ReadRequest(3, 8, 4), ReadRequest(3, 24, 4)]

    async def body() -> None:
        async with serving([sim], transport) as (_, driver):
            meter = as_meter(sim)
            assert_matches(await driver.read(meter, 0), sim)  # fills the meter's reply history
            sim.set_fault(Fault.LATE_REPLY)
            with pytest.raises(BadFrame):
                await driver.read(meter, 0)
            refused = 0
            for request in reads * 3:
                clock.t += 1
                try:
                    registers = await driver.bus.read(1, request)
                except BadFrame:
                    refused += 1
                    continue
                # Anything accepted must be what those registers hold (never another request's data).
                assert registers == sim.registers(3, request.address, request.count)
            assert refused == len(reads) * 3
            assert sim.faults_applied[Fault.LATE_REPLY] == 1 + len(reads) * 3

    run(body)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_slow_answer_is_never_taken_for_the_next_request(transport: str) -> None:
    """slow_answer: the reply comes after the poller gave up on it. RTU answers carry no transaction
    id, and the two requests here have one function and one count, so only timing can tell the late
    answer from the next one: it must land while the bus keeps quiet after the failure, and be dropped."""
    clock = FakeClock(MORNING)
    sim = SimMeter("tuf2000", 1, clock=clock)
    sim.slow_answer_s = FAULT_TIMEOUT * 1.5  # after the timeout, inside the quiet time that follows it
    reads = [ReadRequest(3, 8, 4), ReadRequest(3, 24, 4)]
    assert sim.registers(3, 8, 4) != sim.registers(3, 24, 4)

    async def body() -> None:
        async with serving([sim], transport, timeout=FAULT_TIMEOUT) as (_, driver):
            sim.set_fault(Fault.SLOW_ANSWER)
            failed = 0
            for request in reads * 3:
                try:
                    registers = await driver.bus.read(1, request)
                except (MeterTimeout, BadFrame):
                    failed += 1
                    continue
                assert registers == sim.registers(3, request.address, request.count)
            assert failed == len(reads) * 3
            sim.set_fault(Fault.SLOW_ANSWER, False)
            await asyncio.sleep(sim.slow_answer_s)  # the last late answer arrives, and is dropped
            for request in reads:
                assert await driver.bus.read(1, request) == sim.registers(3, request.address, request.count)

    run(body)
