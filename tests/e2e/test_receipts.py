"""Application-level receipts: delivered means the platform said so, not merely the broker."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import pytest
from support.configs import write_site
from support.procs import start_agent, start_sim, wait_until

from meterlink.agent.keys import generate_keypair, load_private_key, load_public_key
from meterlink.sim.broker import LocalBroker
from meterlink.sim.platform import Platform
from meterlink.wire.jws import Signer, Verifier

pytestmark = pytest.mark.slow

SITE = """
[gateway]
id = "gw-rcpt"
poll_interval = 1

[buses.tcp]
type = "tcp"
host = "127.0.0.1"
port = {port}
timeout = 0.3
retries = 0

[[meters]]
id = "m1"
bus = "tcp"
unit_id = 1
profile = "xintai_water_meter"

[store]
path = "state/meterlink.db"

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "{broker}"
upload_interval = 1
receipts = true
receipt_key = "{platform_pub}"
receipt_timeout = 3

[clock]
sync_check = "assume_synced"
"""


def pending(site: Path) -> tuple[int, int]:
    db = sqlite3.connect(f"file:{site.parent / 'state' / 'meterlink.db'}?mode=ro", uri=True)
    try:
        total, sent = db.execute("SELECT count(*), count(sent) FROM readings").fetchone()
    finally:
        db.close()
    return total, sent


def test_readings_count_as_delivered_only_on_a_signed_receipt(tmp_path: Path) -> None:
    platform_key, platform_pub = generate_keypair(tmp_path / "platform")
    impostor_key, _ = generate_keypair(tmp_path / "impostor")
    broker = LocalBroker(tmp_path / "broker")
    broker.start()
    sim = start_sim("--tcp", "0", "--meter", "xintai_water_meter:1")
    site = write_site(tmp_path / "site", SITE.format(port=sim.tcp_port, broker=broker.url, platform_pub=platform_pub))
    verifier = Verifier([load_public_key(tmp_path / "site" / "keys" / "gateway.pub")])
    log_file = tmp_path / "agent.log"
    agent = start_agent(site, log_file)
    try:
        # 1. A platform that does not answer: the broker acknowledges, yet nothing counts as sent.
        silent = Platform(broker.host, broker.port, verifier, gateway="gw-rcpt")
        silent.start()
        assert wait_until(lambda: len(silent.received.readings) >= 12, 20)
        assert pending(site)[1] == 0
        # 2. Receipts signed by someone else are refused.
        impostor = Platform(
            broker.host, broker.port, verifier, gateway="gw-rcpt", receipt_signer=Signer(load_private_key(impostor_key))
        )
        impostor.start()

        # Its receipts reached the agent and were refused, several of them.
        def refused() -> int:
            return log_file.read_text().count("event=receipt_refused")

        assert wait_until(lambda: impostor.receipts_sent >= 3 and refused() >= 3, 20), log_file.read_text()[-2000:]
        impostor.stop()
        assert pending(site)[1] == 0
        silent.stop()
        # 3. The real platform's receipts: readings are marked sent; those never receipted went out again.
        real = Platform(
            broker.host, broker.port, verifier, gateway="gw-rcpt", receipt_signer=Signer(load_private_key(platform_key))
        )
        real.start()
        assert wait_until(lambda: (t := pending(site))[1] > 0 and t[0] - t[1] <= 8, 30), pending(site)
        real.stop()
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(20)
        sim.stop()
        broker.stop()
    log = (tmp_path / "agent.log").read_text()
    assert "event=receipt_refused" in log
    assert "event=receipt_missing" in log  # receipts that never came: those batches were sent again
    total, sent = pending(site)
    assert sent >= total - 8
