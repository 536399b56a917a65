"""Per-meter health as `meterlink status` shows it: states, counts over the last hour and day,
the last reading, flags of today; and the state file that carries it to `status`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st
from support.procs import wait_until

from meterlink.agent.health import DAY_MS, HOUR_MS, MINUTE_MS, HealthBook, PollCounts
from meterlink.agent.state_file import agent_running, read_state, state_path, write_state
from meterlink.drivers.base import Reading

ZONE = ZoneInfo("Asia/Shanghai")
T0 = 1_780_000_000_000 - 1_780_000_000_000 % DAY_MS  # a UTC midnight: 08:00 in Shanghai


def book() -> HealthBook:
    b = HealthBook(T0, ZONE)
    b.add_meter("m1", "rs485", interval_ms=10_000, no_data_after_ms=20_000)
    return b


def reading(q: str, v: float, ts: int) -> Reading:
    return Reading("m1", q, v, "m3", ts, ts)


def meter(b: HealthBook, now: int) -> dict[str, object]:
    [m] = b.snapshot(now, pid=1)["meters"]
    return m  # type: ignore[no-any-return]


def test_a_meter_is_ok_then_failing_then_offline_after_its_report_requirement() -> None:
    b = book()
    b.answered("m1", T0, [reading("flow_rate", 1.5, T0)])
    assert meter(b, T0)["state"] == "ok"
    b.failed("m1", T0 + 10_000, "MeterTimeout: no answer")
    m = meter(b, T0 + 10_000)
    assert (m["state"], m["consecutive_failures"], m["failing_since_ms"]) == ("failing", 1, T0 + 10_000)
    b.failed("m1", T0 + 20_000, "MeterTimeout: no answer")
    assert meter(b, T0 + 20_000)["state"] == "failing"  # 20 s since the last answer: not more than the limit
    b.failed("m1", T0 + 30_000, "MeterTimeout: no answer")
    m = meter(b, T0 + 30_000)
    assert (m["state"], m["consecutive_failures"], m["last_error"]) == ("offline", 3, "MeterTimeout: no answer")
    b.answered("m1", T0 + 40_000, [])
    m = meter(b, T0 + 40_000)
    assert (m["state"], m["consecutive_failures"], m["failing_since_ms"]) == ("ok", 0, None)


def test_a_meter_that_never_answered_goes_offline_from_its_first_failure() -> None:
    b = book()
    b.failed("m1", T0, "TransportError: connection refused")
    assert meter(b, T0 + 20_000)["state"] == "failing"
    assert meter(b, T0 + 20_001)["state"] == "offline"
    assert meter(b, T0 + 20_001)["last_ts"] is None


def test_polls_are_counted_over_the_last_hour_and_the_last_day() -> None:
    b = book()
    for n in range(3 * 60):  # a poll a minute for three hours, every fourth one failing
        at = T0 + n * MINUTE_MS
        if n % 4 == 3:
            b.failed("m1", at, "MeterTimeout")
        else:
            b.answered("m1", at, [])
    now = T0 + 3 * HOUR_MS - 1  # the last hour: the minutes from T0 + 2 h on
    m = meter(b, now)
    assert m["polls_last_hour"] == {"ok": 45, "failed": 15}
    assert m["polls_last_day"] == {"ok": 135, "failed": 45}
    later = meter(b, T0 + DAY_MS + 2 * HOUR_MS - 1)  # a day later only the third hour is left
    assert later["polls_last_day"] == {"ok": 45, "failed": 15}
    assert later["polls_last_hour"] == {"ok": 0, "failed": 0}


# Polls as (ms after T0, answered), in time order, and the moments asked about, also in order.
polls = st.lists(st.tuples(st.integers(0, 3 * DAY_MS), st.booleans()), max_size=60).map(sorted)


@given(polls, st.lists(st.integers(0, 4 * DAY_MS), min_size=1, max_size=6).map(sorted))
def test_poll_counts_are_those_of_the_minutes_in_the_window(seen: list[tuple[int, bool]], asks: list[int]) -> None:
    """Counted per minute: a poll counts while its minute's start is inside the window."""
    counts = PollCounts()
    done = 0
    for ask in asks:
        for at, ok in seen[done:]:
            if at > ask:
                break
            counts.add(T0 + at, ok)
            done += 1
        now = T0 + ask
        assert counts.within(now, HOUR_MS) == counted(seen[:done], now - HOUR_MS)
        assert counts.last_day(now) == counted(seen[:done], now - DAY_MS)


def counted(seen: list[tuple[int, bool]], after: int) -> tuple[int, int]:
    """(answered, failed) of the polls whose minute starts after ``after``."""
    inside = [ok for at, ok in seen if (T0 + at) - (T0 + at) % MINUTE_MS > after]
    return sum(inside), len(inside) - sum(inside)


def test_a_meters_day_of_poll_counts_is_small() -> None:
    """A poll a second for a day: the counts hold a few bytes a minute, whatever the day before held
    (at 128 meters an object per minute was 17 MB)."""
    counts = PollCounts()
    tracemalloc.start()
    try:
        for at in range(0, 2 * DAY_MS, 20_000):  # three polls a minute are as many minutes as sixty
            counts.add(T0 + at, at % 100_000 != 0)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert sum(counts.last_day(T0 + 2 * DAY_MS)) == 3 * 1439  # the minute a day back has left
    assert held < 24 * 1024, f"{held} bytes for a day of minutes"


def test_the_last_reading_holds_the_newest_values_and_its_age() -> None:
    b = book()
    b.answered("m1", T0, [reading("flow_rate", 1.0, T0), reading("volume_total", 10.0, T0)])
    b.answered("m1", T0 + 10_000, [reading("flow_rate", 2.0, T0 + 10_000), reading("volume_total", 11.0, T0 + 10_000)])
    b.answered("m1", T0 + 20_000, [reading("flow_rate", 9.0, T0 + 5_000)])  # late: older than what is known
    m = meter(b, T0 + 25_000)
    assert (m["last_ts"], m["values"], m["age_s"]) == (T0 + 10_000, {"flow_rate": 2.0, "volume_total": 11.0}, 15.0)
    b.answered("m1", T0 + 30_000, [reading("flow_rate", 3.0, T0 + 30_000)])  # a reading of one value
    assert meter(b, T0 + 30_000)["values"] == {"flow_rate": 3.0}  # not mixed with an older reading's


def test_flags_are_those_of_the_local_day() -> None:
    b = book()
    b.flag("m1", "wrapped", T0)
    b.flag("m1", "volume_negative", T0 + HOUR_MS)
    b.flag("unknown-meter", "reset", T0)  # a flag about a meter not configured is ignored
    assert meter(b, T0 + HOUR_MS)["flags_today"] == ["volume_negative", "wrapped"]
    next_local_midnight = T0 + 16 * HOUR_MS  # 08:00 + 16 h = 00:00 in Shanghai
    assert meter(b, next_local_midnight)["flags_today"] == []
    b.flag("m1", "reset", next_local_midnight)
    assert meter(b, next_local_midnight)["flags_today"] == ["reset"]


def test_the_snapshot_says_uptime_and_uploads() -> None:
    b = book()
    b.uploaded(T0 + 60_000)
    b.next_upload_ms = T0 + 120_000
    snap = b.snapshot(T0 + 90_000, pid=42)
    assert (snap["uptime_s"], snap["last_upload_ms"], snap["next_upload_ms"], snap["pid"]) == (
        90,
        T0 + 60_000,
        T0 + 120_000,
        42,
    )
    json.dumps(snap)  # plain data


def test_the_state_file_is_replaced_whole(tmp_path: Path) -> None:
    path = state_path(tmp_path / "store.db")
    assert path.name == "store.db.state.json"
    assert read_state(path) is None
    write_state(path, {"pid": 1, "meters": []})
    write_state(path, {"pid": 2, "meters": []})
    assert read_state(path) == {"pid": 2, "meters": []}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.db.state.json"]
    path.write_text("{half a")
    assert read_state(path) is None


def test_only_a_live_meterlink_process_counts_as_the_running_agent() -> None:
    assert not agent_running(None)
    assert not agent_running(os.getpid() + 10**6)
    assert not agent_running(os.getpid())  # pytest's own process is alive but is not meterlink
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "meterlink"])
    try:
        # Just after the fork the child's command line is still empty: wait for the exec.
        assert wait_until(lambda: Path(f"/proc/{proc.pid}/cmdline").read_bytes(), 10)
        assert agent_running(proc.pid)
    finally:
        proc.kill()
        proc.wait()
