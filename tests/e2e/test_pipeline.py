"""From simulated meters to a verifying platform, through the real agent process and mosquitto."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.configs import write_site
from support.procs import SimProcess, start_agent, start_sim, wait_until
from support.store_probe import last_and_pending

from meterlink.agent.clock import now_ms
from meterlink.agent.keys import load_public_key
from meterlink.sim.broker import LocalBroker
from meterlink.sim.platform import Platform
from meterlink.wire.jws import Verifier

pytestmark = pytest.mark.slow

SITE = """
[gateway]
id = "gw-e2e"
poll_interval = 1

[buses.tcp]
type = "tcp"
host = "127.0.0.1"
port = {tcp_port}
timeout = 0.3
retries = 0

[buses.line]
type = "serial"
device = "{pty}"
timeout = 0.3
retries = 0

[[meters]]
id = "tcp-flow"
bus = "tcp"
unit_id = 1
profile = "tuf2000"

[[meters]]
id = "rtu-flow"
bus = "line"
unit_id = 1
profile = "emf_generic"

[[meters]]
id = "rtu-level"
bus = "line"
unit_id = 2
profile = "qdy30a_level"

[store]
path = "state/meterlink.db"

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "{broker}"
upload_interval = 1
publish_timeout = 3

[clock]
sync_check = "assume_synced"
"""


# tuf2000 (5 quantities) + emf_generic (5) + qdy30a_level (1) per poll cycle.
READINGS_PER_CYCLE = 11
OUTAGE_CYCLES = 4  # poll cycles the store gains while the broker is away


@pytest.fixture
def sims() -> Iterator[tuple[SimProcess, SimProcess]]:
    tcp = start_sim("--tcp", "0", "--meter", "tuf2000:1")
    rtu = start_sim("--pty", "--meter", "emf_generic:1", "--meter", "qdy30a_level:2")
    yield tcp, rtu
    tcp.stop()
    rtu.stop()


def make_site(tmp_path: Path, broker: LocalBroker, sims: tuple[SimProcess, SimProcess]) -> Path:
    tcp, rtu = sims
    return write_site(tmp_path / "site", SITE.format(tcp_port=tcp.tcp_port, pty=rtu.pty, broker=broker.url))


def platform_for(site: Path, broker: LocalBroker) -> Platform:
    verifier = Verifier([load_public_key(site.parent / "keys" / "gateway.pub")])
    p = Platform(broker.host, broker.port, verifier, gateway="gw-e2e", client_id="platform-e2e")
    p.start()
    return p


def stop(agent: subprocess.Popen[bytes]) -> int:
    agent.send_signal(signal.SIGTERM)
    return agent.wait(20)


def test_readings_flow_signed_from_both_transports_to_the_platform(
    tmp_path: Path, broker: LocalBroker, sims: tuple[SimProcess, SimProcess]
) -> None:
    site = make_site(tmp_path, broker, sims)
    platform = platform_for(site, broker)
    agent = start_agent(site, tmp_path / "agent.log")
    try:
        assert wait_until(lambda: len(platform.received.meters()) == 3 and len(platform.received.readings) >= 40, 30), (
            tmp_path / "agent.log"
        ).read_text()
    finally:
        assert stop(agent) == 0
        platform.stop()
    got = platform.received
    assert got.rejected == 0 and got.conflicts == 0
    seqs = got.seqs("gw-e2e")
    assert seqs == list(range(1, len(seqs) + 1))
    by_quantity = {(r["meter"], r["quantity"]) for r in got.readings.values()}
    assert ("tcp-flow", "flow_rate") in by_quantity and ("rtu-level", "level") in by_quantity
    for r in got.readings.values():
        assert r["slot"] % 1000 == 0 and 0 <= r["ts"] - r["slot"] < 5000
        assert isinstance(r["value"], int | float)
        if r["quantity"] == "volume_total":
            assert r["value"] > 0
    assert got.status.get("meterlink/gw-e2e/status") == "offline"  # said at a clean stop
    log = (tmp_path / "agent.log").read_text()
    assert "Traceback" not in log


def test_restart_continues_seq_without_gap(
    tmp_path: Path, broker: LocalBroker, sims: tuple[SimProcess, SimProcess]
) -> None:
    site = make_site(tmp_path, broker, sims)
    platform = platform_for(site, broker)
    try:
        for round_ in range(3):
            agent = start_agent(site, tmp_path / "agent.log")
            target = 15 * (round_ + 1)
            assert wait_until(lambda t=target: len(platform.received.readings) >= t, 30)
            assert stop(agent) == 0
    finally:
        platform.stop()
    seqs = platform.received.seqs("gw-e2e")
    assert seqs == list(range(1, len(seqs) + 1)), "a gap or a repeat across restarts"
    assert platform.received.conflicts == 0


def test_a_broker_outage_loses_nothing(tmp_path: Path, sims: tuple[SimProcess, SimProcess]) -> None:
    """The broker goes away for a while: polling goes on, and what was polled meanwhile arrives once
    it is back, up to the last reading the store holds. The broker's own persistence keeps the
    platform's session, as a production broker must (a PUBACK only says the broker has a message;
    see docs/wire-format.md)."""
    broker = LocalBroker(tmp_path / "broker", persistent=True)
    broker.start()
    site = make_site(tmp_path, broker, sims)
    db = site.parent / "state" / "meterlink.db"
    log = tmp_path / "agent.log"
    platform = platform_for(site, broker)
    agent = start_agent(site, log)
    try:
        assert wait_until(lambda: len(platform.received.readings) >= 10, 30)
        broker.stop(graceful=True)
        away_from = now_ms()
        # Polling goes on while the broker is away: several poll cycles pile up in the store.
        before = last_and_pending(db)[0]
        assert wait_until(
            lambda: (
                "event=mqtt_disconnected" in log.read_text()
                and last_and_pending(db)[0] >= before + OUTAGE_CYCLES * READINGS_PER_CYCLE
            ),
            30,
        ), log.read_text()[-3000:]
        away_until = now_ms()
        broker.start()
        # The meters go quiet, so the store's last seq is final: every reading up to it must arrive.
        for sim in sims:
            sim.stop()
        assert wait_until(lambda: last_and_pending(db)[1] == 0, 40), log.read_text()[-3000:]
        last = last_and_pending(db)[0]
        assert platform.wait_for(lambda r: ("gw-e2e", last) in r.readings, 10), log.read_text()[-3000:]
    finally:
        assert stop(agent) == 0
        platform.stop()
        broker.stop()
    got = platform.received
    seqs = got.seqs("gw-e2e")
    assert seqs == list(range(1, last + 1)), "a gap, or the last readings in the store never arrived"
    assert last_and_pending(db) == (last, 0)
    assert got.rejected == 0 and got.conflicts == 0
    # Readings polled while the broker was away arrived, from every meter.
    slots_away: dict[str, set[int]] = {}
    for r in got.readings.values():
        if away_from <= r["ts"] <= away_until:
            slots_away.setdefault(r["meter"], set()).add(r["slot"])
    assert {meter: len(slots) >= OUTAGE_CYCLES - 1 for meter, slots in slots_away.items()} == {
        "tcp-flow": True,
        "rtu-flow": True,
        "rtu-level": True,
    }, slots_away
