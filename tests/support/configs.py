"""Config files for tests: a valid base, written beside a real key pair."""

from __future__ import annotations

from pathlib import Path

from meterlink.agent.keys import generate_keypair

BASE = """
[gateway]
id = "gw-test"
poll_interval = 60

[buses.line1]
type = "serial"
device = "/dev/null"
baudrate = 9600

[buses.tcp1]
type = "tcp"
host = "127.0.0.1"
port = 5020

[[meters]]
id = "m1"
bus = "line1"
unit_id = 1
profile = "tuf2000"

[[meters]]
id = "m2"
bus = "tcp1"
unit_id = 1
profile = "emf_generic"

[store]
path = "state/meterlink.db"

[signing]
key = "keys/gateway.key"

[uplink.mqtt]
broker = "mqtt://127.0.0.1:1883"
"""


def write_site(folder: Path, text: str = BASE) -> Path:
    """A config file plus keys/gateway.key next to it; returns the config path."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "keys" / "gateway.key").exists():
        generate_keypair(folder / "keys")
    path = folder / "meterlink.toml"
    path.write_text(text)
    return path
