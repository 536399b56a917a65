"""The demo's site folder: its config file, written from a template on every run, and its keys.

The gateway id of an earlier run in the same folder is kept, so a second run continues the same
gateway and its seq; endpoints that change between runs (ports, the ptys, the broker) are
rewritten (cli/demo.py runs the demo).
"""

from __future__ import annotations

import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

from meterlink.agent import keys
from meterlink.agent.errors import MeterlinkError

DEMO_POLL_S = 2
DEMO_UPLOAD_S = 2

CONFIG_TEMPLATE = """\
# Written by `meterlink demo`; endpoints are rewritten on every run, the gateway id is kept.
[gateway]
id = "{gateway}"
poll_interval = {poll}

[buses.tcp-meter]
type = "tcp"
host = "127.0.0.1"
port = {tcp_port}
timeout = 0.5
retries = 1

[buses.rs485]
type = "serial"
device = "{pty}"
baudrate = 9600
timeout = 0.5
retries = 1

[[meters]]
id = "intake-ultrasonic"
bus = "tcp-meter"
unit_id = 1
profile = "tuf2000"

[buses.szy206-line]
type = "serial"
protocol = "szy206"
device = "{szy206_pty}"
baudrate = 9600
timeout = 0.5
retries = 1

[[meters]]
id = "outlet-emf"
bus = "rs485"
unit_id = 1
profile = "emf_generic"

[[meters]]
id = "well-szy206"
bus = "szy206-line"
address = "530381:13"

[store]
path = "meterlink.db"
retention_days = 35

[signing]
key = "gateway.key"

[uplink.mqtt]
broker = "{broker}"
topic_prefix = "meterlink"
upload_interval = {upload}
batch_size = 500
publish_timeout = 5
{station}{center}"""

STATION_TEMPLATE = """
[uplink.szy206]
host = "{host}"
port = {port}
division = "430100"
station = 7
report_interval = 5
keepalive = 20
confirm_timeout = 3
"""

CENTER_TEMPLATE = """
[uplink.sl651]
host = "{host}"
port = {port}
center = 1
station = "0043010007"
password = "1234"
report_interval = 10
keepalive = 30
ack_timeout = 3

[uplink.sl651.meters.intake-ultrasonic]
flow = {{ id = "27" }}
volume = {{ id = "FF09", definition = "32" }}

[uplink.sl651.meters.outlet-emf]
flow = {{ id = "28" }}
volume = {{ id = "FF0A", definition = "32" }}
"""


def host_port(text: str | None, option: str) -> tuple[str, int] | None:
    """``HOST:PORT`` of ``option``, or None when not given."""
    if text is None:
        return None
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise MeterlinkError(f"{option} must look like HOST:PORT")
    return host, int(port)


def gateway_id(config_path: Path) -> str:
    """Keep the id of an earlier demo in the same folder; else make a new one."""
    if config_path.exists():
        try:
            gateway = tomllib.loads(config_path.read_text())["gateway"]["id"]
            if isinstance(gateway, str) and gateway:
                return gateway
        except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError):
            pass
    return f"demo-{secrets.token_hex(3)}"


def ensure_keys(folder: Path) -> Path:
    key = folder / "gateway.key"
    if not key.exists():
        keys.generate_keypair(folder)
    return folder / "gateway.pub"


@dataclass(frozen=True)
class DemoSite:
    """What this run's config names: the gateway, the simulators' endpoints, the broker, and the
    station and centre to report to (``--szy206-station``, ``--sl651-center``; None: not given)."""

    gateway: str
    tcp_port: int
    pty: str
    szy206_pty: str
    broker_url: str
    szy206_station: str | None
    sl651_center: str | None


def write_config(config_path: Path, site: DemoSite) -> None:
    """The demo's config file for this run's endpoints."""
    station = ""
    if site.szy206_station is not None:
        host, _, port = site.szy206_station.rpartition(":")
        station = STATION_TEMPLATE.format(host=host, port=int(port))
    sl651 = host_port(site.sl651_center, "--sl651-center")
    center = "" if sl651 is None else CENTER_TEMPLATE.format(host=sl651[0], port=sl651[1])
    config_path.write_text(
        CONFIG_TEMPLATE.format(
            gateway=site.gateway,
            poll=DEMO_POLL_S,
            upload=DEMO_UPLOAD_S,
            tcp_port=site.tcp_port,
            pty=site.pty,
            broker=site.broker_url,
            szy206_pty=site.szy206_pty,
            station=station,
            center=center,
        )
    )
    if station:
        # Report positions follow the meters' order; set here so the config file stays readable.
        text = config_path.read_text()
        for position, meter_id in enumerate(("intake-ultrasonic", "outlet-emf", "well-szy206"), 1):
            text = text.replace(f'id = "{meter_id}"\n', f'id = "{meter_id}"\nszy206_position = {position}\n')
        config_path.write_text(text)
