"""A corrupt store is moved aside, and what is still readable in it goes into the new store first.

Stores are real SQLite files made by the agent's own Store; the damage is done to their bytes as a
bad SD card would: one page overwritten (a leaf of the readings, the root of the readings, the
header page), with and without a ``-wal``. What the new store holds is compared with what the
damaged one held before the damage (read before it was damaged: a record the salvage cannot touch).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterlink.agent.salvage import salvage
from meterlink.agent.store import Store
from meterlink.drivers.base import Reading

T0 = 1_764_374_400_000
PAGE = 4096
METERS = ["intake", "outlet", "well-2"]


def make_store(path: Path, count: int = 10_000, sent: int = 0) -> dict[int, tuple[str, str, float, int]]:
    """A store with ``count`` readings (the first ``sent`` delivered) and a few events, closed cleanly.
    Returns {seq: (meter, quantity, value, ts)} of the pending ones."""
    store = Store(path, "gw")
    readings = [
        Reading(
            METERS[i % 3],
            "volume_total" if i % 2 else "flow_rate",
            round(i * 1.25, 3),
            "m3",
            T0 + i * 1000,
            T0 + i * 1000,
        )
        for i in range(count)
    ]
    for i in range(0, count, 500):
        store.append(readings[i : i + 500])
    if sent:
        store.mark_sent(1, sent, T0)
    store.add_event("meter_offline", T0, {"meter": "intake"})
    store.add_event("meter_online", T0 + 1, {"meter": "intake"})
    pending = {r.seq: (r.meter, r.quantity, r.value, r.ts) for r in store.readings(sent + 1, 10**9)}
    store.close()
    return pending


def leaf_pages(path: Path, table: str) -> list[int]:
    con = sqlite3.connect(path)
    try:
        return [
            n
            for (n,) in con.execute(
                "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno", (table,)
            )
        ]
    finally:
        con.close()


def root_page(path: Path, table: str) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0])
    finally:
        con.close()


def overwrite_page(path: Path, number: int, seed: int = 1) -> None:
    with path.open("r+b") as f:
        f.seek((number - 1) * PAGE)
        f.write(random.Random(seed).randbytes(PAGE))


def salvaged_store(path: Path) -> tuple[Store, dict[int, tuple[str, str, float, int]], dict[str, object]]:
    store = Store(path, "gw")
    rows = {r.seq: (r.meter, r.quantity, r.value, r.ts) for r in store.readings(1, 10**9)}
    events = store.pending_events(1000)
    assert [e.kind for e in events if e.kind.startswith("store_")] == ["store_replaced", "store_salvaged"]
    salvaged = next(e for e in events if e.kind == "store_salvaged")
    assert salvaged.seq == next(e.seq for e in events if e.kind == "store_replaced") + 1
    return store, rows, salvaged.detail


def test_one_overwritten_leaf_page_costs_only_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    before = make_store(db)
    leaves = leaf_pages(db, "readings")
    overwrite_page(db, leaves[len(leaves) // 2])
    store, rows, detail = salvaged_store(db)
    try:
        assert store.moved_aside is not None
        lost = set(before) - set(rows)
        print(
            f"\n[salvage] leaf page overwritten: {len(rows)} of {len(before)} readings salvaged, "
            f"{len(lost)} lost, event {json.dumps(detail)}"
        )
        assert {s: rows[s] for s in before if s in rows} == {s: before[s] for s in rows}  # same content, same seq
        assert 0 < len(lost) <= 250, len(lost)  # one page holds at most a couple of hundred readings
        assert sorted(lost) == list(range(min(lost), max(lost) + 1))  # and they were neighbours
        assert detail["salvaged"] == len(rows) and detail["unreadable"] == len(lost)
        assert detail["moved_to"] == str(store.moved_aside[0])
        # The salvaged readings are pending again, oldest first, and new ones number above them all.
        assert [r.seq for r in store.pending(100)][:3] == sorted(rows)[:3]
        first, _ = store.append([Reading("intake", "flow_rate", 1.0, "m3", T0, T0)])
        assert first > max(before)
        kinds = [e.kind for e in store.pending_events(1000)]
        assert kinds.count("meter_offline") == 1 and kinds.count("meter_online") == 1  # events saved too
    finally:
        store.close()
    assert not (tmp_path / "s.db.salvage").exists()


def test_an_overwritten_root_page_hides_nothing_from_the_page_pass(tmp_path: Path) -> None:
    """SQLite cannot reach any reading through a broken root; the leaves are still all there."""
    db = tmp_path / "s.db"
    before = make_store(db)
    overwrite_page(db, root_page(db, "readings"))
    store, rows, detail = salvaged_store(db)
    store.close()
    assert rows == before, (len(rows), len(before))
    assert detail["unreadable"] == 0


def test_a_damaged_header_page_still_gives_the_readings(tmp_path: Path) -> None:
    """Page 1 (the file header and the schema) overwritten: the store's own seq mark beside it says it
    is a damaged store of ours; the page pass finds the readings and names their meters."""
    db = tmp_path / "s.db"
    before = make_store(db)
    overwrite_page(db, 1)
    store, rows, _ = salvaged_store(db)
    store.close()
    assert len(rows) >= len(before) - 250 and set(rows) <= set(before)
    assert all(rows[s] == before[s] for s in rows)


def test_delivered_readings_are_not_salvaged(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    before = make_store(db, count=3000, sent=1000)
    leaves = leaf_pages(db, "readings")
    overwrite_page(db, leaves[-2])
    store, rows, _ = salvaged_store(db)
    store.close()
    assert rows and min(rows) > 1000 and set(rows) <= set(before)


def test_pending_readings_that_live_only_in_the_wal_are_salvaged(tmp_path: Path) -> None:
    """A crash image: the newest commits are in the -wal, not yet in the database file; a page of the
    file is damaged. The readings in the -wal come back too."""
    db = tmp_path / "live" / "s.db"
    db.parent.mkdir()
    before = make_store(db, count=4000)
    store = Store(db, "gw")
    store.db.execute("PRAGMA wal_autocheckpoint=0")
    extra = [Reading("intake", "flow_rate", float(i), "m3", T0 + i, T0 + i) for i in range(600)]
    first, last = store.append(extra)
    image = tmp_path / "image"
    image.mkdir()
    for suffix in ("", "-wal"):  # copied while open: the committed -wal is part of the store
        shutil.copy(db.with_name(db.name + suffix), image / ("s.db" + suffix))
    shutil.copy(db.with_name(db.name + ".seqmark"), image / "s.db.seqmark")
    store.close()
    overwrite_page(image / "s.db", leaf_pages(db, "readings")[3])
    salvaged, rows, _ = salvaged_store(image / "s.db")
    salvaged.close()
    assert set(range(first, last + 1)) <= set(rows), "readings only in the -wal were lost"
    assert len(rows) >= len(before) + 600 - 250


def test_a_crash_between_moving_aside_and_the_new_store_still_salvages(tmp_path: Path) -> None:
    """The marker beside the store names the moved file until the new store holds the salvage: a
    start after a crash in between salvages, and the marker then goes."""
    db = tmp_path / "s.db"
    before = make_store(db, count=2000)
    overwrite_page(db, leaf_pages(db, "readings")[2])
    aside = db.with_name("s.db.corrupt-20260101T000000Z")
    (tmp_path / "s.db.salvage").write_text(aside.name + "\n")
    os.replace(db, aside)  # the crash: moved, no new store yet
    store, rows, detail = salvaged_store(db)
    store.close()
    assert len(rows) >= len(before) - 250 and detail["moved_to"] == str(aside)
    assert not (tmp_path / "s.db.salvage").exists()
    # A later start does not salvage again.
    again = Store(db, "gw")
    assert [e.kind for e in again.pending_events(1000)].count("store_replaced") == 1
    again.close()


def test_rows_the_store_deleted_are_not_brought_back(tmp_path: Path) -> None:
    """Deleted rows can linger on free pages (a SQLite built without secure_delete). With the store's
    own counters unreadable too, the page pass looks everywhere, but never on the freelist."""
    db = tmp_path / "s.db"
    before = make_store(db, count=3000)
    con = sqlite3.connect(db)
    con.execute("PRAGMA secure_delete=OFF")
    con.execute("DELETE FROM readings WHERE seq <= 2000")  # dropped at the cap: gone, not delivered
    con.execute("UPDATE meta SET value = 2001 WHERE key = 'pending_from'")
    con.commit()
    assert con.execute("PRAGMA freelist_count").fetchone()[0] > 0
    con.close()
    overwrite_page(db, root_page(db, "meta"))
    overwrite_page(db, root_page(db, "readings"), seed=2)
    store, rows, _ = salvaged_store(db)
    store.close()
    assert set(rows) == set(range(2001, 3001)), (min(rows), len(rows))
    assert all(rows[s] == before[s] for s in rows)


def test_salvage_reads_a_healthy_store_whole(tmp_path: Path) -> None:
    """The same code on an undamaged file: every pending reading, nothing unreadable."""
    db = tmp_path / "s.db"
    before = make_store(db, count=1500, sent=500)
    got: list[tuple[int, str, str, str, float, int, int, int]] = []
    found = salvage(db, 10**6, 10**6, got.extend)
    assert {r[0]: (r[1], r[2], r[4], r[5]) for r in got} == before
    assert found.unreadable == 0 and found.readings == len(before) and len(found.events) == 2


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("healthy") / "s.db"
    make_store(db, count=600)
    return db


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_damage_is_survived_without_an_error(
    healthy: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Random bytes written anywhere (or a file of nothing but noise): salvage returns, never raises."""
    folder = tmp_path_factory.mktemp("damaged")
    raw = bytearray(healthy.read_bytes())
    if data.draw(st.booleans()):
        raw = bytearray(data.draw(st.binary(min_size=0, max_size=3 * PAGE)))
    else:
        for _ in range(data.draw(st.integers(1, 8))):
            at = data.draw(st.integers(0, len(raw) - 1))
            chunk = data.draw(st.binary(min_size=1, max_size=600))
            raw[at : at + len(chunk)] = chunk
    (folder / "s.db").write_bytes(bytes(raw))
    got: list[object] = []
    found = salvage(folder / "s.db", 700, 10, got.extend)
    assert found.readings == len(got)
    assert found.unreadable >= 0
