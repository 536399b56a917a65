"""Group commit: poll cycles that end together share one transaction, and each reading is stored once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from meterlink.agent.capture import GroupCommit
from meterlink.agent.outbox import Outbox
from meterlink.agent.store import Store
from meterlink.drivers.base import Reading

T0 = 1_764_374_400_000


def cycle(meter: str, n: int = 4) -> list[Reading]:
    return [Reading(meter, f"q{i}", float(i), "m3", T0 + i, T0) for i in range(n)]


def stored(path: Path) -> list[tuple[str, str]]:
    store = Store(path, "gw")
    try:
        return [(r.meter, r.quantity) for r in store.readings(1, 10**9)]
    finally:
        store.close()


def test_cycles_ending_within_the_window_share_one_commit(tmp_path: Path) -> None:
    async def main() -> GroupCommit:
        outbox = Outbox(Store(tmp_path / "s.db", "gw"))
        capture = GroupCommit(outbox, window=0.05)
        capture.submit(cycle("a"))
        await asyncio.sleep(0.01)
        capture.submit(cycle("b"))
        await asyncio.sleep(0.2)
        await outbox.close()
        return capture

    capture = asyncio.run(main())
    assert capture.commits == 1
    assert len(stored(tmp_path / "s.db")) == 8


@pytest.mark.parametrize("another_cycle", [False, True])
def test_a_flush_during_a_running_commit_stores_nothing_twice(tmp_path: Path, mocker: Any, another_cycle: bool) -> None:
    """The stop's flush can come while the window's commit is still waiting for fsync (a slow SD
    card): it must wait for that commit, not write the same readings again under new seqs."""
    store = Store(tmp_path / "s.db", "gw")
    real_append = store.append

    def slow_append(readings: Any) -> tuple[int, int]:
        time.sleep(0.15)
        return real_append(readings)

    mocker.patch.object(store, "append", side_effect=slow_append)

    async def main() -> GroupCommit:
        outbox = Outbox(store)
        capture = GroupCommit(outbox, window=0.01)
        capture.submit(cycle("a"))
        await asyncio.sleep(0.05)  # the window is over: its commit is in the store's thread now
        if another_cycle:
            capture.submit(cycle("b"))  # a cycle that ended during that commit
        await capture.flush()
        held = capture.held
        await outbox.close()
        assert held == 0
        return capture

    asyncio.run(main())
    rows = stored(tmp_path / "s.db")
    meters = "ab" if another_cycle else "a"
    assert sorted(rows) == sorted((m, f"q{i}") for m in meters for i in range(4)), rows
