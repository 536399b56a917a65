"""The platform's rules in real time: the real agent, `meterlink sim modbus`, a real mosquitto and a
verifying platform.

Meter m1 reads negative (a one-directional meter: volume_negative), meter m2 never answers (no_data
after twice its poll interval), and a technician enters a manual reading of a meter read by hand while
the agent runs: it arrives signed, flagged manual, with its manual_reading event and its photo. The
meter archive arrives too, retained.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.configs import write_site
from support.procs import METERLINK, SimProcess, start_agent, start_sim, wait_until

from meterlink.agent.keys import load_public_key
from meterlink.sim.broker import LocalBroker
from meterlink.sim.platform import Platform
from meterlink.wire.jws import Verifier

pytestmark = pytest.mark.slow

GATEWAY = "gw-rules"
SITE = """
[gateway]
id = "{gateway}"
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
profile = "tuf2000"
intake = "river"
[meters.archive]
make = "Hipeak"
model = "TUF-2000M"
calibrated = 2026-01-15
calibration_months = 12

[[meters]]
id = "m2"
bus = "tcp"
unit_id = 2
profile = "emf_generic"

[[meters]]
id = "well-3"

[[intakes]]
id = "river"
permit = "D430100S2024-0042"

[store]
path = "state/meterlink.db"

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "{broker}"
upload_interval = 1
evidence = true

[clock]
sync_check = "assume_synced"
"""

# A 1x1 JPEG is enough for the format check and the digest.
PHOTO = base64.b64decode(
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAAMCAgICAgMCAgIDAwMDBAYEBAQEBAgGBgUGCQgKCgkICQkKDA8MCgsOCwkJDRENDg8QEBEQCgwS"
    "ExIQEw8QEBD/yQALCAABAAEBAREA/8wABgAQEAX/2gAIAQEAAD8A0s8g/9k="
)


@pytest.fixture
def sim() -> Any:
    s = start_sim(
        "--tcp",
        "0",
        "--meter",
        "tuf2000:1",
        "--meter",
        "emf_generic:2",
        "--fault",
        "1:negative",
        "--fault",
        "2:no_answer",
    )
    try:
        yield s
    finally:
        s.stop()


def events(platform: Platform, kind: str) -> list[dict[str, Any]]:
    with platform.lock:
        return [e for e in platform.received.events if e["kind"] == kind]


def test_anomalies_and_a_manual_reading_arrive_signed(tmp_path: Path, broker: LocalBroker, sim: SimProcess) -> None:
    site = write_site(tmp_path / "site", SITE.format(gateway=GATEWAY, port=sim.tcp_port, broker=broker.url))
    verifier = Verifier([load_public_key(site.parent / "keys" / "gateway.pub")])
    platform = Platform(broker.host, broker.port, verifier, gateway=GATEWAY, client_id="platform-rules")
    platform.start()
    log = tmp_path / "agent.log"
    agent = start_agent(site, log)
    photo = tmp_path / "display.jpg"
    photo.write_bytes(PHOTO)
    digest = hashlib.sha256(PHOTO).hexdigest()
    try:
        assert wait_until(lambda: events(platform, "volume_negative") and events(platform, "no_data"), 40), (
            log.read_text()[-3000:]
        )
        entered = subprocess.run(
            [
                *METERLINK,
                "manual-reading",
                "-c",
                str(site),
                "--meter",
                "well-3",
                "--value",
                "4321.5",
                "--evidence",
                str(photo),
                "--by",
                "technician",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert entered.returncode == 0, entered.stderr
        assert "stored by the running agent" in entered.stdout and digest in entered.stdout

        def manual_arrived() -> bool:
            with platform.lock:
                readings = [r for r in platform.received.readings.values() if r["meter"] == "well-3"]
                return bool(readings) and digest in platform.received.evidence

        assert wait_until(manual_arrived, 20), log.read_text()[-3000:]
    finally:
        agent.terminate()
        agent.wait(30)
        platform.stop()

    negative = events(platform, "volume_negative")[0]
    assert (negative["meter"], negative["cause"], negative["cleared"]) == ("m1", "negative_flow", False)
    assert negative["id"].startswith("volume_negative/m1/flow/")
    silent = events(platform, "no_data")[0]
    assert (silent["meter"], silent["cleared"], silent["last_ts"]) == ("m2", False, None)
    assert not [e for e in events(platform, "no_data") if e["meter"] == "m1"]  # m1 answers, however oddly
    received = platform.received
    (reading,) = [r for r in received.readings.values() if r["meter"] == "well-3"]
    assert (reading["value"], reading["quantity"], reading["flags"]) == (4321.5, "volume_total", ["manual"])
    (manual,) = events(platform, "manual_reading")
    assert (manual["seq"], manual["sha256"], manual["by"], manual["media_type"]) == (
        next(seq for (_, seq), r in received.readings.items() if r["meter"] == "well-3"),
        digest,
        "technician",
        "image/jpeg",
    )
    sent = received.evidence[digest]
    assert base64.b64decode(sent["data"]) == PHOTO and sent["size"] == len(PHOTO)
    assert received.archive is not None
    assert received.archive["m1"] == {
        "make": "Hipeak",
        "model": "TUF-2000M",
        "calibrated": "2026-01-15",
        "calibration_months": 12,
        "intake": "river",
        "transmission": "Modbus TCP over TCP/IP",
    }
    assert set(received.archive) == {"m1", "m2", "well-3"}
    assert received.rejected == 0 and received.conflicts == 0
