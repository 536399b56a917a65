"""`meterlink demo` as a new user runs it: signed readings from both meters; kill -9 leaves nothing."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest
from support.procs import METERLINK, wait_until
from support.store_probe import last_and_pending

from meterlink.cli.demo import site_time

pytestmark = pytest.mark.slow

SEQ = re.compile(r"upload batch \d+: (\d+) readings, seq (\d+)-(\d+)")


def seqs_in(text: str) -> set[int]:
    out: set[int] = set()
    for _, lo, hi in SEQ.findall(text):
        out |= set(range(int(lo), int(hi) + 1))
    return out


def test_demo_shows_signed_readings_from_both_meters(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*METERLINK, "demo", "--duration", "10", "--dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    summary = lines[-1]
    m = re.fullmatch(r"(\d+) readings from 3 meters, (\d+) verified, 0 rejected", summary)
    assert m and m.group(1) == m.group(2) and int(m.group(1)) > 0, summary
    uploads = [line for line in lines if SEQ.match(line)]
    assert uploads and any("intake-ultrasonic" in u and "outlet-emf" in u and "well-szy206" in u for u in uploads)
    assert "Traceback" not in proc.stderr
    # The folder holds one config, the keys and the store, and the config is a valid one.
    names = sorted(p.name for p in (tmp_path / "d").iterdir())
    assert [n for n in names if n.endswith(".toml") or n.endswith(".conf")] == ["meterlink.toml"]
    assert {"gateway.key", "gateway.pub", "meterlink.db"} <= set(names)
    check = subprocess.run(
        [*METERLINK, "check-config", str(tmp_path / "d" / "meterlink.toml")], capture_output=True, text=True
    )
    assert check.returncode == 0 and check.stdout.strip() == "OK: 3 meters on 3 buses"


def test_kill_9_of_the_demo_leaves_no_process_and_loses_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    out = tmp_path / "run1.out"
    with open(out, "w") as f:
        proc = subprocess.Popen(
            [*METERLINK, "demo", "--dir", str(folder)],
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    db = folder / "meterlink.db"
    try:
        assert wait_until(lambda: len(SEQ.findall(out.read_text())) >= 2, 30), out.read_text()
        # Killed while the store holds readings captured and not yet confirmed.
        assert wait_until(lambda: last_and_pending(db)[1] > 0, 30), out.read_text()
    finally:
        pgid = os.getpgid(proc.pid)
        os.killpg(pgid, signal.SIGKILL)
        proc.wait()

    def group_alive() -> list[psutil.Process]:
        alive = []
        for p in psutil.process_iter(["pid"]):
            try:
                if os.getpgid(p.pid) == pgid:
                    alive.append(p)
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass
        return alive

    assert wait_until(lambda: not group_alive(), 5), group_alive()
    captured, _ = last_and_pending(db)
    first = seqs_in(out.read_text())
    second_run = subprocess.run(
        [*METERLINK, "demo", "--duration", "5", "--dir", str(folder)], capture_output=True, text=True, timeout=60
    )
    assert second_run.returncode == 0, second_run.stdout + second_run.stderr
    second = seqs_in(second_run.stdout)
    everything = first | second
    assert everything == set(range(1, max(everything) + 1)), "a gap in what arrived"
    assert max(everything) >= captured, "a reading captured before kill -9 never arrived"
    status = subprocess.run(
        [*METERLINK, "status", "-c", str(folder / "meterlink.toml")], capture_output=True, text=True
    )
    assert re.search(r"pending\s+0 ", status.stdout), status.stdout


def test_demo_without_mosquitto_says_how_to_install(tmp_path: Path) -> None:
    # mosquitto cannot be uninstalled for a test: the lookup is made to find nothing instead.
    code = (
        "import sys\n"
        "from meterlink.sim import broker\n"
        "broker.find_mosquitto = lambda: None\n"
        "from meterlink.cli.main import main\n"
        "sys.exit(main(['demo', '--duration', '2']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "meterlink: mosquitto is not installed; on Debian or Raspberry Pi OS: sudo apt install mosquitto"
    ]


def test_demo_reports_to_a_central_station(tmp_path: Path) -> None:
    station = subprocess.Popen([*METERLINK, "sim", "station", "--listen", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert station.stdout is not None
        port = int(station.stdout.readline().rsplit(":", 1)[1])
        # The machine's zone is not the site's: the demo must still print the site's time, as the station does.
        proc = subprocess.run(
            [*METERLINK, "demo", "--duration", "14", "--szy206-station", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "TZ": "UTC"},
        )
    finally:
        station.terminate()
        frames = station.communicate(timeout=10)[0]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    confirmed = re.findall(r"szy206 report of (\d\d:\d\d:\d\d) \(UTC\+8\) confirmed by the station", proc.stdout)
    assert len(confirmed) >= 2, proc.stdout
    site_now = datetime.now(UTC) + timedelta(hours=8)  # the demo's site: utc_offset_hours defaults to 8
    seconds = [
        abs((site_now - site_now.replace(hour=h, minute=m, second=s)).total_seconds()) % 86_400
        for h, m, s in (map(int, c.split(":")) for c in confirmed)
    ]
    assert all(min(d, 86_400 - d) < 120 for d in seconds), (confirmed, site_now)
    m = re.search(r"szy206: (\d+) reports confirmed by the station", proc.stdout)
    assert m and int(m.group(1)) >= 2
    reports = [line for line in frames.splitlines() if '"afn": "C0"' in line and '"dir": "in"' in line]
    assert len(reports) >= 2


def test_site_time_is_shown_in_the_site_zone() -> None:
    at = 1_764_391_545_000  # 04:45:45 UTC
    assert site_time(at, 8) == "12:45:45 (UTC+8)"
    assert site_time(at, 0) == "04:45:45 (UTC)"
    assert site_time(at, -3.5) == "01:15:45 (UTC-3:30)"


def test_demo_refuses_a_duration_that_is_not_a_finite_positive_number(tmp_path: Path) -> None:
    # Checked before anything starts, like --broker and --szy206-station: one line, exit 1.
    for value in ("nan", "inf", "-1", "0", "abc"):
        proc = subprocess.run(
            [*METERLINK, "demo", "--duration", value, "--dir", str(tmp_path / "d")],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 1, (value, proc.stderr)
        assert proc.stderr.strip().splitlines() == ["meterlink: --duration must be a positive number of seconds"]
    assert not (tmp_path / "d").exists()
