"""meterlink report (and the rules' lines of meterlink status): from the store alone, read-only.

Two stores hold the same four days of readings of three meters, appended in the same order: one
by a real Rulebook ticking through those days as the agent does (its day summaries kept, one of
them corrected by a late reading, conditions opened), the other by the Store alone (every day
computed by the report). The report of the one must equal the report of the other.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.configs import write_site

import meterlink.cli.main as cli
from meterlink.agent import config as cfgmod
from meterlink.agent import rules_config
from meterlink.agent.clock import now_ms
from meterlink.agent.daybook import Daybook
from meterlink.agent.outbox import Outbox
from meterlink.agent.report import DAY_KEYS, wrap_limits
from meterlink.agent.rulebook import Rulebook
from meterlink.agent.rules.calendar import day_of, day_range
from meterlink.agent.rules.conditions import Conditions
from meterlink.agent.store import Store
from meterlink.drivers.base import Flag, Reading

SITE = """
[gateway]
id = "gw-report"
poll_interval = 300
timezone = "Asia/Shanghai"

[buses.line1]
type = "serial"
device = "/dev/null"

[buses.tcp1]
type = "tcp"
host = "127.0.0.1"
port = 5020

[[meters]]
id = "m1"
bus = "line1"
unit_id = 1
profile = "tuf2000"
intake = "well-1"

[[meters]]
id = "m2"
bus = "tcp1"
unit_id = 1
profile = "emf_generic"
intake = "well-1"
return_flow = true

[[meters]]
id = "m3"
bus = "tcp1"
unit_id = 2
profile = "emf_generic"

[[intakes]]
id = "well-1"
permit = "P-7"
annual_permit = 1000
annual_plan = 300
permit_expires = 2030-06-30

[store]
path = "state/meterlink.db"

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "mqtt://127.0.0.1:1883"
"""

FIRST = date(2026, 11, 2)  # four days, well before today: every day of them is over
DAYS = [FIRST + timedelta(days=n) for n in range(4)]
SLOT = 300_000
HOUR = 3_600_000


@dataclass(frozen=True)
class Site:
    config: Path
    store: Path


def _zone() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo("Asia/Shanghai")


def timeline() -> list[tuple[int, list[Reading]]]:
    """(when stored, readings) in store order: a slot every 5 minutes from the first day's midnight
    to the fifth's 00:05; m1 silent on day 2 from 10:00 to 12:00; m3 first polled on day 2 at 12:00,
    reset to 0 on day 3 at 06:00; and two readings taken by hand and stored late (flagged manual):
    m2's of day 2, 13:02, stored on day 3 at 00:30, and m1's of day 1, 15:02, on day 4 at noon."""
    start = day_range(DAYS[0], _zone())[0]
    end = day_range(DAYS[-1], _zone())[1] + SLOT
    day2, day3, day4 = (day_range(d, _zone())[0] for d in DAYS[1:])

    def by_hand(meter: str, at: int, first: float, step: float) -> Reading:
        value = first + step * ((at - start) // SLOT + 0.5)  # between the slots' readings
        return Reading(meter, "volume_total", value, "m3", at, at, int(Flag.MANUAL))

    out: list[tuple[int, list[Reading]]] = []
    for n, slot in enumerate(range(start, end + 1, SLOT)):
        ts = slot + 300
        batch = []
        if not day2 + 10 * HOUR <= slot < day2 + 12 * HOUR:
            batch += [
                Reading("m1", "volume_total", 1000 + 0.5 * n, "m3", ts, slot),
                Reading("m1", "flow_rate", 6.0 + n % 3, "m3/h", ts, slot),
            ]
        batch.append(Reading("m2", "volume_total", 50 + 0.1 * n, "m3", ts, slot))
        if slot >= day2 + 12 * HOUR:
            reset = slot >= day3 + 6 * HOUR
            value = (slot - day3 - 6 * HOUR) / SLOT if reset else 7000 + (slot - day2) / SLOT
            batch.append(Reading("m3", "volume_total", float(value), "m3", ts, slot))
        out.append((ts, batch))
        if slot == day3 + HOUR // 2:
            out.append((ts + 1, [by_hand("m2", day2 + 13 * HOUR + 150_000, 50, 0.1)]))
        if slot == day4 + 12 * HOUR:
            out.append((ts + 1, [by_hand("m1", start + 15 * HOUR + 150_000, 1000, 0.5)]))
    return out


async def run_agent(store_path: Path, config: Path) -> None:
    """The agent's rules over the timeline: append, observe, tick (every hour and after midnight)."""
    cfg = cfgmod.load(config)
    store = Store(store_path, cfg.gateway.id)
    store.db.execute("PRAGMA synchronous=OFF")  # the rules are judged here, durability in tests/faults
    outbox = Outbox(store)
    clock = [0]
    rulebook = Rulebook(
        outbox,
        rules_config.meter_settings(cfg, wrap_limits(cfg)),
        zone=cfg.gateway.zone,
        intakes=rules_config.intakes(cfg),
        settings=rules_config.anomaly_settings(cfg),
        clock=lambda: clock[0],
    )
    events = timeline()
    clock[0] = events[0][0]
    try:
        await rulebook.start()
        last_tick = 0
        for when, batch in events:
            clock[0] = when
            await outbox.call(store.append, batch)
            rulebook.observe(batch)
            if when - last_tick >= HOUR // 6:
                await rulebook.tick()
                last_tick = when
        clock[0] += 10 * 60_000  # past the last midnight's settle time
        await rulebook.tick()
    finally:
        await outbox.close()


def store_alone(store_path: Path) -> None:
    """The same readings, in the same order, by the Store alone: the rules never ran."""
    store = Store(store_path, "gw-report")
    store.db.execute("PRAGMA synchronous=OFF")
    batch: list[Reading] = []
    for _, readings in timeline():
        batch += readings
        if len(batch) > 500:
            store.append(batch)
            batch = []
    store.append(batch)
    store.close()


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> tuple[Site, Site]:
    """(the agent's site, the store-alone site), built once for the module."""
    folder = tmp_path_factory.mktemp("report")
    kept = write_site(folder / "kept", SITE)
    bare = write_site(folder / "bare", SITE)
    kept_store, bare_store = kept.parent / "state/meterlink.db", bare.parent / "state/meterlink.db"
    asyncio.run(run_agent(kept_store, kept))
    store_alone(bare_store)
    return Site(kept, kept_store), Site(bare, bare_store)


def one_more() -> list[Reading]:
    """A reading of m1 on the first day, not in the timeline."""
    midnight = day_range(DAYS[0], _zone())[0]
    return [Reading("m1", "volume_total", 9999.0, "m3", midnight + 400_000, midnight)]


def copy_site(store: Path, folder: Path) -> tuple[Path, Path]:
    """A new site in ``folder`` whose store is a copy of ``store`` (closed): (config, store)."""
    site = write_site(folder, SITE)
    path = folder / "state/meterlink.db"
    path.parent.mkdir()
    for suffix in ("", ".seqmark"):
        shutil.copyfile(str(store) + suffix, str(path) + suffix)
    return site, path


def report(config: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> Any:
    """``meterlink report -c CONFIG ARGS --json`` in this process: its parsed output."""
    code = cli.main(["report", "-c", str(config), *args, "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def meter_rows(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["meter"], r.get("day") or r["period"]): r for r in records if r["record"] == "meter"}


def figures(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in DAY_KEYS}


# -- a day, kept and computed ------------------------------------------------------------------------


def test_a_day_is_reported_as_the_agent_kept_it(sites: tuple[Site, Site], capsys: pytest.CaptureFixture[str]) -> None:
    kept, _ = sites
    rows = meter_rows(report(kept.config, "--day", "2026-11-03", capsys=capsys))
    db = Store(kept.store, "gw-report")  # the agent's own record, to compare with
    try:
        stored = {d.meter: d for d in Daybook(db).days(DAYS[1], DAYS[1])}
    finally:
        db.close()
    assert set(rows) == {("m1", "2026-11-03"), ("m2", "2026-11-03"), ("m3", "2026-11-03")}
    for meter, day in rows:
        row = rows[(meter, day)]
        assert (row["source"], row["version"]) == ("kept", stored[meter].version)
        assert figures(row) == {k: stored[meter].summary[k] for k in DAY_KEYS}
    m1 = rows[("m1", "2026-11-03")]
    # 288 slots, 24 of them in m1's silent two hours; the totalizer bridges the gap: 288 steps of 0.5.
    assert (m1["slots_expected"], m1["slots_filled"], m1["volume"]) == (288, 264, 144.0)
    assert rows[("m2", "2026-11-03")]["version"] == 2  # corrected by the late reading
    assert rows[("m3", "2026-11-03")]["slots_expected"] == 144  # from its first slot, at noon


def test_every_day_computed_from_the_readings_equals_what_the_agent_kept(
    sites: tuple[Site, Site], capsys: pytest.CaptureFixture[str]
) -> None:
    """The month, day by day: from the store the rules never ran on, as from the agent's."""
    kept, bare = sites
    with_days = meter_rows(report(kept.config, "--month", "2026-11", "--days", capsys=capsys))
    computed = meter_rows(report(bare.config, "--month", "2026-11", "--days", capsys=capsys))
    assert set(with_days) == set(computed)
    assert {k[1] for k in computed} >= {d.isoformat() for d in DAYS} | {"2026-11"}
    for key, row in computed.items():
        assert figures(row) == figures(with_days[key]), key
        if "day" in row:
            assert row["source"] == "computed"
    sources = {with_days[(m, d.isoformat())]["source"] for m in ("m1", "m2") for d in DAYS}
    assert sources == {"kept"}
    corrected = [with_days[("m1", DAYS[0].isoformat())], with_days[("m2", DAYS[1].isoformat())]]
    assert [r["version"] for r in corrected] == [2, 2]  # by the readings stored late
    m3 = computed[("m3", "2026-11-04")]
    assert m3["negative_steps"] == 1 and m3["volume"] == 71 + 216  # the reset at 06:00 adds nothing


def test_each_day_computed_alone_equals_what_the_agent_kept(
    sites: tuple[Site, Site], capsys: pytest.CaptureFixture[str]
) -> None:
    """Day by day, and each day's year to date, each its own pass over the readings (in which m1's
    reading stored three days late sends m1's days through the rulebook's own queries, while m2's,
    stored half an hour after its day's midnight, is taken in the pass)."""
    kept, bare = sites
    for day in DAYS:
        agent = report(kept.config, "--day", day.isoformat(), capsys=capsys)
        records = report(bare.config, "--day", day.isoformat(), capsys=capsys)
        assert [r for r in records if r["record"] == "intake"] == [r for r in agent if r["record"] == "intake"]
        agent, computed = meter_rows(agent), meter_rows(records)
        assert {k: figures(r) for k, r in computed.items()} == {k: figures(r) for k, r in agent.items()}
        assert {r["source"] for (m, _), r in computed.items() if m != "m3" or day != DAYS[0]} == {"computed"}


def test_a_day_the_agent_did_not_keep_is_computed_from_the_readings(
    sites: tuple[Site, Site], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The agent was not running at the last midnight: its last day is computed, its baseline the
    day before as kept."""
    kept, _ = sites
    site, path = copy_site(kept.store, tmp_path / "site")
    db = Store(path, "gw-report")
    last = DAYS[-1].isoformat()
    assert db.db.execute("DELETE FROM daily WHERE day = ?", (last,)).rowcount == 3
    db.close()
    rows = meter_rows(report(site, "--day", last, capsys=capsys))
    m1 = rows[("m1", last)]
    assert (m1["source"], m1["version"], m1["partial"]) == ("computed", None, False)
    assert (m1["volume"], m1["slots_filled"], m1["slots_expected"]) == (144.0, 288, 288)
    assert figures(m1) == figures(meter_rows(report(kept.config, "--day", last, capsys=capsys))[("m1", last)])


def test_days_neither_kept_nor_held_any_more_have_no_figures(
    sites: tuple[Site, Site], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The first two days' summaries gone and their readings purged: no figures, not days of silence."""
    kept, _ = sites
    site, path = copy_site(kept.store, tmp_path / "site")
    retention = 86_400_000
    store = Store(path, "gw-report", retention_ms=retention, uploaded=False)
    try:
        store.db.execute("DELETE FROM daily WHERE day < ?", (DAYS[2].isoformat(),))
        assert store.purge(day_range(DAYS[2], _zone())[0] + retention) > 0
    finally:
        store.close()
    rows = meter_rows(report(site, "--month", "2026-11", "--days", capsys=capsys))
    m1_days = sorted(d for m, d in rows if m == "m1" and d != "2026-11")
    assert m1_days[0] == DAYS[2].isoformat()  # then every day to the month's end: held, silent after the 6th
    assert rows[("m1", m1_days[0])]["source"] == "kept" and rows[("m1", "2026-11")]["days"] == len(m1_days) == 27


def test_a_quarter_adds_each_meters_days_up(sites: tuple[Site, Site], capsys: pytest.CaptureFixture[str]) -> None:
    kept, _ = sites
    records = report(kept.config, "--quarter", "2026Q4", capsys=capsys)
    rows = meter_rows(records)
    assert set(rows) == {("m1", "2026Q4"), ("m2", "2026Q4"), ("m3", "2026Q4")}
    days = meter_rows(report(kept.config, "--quarter", "2026q4", "--days", "--meter", "m1", capsys=capsys))
    m1_days = [r for (m, d), r in days.items() if m == "m1" and d != "2026Q4"]
    m1 = rows[("m1", "2026Q4")]
    # Four days of 144 m3, and the fifth day's first five minutes (its 00:00 and 00:05 slots).
    assert m1["volume"] == pytest.approx(sum(r["volume"] or 0 for r in m1_days)) == pytest.approx(4 * 144.0 + 0.5)
    assert m1["slots_filled"] == sum(r["slots_filled"] for r in m1_days) == 4 * 288 - 24 + 2
    assert m1["slots_expected"] == sum(r["slots_expected"] for r in m1_days)
    assert m1["report_rate"] == round(m1["slots_filled"] / m1["slots_expected"], 4)
    assert (m1["start_total"], m1["end_total"]) == (m1_days[0]["start_total"], m1_days[-1]["end_total"])
    assert rows[("m3", "2026Q4")]["negative_steps"] == 1
    assert rows[("m2", "2026Q4")]["flags"] == ["manual"]  # united over its days
    assert m1["days_kept"] == 4 and m1["days"] == m1["days_kept"] + m1["days_computed"]


def test_json_shape_meters_then_intakes_then_warnings(
    sites: tuple[Site, Site], capsys: pytest.CaptureFixture[str]
) -> None:
    kept, _ = sites
    records = report(kept.config, "--day", "2026-11-04", capsys=capsys)
    kinds = [r["record"] for r in records]
    assert kinds == sorted(kinds, key=["meter", "intake", "warning"].index) and set(kinds) == {
        "meter",
        "intake",
        "warning",
    }
    for row in (r for r in records if r["record"] == "meter"):
        assert {
            "meter",
            "day",
            "volume",
            "start_total",
            "end_total",
            "slots_expected",
            "slots_filled",
            "report_rate",
            "flags",
        } <= set(row)
    month = report(kept.config, "--month", "2026-11", capsys=capsys)
    assert all("period" in r and "day" not in r for r in month if r["record"] == "meter")
    (intake,) = [r for r in records if r["record"] == "intake"]
    day4 = meter_rows(records)
    m1, m2 = day4[("m1", "2026-11-04")], day4[("m2", "2026-11-04")]
    assert intake["volume"] == pytest.approx(m1["volume"] - m2["volume"])  # m2 is a return flow
    assert intake["ytd_through"] == "2026-11-04" and intake["ytd_days"] == 3
    assert intake["permit_share"] == pytest.approx(intake["ytd"] / 1000, abs=1e-4)
    assert intake["plan_reached_on"] == "2026-11-04"  # 300 m3 of plan crossed on the third day (115.2 m3 a day)
    assert intake["permit_projected"] is None  # 1000 m3 not reached this year at this pace
    assert intake["permit_expires"] == "2030-06-30" and intake["expires_in_days"] > 1000
    warnings = {(w["kind"], w["subject"]) for w in records if w["record"] == "warning"}
    assert ("plan_threshold", "well-1/2026/100") in warnings
    assert all(w["id"].endswith("/" + w["since"]) for w in records if w["record"] == "warning")


def test_a_warning_started_at_a_moment_says_it_in_local_time(
    sites: tuple[Site, Site], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    kept, _ = sites
    site, path = copy_site(kept.store, tmp_path / "site")
    store = Store(path, "gw-report")
    try:
        daybook = Daybook(store)
        conditions = Conditions(daybook.open_conditions())
        at = day_range(DAYS[1], _zone())[0] + 10 * HOUR + 300  # 10:00 local, as no_data names it
        event = conditions.update("no_data", "m1", True, started=str(at), detail={"meter": "m1"})
        assert event is not None
        daybook.record([event], conditions.take_changes(), at)
    finally:
        store.close()
    records = report(site, "--day", DAYS[1].isoformat(), capsys=capsys)
    (warning,) = [r for r in records if r["record"] == "warning" and r["kind"] == "no_data"]
    assert (warning["subject"], warning["level"], warning["since"]) == ("m1", "alarm", "2026-11-03T10:00:00+08:00")
    assert warning["id"] == f"no_data/m1/{at}" and warning["detail"] == {"meter": "m1"}


# -- read-only -----------------------------------------------------------------------------------------


def _files(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def test_report_and_status_never_create_or_change_a_file(
    sites: tuple[Site, Site], capsys: pytest.CaptureFixture[str]
) -> None:
    _, bare = sites
    folder = bare.store.parent
    before = _files(folder)
    assert not any(name.endswith(("-wal", "-shm")) for name in before)  # the store was closed cleanly
    report(bare.config, "--month", "2026-11", capsys=capsys)
    assert cli.main(["status", "-c", str(bare.config)]) == 0
    capsys.readouterr()
    assert _files(folder) == before


def test_a_live_store_is_read_without_writing_its_database_or_wal(
    sites: tuple[Site, Site], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The agent holds the store open (its -wal and -shm exist): read as one more reader."""
    _, bare = sites
    site, path = copy_site(bare.store, tmp_path / "site")
    writer = Store(path, "gw-report")
    try:
        writer.append(one_more())  # committed, in the -wal only
        wal = path.with_name(path.name + "-wal")
        before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (path, wal)}
        rows = meter_rows(report(site, "--day", DAYS[0].isoformat(), capsys=capsys))
        # 288 slots of 2 quantities, the reading by hand, and the one just committed.
        assert rows[("m1", DAYS[0].isoformat())]["readings"] == 578
        assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (path, wal)} == before
    finally:
        writer.close()


def test_a_store_copied_with_its_wal_but_no_shm_is_read_whole(
    sites: tuple[Site, Site], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, bare = sites
    _, path = copy_site(bare.store, tmp_path / "site")
    writer = Store(path, "gw-report")
    try:
        writer.append(one_more())
        copy = write_site(tmp_path / "copy", SITE).parent / "state"
        copy.mkdir()
        for suffix in ("", "-wal"):
            shutil.copyfile(str(path) + suffix, copy / f"meterlink.db{suffix}")
    finally:
        writer.close()
    rows = meter_rows(report(copy.parent / "meterlink.toml", "--day", DAYS[0].isoformat(), capsys=capsys))
    assert rows[("m1", DAYS[0].isoformat())]["readings"] == 578
    assert sorted(p.name for p in copy.iterdir()) == ["meterlink.db", "meterlink.db-wal"]


def test_a_report_while_the_agent_appends(
    sites: tuple[Site, Site], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A real report process, three times, while a thread appends poll cycles: each report counts
    at least every reading committed before it started."""
    _, bare = sites
    site, path = copy_site(bare.store, tmp_path / "site")

    def readings(records: list[dict[str, Any]]) -> int:
        return sum(r["readings"] for r in records if r["record"] == "meter")

    before = readings(report(site, "--month", "2026-11", capsys=capsys))
    writer = Store(path, "gw-report")
    stop = threading.Event()
    appended: list[int] = []
    failed: list[BaseException] = []

    def append() -> None:
        slot = day_range(DAYS[-1], _zone())[1] + 2 * SLOT
        try:
            while not stop.is_set():
                cycle = [
                    Reading(m, "volume_total", 5000.0 + len(appended), "m3", slot + 300, slot) for m in ("m1", "m2")
                ]
                writer.append(cycle)
                appended.append(len(cycle))
                slot += SLOT
                stop.wait(0.005)  # a busy agent: 200 poll cycles a second
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=append)
    thread.start()
    try:
        for _ in range(3):
            committed = sum(appended)
            proc = subprocess.run(
                [sys.executable, "-m", "meterlink", "report", "-c", str(site), "--month", "2026-11", "--json"],
                capture_output=True,
                timeout=60,
                check=False,
            )
            assert proc.returncode == 0, proc.stderr
            assert readings(json.loads(proc.stdout)) >= before + committed
    finally:
        stop.set()
        thread.join()
        writer.close()
    assert failed == [] and sum(appended) > 0


# -- what a technician gets wrong ----------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meterlink", *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--day", "2026-02-30"], "meterlink report: --day '2026-02-30': day is out of range for month"),
        (["--month", "2026-13"], "meterlink report: --month '2026-13': month must be in 1..12"),
        (
            ["--quarter", "2026Q5"],
            "meterlink report: --quarter '2026Q5' is not a day (YYYY-MM-DD), a month (YYYY-MM) or a quarter (YYYYQN)",
        ),
        (["--day", "2026-11"], "meterlink report: --day '2026-11' is not a day (YYYY-MM-DD)"),
        (
            ["--day", "2026-11-03", "--month", "2026-11"],
            "meterlink report: give one of --day, --month, --quarter, not --day and --month",
        ),
    ],
)
def test_a_bad_period_is_one_line_and_exit_2(sites: tuple[Site, Site], args: list[str], message: str) -> None:
    kept, _ = sites
    proc = run_cli("report", "-c", str(kept.config), *args)
    assert (proc.returncode, proc.stderr.splitlines(), proc.stdout) == (2, [message], "")


def test_a_missing_store_and_an_unknown_meter_are_one_line_and_exit_1(sites: tuple[Site, Site], tmp_path: Path) -> None:
    kept, _ = sites
    proc = run_cli("report", "-c", str(kept.config), "--meter", "m9")
    assert (proc.returncode, proc.stderr.splitlines()) == (
        1,
        ["meterlink: no meter m9 in the config or the store's day summaries"],
    )
    site = write_site(tmp_path / "site", SITE)
    proc = run_cli("report", "-c", str(site))
    store = tmp_path / "site/state/meterlink.db"
    assert (proc.returncode, proc.stderr.splitlines()) == (
        1,
        [f"meterlink: store {store} does not exist yet (the agent has not run)"],
    )
    assert not store.parent.exists()  # nothing made on the way


# -- status ------------------------------------------------------------------------------------------


def test_status_shows_the_intakes_year_to_date_and_the_open_warnings(
    sites: tuple[Site, Site], capsys: pytest.CaptureFixture[str]
) -> None:
    kept, _ = sites
    assert cli.main(["status", "-c", str(kept.config)]) == 0
    out = capsys.readouterr().out.splitlines()
    today = day_of(now_ms(), _zone())  # status counts the year to today, so far
    ytd = report(kept.config, "--day", today.isoformat(), capsys=capsys)
    (intake,) = [r for r in ytd if r["record"] == "intake"]
    (line,) = [line for line in out if line.startswith("intake well-1")]
    assert f"year to date {intake['ytd']:,.3f} m3 to " in line and ", today so far (5 of " in line
    assert any(f"permit 1,000 m3: {intake['ytd'] / 10:.1f} %" in line for line in out)
    assert any("plan 300 m3:" in line and "reached on 2026-11-04" in line for line in out)
    warnings = [r for r in ytd if r["record"] == "warning"]
    assert f"warnings       {len(warnings)} open" in out
    assert any("plan_threshold" in line and "well-1/2026/100" in line for line in out)


@pytest.fixture(autouse=True)
def _no_debug_tracebacks() -> Iterator[None]:
    old = os.environ.pop("METERLINK_DEBUG", None)
    yield
    if old is not None:
        os.environ["METERLINK_DEBUG"] = old
