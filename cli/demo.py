"""``meterlink demo``: three simulated meters, the real agent and a platform that verifies everything.

One meter speaks Modbus TCP, one Modbus RTU over a pty (the way a site's RS-485 adapter appears),
one SZY206 over a second pty. The agent polls them every 2 s and uploads every 2 s to a broker (a
private mosquitto unless ``--broker`` is given); the simulated platform verifies every message with
the gateway's public key and prints a line per upload. With ``--szy206-station HOST:PORT`` the
agent also reports as an SZY206 site terminal to that central station, every 5 s; with
``--sl651-center HOST:PORT`` as an SL651 station to that centre (a scheduled report every 10 s, an
hourly one, keep-alives; try ``meterlink sim sl651-center --listen 5051``). It sits with the
command line, above ``agent`` and ``sim``, because it launches both.

``--dir`` keeps one config (``meterlink.toml``), the keys and the store, so a second run continues
the same gateway and its seq; endpoints that change between runs (ports, the pty) are rewritten.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import secrets
import shutil
import signal
import sys
import tempfile
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from meterlink.agent import config as cfgmod
from meterlink.agent import keys, logsetup
from meterlink.agent.errors import MeterlinkError
from meterlink.wire.jws import Verifier

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


def _host_port(text: str | None, option: str) -> tuple[str, int] | None:
    """``HOST:PORT`` of ``option``, or None when not given."""
    if text is None:
        return None
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise MeterlinkError(f"{option} must look like HOST:PORT")
    return host, int(port)


def _gateway_id(config_path: Path) -> str:
    """Keep the id of an earlier demo in the same folder; else make a new one."""
    if config_path.exists():
        try:
            gateway = tomllib.loads(config_path.read_text())["gateway"]["id"]
            if isinstance(gateway, str) and gateway:
                return gateway
        except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError):
            pass
    return f"demo-{secrets.token_hex(3)}"


def _ensure_keys(folder: Path) -> Path:
    key = folder / "gateway.key"
    if not key.exists():
        keys.generate_keypair(folder)
    return folder / "gateway.pub"


def _duration(text: str | None) -> float | None:
    """``--duration`` in seconds: a finite number above 0 (float() alone lets nan and inf through)."""
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise MeterlinkError("--duration must be a positive number of seconds")
    return seconds


def run_demo(args: argparse.Namespace) -> int:
    args.duration = _duration(args.duration)
    if args.broker is not None:
        url = urlsplit(args.broker)
        if url.scheme != "mqtt" or not url.hostname:
            raise MeterlinkError("--broker must look like mqtt://HOST:PORT (the demo uses plain MQTT)")
    _host_port(args.szy206_station, "--szy206-station")
    _host_port(args.sl651_center, "--sl651-center")
    logsetup.setup("warning")
    if args.dir is None:
        with tempfile.TemporaryDirectory(prefix="meterlink-demo-") as tmp:
            return asyncio.run(_demo(Path(tmp), args))
    folder = Path(args.dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MeterlinkError(f"--dir {folder}: {exc.strerror}") from None
    return asyncio.run(_demo(folder.resolve(), args))


def site_time(ms: int, utc_offset_h: float) -> str:
    """A slot as the station shows it: in the site's zone (not this machine's), e.g. ``12:45:45 (UTC+8)``."""
    at = datetime.fromtimestamp(ms / 1000, UTC) + timedelta(hours=utc_offset_h)
    return f"{at:%H:%M:%S} ({_zone_name(utc_offset_h)})"


def _zone_name(utc_offset_h: float) -> str:
    if not utc_offset_h:
        return "UTC"
    hours, minutes = divmod(round(abs(utc_offset_h) * 60), 60)
    return f"UTC{'+' if utc_offset_h > 0 else '-'}{hours}" + (f":{minutes:02d}" if minutes else "")


def say(text: str) -> None:
    print(text, flush=True)


async def _demo(folder: Path, args: argparse.Namespace) -> int:
    # Imported here, when the demo runs: `meterlink run` never loads the simulators.
    from meterlink.agent.service import Agent
    from meterlink.protocols.szy206.fields import Address
    from meterlink.sim.broker import BrokerError, LocalBroker
    from meterlink.sim.meter_model import SimMeter
    from meterlink.sim.modbus_server import ModbusSimServer
    from meterlink.sim.platform import Platform
    from meterlink.sim.szy206_meter import SimSzy206Meter
    from meterlink.sim.szy206_meter_server import Szy206SimServer

    config_path = folder / "meterlink.toml"
    gateway = _gateway_id(config_path)
    pub_path = _ensure_keys(folder)

    broker = None
    if args.broker is None:
        # The broker's own files live apart: --dir holds exactly one config, the keys and the store.
        broker_dir = Path(tempfile.mkdtemp(prefix="meterlink-mqtt-"))
        broker = LocalBroker(broker_dir)
        try:
            broker.start()
        except BrokerError as exc:
            raise MeterlinkError(str(exc)) from None
        broker_url = broker.url
    else:
        broker_url = args.broker

    tcp_sim = ModbusSimServer({1: SimMeter("tuf2000", 1, seed=1)})
    rtu_sim = ModbusSimServer({1: SimMeter("emf_generic", 1, seed=2)})
    szy_sim = Szy206SimServer([SimSzy206Meter(Address(division="530381", station=13), seed=3)])
    platform = None
    agent = None
    try:
        tcp_port = await tcp_sim.start_tcp()
        pty = rtu_sim.start_pty()
        szy206_pty = szy_sim.start_pty()
        station = ""
        if args.szy206_station is not None:
            host, _, port = args.szy206_station.rpartition(":")
            station = STATION_TEMPLATE.format(host=host, port=int(port))
        sl651 = _host_port(args.sl651_center, "--sl651-center")
        center = "" if sl651 is None else CENTER_TEMPLATE.format(host=sl651[0], port=sl651[1])
        config_path.write_text(
            CONFIG_TEMPLATE.format(
                gateway=gateway,
                poll=DEMO_POLL_S,
                upload=DEMO_UPLOAD_S,
                tcp_port=tcp_port,
                pty=pty,
                broker=broker_url,
                szy206_pty=szy206_pty,
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
        config = cfgmod.load(config_path)
        say(f"meterlink demo: gateway {gateway}, folder {folder}")
        say(f"  meter intake-ultrasonic (TUF-2000 profile) on Modbus TCP 127.0.0.1:{tcp_port}")
        say(f"  meter outlet-emf (electromagnetic converter) on Modbus RTU over {pty}")
        say(f"  meter well-szy206 (SZY206 terminal 530381:13) over {szy206_pty}")
        if station:
            say(f"  reporting as SZY206 site terminal 430100:7 to the station at {args.szy206_station} every 5 s")
        if center:
            say(f"  reporting as SL651 station 0043010007 to the centre at {args.sl651_center} every 10 s")
        say(f"  broker {broker_url}{' (private mosquitto)' if broker else ''}; polling and uploading every 2 s")

        verifier = Verifier([keys.load_public_key(pub_path)])
        host, port = urlsplit(broker_url).hostname or "127.0.0.1", urlsplit(broker_url).port or 1883

        def on_batch(kind: str, payload: dict, new: int) -> None:  # type: ignore[type-arg]
            if kind == "readings":
                rows = payload["readings"]
                meters = sorted({r["meter"] for r in rows})
                say(
                    f"upload batch {payload['batch']}: {len(rows)} readings, seq {rows[0]['seq']}-{rows[-1]['seq']}, "
                    f"from {', '.join(meters)}: signature verified"
                )
            elif kind == "events":
                say(
                    f"events batch {payload['batch']}: {', '.join(e['kind'] for e in payload['events'])}: "
                    "signature verified"
                )
            elif kind == "daily":
                days = ", ".join(f"{d['meter']} {d['day']} {d['volume']} m3" for d in payload["daily"])
                say(f"day summaries batch {payload['batch']}: {days}: signature verified")
            elif kind == "archive":
                say(f"meter archive batch {payload['batch']}: {len(payload['archive'])} meters: signature verified")

        def on_reject(topic: str, why: str) -> None:
            say(f"REJECTED message on {topic}: {why}")

        platform = Platform(host, port, verifier, gateway=gateway, on_batch=on_batch, on_reject=on_reject)
        try:
            await asyncio.get_running_loop().run_in_executor(None, platform.start)
        except (OSError, TimeoutError) as exc:
            raise MeterlinkError(f"cannot subscribe at {broker_url}: {exc}") from None

        agent = Agent(config, backoff_max=2.0)
        agent.build()
        assert agent.parts is not None
        if agent.parts.terminal is not None:
            zone = agent.parts.terminal.cfg.utc_offset_hours
            agent.parts.terminal.on_confirmed = lambda slot, backfill: say(
                f"szy206 report of {site_time(slot, zone)} confirmed by the station"
                + (" (backfilled)" if backfill else "")
            )
        if agent.parts.sl651 is not None:
            zone = agent.parts.sl651.cfg.utc_offset_hours
            agent.parts.sl651.on_acknowledged = lambda report, backfill: say(
                f"sl651 report {report.function:02X}H of {site_time(report.slot, zone)} acknowledged by the centre"
                + (" (backfilled)" if backfill else "")
            )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, agent.stop)
        if args.duration is not None:
            loop.call_later(args.duration, agent.stop)
        await agent.run(final_flush=True)
        assert agent.parts is not None
        sent_upto = agent.parts.store.next_seq - 1
        # Give the platform a moment for the last messages in flight to it.
        await loop.run_in_executor(
            None, platform.wait_for, lambda r: bool(r.readings) and max(s for _, s in r.readings) >= sent_upto, 3.0
        )
    finally:
        if platform is not None:
            platform.stop()
        await tcp_sim.stop()
        await rtu_sim.stop()
        await szy_sim.stop()
        if broker is not None:
            broker.stop()
            shutil.rmtree(broker.workdir, ignore_errors=True)

    got = platform.received
    readings = len(got.readings)
    say(f"{readings} readings from {len(got.meters())} meters, {readings} verified, {got.rejected} rejected")
    if agent is not None and agent.parts is not None and agent.parts.terminal is not None:
        stats = agent.parts.terminal.stats
        say(f"szy206: {stats.reports_confirmed} reports confirmed by the station, {stats.resends} resent")
    if agent is not None and agent.parts is not None and agent.parts.sl651 is not None:
        counts = agent.parts.sl651.stats
        say(
            f"sl651: {counts.reports_acknowledged} reports acknowledged by the centre, {counts.resends} resent, "
            f"{counts.reports_given_up} kept for later"
        )
    if got.rejected or not readings:
        if not readings:
            print("meterlink demo: no readings arrived; see the log lines above", file=sys.stderr)
        return 1
    return 0
