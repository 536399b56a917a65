"""The outbox: seq assignment, pending/sent, retention, restart, store loss."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterlink.agent.errors import StoreError
from meterlink.agent.store import Store
from meterlink.drivers.base import Flag, Reading

DAY = 86_400_000
T0 = 1_764_374_400_000  # 2025-11-29T00:00:00Z


def cycle(n: int, ts: int = T0, meter: str = "m1") -> list[Reading]:
    return [Reading(meter, f"q{i % 4}", float(i) + 0.5, "m3", ts + i, ts) for i in range(n)]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "s.db", "gw-1")


def test_seq_starts_at_one_and_increases_by_one(store: Store) -> None:
    assert store.append(cycle(3)) == (1, 3)
    assert store.append(cycle(2)) == (4, 5)
    assert [r.seq for r in store.pending(100)] == [1, 2, 3, 4, 5]


def test_readings_keep_every_field(store: Store) -> None:
    r = Reading("well-1", "flow_rate", 36.62541, "m3/h", T0 + 381, T0, int(Flag.CLOCK_UNSYNCED))
    store.append([r])
    (got,) = store.pending(10)
    assert (got.meter, got.quantity, got.value, got.unit, got.ts, got.slot, got.flags) == (
        "well-1",
        "flow_rate",
        36.62541,
        "m3/h",
        T0 + 381,
        T0,
        1,
    )


def test_durability_pragmas(store: Store) -> None:
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store.db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL


def test_restart_continues_where_it_stopped(tmp_path: Path) -> None:
    s = Store(tmp_path / "s.db", "gw-1")
    s.append(cycle(10))
    s.mark_sent(1, 4, T0)
    s.close()
    s = Store(tmp_path / "s.db", "gw-1")
    assert s.append(cycle(1)) == (11, 11)
    assert [r.seq for r in s.pending(100)] == [5, 6, 7, 8, 9, 10, 11]


def test_seq_is_never_reused_after_the_highest_rows_are_deleted(tmp_path: Path) -> None:
    s = Store(tmp_path / "s.db", "gw-1", retention_ms=DAY)
    s.append(cycle(5))
    s.mark_sent(1, 5, T0)
    assert s.purge(T0 + 2 * DAY) == 5
    s.close()
    s = Store(tmp_path / "s.db", "gw-1")
    assert s.append(cycle(1)) == (6, 6)


def test_mark_sent_out_of_order_leaves_the_hole_pending(store: Store) -> None:
    store.append(cycle(30))
    assert store.mark_sent(11, 20, T0) == 10
    assert store.mark_sent(1, 10, T0) == 10
    assert [r.seq for r in store.pending(100)] == list(range(21, 31))
    assert store.pending_from == 21
    assert store.mark_sent(1, 10, T0) == 0  # a duplicate acknowledgement changes nothing
    assert [r.seq for r in store.pending(5, after=25)] == [26, 27, 28, 29, 30]


def test_stats(store: Store) -> None:
    store.append(cycle(4, ts=T0))
    store.append(cycle(4, ts=T0 + 60_000))
    store.mark_sent(1, 4, T0)
    st_ = store.stats()
    assert (st_.pending, st_.oldest_pending_ts, st_.next_seq, st_.rows) == (4, T0 + 60_000, 9, 8)


def test_purge_keeps_pending_and_recent_readings_and_gives_space_back(tmp_path: Path) -> None:
    s = Store(tmp_path / "s.db", "gw-1", retention_ms=35 * DAY)
    for day in range(40):
        s.append(cycle(2000, ts=T0 + day * DAY))
    s.mark_sent(1, 2000 * 38, T0)  # the last two days are still pending
    s.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = s.file_bytes()
    deleted = s.purge(T0 + 40 * DAY)
    assert deleted == 2000 * 5  # days 0-4 are more than 35 days old
    left = s.readings(1, 10**9)
    assert left[0].seq == 2000 * 5 + 1
    assert len(s.pending(10**6)) == 4000
    assert s.file_bytes() < before * 0.9


def test_with_nothing_to_upload_them_readings_are_purged_by_age_alone(tmp_path: Path) -> None:
    """A site reporting only as an SZY206 terminal: no reading is ever marked sent, and the store
    must still stay at the retention period instead of filling up to its cap."""
    s = Store(tmp_path / "s.db", "gw-1", retention_ms=35 * DAY, uploaded=False)
    for day in range(40):
        s.append(cycle(100, ts=T0 + day * DAY))
    assert s.purge(T0 + 40 * DAY) == 100 * 5
    assert s.readings(1, 10**9)[0].seq == 100 * 5 + 1


def test_a_store_of_another_gateway_is_refused(tmp_path: Path) -> None:
    Store(tmp_path / "s.db", "gw-1").close()
    with pytest.raises(StoreError, match="belongs to gateway 'gw-1'"):
        Store(tmp_path / "s.db", "gw-2")


def lose(tmp_path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"s.db{suffix}").unlink(missing_ok=True)


def test_a_lost_store_does_not_restart_numbering(tmp_path: Path) -> None:
    s = Store(tmp_path / "s.db", "gw-1")
    s.append(cycle(100))
    s.close()
    lose(tmp_path)
    s = Store(tmp_path / "s.db", "gw-1")
    first, _ = s.append(cycle(1))
    assert first > 100
    assert s.seq_jump is not None and s.seq_jump[1] == first


def test_a_lost_store_restarts_no_counter_at_all(tmp_path: Path) -> None:
    """Batch and event numbers continue above the lost store's too: a platform that deduplicates
    events by seq, or spots replays by batch, needs no exception for a replaced store."""
    s = Store(tmp_path / "s.db", "gw-1")
    s.append(cycle(10))
    batches = [s.reserve_batches(600) for _ in range(3)]  # past the first block of the batch mark
    events = [s.add_event("meter_online", T0, {"n": i}) for i in range(1500)]  # past the first event block
    s.close()
    lose(tmp_path)
    s = Store(tmp_path / "s.db", "gw-1")
    assert s.reserve_batches(1) > batches[-1] + 599
    replaced = s.pending_events(10)
    assert [e.kind for e in replaced] == ["store_replaced"]
    assert replaced[0].seq > events[-1]
    assert s.add_event("agent_started", T0) > replaced[0].seq
    s.close()
    lose(tmp_path)  # lost twice: the marks moved on with the second store
    s = Store(tmp_path / "s.db", "gw-1")
    assert s.pending_events(10)[0].seq > replaced[0].seq + 1


def test_an_older_single_number_mark_is_read_as_the_seq_mark(tmp_path: Path) -> None:
    (tmp_path / "s.db.seqmark").write_text("5000\n")
    s = Store(tmp_path / "s.db", "gw-1")
    assert s.append(cycle(1))[0] == 5000
    assert s.pending_events(10)[0].detail == {"seq_continues_at": 5000}
    assert (tmp_path / "s.db.seqmark").read_text().split() == ["seq=15001", "batch=1001", "event=1002"]


def test_batch_numbers_increase_across_restarts(tmp_path: Path) -> None:
    s = Store(tmp_path / "s.db", "gw-1")
    a = s.reserve_batches(10)
    b = s.reserve_batches(10)
    s.close()
    c = Store(tmp_path / "s.db", "gw-1").reserve_batches(10)
    assert a < a + 9 < b < b + 9 < c


def test_a_failed_append_leaves_nothing_half_written(store: Store) -> None:
    good = cycle(3)
    bad = [*cycle(2), Reading("m1", "q", float("nan"), "m3", T0, T0)]  # NOT NULL value fails on NaN
    store.append(good)
    with pytest.raises(sqlite3.IntegrityError, match=r"NOT NULL constraint failed: readings\.value"):
        store.append(bad)
    assert store.append(cycle(1)) == (4, 4)
    assert [r.seq for r in store.pending(10)] == [1, 2, 3, 4]


ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 40)),
        st.tuples(st.just("ack"), st.integers(0, 200), st.integers(0, 60)),
        st.tuples(st.just("reopen"), st.just(0)),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=ops)
def test_model_seq_contiguous_and_pending_exact(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[Any, ...]]
) -> None:
    path = tmp_path_factory.mktemp("model") / "s.db"
    s = Store(path, "gw")
    appended: list[int] = []
    sent: set[int] = set()
    for op in ops:
        if op[0] == "append":
            first, last = s.append(cycle(op[1]))
            assert first == (appended[-1] + 1 if appended else 1)
            appended.extend(range(first, last + 1))
        elif op[0] == "ack":
            lo, width = op[1], op[2]
            s.mark_sent(lo, lo + width, T0)
            sent |= {q for q in range(lo, lo + width + 1) if q in set(appended)}
        else:
            s.close()
            s = Store(path, "gw")
        assert [r.seq for r in s.pending(10_000)] == [q for q in appended if q not in sent]
    s.close()


def test_a_full_store_drops_the_oldest_pending_readings_and_says_which(tmp_path: Path) -> None:
    cap = 2 * 1024 * 1024
    s = Store(tmp_path / "s.db", "gw", capacity_bytes=cap)
    for i in range(120):
        s.append(cycle(1000, ts=T0 + i * 60_000))
    assert s.file_bytes() <= cap
    assert s.dropped > 0
    pending = [r.seq for r in s.pending(10**6)]
    assert pending[-1] == 120_000 and pending == list(range(pending[0], 120_001))  # the gap is at the start
    dropped = [e.detail for e in s.pending_events(1000) if e.kind == "readings_dropped"]
    assert sum(d["count"] for d in dropped) == s.dropped == pending[0] - 1
    assert dropped[0]["first_seq"] == 1


def test_delivered_readings_make_room_before_any_pending_one_is_dropped(tmp_path: Path) -> None:
    s = Store(tmp_path / "s.db", "gw", capacity_bytes=2 * 1024 * 1024)
    for i in range(40):
        s.append(cycle(1000, ts=T0 + i * 60_000))
    s.mark_sent(1, 40_000, T0)
    for i in range(40, 70):
        s.append(cycle(1000, ts=T0 + i * 60_000))
    assert s.dropped == 0
    assert [r.seq for r in s.pending(10**6)] == list(range(40_001, 70_001))


def test_the_refuse_policy_refuses_and_keeps_what_it_has(tmp_path: Path) -> None:
    from meterlink.agent.store import StoreFull

    s = Store(tmp_path / "s.db", "gw", capacity_bytes=1024 * 1024, overflow="refuse")
    appended = 0
    with pytest.raises(StoreFull):
        for i in range(200):
            s.append(cycle(1000, ts=T0 + i))
            appended += 1000
    assert s.dropped == 0
    assert [r.seq for r in s.pending(10**6)] == list(range(1, appended + 1))
    assert s.file_bytes() <= 1024 * 1024


def test_a_corrupt_store_is_moved_aside_and_numbering_goes_on(tmp_path: Path) -> None:
    s = Store(tmp_path / "s.db", "gw")
    s.append(cycle(50))
    s.close()
    data = bytearray((tmp_path / "s.db").read_bytes())
    data[0:16] = b"this is not sql\0"
    (tmp_path / "s.db").write_bytes(bytes(data))
    s = Store(tmp_path / "s.db", "gw")
    assert s.moved_aside is not None and s.moved_aside[0].exists()
    first, _ = s.append(cycle(1))
    assert first > 50


def test_a_store_that_cannot_be_opened_is_not_taken_for_corrupt(tmp_path: Path) -> None:
    """A lock held by another process is not corruption: the store and its pending readings stay."""
    import sqlite3

    s = Store(tmp_path / "s.db", "gw")
    s.append(cycle(5))
    s.close()
    other = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    other.execute("PRAGMA locking_mode=EXCLUSIVE")
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match=r"s\.db"):
            Store(tmp_path / "s.db", "gw")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert sorted(p.name for p in tmp_path.iterdir() if "corrupt" in p.name) == []
    s = Store(tmp_path / "s.db", "gw")
    assert [r.seq for r in s.pending(10)] == [1, 2, 3, 4, 5]


def test_a_directory_in_the_store_s_place_is_named_not_moved(tmp_path: Path) -> None:
    (tmp_path / "s.db").mkdir()
    with pytest.raises(StoreError, match="is a directory"):
        Store(tmp_path / "s.db", "gw")
    assert (tmp_path / "s.db").is_dir()


def test_default_capacity_holds_400_days_hourly_and_35_days_5_minute_per_meter(tmp_path: Path) -> None:
    """One meter's share of the default cap, without the floor: five quantities for 400 days hourly
    and 35 days every 5 minutes, nothing dropped. (The floor only adds room for sites of few meters.)"""
    from meterlink.agent.config import MB_PER_METER

    cap = MB_PER_METER * 1024 * 1024
    s = Store(tmp_path / "s.db", "gw", capacity_bytes=cap)
    quantities = ("flow_rate", "volume_total", "velocity", "volume_net", "error_bits")
    hourly = [
        Reading("m1", q, 1234.567 + h, "m3", T0 + h * 3_600_000, T0 + h * 3_600_000)
        for h in range(400 * 24)
        for q in quantities
    ]
    five_min = [
        Reading("m1", q, 45.678 + k, "m3/h", T0 + k * 300_000, T0 + k * 300_000)
        for k in range(35 * 288)
        for q in quantities
    ]
    for rows in (hourly, five_min):
        for i in range(0, len(rows), 5000):
            s.append(rows[i : i + 5000])
    assert s.dropped == 0
    assert s.stats().pending == 5 * (400 * 24 + 35 * 288)
    assert s.file_bytes() <= cap


def test_a_store_it_may_not_write_is_named_with_the_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The line a technician sees when the store belongs to another user (faked: tests may run as root)."""
    import os
    import sqlite3

    from meterlink.agent import store_file as store_module
    from meterlink.agent.osuser import effective_user

    Store(tmp_path / "s.db", "gw").close()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p).name == "s.db" else real_access(p, mode))
    readonly = sqlite3.OperationalError("attempt to write a readonly database")
    line = store_module._cannot_open(tmp_path / "s.db", readonly)
    assert line == f"store {tmp_path / 's.db'}: {tmp_path / 's.db'} is not writable by user {effective_user()}"
