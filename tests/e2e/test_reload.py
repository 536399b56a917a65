"""Reload without a restart: SIGHUP reads the site file again while the agent polls and uploads.

A real agent polls the Modbus simulator every second and uploads to a real mosquitto; it is reloaded
20 times, alternating a valid file (two site layouts in turn: one meter stays, one is swapped for
another, the upload interval changes so the MQTT uplink is rebuilt) with an invalid one (not TOML, an
unknown profile, a new gateway id, a new store path, a unit id out of range). A verifying platform
counts what arrived: seq contiguous, no duplicate, no conflict; and every slot of every meter while
it was configured holds its readings. The record of what was configured when is the test's own log
of the reloads the agent said it applied.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from support.configs import write_site
from support.procs import start_agent, start_sim, wait_until

from meterlink.agent.keys import load_public_key
from meterlink.sim.broker import LocalBroker
from meterlink.sim.platform import Platform
from meterlink.wire.jws import Verifier

pytestmark = pytest.mark.slow

GATEWAY = "gw-reload"
HEAD = """
[gateway]
id = "{gateway}"
poll_interval = 1

[buses.tcp]
type = "tcp"
host = "127.0.0.1"
port = {port}
timeout = 0.5
retries = 0

# A meter that takes 1.5 s to answer, on a bus of its own: a reload that cut a poll in flight
# would lose its slot.
[buses.slow]
type = "tcp"
host = "127.0.0.1"
port = {port}
timeout = 2.5
retries = 0

[[meters]]
id = "slow"
bus = "slow"
unit_id = 4
profile = "xintai_water_meter"
poll_interval = 5

[store]
path = "{store}"

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "{broker}"
upload_interval = {upload}

[clock]
sync_check = "assume_synced"
"""
METER = """
[[meters]]
id = "{id}"
bus = "tcp"
unit_id = {unit}
profile = "{profile}"
"""
LAYOUTS = {"A": {"well-1": 1, "well-2": 2}, "B": {"well-1": 1, "well-3": 3}}
UPLOAD = {"A": 1, "B": 2}
BROKEN = ("not-toml", "profile", "gateway", "store", "unit")
QUANTITIES = 4  # the xintai_water_meter profile's values


def site_text(port: int, broker: str, layout: str, broken: str | None = None) -> str:
    text = HEAD.format(
        gateway="gw-other" if broken == "gateway" else GATEWAY,
        port=port,
        store="elsewhere/meterlink.db" if broken == "store" else "state/meterlink.db",
        broker=broker,
        upload=UPLOAD[layout],
    )
    for meter, unit in LAYOUTS[layout].items():
        text += METER.format(
            id=meter,
            unit=300 if broken == "unit" else unit,
            profile="no_such_meter" if broken == "profile" else "xintai_water_meter",
        )
    return text + ("\n[[[ not toml\n" if broken == "not-toml" else "")


def replace_file(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)


def count(log: Path, needle: str) -> int:
    return log.read_text(errors="replace").count(needle)


def test_twenty_reloads_lose_and_duplicate_nothing(tmp_path: Path, broker: LocalBroker) -> None:
    units = [a for u in (1, 2, 3, 4) for a in ("--meter", f"xintai_water_meter:{u}")]
    sim = start_sim("--tcp", "0", *units, "--fault", "4:slow_answer")
    assert sim.tcp_port is not None
    site = write_site(tmp_path / "site", site_text(sim.tcp_port, broker.url, "A"))
    verifier = Verifier([load_public_key(site.parent / "keys" / "gateway.pub")])
    platform = Platform(broker.host, broker.port, verifier, gateway=GATEWAY, client_id="platform-reload")
    platform.start()
    log = tmp_path / "agent.log"
    agent = start_agent(site, log)
    active: list[tuple[float, str]] = [(time.time(), "A")]  # (from, layout), as the agent applied them
    refused = 0
    try:
        assert wait_until(lambda: "event=uploaded" in log.read_text(errors="replace"), 30), log.read_text()
        layout = "A"
        for n in range(20):
            applied_before = count(log, "event=reload_applied")
            refused_before = count(log, "kept=running_configuration")
            if n % 2 == 0:
                layout = "B" if layout == "A" else "A"
                replace_file(site, site_text(sim.tcp_port, broker.url, layout))
            else:
                replace_file(site, site_text(sim.tcp_port, broker.url, layout, BROKEN[(n // 2) % len(BROKEN)]))
            agent.send_signal(signal.SIGHUP)
            if n % 2 == 0:
                assert wait_until(lambda b=applied_before: count(log, "event=reload_applied") > b, 30), log.read_text()
                active.append((time.time(), layout))
            else:
                assert wait_until(lambda b=refused_before: count(log, "kept=running_configuration") > b, 30)
                refused += 1
            assert agent.poll() is None, log.read_text()[-3000:]
            time.sleep(1.5)
        time.sleep(3)
        store = site.parent / "state" / "meterlink.db"
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
            last_sent = db.execute("SELECT max(seq) FROM readings WHERE sent IS NOT NULL").fetchone()[0]
        assert platform.wait_for(lambda r: len(r.seqs(GATEWAY)) >= last_sent, 30)
    finally:
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(30)
        platform.stop()
        sim.stop()
    text = log.read_text(errors="replace")
    assert code == 0, text[-3000:]
    assert "Traceback" not in text
    assert refused == 10 and count(log, "event=reload_applied") == 10
    assert "gateway.id: 'gw-reload' -> 'gw-other' needs a restart" in text
    assert "store.path:" in text and "needs a restart" in text

    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        stored = db.execute(
            "SELECT r.seq, s.meter, r.slot FROM readings r JOIN series s ON s.id = r.series ORDER BY r.seq"
        ).fetchall()
    seqs = [s for s, _, _ in stored]
    assert seqs == list(range(1, len(seqs) + 1)), "a seq gap in the store"
    got = platform.received
    delivered = got.seqs(GATEWAY)
    assert delivered == list(range(1, len(delivered) + 1)), "a seq gap at the platform"
    assert len(delivered) >= last_sent
    assert (got.duplicates, got.conflicts, got.rejected) == (0, 0, 0)
    assert not [r for r in stored if r[1] not in {"well-1", "well-2", "well-3", "slow"}]

    # Every slot of every meter while it was configured (from the slot after the apply to the one
    # before the next apply) holds all its readings, once. well-1 is in every layout, unchanged: its
    # slots run on through all the reloads.
    slots: dict[str, list[int]] = {}
    for _, meter, slot in stored:
        slots.setdefault(meter, []).append(slot)
    end_of_run = time.time() - 5
    ends = [t for t, _ in active[1:]] + [end_of_run]
    spans = [("well-1", active[0][0], end_of_run, 1), ("slow", active[0][0], end_of_run, 5)]
    spans += [(m, start, end, 1) for (start, layout), end in zip(active, ends, strict=True) for m in LAYOUTS[layout]]
    checked = 0
    for meter, start, end, every in spans:
        first = (int(start) // every + 1) * every + every  # the slot after the one running at the apply
        for slot in range(first, int(end) - every, every):
            found = slots.get(meter, []).count(slot * 1000)
            assert found == QUANTITIES, f"{meter} slot {slot}: {found} readings"
            checked += 1
    assert checked >= 30, checked
    applied = count(log, "event=reload_applied")
    print(
        f"\n[reload] reloads={refused + applied} applied={applied} refused={refused}"
        f" readings={len(stored)} delivered={len(delivered)} seq_gaps=0"
        f" duplicates={got.duplicates} conflicts={got.conflicts} slots_checked={checked}"
    )
