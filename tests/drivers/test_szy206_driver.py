"""drivers/szy206: B0H polling against the real simulator, over a pty and over TCP, with its faults."""

from __future__ import annotations

import asyncio
import logging

import pytest
from support.loop import FakeClock, run
from support.szy206 import endpoint, sim_meter, wall_ms
from support.szy206_frames import address

from meterlink.drivers.base import BadFrame, DecodeError, MeterTimeout, Reading, TransportError
from meterlink.drivers.params import SerialParams, TcpParams
from meterlink.drivers.szy206 import Szy206Driver, Szy206Link, Szy206Meter
from meterlink.protocols.szy206 import AFN, Address, Frame, Meter
from meterlink.sim.szy206_meter import Fault, SimSzy206Meter
from meterlink.sim.szy206_meter_server import Szy206SimServer

TIMEOUT = 0.2
TRANSPORTS = ["pty", "tcp"]


def by_quantity(readings: list[Reading]) -> dict[str, float]:
    return {r.quantity: r.value for r in readings}


def assert_matches(readings: list[Reading], values: tuple[Meter, ...]) -> None:
    """Flow within 0.001, volume exact, pair k > 1 suffixed."""
    got = by_quantity(readings)
    assert len(got) == 2 * len(values)
    for k, (flow, volume) in enumerate(values, start=1):
        suffix = "" if k == 1 else f"_{k}"
        assert isinstance(flow, float) and isinstance(volume, int)
        assert got[f"flow_rate{suffix}"] == pytest.approx(flow, abs=0.001)
        assert got[f"volume_total{suffix}"] == volume


def fcbs(sim: SimSzy206Meter, afn: int = AFN.QUERY_REALTIME) -> list[int]:
    return [f.fcb for f in sim.frames_seen if f.afn == afn]


@pytest.mark.parametrize("tp_len", [0, 5, 7])
@pytest.mark.parametrize("kind", TRANSPORTS)
def test_polling_returns_the_simulator_values(kind: str, tp_len: int) -> None:
    """Two pairs, each Tp edition: flow within 0.001, volume exact, ts = arrival, slot = the slot."""
    sim = sim_meter(pairs=2, tp_len=tp_len)

    async def body() -> None:
        server = Szy206SimServer([sim])
        link = Szy206Link("t", await endpoint(server, kind), timeout=TIMEOUT, clock=lambda: 1_000_000)
        driver = Szy206Driver(link)
        try:
            readings = await driver.read(Szy206Meter("m13", address(), pairs=2), 123_000, flags=1)
            assert_matches(readings, sim.values())
            assert {(r.meter, r.ts, r.slot, r.flags) for r in readings} == {("m13", 1_000_000, 123_000, 1)}
            units = {r.quantity: r.unit for r in readings}
            assert units == {
                "flow_rate": "m3/h",
                "volume_total": "m3",
                "flow_rate_2": "m3/h",
                "volume_total_2": "m3",
            }
            assert sim.queries_answered == 1 and fcbs(sim) == [3]
            assert link.counters.answers == 1 and link.counters.bytes_discarded == 0
        finally:
            await driver.close()
            await server.stop()

    run(body)


def test_several_meters_share_one_pty() -> None:
    """Each meter answers only its own address; concurrent reads take turns on the bus lock."""
    sims = [sim_meter(13), sim_meter(14, pairs=3), SimSzy206Meter(Address(division="110105", station=256))]
    meters = [
        Szy206Meter("a", address(13)),
        Szy206Meter("b", address(14), pairs=3),
        Szy206Meter("c", Address(division="110105", station=256)),
    ]

    async def body() -> None:
        server = Szy206SimServer(sims)
        params = SerialParams(device=server.start_pty())
        driver = Szy206Driver(Szy206Link("bus", params, timeout=TIMEOUT, retries=0, clock=wall_ms))
        try:
            results = await asyncio.gather(*(driver.read(m, 0) for m in meters))
            for readings, meter, sim in zip(results, meters, sims, strict=True):
                assert {r.meter for r in readings} == {meter.id}
                assert_matches(readings, sim.last_values)
                assert sim.queries_answered == 1
            with pytest.raises(MeterTimeout):
                await driver.read(Szy206Meter("nobody", address(15)), 0)
            assert server.stats.other_addresses == 1
        finally:
            await driver.close()
            await server.stop()

    run(body)


@pytest.mark.parametrize("kind", TRANSPORTS)
@pytest.mark.parametrize("retries", [0, 2, 3])
def test_no_answer_times_out_after_every_try_with_fcb_counting_down(kind: str, retries: int) -> None:
    """no_answer: MeterTimeout after 1 + retries tries, each sent with the next lower FCB."""
    sim = sim_meter()
    sim.set_fault(Fault.NO_ANSWER)

    async def body() -> None:
        server = Szy206SimServer([sim])
        link = Szy206Link("t", await endpoint(server, kind), timeout=TIMEOUT, retries=retries, clock=wall_ms)
        try:
            with pytest.raises(MeterTimeout, match=rf"530381:13 .* x {1 + retries} tries"):
                await Szy206Driver(link).read(Szy206Meter("m", address()), 0)
            assert fcbs(sim) == [3, 2, 1, 0][: 1 + retries]
            assert sim.queries_ignored == 1 + retries
            c = link.counters
            assert (c.requests, c.retries, c.timeouts, c.bad_answers) == (1, retries, 1, 0)
        finally:
            await link.close()
            await server.stop()

    run(body)


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_bad_crc_is_a_bad_frame(kind: str) -> None:
    """Every answer with a bad CS: bytes arrived, nothing valid, so BadFrame, not MeterTimeout."""
    sim = sim_meter()
    sim.set_fault(Fault.BAD_CRC)

    async def body() -> None:
        server = Szy206SimServer([sim])
        link = Szy206Link("t", await endpoint(server, kind), timeout=TIMEOUT, retries=1, clock=wall_ms)
        try:
            with pytest.raises(BadFrame, match="no valid answer in 2 tries"):
                await Szy206Driver(link).read(Szy206Meter("m", address()), 0)
            assert sim.queries_answered == 2 and fcbs(sim) == [3, 2]
            assert link.counters.bad_frames >= 2 and link.counters.bad_answers == 1
        finally:
            await link.close()
            await server.stop()

    run(body)


class CorruptFirstAnswer(SimSzy206Meter):
    """A meter whose first answer is corrupted on the wire (bad_crc), the rest clean."""

    def wire(self, frame: Frame) -> list[tuple[float, bytes]]:
        pieces = super().wire(frame)
        self.clear_faults()
        return pieces


def test_a_retry_recovers_from_one_bad_answer() -> None:
    """The first answer has a bad CS; the retry (FCB 2) is answered and decoded."""
    sim = CorruptFirstAnswer(address(), clock=FakeClock())
    sim.set_fault(Fault.BAD_CRC)

    async def body() -> None:
        server = Szy206SimServer([sim])
        link = Szy206Link("t", SerialParams(device=server.start_pty()), timeout=TIMEOUT, clock=wall_ms)
        try:
            readings = await Szy206Driver(link).read(Szy206Meter("m", address()), 0)
            assert_matches(readings, sim.values())
            assert fcbs(sim) == [3, 2]
            assert link.counters.retries == 1 and link.counters.bad_frames >= 1
        finally:
            await link.close()
            await server.stop()

    run(body)


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_split_frames_and_garbage_still_decode(kind: str) -> None:
    """Answers in 2-4 pieces behind line noise (half of it a fake 68 L 68 header) decode every time."""
    sim = sim_meter(pairs=2)
    sim.set_fault(Fault.SPLIT_FRAMES)
    sim.set_fault(Fault.GARBAGE)

    async def body() -> None:
        server = Szy206SimServer([sim])
        link = Szy206Link("t", await endpoint(server, kind), timeout=0.5, retries=0, clock=wall_ms)
        driver = Szy206Driver(link)
        try:
            for _ in range(4):
                assert_matches(await driver.read(Szy206Meter("m", address(), pairs=2), 0), sim.last_values)
            assert sim.faults_applied[Fault.SPLIT_FRAMES] == 4 and sim.faults_applied[Fault.GARBAGE] == 4
            assert link.counters.bytes_discarded > 0
            assert link.counters.resyncs >= 1  # a fake header held the answer back until given up
            assert link.counters.answers == 4 and link.counters.retries == 0
        finally:
            await driver.close()
            await server.stop()

    run(body)


def test_value_faults_seen_from_the_driver() -> None:
    """negative, stuck_zero and totalizer_reset read as a meter showing them would."""
    clock = FakeClock()
    sim = SimSzy206Meter(address(), clock=clock)
    meter = Szy206Meter("m", address())

    async def body() -> None:
        server = Szy206SimServer([sim])
        driver = Szy206Driver(Szy206Link("t", SerialParams(device=server.start_pty()), timeout=TIMEOUT, clock=wall_ms))

        async def read() -> tuple[float, float]:
            values = by_quantity(await driver.read(meter, 0))
            return values["flow_rate"], values["volume_total"]

        try:
            flow, volume = await read()
            assert flow > 0
            clock.t += 3600
            flow_later, volume_later = await read()
            assert volume_later - volume == pytest.approx((flow + flow_later) / 2, rel=0.5)

            sim.set_fault(Fault.NEGATIVE)
            flow_neg, volume_neg = await read()
            assert flow_neg == pytest.approx(-flow_later, abs=0.001)
            clock.t += 3600
            assert (await read())[1] == volume_neg == volume_later  # reverse flow does not count forward
            sim.clear_faults()

            sim.set_fault(Fault.STUCK_ZERO)
            stuck = await read()
            clock.t += 3600
            assert stuck[0] == 0.0 and await read() == stuck
            sim.clear_faults()

            sim.set_fault(Fault.TOTALIZER_RESET)
            assert (await read())[1] == 0.0
            clock.t += 3600
            volume_after = (await read())[1]
            assert 0 < volume_after < volume  # counts up again from zero
        finally:
            await driver.close()
            await server.stop()

    run(body)


def test_invalid_and_absent_values_give_no_reading(caplog: pytest.LogCaptureFixture) -> None:
    """FFH (invalid) values give no reading and a log line; AAH (absent) flow gives only volume."""
    sim = sim_meter(pairs=2)

    async def body() -> None:
        server = Szy206SimServer([sim])
        driver = Szy206Driver(Szy206Link("t", SerialParams(device=server.start_pty()), timeout=TIMEOUT, clock=wall_ms))
        meter = Szy206Meter("m", address(), pairs=2)
        try:
            sim.set_fault(Fault.INVALID)
            with caplog.at_level(logging.WARNING, logger="meterlink.szy206"):
                assert await driver.read(meter, 0) == []
            assert "event=szy206_invalid_value meter=m quantity=volume_total_2" in caplog.text
            assert "event=szy206_alarm meter=m alarm=0x0020 bits=FLOW_METER_FAULT" in caplog.text
            sim.clear_faults()
            sim.set_fault(Fault.NO_FLOW)
            readings = await driver.read(meter, 0)
            assert sorted(by_quantity(readings)) == ["volume_total", "volume_total_2"]
        finally:
            await driver.close()
            await server.stop()

    run(body)


def test_fewer_pairs_than_configured_is_a_decode_error() -> None:
    """A meter configured with 3 pairs that sends 1: DecodeError naming the mismatch."""
    sim = sim_meter()

    async def body() -> None:
        server = Szy206SimServer([sim])
        driver = Szy206Driver(Szy206Link("t", SerialParams(device=server.start_pty()), timeout=TIMEOUT, clock=wall_ms))
        try:
            with pytest.raises(DecodeError, match="1 flow/volume pairs, configured 3"):
                await driver.read(Szy206Meter("m", address(), pairs=3), 0)
        finally:
            await driver.close()
            await server.stop()

    run(body)


def test_missing_port_is_a_transport_error_retried_at_most_once_per_timeout() -> None:
    """A port that cannot be opened: TransportError; the next request inside the timeout does not retry."""

    async def body() -> None:
        link = Szy206Link("t", SerialParams(device="/dev/meterlink-no-such-port"), timeout=TIMEOUT, clock=wall_ms)
        driver = Szy206Driver(link)
        try:
            for _ in range(2):
                with pytest.raises(TransportError):
                    await driver.read(Szy206Meter("m", address()), 0)
            assert link.counters.connect_failures == 1
        finally:
            await driver.close()

    run(body)


def test_tcp_link_reconnects_after_the_meter_restarts() -> None:
    """The meter goes away: TransportError; once it is back, the next read reconnects."""
    sim = sim_meter()

    async def body() -> None:
        server = Szy206SimServer([sim])
        port = await server.start_tcp()
        link = Szy206Link("t", TcpParams("127.0.0.1", port), timeout=TIMEOUT, clock=wall_ms)
        driver = Szy206Driver(link)
        meter = Szy206Meter("m", address())
        try:
            assert await driver.read(meter, 0)
            await server.stop()
            for _ in range(100):  # the end of the connection arrives on a later turn of the loop
                if not link.connected:
                    break
                await asyncio.sleep(0.01)
            with pytest.raises(TransportError):  # refused
                await driver.read(meter, 0)
            server = Szy206SimServer([sim])
            await server.start_tcp(port=port)
            await asyncio.sleep(TIMEOUT * 1.5)  # past the pause after a failed connect
            assert_matches(await driver.read(meter, 0), sim.values())
            assert link.counters.disconnects == 1 and link.counters.connects == 2
        finally:
            await driver.close()
            await server.stop()

    run(body)


def test_pty_link_reopens_after_the_line_goes_away() -> None:
    """The pty's other end closes mid-life: the link notices (EIO), then fails to reopen cleanly."""
    sim = sim_meter()

    async def body() -> None:
        server = Szy206SimServer([sim])
        link = Szy206Link("t", SerialParams(device=server.start_pty()), timeout=TIMEOUT, clock=wall_ms)
        driver = Szy206Driver(link)
        try:
            assert await driver.read(Szy206Meter("m", address()), 0)
            await server.stop()
            for _ in range(100):  # the loop reports EIO on a later turn
                if not link.connected:
                    break
                await asyncio.sleep(0.01)
            assert not link.connected and link.counters.disconnects == 1
            with pytest.raises(TransportError):
                await driver.read(Szy206Meter("m", address()), 0)
        finally:
            await driver.close()

    run(body)


def test_a_meter_address_belongs_to_one_meter_id() -> None:
    """Two meter ids with one address on a link is a configuration error."""
    link = Szy206Link("t", SerialParams(device="/dev/null"), meters=[Szy206Meter("a", address())], clock=wall_ms)
    link.add_meter(Szy206Meter("a", address(), pairs=2))  # the same meter, reconfigured
    with pytest.raises(ValueError, match="already meter a"):
        link.add_meter(Szy206Meter("b", address()))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pairs": 0}, "pairs must be 1..23"),
        ({"pairs": 24}, "pairs must be 1..23"),
        ({"tp_len": 6}, "tp_len must be"),
        ({"flow_unit": "l/s"}, "flow_unit must be"),
    ],
)
def test_meter_config_is_checked(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Szy206Meter("m", address(), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"retries": 4}, "retries must be 0..3"), ({"timeout": 0}, "timeout"), ({"confirm_work_mode": 4}, "0..3")],
)
def test_link_config_is_checked(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Szy206Link("t", SerialParams(device="/dev/null"), clock=wall_ms, **kwargs)  # type: ignore[arg-type]
