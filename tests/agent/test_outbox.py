"""The outbox: the store's operations from the event loop, and the state the loop keeps of it."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from meterlink.agent.outbox import Outbox
from meterlink.agent.store import Store
from meterlink.drivers.base import Reading


def cycle(n: int, start: int = 0) -> list[Reading]:
    return [Reading("m1", "flow_rate", float(i), "m3/h", 1_000 + i, 1_000, 0) for i in range(start, start + n)]


def test_the_loop_sees_the_next_seq_and_new_events_from_the_operations(tmp_path: Path) -> None:
    """next_seq and events_added are handed back by the worker thread: after an append through a
    named operation, and after an event a companion wrote inside ``call`` (as the daybook does)."""

    async def main() -> None:
        outbox = Outbox(Store(tmp_path / "s.db", "gw"))
        try:
            assert outbox.next_seq == 1 and outbox.events_added == 0
            assert await outbox.append(cycle(3)) == (1, 3)
            assert outbox.next_seq == 4
            await outbox.with_store(lambda store: store.add_event("rule", 5, {}))
            assert outbox.events_added == 1
            await outbox.add_event("agent_started", 6)
            assert outbox.events_added == 2
            events = await outbox.pending_events(10)
            assert [e.kind for e in events] == ["rule", "agent_started"]
            assert await outbox.confirm_events(events[0].seq, events[-1].seq, 7) == 2
            rows = await outbox.pending(10)
            assert [r.seq for r in rows] == [1, 2, 3]
            assert await outbox.confirm(1, 2, 8) == 2
            assert [r.seq for r in await outbox.pending(10)] == [3]
        finally:
            await outbox.close()
        assert outbox.next_seq == 4

    asyncio.run(main())


def test_every_operation_runs_on_the_one_worker_thread(tmp_path: Path) -> None:
    """The store is touched by one thread only, never the loop's."""

    async def main() -> None:
        outbox = Outbox(Store(tmp_path / "s.db", "gw"))
        seen: set[int] = set()

        def where(store: Store) -> None:
            seen.add(threading.get_ident())

        try:
            for _ in range(3):
                await outbox.with_store(where)
                await outbox.append(cycle(1))
        finally:
            await outbox.close()
        assert len(seen) == 1 and threading.get_ident() not in seen

    asyncio.run(main())


def test_report_slots_through_the_outbox(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = Outbox(Store(tmp_path / "s.db", "gw"))
        try:
            assert await outbox.keep_report(60_000, b"\x01", 1) is True
            assert await outbox.keep_report(60_000, b"\x02", 2) is False  # a slot is kept once
            await outbox.keep_report(120_000, b"\x03", 3)
            await outbox.report_attempted(60_000)
            await outbox.confirm_report(60_000, 4)
            assert await outbox.unconfirmed_reports(10) == [(120_000, b"\x03")]
            assert await outbox.reports_between(0, 200_000) == [(60_000, b"\x01"), (120_000, b"\x03")]
        finally:
            await outbox.close()

    asyncio.run(main())
