"""drivers/szy206 link: self-reports from the real simulator handed over and confirmed, pty and TCP."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from support.loop import run
from support.szy206 import sim_meter
from support.szy206_frames import address

from meterlink.drivers.base import Reading
from meterlink.drivers.params import SerialParams, TcpParams
from meterlink.drivers.szy206 import Szy206Driver, Szy206Link, Szy206Meter
from meterlink.protocols.szy206 import AFN, Meter
from meterlink.protocols.szy206.times import time_label_at
from meterlink.sim.szy206_meter import Fault
from meterlink.sim.szy206_meter_server import Szy206SimServer

START = 1_717_200_000  # 2024-06-01 08:00:00 at the site (UTC+8)
START_MS = START * 1000
GATEWAY_MS = START_MS + 1_500  # the gateway's clock, 1.5 s after the meter's label
CONFIRM_TIMEOUT = 0.15
TRANSPORTS = ["pty", "tcp"]


class Collector:
    """An on_report callback that keeps what it gets (and takes it at once)."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, list[Reading]]] = []

    async def __call__(self, meter_id: str, readings: list[Reading]) -> None:
        self.reports.append((meter_id, readings))


async def open_link(
    server: Szy206SimServer,
    kind: str,
    meters: list[Szy206Meter],
    on_report: Callable[[str, list[Reading]], Awaitable[None]] | None,
    confirm_work_mode: int | None = 0,
) -> Szy206Link:
    params: SerialParams | TcpParams
    if kind == "pty":
        params = SerialParams(device=server.start_pty())
    else:
        params = TcpParams("127.0.0.1", await server.start_tcp())
    link = Szy206Link(
        "t",
        params,
        timeout=0.2,
        meters=meters,
        on_report=on_report,
        clock=lambda: GATEWAY_MS,
        confirm_work_mode=confirm_work_mode,
    )
    await link.open()  # a link that only listens opens itself
    for _ in range(50):  # TCP: let the simulator register the connection before it reports
        if kind == "pty" or server.stats.tcp_connections:
            break
        await asyncio.sleep(0.01)
    return link


def assert_report(readings: list[Reading], meter_id: str, values: tuple[Meter, ...], ts: int) -> None:
    got = {r.quantity: r.value for r in readings}
    for k, (flow, volume) in enumerate(values, start=1):
        suffix = "" if k == 1 else f"_{k}"
        assert isinstance(flow, float)
        assert got[f"flow_rate{suffix}"] == pytest.approx(flow, abs=0.001)
        assert got[f"volume_total{suffix}"] == volume
    assert {(r.meter, r.ts, r.slot) for r in readings} == {(meter_id, ts, ts)}


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_a_self_report_is_handed_over_and_confirmed(kind: str) -> None:
    """C0H with a 5-byte Tp: readings at the Tp's moment (UTC), then a confirm the meter accepts."""
    sim = sim_meter(pairs=2)
    got = Collector()

    async def body() -> None:
        server = Szy206SimServer([sim], confirm_timeout=CONFIRM_TIMEOUT)
        link = await open_link(server, kind, [Szy206Meter("m13", address(), pairs=2, tp_len=5)], got)
        try:
            assert await server.send_report(sim)
            assert len(got.reports) == 1
            assert got.reports[0][0] == "m13"
            assert_report(got.reports[0][1], "m13", sim.last_values, START_MS)
            assert (sim.confirms_received, sim.report_resends) == (1, 0)
            confirm = next(f for f in sim.frames_seen if f.afn == AFN.REPORT)
            assert (confirm.up, confirm.fcb, confirm.function, confirm.data) == (False, 3, 3, b"\x00")
            assert confirm.tp == time_label_at(GATEWAY_MS, tp_len=5, delay_min=10)  # our clock, the report's delay
            assert sim.last_confirm is not None and sim.last_confirm.work_mode == 0
            assert (link.counters.self_reports, link.counters.confirms_sent) == (1, 1)
        finally:
            await link.close()
            await server.stop()

    run(body)


@pytest.mark.parametrize(("tp_len", "ts"), [(7, START_MS), (0, GATEWAY_MS)])
def test_other_tp_editions(tp_len: int, ts: int) -> None:
    """7-byte Tp: its full date; no Tp: the arrival time, and a confirm without Tp."""
    sim = sim_meter(tp_len=tp_len)
    got = Collector()

    async def body() -> None:
        server = Szy206SimServer([sim], confirm_timeout=CONFIRM_TIMEOUT)
        link = await open_link(server, "pty", [Szy206Meter("m13", address())], got)
        try:
            assert await server.send_report(sim)
            assert_report(got.reports[0][1], "m13", sim.last_values, ts)
            assert sim.confirm_forms == {f"data=00 tp={tp_len} type=3": 1}
        finally:
            await link.close()
            await server.stop()

    run(body)


def test_periodic_reports_of_several_meters_on_one_line() -> None:
    """Two meters self-reporting on their interval over one pty: each report confirmed once."""
    sims = [sim_meter(13, report_interval=0.05), sim_meter(14, report_interval=0.05, pairs=2)]
    got = Collector()

    async def body() -> None:
        server = Szy206SimServer(sims, confirm_timeout=CONFIRM_TIMEOUT)
        meters = [Szy206Meter("a", address(13)), Szy206Meter("b", address(14), pairs=2)]
        link = await open_link(server, "pty", meters, got)
        try:
            for _ in range(200):
                if min(s.confirms_received for s in sims) >= 3:
                    break
                await asyncio.sleep(0.01)
        finally:
            await link.close()  # first: no report is half-way through the link when counted
            await server.stop()
        for sim in sims:
            assert sim.confirms_received >= 3 and sim.report_resends == 0
        ids = [meter_id for meter_id, _ in got.reports]
        assert ids.count("a") >= 3 and ids.count("b") >= 3
        assert link.counters.confirms_sent == link.counters.self_reports == len(got.reports)

    run(body)


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_a_resent_report_is_confirmed_again_but_handed_over_once(kind: str) -> None:
    """ignore_confirm: the meter sends FCB 3, 2, 1, 0; each gets a confirm echoing its FCB; one hand-over."""
    sim = sim_meter()
    sim.set_fault(Fault.IGNORE_CONFIRM)
    got = Collector()

    async def body() -> None:
        server = Szy206SimServer([sim], confirm_timeout=CONFIRM_TIMEOUT)
        link = await open_link(server, kind, [Szy206Meter("m13", address())], got)
        try:
            assert not await server.send_report(sim)
            await asyncio.sleep(0.05)  # the last confirm is on its way
            assert (sim.reports_sent, sim.report_resends, sim.reports_failed) == (1, 3, 1)
            assert [f.fcb for f in sim.frames_seen if f.afn == AFN.REPORT] == [3, 2, 1, 0]
            assert sim.confirms_ignored == 4
            assert len(got.reports) == 1
            c = link.counters
            assert (c.self_reports, c.duplicate_reports, c.confirms_sent) == (4, 3, 4)
        finally:
            await link.close()
            await server.stop()

    run(body)


def test_a_report_whose_hand_over_fails_is_not_confirmed() -> None:
    """on_report raises: no confirm, so the meter resends; the resend is handed over and confirmed."""
    sim = sim_meter()
    calls: list[str] = []

    async def flaky(meter_id: str, readings: list[Reading]) -> None:
        calls.append(meter_id)
        if len(calls) == 1:
            raise RuntimeError("store is busy")

    async def body() -> None:
        server = Szy206SimServer([sim], confirm_timeout=CONFIRM_TIMEOUT)
        link = await open_link(server, "pty", [Szy206Meter("m13", address())], flaky)
        try:
            assert await server.send_report(sim)
            assert calls == ["m13", "m13"] and sim.report_resends == 1
            assert link.counters.unconfirmed_reports == 1 and link.counters.confirms_sent == 1
        finally:
            await link.close()
            await server.stop()

    run(body)


def test_reports_from_unknown_addresses_are_counted_not_confirmed() -> None:
    """A terminal the link is not configured for: counted and logged, never confirmed or handed over."""
    stranger = sim_meter(99)
    got = Collector()

    async def body() -> None:
        server = Szy206SimServer([stranger], confirm_timeout=CONFIRM_TIMEOUT / 3)
        link = await open_link(server, "pty", [Szy206Meter("m13", address())], got)
        try:
            assert not await server.send_report(stranger)
            assert stranger.confirms_received == 0 and got.reports == []
            assert link.counters.unknown_frames == 4 and link.counters.confirms_sent == 0
        finally:
            await link.close()
            await server.stop()

    run(body)


def test_alarm_report_and_confirm_without_data() -> None:
    """An 81H alarm report is handed over like C0H; confirm_work_mode=None sends a confirm without data."""
    sim = sim_meter()
    got = Collector()

    async def body() -> None:
        server = Szy206SimServer([sim], confirm_timeout=CONFIRM_TIMEOUT)
        link = await open_link(server, "pty", [Szy206Meter("m13", address())], got, confirm_work_mode=None)
        try:
            assert await server.send_report(sim, AFN.ALARM_REPORT)
            assert len(got.reports) == 1
            assert sim.confirm_forms == {"data=- tp=5 type=3": 1}
            assert sim.last_confirm is not None and sim.last_confirm.work_mode is None
        finally:
            await link.close()
            await server.stop()

    run(body)


def test_no_confirm_needed_and_polls_between_reports() -> None:
    """A meter that wants no confirm sends once; polling the same meter on the same link still works."""
    sim = sim_meter()
    sim.set_fault(Fault.NO_CONFIRM_NEEDED)
    got = Collector()

    async def body() -> None:
        server = Szy206SimServer([sim], confirm_timeout=CONFIRM_TIMEOUT)
        meter = Szy206Meter("m13", address())
        link = await open_link(server, "pty", [meter], got)
        try:
            assert not await server.send_report(sim)
            readings = await Szy206Driver(link).read(meter, 0)
            assert {r.quantity for r in readings} == {"flow_rate", "volume_total"}
            assert len(got.reports) == 1 and sim.report_resends == 0
            for _ in range(100):  # the confirm follows the hand-over, in a task of its own
                if sim.confirms_unexpected:
                    break
                await asyncio.sleep(0.01)
            assert sim.confirms_unexpected == 1  # our confirm came; the meter was not waiting
        finally:
            await link.close()
            await server.stop()

    run(body)


def test_a_report_is_confirmed_only_once_it_is_durable() -> None:
    """The meter drops its copy on our confirm, so none goes out while the commit runs. A resend that
    arrives meanwhile is not handed over again; the confirm after the commit answers its FCB."""
    sim = sim_meter()
    committed = asyncio.Event()
    calls: list[str] = []

    async def slow_commit(meter_id: str, readings: list[Reading]) -> None:
        calls.append(meter_id)
        await committed.wait()  # an fsync on a slow SD card, a group commit window

    async def body() -> None:
        server = Szy206SimServer([sim], confirm_timeout=CONFIRM_TIMEOUT)
        link = await open_link(server, "pty", [Szy206Meter("m13", address())], slow_commit)
        try:
            sending = asyncio.create_task(server.send_report(sim))
            for _ in range(200):  # FCB 3 and the resend with FCB 2 arrive while the commit runs
                if sim.report_resends >= 1 and link.counters.duplicate_reports >= 1:
                    break
                await asyncio.sleep(0.01)
            assert sim.confirms_received == 0 and link.counters.confirms_sent == 0
            assert calls == ["m13"] and link.reports.taking == 1
            resent_fcb = sim.report_in_flight.fcb if sim.report_in_flight is not None else -1
            committed.set()
            assert await sending
            assert calls == ["m13"] and sim.confirms_received == 1
            confirm = [f for f in sim.frames_seen if f.afn == AFN.REPORT]
            assert [f.fcb for f in confirm] == [resent_fcb]
            assert link.counters.confirms_sent == 1 and link.reports.taking == 0
        finally:
            await link.close()
            await server.stop()

    run(body)


def test_a_report_nobody_takes_is_left_with_the_meter() -> None:
    """Without on_report (``meterlink read`` only looks) a report is never confirmed: the meter keeps
    it for the agent, which stores it, instead of dropping it on a confirm from a tool."""
    sim = sim_meter()

    async def body() -> None:
        server = Szy206SimServer([sim], confirm_timeout=CONFIRM_TIMEOUT / 3)
        link = await open_link(server, "pty", [Szy206Meter("m13", address())], None)
        try:
            assert not await server.send_report(sim)
            assert sim.confirms_received == 0 and sim.reports_failed == 1
            assert link.counters.unconfirmed_reports == 4 and link.counters.confirms_sent == 0
        finally:
            await link.close()
            await server.stop()

    run(body)


def test_closing_the_link_abandons_a_commit_unconfirmed() -> None:
    """A stop while a report's commit runs: the link closes without a confirm and without a stray task."""
    sim = sim_meter()
    never = asyncio.Event()

    async def stuck(meter_id: str, readings: list[Reading]) -> None:
        await never.wait()

    async def body() -> None:
        server = Szy206SimServer([sim], confirm_timeout=CONFIRM_TIMEOUT)
        link = await open_link(server, "pty", [Szy206Meter("m13", address())], stuck)
        try:
            sending = asyncio.create_task(server.send_report(sim))
            for _ in range(200):
                if link.reports.taking:
                    break
                await asyncio.sleep(0.01)
            await link.close()
            assert link.reports.taking == 0 and link.counters.confirms_sent == 0
            assert not await sending and sim.confirms_received == 0
        finally:
            await link.close()
            await server.stop()

    run(body)
