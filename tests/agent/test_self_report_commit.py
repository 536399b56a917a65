"""SZY206 self-reports through the agent's real group commit and store: confirmed only once committed.

The meter is the real simulator on a pty; the store is a real SQLite store. A store that refuses
readings (``overflow = "refuse"`` at its cap) must leave the report unconfirmed, so the meter keeps it
and sends it again, and the link must stay up; once there is room, the next report is stored once and
confirmed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from support.szy206_frames import A13

from meterlink.agent.capture import GroupCommit
from meterlink.agent.outbox import Outbox
from meterlink.agent.store import Store, StoreFull
from meterlink.drivers.base import Reading
from meterlink.drivers.params import SerialParams
from meterlink.drivers.szy206 import Szy206Link, Szy206Meter
from meterlink.sim.szy206_meter import SimSzy206Meter
from meterlink.sim.szy206_meter_server import Szy206SimServer

START = 1_717_200_000


def fill(store: Store) -> int:
    """Append until the store refuses even one reading; returns how many it holds."""
    n = 0
    for size in (500, 20, 1):
        while True:
            batch = [
                Reading("filler", "flow_rate", float(n + i), "m3/h", START * 1000 + n + i, START * 1000)
                for i in range(size)
            ]
            try:
                store.append(batch)
            except StoreFull:
                break
            n += size
    return n


def test_a_store_that_refuses_leaves_the_report_with_the_meter(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db", "gw", capacity_bytes=256 * 1024, overflow="refuse")
    filled = fill(store)
    sim = SimSzy206Meter(A13, clock=lambda: float(START))

    async def body() -> tuple[int, list[tuple[str, str, float]]]:
        outbox = Outbox(store)
        capture = GroupCommit(outbox, window=0.01)
        refused: list[str] = []

        async def take(meter_id: str, readings: list[Reading]) -> None:
            try:
                await capture.commit(readings)
            except StoreFull as exc:
                refused.append(str(exc))
                raise

        server = Szy206SimServer([sim], confirm_timeout=0.1)
        link = Szy206Link(
            "t",
            SerialParams(device=server.start_pty()),
            timeout=0.2,
            meters=[Szy206Meter("m13", A13)],
            on_report=take,
            clock=lambda: START * 1000,
        )
        await link.open()
        try:
            # Full: four sends (FCB 3..0), each refused, none confirmed; the link stays up.
            assert not await server.send_report(sim)
            assert len(refused) == 4 and sim.confirms_received == 0 and sim.reports_failed == 1
            assert link.connected and link.counters.unconfirmed_reports == 4
            assert capture.held == 0  # nothing kept for a retry: the meter resends, not us
            # Room again (the fillers were delivered): the next report is stored once and confirmed.
            await outbox.call(store.mark_sent, 1, store.next_seq - 1, START * 1000)
            assert await server.send_report(sim)
            assert sim.confirms_received == 1 and link.counters.confirms_sent == 1
        finally:
            await link.close()
            await server.stop()
        rows = await outbox.call(store.readings, filled + 1, store.next_seq)
        await outbox.close()
        return store.next_seq, [(r.meter, r.quantity, r.value) for r in rows]

    next_seq, rows = asyncio.run(body())
    assert [(m, q) for m, q, _ in rows] == [("m13", "flow_rate"), ("m13", "volume_total")], rows
    assert next_seq == filled + 3  # the refused sends spent no seq
